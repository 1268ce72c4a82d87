package provider

import (
	"regexp"
	"testing"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccEndpoint_timeout: an endpoint's upstream timeout is set, imported,
// changed in place and removed (back to the default) without replacing the
// endpoint; an out-of-range value fails at plan with the registry's rule.
func TestAccEndpoint_timeout(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: providerBlock(r, "") + endpointConfig("timed", 90, `  timeout = "2s"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("timeout"), knownvalue.StringExact("2s")),
				},
			},
			{ResourceName: name, ImportState: true, ImportStateVerify: true},
			{
				Config: providerBlock(r, "") + endpointConfig("timed", 90, `  timeout = "2m"`),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)},
				},
			},
			{
				Config: providerBlock(r, "") + endpointConfig("timed", 90, ""),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("timeout"), knownvalue.Null()),
				},
			},
			{
				Config:      providerBlock(r, "") + endpointConfig("timed", 90, `  timeout = "11m"`),
				ExpectError: regexp.MustCompile(`(?s)timeout.*must be from 100ms to 10m`),
			},
		},
	})
}
