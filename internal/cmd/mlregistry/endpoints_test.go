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
