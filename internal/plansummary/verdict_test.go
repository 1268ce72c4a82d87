package plansummary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// failOn runs the mlregistry binary's plan-summary on a plan with
// --fail-on cond and returns its exit code and stderr.
func failOn(t *testing.T, e *env, plan []byte, cond string) (int, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, plan, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(buildBinaries(t), "mlregistry"), "plan-summary", "--fail-on", cond, file)
	cmd.Env = append(os.Environ(), "MLREGISTRY_ADDR="+e.r.URL, "MLREGISTRY_TOKEN="+e.readToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatal(err)
	return 0, ""
}

func errorsOf(t *testing.T, e *env, plan []byte) []PlanError {
	t.Helper()
	var s struct {
		Verdict string      `json:"verdict"`
		Errors  []PlanError `json:"errors"`
	}
	if err := json.Unmarshal([]byte(e.summarise(plan, "json")), &s); err != nil {
		t.Fatal(err)
	}
	if (s.Verdict == VerdictFails) != (len(s.Errors) > 0) {
		t.Errorf("verdict %q with %d errors", s.Verdict, len(s.Errors))
	}
	return s.Errors
}

// TestGolden_replaceProduction: the version that holds production and
// serves an endpoint bound to production changes its artifact. Without
// create_before_destroy Terraform destroys it first and the apply fails,
// which the summary says before anyone applies; with it the summary
// passes and the apply does what the summary said.
func TestGolden_replaceProduction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	policy := `  stage_policy {
    stage       = "production"
    min_metrics = { auc = 0.85 }
  }
`
	config := func(source, lifecycle string) string {
		versions := modelHCL("churn", policy, "auc = 0.9", "auc = 0.93")
		if source != "s3://models/churn/2/model.onnx" {
			versions = strings.Replace(versions, fmt.Sprintf("sha256:%064x", 502), fmt.Sprintf("sha256:%064x", 0xbeef), 1)
		}
		versions = strings.Replace(versions, "s3://models/churn/2/model.onnx", source, 1)
		versions = strings.Replace(versions, "auc = 0.93 }", "auc = 0.93 }"+lifecycle, 1)
		return versions + stageHCL("churn", "production", "mlregistry_model_version.churn_v2.version", "") +
			endpointHCL("  stage = \"production\"\n"+
				routeHCL("stable", "mlregistry_model_version.churn_v2.version", "http://churn.internal:8080", 100, "")+
				"  depends_on = [mlregistry_stage_assignment.churn_production]\n")
	}
	e.apply(config("s3://models/churn/2/model.onnx", ""))
	if !strings.Contains(config("s3://models/churn/2/model.onnx", ""), fmt.Sprintf("sha256:%064x", 502)) {
		t.Fatal("modelHCL no longer gives churn v2 the checksum this test changes")
	}

	retrained := "s3://models/churn/2/model-retrained.onnx"
	plan := e.planJSON(config(retrained, ""))
	md := e.summarise(plan, "markdown")
	seed(t, "replace-production", plan)
	golden(t, "replace-production.md", md)
	golden(t, "replace-production.json", e.summarise(plan, "json"))
	summaryHas(t, md,
		"### ❌ Errors: this plan cannot apply as it is (2)",
		"Terraform destroys v2 first (delete, then create) and only then applies `mlregistry_stage_assignment.churn_production`",
		"v2 receives traffic from endpoint \"churn\" (route stable)",
		"**Fix:** add `lifecycle { create_before_destroy = true }` to `mlregistry_model_version.churn_v2`",
		"REPLACED: v2 (`mlregistry_model_version.churn_v2`) — artifact change (checksum, source): deleted and registered again under a new number** — metrics auc 0.93 (holds production)",
	)
	errs := errorsOf(t, e, plan)
	if len(errs) != 2 || errs[0].Code != ErrDestroyedWhileHeld || errs[0].Fix == "" || errs[0].Address != "mlregistry_model_version.churn_v2" {
		t.Errorf("errors: %+v", errs)
	}
	if code, stderr := failOn(t, e, plan, "error"); code != ExitFailOn || !strings.Contains(stderr, "2 error(s) (destroyed_while_held)") {
		t.Errorf("--fail-on error: exit %d, stderr %q", code, stderr)
	}
	if code, _ := failOn(t, e, plan, "drift"); code != ExitOK {
		t.Errorf("--fail-on drift: exit %d, want 0", code)
	}
	// The verdict is the apply's: it fails, and changes nothing.
	if out, err := e.terraform("apply", "-auto-approve", "-input=false"); err == nil || !strings.Contains(out, "is in use") {
		t.Fatalf("apply without create_before_destroy: err %v\n%s", err, out)
	}

	cbd := "\n  lifecycle {\n    create_before_destroy = true\n  }"
	// A new source with the same checksum is the same artifact: with
	// create_before_destroy the registry refuses the second copy.
	sameArtifact := strings.Replace(config(retrained, cbd), fmt.Sprintf("sha256:%064x", 0xbeef), fmt.Sprintf("sha256:%064x", 502), 1)
	plan = e.planJSON(sameArtifact)
	if errs := errorsOf(t, e, plan); len(errs) != 1 || errs[0].Code != ErrDuplicateArtifact {
		t.Errorf("errors of a create_before_destroy replacement with the same checksum: %+v", errs)
	}
	plan = e.planJSON(config(retrained, cbd))
	md = e.summarise(plan, "markdown")
	golden(t, "replace-production-cbd.md", md)
	summaryHas(t, md,
		"Apply verdict: ✅",
		"**production: v2 -> new version (mlregistry_model_version.churn_v2)**",
		"stage policy (registry dry run): ❔ policy checked at apply: version not known until apply",
		"stage policy (whole plan): ✅ passes",
		"route stable (stage production): policy checked at apply: version not known until apply",
		"With create_before_destroy the new version is registered first and v2 destroyed last.",
	)
	if errs := errorsOf(t, e, plan); len(errs) != 0 {
		t.Errorf("errors with create_before_destroy: %+v", errs)
	}
	if code, stderr := failOn(t, e, plan, "error"); code != ExitOK {
		t.Errorf("--fail-on error with create_before_destroy: exit %d, stderr %q", code, stderr)
	}
	out := e.mustTerraform("apply", "-auto-approve", "-input=false")
	if !strings.Contains(out, "Apply complete!") {
		t.Fatalf("apply with create_before_destroy:\n%s", out)
	}
	ctx := context.Background()
	a, err := e.client("").GetStage(ctx, "churn", "production")
	if err != nil || a.Version != 3 {
		t.Fatalf("production after the apply: %+v, %v (want v3)", a, err)
	}
	e.mustTerraform("plan", "-input=false", "-detailed-exitcode")
}

