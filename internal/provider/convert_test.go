package provider

import (
	"context"
	"math/big"
	"reflect"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/zclconf/go-cty/cty"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestNullVersusEmpty pins the rule: the registry's empty value is null
// unless Terraform already had a known empty value there.
func TestNullVersusEmpty(t *testing.T) {
	ctx := context.Background()
	if v := stringValue("", types.StringNull()); !v.IsNull() {
		t.Errorf(`"" with null prior = %v, want null`, v)
	}
	if v := stringValue("", types.StringUnknown()); !v.IsNull() {
		t.Errorf(`"" with unknown prior (import, computed) = %v, want null`, v)
	}
	if v := stringValue("", types.StringValue("")); v.IsNull() || v.ValueString() != "" {
		t.Errorf(`"" with "" prior = %v, want ""`, v)
	}
	if v := stringValue("x", types.StringNull()); v.ValueString() != "x" {
		t.Errorf(`"x" with null prior = %v, want "x" (drift shows)`, v)
	}
	if v := boolValue(false, types.BoolNull()); !v.IsNull() {
		t.Errorf("false with null prior = %v", v)
	}
	if v := boolValue(false, types.BoolValue(false)); v.IsNull() {
		t.Errorf("false with false prior = %v", v)
	}

	emptyPrior, _ := types.MapValueFrom(ctx, types.StringType, map[string]string{})
	if v, _ := stringMapValue(ctx, map[string]string{}, types.MapNull(types.StringType)); !v.IsNull() {
		t.Errorf("{} with null prior = %v", v)
	}
	if v, _ := stringMapValue(ctx, nil, emptyPrior); v.IsNull() || len(v.Elements()) != 0 {
		t.Errorf("nil with {} prior = %v, want {}", v)
	}
	if v, _ := float64MapValue(ctx, nil, types.MapNull(types.NumberType)); !v.IsNull() {
		t.Errorf("nil metrics with null prior = %v", v)
	}
	if v, _ := stringListValue(ctx, nil, types.ListNull(types.StringType)); !v.IsNull() {
		t.Errorf("nil list with null prior = %v", v)
	}
}

// TestFloat64ValueMatchesHCL: a number read from the registry equals the
// number Terraform parses from the same literal, so imports and refreshes
// of metrics never differ from the configuration.
func TestNumberValueMatchesHCL(t *testing.T) {
	ctx := context.Background()
	for _, lit := range []string{"0.85", "0.1", "0.91", "1e-07", "0.3333333333333333", "12345.678", "50", "-3.5"} {
		want := cty.MustParseNumberVal(lit).AsBigFloat()
		got := numberValue(mustFloat(t, lit))
		tv, err := got.ToTerraformValue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var bf big.Float
		if err := tv.As(&bf); err != nil {
			t.Fatal(err)
		}
		if bf.Cmp(want) != 0 {
			t.Errorf("%s: provider value %s != Terraform's %s", lit, bf.Text('g', 40), want.Text('g', 40))
		}
		if numberFloat64Of(got) != mustFloat(t, lit) {
			t.Errorf("%s: float64 = %v", lit, numberFloat64Of(got))
		}
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, _, err := big.ParseFloat(s, 10, 53, big.ToNearestEven)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Float64()
	return v
}

func TestDurationValueKeepsTheConfiguredSpelling(t *testing.T) {
	for _, tt := range []struct {
		server, prior, want string
		priorNull           bool
	}{
		{"24h0m0s", "24h", "24h", false},
		{"24h", "1440m", "1440m", false},
		{"1h", "24h", "1h", false}, // a real change shows
		{"24h", "", "24h", true},   // import
	} {
		prior := types.StringValue(tt.prior)
		if tt.priorNull {
			prior = types.StringNull()
		}
		if got := durationValue(tt.server, prior); got.ValueString() != tt.want {
			t.Errorf("durationValue(%q, %q) = %q, want %q", tt.server, tt.prior, got.ValueString(), tt.want)
		}
	}
}

func TestStagePoliciesRoundTrip(t *testing.T) {
	ctx := context.Background()
	in := map[string]registry.StagePolicy{
		"production": {RequireStage: "staging", MinSoak: "24h", MinMetrics: map[string]float64{"auc": 0.85}, RequireSignatureMatch: true},
		"staging":    {MaxMetrics: map[string]float64{"latency_ms": 50}},
	}
	v, diags := stagePoliciesValue(ctx, in, types.SetNull(stagePolicyObjectType))
	if diags.HasError() {
		t.Fatal(diags)
	}
	var blocks []stagePolicyModel
	if diags := v.ElementsAs(ctx, &blocks, false); diags.HasError() {
		t.Fatal(diags)
	}
	models := map[string]stagePolicyModel{}
	for _, b := range blocks {
		models[b.Stage.ValueString()] = b
	}
	if s := models["staging"]; !s.RequireStage.IsNull() || !s.MinSoak.IsNull() || !s.MinMetrics.IsNull() || !s.RequireSignatureMatch.IsNull() {
		t.Errorf("unset policy fields must be null: %+v", s)
	}
	out, diags := stagePoliciesFrom(ctx, v)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	// A configuration without stage_policy blocks reads as an empty set,
	// never null.
	if v, _ := stagePoliciesValue(ctx, nil, types.SetNull(stagePolicyObjectType)); v.IsNull() || len(v.Elements()) != 0 {
		t.Errorf("no policies = %v, want an empty set", v)
	}
}

// TestNotPermittedReadVersusWrite: a change the provider's token may not
// make fails the plan of a write token and warns a read token, which is
// for plans only. The messages are the registry's own (server scopeError
// and stageError).
func TestNotPermittedReadVersusWrite(t *testing.T) {
	for _, readOnly := range []bool{true, false} {
		var diags diag.Diagnostics
		addNotPermitted(&diags, path.Root("version"), "assign", `token "x" may not`, "a write token", readOnly)
		if diags.HasError() == readOnly || len(diags) != 1 {
			t.Errorf("readOnly %v: error = %v, %d diagnostics", readOnly, diags.HasError(), len(diags))
		}
	}
}
