package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

var gatedSpec = map[string]any{
	"steps": []int{25, 50, 100}, "bake": "1m",
	"max_error_rate": 0.1, "max_latency_p99": "500ms", "min_requests": 10,
}

// TestRolloutWalksEveryStep: one change moves route main from v1 to v2
// through 25, 50 and 100 percent against real upstreams, each step taken
// when its bake has passed and v2 answered enough requests within the
// gates, and completes; every step is an event.
func TestRolloutWalksEveryStep(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(rolloutConfig))
	v1, v2 := newModel(t, "v1"), newModel(t, "v2")
	seedRollout(t, r, v1, gatedSpec)
	e := toV2(t, r, v2)
	if got := e.Rollout.Routes; len(got) != 2 || got[0].Weight != 25 || got[1].Name != "main@v1" || got[1].Weight != 75 {
		t.Fatalf("step 1 in force: %+v, want main 25 / main@v1 75", got)
	}

	for step, pct := range []int{25, 50, 100} {
		// Enough requests that v2 gets its min_requests at any share.
		seen := traffic(t, r.URL, r.AdminToken, 4000/pct)
		if seen["main v2"] == 0 || (pct < 100 && seen["main@v1 v1"] == 0) {
			t.Fatalf("step %d (%d%%): served %v", step+1, pct, seen)
		}
		// The bake ends once the driver can see min_requests of the
		// step's requests: the step moves on the first tick, without
		// waiting for them. Not all of seen: the driver's own process
		// takes the step into its table just after the store has it, so
		// the first requests sent after the step may still be served,
		// and counted, under the step before.
		flushed(t, r, "main", min(seen["main v2"], 10))
		// Half a bake is not enough, whatever the traffic.
		r.Clock.Advance(bake / 2)
		if st := status(getEndpoint(t, r)); st.Step != step+1 {
			t.Fatalf("step %d moved before its bake ended: %+v", step+1, st)
		}
		r.Clock.Advance(bake / 2)
		if pct < 100 {
			e = waitRollout(t, r, fmt.Sprintf("reached step %d", step+2), atStep(step+2))
			if g := e.Rollout.LastGate; g == nil || !g.Passed || !strings.Contains(g.Message, "route main (v2)") {
				t.Fatalf("step %d: last gate %+v", step+2, g)
			}
		}
	}
	e = waitRollout(t, r, "completed", inState(registry.RolloutCompleted))
	if st := status(e); len(st.Routes) != 1 || st.Routes[0].Version != 2 || st.Routes[0].Weight != 100 || st.EndedAt == nil {
		t.Fatalf("completed rollout %+v", st)
	}
	servesOnly(t, r.URL, r.AdminToken, "main v2")
	want := []string{registry.ActionEndpointRolloutStarted, registry.ActionEndpointRolloutStep, registry.ActionEndpointRolloutStep, registry.ActionEndpointRolloutCompleted}
	if got := actions(rolloutEvents(t, r)); !slices.Equal(got, want) {
		for _, e := range rolloutEvents(t, r) {
			t.Logf("%s %s", e.Action, e.After)
		}
		t.Fatalf("events %v, want %v", got, want)
	}
	resp := call(t, "GET", r.URL+"/metrics", r.AdminToken, nil)
	mustStatus(t, resp, http.StatusOK)
	metrics, _ := io.ReadAll(resp.Body)
	for _, line := range []string{
		"mlregistry_rollout_leader 1",
		`mlregistry_rollout_actions_total{action="endpoint.rollout_step"} 2`,
		`mlregistry_rollout_actions_total{action="endpoint.rollout_completed"} 1`,
	} {
		if !strings.Contains(string(metrics), "\n"+line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// TestRolloutRollsBackAtStep2: v2 passes step 1, then fails at step 2 —
// with errors, then (a second rollout) by answering slower than
// max_latency_p99. Each time the rollout is rolled back at once, before
// the bake ends, v1 takes all traffic again, and the endpoint's routes
// are v1's: the next plan shows the drift, with the gate in the message.
func TestRolloutRollsBackAtStep2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(*model)
		gate   string
	}{
		{"errors", func(m *model) { m.fail.Store(true) }, "max_error_rate 1 over"},
		{"latency", func(m *model) { m.delay.Store(int64(600 * time.Millisecond)) }, "max_latency_p99 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := apptest.Start(t, apptest.WithConfig(rolloutConfig))
			v1, v2 := newModel(t, "v1"), newModel(t, "v2")
			seedRollout(t, r, v1, gatedSpec)
			toV2(t, r, v2)
			flushed(t, r, "main", traffic(t, r.URL, r.AdminToken, 160)["main v2"])
			r.Clock.Advance(bake)
			waitRollout(t, r, "reached step 2", atStep(2))

			tc.break_(v2)
			deadline := time.Now().Add(10 * time.Second)
			var e registry.Endpoint
			for {
				// v2 answers half the requests at step 2: a few dozen give it
				// its min_requests; the clock does not move, so only the gate
				// can end the step.
				traffic(t, r.URL, r.AdminToken, 20)
				if e = getEndpoint(t, r); status(e).State == registry.RolloutRolledBack {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("never rolled back: %+v %+v", status(e), status(e).LastGate)
				}
			}
			st := status(e)
			if !strings.HasPrefix(st.Message, "rollout rolled back at step 2 (50%): route main (v2): "+tc.gate) || !strings.Contains(st.Message, "exceeded") {
				t.Fatalf("message %q", st.Message)
			}
			if e.Status != registry.EndpointStatusRolledBack || e.StatusMessage != st.Message {
				t.Errorf("endpoint status %q %q, want the rollout's message", e.Status, e.StatusMessage)
			}
			if len(e.Routes) != 1 || e.Routes[0].Version != 1 || e.Routes[0].Weight != 100 {
				t.Fatalf("routes after the rollback %+v, want v1 at 100", e.Routes)
			}
			v2.delay.Store(0)
			servesOnly(t, r.URL, r.AdminToken, "main v1")
			evs := rolloutEvents(t, r)
			if last := evs[len(evs)-1]; last.Action != registry.ActionEndpointRolloutRolledBack || !strings.Contains(string(last.After), tc.gate) {
				t.Fatalf("last event %s %s", last.Action, last.After)
			}
		})
	}
}

