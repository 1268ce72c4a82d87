package server

// Contract tests for openapi.yaml: the document is valid OpenAPI 3.0, its
// schemas mirror the JSON wire types of package registry, the server serves
// it as /openapi.json, and a scenario that calls every route of a real
// server (SQLite store, real tokens) validates each request it sends and
// each response it gets against it with kin-openapi. Every helper here is
// prefixed with "oa" so it cannot collide with the package's other tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/receipt"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

const oaSpecPath = "openapi.yaml"

func oaLoadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	data, err := os.ReadFile(oaSpecPath)
	if err != nil {
		t.Fatalf("read %s: %v", oaSpecPath, err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load %s: %v", oaSpecPath, err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := oaLoadSpec(t)
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Info.Title != "mlregistry" || doc.Info.Version != "1.0.0" || doc.Info.Description == "" {
		t.Errorf("info = %q %q (description %d bytes), want mlregistry 1.0.0 with a description", doc.Info.Title, doc.Info.Version, len(doc.Info.Description))
	}
	if _, err := gorillamux.NewRouter(doc); err != nil {
		t.Fatalf("gorillamux router: %v", err)
	}

	// Every route of the design, with exactly its methods.
	want := map[string][]string{
		"/api/v1/models":                                         {"GET", "POST"},
		"/api/v1/models/{model}":                                 {"DELETE", "GET", "PATCH"},
		"/api/v1/models/{model}/versions":                        {"GET", "POST"},
		"/api/v1/models/{model}/versions/{version}":              {"DELETE", "GET", "PATCH"},
		"/api/v1/models/{model}/stages":                          {"GET"},
		"/api/v1/models/{model}/stages/{stage}":                  {"DELETE", "GET", "PUT"},
		"/api/v1/models/{model}/stages/{stage}/history":          {"GET"},
		"/api/v1/endpoints":                                      {"GET", "POST"},
		"/api/v1/endpoints/{endpoint}":                           {"DELETE", "GET", "PATCH"},
		"/api/v1/endpoints/{endpoint}/rollout/{op}":              {"POST"},
		"/api/v1/models/{model}/versions/{version}/live-metrics": {"GET"},
		"/api/v1/models/{model}/compare":                         {"GET"},
		"/api/v1/endpoints/{endpoint}/live-metrics":              {"GET"},
		"/api/v1/endpoints/{endpoint}/feedback":                  {"POST"},
		"/api/v1/receipt-keys":                                   {"GET", "POST"},
		"/api/v1/events":                                         {"GET"},
		"/api/v1/tokens":                                         {"GET", "POST"},
		"/api/v1/tokens/{id}":                                    {"DELETE", "GET"},
		"/serve/{endpoint}/{path}":                               {"GET", "POST"},
		"/healthz":                                               {"GET"},
		"/readyz":                                                {"GET"},
		"/metrics":                                               {"GET"},
		"/openapi.json":                                          {"GET"},
	}
	got := map[string][]string{}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			got[path] = append(got[path], method)
			where := method + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: needs an operationId and a summary", where)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q is also used by %s", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where

			public := path == "/healthz" || path == "/readyz"
			if public != (op.Security != nil && len(*op.Security) == 0) {
				t.Errorf("%s: security override = %v; only /healthz and /readyz are public", where, op.Security)
			}
			for code, resp := range op.Responses.Map() {
				if code == "default" || code[0] == '2' {
					continue
				}
				if code == "304" {
					if len(resp.Value.Content) != 0 {
						t.Errorf("%s: 304 has no body", where)
					}
					continue
				}
				if resp.Value.Content.Get("application/problem+json") == nil || len(resp.Value.Content) != 1 {
					t.Errorf("%s: response %s must be application/problem+json only", where, code)
				}
			}
			if !public {
				if op.Responses.Status(401) == nil {
					t.Errorf("%s: 401 is not documented", where)
				}
			}
			if strings.HasPrefix(path, "/api/") {
				for _, code := range []int{400, 401, 500, 503} {
					if op.Responses.Status(code) == nil {
						t.Errorf("%s: %d is not documented", where, code)
					}
				}
				if strings.Contains(path, "{") && op.Responses.Status(404) == nil {
					t.Errorf("%s: 404 is not documented", where)
				}
				// Tokens have no revision (a revoke is their only change)
				// and their create is not replayable (the answer holds the
				// secret, which is never stored).
				tokens := strings.HasPrefix(path, "/api/v1/tokens")
				// Feedback is replay-safe by its receipts, and a receipt
				// key has no revision or URL of its own.
				notIdempotent := strings.HasSuffix(path, "/feedback") || path == "/api/v1/receipt-keys"
				switch {
				case notIdempotent && method == "POST":
					if op.Responses.Status(403) == nil {
						t.Errorf("%s: 403 is not documented", where)
					}
					if op.RequestBody != nil && op.Responses.Status(413) == nil {
						t.Errorf("%s: 413 is not documented", where)
					}
					if op.Parameters.GetByInAndName("header", "Idempotency-Key") != nil {
						t.Errorf("%s: must not offer Idempotency-Key", where)
					}
				case tokens && method == "POST":
					if op.Parameters.GetByInAndName("header", "Idempotency-Key") != nil {
						t.Errorf("%s: token creation must not offer Idempotency-Key (a replay would need the secret)", where)
					}
					if r := op.Responses.Status(201); r == nil || r.Value.Headers["Location"] == nil {
						t.Errorf("%s: 201 must document Location", where)
					}
				case tokens:
				case method == "PATCH" || method == "PUT" || method == "DELETE":
					for _, code := range []int{409, 412, 422} {
						if op.Responses.Status(code) == nil {
							t.Errorf("%s: %d is not documented", where, code)
						}
					}
					if op.Parameters.GetByInAndName("header", "If-Match") == nil {
						t.Errorf("%s: If-Match is not a parameter", where)
					}
					if op.Parameters.GetByInAndName("header", "Idempotency-Key") == nil {
						t.Errorf("%s: Idempotency-Key is not a parameter", where)
					}
					for code, r := range op.Responses.Map() {
						if code[0] == '2' && r.Value.Headers["Idempotent-Replayed"] == nil {
							t.Errorf("%s: %s must document Idempotent-Replayed", where, code)
						}
					}
				case method == "POST":
					for _, code := range []int{403, 409, 413, 422} {
						if op.Responses.Status(code) == nil {
							t.Errorf("%s: %d is not documented", where, code)
						}
					}
					if op.Parameters.GetByInAndName("header", "Idempotency-Key") == nil {
						t.Errorf("%s: Idempotency-Key is not a parameter", where)
					}
					if strings.HasSuffix(path, "/{op}") {
						// An operation on a resource answers it as it is now.
						r := op.Responses.Status(200)
						if r == nil || r.Value.Headers["ETag"] == nil || r.Value.Headers["Idempotent-Replayed"] == nil {
							t.Errorf("%s: 200 must document ETag and Idempotent-Replayed", where)
						}
						break
					}
					r := op.Responses.Status(201)
					if r == nil || r.Value.Headers["Location"] == nil || r.Value.Headers["ETag"] == nil || r.Value.Headers["Idempotent-Replayed"] == nil {
						t.Errorf("%s: 201 must document Location, ETag and Idempotent-Replayed", where)
					}
				}
			}
		}
	}
	for path, methods := range want {
		g := got[path]
		sort.Strings(g)
		if !slices.Equal(g, methods) {
			t.Errorf("path %s: methods %v, want %v", path, g, methods)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("path %s is not a route of the design", path)
		}
	}

	// The shared error responses.
	for _, name := range []string{"BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "PreconditionFailed", "TooLarge", "Unprocessable", "Internal", "Unavailable"} {
		if doc.Components.Responses[name] == nil {
			t.Errorf("components/responses/%s is missing", name)
		}
	}
	codes := doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum
	if len(codes) != 12 {
		t.Errorf("Problem.code enum has %d codes, want the 12 registry codes", len(codes))
	}
	for _, c := range codes {
		code := registry.Code(c.(string))
		if registry.HTTPStatus(code) == http.StatusInternalServerError && code != registry.CodeInternal {
			t.Errorf("Problem.code %q is not a registry code", code)
		}
	}
	if p := doc.Components.Schemas["Token"].Value.Properties; p["secret"] != nil || p["hash"] != nil {
		t.Errorf("a listed token must never carry its secret or hash")
	}
	for _, name := range []string{"ModelCreate", "ModelPatch", "ModelVersionCreate", "ModelVersionPatch", "StageAssign", "EndpointCreate", "EndpointPatch", "TokenCreate"} {
		ap := doc.Components.Schemas[name].Value.AdditionalProperties
		if ap.Has == nil || *ap.Has {
			t.Errorf("%s: request schemas must say additionalProperties: false (the server rejects unknown members)", name)
		}
	}
}

