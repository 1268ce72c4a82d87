package plansummary

import (
	"strings"
	"testing"
)

// TestRouteMatchInSummary: a route's header match shows in the endpoint's
// section when it is added, and a match on a version the same plan flags
// is an error, even at weight 0: the registry refuses it.
func TestRouteMatchInSummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	endpoint := func(match string) string {
		return endpointHCL(routeHCL("stable", "mlregistry_model_version.churn_v1.version", "http://churn-v1.internal:8080", 100, "") +
			routeHCL("canary", "mlregistry_model_version.churn_v2.version", "http://churn-v2.internal:8080", 0, match))
	}
	const match = "    match {\n      header = \"X-Canary\"\n      value  = \"always\"\n    }\n"
	versions := modelHCL("churn", "", "auc = 0.9", "auc = 0.91")
	e.apply(versions + endpoint(""))

	md := e.summarise(e.planJSON(versions+endpoint(match)), "markdown")
	if want := "- route canary: header match added: `X-Canary` = `always` (matched requests go to it whatever the weights)"; !strings.Contains(md, want) {
		t.Errorf("summary lacks %q:\n%s", want, md)
	}
	if strings.Contains(md, "flagged") {
		t.Errorf("summary of an unflagged canary mentions a flag:\n%s", md)
	}

	flagged := strings.Replace(versions, "auc = 0.91 }", "auc = 0.91 }\n  flagged = true\n  flag_reason = \"label leak\"", 1)
	plan := e.planJSON(flagged + endpoint(match))
	errs := errorsOf(t, e, plan)
	if len(errs) != 1 || errs[0].Code != ErrFlagged ||
		!strings.Contains(errs[0].Message, "sends the requests whose `X-Canary` = `always` (route canary) to v2, which is flagged") {
		t.Errorf("errors %+v", errs)
	}
}
