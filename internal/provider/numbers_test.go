package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// computedNumbers writes metrics and thresholds the way users compute them:
// arithmetic, jsondecode of an evaluation report (with more digits than a
// float64 holds) and extreme magnitudes. Terraform holds each at 512-bit
// precision; the registry stores float64.
func computedNumbers(evalFile string) string {
	return fmt.Sprintf(`
locals {
  eval = jsondecode(file(%q))
  tp   = 1
  fn   = 2
}

resource "mlregistry_model" "m" {
  name = "numbers"
  stage_policy {
    stage       = "production"
    min_metrics = { auc = 1 / 3, recall = local.eval.recall, tiny = 1e-30 }
    max_metrics = { latency = 0.8 + 0.00002, huge = 1e30 }
  }
}

resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/numbers/model.onnx"
  checksum = %q
  format   = "onnx"
  metrics = {
    auc     = local.tp / (local.tp + local.fn)
    recall  = local.eval.recall
    tiny    = 1e-30
    huge    = 1e30
    latency = 0.8 + 0.00002
  }
}

# Every threshold equals the version's metric, so the policy passes only
# when both went through the same float64 conversion.
resource "mlregistry_stage_assignment" "production" {
  model   = mlregistry_model.m.name
  stage   = "production"
  version = mlregistry_model_version.v.version
}

data "mlregistry_model_version" "best" {
  model       = mlregistry_model.m.name
  best_metric = "tiny"
  depends_on  = [mlregistry_model_version.v]
}

data "mlregistry_model_versions" "by_huge" {
  model      = mlregistry_model.m.name
  order_by   = "metrics.huge desc"
  depends_on = [mlregistry_model_version.v]
}

data "mlregistry_model" "m" {
  name       = mlregistry_model.m.name
  depends_on = [mlregistry_model.m]
}

# Numbers read by data sources fed back into a configuration.
resource "mlregistry_model" "copy" {
  name = "numbers-copy"
  stage_policy {
    stage       = "production"
    min_metrics = data.mlregistry_model_version.best.metrics
    max_metrics = data.mlregistry_model.m.stage_policies["production"].max_metrics
  }
}
`, evalFile, checksum(7))
}

func TestAccNumbers_computedInHCL(t *testing.T) {
	r := testRegistry(t)
	evalFile := filepath.Join(t.TempDir(), "eval.json")
	must(t, os.WriteFile(evalFile, []byte(`{"recall": 0.71428571428571428571428571428571}`), 0o600))
	config := providerBlock(r, "") + computedNumbers(evalFile)
	const version = "mlregistry_model_version.v"
	third := 1.0 / 3
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(version, tfjsonpath.New("metrics").AtMapKey("auc"), knownvalue.Float64Exact(third)),
					statecheck.ExpectKnownValue(version, tfjsonpath.New("metrics").AtMapKey("tiny"), knownvalue.Float64Exact(1e-30)),
					statecheck.ExpectKnownValue(version, tfjsonpath.New("metrics").AtMapKey("huge"), knownvalue.Float64Exact(1e30)),
					statecheck.ExpectKnownValue("mlregistry_stage_assignment.production", tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.best", tfjsonpath.New("metrics").AtMapKey("auc"), knownvalue.Float64Exact(third)),
					statecheck.ExpectKnownValue("data.mlregistry_model_versions.by_huge", tfjsonpath.New("versions").AtSliceIndex(0).AtMapKey("metrics").AtMapKey("huge"), knownvalue.Float64Exact(1e30)),
					statecheck.ExpectKnownValue("data.mlregistry_model.m", tfjsonpath.New("stage_policies").AtMapKey("production").AtMapKey("min_metrics").AtMapKey("tiny"), knownvalue.Float64Exact(1e-30)),
					statecheck.ExpectKnownValue("mlregistry_model.copy", tfjsonpath.New("stage_policy"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"stage":       knownvalue.StringExact("production"),
							"max_metrics": knownvalue.MapPartial(map[string]knownvalue.Check{"latency": knownvalue.Float64Exact(0.8 + 0.00002)}),
						}),
					})),
				},
				Check: func(_ *terraformState) error {
					ctx := context.Background()
					v, err := apiClient(t, r).GetVersion(ctx, "numbers", 1)
					if err != nil {
						return err
					}
					want := map[string]float64{"auc": third, "recall": 0.7142857142857143, "tiny": 1e-30, "huge": 1e30, "latency": 0.8 + 0.00002}
					if fmt.Sprint(v.Metrics) != fmt.Sprint(want) {
						return fmt.Errorf("stored metrics %v, want %v", v.Metrics, want)
					}
					m, err := apiClient(t, r).GetModel(ctx, "numbers")
					if err != nil {
						return err
					}
					if p := m.StagePolicies["production"]; p.MinMetrics["auc"] != third || p.MaxMetrics["huge"] != 1e30 {
						return fmt.Errorf("stored policy %+v", p)
					}
					return nil
				},
			},
			{
				// Re-plan: the float64 the registry answers matches the
				// 512-bit number in the configuration.
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			// Imported objects hold the registry's float64; the computed
			// configuration must not plan a replacement or an update.
			{
				ResourceName:    version,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "numbers/1",
			},
			{
				ResourceName:    "mlregistry_model.m",
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "numbers",
			},
			{
				// A metric that really changes still replaces the version.
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "numbers"
}
resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/numbers/model.onnx"
  checksum = "` + checksum(7) + `"
  format   = "onnx"
  metrics  = { auc = 1 / 3 + 1e-12 }
}
`,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(version, plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

// TestAccNumbers_outOfRange: a number Terraform holds but a float64 cannot
// is refused at plan time, naming the attribute.
func TestAccNumbers_outOfRange(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{{
			Config: providerBlock(r, "") + `
