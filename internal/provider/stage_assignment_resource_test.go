package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// churn is the configuration of the stage tests: model "churn" whose
// production policy needs staging first and auc >= 0.85, and three
// versions: v1 (auc 0.88), v2 (auc 0.92), v3 (auc 0.80). Stages map a
// stage to the version resource (1, 2, 3) it points at; 0 leaves it out.
type churn struct {
	staging, production int
	minSoak             string // production policy's min_soak, "" for none
	flagV2, flagV3      bool
	reason              string
	extra               string
}

func (c churn) hcl() string {
	soak := ""
	if c.minSoak != "" {
		soak = fmt.Sprintf("min_soak = %q", c.minSoak)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
resource "mlregistry_model" "churn" {
  name = "churn"
  stage_policy {
    stage         = "production"
    require_stage = "staging"
    %s
    min_metrics   = { auc = 0.85 }
  }
}
`, soak)
	for i, auc := range []float64{0.88, 0.92, 0.80} {
		extra := ""
		if (i == 1 && c.flagV2) || (i == 2 && c.flagV3) {
			extra = `flagged     = true
  flag_reason = "label leak"`
		}
		if i > 0 {
			// Registered one after the other, so resource vN is version N.
			extra += fmt.Sprintf("\n  depends_on = [mlregistry_model_version.v%d]", i)
		}
		fmt.Fprintf(&b, `
resource "mlregistry_model_version" "v%d" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/%d/model.onnx"
  checksum = %q
  format   = "onnx"
  metrics  = { auc = %g }
  %s
}
`, i+1, i+1, checksum(100+i), auc, extra)
	}
	for _, s := range []struct {
		stage   string
		version int
	}{{"staging", c.staging}, {"production", c.production}} {
		if s.version == 0 {
			continue
		}
		reason := ""
		if c.reason != "" {
			reason = fmt.Sprintf("reason = %q", c.reason)
		}
		if s.stage == "production" && c.staging != 0 {
			// The production policy looks at staging: assign it first.
			reason += "\n  depends_on = [mlregistry_stage_assignment.staging]"
		}
		fmt.Fprintf(&b, `
resource "mlregistry_stage_assignment" "%s" {
  model   = mlregistry_model.churn.name
  stage   = %q
  version = mlregistry_model_version.v%d.version
  %s
}
`, s.stage, s.stage, s.version, reason)
	}
	b.WriteString(c.extra)
	return b.String()
}

func TestAccStageAssignment_promoteAndRollback(t *testing.T) {
	r := testRegistry(t)
	const staging, production = "mlregistry_stage_assignment.staging", "mlregistry_stage_assignment.production"
	step := func(c churn, action plancheck.ResourceActionType, addr string, version, previous int64) tfresource.TestStep {
		return tfresource.TestStep{
			Config: providerBlock(r, "") + c.hcl(),
			ConfigPlanChecks: tfresource.ConfigPlanChecks{
				PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, action)},
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(addr, tfjsonpath.New("version"), knownvalue.Int64Exact(version)),
				statecheck.ExpectKnownValue(addr, tfjsonpath.New("previous_version"), knownvalue.Int64Exact(previous)),
				statecheck.ExpectKnownValue(addr, tfjsonpath.New("assigned_by"), adminName),
			},
		}
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			step(churn{staging: 1, reason: "first"}, plancheck.ResourceActionCreate, staging, 1, 0),
			{
				ResourceName:      staging,
				ImportState:       true,
				ImportStateId:     "churn/staging",
				ImportStateVerify: true,
			},
			{
				ResourceName:    staging,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "churn/staging",
			},
			// Only the reason changes: nothing moves, nothing recorded.
			{
				Config: providerBlock(r, "") + churn{staging: 1, reason: "first, reworded"}.hcl(),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(staging, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(staging, tfjsonpath.New("previous_version"), knownvalue.Int64Exact(0)),
						plancheck.ExpectKnownValue(staging, tfjsonpath.New("revision"), knownvalue.NotNull()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			step(churn{staging: 2, production: 1}, plancheck.ResourceActionUpdate, staging, 2, 1),
			step(churn{staging: 2, production: 2}, plancheck.ResourceActionUpdate, production, 2, 1),
			// Rollback: v1 held staging once, so the policy allows it back.
			step(churn{staging: 2, production: 1, reason: "rollback"}, plancheck.ResourceActionUpdate, production, 1, 2),
			{
				Config: providerBlock(r, "") + churn{staging: 2, production: 1, reason: "rollback"}.hcl(),
				Check: func(_ *terraformState) error {
					hist, err := apiClient(t, r).AllStageHistory(context.Background(), "churn", "production")
					if err != nil {
						return err
					}
					var got []string
					for _, h := range hist {
						got = append(got, fmt.Sprintf("%s %d<-%d %s", h.Action, h.Version, h.PreviousVersion, h.Reason))
					}
					want := []string{"assign 1<-2 rollback", "assign 2<-1 ", "assign 1<-0 "}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						return fmt.Errorf("production history (newest first):\n got %q\nwant %q", got, want)
					}
					staging, err := apiClient(t, r).AllStageHistory(context.Background(), "churn", "staging")
					if err != nil {
						return err
					}
					if len(staging) != 2 {
						return fmt.Errorf("staging history has %d entries, want 2 (a reason-only change records nothing): %+v", len(staging), staging)
					}
					return nil
				},
			},
		},
	})
}

func TestAccStageAssignment_policyViolationFailsPlan(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + churn{staging: 1, production: 1}.hcl()},
			{
				// v3 never held staging.
				Config:      providerBlock(r, "") + churn{staging: 1, production: 3}.hcl(),
				PlanOnly:    true,
				ExpectError: expectError("Stage policy violation", `stage policy rule require_stage failed: version 3 must hold or have held stage "staging"`),
			},
			{Config: providerBlock(r, "") + churn{staging: 3, production: 1}.hcl()},
			{
				// Now it holds staging, but its auc is too low.
				Config:      providerBlock(r, "") + churn{staging: 3, production: 3}.hcl(),
				PlanOnly:    true,
				ExpectError: expectError(`stage policy rule min_metrics failed: version 3 has auc = 0.8, policy for "production" needs >= 0.85`),
			},
			{
				// The plan of the same change fails as a whole: nothing applies.
				Config:      providerBlock(r, "") + churn{staging: 3, production: 3}.hcl(),
				ExpectError: expectError(`min_metrics`),
			},
			{
				Config: providerBlock(r, "") + churn{staging: 3, production: 1}.hcl(),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

func TestAccStageAssignment_minSoak(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + churn{staging: 2, minSoak: "24h"}.hcl()},
			{
				Config:      providerBlock(r, "") + churn{staging: 2, production: 2, minSoak: "24h"}.hcl(),
				PlanOnly:    true,
				ExpectError: expectError(`stage policy rule min_soak failed`),
			},
			{
				PreConfig: func() { r.Clock.Advance(25 * time.Hour) },
				Config:    providerBlock(r, "") + churn{staging: 2, production: 2, minSoak: "24h"}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("mlregistry_stage_assignment.production", tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
				},
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				// The next refresh sees both stages on v2, without a diff.
				Config: providerBlock(r, "") + churn{staging: 2, production: 2, minSoak: "24h"}.hcl(),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("mlregistry_model_version.v2", tfjsonpath.New("stages"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("production"), knownvalue.StringExact("staging"),
					})),
				},
			},
		},
	})
}

func TestAccStageAssignment_flaggedVersionCannotBePromoted(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + churn{staging: 1, flagV2: true}.hcl()},
			{
				// At plan time: the dry run refuses the flagged version.
				Config:   providerBlock(r, "") + churn{staging: 2, flagV2: true}.hcl(),
				PlanOnly: true,
				ExpectError: expectError(`Version 2 of model "churn" is flagged`, `stage policy rule flagged failed: version 2 of "churn" is flagged (label leak)`,
					"unflag it (flagged = false on its mlregistry_model_version) in an apply of its own, then assign it in the next apply", "dry run"),
			},
			{Config: providerBlock(r, "") + churn{staging: 1}.hcl()},
			{
				// Flagged and promoted in one apply: the plan cannot know yet,
				// the registry refuses at apply time.
				Config:      providerBlock(r, "") + churn{staging: 2, flagV2: true}.hcl(),
				ExpectError: expectError(`Version 2 of model "churn" is flagged`, "is flagged", "unflag it", "in an apply of its own"),
			},
		},
	})
}

func TestAccStageAssignment_replaceOnStageChange(t *testing.T) {
	r := testRegistry(t)
	extra := func(stage string) string {
		return fmt.Sprintf(`
resource "mlregistry_stage_assignment" "qa" {
  model   = mlregistry_model.churn.name
  stage   = %q
  version = mlregistry_model_version.v1.version
}
`, stage)
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + churn{extra: extra("qa")}.hcl()},
			{
				Config: providerBlock(r, "") + churn{extra: extra("qa-eu")}.hcl(),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("mlregistry_stage_assignment.qa", plancheck.ResourceActionDestroyBeforeCreate)},
				},
				Check: func(_ *terraformState) error {
					if _, err := apiClient(t, r).GetStage(context.Background(), "churn", "qa"); err == nil {
						return fmt.Errorf("old stage still assigned")
					}
					return nil
				},
			},
		},
	})
}

func TestAccStageAssignment_disappears(t *testing.T) {
	r := testRegistry(t)
	config := providerBlock(r, "") + churn{staging: 1}.hcl()
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() { must(t, apiClient(t, r).UnassignStage(context.Background(), "churn", "staging", 0)) },
				Config:    config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("mlregistry_stage_assignment.staging", plancheck.ResourceActionCreate)},
				},
			},
		},
	})
}

func TestAccStageAssignment_drift(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_stage_assignment.staging"
	config := providerBlock(r, "") + churn{staging: 1}.hcl()
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					_, err := apiClient(t, r).AssignStage(context.Background(), "churn", "staging", registry.StageAssign{Version: 2, Reason: "hotfix"}, 0)
					must(t, err)
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("previous_version"), knownvalue.Int64Exact(2)),
				},
			},
		},
	})
}

// TestAccStageAssignment_readOnlyTokenCanPlan: a pull request's plan may
// run with a read token; the dry run answers that the token may not apply
// the change, which must not fail the plan.
func TestAccStageAssignment_readOnlyTokenCanPlan(t *testing.T) {
	r := testRegistry(t)
	reader := r.Token(t, "pr-plan", registry.ScopeRead)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + churn{staging: 1}.hcl()},
			{
				Config:             providerBlock(r, reader) + churn{staging: 2}.hcl(),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// Applying with it fails with a permission error, not a crash.
				Config:      providerBlock(r, reader) + churn{staging: 2}.hcl(),
				ExpectError: expectError("Permission denied"),
			},
			// Back to the admin token, which the final destroy uses.
			{Config: providerBlock(r, "") + churn{staging: 1}.hcl()},
		},
	})
}

// TestAccStageAssignment_dryRunPermission: the plan fails when the
// provider's token could not apply the change, and fails on a policy
// violation whoever plans, a read token included.
func TestAccStageAssignment_dryRunPermission(t *testing.T) {
	r := testRegistry(t)
	ci := r.Token(t, "ci-staging", registry.ScopeWrite, "staging")
	reader := r.Token(t, "drift", registry.ScopeRead)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			// v1 in both stages, then v2 in staging: the policy allows v2
			// into production.
			{Config: providerBlock(r, "") + churn{staging: 1, production: 1}.hcl()},
			{Config: providerBlock(r, "") + churn{staging: 2, production: 1}.hcl()},
			{
				// A token restricted to staging: the dry run passes the
				// policy but says the token may not assign production.
				Config:      providerBlock(r, ci) + churn{staging: 2, production: 2}.hcl(),
				PlanOnly:    true,
				ExpectError: expectError("Permission denied", `token "ci-staging" may assign stages [staging], not "production"`, `Plan and apply with a write token that may assign stage "production"`),
			},
			{
				// A read token sees a policy violation like anyone else.
				Config:      providerBlock(r, reader) + churn{staging: 2, production: 3}.hcl(),
				PlanOnly:    true,
				ExpectError: expectError("Stage policy violation", "require_stage failed: version 3"),
			},
			{
				// A read token planning an allowed change: a plan, and a
				// warning that applying needs a write token.
				Config:             providerBlock(r, reader) + churn{staging: 2, production: 2}.hcl(),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// The restricted token may move staging.
				Config: providerBlock(r, ci) + churn{staging: 3, production: 1}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("mlregistry_stage_assignment.staging", tfjsonpath.New("assigned_by"), knownvalue.StringExact("ci-staging")),
				},
			},
			{Config: providerBlock(r, "") + churn{staging: 1, production: 1}.hcl()},
		},
	})
}
