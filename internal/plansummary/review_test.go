package plansummary

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestDrift_namesWhoFlaggedNotWhoTouchedLast: on-call flags v1 and later
// someone else edits its description; another token unflags v2. The drift
// history names on-call as the one who flagged v1, the editor for an
// update only, and the one who unflagged v2 for that: a reviewer acting on
// the drift report asks the right person why.
func TestDrift_namesWhoFlaggedNotWhoTouchedLast(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	config := modelHCL("churn", "", "auc = 0.9", "auc = 0.93")
	config = strings.Replace(config, "metrics  = { auc = 0.93 }", "metrics  = { auc = 0.93 }\n  flagged     = true\n  flag_reason = \"stale features\"", 1)
	e.apply(config)

	ctx := context.Background()
	flag, reason, desc := true, "label leak", "evaluated again"
	e.r.Clock.Advance(time.Hour)
	oncall := e.client(e.r.Token(t, "oncall", registry.ScopeWrite))
	if _, err := oncall.UpdateVersion(ctx, "churn", 1, registry.ModelVersionPatch{Flagged: &flag, FlagReason: &reason}, 0); err != nil {
		t.Fatal(err)
	}
	e.r.Clock.Advance(time.Minute)
	editor := e.client(e.r.Token(t, "editor", registry.ScopeWrite))
	if _, err := editor.UpdateVersion(ctx, "churn", 1, registry.ModelVersionPatch{Description: &desc}, 0); err != nil {
		t.Fatal(err)
	}
	unflag := false
	fixer := e.client(e.r.Token(t, "fixer", registry.ScopeWrite))
	if _, err := fixer.UpdateVersion(ctx, "churn", 2, registry.ModelVersionPatch{Flagged: &unflag}, 0); err != nil {
		t.Fatal(err)
	}

	md := e.summarise(e.planJSON(config, "-refresh-only"), "markdown")
	for _, want := range []string{
		"v1 flagged (label leak) by oncall at",
		"v1 updated by editor at",
		"v2 unflagged by fixer at",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("drift history lacks %q:\n%s", want, md)
		}
	}
	for _, wrong := range []string{"flagged (label leak) by editor", "v2 updated by fixer"} {
		if strings.Contains(md, wrong) {
			t.Errorf("drift history says %q:\n%s", wrong, md)
		}
	}
}

// TestVerdict_erroredPlanCannotApply: a plan Terraform could not finish
// (here the registry's dry run refuses production's move) is saved all the
// same, but Terraform refuses to apply it. The verdict says so as an
// error, and --fail-on error exits 5, whatever else the plan holds.
func TestVerdict_erroredPlanCannotApply(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.apply(ciConfig(1, 1)[len(providerHCL):])
	e.write(ciConfig(2, 2)[len(providerHCL):]) // v2 has not held staging yet
	if out, err := e.terraform("plan", "-input=false", "-out=review.tfplan"); err == nil || !strings.Contains(out, "require_stage") {
		t.Fatalf("terraform plan: %v, want the stage policy error\n%s", err, out)
	}
	show, err := e.terraform("show", "-json", "review.tfplan")
	if err != nil {
		t.Fatalf("terraform show -json: %v\n%s", err, show)
	}
	plan := []byte(show)
	md := e.summarise(plan, "markdown")
	if strings.Contains(md, "nothing found that stops this plan") || !strings.Contains(md, "### ❌ Errors") {
		t.Errorf("the summary of an errored plan gives no error:\n%s", md)
	}
	var out, errb strings.Builder
	env := map[string]string{"MLREGISTRY_ADDR": e.r.URL, "MLREGISTRY_TOKEN": e.readToken}
	code := Main(context.Background(), []string{"--fail-on", "error", "-"}, strings.NewReader(show), &out, &errb, func(k string) string { return env[k] })
	if code != ExitFailOn || !strings.Contains(errb.String(), "plan_errored") {
		t.Errorf("--fail-on error on an errored plan: exit %d, stderr %q", code, errb.String())
	}
}

// TestWholePlan_unknownVersionsUnordered: staging and production are both
// assigned versions chosen through a lookup (unknown until apply), the
// production policy needs staging first, and nothing orders the two
// assignments. The summary cannot judge the move, but it warns that
// Terraform may apply both together; with depends_on the warning goes.
func TestWholePlan_unknownVersionsUnordered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	config := func(dependsOn string) string {
		return modelHCL("churn", prodPolicy, "auc = 0.9", "auc = 0.93") + `
locals {
  releases = { 1 = mlregistry_model_version.churn_v1.version, 2 = mlregistry_model_version.churn_v2.version }
}
` + stageHCL("churn", "staging", "local.releases[1]", "") + stageHCL("churn", "production", "local.releases[1]", dependsOn)
	}
	const want = "nothing orders the two"
	md := e.summarise(e.planJSON(config("")), "markdown")
	if !strings.Contains(md, want) || !strings.Contains(md, "depends_on = [mlregistry_stage_assignment.churn_staging]") {
		t.Errorf("unordered: the summary does not warn about the order:\n%s", md)
	}
	md = e.summarise(e.planJSON(config("  depends_on = [mlregistry_stage_assignment.churn_staging]\n")), "markdown")
	if strings.Contains(md, want) {
		t.Errorf("ordered with depends_on: the summary still warns:\n%s", md)
	}
	// As ordered, the apply works.
	e.apply(config("  depends_on = [mlregistry_stage_assignment.churn_staging]\n"))
}