// TestRolloutResumesAfterRestart: the registry stops mid-rollout; a new
// one on the same database continues the step in force, its bake counted
// from when the step began, and completes.
func TestRolloutResumesAfterRestart(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "registry.db")
	r1 := apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(rolloutConfig))
	v1, v2 := newModel(t, "v1"), newModel(t, "v2")
	seedRollout(t, r1, v1, map[string]any{"steps": []int{25, 50, 100}, "bake": "1m"})
	toV2(t, r1, v2)
	r1.Clock.Advance(bake)
	e := waitRollout(t, r1, "reached step 2", atStep(2))
	stepStarted := status(e).StepStarted
	if err := r1.Main.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(func(c *app.Config) {
		c.Now = r1.Clock.Now // the same time line
		rolloutConfig(c)
	}))
	r2.AdminToken = r1.AdminToken
	if seen := traffic(t, r2.URL, r2.AdminToken, 40); seen["main v2"] == 0 || seen["main@v1 v1"] == 0 {
		t.Fatalf("restarted registry serves %v, want step 2's split", seen)
	}
	r1.Clock.Advance(bake - time.Second)
	if st := status(getEndpoint(t, r2)); st.Step != 2 || !st.StepStarted.Equal(stepStarted) {
		t.Fatalf("after the restart, before the bake ends: %+v", st)
	}
	r1.Clock.Advance(time.Second)
	waitRollout(t, r2, "reached step 3", atStep(3))
	r1.Clock.Advance(bake)
	waitRollout(t, r2, "completed", inState(registry.RolloutCompleted))
}

// TestRolloutPauseResumeAbort: a paused rollout stands still past its
// bake; resumed, its step bakes again from the resume; aborted, the
// weights it started from are back, with the operator's reason.
func TestRolloutPauseResumeAbort(t *testing.T) {
	r := apptest.Start(t, apptest.WithConfig(rolloutConfig))
	v1, v2 := newModel(t, "v1"), newModel(t, "v2")
	seedRollout(t, r, v1, map[string]any{"steps": []int{25, 50, 100}, "bake": "1m"})
	toV2(t, r, v2)

	control := func(op string, want int) registry.Endpoint {
		t.Helper()
		resp := call(t, "POST", r.URL+"/api/v1/endpoints/ep/rollout/"+op, r.AdminToken, map[string]any{"reason": "checking dashboards"})
		mustStatus(t, resp, want)
		var e registry.Endpoint
		if want == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	if st := status(control("pause", http.StatusOK)); st.State != registry.RolloutPaused || st.NextStepAt != nil {
		t.Fatalf("paused: %+v", st)
	}
	control("pause", http.StatusConflict)
	r.Clock.Advance(10 * bake)
	// The driver ticks every 10ms: several ticks pass while the API is
	// asked again, and a paused rollout must not move in any of them.
	for range 5 {
		traffic(t, r.URL, r.AdminToken, 5)
		if st := status(getEndpoint(t, r)); st.State != registry.RolloutPaused || st.Step != 1 {
			t.Fatalf("paused rollout moved: %+v", st)
		}
	}
	resumedAfter := r.Clock.Now() // the running clock reads at least this
	if st := status(control("resume", http.StatusOK)); st.State != registry.RolloutProgressing || st.StepStarted.Before(resumedAfter) || st.NextStepAt == nil || !st.NextStepAt.Equal(st.StepStarted.Add(bake)) {
		t.Fatalf("resumed: %+v", st)
	}
	r.Clock.Advance(bake)
	waitRollout(t, r, "reached step 2", atStep(2))

	e := control("abort", http.StatusOK)
	st := status(e)
	if st.State != registry.RolloutAborted || !strings.Contains(st.Message, "checking dashboards") {
		t.Fatalf("aborted: %+v", st)
	}
	if len(e.Routes) != 1 || e.Routes[0].Version != 1 || e.Routes[0].Weight != 100 {
		t.Fatalf("routes after abort %+v, want v1 at 100", e.Routes)
	}
	control("resume", http.StatusConflict)
	if seen := traffic(t, r.URL, r.AdminToken, 20); seen["main v1"] != 20 {
		t.Fatalf("after abort: served %v, want v1 only", seen)
	}
	want := []string{registry.ActionEndpointRolloutStarted, registry.ActionEndpointRolloutPaused, registry.ActionEndpointRolloutResumed, registry.ActionEndpointRolloutStep, registry.ActionEndpointRolloutAborted}
	if got := actions(rolloutEvents(t, r)); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// servesOnly checks that the gateway at base serves route (and version)
// alone within a second: 20 answers in a row from it. The driver's
// process applies what it recorded right after the commit, so a reader
// of the API may see the change a moment before the gateway serves it.
func servesOnly(t *testing.T, base, token, route string) {
	t.Helper()
	start := time.Now()
	for run := 0; run < 20; {
		seen := traffic(t, base, token, 1)
		if seen[route] == 1 {
			run++
			continue
		}
		run = 0
		if time.Since(start) > time.Second {
			t.Fatalf("still served %v a second later, want %s only", seen, route)
		}
	}
}
