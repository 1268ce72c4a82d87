package provider

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// endpointModel is a model "churn" with versions 1 and 2.
const endpointModel = `
resource "mlregistry_model" "churn" {
  name = "churn"
}

resource "mlregistry_model_version" "v1" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/1.onnx"
  checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  format   = "onnx"
}

resource "mlregistry_model_version" "v2" {
  model      = mlregistry_model.churn.name
  source     = "s3://models/churn/2.onnx"
  checksum   = "sha256:0000000000000000000000000000000000000000000000000000000000000002"
  format     = "onnx"
  depends_on = [mlregistry_model_version.v1]
}
`

func endpointConfig(name string, stableWeight int, body string) string {
	return endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = %q
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = "http://stable.internal:8080"
    weight       = %d
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v2.version
    upstream_url = "http://canary.internal:8080"
    weight       = %d
  }
%s
}
`, name, stableWeight, 100-stableWeight, body)
}

func TestAccEndpoint_basic(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	guarded := `
  sticky_header = "X-User-Id"
  guard {
    max_error_rate = 0.05
    min_requests   = 100
    window         = "5m"
    live_metric {
      metric    = "correct"
      floor     = 0.9
      min_count = 50
      window    = "15m"
    }
  }
`
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + endpointConfig("churn", 90, guarded),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("url"), knownvalue.StringExact(r.URL+"/serve/churn/")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("status"), knownvalue.StringExact("healthy")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"name": knownvalue.StringExact("canary"), "version": knownvalue.Int64Exact(2),
						"upstream_url": knownvalue.StringExact("http://canary.internal:8080"), "weight": knownvalue.Int64Exact(10),
						"match": knownvalue.Null(), "shadow": knownvalue.Null(), "share": knownvalue.Null(),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("guard").AtMapKey("max_error_rate"), knownvalue.Float64Exact(0.05)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("guard").AtMapKey("live_metric"), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"metric": knownvalue.StringExact("correct"), "floor": knownvalue.Float64Exact(0.9),
						"min_count": knownvalue.Int64Exact(50), "window": knownvalue.StringExact("15m"),
					})),
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
			},
			{
				// Shift the canary to half, drop the guard and stickiness.
				Config:           providerBlock(r, "") + endpointConfig("churn", 50, ""),
				ConfigPlanChecks: inPlaceUpdate(name),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("guard"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("sticky_header"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(0).AtMapKey("weight"), knownvalue.Int64Exact(50)),
				},
			},
			{
				Config: providerBlock(r, "") + endpointConfig("churn", 50, "") + `
data "mlregistry_endpoint" "e" {
  name = mlregistry_endpoint.e.name
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("routes"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("model"), knownvalue.StringExact("churn")),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("guard"), knownvalue.Null()),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("live_metrics"), knownvalue.MapSizeExact(0)),
				},
			},
		},
	})
}

func TestAccEndpoint_replaceOnRename(t *testing.T) {
	r := testRegistry(t)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: providerBlock(r, "") + endpointConfig("churn", 90, "")},
			{
				Config: providerBlock(r, "") + endpointConfig("churn-v2", 90, ""),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("mlregistry_endpoint.e", plancheck.ResourceActionDestroyBeforeCreate)},
				},
			},
		},
	})
}

func TestAccEndpoint_disappearsAndDrift(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	config := providerBlock(r, "") + endpointConfig("churn", 90, "")
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					routes := []registry.Route{{Name: "stable", Version: 1, UpstreamURL: "http://stable.internal:8080", Weight: 100}}
					_, err := apiClient(t, r).UpdateEndpoint(context.Background(), "churn", registry.EndpointPatch{Routes: &routes}, 0)
					must(t, err)
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("route"), knownvalue.ListSizeExact(2)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				PreConfig: func() { must(t, apiClient(t, r).DeleteEndpoint(context.Background(), "churn", 0)) },
				Config:    config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate)},
				},
			},
		},
	})
}

