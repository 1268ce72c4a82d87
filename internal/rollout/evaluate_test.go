package rollout

import (
	"fmt"

	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// v1ToV2 is an endpoint moving route "main" from version 1 to version 2
// (steps 25, 50, 100; bake 1m), at step 1 since t0, with spec's gates.
func v1ToV2(spec registry.RolloutSpec) registry.Endpoint {
	spec.Steps = []int{25, 50, 100}
	spec.Bake = "1m"
	from := []registry.Route{{Name: "main", Version: 1, UpstreamURL: "http://v1", Weight: 100}}
	target := []registry.Route{{Name: "main", Version: 2, UpstreamURL: "http://v2", Weight: 100}}
	st := registry.StartRollout(spec, from, target, nil, 7, 3, t0)
	return registry.Endpoint{Name: "ep", Model: "m", Routes: target, Rollout: &registry.EndpointRollout{RolloutSpec: spec, RolloutStatus: &st}}
}

// at returns ep moved to step (1-based), baking since since.
func at(ep registry.Endpoint, step int, since time.Time) registry.Endpoint {
	st := *ep.Rollout.RolloutStatus
	st.Step = step
	st.Routes = registry.RolloutWeights(st.From, ep.Routes, st.StepPercents[step-1])
	st.StepStarted = since
	next := since.Add(registry.RolloutBake(ep.Rollout.RolloutSpec))
	st.NextStepAt = &next
	ep.Rollout = &registry.EndpointRollout{RolloutSpec: ep.Rollout.RolloutSpec, RolloutStatus: &st}
	return ep
}

// observed is what the gateways saw on route during the step: n requests,
// errs of them failed, every one taking lat.
func observed(route string, version, n, errs int64, lat time.Duration) registry.RolloutObservation {
	bins := make([]int64, registry.LatencyBins)
	bins[registry.LatencyBin(lat)] = n
	return registry.RolloutObservation{Endpoint: "ep", RolloutID: 7, Step: 1, Route: route, Version: version, Requests: n, Errors: errs, Latency: bins}
}

var gated = registry.RolloutSpec{MaxErrorRate: ptr(0.05), MaxLatencyP99: "500ms", MinRequests: 20}

func TestEvaluate(t *testing.T) {
	baked := t0.Add(time.Minute)
	tests := []struct {
		name string
		ep   registry.Endpoint
		obs  []registry.RolloutObservation
		now  time.Time
		prom []QueryResult
		// want: the action, and a check of the decision.
		action  string
		check   func(t *testing.T, d Decision)
		wantErr string
	}{
		{name: "no rollout", ep: registry.Endpoint{Name: "ep"}, now: baked},
		{name: "paused", ep: with(v1ToV2(gated), func(st *registry.RolloutStatus) { st.State = registry.RolloutPaused; st.NextStepAt = nil }), now: baked.Add(time.Hour)},
		{name: "completed", ep: with(v1ToV2(gated), func(st *registry.RolloutStatus) { st.State = registry.RolloutCompleted }), now: baked.Add(time.Hour)},
		{name: "baking without requests", ep: v1ToV2(gated), now: t0.Add(30 * time.Second)},
		{name: "baking, gates hold", ep: v1ToV2(gated), obs: []registry.RolloutObservation{observed("main", 2, 40, 1, 20*time.Millisecond)}, now: t0.Add(30 * time.Second)},
		{
			name: "errors below min_requests are not judged", ep: v1ToV2(gated),
			obs: []registry.RolloutObservation{observed("main", 2, 19, 19, 20*time.Millisecond)}, now: t0.Add(30 * time.Second),
		},
		{
			name: "error rate fails before the bake ends", ep: v1ToV2(gated),
			obs: []registry.RolloutObservation{observed("main", 2, 40, 10, 20*time.Millisecond)}, now: t0.Add(30 * time.Second),
			action: registry.ActionEndpointRolloutRolledBack,
			check: func(t *testing.T, d Decision) {
				wantMessage(t, d, "rollout rolled back at step 1 (25%): route main (v2): max_error_rate 0.25 over 40 requests exceeded 0.05")
				wantEnded(t, d, registry.RolloutRolledBack, t0.Add(30*time.Second))
				g := d.Next.LastGate
				if g == nil || g.Gate != GateMaxErrorRate || g.Route != "main" || g.Version != 2 || g.Value != 0.25 || g.Threshold != 0.05 || g.Requests != 40 || g.Passed {
					t.Fatalf("last gate %+v", g)
				}
			},
		},
		{
			name: "latency p99 fails at step 2", ep: at(v1ToV2(gated), 2, t0),
			obs: []registry.RolloutObservation{observed("main", 2, 40, 0, 800*time.Millisecond)}, now: t0.Add(10 * time.Second),
			action: registry.ActionEndpointRolloutRolledBack,
			check: func(t *testing.T, d Decision) {
				// Every request in the 500ms..1s bin: the estimate interpolates to 995ms.
				wantMessage(t, d, "rollout rolled back at step 2 (50%): route main (v2): max_latency_p99 995ms over 40 requests exceeded 500ms")
				if g := d.Next.LastGate; g.Gate != GateMaxLatencyP99 || g.Threshold != 0.5 || g.Value < 0.99 || g.Value > 1 {
					t.Fatalf("last gate %+v", g)
				}
				wantEnded(t, d, registry.RolloutRolledBack, t0.Add(10*time.Second))
			},
		},
		{
			name: "the losing old version's errors do not count", ep: v1ToV2(gated),
			obs: []registry.RolloutObservation{observed("main@v1", 1, 100, 100, time.Second), observed("main", 2, 40, 0, time.Millisecond)}, now: baked,
			action: registry.ActionEndpointRolloutStep,
		},
		{
			name: "observations of several processes are summed", ep: v1ToV2(gated),
			obs: []registry.RolloutObservation{observed("main", 2, 15, 1, time.Millisecond), observed("main", 2, 15, 0, time.Millisecond)}, now: baked,
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				if g := d.Next.LastGate; g == nil || !g.Passed || g.Requests != 30 {
					t.Fatalf("last gate %+v, want passed over 30 requests", g)
				}
			},
		},
		{
			name: "baked, too few requests: waits", ep: v1ToV2(gated),
			obs: []registry.RolloutObservation{observed("main", 2, 3, 0, time.Millisecond)}, now: baked,
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				if d.Next.Step != 1 || d.Next.State != registry.RolloutProgressing || d.Next.Seq != 5 {
					t.Fatalf("waiting step moved: %+v", d.Next)
				}
				g := d.Next.LastGate
				if g == nil || g.Gate != GateMinRequests || g.Passed || g.Message != "waiting for requests: 3 of 20 on route main (v2)" {
					t.Fatalf("last gate %+v", g)
				}
			},
		},
		{
			name: "already waiting: nothing new to record", ep: with(v1ToV2(gated), func(st *registry.RolloutStatus) {
				st.LastGate = &registry.GateResult{Gate: GateMinRequests, Route: "main", Version: 2, Message: "waiting for requests: 1 of 20 on route main (v2)", At: t0.Add(time.Minute)}
			}),
			obs: []registry.RolloutObservation{observed("main", 2, 3, 0, time.Millisecond)}, now: baked.Add(time.Second),
		},
		{
			name: "baked, gates hold: next step", ep: v1ToV2(gated),
			obs: []registry.RolloutObservation{observed("main", 2, 40, 1, 20*time.Millisecond)}, now: baked,
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				n := d.Next
				if n.Step != 2 || n.State != registry.RolloutProgressing || !n.StepStarted.Equal(baked) || n.NextStepAt == nil || !n.NextStepAt.Equal(baked.Add(time.Minute)) || n.Seq != 5 {
					t.Fatalf("next %+v", n)
				}
				want := []registry.Route{
					{Name: "main", Version: 2, UpstreamURL: "http://v2", Weight: 50},
					{Name: "main@v1", Version: 1, UpstreamURL: "http://v1", Weight: 50},
				}
				if !sameWeights(n.Routes, want) {
					t.Fatalf("step 2 routes %+v, want %+v", n.Routes, want)
				}
				if g := n.LastGate; g == nil || !g.Passed || g.Gate != GateMaxErrorRate || !strings.Contains(g.Message, "error rate 0.025 within 0.05, p99 ") {
					t.Fatalf("last gate %+v", g)
				}
			},
		},
		{
			name: "last step baked: completed", ep: at(v1ToV2(gated), 3, t0),
			obs: []registry.RolloutObservation{observed("main", 2, 40, 0, 20*time.Millisecond)}, now: baked,
			action: registry.ActionEndpointRolloutCompleted,
			check: func(t *testing.T, d Decision) {
				wantEnded(t, d, registry.RolloutCompleted, baked)
				wantMessage(t, d, "rollout completed after 3 steps")
				if !sameWeights(d.Next.Routes, []registry.Route{{Name: "main", Version: 2, Weight: 100}}) {
					t.Fatalf("completed routes %+v", d.Next.Routes)
				}
			},
		},
		{
			name: "timed rollout: no gates, no requests needed", ep: v1ToV2(registry.RolloutSpec{}), now: baked,
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				if d.Next.Step != 2 || d.Next.LastGate != nil {
					t.Fatalf("next %+v", d.Next)
				}
			},
		},
		{
			name: "min_requests alone holds and then passes", ep: v1ToV2(registry.RolloutSpec{MinRequests: 5}),
			obs: []registry.RolloutObservation{observed("main", 2, 5, 5, time.Second)}, now: baked,
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				if g := d.Next.LastGate; d.Next.Step != 2 || g == nil || !g.Passed || g.Gate != GateMinRequests {
					t.Fatalf("next %+v gate %+v", d.Next, g)
				}
			},
		},
		{
			name: "baked: prometheus gates asked", ep: v1ToV2(promSpec),
			obs: []registry.RolloutObservation{observed("main", 2, 40, 0, time.Millisecond)}, now: baked,
			check: func(t *testing.T, d Decision) {
				want := []Query{
					{Gate: 0, Route: "main", Version: 2, PromQL: `sum(rate(errors{endpoint="ep",route="main",version="2"}[1m]))`},
					{Gate: 1, Route: "main", Version: 2, PromQL: `up`},
				}
				if !reflect.DeepEqual(d.Queries, want) {
					t.Fatalf("queries %+v, want %+v", d.Queries, want)
				}
			},
		},
		{
			name: "prometheus gates pass", ep: v1ToV2(promSpec), now: baked,
			obs:    []registry.RolloutObservation{observed("main", 2, 40, 0, time.Millisecond)},
			prom:   []QueryResult{{Query: Query{Gate: 0, Route: "main"}, Value: 0.001}, {Query: Query{Gate: 1, Route: "main"}, Value: 1}},
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				if g := d.Next.LastGate; d.Next.Step != 2 || !strings.Contains(g.Message, "prometheus[0] value 0.001 < 0.01") || !strings.Contains(g.Message, "prometheus[1] value 1 >= 1") {
					t.Fatalf("next %+v gate %+v", d.Next, g)
				}
			},
		},
		{
			name: "prometheus gate fails", ep: v1ToV2(promSpec), now: baked,
			obs:    []registry.RolloutObservation{observed("main", 2, 40, 0, time.Millisecond)},
			prom:   []QueryResult{{Query: Query{Gate: 0, Route: "main"}, Value: 0.2}, {Query: Query{Gate: 1, Route: "main"}, Value: 1}},
			action: registry.ActionEndpointRolloutRolledBack,
			check: func(t *testing.T, d Decision) {
				wantMessage(t, d, "rollout rolled back at step 1 (25%): route main (v2): prometheus[0] value 0.2 is not < 0.01")
				if g := d.Next.LastGate; g.Gate != "prometheus[0]" || g.Value != 0.2 || g.Threshold != 0.01 || g.Requests != 40 {
					t.Fatalf("last gate %+v", g)
				}
			},
		},
		{
			name: "prometheus query error fails the gate", ep: v1ToV2(promSpec), now: baked,
			obs:    []registry.RolloutObservation{observed("main", 2, 40, 0, time.Millisecond)},
			prom:   []QueryResult{{Query: Query{Gate: 0, Route: "main"}, Err: ErrNoSample}, {Query: Query{Gate: 1, Route: "main"}, Value: 1}},
			action: registry.ActionEndpointRolloutRolledBack,
			check: func(t *testing.T, d Decision) {
				wantMessage(t, d, "rollout rolled back at step 1 (25%): route main (v2): prometheus[0] failed: the query returned no sample")
			},
		},
		{
			name: "prometheus waits for min_requests first", ep: v1ToV2(promSpec), now: baked,
			obs:    []registry.RolloutObservation{observed("main", 2, 2, 0, time.Millisecond)},
			action: registry.ActionEndpointRolloutStep,
			check: func(t *testing.T, d Decision) {
				if len(d.Queries) != 0 || d.Next.LastGate.Gate != GateMinRequests {
					t.Fatalf("decision %+v", d)
				}
			},
		},
		{
			name:    "bad bake",
			ep:      with(v1ToV2(gated), func(*registry.RolloutStatus) {}, func(s *registry.RolloutSpec) { s.Bake = "soon" }),
			now:     baked,
			wantErr: `rollout bake "soon"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Evaluate(tc.ep, tc.obs, tc.now, tc.prom)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tc.action {
				t.Fatalf("action %q, want %q (next %+v, gate %+v)", d.Action, tc.action, d.Next, d.Next.LastGate)
			}
			if tc.action != "" && d.Next.ID != tc.ep.Rollout.ID {
				t.Fatalf("next id %d, want %d", d.Next.ID, tc.ep.Rollout.ID)
			}
			if tc.action != "" && d.Next.Seq != tc.ep.Rollout.Seq+1 {
				t.Fatalf("next seq %d, want %d", d.Next.Seq, tc.ep.Rollout.Seq+1)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

var promSpec = registry.RolloutSpec{MinRequests: 10, Prometheus: []registry.PrometheusGate{
	{Query: `sum(rate(errors{endpoint="$endpoint",route="$route",version="$version"}[1m]))`, Comparison: "<", Threshold: 0.01},
	{Query: `up`, Comparison: ">=", Threshold: 1},
}}

// TestEvaluateGainingRoutes: with a plain weight shift the gates judge the
// route gaining weight, not the one losing it.
func TestEvaluateGainingRoutes(t *testing.T) {
	spec := gated
	spec.Steps, spec.Bake = []int{50, 100}, "1m"
	from := []registry.Route{{Name: "stable", Version: 1, Weight: 90}, {Name: "canary", Version: 2, Weight: 10}}
	target := []registry.Route{{Name: "stable", Version: 1, Weight: 10}, {Name: "canary", Version: 2, Weight: 90}}
	st := registry.StartRollout(spec, from, target, nil, 1, 0, t0)
	ep := registry.Endpoint{Name: "ep", Routes: target, Rollout: &registry.EndpointRollout{RolloutSpec: spec, RolloutStatus: &st}}
	failingStable := []registry.RolloutObservation{observed("stable", 1, 100, 100, time.Millisecond), observed("canary", 2, 30, 0, time.Millisecond)}
	d, err := Evaluate(ep, failingStable, t0.Add(time.Minute), nil)
	if err != nil || d.Action != registry.ActionEndpointRolloutStep {
		t.Fatalf("failing losing route: action %q err %v, want a step", d.Action, err)
	}
	failingCanary := []registry.RolloutObservation{observed("stable", 1, 100, 0, time.Millisecond), observed("canary", 2, 30, 30, time.Millisecond)}
	d, err = Evaluate(ep, failingCanary, t0.Add(time.Second), nil)
	if err != nil || d.Action != registry.ActionEndpointRolloutRolledBack || d.Next.LastGate.Route != "canary" {
		t.Fatalf("failing gaining route: action %q err %v gate %+v, want a rollback naming canary", d.Action, err, d.Next.LastGate)
	}
	if !sameWeights(d.Next.Routes, from) {
		t.Fatalf("rolled back to %+v, want %+v", d.Next.Routes, from)
	}
}

func with(ep registry.Endpoint, f func(*registry.RolloutStatus), specs ...func(*registry.RolloutSpec)) registry.Endpoint {
	st := *ep.Rollout.RolloutStatus
	f(&st)
	spec := ep.Rollout.RolloutSpec
	for _, g := range specs {
		g(&spec)
	}
	ep.Rollout = &registry.EndpointRollout{RolloutSpec: spec, RolloutStatus: &st}
	return ep
}

func wantMessage(t *testing.T, d Decision, want string) {
	t.Helper()
	if d.Next.Message != want {
		t.Fatalf("message\n got %q\nwant %q", d.Next.Message, want)
	}
}

func wantEnded(t *testing.T, d Decision, state string, at time.Time) {
	t.Helper()
	n := d.Next
	if n.State != state || n.EndedAt == nil || !n.EndedAt.Equal(at) || n.NextStepAt != nil {
		t.Fatalf("next %+v, want %s at %s", n, state, at)
	}
	if state != registry.RolloutCompleted && !sameWeights(n.Routes, n.From) {
		t.Fatalf("%s with routes %+v, want the ones it started from %+v", state, n.Routes, n.From)
	}
}

// sameWeights compares routes by name, version and weight.
func sameWeights(a, b []registry.Route) bool {
	key := func(rs []registry.Route) map[string]int {
		m := map[string]int{}
		for _, r := range rs {
			m[fmt.Sprintf("%s/%d", r.Name, r.Version)] = r.Weight
		}
		return m
	}
	return reflect.DeepEqual(key(a), key(b))
}
