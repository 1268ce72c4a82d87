package plansummary

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// model writes a model with versions v1..vN (registered in that order,
// so resource vN is version N), each with the given metrics.
func modelHCL(name, policies string, metrics ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nresource \"mlregistry_model\" %q {\n  name = %q\n  force_destroy = true\n%s}\n", name, name, policies)
	for i, m := range metrics {
		dep := ""
		if i > 0 {
			dep = fmt.Sprintf("\n  depends_on = [mlregistry_model_version.%s_v%d]", name, i)
		}
		fmt.Fprintf(&b, `
resource "mlregistry_model_version" "%[1]s_v%[2]d" {
  model    = mlregistry_model.%[1]s.name
  source   = "s3://models/%[1]s/%[2]d/model.onnx"
  checksum = "sha256:%064[3]x"
  format   = "onnx"
  metrics  = { %[4]s }%[5]s
}
`, name, i+1, len(name)*100+i+1, m, dep)
	}
	return b.String()
}

func stageHCL(model, stage, version, extra string) string {
	return fmt.Sprintf(`
resource "mlregistry_stage_assignment" "%[1]s_%[2]s" {
  model   = mlregistry_model.%[1]s.name
  stage   = %[2]q
  version = %[3]s
%[4]s}
`, model, stage, version, extra)
}

// endpointHCL is endpoint "churn" of model churn; body holds its stage,
// route, guard and depends_on lines.
func endpointHCL(body string) string {
	return `
resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name
` + body + "}\n"
}

// routeHCL is a route block of endpointHCL; extra goes in it after the
// weight.
func routeHCL(name, version, upstream string, weight int, extra string) string {
	return fmt.Sprintf(`  route {
    name         = %q
    version      = %s
    upstream_url = %q
    weight       = %d
%s  }
`, name, version, upstream, weight, extra)
}

// guardHCL is a guard block of endpointHCL.
func guardHCL(maxErrorRate string, minRequests int, window string) string {
	return fmt.Sprintf(`  guard {
    max_error_rate = %s
    min_requests   = %d
    window         = %q
  }
`, maxErrorRate, minRequests, window)
}

const prodPolicy = `  stage_policy {
    stage         = "production"
    require_stage = "staging"
    min_metrics   = { auc = 0.85 }
  }
`