// TestAccEndpoint_guardRollbackShowsAsDrift sends real traffic through
// the registry's gateway to a canary that fails; the guard moves its
// weight, and the next plan shows that and restores the configuration.
func TestAccEndpoint_guardRollbackShowsAsDrift(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(stable.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	broken := "http://" + l.Addr().String() // refuses connections
	l.Close()
	config := providerBlock(r, "") + endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = "guarded"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = %q
    weight       = 50
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v2.version
    upstream_url = %q
    weight       = 50
  }
  guard {
    max_error_rate = 0.5
    min_requests   = 3
    window         = "1m"
  }
}
`, stable.URL, broken)

	reader := r.Token(t, "reader", registry.ScopeRead)
	trip := func() {
		ctx := context.Background()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/serve/guarded/predict", nil)
			req.Header.Set("Authorization", "Bearer "+reader)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			e, err := apiClient(t, r).GetEndpoint(ctx, "guarded")
			must(t, err)
			if e.Status == registry.EndpointStatusRolledBack {
				return
			}
		}
		t.Fatal("the guard did not roll the canary back")
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config},
			{
				PreConfig: trip,
				Config:    config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1).AtMapKey("weight"), knownvalue.Int64Exact(50)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("status"), knownvalue.StringExact("healthy")),
				},
			},
		},
	})
}

func TestAccEndpoint_invalidValues(t *testing.T) {
	r := testRegistry(t)
	for _, tt := range []struct {
		name, hcl, want string
	}{
		{"weights", strings.Replace(endpointConfig("e", 90, ""), "weight       = 10", "weight       = 5", 1), "weights must sum to 100, they sum to 95"},
		{"window", endpointConfig("e", 90, `
  guard {
    max_error_rate = 0.1
    min_requests   = 10
    window         = "48h"
  }`), "must be between 1s and 24h"},
		{"rate", endpointConfig("e", 90, `
  guard {
    max_error_rate = 1.5
    min_requests   = 10
    window         = "5m"
  }`), "max_error_rate"},
		{"upstream", strings.Replace(endpointConfig("e", 90, ""), "http://canary.internal:8080", "canary:8080", 1), "must be an http:// or https:// URL"},
		{"duplicate", strings.Replace(endpointConfig("e", 90, ""), `name         = "canary"`, `name         = "stable"`, 1), "is used by another route"},
		{"incomplete guard", endpointConfig("e", 90, `
  guard {
    window = "5m"
  }`), "guard.max_error_rate is required in a guard block"},
		{"incomplete live_metric", endpointConfig("e", 90, `
  guard {
    max_error_rate = 0.1
    min_requests   = 10
    window         = "5m"
    live_metric {
      metric = "correct"
    }
  }`), "guard.live_metric.floor is required in a live_metric block"},
		{"live_metric window", endpointConfig("e", 90, `
  guard {
    max_error_rate = 0.1
    min_requests   = 10
    window         = "5m"
    live_metric {
      metric    = "correct"
      floor     = 0.9
      min_count = 50
      window    = "90s"
    }
  }`), "guard.live_metric.window: must be whole minutes"},
		{"live_metric name", endpointConfig("e", 90, `
  guard {
    max_error_rate = 0.1
    min_requests   = 10
    window         = "5m"
    live_metric {
      metric    = "Correct"
      floor     = 0.9
      min_count = 50
      window    = "15m"
    }
  }`), "guard.live_metric.metric: must match"},
		{"no route", `