// TestOpenAPISchemasMirrorWireTypes compares each schema with the Go type
// the server encodes: the same JSON names, compatible types, and for
// answers a required list that is exactly the members without omitempty.
func TestOpenAPISchemasMirrorWireTypes(t *testing.T) {
	doc := oaLoadSpec(t)
	cases := []struct {
		schema   string
		typ      reflect.Type
		response bool // required = every member without omitempty
	}{
		{"Model", reflect.TypeFor[registry.Model](), true},
		{"StagePolicy", reflect.TypeFor[registry.StagePolicy](), true},
		{"ModelCreate", reflect.TypeFor[registry.ModelCreate](), false},
		{"ModelPatch", reflect.TypeFor[registry.ModelPatch](), false},
		{"ModelList", reflect.TypeFor[registry.Page[registry.Model]](), true},
		{"Lineage", reflect.TypeFor[registry.Lineage](), true},
		{"TensorSpec", reflect.TypeFor[registry.TensorSpec](), true},
		{"Signature", reflect.TypeFor[registry.Signature](), true},
		{"ModelVersion", reflect.TypeFor[registry.ModelVersion](), true},
		{"ModelVersionCreate", reflect.TypeFor[registry.ModelVersionCreate](), false},
		{"ModelVersionPatch", reflect.TypeFor[registry.ModelVersionPatch](), false},
		{"ModelVersionList", reflect.TypeFor[registry.Page[registry.ModelVersion]](), true},
		{"StageAssignment", reflect.TypeFor[registry.StageAssignment](), true},
		{"StageAssign", reflect.TypeFor[registry.StageAssign](), false},
		{"StageDryRun", reflect.TypeFor[registry.StageDryRun](), true},
		{"StageAssignmentList", reflect.TypeFor[registry.Page[registry.StageAssignment]](), true},
		{"StageHistoryEntry", reflect.TypeFor[registry.StageHistoryEntry](), true},
		{"StageHistoryList", reflect.TypeFor[registry.Page[registry.StageHistoryEntry]](), true},
		{"Route", reflect.TypeFor[registry.Route](), true},
		{"RolloutRoute", reflect.TypeFor[registry.Route](), true},
		{"RolloutSpec", reflect.TypeFor[registry.RolloutSpec](), false},
		{"PrometheusGate", reflect.TypeFor[registry.PrometheusGate](), false},
		{"GateResult", reflect.TypeFor[registry.GateResult](), true},
		{"EndpointRollout", reflect.TypeFor[registry.EndpointRollout](), true},
		{"RolloutControl", reflect.TypeFor[RolloutControl](), false},
		{"Guard", reflect.TypeFor[registry.Guard](), true},
		{"Endpoint", reflect.TypeFor[registry.Endpoint](), true},
		{"EndpointCreate", reflect.TypeFor[registry.EndpointCreate](), false},
		{"EndpointPatch", reflect.TypeFor[registry.EndpointPatch](), false},
		{"EndpointList", reflect.TypeFor[registry.Page[registry.Endpoint]](), true},
		{"Event", reflect.TypeFor[registry.Event](), true},
		{"EventList", reflect.TypeFor[registry.Page[registry.Event]](), true},
		{"Token", reflect.TypeFor[registry.Token](), true},
		{"TokenCreate", reflect.TypeFor[registry.TokenCreate](), false},
		{"TokenCreated", reflect.TypeFor[registry.TokenCreated](), true},
		{"TokenList", reflect.TypeFor[registry.Page[registry.Token]](), true},
		{"Problem", reflect.TypeFor[Problem](), true},
		{"FeedbackResult", reflect.TypeFor[registry.FeedbackResult](), true},
		{"FeedbackRejected", reflect.TypeFor[registry.FeedbackRejected](), true},
		{"LiveMetric", reflect.TypeFor[registry.LiveMetric](), true},
		{"LiveMetrics", reflect.TypeFor[registry.LiveMetrics](), true},
		{"VersionLiveMetrics", reflect.TypeFor[registry.VersionLiveMetrics](), true},
		{"Comparison", reflect.TypeFor[registry.Comparison](), true},
		{"MetricComparison", reflect.TypeFor[registry.MetricComparison](), true},
		{"LiveComparison", reflect.TypeFor[registry.LiveComparison](), true},
		{"ValueComparison", reflect.TypeFor[registry.ValueComparison](), true},
		{"SignatureComparison", reflect.TypeFor[registry.SignatureComparison](), true},
		{"VersionStages", reflect.TypeFor[registry.VersionStages](), true},
		{"ReceiptKey", reflect.TypeFor[registry.ReceiptKeyInfo](), true},
	}
	for _, c := range cases {
		ref := doc.Components.Schemas[c.schema]
		if ref == nil {
			t.Errorf("components/schemas/%s is missing", c.schema)
			continue
		}
		oaCompareStruct(t, c.schema, ref.Value, c.typ, c.response)
	}
}

func oaCompareStruct(t *testing.T, where string, s *openapi3.Schema, typ reflect.Type, response bool) {
	t.Helper()
	if !s.Type.Is(openapi3.TypeObject) {
		t.Errorf("%s: type %v, want object", where, s.Type)
		return
	}
	seen := map[string]bool{}
	for _, mf := range oaMembers(typ, false) {
		f, name, omitempty := mf.field, mf.name, mf.omitempty
		seen[name] = true
		p := s.Properties[name]
		if p == nil {
			t.Errorf("%s: member %q (Go %s.%s) is not in the schema", where, name, typ.Name(), f.Name)
			continue
		}
		oaCompareType(t, where+"."+name, p.Value, f.Type)
		if response && slices.Contains(s.Required, name) == omitempty {
			if omitempty {
				t.Errorf("%s: %q is omitempty in Go, so it must not be required", where, name)
			} else {
				t.Errorf("%s: %q is always sent, so it must be required", where, name)
			}
		}
	}
	for name := range s.Properties {
		if !seen[name] {
			t.Errorf("%s: schema member %q has no field in Go %s", where, name, typ.Name())
		}
	}
	for _, name := range s.Required {
		if !seen[name] {
			t.Errorf("%s: required %q is not a member", where, name)
		}
	}
}

type oaMember struct {
	field     reflect.StructField
	name      string
	omitempty bool
}

// oaMembers lists the JSON members of struct typ as encoding/json sees
// them: an embedded struct without a tag lends its members, and those of
// an embedded pointer are absent when it is nil, so never always sent.
func oaMembers(typ reflect.Type, optional bool) []oaMember {
	var out []oaMember
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			et, opt := f.Type, optional
			if et.Kind() == reflect.Pointer {
				et, opt = et.Elem(), true
			}
			if et.Kind() == reflect.Struct {
				out = append(out, oaMembers(et, opt)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, oaMember{field: f, name: name, omitempty: optional || strings.Contains(","+opts+",", ",omitempty,")})
	}
	return out
}

