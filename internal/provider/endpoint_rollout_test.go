package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
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
		{"live gate metric name", rolloutHCL(`    steps            = [50, 100]
    bake             = "1m"
    min_live_metrics = { "Correct" = 0.9 }`), []string{"rollout.min_live_metrics: key \"Correct\" must match", "(rule key_pattern)"}},
		{"live count without metrics", rolloutHCL(`    steps          = [50, 100]
    bake           = "1m"
    min_live_count = 10`), []string{"min_live_metrics"}},
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

// startFastRegistry boots a registry whose clock runs speed times as
// fast as the real one, from the moment it starts: a bake of a minute
// passes in 60/speed seconds. Everything the registry times runs that
// fast, upstream latencies as the gateway measures them included (a
// 2 ms answer takes 40 ms at speed 20), so latency thresholds in these
// tests are real ones times speed, below the gateway's highest latency
// bound (10s), which is the most a p99 estimate says.
func startFastRegistry(t *testing.T, speed float64) *apptest.Registry {
	t.Helper()
	base, start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Now()
	return apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.ShutdownTimeout = 15 * time.Second
		c.Now = func() time.Time { return base.Add(time.Duration(float64(time.Since(start)) * speed)) }
	}))
}

// traffic sends requests through the gateway to one endpoint from a few
// goroutines, until the test ends, and counts the answers.
type traffic struct {
	mu sync.Mutex
	// served counts answers by "<X-Route> v<X-Model-Version> <status>".
	served map[string]int
	// matched counts the answers to requests carrying the match header by
	// the route that answered.
	matched map[string]int
	err     error
}