resource "mlregistry_model_version" "v" {
  model    = "m"
  source   = "s3://b/k"
  checksum = "` + checksum(1) + `"
  format   = "onnx"
  metrics  = { huge = 1e400 }
}
`,
			PlanOnly:    true,
			ExpectError: expectError("Number out of range", "1e+400"),
		}},
	})
}

// nullOrEmpty is a version whose map attributes are written as {} (or
// left out, with empty = false). The lineage and signature blocks are not
// here: Terraform plans a written block, even an empty one, as present,
// so after an import (state null) `lineage {}` is a one-time in-place
// update; TestAccModelVersion_emptyBlocks covers them.
func nullOrEmpty(empty bool) string {
	attrs := ""
	if empty {
		attrs = `
  parameters = {}
  metrics    = {}
  tags       = {}`
	}
	return `
resource "mlregistry_model" "m" {
  name = "empties"
}
resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/empties/model.onnx"
  checksum = "` + checksum(3) + `"
  format   = "onnx"` + attrs + `
}
`
}

// TestAccModelVersion_nullVersusEmpty: {} and a left-out attribute mean the
// same artifact, whichever way it was created or imported.
func TestAccModelVersion_nullVersusEmpty(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	empty, null := providerBlock(r, "")+nullOrEmpty(true), providerBlock(r, "")+nullOrEmpty(false)
	noChange := tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: null,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			// Import with the {} configuration: a no-op import ...
			{
				Config:          empty,
				ResourceName:    name,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "empties/1",
			},
			// ... and after `terraform import`, an empty plan.
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "empties"
}
removed {
  from = mlregistry_model_version.v
  lifecycle {
    destroy = false
  }
}
`,
			},
			{
				Config:             empty,
				ResourceName:       name,
				ImportState:        true,
				ImportStateId:      "empties/1",
				ImportStatePersist: true,
			},
			{Config: empty, ConfigPlanChecks: noChange},
			{Config: null, ConfigPlanChecks: noChange},
			// Created with {}: switching to a left-out attribute and back
			// changes nothing either.
			{
				Config: null,
				PreConfig: func() {
					must(t, apiClient(t, r).DeleteVersion(context.Background(), "empties", 1, 0))
				},
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate)},
				},
			},
			{Config: empty, ConfigPlanChecks: noChange},
			{
				Config:          empty,
				ResourceName:    name,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "empties/2",
			},
		},
	})
}

// TestAccModelVersion_emptyBlocks: an empty lineage or signature block is
// the same artifact as none. Terraform plans a written block as present
// and a left-out one as absent, so switching between the two is an
// in-place update that sends nothing, never a replacement, and each
// settles to an empty plan.
func TestAccModelVersion_emptyBlocks(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	blocks := func(empty bool) string {
		hcl := providerBlock(r, "") + nullOrEmpty(false)
		if empty {
			hcl = strings.Replace(hcl, `format   = "onnx"`, "format   = \"onnx\"\n  lineage {\n  }\n  signature {\n  }", 1)
		}
		return hcl
	}
	settled := []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}
	inPlace := []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config:           blocks(true),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PostApplyPostRefresh: settled},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("lineage"), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"run_id": knownvalue.Null(), "git_commit": knownvalue.Null(), "dataset": knownvalue.Null(), "code_uri": knownvalue.Null(),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("signature"), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"input": knownvalue.ListExact([]knownvalue.Check{}), "output": knownvalue.ListExact([]knownvalue.Check{}),
					})),
				},
			},
			{
				Config:           blocks(false),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: inPlace, PostApplyPostRefresh: settled},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("lineage"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("signature"), knownvalue.Null()),
				},
			},
			{
				Config:           blocks(true),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: inPlace, PostApplyPostRefresh: settled},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
				},
			},
		},
	})
}
