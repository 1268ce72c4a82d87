package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// versionConfig is a model and one version with every artifact field set;
// extra is placed inside the version block.
func versionConfig(checksumN int, extra string) string {
	return fmt.Sprintf(`
resource "mlregistry_model" "m" {
  name = "fraud"
}

resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/fraud/model.onnx"
  checksum = %q
  format   = "onnx"
  parameters = {
    learning_rate = "0.01"
    epochs        = "20"
  }
  metrics = {
    auc  = 0.91
    loss = 0.1
    f1   = 0.3333333333333333
  }
  lineage {
    run_id     = "run-42"
    git_commit = "3f2c1e0"
  }
  signature {
    input {
      name  = "zeta"
      dtype = "float32"
      shape = [-1, 3]
    }
    input {
      name  = "alpha"
      dtype = "string"
    }
    output {
      name  = "score"
      dtype = "float32"
      shape = [-1]
    }
  }
%s
}
`, checksum(checksumN), extra)
}

func TestAccModelVersion_basic(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + versionConfig(1, `  description = "first cut"`),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
						plancheck.ExpectUnknownValue(name, tfjsonpath.New("version")),
						plancheck.ExpectUnknownValue(name, tfjsonpath.New("stages")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringExact("fraud/1")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("metrics").AtMapKey("auc"), knownvalue.Float64Exact(0.91)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("lineage"), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"run_id": knownvalue.StringExact("run-42"), "git_commit": knownvalue.StringExact("3f2c1e0"),
						"dataset": knownvalue.Null(), "code_uri": knownvalue.Null(),
					})),
					// Signature order is the configuration's order, not sorted.
					statecheck.ExpectKnownValue(name, tfjsonpath.New("signature").AtMapKey("input"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"name": knownvalue.StringExact("zeta"), "dtype": knownvalue.StringExact("float32"),
							"shape": knownvalue.ListExact([]knownvalue.Check{knownvalue.Int64Exact(-1), knownvalue.Int64Exact(3)}),
						}),
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"name": knownvalue.StringExact("alpha"), "dtype": knownvalue.StringExact("string"), "shape": knownvalue.Null(),
						}),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("flagged"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("flag_reason"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.MapExact(map[string]knownvalue.Check{})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stages"), knownvalue.ListExact([]knownvalue.Check{})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("created_by"), adminName),
				},
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateId:     "fraud/1",
				ImportStateVerify: true,
			},
			{
				ResourceName:    name,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "fraud/1",
			},
			{
				Config: providerBlock(r, "") + versionConfig(1, `
  description = "known bad"
  tags        = { reviewed = "yes" }
  flagged     = true
  flag_reason = "label leak"
`),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("flagged"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("flag_reason"), knownvalue.StringExact("label leak")),
				},
			},
			{
				// Unflag and clear everything mutable.
				Config: providerBlock(r, "") + versionConfig(1, ""),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("flagged"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("description"), knownvalue.Null()),
				},
			},
		},
	})
}

