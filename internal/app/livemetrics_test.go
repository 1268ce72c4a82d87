package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestLiveMetricsDecide is the whole loop: two versions behind an
// endpoint, real predictions through /serve/, feedback from each answer's
// receipt (the application's own, with a serve token, and the ground
// truth, with a write token), live metrics per version that match what was
// sent, a stage policy that refuses promoting the version whose live
// accuracy is below its floor, and the guard, judged by the rollout
// driver's leader, rolling back the route whose live metric fell.
func TestLiveMetricsDecide(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) { c.RolloutTick = 10 * time.Millisecond }))
	splitEndpoint(t, r)
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/models/m", r.AdminToken, map[string]any{
		"stage_policies": map[string]any{"production": map[string]any{"min_live_metrics": map[string]any{"correct": 0.9}, "min_live_count": 20}},
	}), http.StatusOK)
	serve := serveToken(t, r, "app", "ep")
	truth := r.Token(t, "labels", registry.ScopeWrite)

	// Version 1 is right 19 times in 20, version 2 twice in 3. The
	// application's clients (serve token) claim every answer was right.
	want := map[int64]*sums{1: {}, 2: {}}
	var labelled []feedbackItem
	n := map[int64]int{}
	for len(labelled) < 200 && (n[1] < 25 || n[2] < 25) {
		p := predict(t, r, "ep", serve)
		i := n[p.version]
		n[p.version]++
		correct := 1.0
		if (p.version == 1 && i%20 == 19) || (p.version == 2 && i%3 == 2) {
			correct = 0
		}
		want[p.version].add(correct)
		labelled = append(labelled, feedbackItem{Receipt: p.receipt, Metrics: map[string]any{"correct": correct}})
	}
	if n[1] < 25 || n[2] < 25 {
		t.Fatalf("traffic split %v", n)
	}
	// A request's feedback counts once, so the clients' claims are about
	// other requests of version 2.
	var claimed []feedbackItem
	for len(claimed) < 20 {
		if p := predict(t, r, "ep", serve); p.version == 2 {
			claimed = append(claimed, feedbackItem{Receipt: p.receipt, Metrics: map[string]any{"correct": 1}})
		}
	}
	if res := sendFeedback(t, r, "ep", serve, claimed); res.Accepted != len(claimed) {
		t.Fatalf("serve-token feedback: %+v", res)
	}
	if res := sendFeedback(t, r, "ep", truth, labelled); res.Accepted != len(labelled) || len(res.Rejected) != 0 {
		t.Fatalf("write-token feedback: %+v", res)
	}

	// Live metrics per version: every value counts; trusted ones apart.
	for v := int64(1); v <= 2; v++ {
		var lm registry.LiveMetrics
		getJSON(t, r, fmt.Sprintf("/api/v1/models/m/versions/%d/live-metrics?window=1h", v), &lm)
		w := want[v]
		all, trusted := lm.Metrics["correct"], lm.Trusted["correct"]
		wantAll := w.n
		if v == 2 {
			wantAll += int64(len(claimed))
		}
		if trusted.Count != w.n || math.Abs(trusted.Mean-w.sum/float64(w.n)) > 1e-9 || all.Count != wantAll {
			t.Errorf("version %d: trusted %d values mean %v, all %d; want trusted %d mean %v, all %d",
				v, trusted.Count, trusted.Mean, all.Count, w.n, w.sum/float64(w.n), wantAll)
		}
	}

	// The policy refuses version 2 and names the metric, mean, count and
	// floor; version 1 passes.
	res := call(t, "PUT", r.URL+"/api/v1/models/m/stages/production", r.AdminToken, map[string]any{"version": 2})
	body, _ := io.ReadAll(res.Body)
	mean2 := want[2].sum / float64(want[2].n)
	wantMsg := fmt.Sprintf("version 2 has live correct = %g over %d trusted feedback values in the last 24h, policy for \"production\" needs mean >= 0.9", mean2, want[2].n)
	var problem struct{ Rule, Detail string }
	_ = json.Unmarshal(body, &problem)
	if res.StatusCode != http.StatusUnprocessableEntity || problem.Rule != "min_live_metrics" || !strings.Contains(problem.Detail, wantMsg) {
		t.Fatalf("promote version 2: %d %s\nwant a min_live_metrics refusal saying %q", res.StatusCode, body, wantMsg)
	}
	mustStatus(t, call(t, "PUT", r.URL+"/api/v1/models/m/stages/production", r.AdminToken, map[string]any{"version": 1}), http.StatusOK)

	// Arm the guard (the routes keep their weights, so the feedback of
	// this minute counts) and wait for the leader to roll green back.
	ep := map[string]any{}
	getJSON(t, r, "/api/v1/endpoints/ep", &ep)
	mustStatus(t, call(t, "PATCH", r.URL+"/api/v1/endpoints/ep", r.AdminToken, map[string]any{
		"guard": map[string]any{"max_error_rate": 0.5, "min_requests": 100, "window": "1m",
			"live_metric": map[string]any{"metric": "correct", "floor": 0.9, "min_count": 20, "window": "15m"}},
	}), http.StatusOK)
	var after registry.Endpoint
	waitUntil(t, func() bool {
		getJSON(t, r, "/api/v1/endpoints/ep", &after)
		return after.Status == registry.EndpointStatusRolledBack
	})
	if after.Routes[0].Weight != 100 || after.Routes[1].Weight != 0 {
		t.Errorf("weights after the rollback: %+v", after.Routes)
	}
	wantGuard := fmt.Sprintf("route green: live correct = %g over %d trusted feedback values in 15m is below the floor 0.9; moved weight 50 to blue", mean2, want[2].n)
	if after.StatusMessage != wantGuard {
		t.Errorf("status message %q, want %q", after.StatusMessage, wantGuard)
	}
	resp := call(t, "GET", r.URL+"/api/v1/events?endpoint=ep&page_size=1000", r.AdminToken, nil)
	mustStatus(t, resp, http.StatusOK)
	var page struct {
		Items []registry.Event `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range page.Items {
		if e.Action == registry.ActionEndpointGuardRollback && e.Actor == "system" && strings.Contains(string(e.After), wantGuard) {
			found++
		}
	}
	if found != 1 {
		t.Errorf("want one endpoint.guard_rollback event naming the metric, got %d", found)
	}
}

// TestRolloutLiveMetricsGate: a rollout with min_live_metrics holds a
// baked step until the gaining version has enough trusted feedback since
// the step began, advances when its mean meets the floor, and rolls back
// when it does not.
func TestRolloutLiveMetricsGate(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(rolloutConfig))
	v1, v2 := newModel(t, "v1"), newModel(t, "v2")
	seedRollout(t, r, v1, map[string]any{"steps": []int{50, 100}, "bake": "1m", "min_live_metrics": map[string]any{"correct": 0.9}, "min_live_count": 10})
	toV2(t, r, v2)
	// feedback sends trusted feedback (an admin token) for n answers of v2.
	feedback := func(n int, correct float64) {
		t.Helper()
		var items []feedbackItem
		for len(items) < n {
			if p := predict(t, r, "ep", r.AdminToken); p.version == 2 {
				items = append(items, feedbackItem{Receipt: p.receipt, Metrics: map[string]any{"correct": correct}})
			}
		}
		if res := sendFeedback(t, r, "ep", r.AdminToken, items); res.Accepted != n {
			t.Fatalf("feedback: %+v", res)
		}
	}

	r.Clock.Advance(bake)
	e := waitRollout(t, r, "waiting for feedback", func(st *registry.RolloutStatus) bool {
		return st.LastGate != nil && st.LastGate.Gate == registry.GateMinLiveMetrics && !st.LastGate.Passed
	})
	if st := status(e); st.Step != 1 || !strings.Contains(st.LastGate.Message, "waiting for feedback: 0 of 10 trusted values of live correct") {
		t.Fatalf("baked step without feedback: %+v %+v", st, st.LastGate)
	}
	feedback(10, 1)
	waitRollout(t, r, "reached step 2", atStep(2))

	feedback(30, 0)
	r.Clock.Advance(bake)
	e = waitRollout(t, r, "rolled back", inState(registry.RolloutRolledBack))
	if st := status(e); !strings.Contains(st.Message, "rollout rolled back at step 2 (100%): route main (v2): min_live_metrics: live correct = ") ||
		!strings.Contains(st.Message, "is below the floor 0.9") {
		t.Fatalf("message %q", st.Message)
	}
}
