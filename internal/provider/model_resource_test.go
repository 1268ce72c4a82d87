package provider

import (
	"context"
	"fmt"
	"testing"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func TestAccModel_basic(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model.churn"
	create := providerBlock(r, "") + `
resource "mlregistry_model" "churn" {
  name        = "churn"
  description = "Predicts churn"
  owner       = "ds-team"
  tags        = { team = "ds", tier = "1" }
  stage_policy {
    stage         = "production"
    require_stage = "staging"
    min_soak      = "24h"
    min_metrics   = { auc = 0.85 }
  }
  stage_policy {
    stage                   = "staging"
    max_metrics             = { latency_ms = 50 }
    require_signature_match = true
    min_live_metrics        = { correct = 0.9 }
  }
}
`
	update := providerBlock(r, "") + `
resource "mlregistry_model" "churn" {
  name        = "churn"
  description = "Predicts customer churn"
  owner       = "ds-team"
  tags        = { team = "ds" }
  stage_policy {
    stage         = "production"
    require_stage    = "staging"
    min_metrics      = { auc = 0.9, recall = 0.7 }
    min_live_metrics = { correct = 0.95, abs_error_ok = 0.5 }
    min_live_count   = 250
  }
}
`
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: create,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringExact("churn")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("owner"), knownvalue.StringExact("ds-team")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.MapExact(map[string]knownvalue.Check{
						"team": knownvalue.StringExact("ds"), "tier": knownvalue.StringExact("1"),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stage_policy"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"stage":                   knownvalue.StringExact("production"),
							"require_stage":           knownvalue.StringExact("staging"),
							"min_soak":                knownvalue.StringExact("24h"),
							"min_metrics":             knownvalue.MapExact(map[string]knownvalue.Check{"auc": knownvalue.Float64Exact(0.85)}),
							"max_metrics":             knownvalue.Null(),
							"require_signature_match": knownvalue.Null(),
							"min_live_metrics":        knownvalue.Null(),
							"min_live_count":          knownvalue.Null(),
						}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"stage":                   knownvalue.StringExact("staging"),
							"require_signature_match": knownvalue.Bool(true),
							"min_live_metrics":        knownvalue.MapExact(map[string]knownvalue.Check{"correct": knownvalue.Float64Exact(0.9)}),
							"min_live_count":          knownvalue.Null(),
						}),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("force_destroy"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("revision"), knownvalue.NotNull()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("created_at"), knownvalue.NotNull()),
				},
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateId:     "churn",
				ImportStateVerify: true,
			},
			{
				ResourceName:    name,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "churn",
				ImportPlanChecks: tfresource.ImportPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionNoop)},
				},
			},
			{
				Config:           update,
				ConfigPlanChecks: inPlaceUpdate(name),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("description"), knownvalue.StringExact("Predicts customer churn")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.MapSizeExact(1)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stage_policy"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"stage":       knownvalue.StringExact("production"),
							"min_soak":    knownvalue.Null(),
							"min_metrics": knownvalue.MapExact(map[string]knownvalue.Check{"auc": knownvalue.Float64Exact(0.9), "recall": knownvalue.Float64Exact(0.7)}),
							"min_live_metrics": knownvalue.MapExact(map[string]knownvalue.Check{
								"correct": knownvalue.Float64Exact(0.95), "abs_error_ok": knownvalue.Float64Exact(0.5),
							}),
							"min_live_count": knownvalue.Int64Exact(250),
						}),
					})),
				},
			},
			{
				// Removing every optional attribute clears them in the registry.
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "churn" {
  name = "churn"
}
`,
				ConfigPlanChecks: inPlaceUpdate(name),
				Check: func(_ *terraformState) error {
					m, err := apiClient(t, r).GetModel(context.Background(), "churn")
					if err != nil {
						return err
					}
					if m.Description != "" || m.Owner != "" || len(m.Tags) != 0 || len(m.StagePolicies) != 0 {
						return fmt.Errorf("model not cleared: %+v", m)
					}
					return nil
				},
			},
		},
	})
}

// TestAccModel_nullVersusEmpty pins the one rule for empty values: left
// out is null, written as empty stays empty, and neither diffs again.
func TestAccModel_nullVersusEmpty(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model.m"
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "empty-values"
}
`,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("description"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("owner"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stage_policy"), knownvalue.SetExact([]knownvalue.Check{})),
				},
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name        = "empty-values"
  description = ""
  tags        = {}
  stage_policy {
    stage       = "production"
    min_metrics = {}
  }
}
`,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("description"), knownvalue.StringExact("")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.MapExact(map[string]knownvalue.Check{})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stage_policy"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"stage":         knownvalue.StringExact("production"),
							"min_metrics":   knownvalue.MapExact(map[string]knownvalue.Check{}),
							"require_stage": knownvalue.Null(),
						}),
					})),
				},
			},
			{
				// The same registry object imported: empty comes back null.
				ResourceName:            name,
				ImportState:             true,
				ImportStateId:           "empty-values",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"description", "tags", "stage_policy."},
			},
		},
	})
}

func TestAccModel_replaceOnRename(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model.m"
	config := func(n string) string {
		return providerBlock(r, "") + fmt.Sprintf(`
resource "mlregistry_model" "m" {
  name = %q
}
`, n)
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config("before")},
			{
				Config: config("after"),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringExact("after")),
				},
				Check: func(_ *terraformState) error {
					if _, err := apiClient(t, r).GetModel(context.Background(), "before"); err == nil {
						return fmt.Errorf("old model still exists")
					}
					return nil
				},
			},
		},
	})
}

func TestAccModel_disappears(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model.m"
	config := providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "vanishing"
}
`
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					must(t, apiClient(t, r).DeleteModel(context.Background(), "vanishing", false, 0))
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate)},
				},
			},
		},
	})
}

