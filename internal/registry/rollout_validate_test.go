package registry

import (
	"math"
	"strings"
	"testing"
)

func TestRolloutSpecValidate(t *testing.T) {
	rate := func(f float64) *float64 { return &f }
	ok := func() RolloutSpec {
		return RolloutSpec{Steps: []int{10, 50, 100}, Bake: "10m", MaxErrorRate: rate(0.05), MaxLatencyP99: "500ms", MinRequests: 20}
	}
	with := func(f func(*RolloutSpec)) *RolloutSpec { s := ok(); f(&s); return &s }
	guard := &Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "5m"}
	prom := PrometheusGate{Query: `sum(rate(x{version="$version"}[1m]))`, Threshold: 1, Comparison: "<"}
	tests := []struct {
		name  string
		spec  *RolloutSpec
		guard *Guard
		field string
		rule  string
	}{
		{"nil", nil, nil, "", ""},
		{"full", with(func(*RolloutSpec) {}), guard, "", ""},
		{"timed rollout, no gate", &RolloutSpec{Steps: []int{100}, Bake: "1s"}, nil, "", ""},
		{"min_requests alone", &RolloutSpec{Steps: []int{100}, Bake: "1s", MinRequests: 5}, nil, "", ""},
		{"no steps", with(func(s *RolloutSpec) { s.Steps = nil }), nil, "rollout.steps", "min_items"},
		{"21 steps", with(func(s *RolloutSpec) {
			s.Steps = nil
			for i := 80; i <= 100; i++ {
				s.Steps = append(s.Steps, i)
			}
		}), nil, "rollout.steps", "max_items"},
		{"20 steps", with(func(s *RolloutSpec) {
			s.Steps = nil
			for i := 81; i <= 100; i++ {
				s.Steps = append(s.Steps, i)
			}
		}), nil, "", ""},
		{"step 0", with(func(s *RolloutSpec) { s.Steps = []int{0, 100} }), nil, "rollout.steps[0]", "range"},
		{"step 101", with(func(s *RolloutSpec) { s.Steps = []int{50, 101} }), nil, "rollout.steps[1]", "range"},
		{"not increasing", with(func(s *RolloutSpec) { s.Steps = []int{10, 50, 25, 100} }), nil, "rollout.steps[2]", "increasing"},
		{"repeated", with(func(s *RolloutSpec) { s.Steps = []int{50, 50, 100} }), nil, "rollout.steps[1]", "increasing"},
		{"not ending at 100", with(func(s *RolloutSpec) { s.Steps = []int{10, 50} }), nil, "rollout.steps", "last"},
		{"no bake", with(func(s *RolloutSpec) { s.Bake = "" }), nil, "rollout.bake", "required"},
		{"bad bake", with(func(s *RolloutSpec) { s.Bake = "soon" }), nil, "rollout.bake", "duration"},
		{"short bake", with(func(s *RolloutSpec) { s.Bake = "500ms" }), nil, "rollout.bake", "range"},
		{"long bake", with(func(s *RolloutSpec) { s.Bake = "25h" }), nil, "rollout.bake", "range"},
		{"bake shorter than the guard window", with(func(s *RolloutSpec) { s.Bake = "4m" }), guard, "rollout.bake", "guard_window"},
		{"bake equal to the guard window", with(func(s *RolloutSpec) { s.Bake = "5m" }), guard, "", ""},
		{"error rate 0", with(func(s *RolloutSpec) { s.MaxErrorRate = rate(0) }), nil, "rollout.max_error_rate", "range"},
		{"error rate above 1", with(func(s *RolloutSpec) { s.MaxErrorRate = rate(1.01) }), nil, "rollout.max_error_rate", "range"},
		{"error rate NaN", with(func(s *RolloutSpec) { s.MaxErrorRate = rate(math.NaN()) }), nil, "rollout.max_error_rate", "range"},
		{"error rate 1", with(func(s *RolloutSpec) { s.MaxErrorRate = rate(1) }), nil, "", ""},
		{"bad p99", with(func(s *RolloutSpec) { s.MaxLatencyP99 = "fast" }), nil, "rollout.max_latency_p99", "duration"},
		{"tiny p99", with(func(s *RolloutSpec) { s.MaxLatencyP99 = "500us" }), nil, "rollout.max_latency_p99", "range"},
		{"huge p99", with(func(s *RolloutSpec) { s.MaxLatencyP99 = "11m" }), nil, "rollout.max_latency_p99", "range"},
		{"negative min_requests", with(func(s *RolloutSpec) { s.MinRequests = -1 }), nil, "rollout.min_requests", "min"},
		{"error gate without min_requests", with(func(s *RolloutSpec) { s.MinRequests = 0; s.MaxLatencyP99 = "" }), nil, "rollout.min_requests", "required"},
		{"latency gate without min_requests", with(func(s *RolloutSpec) { s.MinRequests = 0; s.MaxErrorRate = nil }), nil, "rollout.min_requests", "required"},
		{"prometheus ok", with(func(s *RolloutSpec) { s.Prometheus = []PrometheusGate{prom, prom, prom, prom, prom} }), nil, "", ""},
		{"six prometheus gates", with(func(s *RolloutSpec) { s.Prometheus = []PrometheusGate{prom, prom, prom, prom, prom, prom} }), nil, "rollout.prometheus", "max_items"},
		{"empty query", with(func(s *RolloutSpec) { s.Prometheus = []PrometheusGate{prom, {Query: " ", Comparison: "<"}} }), nil, "rollout.prometheus[1].query", "required"},
		{"long query", with(func(s *RolloutSpec) {
			s.Prometheus = []PrometheusGate{{Query: strings.Repeat("x", MaxPrometheusQueryLen+1), Comparison: "<"}}
		}), nil, "rollout.prometheus[0].query", "max_length"},
		{"bad comparison", with(func(s *RolloutSpec) { s.Prometheus = []PrometheusGate{{Query: "up", Comparison: "=="}} }), nil, "rollout.prometheus[0].comparison", "enum"},
		{"infinite threshold", with(func(s *RolloutSpec) {
			s.Prometheus = []PrometheusGate{{Query: "up", Comparison: ">=", Threshold: math.Inf(1)}}
		}), nil, "rollout.prometheus[0].threshold", "finite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectField(t, tt.spec.Validate("rollout", tt.guard), tt.field, tt.rule)
		})
	}
}