// TestGolden_promotion: production moves v1 -> v2 after v2 held staging;
// the summary shows the metric deltas from the registry and the plan, and
// the registry's dry-run verdict.
func TestGolden_promotion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	versions := modelHCL("churn", prodPolicy, "auc = 0.91, latency_ms = 20", "auc = 0.93, latency_ms = 18.5", "auc = 0.8")
	afterStaging := "  depends_on = [mlregistry_stage_assignment.churn_staging]\n"
	e.apply(versions + stageHCL("churn", "staging", "mlregistry_model_version.churn_v1.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", afterStaging))
	e.r.Clock.Advance(2 * time.Hour)
	e.apply(versions + stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", ""))
	e.r.Clock.Advance(26 * time.Hour)

	// The reviewed change: production to v2, staging to v3, a new version v4.
	plan := e.planJSON(modelHCL("churn", prodPolicy, "auc = 0.91, latency_ms = 20", "auc = 0.93, latency_ms = 18.5", "auc = 0.8", "auc = 0.95") +
		stageHCL("churn", "staging", "mlregistry_model_version.churn_v3.version", `  reason = "try the small model"`+"\n") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v2.version", `  reason = "better auc"`+"\n"))
	md := e.summarise(plan, "markdown")
	seed(t, "promotion", plan)
	golden(t, "promotion.md", md)
	golden(t, "promotion.json", e.summarise(plan, "json"))
	// Without a registry the summary says what it could not fetch.
	golden(t, "promotion-offline.md", summariseWith(t, plan, Options{Now: e.r.Clock.Now}))

	summaryHas(t, md,
		"**production: v1 -> v2**",
		"auc 0.91 -> 0.93 (+0.02)",
		"latency_ms 20 -> 18.5 (-1.5)",
		"stage policy (registry dry run): ✅ passes",
		"➕ added: new version (`mlregistry_model_version.churn_v4`)",
	)
}

// TestGolden_wholePlan: versions created in the same plan have no number
// at plan time, so the provider's dry run cannot judge the moves and the
// plan succeeds; the summary judges them with the plan's own moves.
func TestGolden_wholePlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	soakPolicy := `  stage_policy {
    stage         = "production"
    require_stage = "staging"
    min_soak      = "24h"
  }
`
	base := func(churnVersions, fraudVersions []string) string {
		return modelHCL("churn", prodPolicy, churnVersions...) + modelHCL("fraud", soakPolicy, fraudVersions...)
	}
	e.apply(base([]string{"auc = 0.9"}, []string{"recall = 0.7"}) +
		stageHCL("churn", "staging", "mlregistry_model_version.churn_v1.version", "") +
		stageHCL("fraud", "staging", "mlregistry_model_version.fraud_v1.version", ""))
	e.r.Clock.Advance(48 * time.Hour)
	e.apply(base([]string{"auc = 0.9"}, []string{"recall = 0.7"}) +
		stageHCL("churn", "staging", "mlregistry_model_version.churn_v1.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", "") +
		stageHCL("fraud", "staging", "mlregistry_model_version.fraud_v1.version", "") +
		stageHCL("fraud", "production", "mlregistry_model_version.fraud_v1.version", ""))
	e.r.Clock.Advance(time.Hour)

	// churn: staging and production both move to a new v2, unordered.
	// fraud: production depends on the staging move, but must soak 24h.
	// churn v3 misses the production floor whatever the order.
	plan := e.planJSON(base([]string{"auc = 0.9", "auc = 0.92", "auc = 0.5"}, []string{"recall = 0.7", "recall = 0.75"}) +
		stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v2.version", "") +
		stageHCL("churn", "canary", "mlregistry_model_version.churn_v3.version", "") +
		stageHCL("fraud", "staging", "mlregistry_model_version.fraud_v2.version", "") +
		stageHCL("fraud", "production", "mlregistry_model_version.fraud_v2.version", "  depends_on = [mlregistry_stage_assignment.fraud_staging]\n"))
	md := e.summarise(plan, "markdown")
	seed(t, "whole-plan", plan)
	golden(t, "whole-plan.md", md)
	summaryHas(t, md,
		"add `depends_on = [mlregistry_stage_assignment.churn_staging]` to `mlregistry_stage_assignment.churn_production`",
		"second apply once the soak is over",
	)

	// With depends_on the churn move passes: it is applied after staging.
	ordered := e.planJSON(base([]string{"auc = 0.9", "auc = 0.92"}, []string{"recall = 0.7"}) +
		stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v2.version", "  depends_on = [mlregistry_stage_assignment.churn_staging]\n") +
		stageHCL("fraud", "staging", "mlregistry_model_version.fraud_v1.version", "") +
		stageHCL("fraud", "production", "mlregistry_model_version.fraud_v1.version", ""))
	md = e.summarise(ordered, "markdown")
	seed(t, "whole-plan-ordered", ordered)
	golden(t, "whole-plan-ordered.md", md)
	if !strings.Contains(md, "passes once `mlregistry_stage_assignment.churn_staging` is applied") {
		t.Errorf("ordered summary lacks the pass-once verdict:\n%s", md)
	}
}

