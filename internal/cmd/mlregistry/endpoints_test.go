package main

import (
	"strings"
	"testing"
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
	lines := rows(t, ep[strings.Index(ep, "Routes:")+len("Routes:\n"):], "VERSION", "CONFIGURED", "OBSERVED", "UPSTREAM")
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