resource "mlregistry_endpoint" "e" {
  name  = "e"
  model = "churn"
}`, "must have a configuration value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tfresource.ParallelTest(t, tfresource.TestCase{
				ProtoV6ProviderFactories: testAccProviders,
				Steps: []tfresource.TestStep{{
					Config:      providerBlock(r, "") + tt.hcl,
					PlanOnly:    true,
					ExpectError: expectError(tt.want),
				}},
			})
		})
	}
}

// TestAccEndpoint_canaryWalkServesTraffic walks a canary 100/0 -> 0/100
// -> 100/0 through Terraform, each step a plan with an in-place update,
// and checks that the very next request through the gateway follows the
// weights just applied.
func TestAccEndpoint_canaryWalkServesTraffic(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	stable, canary := namedUpstream(t, "stable"), namedUpstream(t, "canary")
	config := func(stableWeight int) string {
		return providerBlock(r, "") + endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = "walk"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = %q
    weight       = %d
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v2.version
    upstream_url = %q
    weight       = %d
  }
}
`, stable, stableWeight, canary, 100-stableWeight)
	}
	reader := r.Token(t, "walker", registry.ScopeRead)
	// servedBy checks that the next requests all reach route (weights are
	// 100/0, so every request must).
	servedBy := func(route, version string) tfresource.TestCheckFunc {
		return func(*terraform.State) error {
			for range 20 {
				a, err := serveOnce(r, reader, "walk", nil)
				if err != nil {
					return err
				}
				if a.status != http.StatusOK || a.body != route || a.route != route || a.version != version {
					return fmt.Errorf("served %d %q by route %q version %q, want route %q version %s",
						a.status, a.body, a.route, a.version, route, version)
				}
			}
			return nil
		}
	}
	inPlace := inPlaceUpdate(name)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: config(100), Check: servedBy("stable", "1")},
			{Config: config(0), ConfigPlanChecks: inPlace, Check: servedBy("canary", "2")},
			{Config: config(100), ConfigPlanChecks: inPlace, Check: servedBy("stable", "1")},
		},
	})
}

// TestEndpointGuardRateIsOneError: an out-of-range max_error_rate is one
// error in the registry's words, not one from a schema validator and
// another from ValidateConfig.
func TestEndpointGuardRateIsOneError(t *testing.T) {
	ctx := context.Background()
	server, err := testAccProviders["mlregistry"]()
	if err != nil {
		t.Fatal(err)
	}
	schemas, err := server.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	typ := schemas.ResourceSchemas["mlregistry_endpoint"].ValueType().(tftypes.Object)
	guardType := typ.AttributeTypes["guard"].(tftypes.Object)
	for _, rate := range []float64{5, 0, -1} {
		attrs := map[string]tftypes.Value{}
		for name, at := range typ.AttributeTypes {
			attrs[name] = tftypes.NewValue(at, nil)
		}
		attrs["name"] = tftypes.NewValue(tftypes.String, "e")
		attrs["model"] = tftypes.NewValue(tftypes.String, "m")
		routesType := typ.AttributeTypes["route"].(tftypes.List)
		route := nulls(routesType.ElementType.(tftypes.Object))
		route["name"] = tftypes.NewValue(tftypes.String, "stable")
		route["version"] = tftypes.NewValue(tftypes.Number, 1)
		route["upstream_url"] = tftypes.NewValue(tftypes.String, "http://stable:8080")
		route["weight"] = tftypes.NewValue(tftypes.Number, 100)
		attrs["route"] = tftypes.NewValue(routesType, []tftypes.Value{tftypes.NewValue(routesType.ElementType, route)})
		guard := nulls(guardType)
		guard["max_error_rate"] = tftypes.NewValue(tftypes.Number, rate)
		guard["min_requests"] = tftypes.NewValue(tftypes.Number, 10)
		guard["window"] = tftypes.NewValue(tftypes.String, "5m")
		attrs["guard"] = tftypes.NewValue(guardType, guard)
		config, err := tfprotov6.NewDynamicValue(typ, tftypes.NewValue(typ, attrs))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := server.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: "mlregistry_endpoint", Config: &config})
		if err != nil {
			t.Fatal(err)
		}
		var errs []string
		for _, d := range resp.Diagnostics {
			if d.Severity == tfprotov6.DiagnosticSeverityError {
				errs = append(errs, d.Summary+": "+d.Detail)
			}
		}
		if len(errs) != 1 || !strings.Contains(errs[0], "must be greater than 0 and at most 1") {
			t.Errorf("max_error_rate = %v: want one error saying the rule, got %d: %q", rate, len(errs), errs)
		}
	}
}

// nulls is every attribute of typ set to null, so a test sets only what it
// is about and keeps building when the schema gains attributes.
func nulls(typ tftypes.Object) map[string]tftypes.Value {
	out := make(map[string]tftypes.Value, len(typ.AttributeTypes))
	for name, at := range typ.AttributeTypes {
		out[name] = tftypes.NewValue(at, nil)
	}
	return out
}

