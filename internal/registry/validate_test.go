package registry

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func expectField(t *testing.T, err error, field, rule string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("want valid, got %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want error on %s (%s), got %v", field, rule, err)
	}
	if e.Code != CodeInvalidArgument || e.Field != field || e.Rule != rule {
		t.Fatalf("got %s field=%q rule=%q (%s), want invalid_argument field=%q rule=%q", e.Code, e.Field, e.Rule, e.Message, field, rule)
	}
	if !strings.HasPrefix(e.Message, field+": ") {
		t.Errorf("message %q does not start with the field", e.Message)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		in   string
		rule string
	}{
		{"churn", ""},
		{"a", ""},
		{"0model.v2_x-y", ""},
		{strings.Repeat("a", 128), ""},
		{strings.Repeat("a", 129), "pattern"},
		{"", "required"},
		{"Churn", "pattern"},
		{"-churn", "pattern"},
		{"churn model", "pattern"},
		{"churn/x", "pattern"},
	}
	for _, tt := range tests {
		field := ""
		if tt.rule != "" {
			field = "name"
		}
		expectField(t, ValidateName("name", tt.in), field, tt.rule)
	}
}

func TestValidateStage(t *testing.T) {
	for in, ok := range map[string]bool{"production": true, "staging": true, "canary-2": true, "2prod": false, "Prod": false, "a_b": false, "": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if err := ValidateStage("stage", in); (err == nil) != ok {
			t.Errorf("ValidateStage(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func goodVersion() ModelVersionCreate {
	return ModelVersionCreate{Source: "s3://models/churn/7/model.onnx", Checksum: "sha256:" + strings.Repeat("0f", 32), Format: "onnx"}
}

func TestModelVersionCreateValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*ModelVersionCreate)
		field string
		rule  string
	}{
		{"ok", func(*ModelVersionCreate) {}, "", ""},
		{"file uri", func(v *ModelVersionCreate) { v.Source = "file:///tmp/m.onnx" }, "", ""},
		{"no source", func(v *ModelVersionCreate) { v.Source = "" }, "source", "required"},
		{"relative source", func(v *ModelVersionCreate) { v.Source = "models/m.onnx" }, "source", "uri"},
		{"bad checksum", func(v *ModelVersionCreate) { v.Checksum = "md5:abc" }, "checksum", "pattern"},
		{"upper-case checksum", func(v *ModelVersionCreate) { v.Checksum = "sha256:" + strings.Repeat("0F", 32) }, "checksum", "pattern"},
		{"bad format", func(v *ModelVersionCreate) { v.Format = "h5" }, "format", "enum"},
		{"NaN metric", func(v *ModelVersionCreate) { v.Metrics = map[string]float64{"auc": math.NaN()} }, "metrics.auc", "finite"},
		{"dup tensor", func(v *ModelVersionCreate) {
			v.Signature = &Signature{Inputs: []TensorSpec{{Name: "x", DType: "f"}, {Name: "x", DType: "f"}}}
		}, "signature.inputs[1].name", "unique"},
		{"bad shape", func(v *ModelVersionCreate) {
			v.Signature = &Signature{Outputs: []TensorSpec{{Name: "y", DType: "f", Shape: []int64{-2}}}}
		}, "signature.outputs[0].shape[0]", "min"},
		{"flag reason without flag", func(v *ModelVersionCreate) { v.FlagReason = "x" }, "flag_reason", "requires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := goodVersion()
			tt.edit(&v)
			expectField(t, v.Validate(), tt.field, tt.rule)
		})
	}
}