func TestAccModel_drift(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model.m"
	config := providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name  = "drifting"
  owner = "ds-team"
}
`
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					owner, tags := "someone-else", map[string]string{"added": "by hand"}
					_, err := apiClient(t, r).UpdateModel(context.Background(), "drifting", registry.ModelPatch{Owner: &owner, Tags: &tags}, 0)
					must(t, err)
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("owner"), knownvalue.StringExact("ds-team")),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.Null()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(_ *terraformState) error {
					m, err := apiClient(t, r).GetModel(context.Background(), "drifting")
					if err != nil {
						return err
					}
					if m.Owner != "ds-team" || len(m.Tags) != 0 {
						return fmt.Errorf("drift not corrected: %+v", m)
					}
					return nil
				},
			},
		},
	})
}

func TestAccModel_forceDestroy(t *testing.T) {
	r := testRegistry(t)
	config := func(force bool) string {
		return providerBlock(r, "") + fmt.Sprintf(`
resource "mlregistry_model" "m" {
  name          = "forced"
  force_destroy = %t
}
`, force)
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config(false)},
			{
				// A version registered outside Terraform.
				PreConfig: func() {
					_, err := apiClient(t, r).CreateVersion(context.Background(), "forced", registry.ModelVersionCreate{
						Source: "s3://b/forced.onnx", Checksum: checksum(1), Format: "onnx",
					})
					must(t, err)
				},
				Config: config(true),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("mlregistry_model.m", plancheck.ResourceActionUpdate)},
				},
			},
		},
	})
}

func TestAccModel_invalidValues(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{
			{
				Config:      providerBlock(r, "") + `resource "mlregistry_model" "m" { name = "Churn Model" }`,
				ExpectError: expectError("lower-case letters, digits"),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage = "Production"
  }
}`,
				ExpectError: expectError(`start with a lower-case letter`),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage         = "production"
    require_stage = "staging"
    min_soak      = "a day"
  }
}`,
				ExpectError: expectError(`must be a duration such as 30m`),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage    = "production"
    min_soak = "24h"
  }
}`,
				ExpectError: expectError(`require_stage`),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage       = "production"
    min_metrics = { auc = 0.85 }
  }
  stage_policy {
    stage         = "production"
    require_stage = "staging"
  }
}`,
				ExpectError: expectError(`Duplicate stage policy`, `two blocks have stage = "production"`),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage            = "production"
    min_live_metrics = { "Correct Rate" = 0.9 }
  }
}`,
				ExpectError: expectError(`must be a live metric name`),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage          = "production"
    min_live_count = 10
  }
}`,
				ExpectError: expectError(`min_live_metrics`),
				PlanOnly:    true,
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage            = "production"
    min_live_metrics = { correct = 0.9 }
    min_live_count   = 0
  }
}`,
				ExpectError: expectError(`between 1 and`),
				PlanOnly:    true,
			},
			{
				// A misspelt rule is an error, not a rule silently dropped.
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "ok"
  stage_policy {
    stage      = "production"
    min_metric = { auc = 0.85 }
  }
}`,
				ExpectError: expectError(`Unsupported argument`, `An argument named "min_metric" is not expected here. Did you mean "min_metrics"?`),
				PlanOnly:    true,
			},
		},
	})
}
