package provider

import (
	"fmt"
	"strings"
	"testing"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// rolloutHCL is a rollout block with the given body lines.
func rolloutHCL(body string) string {
	return "\n  rollout {\n" + body + "\n  }\n"
}

// shadowRoute is a third route block, "mirror", with the given extra lines.
func shadowRoute(weight int, extra string) string {
	return fmt.Sprintf(`
  route {
    name         = "mirror"
    version      = mlregistry_model_version.v2.version
    upstream_url = "http://mirror.internal:8080"
    weight       = %d
%s
  }
`, weight, extra)
}

// TestAccEndpoint_rolloutInvalid: every bad rollout and shadow route is
// refused by terraform plan, before anything is written (the versions
// the routes name do not exist yet), naming the attribute and the rule in
// the registry's own words.
func TestAccEndpoint_rolloutInvalid(t *testing.T) {
	r := testRegistry(t)
	const guard = `
  guard {
    max_error_rate = 0.1
    min_requests   = 10
    window         = "5m"
  }
`
	var sixGates, fiveShadows strings.Builder
	for i := range 6 {
		fmt.Fprintf(&sixGates, "    prometheus {\n      query      = \"up{n=\\\"%d\\\"}\"\n      threshold  = 1\n      comparison = \">=\"\n    }\n", i)
	}
	for i := range 5 {
		fmt.Fprintf(&fiveShadows, `
  route {
    name         = "mirror-%d"
    version      = mlregistry_model_version.v2.version
    upstream_url = "http://mirror.internal:8080"
    weight       = 0
    shadow       = true
    share        = 0.1
  }
`, i)
	}
	for _, tt := range []struct {
		name, body string
		want       []string
	}{
		{"steps not increasing", rolloutHCL(`    steps = [10, 50, 25, 100]
    bake  = "1m"`), []string{"rollout.steps[2]: 25 must be greater than the step before it (50) (rule increasing)"}},
		{"steps not ending at 100", rolloutHCL(`    steps = [10, 50]
    bake  = "1m"`), []string{"rollout.steps: must end at 100", "(rule last)"}},
		{"step out of range", rolloutHCL(`    steps = [0, 100]
    bake  = "1m"`), []string{"rollout.steps[0]", "must be between 1 and 100"}},
		{"no steps", rolloutHCL(`    bake = "1m"`), []string{"rollout.steps is required in a rollout block"}},
		{"no bake", rolloutHCL(`    steps = [100]`), []string{"rollout.bake is required in a rollout block"}},
		{"bake shorter than the guard window", guard + rolloutHCL(`    steps = [50, 100]
    bake  = "1m"`), []string{"rollout.bake: 1m must be at least the guard's window (5m)", "(rule guard_window)"}},
		{"bake too short", rolloutHCL(`    steps = [50, 100]
    bake  = "500ms"`), []string{"rollout.bake: 500ms must be a duration from 1s to 24h", "(rule range)"}},
		{"gate without min_requests", rolloutHCL(`    steps          = [50, 100]
    bake           = "1m"
    max_error_rate = 0.05`), []string{"rollout.min_requests: is required with max_error_rate or max_latency_p99", "(rule required)"}},
		{"error rate 0", rolloutHCL(`    steps          = [50, 100]
    bake           = "1m"
    max_error_rate = 0
    min_requests   = 10`), []string{"rollout.max_error_rate: must be greater than 0 and at most 1 (rule range)"}},
		{"p99 too long", rolloutHCL(`    steps           = [50, 100]
    bake            = "1m"
    max_latency_p99 = "20m"
    min_requests    = 10`), []string{"rollout.max_latency_p99: 20m must be from 1ms to 10m0s (rule range)"}},
		{"prometheus comparison", rolloutHCL(`    steps = [50, 100]
    bake  = "1m"
    prometheus {
      query      = "up"
      threshold  = 1
      comparison = "=="
    }`), []string{"rollout.prometheus[0].comparison value must be one of"}},
		{"six prometheus gates", rolloutHCL("    steps = [50, 100]\n    bake  = \"1m\"\n" + sixGates.String()), []string{"rollout.prometheus list must contain at most 5 elements"}},
		{"share above 1", shadowRoute(0, "    shadow = true\n    share  = 1.5"), []string{"route[2].share: must be greater than 0 and at most 1", "(rule range)"}},
		{"shadow without share", shadowRoute(0, "    shadow = true"), []string{"route[2].share: must be greater than 0 and at most 1", "(rule range)"}},
		{"share without shadow", shadowRoute(0, "    share = 0.5"), []string{"route[2].share: may only be set on a shadow route", "(rule shadow_only)"}},
		{"shadow with weight", shadowRoute(10, "    shadow = true\n    share  = 0.5"), []string{"route[2].weight: must be 0 on a shadow route", "(rule shadow)"}},
		{"shadow with match", shadowRoute(0, "    shadow = true\n    share  = 0.5\n    match {\n      header = \"X-Canary\"\n      value  = \"always\"\n    }"), []string{"route[2].match: may not be set on a shadow route", "(rule shadow)"}},
		{"five shadows", fiveShadows.String(), []string{"route: has 5 shadow routes, at most 4 are allowed (rule max_shadows)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tfresource.ParallelTest(t, tfresource.TestCase{
				ProtoV6ProviderFactories: testAccProviders,
				Steps: []tfresource.TestStep{{
					Config:      providerBlock(r, "") + endpointConfig("e", 90, tt.body),
					PlanOnly:    true,
					ExpectError: expectError(tt.want...),
				}},
			})
		})
	}
}
