package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestEndpointsShowConfiguredAndObserved: after flagging the canary's
// version drains its route, `endpoints show` prints the weights the last
// write configured beside the ones the gateway uses now.
func TestEndpointsShowConfiguredAndObserved(t *testing.T) {
	f := newFixture(t)
	if st, out := do(t, "PATCH", f.srv.url+"/api/v1/models/churn/versions/2", f.admin, map[string]any{"flagged": true, "flag_reason": "bias"}); st != 200 {
		t.Fatalf("flag v2: %d %v", st, out)
	}
	ep := f.ok(t, "endpoints", "show", "churn")
	if !strings.Contains(ep, "drained") {
		t.Errorf("endpoints show churn after the flag lacks its drained status:\n%s", ep)
	}
	lines := rows(t, tableAfter(ep, "Routes:"), "VERSION", "CONFIGURED", "OBSERVED", "UPSTREAM")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[1])[2:4], " ") != "90% 100%" || strings.Join(strings.Fields(lines[2])[2:4], " ") != "10% 0%" {
		t.Errorf("routes after the drain, want stable 90%% -> 100%% and canary 10%% -> 0%%:\n%s", strings.Join(lines, "\n"))
	}
}

// TestEndpointsShowMatch: a route's header match is printed under the
// routes, since matched requests reach it whatever its weight.
func TestEndpointsShowMatch(t *testing.T) {
	f := newFixture(t)
	if st, out := do(t, "PATCH", f.srv.url+"/api/v1/endpoints/churn", f.admin, map[string]any{"routes": []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9/v1", "weight": 100},
		{"name": "canary", "version": 2, "upstream_url": "http://127.0.0.1:9/v2", "weight": 0,
			"match": map[string]any{"header": "X-Tester", "value": "team-", "prefix": true}},
	}}); st != 200 {
		t.Fatalf("set the match: %d %v", st, out)
	}
	ep := f.ok(t, "endpoints", "show", "churn")
	if want := "Route canary also takes every request whose X-Tester starts with \"team-\", whatever the weights."; !strings.Contains(ep, want) {
		t.Errorf("endpoints show churn lacks %q:\n%s", want, ep)
	}
}

// TestEndpointsRollout: a weight change on an endpoint with a rollout
// starts one; show prints where it stands and the weights in force, and
// pause, resume and abort drive it from the command line, each refused
// (exit 5) in a state that does not allow it.
func TestEndpointsRollout(t *testing.T) {
	f := newFixture(t)
	patch := func(body map[string]any) {
		t.Helper()
		if st, out := do(t, "PATCH", f.srv.url+"/api/v1/endpoints/churn", f.admin, body); st != 200 {
			t.Fatalf("PATCH endpoint %v: %d %v", body, st, out)
		}
	}
	// The bake is long: the rollout stays at its first step for the test.
	patch(map[string]any{"rollout": map[string]any{"steps": []int{25, 50, 100}, "bake": "1h", "max_error_rate": 0.05, "min_requests": 20}})
	patch(map[string]any{"routes": []map[string]any{
		{"name": "stable", "version": 1, "upstream_url": "http://127.0.0.1:9/v1", "weight": 50},
		{"name": "canary", "version": 2, "upstream_url": "http://127.0.0.1:9/v2", "weight": 50},
	}})

	ep := f.ok(t, "endpoints", "show", "churn")
	summaryHas := func(out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}
	summaryHas(ep,
		"steps 25%, 50%, 100%; bake 1h each; gates: error rate at most 0.05 (judged from 20 requests)",
		"progressing, step 1 of 3 (25%)",
		"Next step due:",
		"Weights in force (step 1 of 3 (25%); the routes above are the target):",
	)
	inForce := rows(t, tableAfter(ep, "the target):"), "VERSION", "WEIGHT", "UPSTREAM")
	if len(inForce) != 3 || strings.Join(strings.Fields(inForce[1])[:3], " ") != "stable 1 80%" || strings.Join(strings.Fields(inForce[2])[:3], " ") != "canary 2 20%" {
		t.Errorf("weights in force at 25%% of 90/10 -> 50/50, want stable 80%% and canary 20%%:\n%s", strings.Join(inForce, "\n"))
	}
	if list := f.ok(t, "endpoints"); !strings.Contains(list, "stable=v1:80% canary=v2:20%") || !strings.Contains(list, "rollout progressing 1/3") {
		t.Errorf("endpoints lists the target, not the weights in force:\n%s", list)
	}
	e := decodeJSON[registry.Endpoint](t, f.ok(t, "endpoints", "show", "churn", "-o", "json"))
	if e.Rollout == nil || e.Rollout.RolloutStatus == nil || e.Rollout.State != registry.RolloutProgressing || e.Rollout.Step != 1 || len(e.Rollout.Steps) != 3 {
		t.Fatalf("endpoints show -o json: rollout %+v", e.Rollout)
	}
	id := e.Rollout.ID

	summaryHas(f.ok(t, "endpoints", "rollout", "pause", "churn", "--reason", "weekend"), fmt.Sprintf("paused rollout %d of endpoint churn at step 1 of 3 (25%%)", id))
	summaryHas(f.ok(t, "endpoints", "show", "churn"), "paused, step 1 of 3 (25%)")
	if r := f.run(t, "endpoints", "rollout", "pause", "churn"); r.code != exitConflict {
		t.Errorf("pausing a paused rollout: exit %d, want %d\n%s", r.code, exitConflict, r.stderr)
	}
	summaryHas(f.ok(t, "endpoints", "rollout", "resume", "churn"), fmt.Sprintf("resumed rollout %d of endpoint churn", id))
	aborted := decodeJSON[registry.Endpoint](t, f.ok(t, "endpoints", "rollout", "abort", "churn", "--reason", "v2 mislabels churners", "-o", "json"))
	if aborted.Rollout == nil || aborted.Rollout.RolloutStatus == nil || aborted.Rollout.State != registry.RolloutAborted ||
		len(aborted.Routes) != 2 || aborted.Routes[0].Weight != 90 || aborted.Routes[1].Weight != 10 {
		t.Errorf("abort -o json: routes %+v rollout %+v, want the weights before it (90/10) and state aborted", aborted.Routes, aborted.Rollout)
	}
	summaryHas(f.ok(t, "endpoints", "show", "churn"), "aborted (rollout", "Rollout ended:", "v2 mislabels churners")
	if r := f.run(t, "endpoints", "rollout", "resume", "churn"); r.code != exitConflict {
		t.Errorf("resuming an aborted rollout: exit %d, want %d\n%s", r.code, exitConflict, r.stderr)
	}
	evs := f.ok(t, "events", "--endpoint", "churn")
	summaryHas(evs, registry.ActionEndpointRolloutStarted, registry.ActionEndpointRolloutPaused, registry.ActionEndpointRolloutResumed, registry.ActionEndpointRolloutAborted)
	if r := f.run(t, "endpoints", "rollout", "abort", "nope"); r.code != exitNotFound {
		t.Errorf("abort on an endpoint that does not exist: exit %d, want %d\n%s", r.code, exitNotFound, r.stderr)
	}
}