// startTraffic sends requests to endpoint with workers goroutines; every
// fourth request of a worker carries header (when not nil).
func startTraffic(t *testing.T, r *apptest.Registry, endpoint string, workers int, header http.Header) *traffic {
	t.Helper()
	token := r.Token(t, "traffic-"+endpoint, registry.ScopeServe)
	tr := &traffic{served: map[string]int{}, matched: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var h http.Header
				if header != nil && i%4 == 3 {
					h = header
				}
				a, err := serveOnce(r, token, endpoint, h)
				tr.mu.Lock()
				switch {
				case err != nil:
					tr.err = err
				case h != nil:
					tr.matched[a.route]++
				default:
					tr.served[fmt.Sprintf("%s v%s %d", a.route, a.version, a.status)]++
				}
				tr.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return tr
}

// snapshot returns copies of the counts so far.
func (tr *traffic) snapshot() (served, matched map[string]int, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps.Clone(tr.served), maps.Clone(tr.matched), tr.err
}

// rolloutEvents are the endpoint's rollout events, oldest first (the
// registry lists events by id), each as its action and the step its
// rollout stood at after it ("endpoint.rollout_step 2").
func rolloutEvents(t *testing.T, r *apptest.Registry, endpoint string) []string {
	t.Helper()
	page, err := apiClient(t, r).ListEvents(context.Background(), registry.EventFilter{Endpoint: endpoint, ListOptions: registry.ListOptions{PageSize: registry.MaxPageSize}})
	must(t, err)
	var out []string
	for _, e := range page.Items {
		if !strings.HasPrefix(e.Action, "endpoint.rollout_") {
			continue
		}
		var after registry.Endpoint
		must(t, json.Unmarshal(e.After, &after))
		step := 0
		if s := rolloutStatusOf(&after); s != nil {
			step = s.Step
		}
		out = append(out, fmt.Sprintf("%s %d", e.Action, step))
	}
	return out
}

// rolloutEndpoint is an endpoint "rollout" whose route "main" serves the
// given version from upstream, beside a route "tester" that gets only
// the requests with X-Canary: always, and the given rollout block body
// (no block when "").
func rolloutEndpoint(r *apptest.Registry, version int, upstream, tester, rollout string, wait bool) string {
	if rollout != "" {
		rollout = "  rollout {\n" + rollout + "\n  }"
	}
	return providerBlock(r, "") + endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = "rollout"
  model = mlregistry_model.churn.name
  route {
    name         = "main"
    version      = mlregistry_model_version.v%d.version
    upstream_url = %q
    weight       = 100
  }
  route {
    name         = "tester"
    version      = mlregistry_model_version.v2.version
    upstream_url = %q
    weight       = 0
    match {
      header = "X-Canary"
      value  = "always"
    }
  }
%s
  wait_for_rollout = %t
}

data "mlregistry_endpoint" "e" {
  name       = mlregistry_endpoint.e.name
  depends_on = [mlregistry_endpoint.e]
}
`, version, upstream, tester, rollout, wait)
}

// TestAccEndpoint_rolloutCompletes: one apply moves route main from v1 to
// v2 through every step against real upstreams and returns once the
// rollout completed (wait_for_rollout); during it both versions served
// and every request with the match header reached its route; the plan
// marked rollout_status unknown, the next plan is empty, and the
// registry recorded the start, each step and the completion.
func TestAccEndpoint_rolloutCompletes(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	r := startFastRegistry(t, 50)
	const name = "mlregistry_endpoint.e"
	v1, v2, tester := namedUpstream(t, "v1"), namedUpstream(t, "v2"), namedUpstream(t, "tester")
	const rollout = `    steps          = [10, 50, 100]
    bake           = "1m"
    max_error_rate = 0.5
    min_requests   = 5`
	var tr *traffic
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				// Created at once: no rollout.
				Config: rolloutEndpoint(r, 1, v1, tester, rollout, true),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout").AtMapKey("steps"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.Int64Exact(10), knownvalue.Int64Exact(50), knownvalue.Int64Exact(100),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout").AtMapKey("prometheus"), knownvalue.ListSizeExact(0)),
				},
			},
			{
				PreConfig: func() {
					tr = startTraffic(t, r, "rollout", 4, http.Header{"X-Canary": {"always"}})
				},
				Config: rolloutEndpoint(r, 2, v2, tester, rollout, true),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(name, tfjsonpath.New("rollout_status")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status").AtMapKey("state"), knownvalue.StringExact(registry.RolloutCompleted)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status").AtMapKey("step"), knownvalue.Int64Exact(3)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status").AtMapKey("percent"), knownvalue.Int64Exact(100)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status").AtMapKey("weights"), knownvalue.MapExact(map[string]knownvalue.Check{
						"main": knownvalue.Int64Exact(100), "tester": knownvalue.Int64Exact(0),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(0).AtMapKey("version"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("rollout_status").AtMapKey("state"), knownvalue.StringExact(registry.RolloutCompleted)),
				},
				Check: func(*terraform.State) error {
					served, matched, err := tr.snapshot()
					if err != nil {
						return err
					}
					t.Logf("served during the rollout: %v; matched: %v", served, matched)
					if served["main@v1 v1 200"] == 0 || served["main v2 200"] == 0 {
						return fmt.Errorf("during the rollout both versions should have served, got %v", served)
					}
					for route := range matched {
						if route != "tester" {
							return fmt.Errorf("a request with the match header reached route %q: %v", route, matched)
						}
					}
					if matched["tester"] == 0 {
						return fmt.Errorf("no request with the match header was answered: %v", matched)
					}
					// A step that waits for requests past its bake records
					// that too, as a step event that stays at its step:
					// those are left out.
					got := rolloutEvents(t, r, "rollout")
					var moves []string
					for i, e := range got {
						if i > 0 && strings.HasPrefix(e, registry.ActionEndpointRolloutStep+" ") && strings.HasSuffix(got[i-1], e[strings.LastIndex(e, " "):]) {
							continue
						}
						moves = append(moves, e)
					}
					want := []string{registry.ActionEndpointRolloutStarted + " 1", registry.ActionEndpointRolloutStep + " 2", registry.ActionEndpointRolloutStep + " 3", registry.ActionEndpointRolloutCompleted + " 3"}
					if !slices.Equal(moves, want) {
						return fmt.Errorf("rollout events %v, want the moves %v", got, want)
					}
					// Every step is over: only v2 answers now.
					for range 20 {
						a, err := serveOnce(r, r.AdminToken, "rollout", nil)
						if err != nil {
							return err
						}
						if a.route != "main" || a.version != "2" {
							return fmt.Errorf("after the rollout route %q v%s answered", a.route, a.version)
						}
					}
					return nil
				},
			},
			{
				ResourceName:            name,
				ImportState:             true,
				ImportStateId:           "rollout",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"wait_for_rollout"},
			},
			{
				// A change that starts no rollout, with none running: the
				// plan knows rollout_status stays as it is.
				Config: strings.Replace(rolloutEndpoint(r, 2, v2, tester, rollout, true), "  wait_for_rollout", "  timeout = \"5s\"\n  wait_for_rollout", 1),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status").AtMapKey("state"), knownvalue.StringExact(registry.RolloutCompleted)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

// TestAccTerraformCLI_rolloutRollbackIsDrift: a v2 that fails its
// requests, then a v2 that answers slowly, each rolled back by its gate
// at step 1: the apply that waits fails with the gate's message, the
// registry puts v1 back, and the next plan shows that as drift with a
// warning naming the gate. A healthy v2 then completes.
func TestAccTerraformCLI_rolloutRollbackIsDrift(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t).withoutTrace()
	// Slower than the other rollout tests: the gate of 9s is 450ms of
	// real time, which a healthy v2 stays under on a busy machine.
	r := startFastRegistry(t, 20)
	w.env["MLREGISTRY_TOKEN"] = r.AdminToken
	ctx := context.Background()

	var mode atomic.Value // "fail", "slow" or "ok"
	mode.Store("fail")
	v1 := namedUpstream(t, "v1")
	v2srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		switch mode.Load() {
		case "fail":
			http.Error(w, "v2 is broken", http.StatusInternalServerError)
			return
		case "slow":
			// 20s at the registry's speed (a p99 estimate says 10s at
			// most), against a p99 gate of 9s.
			time.Sleep(time.Second)
		}
		fmt.Fprint(w, "v2")
	}))
	t.Cleanup(v2srv.Close)
	config := func(version int, upstream string) string {
		return requiredProvidersHCL + fmt.Sprintf(`
provider "mlregistry" {
  address = %q
}
`, r.URL) + endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = "gated"
  model = mlregistry_model.churn.name
  route {
    name         = "main"
    version      = mlregistry_model_version.v%d.version
    upstream_url = %q
    weight       = 100
  }
  rollout {
    steps           = [25, 50, 100]
    bake            = "1m"
    max_error_rate  = 0.1
    max_latency_p99 = "9s"
    min_requests    = 10
  }
  wait_for_rollout = true
}
`, version, upstream)
	}
	flat := func(out string) string { return strings.Join(strings.Fields(strings.ReplaceAll(out, "│", " ")), " ") }

	w.writeConfig(config(1, v1))
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	startTraffic(t, r, "gated", 6, nil)

	w.writeConfig(config(2, v2srv.URL))
	for _, gate := range []struct{ mode, name string }{{"fail", "max_error_rate"}, {"slow", "max_latency_p99"}} {
		mode.Store(gate.mode)
		out, err := w.run(ctx, "apply", "-auto-approve", "-input=false")
		if err == nil {
			t.Fatalf("%s: the apply of a failing v2 succeeded:\n%s", gate.mode, out)
		}
		for _, want := range []string{`Rollout of endpoint "gated" did not complete`, "rolled back at step 1 (25%)", "route main (v2)", gate.name} {
			if !strings.Contains(flat(out), want) {
				t.Errorf("%s: the failed apply does not say %q:\n%s", gate.mode, want, out)
			}
		}
		ep, err := apiClient(t, r).GetEndpoint(ctx, "gated")
		must(t, err)
		if len(ep.Routes) != 1 || ep.Routes[0].Version != 1 || ep.Status != registry.EndpointStatusRolledBack {
			t.Fatalf("%s: after the rollback the registry holds %+v, status %q", gate.mode, ep.Routes, ep.Status)
		}
		out, err = w.run(ctx, "plan", "-input=false", "-detailed-exitcode")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("%s: the plan after the rollback should show changes (exit 2): %v\n%s", gate.mode, err, out)
		}
		for _, want := range []string{`The last rollout of endpoint "gated" was rolled back`, gate.name, "starts a new rollout", "version = 1 -> 2"} {
			if !strings.Contains(flat(out), want) {
				t.Errorf("%s: the plan after the rollback does not say %q:\n%s", gate.mode, want, out)
			}
		}
	}

	mode.Store("ok")
	w.mustRun(ctx, "apply", "-auto-approve", "-input=false")
	if out, err := w.run(ctx, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("plan after the completed rollout is not empty: %v\n%s", err, out)
	}
	ep, err := apiClient(t, r).GetEndpoint(ctx, "gated")
	must(t, err)
	if s := rolloutStatusOf(ep); s == nil || s.State != registry.RolloutCompleted || ep.Routes[0].Version != 2 {
		t.Fatalf("after the healthy apply: routes %+v, rollout %+v", ep.Routes, s)
	}
	w.mustRun(ctx, "destroy", "-auto-approve", "-input=false")
}

