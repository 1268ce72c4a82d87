package registry

import (
	"strings"
	"testing"
	"time"
)

func TestCheckLiveGuard(t *testing.T) {
	guard := &Guard{MaxErrorRate: 0.1, MinRequests: 10, Window: "1m", LiveMetric: &GuardLiveMetric{Metric: "correct", Floor: 0.9, MinCount: 50, Window: "15m"}}
	ep := func(routes ...Route) *Endpoint { return &Endpoint{Name: "ep", Guard: guard, Routes: routes} }
	sums := func(n int64, mean float64) LiveSums {
		return LiveSums{Count: n, Sum: mean * float64(n), SumSq: mean * float64(n)}
	}
	blue := Route{Name: "blue", Version: 1, Weight: 50}
	green := Route{Name: "green", Version: 2, Weight: 50}
	tests := []struct {
		name    string
		ep      *Endpoint
		live    map[int64]LiveSums
		weights []int // nil = no action
		msg     string
	}{
		{"no guard", &Endpoint{Routes: []Route{blue, green}}, map[int64]LiveSums{2: sums(100, 0.5)}, nil, ""},
		{"healthy", ep(blue, green), map[int64]LiveSums{1: sums(100, 0.95), 2: sums(100, 0.92)}, nil, ""},
		{"too few values", ep(blue, green), map[int64]LiveSums{1: sums(100, 0.95), 2: sums(49, 0.1)}, nil, ""},
		{"falls below the floor", ep(blue, green), map[int64]LiveSums{1: sums(100, 0.95), 2: sums(50, 0.8)}, []int{100, 0},
			"route green: live correct = 0.8 over 50 trusted feedback values in 15m is below the floor 0.9; moved weight 50 to blue"},
		{"to an untried route", ep(Route{Name: "a", Version: 1, Weight: 100}, Route{Name: "b", Version: 3}), map[int64]LiveSums{1: sums(60, 0.5)}, []int{0, 100}, "moved weight 100 to b"},
		{"every other route fails too", ep(blue, green), map[int64]LiveSums{1: sums(100, 0.5), 2: sums(100, 0.5)}, nil, ""},
		{"the better judged route wins", ep(Route{Name: "a", Version: 1, Weight: 80}, Route{Name: "b", Version: 2, Weight: 20}, Route{Name: "c", Version: 3}),
			map[int64]LiveSums{1: sums(100, 0.2), 2: sums(100, 0.91), 3: sums(100, 0.99)}, []int{0, 20, 80}, "moved weight 80 to c"},
		{"a drained route is not judged", ep(Route{Name: "a", Version: 1}, Route{Name: "b", Version: 2, Weight: 100}), map[int64]LiveSums{1: sums(100, 0.1)}, nil, ""},
		{"a matched route loses its match", ep(Route{Name: "a", Version: 1, Weight: 100}, Route{Name: "b", Version: 2, Match: &RouteMatch{Header: "X-Beta", Value: "1"}}),
			map[int64]LiveSums{2: sums(100, 0.1)}, []int{100, 0}, "route b: live correct = 0.1 over 100 trusted feedback values in 15m is below the floor 0.9; removed its header match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckLiveGuard(tt.ep, tt.live)
			if tt.weights == nil {
				if got != nil {
					t.Fatalf("want no action, got %+v", got)
				}
				return
			}
			if got == nil {
				t.Fatal("want an action, got none")
			}
			for i, w := range tt.weights {
				if got.Routes[i].Weight != w {
					t.Errorf("route %s weight %d, want %d", got.Routes[i].Name, got.Routes[i].Weight, w)
				}
				if got.Routes[i].Match != nil && strings.Contains(tt.msg, "removed its header match") {
					t.Errorf("route %s kept its match", got.Routes[i].Name)
				}
			}
			if !strings.Contains(got.Message, tt.msg) {
				t.Errorf("message %q should contain %q", got.Message, tt.msg)
			}
			if tt.ep.Routes[0].Weight != 0 && &got.Routes[0] == &tt.ep.Routes[0] {
				t.Error("the endpoint's routes were changed in place")
			}
		})
	}
}

