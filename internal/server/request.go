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
// size limit, no unknown fields, no member given twice, member names that
// match exactly (case-sensitive), nothing after the object. Every request
// body the server reads goes through it.
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
	// What encoding/json let pass: duplicate members, names that match a
	// field only case-insensitively.
	return checkMemberNames(body, reflect.TypeOf(dst))
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

// ifMatch is a parsed If-Match header (RFC 9110 section 13.1.1).
type ifMatch struct {
	present bool
	// star is If-Match: *, which any current representation satisfies.
	star bool
	// revisions are the strong entity-tags that name one of our revisions
	// ("3"); the condition holds when the current revision is one of them.
	revisions []int64
}

// parseIfMatch reads If-Match: * or a list of entity-tags, possibly over
// several header lines. Only a malformed header is an error. A
// well-formed tag that is not one of ours ("abc") or a weak tag (W/"3":
// If-Match uses the strong comparison, which a weak tag never passes)
// simply never matches.
func parseIfMatch(r *http.Request) (ifMatch, error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return ifMatch{}, nil
	}
	m := ifMatch{present: true}
	bad := func() (ifMatch, error) {
		return ifMatch{}, &registry.Error{
			Code:    registry.CodeInvalidArgument,
			Field:   "If-Match",
			Rule:    "etag",
			Message: fmt.Sprintf("If-Match %q is malformed: send * or entity-tags as the server returns them in ETag (such as \"3\")", strings.Join(vals, ", ")),
		}
	}
	var members []string
	for _, v := range vals {
		for member := range strings.SplitSeq(v, ",") {
			// An empty list element (as in `"1", , "2"`) is allowed by
			// the list syntax, but a header of only commas is not.
			if member = strings.Trim(member, " \t"); member != "" {
				members = append(members, member)
			}
		}
	}
	if len(members) == 0 {
		return bad()
	}
	if len(members) == 1 && members[0] == "*" {
		m.star = true
		return m, nil
	}
	for _, tag := range members {
		weak := strings.HasPrefix(tag, "W/")
		opaque := strings.TrimPrefix(tag, "W/")
		if !validOpaqueTag(opaque) {
			// Includes * inside a list, and bare 3 without quotes.
			return bad()
		}
		if weak {
			continue
		}
		// Our tags are decimal revisions without leading zeros, or for an
		// endpoint with a rollout "<revision>.<seq>": If-Match compares
		// the revision, so a rollout step never fails a write made from
		// what a client read. Any other opaque tag is well-formed but
		// cannot match.
		s := opaque[1 : len(opaque)-1]
		if rev, seq, ok := strings.Cut(s, "."); ok {
			if n, err := strconv.ParseInt(seq, 10, 64); err != nil || n < 0 || strconv.FormatInt(n, 10) != seq {
				continue
			}
			s = rev
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && strconv.FormatInt(n, 10) == s {
			m.revisions = append(m.revisions, n)
		}
	}
	return m, nil
}

// validOpaqueTag: DQUOTE *etagc DQUOTE with etagc = %x21 / %x23-7E / obs-text.
func validOpaqueTag(s string) bool {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if c != 0x21 && (c < 0x23 || c == 0x7f) {
			return false
		}
	}
	return true
}

// precondition turns If-Match into a store precondition. For * it checks
// that the resource exists (exists returns its not_found otherwise). A
// list in which no tag can ever match (weak or foreign tags only) fails
// with precondition_failed at once.
func precondition(r *http.Request, exists func() error) (registry.Precondition, error) {
	m, err := parseIfMatch(r)
	if err != nil || !m.present {
		return registry.Precondition{}, err
	}
	if m.star {
		if err := exists(); err != nil {
			if registry.ErrorCode(err) == registry.CodeNotFound {
				return registry.Precondition{}, registry.Errorf(registry.CodePreconditionFailed, "If-Match: * needs an existing resource: %s", registry.AsError(err).Message)
			}
			return registry.Precondition{}, err
		}
		return registry.Precondition{}, nil
	}
	if len(m.revisions) == 0 {
		return registry.Precondition{}, registry.Errorf(registry.CodePreconditionFailed,
			"If-Match %q does not match the current ETag (a weak W/ tag never matches, If-Match compares strongly); read the resource again and send its ETag",
			strings.Join(r.Header.Values("If-Match"), ", "))
	}
	return registry.Precondition{IfRevision: m.revisions[0], OrRevisions: m.revisions[1:]}, nil
}