// TestAccEndpoint_rolloutNoWaitAndAbort: without wait_for_rollout the
// apply returns with step 1 in force (the registry's clock stands still
// here, so the rollout does too) and the next plan is empty: the state's
// routes are the configured ones while the rollout runs. An operator's
// pause keeps that; an abort puts v1 back, which the next plan shows.
func TestAccEndpoint_rolloutNoWaitAndAbort(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	v1, v2, tester := namedUpstream(t, "v1"), namedUpstream(t, "v2"), namedUpstream(t, "tester")
	const rollout = `    steps = [10, 50, 100]
    bake  = "1h"`
	c := apiClient(t, r)
	ctx := context.Background()
	status := func(path string, want knownvalue.Check) statecheck.StateCheck {
		return statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status").AtMapKey(path), want)
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{Config: rolloutEndpoint(r, 1, v1, tester, rollout, false)},
			{
				Config: rolloutEndpoint(r, 2, v2, tester, rollout, false),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectUnknownValue(name, tfjsonpath.New("rollout_status"))},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					status("state", knownvalue.StringExact(registry.RolloutProgressing)),
					status("step", knownvalue.Int64Exact(1)),
					status("percent", knownvalue.Int64Exact(10)),
					status("weights", knownvalue.MapExact(map[string]knownvalue.Check{
						"main": knownvalue.Int64Exact(10), "main@v1": knownvalue.Int64Exact(90), "tester": knownvalue.Int64Exact(0),
					})),
					status("next_step_at", knownvalue.NotNull()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(0).AtMapKey("version"), knownvalue.Int64Exact(2)),
				},
			},
			{
				// A change that starts no rollout (the match's value) while
				// one runs: rollout_status is unknown in the plan, since
				// the rollout may step before the apply.
				PreConfig: func() {
					_, err := c.ControlRollout(ctx, "rollout", registry.RolloutOpPause, "looking at the dashboards")
					must(t, err)
				},
				Config: strings.Replace(rolloutEndpoint(r, 2, v2, tester, rollout, false), `value  = "always"`, `value  = "yes"`, 1),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectUnknownValue(name, tfjsonpath.New("rollout_status"))},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					status("state", knownvalue.StringExact(registry.RolloutPaused)),
					status("next_step_at", knownvalue.Null()),
				},
			},
			{
				PreConfig: func() {
					_, err := c.ControlRollout(ctx, "rollout", registry.RolloutOpAbort, "v2 answers in the wrong schema")
					must(t, err)
				},
				Config:             strings.Replace(rolloutEndpoint(r, 2, v2, tester, rollout, false), `value  = "always"`, `value  = "yes"`, 1),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// What the abort left, read into state.
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: tfresource.ComposeTestCheckFunc(
					tfresource.TestCheckResourceAttr(name, "rollout_status.state", registry.RolloutAborted),
					tfresource.TestMatchResourceAttr(name, "rollout_status.message", regexp.MustCompile(`aborted by admin-\d+: v2 answers in the wrong schema`)),
					tfresource.TestCheckResourceAttr(name, "rollout_status.weights.main", "100"),
					tfresource.TestCheckNoResourceAttr(name, "rollout_status.weights.main@v1"),
					tfresource.TestCheckResourceAttr(name, "status", registry.EndpointStatusRolledBack),
					tfresource.TestCheckResourceAttr(name, "route.0.version", "1"),
				),
			},
			{
				// Without the rollout block the registry keeps no status:
				// the plan cannot keep the aborted one.
				Config: rolloutEndpoint(r, 1, v1, tester, "", false),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectUnknownValue(name, tfjsonpath.New("rollout_status"))},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout"), knownvalue.Null()),
				},
			},
			{
				// Applying the configuration with its rollout block again
				// starts a new rollout from v1.
				Config: strings.Replace(rolloutEndpoint(r, 2, v2, tester, rollout, false), `value  = "always"`, `value  = "yes"`, 1),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectUnknownValue(name, tfjsonpath.New("rollout_status"))},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					status("state", knownvalue.StringExact(registry.RolloutProgressing)),
					status("weights", knownvalue.MapExact(map[string]knownvalue.Check{
						"main": knownvalue.Int64Exact(10), "main@v1": knownvalue.Int64Exact(90), "tester": knownvalue.Int64Exact(0),
					})),
				},
			},
		},
	})
}

