package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// readBody reads the whole body within the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > s.maxBody {
		return nil, tooLarge(s.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(mbe.Limit)
		}
		return nil, registry.Errorf(registry.CodeInvalidArgument, "could not read the request body: %v", err)
	}
	return body, nil
}

// decode reads a JSON object body into dst, strictly: JSON content type,
// size limit, no unknown fields, nothing after the object.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSON(body, dst)
}

func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &registry.Error{
		Code:    registry.CodeInvalidArgument,
		Field:   "Content-Type",
		Rule:    "content_type",
		Message: fmt.Sprintf("Content-Type %q is not supported; send application/json", ct),
	}
}

func bodyError(rule, format string, args ...any) *registry.Error {
	return &registry.Error{Code: registry.CodeInvalidArgument, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

func decodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return bodyError("required", "request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return bodyError("json", "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return bodyError("json", "request body has data after the JSON object (offset %d)", dec.InputOffset())
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return bodyError("json", "request body is not valid JSON at offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return bodyError("json", "request body must be a JSON object")
		}
		return registry.FieldError(typ.Field, "type", "must be %s, not %s", jsonType(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return bodyError("json", "request body is truncated JSON")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(name)
		if uerr != nil {
			field = name
		}
		return &registry.Error{
			Code:    registry.CodeInvalidArgument,
			Field:   field,
			Rule:    "unknown_field",
			Message: fmt.Sprintf("unknown field %q", field),
		}
	}
	// Errors from UnmarshalJSON methods (time.Time, say).
	return bodyError("json", "request body is not valid: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonType names a Go type the way a JSON user thinks of it.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a " + t.String()
}

// pathName reads and validates a model or endpoint name path parameter.
func pathName(r *http.Request, param string) (string, error) {
	v := r.PathValue(param)
	return v, registry.ValidateName(param, v)
}

// pathStage reads and validates the stage path parameter.
func pathStage(r *http.Request) (string, error) {
	v := r.PathValue("stage")
	return v, registry.ValidateStage("stage", v)
}

// pathVersion reads the version path parameter: a positive integer.
func pathVersion(r *http.Request) (int64, error) {
	v := r.PathValue("version")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || strings.TrimLeft(v, "0123456789") != "" {
		return 0, registry.FieldError("version", "positive_integer", "%q must be a positive integer version number", v)
	}
	return n, nil
}

// listOptions reads page_size and page_token.
func listOptions(r *http.Request) (registry.ListOptions, error) {
	q := r.URL.Query()
	opts := registry.ListOptions{PageToken: q.Get("page_token")}
	n := 0
	if v := q.Get("page_size"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			return opts, registry.FieldError("page_size", "integer", "%q must be an integer between 1 and %d", v, registry.MaxPageSize)
		}
		if n == 0 {
			// Zero would silently mean "default"; an explicit value must be valid.
			return opts, registry.FieldError("page_size", "range", "must be between 1 and %d", registry.MaxPageSize)
		}
	}
	size, err := registry.NormalizePageSize(n)
	if err != nil {
		return opts, err
	}
	opts.PageSize = size
	return opts, nil
}

// boolQuery reads an optional true/false query parameter.
func boolQuery(r *http.Request, name string) (*bool, error) {
	v := r.URL.Query().Get(name)
	switch v {
	case "":
		return nil, nil
	case "true", "1":
		b := true
		return &b, nil
	case "false", "0":
		b := false
		return &b, nil
	}
	return nil, registry.FieldError(name, "boolean", "%q must be true or false", v)
}

func flagQuery(r *http.Request, name string) (bool, error) {
	b, err := boolQuery(r, name)
	return b != nil && *b, err
}

// orderBy validates a version list order: "version" or "metrics.<name>",
// optionally followed by "asc" or "desc". It returns the store's form.
func orderBy(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	fields := strings.Fields(v)
	bad := registry.FieldError("order_by", "order_by", "%q must be \"version\" or \"metrics.<name>\", optionally followed by \" asc\" or \" desc\"", v)
	if len(fields) == 0 || len(fields) > 2 {
		return "", bad
	}
	key := fields[0]
	if key != "version" {
		name, ok := strings.CutPrefix(key, "metrics.")
		if !ok || name == "" || len(name) > registry.MaxTagKeyLen {
			return "", bad
		}
	}
	if len(fields) == 2 {
		switch strings.ToLower(fields[1]) {
		case "asc":
		case "desc":
			return key + " desc", nil
		default:
			return "", bad
		}
	}
	return key, nil
}

// sinceQuery reads an RFC 3339 time.
func sinceQuery(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, registry.FieldError("since", "rfc3339", "%q must be an RFC 3339 time such as 2024-05-01T12:00:00Z", v)
	}
	return t, nil
}

// parseIfMatch reads If-Match: "N", W/"N" or N give a revision; * means
// "must exist".
func parseIfMatch(r *http.Request) (rev int64, star bool, err error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return 0, false, nil
	}
	v := strings.TrimSpace(vals[0])
	if len(vals) == 1 && v == "*" {
		return 0, true, nil
	}
	s := strings.TrimPrefix(v, "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if len(vals) != 1 || perr != nil || n <= 0 {
		return 0, false, &registry.Error{
			Code:    registry.CodeInvalidArgument,
			Field:   "If-Match",
			Rule:    "etag",
			Message: fmt.Sprintf("If-Match %q must be one ETag as returned by the server (such as \"3\") or *", strings.Join(vals, ", ")),
		}
	}
	return n, false, nil
}

// precondition turns If-Match into a store precondition. For * it checks
// that the resource exists (exists returns its not_found otherwise).
func precondition(r *http.Request, exists func() error) (registry.Precondition, error) {
	rev, star, err := parseIfMatch(r)
	if err != nil {
		return registry.Precondition{}, err
	}
	if star {
		if err := exists(); err != nil {
			if registry.ErrorCode(err) == registry.CodeNotFound {
				return registry.Precondition{}, registry.Errorf(registry.CodePreconditionFailed, "If-Match: * needs an existing resource: %s", registry.AsError(err).Message)
			}
			return registry.Precondition{}, err
		}
	}
	return registry.Precondition{IfRevision: rev}, nil
}