func oaCompareType(t *testing.T, where string, s *openapi3.Schema, typ reflect.Type) {
	t.Helper()
	if s.Type.IsEmpty() && len(s.AllOf) == 1 {
		s = s.AllOf[0].Value
	}
	is := func(want, format string) {
		t.Helper()
		if !s.Type.Is(want) {
			t.Errorf("%s: schema type %v, Go %s wants %s", where, s.Type.Slice(), typ, want)
		}
		if format != "" && s.Format != format {
			t.Errorf("%s: schema format %q, Go %s wants %s", where, s.Format, typ, format)
		}
	}
	switch {
	case typ == reflect.TypeFor[time.Time]():
		is(openapi3.TypeString, "date-time")
		return
	case typ == reflect.TypeFor[json.RawMessage]():
		if !s.Type.IsEmpty() {
			t.Errorf("%s: arbitrary JSON must have no type, has %v", where, s.Type.Slice())
		}
		return
	}
	switch typ.Kind() {
	case reflect.Pointer:
		oaCompareType(t, where, s, typ.Elem())
	case reflect.String:
		is(openapi3.TypeString, "")
	case reflect.Bool:
		is(openapi3.TypeBoolean, "")
	case reflect.Int64:
		is(openapi3.TypeInteger, "int64")
	case reflect.Int, reflect.Int32:
		is(openapi3.TypeInteger, "")
	case reflect.Float64:
		is(openapi3.TypeNumber, "")
	case reflect.Map:
		is(openapi3.TypeObject, "")
		if s.AdditionalProperties.Schema == nil {
			t.Errorf("%s: a Go map needs additionalProperties with a schema", where)
			return
		}
		oaCompareType(t, where+"[*]", s.AdditionalProperties.Schema.Value, typ.Elem())
	case reflect.Slice:
		is(openapi3.TypeArray, "")
		if s.Items == nil {
			t.Errorf("%s: array without items", where)
			return
		}
		oaCompareType(t, where+"[]", s.Items.Value, typ.Elem())
	case reflect.Struct:
		// Nested structs have their own entry in the table above.
		is(openapi3.TypeObject, "")
	default:
		t.Errorf("%s: no rule for Go kind %s", where, typ.Kind())
	}
}

// oaEnv is a real server on a loopback port plus the spec's router.
type oaEnv struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string
	client *http.Client
	store  io.Closer

	admin, reader, ci string // token secrets
	receipts          *receipt.Keyring

	// seen records "METHOD /path/{template} STATUS" of every call.
	seen map[string]bool
}

func oaNewEnv(t *testing.T) *oaEnv {
	t.Helper()
	ctx := context.Background()
	doc := oaLoadSpec(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "r.db"), sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })

	e := &oaEnv{t: t, doc: doc, router: router, store: st, seen: map[string]bool{}}
	token := func(name string, scope registry.Scope, stages ...string) string {
		secret, hash, err := registry.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateToken(ctx, registry.Actor{Name: "test"}, registry.Token{Name: name, Scope: scope, Stages: stages, Hash: hash}); err != nil {
			t.Fatalf("create token %s: %v", name, err)
		}
		return secret
	}
	e.admin = token("admin", registry.ScopeAdmin)
	e.reader = token("reader", registry.ScopeRead)
	e.ci = token("ci", registry.ScopeWrite, "staging")

	ts := httptest.NewUnstartedServer(nil)
	e.base = "http://" + ts.Listener.Addr().String()
	e.receipts, err = receipt.Open(ctx, st, receipt.Options{})
	if err != nil {
		t.Fatalf("receipt keys: %v", err)
	}
	srv, err := New(Options{Store: st, Logger: nil, Now: time.Now, PublicURL: e.base, Receipts: e.receipts})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
	})
	e.client = ts.Client()
	return e
}

// oaReq is one call. as is the token secret ("" = admin, oaNoAuth = none).
type oaReq struct {
	method, path string
	body         any    // encoded as JSON
	raw          []byte // sent as is (with Content-Type application/json)
	as           string
	header       map[string]string
	// invalid marks a request that breaks the spec on purpose (to see the
	// server refuse it): its validation must fail. The answer is still
	// validated.
	invalid bool
}

const oaNoAuth = "<none>"

type oaResp struct {
	status int
	header http.Header
	body   []byte
}

func (r *oaResp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem decodes a problem+json answer and checks its code.
func (r *oaResp) problem(t *testing.T, code registry.Code) Problem {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Errorf("problem body %q: %v", r.body, err)
		return p
	}
	if p.Code != code {
		t.Errorf("problem code %q (%s), want %q", p.Code, p.Detail, code)
	}
	return p
}

func oaAuthenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "bearerAuth" {
		return in.NewError(fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName))
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); !ok || tok == "" {
		return in.NewError(errors.New("no bearer token"))
	}
	return nil
}

// do sends r, validates the request and the answer against the spec and
// checks the status.
func (e *oaEnv) do(r oaReq, want int) *oaResp {
	t := e.t
	t.Helper()
	var body []byte
	switch {
	case r.raw != nil:
		body = r.raw
	case r.body != nil:
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(r.method, e.base+r.path, rd)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		switch r.as {
		case "":
			req.Header.Set("Authorization", "Bearer "+e.admin)
		case oaNoAuth:
		default:
			req.Header.Set("Authorization", "Bearer "+r.as)
		}
		for k, v := range r.header {
			req.Header.Set(k, v)
		}
		return req
	}
	call := r.method + " " + r.path

	vreq := newReq()
	route, pathParams, err := e.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s: the spec has no route for it: %v", call, err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    oaAuthenticate,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: pathParams, Route: route, Options: opts}
	verr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case r.invalid && verr == nil:
		t.Errorf("%s: the request was meant to break the spec, but it validates", call)
	case !r.invalid && verr != nil:
		t.Errorf("%s: the request does not validate against the spec: %v", call, verr)
	}

	res, err := e.client.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", call, err)
	}
	out := &oaResp{status: res.StatusCode, header: res.Header, body: data}
	e.seen[fmt.Sprintf("%s %s %d", route.Method, route.Path, res.StatusCode)] = true

	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                opts,
	}
	rin.SetBodyBytes(data)
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		t.Errorf("%s: answer %d does not match the spec: %v\nbody: %s", call, res.StatusCode, err, oaShort(data))
	}
	if res.StatusCode != want {
		t.Errorf("%s: status %d, want %d; body: %s", call, res.StatusCode, want, oaShort(data))
	}
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s: error answer has Content-Type %q", call, ct)
		}
	}
	return out
}