// TestAccEndpoint_shadowRoute: a shadow route is planned, applied,
// imported and re-planned empty; it gets copies of requests while the
// other route answers them all; a change of its share applies at once,
// not by a rollout, although the endpoint has a rollout block.
func TestAccEndpoint_shadowRoute(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	stable := namedUpstream(t, "stable")
	var copies atomic.Int64
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		copies.Add(1)
		fmt.Fprint(w, "mirror")
	}))
	t.Cleanup(mirror.Close)
	config := func(share string) string {
		return providerBlock(r, "") + endpointModel + fmt.Sprintf(`
resource "mlregistry_endpoint" "e" {
  name  = "shadowed"
  model = mlregistry_model.churn.name
  route {
    name         = "stable"
    version      = mlregistry_model_version.v1.version
    upstream_url = %q
    weight       = 100
  }
  route {
    name         = "mirror"
    version      = mlregistry_model_version.v2.version
    upstream_url = %q
    weight       = 0
    shadow       = true
    share        = %s
  }
  rollout {
    steps = [50, 100]
    bake  = "1h"
  }
}

data "mlregistry_endpoint" "e" {
  name       = mlregistry_endpoint.e.name
  depends_on = [mlregistry_endpoint.e]
}
`, stable, mirror.URL, share)
	}
	mirrorRoute := func(share knownvalue.Check) map[string]knownvalue.Check {
		return map[string]knownvalue.Check{
			"name": knownvalue.StringExact("mirror"), "version": knownvalue.Int64Exact(2), "upstream_url": knownvalue.StringExact(mirror.URL),
			"weight": knownvalue.Int64Exact(0), "match": knownvalue.Null(), "shadow": knownvalue.Bool(true), "share": share,
		}
	}
	// served: every request is answered by stable, and the mirror gets
	// copies (asynchronously: poll until it has some).
	served := func(*terraform.State) error {
		before := copies.Load()
		for range 40 {
			a, err := serveOnce(r, r.AdminToken, "shadowed", nil)
			if err != nil {
				return err
			}
			if a.status != http.StatusOK || a.route != "stable" || a.body != "stable" {
				return fmt.Errorf("answered %d %q by route %q, want stable", a.status, a.body, a.route)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for copies.Load() == before {
			if time.Now().After(deadline) {
				return fmt.Errorf("the shadow route got no copy of 40 requests")
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: config("1"),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
						// The version is not known before its create.
						plancheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1), knownvalue.ObjectExact(map[string]knownvalue.Check{
							"name": knownvalue.StringExact("mirror"), "upstream_url": knownvalue.StringExact(mirror.URL),
							"weight": knownvalue.Int64Exact(0), "match": knownvalue.Null(), "shadow": knownvalue.Bool(true), "share": knownvalue.Int64Exact(1),
						})),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1), knownvalue.ObjectExact(mirrorRoute(knownvalue.Int64Exact(1)))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(0).AtMapKey("shadow"), knownvalue.Null()),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("routes").AtSliceIndex(1).AtMapKey("shadow"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("data.mlregistry_endpoint.e", tfjsonpath.New("routes").AtSliceIndex(0).AtMapKey("shadow"), knownvalue.Null()),
				},
				Check: served,
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateId:     "shadowed",
				ImportStateVerify: true,
			},
			{
				// 1/3 is not a float64; the registry's nearest one reads
				// back as no change.
				Config: config("1 / 3"),
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status"), knownvalue.Null()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout_status"), knownvalue.Null()),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("route").AtSliceIndex(1).AtMapKey("share"), knownvalue.Float64Exact(1.0/3)),
				},
				Check: served,
			},
		},
	})
}