func TestLiveGuardFromStartsAtTheLastChange(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 30, 20, 0, time.UTC)
	ep := &Endpoint{Guard: &Guard{LiveMetric: &GuardLiveMetric{Window: "15m"}}, UpdatedAt: now.Add(-time.Hour)}
	from, to, err := LiveGuardFrom(ep, now)
	if err != nil || !from.Equal(time.Date(2026, 3, 1, 12, 16, 0, 0, time.UTC)) || !to.Equal(time.Date(2026, 3, 1, 12, 31, 0, 0, time.UTC)) {
		t.Fatalf("window: %s..%s %v", from, to, err)
	}
	ep.UpdatedAt = now.Add(-5 * time.Minute)
	if from, _, _ = LiveGuardFrom(ep, now); !from.Equal(time.Date(2026, 3, 1, 12, 25, 0, 0, time.UTC)) {
		t.Fatalf("after a change: from %s", from)
	}
}

func TestGuardLiveMetricValidate(t *testing.T) {
	ok := GuardLiveMetric{Metric: "correct", Floor: 0.9, MinCount: 50, Window: "15m"}
	for _, c := range []struct {
		mod  func(g *GuardLiveMetric)
		want string
	}{
		{func(g *GuardLiveMetric) { g.Metric = "Correct" }, "guard.live_metric.metric"},
		{func(g *GuardLiveMetric) { g.MinCount = 0 }, "guard.live_metric.min_count"},
		{func(g *GuardLiveMetric) { g.Window = "" }, "guard.live_metric.window"},
		{func(g *GuardLiveMetric) { g.Window = "90s" }, "whole minutes"},
	} {
		g := ok
		c.mod(&g)
		err := (&Guard{MaxErrorRate: 0.1, MinRequests: 1, Window: "1m", LiveMetric: &g}).Validate("guard")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", g, err, c.want)
		}
	}
	if err := ok.Validate("guard.live_metric"); err != nil {
		t.Fatal(err)
	}
}

func TestCheckLiveGate(t *testing.T) {
	spec := RolloutSpec{MinLiveMetrics: map[string]float64{"correct": 0.9, "within_sla": 0.5}, MinLiveCount: 20}
	sums := func(n int64, mean float64) LiveSums {
		return LiveSums{Count: n, Sum: mean * float64(n), SumSq: mean * float64(n)}
	}
	for _, c := range []struct {
		name       string
		live       map[string]LiveSums
		fail, wait bool
		msg        string
	}{
		{"passes", map[string]LiveSums{"correct": sums(20, 0.95), "within_sla": sums(40, 0.5)}, false, false, "live correct 0.95 over 20 values within 0.9"},
		{"too few values", map[string]LiveSums{"correct": sums(19, 1)}, false, true, "waiting for feedback: 19 of 20 trusted values of live correct"},
		{"no feedback", nil, false, true, "0 of 20"},
		{"below the floor", map[string]LiveSums{"correct": sums(20, 0.5), "within_sla": sums(40, 1)}, true, false,
			"min_live_metrics: live correct = 0.5 over 20 trusted feedback values is below the floor 0.9"},
		{"second metric fails", map[string]LiveSums{"correct": sums(20, 1), "within_sla": sums(40, 0.25)}, true, false, "live within_sla = 0.25"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := CheckLiveGate(spec, c.live)
			if v.Fail != c.fail || v.Wait != c.wait || !strings.Contains(v.Message, c.msg) {
				t.Errorf("got %+v, want fail %v wait %v message containing %q", v, c.fail, c.wait, c.msg)
			}
		})
	}
	if v := CheckLiveGate(RolloutSpec{MinLiveMetrics: map[string]float64{"correct": 0.9}}, map[string]LiveSums{"correct": sums(99, 1)}); !v.Wait || !strings.Contains(v.Message, "99 of 100") {
		t.Errorf("default count: %+v", v)
	}
}
