package registry

import (
	"reflect"
	"testing"
)

func TestPolicyLoosenings(t *testing.T) {
	prod := StagePolicy{
		RequireStage:          "staging",
		MinSoak:               "24h",
		MinMetrics:            map[string]float64{"auc": 0.85, "recall": 0.7},
		MaxMetrics:            map[string]float64{"latency_ms": 50},
		RequireSignatureMatch: true,
	}
	with := func(f func(p *StagePolicy)) map[string]StagePolicy {
		p := prod
		p.MinMetrics = map[string]float64{"auc": 0.85, "recall": 0.7}
		p.MaxMetrics = map[string]float64{"latency_ms": 50}
		f(&p)
		return map[string]StagePolicy{"production": p}
	}
	base := map[string]StagePolicy{"production": prod}
	l := func(rule, before, after string) Loosening {
		return Loosening{Stage: "production", Rule: rule, Before: before, After: after}
	}
	tests := []struct {
		name          string
		before, after map[string]StagePolicy
		want          []Loosening
	}{
		{"no change", base, with(func(*StagePolicy) {}), nil},
		{"both empty", nil, nil, nil},
		{"policy added", nil, base, nil},
		{"new stage added", base, func() map[string]StagePolicy {
			m := with(func(*StagePolicy) {})
			m["staging"] = StagePolicy{MinMetrics: map[string]float64{"auc": 0.8}}
			return m
		}(), nil},
		{"min metric removed", base, with(func(p *StagePolicy) { delete(p.MinMetrics, "auc") }), []Loosening{l("min_metrics.auc", "0.85", "removed")}},
		{"min_metrics removed whole", base, with(func(p *StagePolicy) { p.MinMetrics = nil }), []Loosening{l("min_metrics.auc", "0.85", "removed"), l("min_metrics.recall", "0.7", "removed")}},
		{"min floor lowered", base, with(func(p *StagePolicy) { p.MinMetrics["auc"] = 0.8 }), []Loosening{l("min_metrics.auc", "0.85", "0.8")}},
		{"min floor raised", base, with(func(p *StagePolicy) { p.MinMetrics["auc"] = 0.9 }), nil},
		{"min metric added", base, with(func(p *StagePolicy) { p.MinMetrics["f1"] = 0.5 }), nil},
		{"max ceiling raised", base, with(func(p *StagePolicy) { p.MaxMetrics["latency_ms"] = 80 }), []Loosening{l("max_metrics.latency_ms", "50", "80")}},
		{"max ceiling lowered", base, with(func(p *StagePolicy) { p.MaxMetrics["latency_ms"] = 20 }), nil},
		{"max metric removed", base, with(func(p *StagePolicy) { p.MaxMetrics = map[string]float64{} }), []Loosening{l("max_metrics.latency_ms", "50", "removed")}},
		{"soak shortened", base, with(func(p *StagePolicy) { p.MinSoak = "12h" }), []Loosening{l("min_soak", "24h", "12h")}},
		{"soak same length other spelling", base, with(func(p *StagePolicy) { p.MinSoak = "1440m" }), nil},
		{"soak lengthened", base, with(func(p *StagePolicy) { p.MinSoak = "48h" }), nil},
		{"soak removed", base, with(func(p *StagePolicy) { p.MinSoak = "" }), []Loosening{l("min_soak", "24h", "removed")}},
		{"soak added", with(func(p *StagePolicy) { p.MinSoak = "" }), base, nil},
		{"require_stage dropped", base, with(func(p *StagePolicy) { p.RequireStage = ""; p.MinSoak = "" }), []Loosening{l("min_soak", "24h", "removed"), l("require_stage", "staging", "removed")}},
		{"require_stage changed", base, with(func(p *StagePolicy) { p.RequireStage = "canary" }), []Loosening{l("require_stage", "staging", "canary")}},
		{"signature match dropped", base, with(func(p *StagePolicy) { p.RequireSignatureMatch = false }), []Loosening{l("require_signature_match", "true", "false")}},
		{"whole stage policy removed", base, map[string]StagePolicy{}, []Loosening{l("stage_policy",
			"{require_stage=staging, min_soak=24h, min_metrics.auc=0.85, min_metrics.recall=0.7, max_metrics.latency_ms=50, require_signature_match=true}", "removed")}},
		{"live floor lowered", map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}}},
			map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.8}}}, []Loosening{l("min_live_metrics.correct", "0.9", "0.8")}},
		{"live floor removed", map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}, MinLiveCount: 50}},
			map[string]StagePolicy{"production": {MinMetrics: map[string]float64{"auc": 0.8}}}, []Loosening{l("min_live_metrics.correct", "0.9", "removed")}},
		{"live count below the default", map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}}},
			map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}, MinLiveCount: 20}}, []Loosening{l("min_live_count", "100", "20")}},
		{"live count raised", map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}}},
			map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.95}, MinLiveCount: 500}}, nil},
		{"live policy removed whole", map[string]StagePolicy{"production": {MinLiveMetrics: map[string]float64{"correct": 0.9}}}, nil,
			[]Loosening{l("stage_policy", "{min_live_metrics.correct=0.9, min_live_count=100}", "removed")}},
		{"empty stage policy removed", map[string]StagePolicy{"dev": {}}, nil, nil},
		{"several stages sorted by stage", map[string]StagePolicy{
			"staging":    {MinMetrics: map[string]float64{"auc": 0.8}},
			"production": {MaxMetrics: map[string]float64{"loss": 0.2}},
		}, map[string]StagePolicy{
			"staging":    {MinMetrics: map[string]float64{"auc": 0.7}},
			"production": {},
		}, []Loosening{
			l("max_metrics.loss", "0.2", "removed"),
			{Stage: "staging", Rule: "min_metrics.auc", Before: "0.8", After: "0.7"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PolicyLoosenings(tt.before, tt.after)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PolicyLoosenings =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestGuardLoosenings(t *testing.T) {
	g := &Guard{MaxErrorRate: 0.05, MinRequests: 100, Window: "5m"}
	with := func(f func(g *Guard)) *Guard { c := *g; f(&c); return &c }
	tests := []struct {
		name          string
		before, after *Guard
		want          []Loosening
	}{
		{"no guard", nil, nil, nil},
		{"guard added", nil, g, nil},
		{"unchanged", g, with(func(*Guard) {}), nil},
		{"removed", g, nil, []Loosening{{Rule: "guard", Before: "{max_error_rate=0.05, min_requests=100, window=5m}", After: "removed"}}},
		{"error rate raised", g, with(func(g *Guard) { g.MaxErrorRate = 0.2 }), []Loosening{{Rule: "guard.max_error_rate", Before: "0.05", After: "0.2"}}},
		{"error rate lowered", g, with(func(g *Guard) { g.MaxErrorRate = 0.01 }), nil},
		{"min requests raised", g, with(func(g *Guard) { g.MinRequests = 1000 }), []Loosening{{Rule: "guard.min_requests", Before: "100", After: "1000"}}},
		{"min requests lowered", g, with(func(g *Guard) { g.MinRequests = 10 }), nil},
		{"window widened", g, with(func(g *Guard) { g.Window = "1h" }), []Loosening{{Rule: "guard.window", Before: "5m", After: "1h"}}},
		{"window narrowed", g, with(func(g *Guard) { g.Window = "1m" }), nil},
		{"window respelt", g, with(func(g *Guard) { g.Window = "300s" }), nil},
		{"all three", g, &Guard{MaxErrorRate: 0.5, MinRequests: 101, Window: "10m"}, []Loosening{
			{Rule: "guard.max_error_rate", Before: "0.05", After: "0.5"},
			{Rule: "guard.min_requests", Before: "100", After: "101"},
			{Rule: "guard.window", Before: "5m", After: "10m"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := GuardLoosenings(tt.before, tt.after)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GuardLoosenings =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestLooseningString(t *testing.T) {
	for _, tt := range []struct {
		l    Loosening
		want string
	}{
		{Loosening{Stage: "production", Rule: "min_metrics.auc", Before: "0.85", After: "removed"}, "Loosens the production stage policy: min_metrics.auc 0.85 -> removed"},
		{Loosening{Rule: "guard.window", Before: "5m", After: "1h"}, "Weakens the endpoint guard: guard.window 5m -> 1h"},
	} {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestStageBindingLoosenings(t *testing.T) {
	tests := []struct {
		name, before, after string
		want                []Loosening
	}{
		{"unchanged", "production", "production", nil},
		{"never bound", "", "", nil},
		{"bound", "", "production", nil},
		{"unbound", "production", "", []Loosening{{Stage: "production", Rule: "stage", Before: "production", After: "removed"}}},
		{"bound to another stage", "production", "staging", []Loosening{{Stage: "production", Rule: "stage", Before: "production", After: "staging"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StageBindingLoosenings(tt.before, tt.after); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	l := StageBindingLoosenings("production", "")[0]
	if want := "Unbinds the endpoint from the production stage: its routes are no longer checked against the production stage policy (stage production -> removed)"; l.String() != want {
		t.Errorf("String() = %q, want %q", l.String(), want)
	}
}