// TestGolden_unassignsAndRemovals: a renamed stage replaces its
// assignment and leaves the old stage empty; a version removed from the
// configuration while production stays on it; a version removed while its
// stage moves away (applies only with create_before_destroy in the state,
// which the plan does not show); a policy and a guard loosened.
func TestGolden_unassignsAndRemovals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	policy := func(floor string) string {
		return fmt.Sprintf(`  stage_policy {
    stage       = "production"
    min_metrics = { auc = %s }
  }
`, floor)
	}
	endpoint := func(rate string) string {
		return endpointHCL(routeHCL("stable", "3", "http://churn.internal:8080", 100, "") +
			guardHCL(rate, 100, "5m") +
			"  depends_on = [mlregistry_model_version.churn_v3]\n")
	}
	// v1 holds production, v2 staging, v3 serves the endpoint.
	three := modelHCL("churn", policy("0.85"), "auc = 0.9", "auc = 0.93", "auc = 0.95")
	e.apply(three + stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", "") + endpoint("0.05"))
	e.apply(three + stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v1.version", "") + endpoint("0.05"))

	// Staging renamed to "stagin"; v1 removed while production stays on
	// it (by number now); the production floor lowered and the guard
	// loosened.
	withoutV1 := func(hcl string) string {
		i := strings.Index(hcl, "\nresource \"mlregistry_model_version\" \"churn_v1\"")
		j := strings.Index(hcl, "\nresource \"mlregistry_model_version\" \"churn_v2\"")
		hcl = hcl[:i] + hcl[j:]
		return strings.Replace(hcl, "\n  depends_on = [mlregistry_model_version.churn_v1]", "", 1)
	}
	plan := e.planJSON(withoutV1(modelHCL("churn", policy("0.8"), "auc = 0.9", "auc = 0.93", "auc = 0.95")) +
		strings.Replace(stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", ""), `stage   = "staging"`, `stage   = "stagin"`, 1) +
		stageHCL("churn", "production", "1", "") + endpoint("0.2"))
	md := e.summarise(plan, "markdown")
	seed(t, "unassigns", plan)
	golden(t, "unassigns.md", md)
	summaryHas(t, md,
		"**staging: v2 -> (unassigned)** (`mlregistry_stage_assignment.churn_staging`)",
		"❌ **staging is left EMPTY**",
		"**stagin: (unassigned) -> v2**",
		"the apply UNASSIGNS staging of \"churn\" (now v2) and assigns stagin",
		"`mlregistry_model_version.churn_v1` destroys v1 of \"churn\", but v1 holds production, and `mlregistry_stage_assignment.churn_production` keeps it there",
		"🗑️ **destroyed**: v1 (`mlregistry_model_version.churn_v1`) — metrics auc 0.9 (holds production)",
		"Loosens the production stage policy: min_metrics.auc 0.85 -> 0.8",
		"Weakens the endpoint guard: guard.max_error_rate 0.05 -> 0.2",
	)
	codes := map[string]int{}
	for _, pe := range errorsOf(t, e, plan) {
		codes[pe.Code]++
	}
	if codes[ErrStageLeftEmpty] != 1 || codes[ErrHeldNotMoved] != 1 || len(codes) != 2 {
		t.Errorf("error codes: %v", codes)
	}
	removalPlan := plan
	if code, _ := failOn(t, e, plan, "warning"); code != ExitFailOn {
		t.Errorf("--fail-on warning with errors: exit %d, want 5", code)
	}

	// v1 removed while production moves to v3: the order depends on
	// whether v1 was applied with create_before_destroy, which only the
	// state knows: a warning.
	plan = e.planJSON(withoutV1(three) + stageHCL("churn", "staging", "mlregistry_model_version.churn_v2.version", "") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v3.version", "") + endpoint("0.05"))
	md = e.summarise(plan, "markdown")
	if !strings.Contains(md, "this applies only if `mlregistry_model_version.churn_v1` was last applied with `create_before_destroy = true`") {
		t.Errorf("summary lacks the ordering warning:\n%s", md)
	}
	if errs := errorsOf(t, e, plan); len(errs) != 0 {
		t.Errorf("errors: %+v", errs)
	}
	// And indeed, without it the apply fails.
	if out, err := e.terraform("apply", "-auto-approve", "-input=false"); err == nil || !strings.Contains(out, "is in use") {
		t.Fatalf("apply: err %v\n%s", err, out)
	}

	// An endpoint made outside this configuration that routes to v1 holds
	// it just the same: the summary asks the registry.
	if _, err := e.client("").CreateEndpoint(context.Background(), registry.EndpointCreate{Name: "churn-shadow", Model: "churn",
		Routes: []registry.Route{{Name: "main", Version: 1, UpstreamURL: "http://shadow.internal:8080", Weight: 100}}}); err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, pe := range errorsOf(t, e, removalPlan) {
		if pe.Code == ErrHeldNotMoved {
			held = append(held, pe.Message)
		}
	}
	if len(held) != 2 || !strings.Contains(held[1], `v1 receives traffic from endpoint "churn-shadow" (route main), which this configuration does not manage`) {
		t.Errorf("held_not_moved errors: %q", held)
	}
}

// TestSummary_stageUnbinding: an endpoint whose stage binding is removed
// (or moved to another stage) is a loosening warning naming the endpoint
// and the stage whose policy no longer checks its routes.
func TestSummary_stageUnbinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	endpoint := func(stage string) string {
		return endpointHCL(stage + routeHCL("stable", "mlregistry_model_version.churn_v1.version", "http://churn.internal:8080", 100, ""))
	}
	model := modelHCL("churn", "  stage_policy {\n    stage       = \"production\"\n    min_metrics = { auc = 0.85 }\n  }\n", "auc = 0.9")
	e.apply(model + endpoint("  stage = \"production\"\n"))

	md := e.summarise(e.planJSON(model+endpoint("")), "markdown")
	if want := `Endpoint "churn": Unbinds the endpoint from the production stage: its routes are no longer checked against the production stage policy (stage production -> removed)`; !strings.Contains(md, want) {
		t.Errorf("summary lacks %q:\n%s", want, md)
	}
	md = e.summarise(e.planJSON(model+endpoint("  stage = \"staging\"\n")), "markdown")
	if want := "(stage production -> staging)"; !strings.Contains(md, want) {
		t.Errorf("summary lacks %q:\n%s", want, md)
	}
	md = e.summarise(e.planJSON(model+endpoint("  stage = \"production\"\n")), "markdown")
	if strings.Contains(md, "Unbinds") {
		t.Errorf("an unchanged binding warns:\n%s", md)
	}
}

// TestSummary_liveMetricsPolicy: promoting a version the plan creates
// into a stage whose policy sets min_live_metrics is refused by the
// summary (a new version has no feedback), naming the rule and the count;
// the plan itself cannot dry-run an assignment of a version not yet
// created.
func TestSummary_liveMetricsPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	policy := "  stage_policy {\n    stage            = \"production\"\n    min_live_metrics = { correct = 0.9 }\n    min_live_count   = 50\n  }\n"
	e.apply(modelHCL("churn", policy, "auc = 0.9"))
	plan := e.planJSON(modelHCL("churn", policy, "auc = 0.9", "auc = 0.95") +
		stageHCL("churn", "production", "mlregistry_model_version.churn_v2.version", ""))
	md := e.summarise(plan, "markdown")
	summaryHas(t, md, "min_live_metrics", `has 0 trusted feedback values of live metric "correct" in the last 24h`, "at least 50 (min_live_count)")

	// Feedback for version 1 (6 of 10 values trusted) shows beside a move
	// of a stage without a live rule to it.
	ctx := t.Context()
	if _, err := e.r.Store.CreateEndpoint(ctx, registry.Actor{Name: "test"}, registry.EndpointCreate{Name: "live", Model: "churn",
		Routes: []registry.Route{{Name: "main", Version: 1, UpstreamURL: "http://main.internal:8080", Weight: 100}}}); err != nil {
		t.Fatal(err)
	}
	var items []registry.FeedbackRecord
	for i := range 10 {
		items = append(items, registry.FeedbackRecord{Index: i, Trusted: i < 6, Metrics: map[string]float64{"correct": float64(i % 2)},
			Receipt: registry.Receipt{KeyID: 1, IssuedAt: e.r.Clock.Now(), Endpoint: "live", Route: "main", Model: "churn", Version: 1, RequestID: fmt.Sprint("req-", i)}})
	}
	if res, err := e.r.Store.RecordFeedback(ctx, registry.Actor{Name: "test"}, "live", items); err != nil || res.Accepted != 10 {
		t.Fatalf("feedback: %+v %v", res, err)
	}
	md = e.summarise(e.planJSON(modelHCL("churn", policy, "auc = 0.9")+stageHCL("churn", "staging", "mlregistry_model_version.churn_v1.version", "")), "markdown")
	summaryHas(t, md, "live metrics of v1 (last 24h): correct 0.5 over 10 (trusted: 0.5 over 6)")
}
