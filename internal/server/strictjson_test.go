package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestStrictJSON: every route that reads a body rejects a member given
// twice and a member name that matches a field only case-insensitively or
// by Unicode folding (encoding/json accepts both), naming the member and
// the rule, and changes nothing.
func TestStrictJSON(t *testing.T) {
	e := newEnv(t, "sqlite://"+t.TempDir()+"/r.db")
	e.createModel(registry.ModelCreate{Name: "churn"})
	e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("1")})
	e.createVersion("churn", registry.ModelVersionCreate{Checksum: sha("2"), Source: "s3://m/2"})
	events := e.countEvents()
	route := `{"name":"a","version":1,"upstream_url":"http://a:1","weight":100}`
	for _, c := range []struct {
		name, method, path, body string
		field, rule              string
	}{
		{"duplicate version", "PUT", "/api/v1/models/churn/stages/production", `{"version":1,"version":2}`, "version", "duplicate_field"},
		{"duplicate escaped", "POST", "/api/v1/models", `{"name":"a","n\u0061me":"b"}`, "name", "duplicate_field"},
		{"duplicate map key", "POST", "/api/v1/models", `{"name":"a","tags":{"team":"ds","team":"ops"}}`, "tags.team", "duplicate_field"},
		{"duplicate in policy", "PATCH", "/api/v1/models/churn", `{"stage_policies":{"production":{"min_soak":"1h","min_soak":"0s"}}}`, "stage_policies.production.min_soak", "duplicate_field"},
		{"duplicate policy stage", "PATCH", "/api/v1/models/churn", `{"stage_policies":{"production":{},"production":{"min_soak":"1h"}}}`, "stage_policies.production", "duplicate_field"},
		{"duplicate in array element", "POST", "/api/v1/endpoints", `{"name":"e","model":"churn","routes":[{"name":"a","name":"b","version":1,"upstream_url":"http://a:1","weight":100}]}`, "routes[0].name", "duplicate_field"},
		{"duplicate immutable raw", "PATCH", "/api/v1/models/churn/versions/1", `{"description":"x","description":"y"}`, "description", "duplicate_field"},
		{"upper case", "PATCH", "/api/v1/models/churn/versions/1", `{"FLAGGED":true,"flag_reason":"bad"}`, "FLAGGED", "field_name_case"},
		{"mixed case", "POST", "/api/v1/models", `{"Name":"x"}`, "Name", "field_name_case"},
		{"long s folds to s", "POST", "/api/v1/models/churn/versions", `{"\u017fource":"s3://m/3","checksum":"` + sha("3") + `","format":"onnx"}`, "\u017fource", "field_name_case"},
		{"kelvin sign folds to k", "POST", "/api/v1/endpoints", `{"name":"e","model":"churn","routes":[` + route + `],"stic\u212ay_header":"X"}`, "stic\u212ay_header", "field_name_case"},
		{"nested case", "POST", "/api/v1/endpoints", `{"name":"e","model":"churn","routes":[{"Name":"a","version":1,"upstream_url":"http://a:1","weight":100}]}`, "routes[0].Name", "field_name_case"},
		{"case in stage body", "PUT", "/api/v1/models/churn/stages/production", `{"Version":1}`, "Version", "field_name_case"},
		{"case in endpoint patch", "PATCH", "/api/v1/endpoints/e", `{"Routes":[` + route + `]}`, "Routes", "field_name_case"},
	} {
		r := e.do(req{method: c.method, path: c.path, token: e.admin, body: c.body}, http.StatusBadRequest)
		p := problem(t, r, registry.CodeInvalidArgument)
		if p.Field != c.field || p.Rule != c.rule {
			t.Errorf("%s: field %q rule %q (%s); want field %q rule %q", c.name, p.Field, p.Rule, p.Detail, c.field, c.rule)
		}
	}
	if got := e.countEvents(); got != events {
		t.Errorf("rejected bodies wrote %d events", got-events)
	}
	if n := e.countVersions("churn"); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	// Exact names still work, and the same member in two different
	// objects is no duplicate.
	e.do(req{method: "POST", path: "/api/v1/models", token: e.admin,
		body: `{"name":"fraud","tags":{"name":"x"},"stage_policies":{"production":{"require_stage":"staging"},"staging":{"require_stage":"dev"}}}`}, http.StatusCreated)
}

// strictTargets are the body types the server decodes, for the fuzzer.
var strictTargets = []func() any{
	func() any { return new(registry.ModelCreate) },
	func() any { return new(registry.ModelPatch) },
	func() any { return new(registry.ModelVersionCreate) },
	func() any { return new(versionPatchBody) },
	func() any { return new(registry.StageAssign) },
	func() any { return new(registry.EndpointCreate) },
	func() any { return new(registry.EndpointPatch) },
}

// FuzzStrictDecode: whatever the strict decoder accepts, encoding/json
// (with unknown fields disallowed) accepts too and decodes to the same
// value; the strict decoder never panics. Seeds in testdata/fuzz.
func FuzzStrictDecode(f *testing.F) {
	for _, seed := range []string{
		`{"name":"churn","tags":{"a":"1"},"stage_policies":{"production":{"require_stage":"staging","min_soak":"24h","min_metrics":{"auc":0.9}}}}`,
		`{"source":"s3://a/b","checksum":"sha256:00","format":"onnx","lineage":{"run_id":"r"},"signature":{"inputs":[{"name":"x","dtype":"f32","shape":[1,2]}],"outputs":[]}}`,
		`{"version":1,"version":2}`,
		`{"FLAGGED":true}`,
		`{"\u017fource":"s3://x"}`,
		`{"name":"e","model":"m","routes":[{"name":"a","version":1,"upstream_url":"http://a","weight":100}],"guard":null}`,
		`{"description":"x","checksum":"sha256:1"}`,
	} {
		for i := range strictTargets {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		mk := strictTargets[int(kind)%len(strictTargets)]
		strict := mk()
		if err := decodeJSON(body, strict); err != nil {
			if _, ok := err.(*registry.Error); !ok {
				t.Fatalf("error %T %v is not a *registry.Error", err, err)
			}
			return
		}
		plain := mk()
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(plain); err != nil {
			t.Fatalf("strict decoder accepted %q, encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(strict, plain) {
			t.Fatalf("%q decodes differently:\nstrict %+v\nplain  %+v", body, strict, plain)
		}
		// The accepted body names each member once, exactly: decoding it
		// into a generic value and re-encoding the typed value reads the
		// same members back.
		if err := checkMemberNames(body, reflect.TypeOf(strict)); err != nil {
			t.Fatalf("accepted body fails the name check: %v", err)
		}
	})
}
