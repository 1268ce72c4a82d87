package provider

import (
	"fmt"
	"testing"
	"time"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const lookups = `
locals {
  all_versions = [mlregistry_model_version.v1, mlregistry_model_version.v2, mlregistry_model_version.v3]
}

data "mlregistry_model" "churn" {
  name = mlregistry_model.churn.name
}

data "mlregistry_model_version" "production" {
  model      = "churn"
  stage      = "production"
  depends_on = [mlregistry_stage_assignment.production]
}

data "mlregistry_model_version" "latest" {
  model      = "churn"
  latest     = true
  depends_on = [local.all_versions]
}

data "mlregistry_model_version" "best_auc" {
  model       = "churn"
  best_metric = "auc"
  depends_on  = [local.all_versions]
}

data "mlregistry_model_version" "worst_auc" {
  model          = "churn"
  best_metric    = "auc"
  best_direction = "min"
  depends_on     = [local.all_versions]
}

data "mlregistry_model_version" "v2" {
  model   = "churn"
  version = mlregistry_model_version.v2.version
}

data "mlregistry_model_versions" "by_auc" {
  model      = "churn"
  order_by   = "metrics.auc desc"
  depends_on = [local.all_versions]
}

data "mlregistry_model_versions" "in_staging" {
  model      = "churn"
  stage      = "staging"
  depends_on = [mlregistry_stage_assignment.staging]
}

data "mlregistry_model_versions" "flagged" {
  model      = "churn"
  flagged    = true
  depends_on = [local.all_versions]
}
`

func versionNumbers(ns ...int64) knownvalue.Check {
	checks := make([]knownvalue.Check, len(ns))
	for i, n := range ns {
		checks[i] = knownvalue.ObjectPartial(map[string]knownvalue.Check{"version": knownvalue.Int64Exact(n)})
	}
	return knownvalue.ListExact(checks)
}

func TestAccDataSources_lookups(t *testing.T) {
	r := testRegistry(t)
	version := func(name string, n int64) statecheck.StateCheck {
		return statecheck.ExpectKnownValue("data.mlregistry_model_version."+name, tfjsonpath.New("version"), knownvalue.Int64Exact(n))
	}
	versions := func(name string, ns ...int64) statecheck.StateCheck {
		return statecheck.ExpectKnownValue("data.mlregistry_model_versions."+name, tfjsonpath.New("versions"), versionNumbers(ns...))
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + churn{staging: 1, production: 1, extra: lookups}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.mlregistry_model.churn", tfjsonpath.New("stage_policies").AtMapKey("production").AtMapKey("require_stage"), knownvalue.StringExact("staging")),
					statecheck.ExpectKnownValue("data.mlregistry_model.churn", tfjsonpath.New("tags"), knownvalue.Null()),
					version("production", 1),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.production", tfjsonpath.New("stages"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("production"), knownvalue.StringExact("staging"),
					})),
					version("latest", 3),
					version("best_auc", 2),
					version("worst_auc", 3),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.v2", tfjsonpath.New("checksum"), knownvalue.StringExact(checksum(101))),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.v2", tfjsonpath.New("metrics"), knownvalue.MapExact(map[string]knownvalue.Check{"auc": knownvalue.Float64Exact(0.92)})),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.v2", tfjsonpath.New("id"), knownvalue.StringExact("churn/2")),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.v2", tfjsonpath.New("live_metrics"), knownvalue.MapSizeExact(0)),
					versions("by_auc", 2, 1, 3),
					versions("in_staging", 1),
					versions("flagged"),
				},
			},
			// "Version in stage" follows a promotion.
			{
				Config:            providerBlock(r, "") + churn{staging: 2, production: 1, extra: lookups}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{version("production", 1), versions("in_staging", 2)},
			},
			{
				Config: providerBlock(r, "") + churn{staging: 2, production: 2, extra: lookups}.hcl(),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("mlregistry_stage_assignment.production", plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue("data.mlregistry_model_version.production", tfjsonpath.New("version")),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					version("production", 2),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.production", tfjsonpath.New("metrics").AtMapKey("auc"), knownvalue.Float64Exact(0.92)),
				},
			},
			// Flagged versions are skipped by best: v2 has the best auc.
			{
				Config: providerBlock(r, "") + churn{staging: 1, production: 1, flagV2: true, extra: lookups}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					version("production", 1),
					version("best_auc", 1),
					version("latest", 3),
					versions("flagged", 2),
					statecheck.ExpectKnownValue("data.mlregistry_model_version.v2", tfjsonpath.New("flag_reason"), knownvalue.StringExact("label leak")),
				},
			},
			// ... and by latest: v3 is the latest and has the worst auc.
			{
				Config: providerBlock(r, "") + churn{staging: 1, production: 1, flagV3: true, extra: lookups}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					version("latest", 2),
					version("worst_auc", 1),
					version("best_auc", 2),
					versions("flagged", 3),
				},
			},
			// Feedback for version 2 (through the registry's own store: 6
			// values from a write token, 4 from a serve token) shows in
			// its live metrics, the trusted part apart.
			{
				PreConfig: func() {
					ctx := t.Context()
					if _, err := r.Store.CreateEndpoint(ctx, registry.Actor{Name: "test"}, registry.EndpointCreate{Name: "live", Model: "churn",
						Routes: []registry.Route{{Name: "main", Version: 2, UpstreamURL: "http://main.internal:8080", Weight: 100}}}); err != nil {
						t.Fatal(err)
					}
					var items []registry.FeedbackRecord
					for i := range 10 {
						items = append(items, registry.FeedbackRecord{Index: i, Trusted: i < 6, Metrics: map[string]float64{"correct": float64(i % 2)},
							Receipt: registry.Receipt{KeyID: 1, IssuedAt: r.Clock.Now().Add(-time.Minute), Endpoint: "live", Route: "main", Model: "churn", Version: 2,
								RequestID: fmt.Sprintf("req-%d", i)}})
					}
					if res, err := r.Store.RecordFeedback(ctx, registry.Actor{Name: "test"}, "live", items); err != nil || res.Accepted != 10 {
						t.Fatalf("feedback: %+v %v", res, err)
					}
				},
				Config: providerBlock(r, "") + churn{staging: 1, production: 1, flagV3: true, extra: lookups}.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.mlregistry_model_version.v2", tfjsonpath.New("live_metrics"), knownvalue.MapExact(map[string]knownvalue.Check{
						"correct": knownvalue.ObjectExact(map[string]knownvalue.Check{
							"count": knownvalue.Int64Exact(10), "mean": knownvalue.Float64Exact(0.5),
							"trusted_count": knownvalue.Int64Exact(6), "trusted_mean": knownvalue.Float64Exact(0.5),
						}),
					})),
				},
				// The endpoint goes before the destroy deletes the versions.
				Check: func(*terraformState) error {
					return r.Store.DeleteEndpoint(t.Context(), registry.Actor{Name: "test"}, "live", registry.Precondition{})
				},
			},
		},
	})
}

func TestAccDataSources_errors(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + `
data "mlregistry_model_version" "x" {
  model   = "churn"
  version = 1
  latest  = true
}`,
				ExpectError: expectError("Invalid Attribute Combination"),
			},
			{
				Config: providerBlock(r, "") + `
data "mlregistry_model_version" "x" {
  model  = "churn"
}`,
				ExpectError: expectError("Exactly one of these attributes must be configured"),
			},
			{
				Config: providerBlock(r, "") + `
resource "mlregistry_model" "m" {
  name = "churn"
}
data "mlregistry_model_version" "x" {
  model      = mlregistry_model.m.name
  stage      = "production"
  depends_on = [mlregistry_model.m]
}`,
				ExpectError: expectError(`Stage "production" of model "churn" is not assigned`),
			},
			{
				Config: providerBlock(r, "") + `
data "mlregistry_model" "x" {
  name = "nope"
}`,
				ExpectError: expectError(`Could not read model "nope"`),
			},
		},
	})
}