func TestStagePoliciesValidate(t *testing.T) {
	tests := []struct {
		name  string
		p     map[string]StagePolicy
		field string
		rule  string
	}{
		{"ok", map[string]StagePolicy{"production": {RequireStage: "staging", MinSoak: "24h", MinMetrics: map[string]float64{"auc": 0.8}}}, "", ""},
		{"bad stage key", map[string]StagePolicy{"Prod": {}}, "stage_policies key", "pattern"},
		{"self", map[string]StagePolicy{"production": {RequireStage: "production"}}, "stage_policies.production.require_stage", "self"},
		{"soak without stage", map[string]StagePolicy{"production": {MinSoak: "1h"}}, "stage_policies.production.min_soak", "requires"},
		{"bad soak", map[string]StagePolicy{"production": {RequireStage: "staging", MinSoak: "a day"}}, "stage_policies.production.min_soak", "duration"},
		{"negative soak", map[string]StagePolicy{"production": {RequireStage: "staging", MinSoak: "-1h"}}, "stage_policies.production.min_soak", "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ModelCreate{Name: "churn", StagePolicies: tt.p}
			expectField(t, m.Validate(), tt.field, tt.rule)
		})
	}
}

func TestValidateRoutes(t *testing.T) {
	r := func(name string, w int) Route {
		return Route{Name: name, Version: 1, UpstreamURL: "http://10.0.0.1:8080", Weight: w}
	}
	tests := []struct {
		name   string
		routes []Route
		field  string
		rule   string
	}{
		{"ok", []Route{r("stable", 90), r("canary", 10)}, "", ""},
		{"single", []Route{r("stable", 100)}, "", ""},
		{"empty", nil, "routes", "min_items"},
		{"sum", []Route{r("stable", 90), r("canary", 20)}, "routes", "weights_sum"},
		{"dup", []Route{r("stable", 50), r("stable", 50)}, "routes[1].name", "unique"},
		{"range", []Route{r("stable", 101), r("canary", -1)}, "routes[0].weight", "range"},
		{"bad url", []Route{{Name: "a", Version: 1, UpstreamURL: "ftp://x", Weight: 100}}, "routes[0].upstream_url", "url"},
		{"no version", []Route{{Name: "a", UpstreamURL: "http://x", Weight: 100}}, "routes[0].version", "min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectField(t, ValidateRoutes("routes", tt.routes), tt.field, tt.rule)
		})
	}
}

func TestValidateRouteMatch(t *testing.T) {
	m := func(h, v string) []Route {
		return []Route{
			{Name: "stable", Version: 1, UpstreamURL: "http://10.0.0.1:8080", Weight: 100},
			{Name: "canary", Version: 2, UpstreamURL: "http://10.0.0.2:8080", Weight: 0, Match: &RouteMatch{Header: h, Value: v}},
		}
	}
	tests := []struct {
		name   string
		routes []Route
		field  string
		rule   string
	}{
		{"ok weight 0", m("X-Canary", "always"), "", ""},
		{"any case", m("x-canary", "always"), "", ""},
		{"no header", m("", "always"), "routes[1].match.header", "required"},
		{"not a token", m("X Canary", "always"), "routes[1].match.header", "header_name"},
		{"hop-by-hop", m("connection", "x"), "routes[1].match.header", "match_header"},
		{"te", m("TE", "x"), "routes[1].match.header", "match_header"},
		{"upgrade", m("Upgrade", "x"), "routes[1].match.header", "match_header"},
		{"proxy", m("Proxy-Anything", "x"), "routes[1].match.header", "match_header"},
		{"host", m("Host", "x"), "routes[1].match.header", "match_header"},
		{"authorization", m("authorization", "Bearer x"), "routes[1].match.header", "match_header"},
		{"cookie", m("Cookie", "x"), "routes[1].match.header", "match_header"},
		{"own header", m("X-Route", "canary"), "routes[1].match.header", "match_header"},
		{"own hops", m("X-Mlregistry-Hops", "1"), "routes[1].match.header", "match_header"},
		{"empty value", m("X-Canary", ""), "routes[1].match.value", "required"},
		{"control value", m("X-Canary", "a\nb"), "routes[1].match.value", "header_value"},
		{"spaced value", m("X-Canary", " always"), "routes[1].match.value", "header_value"},
		{"inner space", m("X-Canary", "team a"), "", ""},
		{"long value", m("X-Canary", strings.Repeat("v", MaxMatchValueLen+1)), "routes[1].match.value", "max_length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectField(t, ValidateRoutes("routes", tt.routes), tt.field, tt.rule)
		})
	}
}

