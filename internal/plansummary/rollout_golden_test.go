package plansummary

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// rolloutHCL is a rollout block of endpointHCL.
func rolloutHCL(steps, bake, gates string) string {
	return fmt.Sprintf("  rollout {\n    steps = %s\n    bake  = %q\n%s  }\n", steps, bake, gates)
}

// TestGolden_rollout: an update of an endpoint with a rollout shows the
// steps it starts, from the weights in force; the next plan shows where
// the running rollout stands; a change while it runs starts from its
// weights; an aborted rollout is a warning naming who and why.
func TestGolden_rollout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	versions := modelHCL("churn", "", "auc = 0.9", "auc = 0.93")
	endpoint := func(stable, canary int) string {
		return endpointHCL(routeHCL("stable", "mlregistry_model_version.churn_v1.version", "http://churn-v1.internal:8080", stable, "") +
			routeHCL("canary", "mlregistry_model_version.churn_v2.version", "http://churn-v2.internal:8080", canary, "") +
			// The registry's clock is the test's: the first step holds.
			rolloutHCL("[25, 50, 100]", "1h", "    max_error_rate = 0.05\n    min_requests   = 20\n"))
	}
	create := e.summarise(e.planJSON(versions+endpoint(90, 10)), "markdown")
	summaryHas(t, create, "- rollout: steps 25%, 50%, 100%; bake 1h per step; gates: error rate ≤ 0.05 (judged once a gaining route has 20 requests) (this create puts its weights in force at once; later changes of weights or versions roll out)")
	if strings.Contains(create, "Starts a rollout") {
		t.Errorf("creating an endpoint starts no rollout:\n%s", create)
	}
	e.apply(versions + endpoint(90, 10))

	start := e.planJSON(versions + endpoint(50, 50))
	md := e.summarise(start, "markdown")
	seed(t, "rollout-start", start)
	golden(t, "rollout-start.md", md)
	golden(t, "rollout-start.json", e.summarise(start, "json"))
	summaryHas(t, md,
		"**Starts a rollout**: steps 25%, 50%, 100%; bake 1h per step; gates: error rate ≤ 0.05 (judged once a gaining route has 20 requests).",
		"Apply returns once step 1 is in force",
	)
	summaryRows(t, md, "now 90% 10%", "1 (25%) 80% 20%", "2 (50%) 70% 30%", "3 (100%) 50% 50%")

	e.apply(versions + endpoint(50, 50))
	running := e.planJSON(versions + endpoint(50, 50))
	md = e.summarise(running, "markdown")
	seed(t, "rollout-running", running)
	golden(t, "rollout-running.md", md)
	summaryHas(t, md, "**progressing** at step 1 (25%)", "weights in force: stable 80%, canary 20%", "next step due: 2026-01-02 ")

	// A change while the rollout runs starts from the weights in force.
	replace := e.planJSON(versions + endpoint(0, 100))
	md = e.summarise(replace, "markdown")
	golden(t, "rollout-replace.md", md)
	summaryHas(t, md, "replacing the rollout progressing at step 1 (25%), from the weights it has in force")
	summaryRows(t, md, "now 80% 20%", "1 (25%) 60% 40%", "3 (100%) 0% 100%")

	e.r.Clock.Advance(10 * time.Minute)
	if _, err := e.r.Store.ControlRollout(context.Background(), registry.Actor{Name: "oncall"}, "churn", registry.RolloutOpAbort, "v2 mislabels churners"); err != nil {
		t.Fatal(err)
	}
	aborted := e.planJSON(versions + endpoint(50, 50))
	md = e.summarise(aborted, "markdown")
	seed(t, "rollout-aborted", aborted)
	golden(t, "rollout-aborted.md", md)
	// Once the configuration matches the weights in force, the aborted
	// rollout is history (the drift's, until a refresh saves it): no
	// warning, no rollout entry.
	if md := e.summarise(e.planJSON(versions+endpoint(90, 10)), "markdown"); strings.Contains(md, "### Rollouts") || strings.Contains(md, "Warnings") {
		t.Errorf("a plan that does not change the endpoint still warns of its aborted rollout:\n%s", md)
	}
	summaryHas(t, md,
		"its last rollout was aborted (aborted by oncall: v2 mislabels churners)",
		"This plan starts the same change again",
		"rollout aborted by oncall at 2026-01-02",
	)
}

// TestGolden_rolloutRolledBack: a canary that fails every request under
// real traffic fails the error-rate gate; the next plan shows the drift
// and a warning naming the gate, the route and its value.
func TestGolden_rolloutRolledBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(stable.Close)
	broken := refusingURL(t)
	config := func(stableW, canaryW int) string {
		return modelHCL("churn", "", "auc = 0.9", "auc = 0.93") +
			endpointHCL(routeHCL("stable", "mlregistry_model_version.churn_v1.version", stable.URL, stableW, "")+
				routeHCL("canary", "mlregistry_model_version.churn_v2.version", broken, canaryW, "")+
				rolloutHCL("[50, 100]", "1h", "    max_error_rate = 0.1\n    min_requests   = 5\n"))
	}
	e.apply(config(100, 0))
	e.r.Clock.Advance(time.Minute)
	e.apply(config(0, 100))
	e.r.Clock.Advance(time.Minute)

	ctx := context.Background()
	reader := e.r.Token(t, "traffic", registry.ScopeRead)
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.r.URL+"/serve/churn/predict", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		ep, err := e.client("").GetEndpoint(ctx, "churn")
		if err != nil {
			t.Fatal(err)
		}
		if ep.Rollout != nil && ep.Rollout.RolloutStatus != nil && ep.Rollout.State == registry.RolloutRolledBack {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate did not roll the rollout back: %+v", ep.Rollout)
		}
	}

	plan := e.planJSON(config(0, 100))
	md := e.summarise(plan, "markdown")
	seed(t, "rollout-rolled-back", plan)
	// How many requests the gate judged depends on when the gateway
	// flushed its counts.
	golden(t, "rollout-rolled-back.md", regexp.MustCompile(`over \d+ requests`).ReplaceAllString(md, "over N requests"))
	summaryHas(t, md,
		"its last rollout was rolled back (rollout rolled back at step 1 (50%): route canary (v2): max_error_rate 1 over ",
		"This plan starts the same change again",
		"weights stable 0% -> 100%, canary 100% -> 0%",
		"rollout rolled back at 2026-01-02 03:06 UTC (rollout rolled back at step 1 (50%): route canary (v2): max_error_rate 1 over ",
	)
}

// summaryRows checks that each row (its words) is a line of the summary's
// rollout steps.
func summaryRows(t *testing.T, md string, rows ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(md, "\n") {
		lines[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, r := range rows {
		if !lines[r] {
			t.Errorf("summary lacks the step row %q:\n%s", r, md)
		}
	}
}