func TestAccModelVersion_replaceArtifact(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	versionNumbers := statecheck.CompareValue(compare.ValuesDiffer())
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config:            providerBlock(r, "") + versionConfig(1, ""),
				ConfigStateChecks: []statecheck.StateCheck{versionNumbers.AddStateValue(name, tfjsonpath.New("version"))},
			},
			{
				Config: providerBlock(r, "") + versionConfig(2, ""),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
						plancheck.ExpectUnknownValue(name, tfjsonpath.New("version")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					versionNumbers.AddStateValue(name, tfjsonpath.New("version")),
					// Numbers are never reused, even after a delete.
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
				},
			},
			{
				// A metric is part of the artifact identity too.
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "fraud"
}
resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/fraud/model.onnx"
  checksum = "` + checksum(2) + `"
  format   = "onnx"
  metrics  = { auc = 0.95 }
}
`,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate)},
				},
			},
		},
	})
}

func TestAccModelVersion_disappears(t *testing.T) {
	r := testRegistry(t)
	config := providerBlock(r, "") + versionConfig(1, "")
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() { must(t, apiClient(t, r).DeleteVersion(context.Background(), "fraud", 1, 0)) },
				Config:    config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("mlregistry_model_version.v", plancheck.ResourceActionCreate),
						plancheck.ExpectResourceAction("mlregistry_model.m", plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("mlregistry_model_version.v", tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
				},
			},
		},
	})
}

func TestAccModelVersion_drift(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	config := providerBlock(r, "") + versionConfig(1, `  tags = { owner = "ds" }`)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					tags, flagged, desc := map[string]string{"owner": "someone"}, true, "edited by hand"
					_, err := apiClient(t, r).UpdateVersion(context.Background(), "fraud", 1,
						registry.ModelVersionPatch{Tags: &tags, Flagged: &flagged, Description: &desc}, 0)
					must(t, err)
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("flagged"), knownvalue.Bool(false)),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("description"), knownvalue.Null()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(_ *terraformState) error {
					v, err := apiClient(t, r).GetVersion(context.Background(), "fraud", 1)
					if err != nil {
						return err
					}
					if v.Flagged || v.Description != "" || v.Tags["owner"] != "ds" {
						return fmt.Errorf("drift not corrected: %+v", v)
					}
					return nil
				},
			},
		},
	})
}

func TestAccModelVersion_duplicateChecksum(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{{
			Config: providerBlock(r, "") + versionConfig(1, "") + `
resource "mlregistry_model_version" "copy" {
  model      = mlregistry_model.m.name
  source     = "s3://models/fraud/copy.onnx"
  checksum   = mlregistry_model_version.v.checksum
  format     = "onnx"
}
`,
			ExpectError: expectError("Artifact already registered", "version 1"),
		}},
	})
}

func artifact(source, checksum, format string) string {
	return fmt.Sprintf("source   = %q\n  checksum = %q\n  format   = %q", source, checksum, format)
}

func TestAccModelVersion_invalidValues(t *testing.T) {
	r := testRegistry(t)
	for _, tt := range []struct {
		name, attrs string
		want        string
	}{
		{"checksum", artifact("s3://b/k", "md5:abc", "onnx"), `sha256:<64 lower-case hex digits>`},
		{"format", artifact("s3://b/k", checksum(1), "zip"), `onnx`},
		{"source", artifact("not a uri", checksum(1), "onnx"), `absolute URI`},
		{"flag_reason", artifact("s3://b/k", checksum(1), "onnx") + "\n  flag_reason = \"x\"", `only be set when flagged is true`},
		{"tensors", artifact("s3://b/k", checksum(1), "onnx") + `
  signature {
    input {
      name  = "a"
      dtype = "f"
    }
    input {
      name  = "a"
      dtype = "f"
      shape = [-2]
    }
  }`, `is used twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tfresource.ParallelTest(t, tfresource.TestCase{
				ProtoV6ProviderFactories: testAccProviders,
				Steps: []tfresource.TestStep{{
					Config:      providerBlock(r, "") + "resource \"mlregistry_model_version\" \"v\" {\n  model = \"m\"\n  " + tt.attrs + "\n}\n",
					PlanOnly:    true,
					ExpectError: expectError(tt.want),
				}},
			})
		})
	}
}

// TestAccModelVersion_flagKeepsStages: flagging a version that holds a
// stage plans no change of its stages (an update cannot move a stage).
func TestAccModelVersion_flagKeepsStages(t *testing.T) {
	r := testRegistry(t)
	const v2 = "mlregistry_model_version.v2"
	staging := knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("staging")})
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			// v2 is registered, then assigned to staging; the next refresh
			// reads its stages.
			{Config: providerBlock(r, "") + churn{staging: 2}.hcl()},
			{
				Config: providerBlock(r, "") + churn{staging: 2, flagV2: true}.hcl(),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(v2, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(v2, tfjsonpath.New("stages"), staging),
						plancheck.ExpectResourceAction("mlregistry_stage_assignment.staging", plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(v2, tfjsonpath.New("flagged"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(v2, tfjsonpath.New("stages"), staging),
				},
			},
		},
	})
}