// TestWaitForRollout drives the wait of wait_for_rollout against a real
// registry whose clock stands still, so a rollout stays where it is put:
// an interrupted wait says where the rollout stands, an abort while
// waiting ends the wait with the abort's message, and a rollout
// completed by removing its configuration ends it without error.
func TestWaitForRollout(t *testing.T) {
	t.Parallel()
	r := startRegistry(t)
	ctx := context.Background()
	c := apiClient(t, r)
	for _, v := range []int{1, 2} {
		if v == 1 {
			_, err := c.CreateModel(ctx, registry.ModelCreate{Name: "waited"})
			must(t, err)
		}
		_, err := c.CreateVersion(ctx, "waited", registry.ModelVersionCreate{Source: fmt.Sprintf("s3://m/%d", v), Checksum: checksum(v), Format: "onnx"})
		must(t, err)
	}
	spec := &registry.RolloutSpec{Steps: []int{10, 50, 100}, Bake: "1h"}
	route := func(version int64) []registry.Route {
		return []registry.Route{{Name: "main", Version: version, UpstreamURL: "http://main.internal", Weight: 100}}
	}
	start := func(t *testing.T, name string) *registry.Endpoint {
		t.Helper()
		_, err := c.CreateEndpoint(ctx, registry.EndpointCreate{Name: name, Model: "waited", Routes: route(1), Rollout: spec})
		must(t, err)
		routes := route(2)
		e, err := c.UpdateEndpoint(ctx, name, registry.EndpointPatch{Routes: &routes}, 0)
		must(t, err)
		if s := rolloutStatusOf(e); s == nil || s.State != registry.RolloutProgressing {
			t.Fatalf("the update started no rollout: %+v", e.Rollout)
		}
		return e
	}

	t.Run("interrupted", func(t *testing.T) {
		e := start(t, "interrupted")
		_, err := c.ControlRollout(ctx, "interrupted", registry.RolloutOpPause, "")
		must(t, err)
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err = waitForRollout(wctx, c, "interrupted", e)
		if err == nil || !strings.Contains(err.Error(), "the apply was interrupted") || !strings.Contains(err.Error(), "rollout paused at step 1 of 3 (10%)") {
			t.Fatalf("interrupted wait: %v", err)
		}
	})
	t.Run("aborted", func(t *testing.T) {
		// The wait starts from the answer that started the rollout, as
		// apply does, and learns of the abort by polling.
		e := start(t, "aborted")
		_, err := c.ControlRollout(ctx, "aborted", registry.RolloutOpAbort, "wrong schema")
		must(t, err)
		got, err := waitForRollout(ctx, c, "aborted", e)
		if !errors.Is(err, errRolloutFailed) || !strings.Contains(err.Error(), "wrong schema") {
			t.Fatalf("aborted wait: %v", err)
		}
		if s := rolloutStatusOf(got); s == nil || s.State != registry.RolloutAborted || got.Routes[0].Version != 1 {
			t.Fatalf("the wait returned %+v, rollout %+v", got.Routes, s)
		}
	})
	t.Run("completed", func(t *testing.T) {
		e := start(t, "completed")
		_, err := c.UpdateEndpoint(ctx, "completed", registry.EndpointPatch{ClearRollout: true}, 0)
		must(t, err)
		got, err := waitForRollout(ctx, c, "completed", e)
		if err != nil {
			t.Fatal(err)
		}
		// Without a configuration the registry keeps no status.
		if got.Rollout != nil || got.Routes[0].Version != 2 {
			t.Fatalf("the wait returned %+v, rollout %+v", got.Routes, got.Rollout)
		}
	})
}