func TestGuardValidate(t *testing.T) {
	tests := []struct {
		g     *Guard
		field string
		rule  string
	}{
		{nil, "", ""},
		{&Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"}, "", ""},
		{&Guard{MaxErrorRate: 0, MinRequests: 100, Window: "5m"}, "guard.max_error_rate", "range"},
		{&Guard{MaxErrorRate: 1.5, MinRequests: 100, Window: "5m"}, "guard.max_error_rate", "range"},
		{&Guard{MaxErrorRate: 0.1, MinRequests: 0, Window: "5m"}, "guard.min_requests", "min"},
		{&Guard{MaxErrorRate: 0.1, MinRequests: 1, Window: "forever"}, "guard.window", "duration"},
		{&Guard{MaxErrorRate: 0.1, MinRequests: 1, Window: "100ms"}, "guard.window", "range"},
	}
	for _, tt := range tests {
		expectField(t, tt.g.Validate("guard"), tt.field, tt.rule)
	}
}

func TestErrorsTable(t *testing.T) {
	for code, status := range codeStatus {
		if HTTPStatus(code) != status {
			t.Errorf("HTTPStatus(%s) = %d", code, HTTPStatus(code))
		}
	}
	if len(codeStatus) != 12 {
		t.Errorf("codeStatus has %d codes, DESIGN.md lists 12", len(codeStatus))
	}
	err := Errorf(CodeNotFound, "model %q not found", "x")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Error("errors.Is by code does not work")
	}
	if ErrorCode(errors.New("boom")) != CodeInternal {
		t.Error("plain errors should be internal")
	}
	if AsError(errors.New("SELECT secret FROM x")).Message != "internal error" {
		t.Error("AsError leaks the message of a non-registry error")
	}
}

func TestScopes(t *testing.T) {
	if !ScopeAdmin.Allows(ScopeWrite) || !ScopeWrite.Allows(ScopeRead) || ScopeRead.Allows(ScopeWrite) || Scope("bogus").Allows(ScopeRead) {
		t.Error("scope ordering is wrong")
	}
	tok := Token{Scope: ScopeWrite, Stages: []string{"staging"}}
	if !tok.MayAssignStage("staging") || tok.MayAssignStage("production") {
		t.Error("stage restriction is wrong")
	}
	read := Token{Scope: ScopeRead}
	if read.MayAssignStage("staging") {
		t.Error("read token may assign")
	}
}

func TestTokenSecret(t *testing.T) {
	s1, h1, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _, _ := NewTokenSecret()
	if s1 == s2 || !strings.HasPrefix(s1, TokenPrefix) || len(s1) < 30 {
		t.Errorf("weak or repeated secrets %q %q", s1, s2)
	}
	if string(HashToken(s1)) != string(h1) || len(h1) != 32 {
		t.Error("hash mismatch")
	}
}

func TestAddMetrics(t *testing.T) {
	have := map[string]float64{"auc": 0.91}
	out, added, err := AddMetrics(have, map[string]float64{"auc": 0.91, "f1": 0.8, "acc": 0.7})
	if err != nil || len(out) != 3 || out["f1"] != 0.8 || strings.Join(added, ",") != "acc,f1" {
		t.Fatalf("add: %v %v %v", out, added, err)
	}
	if len(have) != 1 {
		t.Fatalf("AddMetrics changed its input: %v", have)
	}
	if _, added, err := AddMetrics(have, map[string]float64{"auc": 0.91}); err != nil || len(added) != 0 {
		t.Fatalf("the same value again: %v %v", added, err)
	}
	_, _, err = AddMetrics(have, map[string]float64{"f1": 0.8, "auc": 0.95})
	expectField(t, err, "add_metrics.auc", "immutable")
	if !strings.Contains(err.Error(), "0.91") {
		t.Errorf("the refusal should say the recorded value: %v", err)
	}
	many := map[string]float64{}
	for i := range MaxMapEntries {
		many["m"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))] = 1
	}
	_, _, err = AddMetrics(have, many)
	expectField(t, err, "add_metrics", "max_items")
	expectField(t, (&ModelVersionPatch{AddMetrics: map[string]float64{"x": math.NaN()}}).Validate(), "add_metrics.x", "finite")
}