func oaShort(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

func oaETag(t *testing.T, r *oaResp) string {
	t.Helper()
	et := r.header.Get("ETag")
	if et == "" {
		t.Errorf("no ETag in the answer")
	}
	return et
}

// oaSHA returns a valid checksum made of one repeated hex digit.
func oaSHA(digit string) string { return "sha256:" + strings.Repeat(digit, 64) }

// TestOpenAPIServedDocument checks that GET /openapi.json serves the same
// document as openapi.yaml.
func TestOpenAPIServedDocument(t *testing.T) {
	e := oaNewEnv(t)
	res := e.do(oaReq{method: "GET", path: "/openapi.json"}, http.StatusOK)
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	served, err := openapi3.NewLoader().LoadFromData(res.body)
	if err != nil {
		t.Fatalf("load /openapi.json: %v", err)
	}
	if err := served.Validate(context.Background()); err != nil {
		t.Errorf("/openapi.json is not valid: %v", err)
	}
	canon := func(doc *openapi3.T) any {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !reflect.DeepEqual(canon(served), canon(e.doc)) {
		t.Errorf("/openapi.json differs from openapi.yaml")
	}
}

// TestOpenAPIScenario drives every route of the API and checks each call
// against the spec. /serve is left out: gateway answers are validated by a
// later issue's tests (they need upstreams).
func TestOpenAPIScenario(t *testing.T) {
	e := oaNewEnv(t)
	const (
		models   = "/api/v1/models"
		churn    = "/api/v1/models/churn"
		versions = "/api/v1/models/churn/versions"
		stages   = "/api/v1/models/churn/stages"
	)

	// Operations.
	e.do(oaReq{method: "GET", path: "/healthz", as: oaNoAuth}, 200)
	e.do(oaReq{method: "GET", path: "/readyz", as: oaNoAuth}, 200)
	if res := e.do(oaReq{method: "GET", path: "/metrics"}, 200); !bytes.Contains(res.body, []byte("# TYPE")) {
		t.Errorf("/metrics does not look like Prometheus text: %s", oaShort(res.body))
	}
	e.do(oaReq{method: "GET", path: "/openapi.json"}, 200)
	e.do(oaReq{method: "GET", path: "/metrics", as: oaNoAuth, invalid: true}, 401)

	// Authentication.
	e.do(oaReq{method: "GET", path: models, as: oaNoAuth, invalid: true}, 401).problem(t, registry.CodeUnauthenticated)
	e.do(oaReq{method: "GET", path: models, as: "mlr_notarealtoken"}, 401).problem(t, registry.CodeUnauthenticated)
	e.do(oaReq{method: "POST", path: models, as: e.reader, body: map[string]any{"name": "nope"}}, 403).problem(t, registry.CodePermissionDenied)

	// Models: create with an idempotency key, replay, mismatch.
	churnBody := map[string]any{
		"name":        "churn",
		"description": "churn prediction",
		"owner":       "ds-team",
		"tags":        map[string]string{"team": "ds"},
		"stage_policies": map[string]any{
			"production": map[string]any{"require_stage": "staging", "min_metrics": map[string]float64{"auc": 0.85}},
			"staging":    map[string]any{},
		},
	}
	idem := map[string]string{"Idempotency-Key": "create-churn-1", "X-Request-ID": "req-create-churn"}
	res := e.do(oaReq{method: "POST", path: models, body: churnBody, header: idem}, 201)
	var m registry.Model
	res.decode(t, &m)
	if m.Name != "churn" || m.Owner != "ds-team" || m.Tags["team"] != "ds" || m.Revision < 1 {
		t.Errorf("created model = %+v", m)
	}
	if loc := res.header.Get("Location"); !strings.HasSuffix(loc, churn) {
		t.Errorf("Location %q, want .../api/v1/models/churn", loc)
	}
	if got := res.header.Get("X-Request-ID"); got != "req-create-churn" {
		t.Errorf("X-Request-ID %q, want the one sent", got)
	}
	etag := oaETag(t, res)
	replay := e.do(oaReq{method: "POST", path: models, body: churnBody, header: idem}, 201)
	if replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay has no Idempotent-Replayed: true")
	}
	if !bytes.Equal(bytes.TrimSpace(replay.body), bytes.TrimSpace(res.body)) {
		t.Errorf("replay body differs:\n%s\n%s", replay.body, res.body)
	}
	other := map[string]any{"name": "churn", "owner": "someone-else"}
	e.do(oaReq{method: "POST", path: models, body: other, header: idem}, 422).problem(t, registry.CodeIdempotencyMismatch)
	e.do(oaReq{method: "POST", path: models, body: map[string]any{"name": "churn"}}, 409).problem(t, registry.CodeAlreadyExists)

	// Models: invalid requests.
	p := e.do(oaReq{method: "POST", path: models, body: map[string]any{"name": "Bad Name"}, invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	if p.Field != "name" || p.Rule != "pattern" {
		t.Errorf("bad name problem: field %q rule %q, want name/pattern", p.Field, p.Rule)
	}
	e.do(oaReq{method: "POST", path: models, body: map[string]any{"name": "x", "colour": "red"}, invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	e.do(oaReq{method: "POST", path: models, raw: []byte(`{"name":`), invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	e.do(oaReq{method: "POST", path: models, body: map[string]any{"name": "policy-bad", "stage_policies": map[string]any{"production": map[string]any{"min_soak": "24h"}}}}, 400).problem(t, registry.CodeInvalidArgument)
	big := map[string]any{"name": "big", "description": strings.Repeat("x", 2<<20)}
	e.do(oaReq{method: "POST", path: models, body: big, invalid: true}, 413).problem(t, registry.CodeTooLarge)

	// Models: a bare model answers {} maps, more models for paging.
	res = e.do(oaReq{method: "POST", path: models, body: map[string]any{"name": "fraud"}}, 201)
	var bare registry.Model
	res.decode(t, &bare)
	if bare.Tags == nil || bare.StagePolicies == nil {
		t.Errorf("bare model has nil maps: %s", res.body)
	}
	e.do(oaReq{method: "POST", path: models, body: map[string]any{"name": "ltv", "owner": "growth"}}, 201)

	var names []string
	next := ""
	for i := 0; i < 5; i++ {
		path := models + "?page_size=2"
		if next != "" {
			path += "&page_token=" + url.QueryEscape(next)
		}
		var page registry.Page[registry.Model]
		e.do(oaReq{method: "GET", path: path}, 200).decode(t, &page)
		for _, it := range page.Items {
			names = append(names, it.Name)
		}
		if next = page.NextPageToken; next == "" {
			break
		}
	}
	if !slices.Equal(names, []string{"churn", "fraud", "ltv"}) {
		t.Errorf("paged model names %v", names)
	}
	e.do(oaReq{method: "GET", path: models}, 200)
	e.do(oaReq{method: "GET", path: models + "?page_size=5000", invalid: true}, 400).problem(t, registry.CodeInvalidArgument)

	res = e.do(oaReq{method: "GET", path: churn}, 200)
	if got := oaETag(t, res); got != etag {
		t.Errorf("GET ETag %q, create ETag %q", got, etag)
	}
	e.do(oaReq{method: "GET", path: models + "/nope"}, 404).problem(t, registry.CodeNotFound)
	e.do(oaReq{method: "GET", path: models + "/Not%20A%20Name", invalid: true}, 400)

	e.do(oaReq{method: "PATCH", path: churn, body: map[string]any{"owner": "x"}, header: map[string]string{"If-Match": `"999"`}}, 412).problem(t, registry.CodePreconditionFailed)
	patchBody := map[string]any{"description": "churn v2", "tags": map[string]string{"team": "ds", "tier": "1"}}
	patchKey := map[string]string{"If-Match": etag, "Idempotency-Key": "patch-churn-1"}
	res = e.do(oaReq{method: "PATCH", path: churn, body: patchBody, header: patchKey}, 200)
	res.decode(t, &m)
	if m.Description != "churn v2" || m.Tags["tier"] != "1" || m.Owner != "ds-team" {
		t.Errorf("patched model = %+v", m)
	}
	if got := oaETag(t, res); got == etag {
		t.Errorf("ETag did not change on PATCH")
	}
	// The retry of a conditional write (its answer lost) with the same key
	// gets the first answer, not 412 from the revision it moved; the key
	// for another request is 422.
	replay = e.do(oaReq{method: "PATCH", path: churn, body: patchBody, header: patchKey}, 200)
	if replay.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(replay.body, res.body) || oaETag(t, replay) != oaETag(t, res) {
		t.Errorf("PATCH replay = %v %s", replay.header, oaShort(replay.body))
	}
	e.do(oaReq{method: "PATCH", path: churn, body: map[string]any{"owner": "x"}, header: patchKey}, 422).problem(t, registry.CodeIdempotencyMismatch)
	e.do(oaReq{method: "PATCH", path: churn, body: map[string]any{"name": "renamed"}, invalid: true}, 400)
	e.do(oaReq{method: "PATCH", path: models + "/nope", body: map[string]any{"owner": "x"}}, 404)
	e.do(oaReq{method: "PATCH", path: churn, as: e.reader, body: map[string]any{"owner": "x"}}, 403)

	// Versions.
	sig := map[string]any{
		"inputs":  []map[string]any{{"name": "features", "dtype": "float32", "shape": []int{-1, 12}}},
		"outputs": []map[string]any{{"name": "score", "dtype": "float32", "shape": []int{}}},
	}
	v1Body := map[string]any{
		"source":     "s3://models/churn/1/model.onnx",
		"checksum":   oaSHA("1"),
		"format":     "onnx",
		"parameters": map[string]string{"epochs": "10"},
		"metrics":    map[string]float64{"auc": 0.91, "loss": 0.2},
		"lineage":    map[string]string{"run_id": "run-1", "git_commit": "3f2c1e0"},
		"signature":  sig,
		"tags":       map[string]string{"team": "ds"},
	}
	res = e.do(oaReq{method: "POST", path: versions, body: v1Body, header: map[string]string{"Idempotency-Key": "churn-v1"}}, 201)
	var v1 registry.ModelVersion
	res.decode(t, &v1)
	if v1.Version != 1 || v1.CreatedBy != "admin" || v1.Stages == nil || v1.Signature == nil {
		t.Errorf("version 1 = %s", res.body)
	}
	if loc := res.header.Get("Location"); !strings.HasSuffix(loc, versions+"/1") {
		t.Errorf("Location %q, want .../versions/1", loc)
	}
	// A bare version: maps are {}, stages [].
	res = e.do(oaReq{method: "POST", path: versions, body: map[string]any{"source": "gs://models/churn/2", "checksum": oaSHA("2"), "format": "sklearn", "metrics": map[string]float64{"auc": 0.80}}}, 201)
	var v2 registry.ModelVersion
	res.decode(t, &v2)
	if v2.Version != 2 || v2.Parameters == nil || v2.Tags == nil || v2.Stages == nil {
		t.Errorf("version 2 = %s", res.body)
	}
	res = e.do(oaReq{method: "POST", path: versions, body: map[string]any{
		"source": "https://example.com/churn/3.pt", "checksum": oaSHA("3"), "format": "pytorch",
		"metrics":   map[string]float64{"auc": 0.95},
		"signature": map[string]any{"inputs": []map[string]any{{"name": "x", "dtype": "int64", "shape": []int{}}}, "outputs": []any{}},
		"flagged":   true, "flag_reason": "leaky feature",
	}}, 201)
	var v3 registry.ModelVersion
	res.decode(t, &v3)

	e.do(oaReq{method: "POST", path: versions, body: map[string]any{"source": "s3://dup", "checksum": oaSHA("1"), "format": "onnx"}}, 409).problem(t, registry.CodeAlreadyExists)
	e.do(oaReq{method: "POST", path: versions, body: map[string]any{"source": "s3://x", "checksum": "md5:abc", "format": "onnx"}, invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	e.do(oaReq{method: "POST", path: versions, body: map[string]any{"source": "s3://x", "checksum": oaSHA("4"), "format": "zip"}, invalid: true}, 400)
	e.do(oaReq{method: "POST", path: models + "/nope/versions", body: map[string]any{"source": "s3://x", "checksum": oaSHA("5"), "format": "onnx"}}, 404).problem(t, registry.CodeNotFound)

	res = e.do(oaReq{method: "GET", path: versions + "/1"}, 200)
	if got := oaETag(t, res); got != `"`+strconv.FormatInt(v1.Revision, 10)+`"` {
		t.Errorf("version ETag %q, revision %d", got, v1.Revision)
	}
	e.do(oaReq{method: "GET", path: versions + "/99"}, 404).problem(t, registry.CodeNotFound)
	e.do(oaReq{method: "GET", path: versions + "/abc", invalid: true}, 400)
	e.do(oaReq{method: "GET", path: versions + "/0", invalid: true}, 400)

	res = e.do(oaReq{method: "PATCH", path: versions + "/2", body: map[string]any{"flagged": true, "flag_reason": "bad calibration", "tags": map[string]string{"team": "ds"}}}, 200)
	res.decode(t, &v2)
	if !v2.Flagged || v2.FlagReason != "bad calibration" {
		t.Errorf("patched version 2 = %s", res.body)
	}
	oaETag(t, res)
	e.do(oaReq{method: "PATCH", path: versions + "/2", body: map[string]any{"checksum": oaSHA("9")}, invalid: true}, 400)
	res = e.do(oaReq{method: "PATCH", path: versions + "/2", as: e.ci, body: map[string]any{"add_metrics": map[string]float64{"f1": 0.8}}}, 200)
	res.decode(t, &v2)
	if v2.Metrics["f1"] != 0.8 {
		t.Errorf("version 2 after add_metrics = %s", res.body)
	}
	if p := e.do(oaReq{method: "PATCH", path: versions + "/2", body: map[string]any{"add_metrics": map[string]float64{"f1": 0.9}}}, 400).problem(t, registry.CodeInvalidArgument); p.Field != "add_metrics.f1" || p.Rule != "immutable" {
		t.Errorf("changing a recorded metric: %+v", p)
	}
	e.do(oaReq{method: "PATCH", path: versions + "/2", body: map[string]any{"add_metrics": map[string]any{"f1": "high"}}, invalid: true}, 400)
	e.do(oaReq{method: "PATCH", path: versions + "/2", body: map[string]any{"description": "x"}, header: map[string]string{"If-Match": `"999"`}}, 412)
	e.do(oaReq{method: "PATCH", path: versions + "/99", body: map[string]any{"description": "x"}}, 404)

	// Stages.
	e.do(oaReq{method: "GET", path: stages + "/staging"}, 404).problem(t, registry.CodeNotFound)
	res = e.do(oaReq{method: "PUT", path: stages + "/staging", as: e.ci, body: map[string]any{"version": 1, "reason": "candidate"}}, 200)
	var sa registry.StageAssignment
	res.decode(t, &sa)
	if sa.Version != 1 || sa.PreviousVersion != 0 || sa.AssignedBy != "ci" {
		t.Errorf("staging assignment = %s", res.body)
	}
	stagingETag := oaETag(t, res)
	e.do(oaReq{method: "PUT", path: stages + "/production", as: e.ci, body: map[string]any{"version": 1}}, 403).problem(t, registry.CodePermissionDenied)
	e.do(oaReq{method: "PUT", path: stages + "/production", as: e.reader, body: map[string]any{"version": 1}}, 403)

	res = e.do(oaReq{method: "PUT", path: stages + "/production?dry_run=true", body: map[string]any{"version": 1}}, 200)
	var dry registry.StageDryRun
	res.decode(t, &dry)
	if !dry.Allowed || dry.Version != 1 || dry.Stage != "production" {
		t.Errorf("dry run = %s", res.body)
	}
	e.do(oaReq{method: "GET", path: stages + "/production"}, 404)
	p = e.do(oaReq{method: "PUT", path: stages + "/production?dry_run=true", body: map[string]any{"version": 2}}, 422).problem(t, registry.CodePolicyViolation)
	if p.Rule != "flagged" {
		t.Errorf("dry run of a flagged version: rule %q, want flagged", p.Rule)
	}
	e.do(oaReq{method: "PUT", path: stages + "/production", body: map[string]any{"version": 3}}, 422).problem(t, registry.CodePolicyViolation)
	res = e.do(oaReq{method: "PUT", path: stages + "/production", body: map[string]any{"version": 1, "reason": "ship it"}}, 200)
	prodETag := oaETag(t, res)
	e.do(oaReq{method: "PUT", path: stages + "/production", body: map[string]any{"version": 1}, header: map[string]string{"If-Match": `"999"`}}, 412).problem(t, registry.CodePreconditionFailed)
	e.do(oaReq{method: "PUT", path: stages + "/production", body: map[string]any{"version": 0}, invalid: true}, 400)
	e.do(oaReq{method: "PUT", path: stages + "/Production", body: map[string]any{"version": 1}, invalid: true}, 400)
	e.do(oaReq{method: "PUT", path: stages + "/qa", body: map[string]any{"version": 99}}, 404)
	e.do(oaReq{method: "PUT", path: stages + "/qa", body: map[string]any{"version": 1, "extra": true}, invalid: true}, 400)

	res = e.do(oaReq{method: "GET", path: stages + "/production"}, 200)
	if got := oaETag(t, res); got != prodETag {
		t.Errorf("GET stage ETag %q, PUT ETag %q", got, prodETag)
	}
	var stageList registry.Page[registry.StageAssignment]
	e.do(oaReq{method: "GET", path: stages}, 200).decode(t, &stageList)
	if len(stageList.Items) != 2 {
		t.Errorf("stages list = %+v", stageList)
	}
	e.do(oaReq{method: "GET", path: models + "/nope/stages"}, 404)
	e.do(oaReq{method: "GET", path: stages + "/production/history"}, 200)
	e.do(oaReq{method: "GET", path: stages + "/staging/history?page_size=1"}, 200)

	// Version lists with every filter.
	var vl registry.Page[registry.ModelVersion]
	e.do(oaReq{method: "GET", path: versions}, 200).decode(t, &vl)
	if len(vl.Items) != 3 {
		t.Errorf("version list has %d items", len(vl.Items))
	}
	e.do(oaReq{method: "GET", path: versions + "?stage=production"}, 200).decode(t, &vl)
	if len(vl.Items) != 1 || vl.Items[0].Version != 1 || !slices.Equal(vl.Items[0].Stages, []string{"production", "staging"}) {
		t.Errorf("versions in production = %+v", vl.Items)
	}
	e.do(oaReq{method: "GET", path: versions + "?flagged=true&order_by=" + url.QueryEscape("metrics.auc desc")}, 200).decode(t, &vl)
	if len(vl.Items) != 2 || vl.Items[0].Version != 3 || vl.Items[1].Version != 2 {
		t.Errorf("flagged versions by auc desc = %+v", vl.Items)
	}
	e.do(oaReq{method: "GET", path: versions + "?tag=" + url.QueryEscape("team=ds") + "&page_size=1"}, 200).decode(t, &vl)
	if len(vl.Items) != 1 || vl.NextPageToken == "" {
		t.Errorf("tagged versions page = %+v", vl)
	}
	e.do(oaReq{method: "GET", path: versions + "?flagged=maybe", invalid: true}, 400)
	e.do(oaReq{method: "GET", path: models + "/nope/versions"}, 404)

	// Deletes that are refused.
	e.do(oaReq{method: "DELETE", path: versions + "/1"}, 409).problem(t, registry.CodeConflict)
	e.do(oaReq{method: "DELETE", path: churn}, 409).problem(t, registry.CodeConflict)
	e.do(oaReq{method: "DELETE", path: churn + "?force=true", as: e.ci}, 403).problem(t, registry.CodePermissionDenied)
	e.do(oaReq{method: "DELETE", path: versions + "/3", header: map[string]string{"If-Match": `"999"`}}, 412).problem(t, registry.CodePreconditionFailed)

	// Endpoints.
	const endpoints = "/api/v1/endpoints"
	epBody := map[string]any{
		"name":  "churn-api",
		"model": "churn",
		"routes": []map[string]any{
			{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9/v1", "weight": 90},
			{"name": "canary", "version": 1, "upstream_url": "http://127.0.0.1:9/v1b", "weight": 10},
		},
		"sticky_header": "X-User",
		"guard":         map[string]any{"max_error_rate": 0.05, "min_requests": 100, "window": "5m"},
	}
	// A dry run (any token) answers the endpoint as it would be, and
	// whether the caller may create it.
	var epDry registry.EndpointDryRun
	e.do(oaReq{method: "POST", path: endpoints + "?dry_run=true", as: e.reader, body: epBody}, 200).decode(t, &epDry)
	if epDry.Permitted || epDry.PermissionRule != "scope" || epDry.Name != "churn-api" {
		t.Errorf("a read token's dry run: %+v", epDry)
	}
	e.do(oaReq{method: "POST", path: endpoints + "?dry_run=true", body: epBody}, 200).decode(t, &epDry)
	if !epDry.Permitted {
		t.Errorf("an admin's dry run: %+v", epDry)
	}
	res = e.do(oaReq{method: "POST", path: endpoints, body: epBody, header: map[string]string{"Idempotency-Key": "ep-1"}}, 201)
	var ep registry.Endpoint
	res.decode(t, &ep)
	if ep.URL != e.base+"/serve/churn-api/" || ep.Status != registry.EndpointStatusHealthy || ep.Guard == nil || len(ep.Routes) != 2 {
		t.Errorf("endpoint = %s", res.body)
	}
	if loc := res.header.Get("Location"); !strings.HasSuffix(loc, endpoints+"/churn-api") {
		t.Errorf("Location %q", loc)
	}
	epETag := oaETag(t, res)
	e.do(oaReq{method: "POST", path: endpoints, body: epBody}, 409).problem(t, registry.CodeAlreadyExists)
	bad := map[string]any{"name": "bad-weights", "model": "churn", "routes": []map[string]any{{"name": "only", "version": 1, "upstream_url": "http://127.0.0.1:9", "weight": 90}}}
	p = e.do(oaReq{method: "POST", path: endpoints, body: bad}, 400).problem(t, registry.CodeInvalidArgument)
	if p.Rule != "weights_sum" {
		t.Errorf("weights problem rule %q, want weights_sum", p.Rule)
	}
	e.do(oaReq{method: "POST", path: endpoints, body: map[string]any{"name": "w", "model": "churn", "routes": []map[string]any{{"name": "a", "version": 1, "upstream_url": "http://h", "weight": 101}}}, invalid: true}, 400)
	// A model or version named in the body that does not exist is a bad
	// argument (400), not a missing URL resource (404).
	p = e.do(oaReq{method: "POST", path: endpoints, body: map[string]any{"name": "orphan", "model": "nope", "routes": []map[string]any{{"name": "a", "version": 1, "upstream_url": "http://h", "weight": 100}}}}, 400).problem(t, registry.CodeInvalidArgument)
	if p.Field != "model" || p.Rule != "exists" {
		t.Errorf("endpoint of a missing model: field %q rule %q, want model/exists", p.Field, p.Rule)
	}
	e.do(oaReq{method: "POST", path: endpoints, body: map[string]any{"name": "nover", "model": "churn", "routes": []map[string]any{{"name": "a", "version": 99, "upstream_url": "http://h", "weight": 100}}}}, 400).problem(t, registry.CodeInvalidArgument)
	p = e.do(oaReq{method: "POST", path: endpoints, body: map[string]any{"name": "flagged", "model": "churn", "routes": []map[string]any{{"name": "a", "version": 2, "upstream_url": "http://h", "weight": 100}}}}, 422).problem(t, registry.CodePolicyViolation)
	if p.Rule != "flagged" {
		t.Errorf("endpoint routing to a flagged version: rule %q, want flagged", p.Rule)
	}
	e.do(oaReq{method: "POST", path: endpoints, as: e.reader, body: epBody}, 403)

	e.do(oaReq{method: "GET", path: endpoints}, 200)
	e.do(oaReq{method: "GET", path: endpoints + "?page_size=1"}, 200)
	res = e.do(oaReq{method: "GET", path: endpoints + "/churn-api"}, 200)
	if got := oaETag(t, res); got != epETag {
		t.Errorf("GET endpoint ETag %q, create ETag %q", got, epETag)
	}
	e.do(oaReq{method: "GET", path: endpoints + "/nope"}, 404)
	res = e.do(oaReq{method: "PATCH", path: endpoints + "/churn-api", body: map[string]any{
		"routes": []map[string]any{{"name": "stable", "version": 1, "upstream_url": "https://churn.internal", "weight": 100}},
	}, header: map[string]string{"If-Match": epETag}}, 200)
	epETag = oaETag(t, res)
	res = e.do(oaReq{method: "PATCH", path: endpoints + "/churn-api", body: map[string]any{"clear_guard": true, "sticky_header": ""}}, 200)
	var cleared registry.Endpoint
	res.decode(t, &cleared)
	if cleared.Guard != nil || cleared.StickyHeader != "" {
		t.Errorf("endpoint after clear_guard = %s", res.body)
	}
	e.do(oaReq{method: "PATCH", path: endpoints + "/churn-api", body: map[string]any{"clear_guard": true, "guard": map[string]any{"max_error_rate": 0.1, "min_requests": 1, "window": "1m"}}}, 400)
	e.do(oaReq{method: "PATCH", path: endpoints + "/churn-api", body: map[string]any{"sticky_header": "X-User"}, header: map[string]string{"If-Match": epETag}}, 412)
	e.do(oaReq{method: "PATCH", path: endpoints + "/nope", body: map[string]any{"sticky_header": "X-User"}}, 404)
	e.do(oaReq{method: "PATCH", path: endpoints + "/churn-api", body: map[string]any{"routes": []map[string]any{{"name": "a", "version": 2, "upstream_url": "http://h", "weight": 100}}}}, 422).problem(t, registry.CodePolicyViolation)
	e.do(oaReq{method: "PATCH", path: endpoints + "/churn-api", body: map[string]any{"model": "fraud"}, invalid: true}, 400)

	// Rollouts: a weight change starts one; its status moves the ETag's
	// seq, which If-Match ignores and If-None-Match does not.
	roll := endpoints + "/churn-roll"
	rollBody := map[string]any{
		"name": "churn-roll", "model": "churn",
		"routes":  []map[string]any{{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9/v1", "weight": 100}},
		"rollout": map[string]any{"steps": []int{10, 50, 100}, "bake": "10m", "max_error_rate": 0.05, "min_requests": 20},
	}
	e.do(oaReq{method: "POST", path: endpoints, body: rollBody}, 201)
	withProm := map[string]any{"rollout": map[string]any{"steps": []int{100}, "bake": "1m", "prometheus": []map[string]any{{"query": "up", "threshold": 1, "comparison": ">="}}}}
	p = e.do(oaReq{method: "PATCH", path: roll, body: withProm}, 400).problem(t, registry.CodeInvalidArgument)
	if p.Field != "rollout.prometheus" || p.Rule != "unavailable" {
		t.Errorf("prometheus gate without a Prometheus: field %q rule %q", p.Field, p.Rule)
	}
	p = e.do(oaReq{method: "PATCH", path: roll, body: map[string]any{"rollout": map[string]any{"steps": []int{50, 10, 100}, "bake": "1m"}}}, 400).problem(t, registry.CodeInvalidArgument)
	if p.Field != "rollout.steps[1]" || p.Rule != "increasing" {
		t.Errorf("steps not increasing: field %q rule %q", p.Field, p.Rule)
	}
	res = e.do(oaReq{method: "PATCH", path: roll, body: map[string]any{"routes": []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9/v1", "weight": 50},
		{"name": "canary", "version": 1, "upstream_url": "http://127.0.0.1:9/v1b", "weight": 50},
	}}, header: map[string]string{"If-Match": `"1"`}}, 200)
	var rolling registry.Endpoint
	res.decode(t, &rolling)
	if rolling.Rollout == nil || rolling.Rollout.RolloutStatus == nil || rolling.Rollout.State != registry.RolloutProgressing || rolling.Rollout.Step != 1 {
		t.Fatalf("endpoint after a weight change: %s", oaShort(res.body))
	}
	rollTag := oaETag(t, res)
	if rollTag != fmt.Sprintf(`"2.%d"`, rolling.Rollout.Seq) {
		t.Errorf("ETag of an endpoint with a rollout %s, want \"<revision>.<seq>\"", rollTag)
	}
	if r := e.do(oaReq{method: "GET", path: roll, header: map[string]string{"If-None-Match": rollTag}}, 304); len(r.body) != 0 || oaETag(t, r) != rollTag {
		t.Errorf("304 answer: %q, ETag %q", r.body, r.header.Get("ETag"))
	}
	e.do(oaReq{method: "POST", path: roll + "/rollout/pause", as: e.reader}, 403).problem(t, registry.CodePermissionDenied)
	e.do(oaReq{method: "POST", path: roll + "/rollout/pause", as: e.ci}, 403).problem(t, registry.CodePermissionDenied)
	e.do(oaReq{method: "POST", path: roll + "/rollout/restart", invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	e.do(oaReq{method: "POST", path: endpoints + "/nope/rollout/pause"}, 404).problem(t, registry.CodeNotFound)
	e.do(oaReq{method: "POST", path: roll + "/rollout/pause", body: map[string]any{"why": "x"}, invalid: true}, 400)
	res = e.do(oaReq{method: "POST", path: roll + "/rollout/pause", body: map[string]any{"reason": "dashboards"}, header: map[string]string{"Idempotency-Key": "pause-1"}}, 200)
	var paused registry.Endpoint
	res.decode(t, &paused)
	if paused.Rollout.State != registry.RolloutPaused || oaETag(t, res) == rollTag {
		t.Errorf("paused: %s, ETag %s", oaShort(res.body), oaETag(t, res))
	}
	if r := e.do(oaReq{method: "POST", path: roll + "/rollout/pause", body: map[string]any{"reason": "dashboards"}, header: map[string]string{"Idempotency-Key": "pause-1"}}, 200); r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("pause replay = %v", r.header)
	}
	e.do(oaReq{method: "GET", path: roll, header: map[string]string{"If-None-Match": rollTag}}, 200)
	e.do(oaReq{method: "POST", path: roll + "/rollout/pause"}, 409).problem(t, registry.CodeConflict)
	e.do(oaReq{method: "POST", path: roll + "/rollout/resume"}, 200)
	// If-Match compares the revision: the status moved, the write goes.
	e.do(oaReq{method: "PATCH", path: roll, body: map[string]any{"sticky_header": "X-User"}, header: map[string]string{"If-Match": rollTag}}, 200)
	res = e.do(oaReq{method: "POST", path: roll + "/rollout/abort", body: map[string]any{"reason": "bad canary"}}, 200)
	var aborted registry.Endpoint
	res.decode(t, &aborted)
	if aborted.Rollout.State != registry.RolloutAborted || aborted.Status != registry.EndpointStatusRolledBack || len(aborted.Routes) != 1 ||
		!strings.Contains(aborted.StatusMessage, "bad canary") {
		t.Errorf("aborted: %s", oaShort(res.body))
	}
	e.do(oaReq{method: "DELETE", path: roll}, 204)
	// Feedback, live metrics, compare, receipt keys.
	rc := e.receipts.Sign(registry.Receipt{Endpoint: "churn-api", Route: "stable", Model: "churn", Version: 1, RequestID: "req-fb-1"})
	var fb registry.FeedbackResult
	e.do(oaReq{method: "POST", path: endpoints + "/churn-api/feedback", body: map[string]any{"items": []map[string]any{
		{"receipt": rc, "metrics": map[string]any{"correct": 1}},
		{"receipt": rc + "x", "metrics": map[string]any{"correct": 1}},
	}}}, 200).decode(t, &fb)
	if fb.Accepted != 1 || len(fb.Rejected) != 1 || fb.Rejected[0].Index != 1 {
		t.Errorf("feedback = %+v", fb)
	}
	e.do(oaReq{method: "POST", path: endpoints + "/churn-api/feedback", as: e.reader, body: map[string]any{"items": []map[string]any{{"receipt": rc, "metrics": map[string]any{"correct": 1}}}}}, 403)
	e.do(oaReq{method: "POST", path: endpoints + "/nope/feedback", body: map[string]any{"items": []map[string]any{{"receipt": rc, "metrics": map[string]any{"correct": 1}}}}}, 404)
	e.do(oaReq{method: "POST", path: endpoints + "/churn-api/feedback", body: map[string]any{"items": []map[string]any{}}, invalid: true}, 400)
	e.do(oaReq{method: "GET", path: endpoints + "/churn-api/live-metrics?window=1h"}, 200)
	e.do(oaReq{method: "GET", path: versions + "/1/live-metrics"}, 200)
	e.do(oaReq{method: "GET", path: versions + "/1/live-metrics?window=soon"}, 400)
	e.do(oaReq{method: "GET", path: churn + "/compare?versions=1,2"}, 200)
	e.do(oaReq{method: "GET", path: churn + "/compare?versions=1,999"}, 404)
	e.do(oaReq{method: "POST", path: "/api/v1/receipt-keys"}, 201)
	e.do(oaReq{method: "GET", path: "/api/v1/receipt-keys"}, 200)
	e.do(oaReq{method: "GET", path: "/api/v1/receipt-keys", as: e.reader}, 403)

	// Unassign staging (production stays until the end).
	e.do(oaReq{method: "DELETE", path: "/api/v1/models/churn/stages/staging", header: map[string]string{"If-Match": stagingETag}}, 204)
	e.do(oaReq{method: "DELETE", path: "/api/v1/models/churn/stages/production", as: e.ci}, 403)

	// Events.
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	var evs registry.Page[registry.Event]
	e.do(oaReq{method: "GET", path: "/api/v1/events?model=churn&since=" + url.QueryEscape(since)}, 200).decode(t, &evs)
	if len(evs.Items) == 0 || evs.Items[0].Action != registry.ActionModelCreate {
		t.Errorf("events of churn = %s", oaShort(oaJSON(t, evs)))
	}
	var reqIDSeen bool
	for _, ev := range evs.Items {
		if ev.RequestID == "req-create-churn" {
			reqIDSeen = true
		}
	}
	if !reqIDSeen {
		t.Errorf("no event carries the request ID sent with X-Request-ID")
	}
	e.do(oaReq{method: "GET", path: "/api/v1/events?endpoint=churn-api&page_size=1"}, 200)
	e.do(oaReq{method: "GET", path: "/api/v1/events"}, 200)
	e.do(oaReq{method: "GET", path: "/api/v1/events?since=yesterday", invalid: true}, 400)

	// Deletes that succeed.
	e.do(oaReq{method: "DELETE", path: endpoints + "/churn-api", header: map[string]string{"If-Match": `"999"`}}, 412)
	deleteKey := map[string]string{"Idempotency-Key": "delete-churn-api"}
	e.do(oaReq{method: "DELETE", path: endpoints + "/churn-api", header: deleteKey}, 204)
	if r := e.do(oaReq{method: "DELETE", path: endpoints + "/churn-api", header: deleteKey}, 204); r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("DELETE replay = %v", r.header)
	}
	e.do(oaReq{method: "DELETE", path: endpoints + "/churn-api"}, 404)
	e.do(oaReq{method: "DELETE", path: stages + "/production", header: map[string]string{"If-Match": prodETag}}, 204)
	e.do(oaReq{method: "DELETE", path: stages + "/production"}, 404)
	var hist registry.Page[registry.StageHistoryEntry]
	e.do(oaReq{method: "GET", path: stages + "/production/history"}, 200).decode(t, &hist)
	if len(hist.Items) != 2 || hist.Items[0].Action != registry.StageActionUnassign || hist.Items[0].PreviousVersion != 1 {
		t.Errorf("production history = %s", oaShort(oaJSON(t, hist)))
	}
	v1etag := oaETag(t, e.do(oaReq{method: "GET", path: versions + "/1"}, 200))
	e.do(oaReq{method: "DELETE", path: versions + "/1", header: map[string]string{"If-Match": v1etag}}, 204)
	e.do(oaReq{method: "GET", path: versions + "/1"}, 404)
	e.do(oaReq{method: "DELETE", path: versions + "/99"}, 404)
	e.do(oaReq{method: "DELETE", path: models + "/fraud", as: e.reader}, 403)
	e.do(oaReq{method: "DELETE", path: models + "/fraud"}, 204)
	e.do(oaReq{method: "DELETE", path: churn + "?force=true"}, 204)
	e.do(oaReq{method: "GET", path: churn}, 404)
	e.do(oaReq{method: "DELETE", path: churn}, 404)

	// Tokens (admin only). The secret is in the create's answer and
	// nowhere else; a revoke takes effect on the next request.
	const tokens = "/api/v1/tokens"
	e.do(oaReq{method: "GET", path: tokens, as: e.reader}, 403).problem(t, registry.CodePermissionDenied)
	e.do(oaReq{method: "GET", path: tokens, as: oaNoAuth, invalid: true}, 401)
	e.do(oaReq{method: "POST", path: tokens, as: e.ci, body: map[string]any{"name": "x", "scope": "read"}}, 403)
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	res = e.do(oaReq{method: "POST", path: tokens, body: map[string]any{
		"name": "deploy", "scope": "write", "stages": []string{"staging"}, "expires_at": expires,
	}}, 201)
	var created registry.TokenCreated
	res.decode(t, &created)
	if !strings.HasPrefix(created.Secret, registry.TokenPrefix) || created.Token.ID <= 0 || created.Token.State != registry.TokenActive ||
		created.Token.ExpiresAt == nil || !created.Token.ExpiresAt.Equal(expires) || !slices.Equal(created.Token.Stages, []string{"staging"}) {
		t.Errorf("created token = %s", oaShort(res.body))
	}
	tokPath := fmt.Sprintf("%s/%d", tokens, created.Token.ID)
	if loc := res.header.Get("Location"); loc != e.base+tokPath {
		t.Errorf("Location %q, want %q", loc, e.base+tokPath)
	}
	e.do(oaReq{method: "POST", path: tokens, body: map[string]any{"name": "deploy", "scope": "read"}}, 409).problem(t, registry.CodeAlreadyExists)
	e.do(oaReq{method: "POST", path: tokens, body: map[string]any{"name": "old", "scope": "read", "expires_at": time.Now().Add(-time.Hour)}}, 400).problem(t, registry.CodeInvalidArgument)
	e.do(oaReq{method: "POST", path: tokens, body: map[string]any{"name": "x", "scope": "root"}, invalid: true}, 400)
	e.do(oaReq{method: "POST", path: tokens, body: map[string]any{"name": "x", "scope": "read", "secret": "mlr_mine"}, invalid: true}, 400)
	e.do(oaReq{method: "GET", path: "/api/v1/models", as: created.Secret}, 200)
	res = e.do(oaReq{method: "GET", path: tokens}, 200)
	if bytes.Contains(res.body, []byte(created.Secret)) || bytes.Contains(res.body, []byte("hash")) {
		t.Errorf("the token list shows a secret or hash: %s", oaShort(res.body))
	}
	var list registry.Page[registry.Token]
	res.decode(t, &list)
	if n := len(list.Items); n != 4 || list.Items[n-1].Name != "deploy" || list.Items[n-1].ID != created.Token.ID {
		t.Errorf("token list = %s", oaShort(res.body))
	}
	e.do(oaReq{method: "GET", path: tokPath}, 200)
	e.do(oaReq{method: "GET", path: tokens + "/999999"}, 404).problem(t, registry.CodeNotFound)
	e.do(oaReq{method: "GET", path: tokens + "/first", invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	var revoked registry.Token
	e.do(oaReq{method: "DELETE", path: tokPath}, 200).decode(t, &revoked)
	if revoked.State != registry.TokenRevoked || revoked.RevokedAt == nil {
		t.Errorf("revoked token = %+v", revoked)
	}
	e.do(oaReq{method: "DELETE", path: tokPath}, 409).problem(t, registry.CodeConflict)
	e.do(oaReq{method: "DELETE", path: tokens + "/999999"}, 404)
	e.do(oaReq{method: "GET", path: "/api/v1/models", as: created.Secret}, 401).problem(t, registry.CodeUnauthenticated)
	var ev registry.Page[registry.Event]
	e.do(oaReq{method: "GET", path: "/api/v1/events?page_size=1000"}, 200).decode(t, &ev)
	var tokenEvents []string
	for _, x := range ev.Items {
		if x.SubjectType == "token" && x.Subject == "deploy" {
			tokenEvents = append(tokenEvents, x.Action+" by "+x.Actor)
			if bytes.Contains(x.After, []byte(created.Secret)) {
				t.Errorf("an event carries the secret")
			}
		}
	}
	if !slices.Equal(tokenEvents, []string{"token.create by admin", "token.revoke by admin"}) {
		t.Errorf("token events = %v", tokenEvents)
	}

	// Coverage: every operation (but /serve) was called, every documented
	// success status was seen, and each main error status at least once.
	statuses := map[string]bool{}
	for k := range e.seen {
		statuses[k[strings.LastIndexByte(k, ' ')+1:]] = true
	}
	for path, item := range e.doc.Paths.Map() {
		if strings.HasPrefix(path, "/serve/") {
			continue
		}
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				if code[0] == '2' && !e.seen[method+" "+path+" "+code] {
					t.Errorf("the scenario never got %s for %s %s", code, method, path)
				}
			}
		}
	}
	for _, code := range []string{"200", "201", "204", "400", "401", "403", "404", "409", "412", "413", "422"} {
		if !statuses[code] {
			t.Errorf("the scenario never got a %s", code)
		}
	}
}

// TestOpenAPIEdgeCases holds the calls where a lenient server could drift
// from the contract: a request the spec rejects must still be refused, and
// an answer must never carry null where the spec has an array.
func TestOpenAPIEdgeCases(t *testing.T) {
	e := oaNewEnv(t)
	e.do(oaReq{method: "POST", path: "/api/v1/models", body: map[string]any{"name": "churn"}}, 201)

	// page_size is 1..1000: 0 is not "the default".
	e.do(oaReq{method: "GET", path: "/api/v1/models?page_size=0", invalid: true}, 400).problem(t, registry.CodeInvalidArgument)
	e.do(oaReq{method: "GET", path: "/api/v1/models?page_size=-1", invalid: true}, 400).problem(t, registry.CodeInvalidArgument)

	// A signature sent with one side only and a tensor without a shape
	// (the Go client sends them as null or leaves them out): the server
	// accepts it, but answers arrays, never null.
	res := e.do(oaReq{method: "POST", path: "/api/v1/models/churn/versions", body: map[string]any{
		"source": "s3://models/churn/1", "checksum": oaSHA("a"), "format": "onnx",
		"signature": map[string]any{"inputs": []map[string]any{{"name": "x", "dtype": "int64"}}},
	}, invalid: true}, 201)
	var v registry.ModelVersion
	res.decode(t, &v)
	if v.Signature == nil || v.Signature.Outputs == nil || len(v.Signature.Inputs) != 1 || v.Signature.Inputs[0].Shape == nil {
		t.Errorf("signature arrays must be [] in answers, not null: %s", res.body)
	}
	e.do(oaReq{method: "GET", path: "/api/v1/models/churn/versions/1"}, 200)
}

// TestOpenAPIUnavailable checks the documented 503 of /readyz when the
// database is gone, while /healthz still answers.
func TestOpenAPIUnavailable(t *testing.T) {
	e := oaNewEnv(t)
	e.do(oaReq{method: "GET", path: "/readyz", as: oaNoAuth}, 200)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	e.do(oaReq{method: "GET", path: "/readyz", as: oaNoAuth}, 503).problem(t, registry.CodeUnavailable)
	e.do(oaReq{method: "GET", path: "/healthz", as: oaNoAuth}, 200)
}

func oaJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
