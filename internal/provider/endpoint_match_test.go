package provider

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestAccEndpoint_headerMatch: a canary at weight 0 with a match block
// gets every matched request and nothing else, through the registry's
// gateway; the match survives import and an empty re-plan, changes in
// place (exact to prefix) and goes away with its block.
func TestAccEndpoint_headerMatch(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	stable, canary := namedUpstream(t, "stable"), namedUpstream(t, "canary")
	config := func(match string) string {
		return providerBlock(r, "") + endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = "matched"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = %q
    weight       = 100
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v2.version
    upstream_url = %q
    weight       = 0
%s
  }
}

data "mlregistry_endpoint" "e" {
  name = mlregistry_endpoint.e.name
}
`, stable, canary, match)
	}
	reader := r.Token(t, "tester", registry.ScopeRead)
	// served sends n requests with the header (none when hdr is "") and
	// checks that every one reached route.
	served := func(hdr, value, route string) tfresource.TestCheckFunc {
		return func(*terraform.State) error {
			header := http.Header{}
			if hdr != "" {
				header.Set(hdr, value)
			}
			for range 100 {
				a, err := serveOnce(r, reader, "matched", header)
				if err != nil {
					return err
				}
				if a.status != http.StatusOK || a.body != route || a.route != route {
					return fmt.Errorf("%s: %q: served %d %q by route %q, want route %q", hdr, value, a.status, a.body, a.route, route)
				}
			}
			return nil
		}
	}
	inPlace := inPlaceUpdate(name)
	canaryMatch := func(m map[string]knownvalue.Check) statecheck.StateCheck {
		return statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1).AtMapKey("match"), knownvalue.ObjectExact(m))
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: config(`
    match {
      header = "X-Canary"
      value  = "always"
    }`),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					canaryMatch(map[string]knownvalue.Check{
						"header": knownvalue.StringExact("X-Canary"), "value": knownvalue.StringExact("always"), "prefix": knownvalue.Null(),
					}),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(0).AtMapKey("match"), knownvalue.Null()),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("routes").AtSliceIndex(1).AtMapKey("match"), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"header": knownvalue.StringExact("X-Canary"), "value": knownvalue.StringExact("always"), "prefix": knownvalue.Null(),
					})),
				},
				Check: tfresource.ComposeTestCheckFunc(
					served("X-Canary", "always", "canary"),
					served("x-canary", "always", "canary"),
					served("X-Canary", "sometimes", "stable"),
					served("", "", "stable"),
				),
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateId:     "matched",
				ImportStateVerify: true,
			},
			{
				Config: config(`
    match {
      header = "X-Tester"
      value  = "team-"
      prefix = true
    }`),
				ConfigPlanChecks: inPlace,
				ConfigStateChecks: []statecheck.StateCheck{
					canaryMatch(map[string]knownvalue.Check{
						"header": knownvalue.StringExact("X-Tester"), "value": knownvalue.StringExact("team-"), "prefix": knownvalue.Bool(true),
					}),
				},
				Check: tfresource.ComposeTestCheckFunc(
					served("X-Tester", "team-search", "canary"),
					served("X-Canary", "always", "stable"),
				),
			},
			{
				// prefix = false written out reads back as written.
				Config: config(`
    match {
      header = "X-Canary"
      value  = "always"
      prefix = false
    }`),
				ConfigPlanChecks: inPlace,
				Check:            served("X-Canary", "always", "canary"),
			},
			{
				Config:           config(""),
				ConfigPlanChecks: inPlace,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1).AtMapKey("match"), knownvalue.Null()),
				},
				Check: served("X-Canary", "always", "stable"),
			},
		},
	})
}

// TestAccEndpoint_headerMatchInvalid: a bad match is refused by terraform
// validate, naming the attribute and the rule.
func TestAccEndpoint_headerMatchInvalid(t *testing.T) {
	r := testRegistry(t)
	withMatch := func(block string) string {
		return strings.Replace(endpointConfig("e", 90, ""), "weight       = 10\n", "weight       = 10\n"+block+"\n", 1)
	}
	for _, tt := range []struct {
		name, hcl, want string
	}{
		{"hop-by-hop", withMatch(`match {
  header = "Connection"
  value  = "x"
}`), `"Connection" must not be a hop-by-hop header`},
		{"authorization", withMatch(`match {
  header = "authorization"
  value  = "Bearer x"
}`), `must not be a hop-by-hop header`},
		{"not a header", withMatch(`match {
  header = "X Canary"
  value  = "x"
}`), "must be an HTTP header name"},
		{"empty value", withMatch(`match {
  header = "X-Canary"
  value  = ""
}`), "must not be empty"},
		{"no value", withMatch(`match {
  header = "X-Canary"
}`), "route[1].match.value is required in a match block"},
		{"typo", withMatch(`match {
  header = "X-Canary"
  value  = "x"
  prefx  = true
}`), `An argument named "prefx" is not expected here`},
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