// TestAccEndpoint_prometheusGateUnavailable: a prometheus gate on a
// registry started without --prometheus-url is refused at plan, once the
// routes are known (the registry's dry run says so; the provider alone
// cannot know), naming the attribute and the rule.
func TestAccEndpoint_prometheusGateUnavailable(t *testing.T) {
	r := testRegistry(t)
	c := apiClient(t, r)
	ctx := context.Background()
	_, err := c.CreateModel(ctx, registry.ModelCreate{Name: "gated"})
	must(t, err)
	_, err = c.CreateVersion(ctx, "gated", registry.ModelVersionCreate{Source: "s3://m/1", Checksum: checksum(1), Format: "onnx"})
	must(t, err)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{{
			Config: providerBlock(r, "") + `
resource "mlregistry_endpoint" "e" {
  name  = "gated"
  model = "gated"
  route {
    name         = "main"
    version      = 1
    upstream_url = "http://main.internal:8080"
    weight       = 100
  }
  rollout {
    steps = [50, 100]
    bake  = "10m"
    prometheus {
      query      = "sum(rate(mlregistry_gateway_upstream_errors_total{endpoint=\"$endpoint\",route=\"$route\"}[5m]))"
      threshold  = 0.1
      comparison = "<"
    }
  }
}
`,
			PlanOnly:    true,
			ExpectError: expectError("Invalid endpoint", "rollout.prometheus: this registry has no Prometheus", "(rule unavailable)"),
		}},
	})
}

// TestAccEndpoint_rolloutLiveGate: a rollout block with the live-metrics
// gate is created, read back, imported and re-planned without a change.
func TestAccEndpoint_rolloutLiveGate(t *testing.T) {
	r := testRegistry(t)
	const name = "mlregistry_endpoint.e"
	cfg := providerBlock(r, "") + endpointConfig("live", 90, rolloutHCL(`    steps            = [50, 100]
    bake             = "10m"
    min_live_metrics = { correct = 0.9 }
    min_live_count   = 200`))
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy:             checkDestroyed(t, r),
		Steps: []tfresource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout").AtMapKey("min_live_metrics"),
						knownvalue.MapExact(map[string]knownvalue.Check{"correct": knownvalue.Float64Exact(0.9)})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("rollout").AtMapKey("min_live_count"), knownvalue.Int64Exact(200)),
				},
			},
			{ResourceName: name, ImportState: true, ImportStateId: "live", ImportStateVerify: true, ImportStateVerifyIgnore: []string{"wait_for_rollout"}},
		},
	})
}