// TestAccModelVersion_duplicateChecksumAdvice: the advice for a checksum
// that is already registered depends on whose version holds it.
func TestAccModelVersion_duplicateChecksumAdvice(t *testing.T) {
	r := testRegistry(t)
	cbd := func(source string) string {
		return providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "fraud"
}
resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "` + source + `"
  checksum = "` + checksum(1) + `"
  format   = "onnx"
  lifecycle {
    create_before_destroy = true
  }
}
`
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: cbd("s3://models/fraud/a.onnx")},
			{
				// The version being replaced is in state: no advice to import.
				Config: cbd("s3://models/fraud/b.onnx"),
				ExpectError: expectError("Artifact already registered as version 1", "this field differs from this resource's: source.",
					"remove create_before_destroy from this resource's lifecycle block"),
			},
			{
				// Registered outside Terraform with this checksum but
				// another source: import it (a registration with exactly
				// the planned artifact is adopted instead, see
				// TestAccTerraformCLI_adoptCommittedCreate).
				PreConfig: func() {
					_, err := apiClient(t, r).CreateVersion(context.Background(), "fraud", registry.ModelVersionCreate{
						Source: "s3://models/fraud/c.onnx", Checksum: checksum(2), Format: "onnx",
					})
					must(t, err)
				},
				Config: cbd("s3://models/fraud/a.onnx") + `
resource "mlregistry_model_version" "outside" {
  model    = mlregistry_model.m.name
  source   = "s3://models/fraud/d.onnx"
  checksum = "` + checksum(2) + `"
  format   = "onnx"
}
`,
				ExpectError: expectError("Artifact already registered as version 2", "this field differs from this resource's: source.", "terraform import", "fraud/2", "import block"),
			},
			{
				PreConfig: func() { must(t, apiClient(t, r).DeleteVersion(context.Background(), "fraud", 2, 0)) },
				Config:    cbd("s3://models/fraud/a.onnx"),
			},
		},
	})
}

// metricsVersionConfig is a model whose staging policy needs f1 and a
// version with the given metrics.
func metricsVersionConfig(metrics string) string {
	return `
resource "mlregistry_model" "m" {
  name = "fraud"
  stage_policy {
    stage       = "staging"
    min_metrics = { f1 = 0.75 }
  }
}

resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/fraud/model.onnx"
  checksum = "` + checksum(1) + `"
  format   = "onnx"
  metrics  = ` + metrics + `
}
`
}

const stagingAssignment = `
resource "mlregistry_stage_assignment" "staging" {
  model   = mlregistry_model.m.name
  stage   = "staging"
  version = mlregistry_model_version.v.version
}
`

// TestAccModelVersion_addMetrics: a metric added to the configuration is
// an in-place update (PATCH add_metrics) that a stage policy then sees;
// changing or removing a recorded metric replaces the version, and the
// plan names metrics as the reason.
func TestAccModelVersion_addMetrics(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + metricsVersionConfig(`{ auc = 0.91 }`)},
			{
				// Without f1 the staging policy refuses the version, at plan time.
				Config:      providerBlock(r, "") + metricsVersionConfig(`{ auc = 0.91 }`) + stagingAssignment,
				ExpectError: regexp.MustCompile(`min_metrics`),
			},
			{
				// Evaluation finished: f1 joins the same version.
				Config: providerBlock(r, "") + metricsVersionConfig(`{ auc = 0.91, f1 = 0.8 }`),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
						expectNoReplacePaths(name),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("metrics"), knownvalue.MapExact(map[string]knownvalue.Check{
						"auc": knownvalue.Float64Exact(0.91), "f1": knownvalue.Float64Exact(0.8),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("revision"), knownvalue.Int64Exact(2)),
				},
				Check: func(_ *terraformState) error {
					v, err := apiClient(t, r).GetVersion(context.Background(), "fraud", 1)
					if err != nil {
						return err
					}
					if v.Metrics["f1"] != 0.8 || v.Metrics["auc"] != 0.91 || len(v.Metrics) != 2 {
						return fmt.Errorf("registry metrics after the update: %v", v.Metrics)
					}
					return nil
				},
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateId:     "fraud/1",
				ImportStateVerify: true,
			},
			{
				// Imported (ImportBlockWithID plans the import and checks
				// the plan after it is empty).
				ResourceName:    name,
				ImportState:     true,
				ImportStateKind: tfresource.ImportBlockWithID,
				ImportStateId:   "fraud/1",
			},
			{
				// The policy sees the added metric.
				Config: providerBlock(r, "") + metricsVersionConfig(`{ auc = 0.91, f1 = 0.8 }`) + stagingAssignment,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction("mlregistry_stage_assignment.staging", plancheck.ResourceActionCreate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				// The same number spelled another way is no change.
				Config: providerBlock(r, "") + metricsVersionConfig(`{ auc = 0.910, f1 = 8e-1 }`) + stagingAssignment,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

// TestAccModelVersion_changeOrRemoveMetric: a recorded metric never
// changes, so a new value or a removed key registers a new version, and
// the plan says metrics forces it.
func TestAccModelVersion_changeOrRemoveMetric(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	replaced := func(metrics string, version int64) tfresource.TestStep {
		return tfresource.TestStep{
			Config: providerBlock(r, "") + metricsVersionConfig(metrics),
			ConfigPlanChecks: tfresource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
					expectReplacePaths(name, "metrics"),
				},
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(name, tfjsonpath.New("version"), knownvalue.Int64Exact(version)),
			},
		}
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + metricsVersionConfig(`{ auc = 0.91, f1 = 0.8 }`)},
			replaced(`{ auc = 0.92, f1 = 0.8 }`, 2),
			replaced(`{ auc = 0.92 }`, 3),
			// Adding one while changing another is still a change.
			replaced(`{ auc = 0.93, f1 = 0.8 }`, 4),
			replaced(`{}`, 5),
		},
	})
}

// expectReplacePaths checks that the plan replaces name because of
// exactly the given top-level attributes.
func expectReplacePaths(name string, attrs ...string) plancheck.PlanCheck {
	return replacePathsCheck{name: name, want: attrs}
}

// expectNoReplacePaths checks that no attribute of name forces a
// replacement.
func expectNoReplacePaths(name string) plancheck.PlanCheck { return replacePathsCheck{name: name} }

type replacePathsCheck struct {
	name string
	want []string
}

func (c replacePathsCheck) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != c.name {
			continue
		}
		var got []string
		for _, p := range rc.Change.ReplacePaths {
			steps, ok := p.([]any)
			if !ok || len(steps) == 0 {
				resp.Error = fmt.Errorf("%s: unexpected replace path %v", c.name, p)
				return
			}
			got = append(got, fmt.Sprint(steps[0]))
		}
		sort.Strings(got)
		if !slices.Equal(got, c.want) {
			resp.Error = fmt.Errorf("%s: replaced because of %v, want %v", c.name, got, c.want)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", c.name)
}

// TestAccModelVersion_signatureInputsOnly: a signature block with inputs
// and no output blocks holds an empty output list (no blocks is an empty
// list to Terraform, never null), so the re-plan and an import agree.
func TestAccModelVersion_signatureInputsOnly(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_model_version.v"
	config := providerBlock(r, "") + fmt.Sprintf(`
resource "mlregistry_model" "m" {
  name = "inputs-only"
}

resource "mlregistry_model_version" "v" {
  model    = mlregistry_model.m.name
  source   = "s3://models/inputs-only/model.onnx"
  checksum = %q
  format   = "onnx"
  signature {
    input {
      name  = "x"
      dtype = "float32"
    }
  }
}
`, checksum(1))
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
					statecheck.ExpectKnownValue(name, tfjsonpath.New("signature").AtMapKey("output"), knownvalue.ListExact([]knownvalue.Check{})),
				},
			},
			{ResourceName: name, ImportState: true, ImportStateVerify: true},
		},
	})
}