// TestGolden_replaceAndWarnings: an artifact change replaces a version
// that holds production; a version is destroyed; another is flagged while
// an endpoint shifts traffic to it and loses its guard.
func TestGolden_replaceAndWarnings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	endpoint := func(stable, canary int, guard string) string {
		return endpointHCL(routeHCL("stable", "mlregistry_model_version.churn_v1.version", "http://churn-v1.internal:8080", stable, "") +
			routeHCL("canary", "mlregistry_model_version.churn_v2.version", "http://churn-v2.internal:8080", canary, "") + guard)
	}
	guard := guardHCL("0.05", 100, "5m")
	versions := modelHCL("churn", "", "auc = 0.9", "auc = 0.91", "auc = 0.7")
	e.apply(versions + stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", "") + endpoint(90, 10, guard))

	changed := strings.Replace(modelHCL("churn", "", "auc = 0.9", "auc = 0.91"), "s3://models/churn/1/model.onnx", "s3://models/churn/1/model-retrained.onnx", 1)
	changed = strings.Replace(changed, "auc = 0.91 }", "auc = 0.91 }\n  flagged = true\n  flag_reason = \"label leak\"", 1)
	plan := e.planJSON(changed + stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", "") + endpoint(50, 50, ""))
	md := e.summarise(plan, "markdown")
	seed(t, "replace-warnings", plan)
	golden(t, "replace-warnings.md", md)
	summaryHas(t, md,
		"REPLACES version 1",
		"Replacing v1 of \"churn\", which holds production",
		"destroyed**: v3",
		"sends 50% of its traffic (route canary) to v2, which is flagged",
		"loses its guard",
		"stable  v1 -> new version (mlregistry_model_version.churn_v1)   90% ██████████████████░░  ->  50% ██████████░░░░░░░░░░",
		"changed in place: v2 (`mlregistry_model_version.churn_v2`): 🚩 flagged (label leak)",
	)
}

// TestGolden_drift: production moved by another token through the API,
// and the gateway's guard rolled a failing canary back under real traffic;
// the next plan's resource_drift is joined with the stage history and the
// audit log.
func TestGolden_drift(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(stable.Close)
	broken := refusingURL(t)
	config := modelHCL("churn", "", "auc = 0.9", "auc = 0.93") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", "") +
		endpointHCL(routeHCL("stable", "mlregistry_model_version.churn_v1.version", stable.URL, 50, "")+
			routeHCL("canary", "mlregistry_model_version.churn_v2.version", broken, 50, "")+
			guardHCL("0.5", 3, "1m"))
	e.apply(config)

	ctx := context.Background()
	e.r.Clock.Advance(3 * time.Hour)
	ciBot := e.client(e.r.Token(t, "ci-bot", registry.ScopeWrite))
	if _, err := ciBot.AssignStage(ctx, "churn", "production", registry.StageAssign{Version: 2, Reason: "hotfix"}, 0); err != nil {
		t.Fatal(err)
	}
	e.r.Clock.Advance(30 * time.Minute)
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
		if ep.Status == registry.EndpointStatusRolledBack {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the guard did not roll the canary back")
		}
	}

	plan := e.planJSON(config)
	md := e.summarise(plan, "markdown")
	seed(t, "drift", plan)
	golden(t, "drift.md", md)
	refresh := e.planJSON(config, "-refresh-only")
	seed(t, "drift-refresh-only", refresh)
	golden(t, "drift-refresh-only.md", e.summarise(refresh, "markdown"))
	summaryHas(t, md,
		"production moved from v1 to v2 by ci-bot at 2026-01-02 06:04 UTC (reason: hotfix)",
		"guard rolled canary back at 2026-01-02 06:34 UTC",
		"canary 50% -> 0%",
	)
	var out, errb strings.Builder
	code := Main(ctx, []string{"--fail-on", "drift", "-"}, strings.NewReader(string(plan)), &out, &errb, nil)
	if code != ExitFailOn || !strings.Contains(errb.String(), "drift in 2 object(s)") {
		t.Errorf("--fail-on drift: exit %d, stderr %q", code, errb.String())
	}
}

// refusingURL is an upstream URL whose port was just closed: every request
// to it fails with a refused connection, as a crashed model server would.
func refusingURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}