func TestEndpointValidateRollout(t *testing.T) {
	routes := []Route{{Name: "main", Version: 1, UpstreamURL: "http://10.0.0.1:8080", Weight: 100}}
	create := EndpointCreate{Name: "e", Model: "m", Routes: routes,
		Guard:   &Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "5m"},
		Rollout: &RolloutSpec{Steps: []int{50, 100}, Bake: "1m"}}
	expectField(t, create.Validate(), "rollout.bake", "guard_window")
	create.Rollout.Bake = "5m"
	expectField(t, create.Validate(), "", "")

	p := EndpointPatch{Rollout: &RolloutSpec{Steps: []int{50, 100}, Bake: "1m"}, ClearRollout: true}
	expectField(t, p.Validate(), "clear_rollout", "exclusive")
	p = EndpointPatch{Rollout: &RolloutSpec{Steps: []int{50}, Bake: "1m"}}
	expectField(t, p.Validate(), "rollout.steps", "last")
}

func TestValidateShadowRoutes(t *testing.T) {
	primary := Route{Name: "stable", Version: 1, UpstreamURL: "http://10.0.0.1:8080", Weight: 100}
	sh := func(name string, share float64) Route {
		return Route{Name: name, Version: 2, UpstreamURL: "http://10.0.0.2:8080", Shadow: true, Share: share}
	}
	tests := []struct {
		name   string
		routes []Route
		field  string
		rule   string
	}{
		{"one shadow", []Route{primary, sh("s", 0.25)}, "", ""},
		{"share 1", []Route{primary, sh("s", 1)}, "", ""},
		{"share 0", []Route{primary, sh("s", 0)}, "routes[1].share", "range"},
		{"share above 1", []Route{primary, sh("s", 1.5)}, "routes[1].share", "range"},
		{"share NaN", []Route{primary, sh("s", math.NaN())}, "routes[1].share", "range"},
		{"share on a primary", []Route{{Name: "stable", Version: 1, UpstreamURL: "http://10.0.0.1:8080", Weight: 100, Share: 0.5}}, "routes[0].share", "shadow_only"},
		{"shadow with weight", []Route{{Name: "stable", Version: 1, UpstreamURL: "http://10.0.0.1:8080", Weight: 90}, func() Route { r := sh("s", 1); r.Weight = 10; return r }()}, "routes[1].weight", "shadow"},
		{"shadow with match", []Route{primary, func() Route { r := sh("s", 1); r.Match = &RouteMatch{Header: "X-A", Value: "b"}; return r }()}, "routes[1].match", "shadow"},
		{"four shadows", []Route{primary, sh("a", 1), sh("b", 1), sh("c", 1), sh("d", 1)}, "", ""},
		{"five shadows", []Route{primary, sh("a", 1), sh("b", 1), sh("c", 1), sh("d", 1), sh("e", 1)}, "routes", "max_shadows"},
		{"only shadows", []Route{sh("a", 1)}, "routes", "min_items"},
		{"shadow name unique", []Route{primary, sh("stable", 1)}, "routes[1].name", "unique"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectField(t, ValidateRoutes("routes", tt.routes), tt.field, tt.rule)
		})
	}
}