// stageEndpoint is an endpoint of the churn model (see churn) serving
// stage; canary routes 10% to version canary when it is not 0.
func stageEndpoint(stage string, canary int, upstream string) string {
	stageAttr := ""
	if stage != "" {
		stageAttr = fmt.Sprintf("stage = %q", stage)
	}
	routes := fmt.Sprintf(`route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = %q
    weight       = 100
  }`, upstream)
	if canary != 0 {
		routes = fmt.Sprintf(`route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = %q
    weight       = 90
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v%d.version
    upstream_url = "http://canary:8080"
    weight       = 10
  }`, upstream, canary)
	}
	return fmt.Sprintf(`
resource "mlregistry_endpoint" "churn" {
  name   = "churn"
  model  = mlregistry_model.churn.name
  %s
  %s
  depends_on = [mlregistry_stage_assignment.production]
}

data "mlregistry_endpoint" "churn" {
  name       = mlregistry_endpoint.churn.name
  depends_on = [mlregistry_endpoint.churn]
}
`, stageAttr, routes)
}

// TestAccEndpoint_stage: an endpoint serving a stage plans only routes
// whose versions hold or satisfy that stage, whoever plans; a token that
// may not change endpoints fails the plan, a read token gets a warning.
func TestAccEndpoint_stage(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.churn"
	ci := r.Token(t, "ci-staging", registry.ScopeWrite, "staging")
	reader := r.Token(t, "drift", registry.ScopeRead)
	config := func(token, stage string, canary int, upstream string) string {
		return providerBlock(r, token) + churn{staging: 1, production: 1, extra: stageEndpoint(stage, canary, upstream)}.hcl()
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: config("", "production", 0, "http://stable:8080"),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stage"), knownvalue.StringExact("production")),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.churn", tfjsonpath.New("stage"), knownvalue.StringExact("production")),
				},
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateId:     "churn",
				ImportStateVerify: true,
			},
			{
				// v3 never held staging and its auc is too low.
				Config:      config("", "production", 3, "http://stable:8080"),
				PlanOnly:    true,
				ExpectError: expectError("Stage policy violation", `serves stage "production"`, "require_stage failed: version 3", "dry run"),
			},
			{
				Config:      config(reader, "production", 3, "http://stable:8080"),
				PlanOnly:    true,
				ExpectError: expectError("Stage policy violation", "require_stage failed: version 3"),
			},
			{
				// Allowed by the policy, but endpoints need a write token
				// without a stage restriction.
				Config:      config(ci, "production", 0, "http://stable-2:8080"),
				PlanOnly:    true,
				ExpectError: expectError("Permission denied", `token "ci-staging"`, "a write token without a stage restriction"),
			},
			{
				// A read token's plan (a scheduled drift check) works: the
				// registry's dry run answers any token.
				Config:             config(reader, "production", 0, "http://stable-2:8080"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// It still cannot write.
				Config:      config(reader, "production", 0, "http://stable-2:8080"),
				ExpectError: expectError(`token "drift" has scope read`),
			},
			{
				PreConfig: func() {
					e, err := apiClient(t, r).GetEndpoint(context.Background(), "churn")
					if err != nil || e.Routes[0].UpstreamURL != "http://stable:8080" {
						t.Errorf("after the read token's apply: %+v, %v", e, err)
					}
				},
				// The stage changes in place.
				Config:           config("", "staging", 0, "http://stable:8080"),
				ConfigPlanChecks: inPlaceUpdate(name),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("stage"), knownvalue.StringExact("staging")),
				},
			},
			{
				Config:           config("", "", 0, "http://stable:8080"),
				ConfigPlanChecks: inPlaceUpdate(name),
				Check: func(_ *terraformState) error {
					e, err := apiClient(t, r).GetEndpoint(context.Background(), "churn")
					if err != nil {
						return err
					}
					if e.Stage != "" {
						return fmt.Errorf("stage = %q after removing it", e.Stage)
					}
					return nil
				},
			},
		},
	})
}
