package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// runGateway runs h's poll loop (and flusher) until the test ends.
func runGateway(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.gw.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// routeVersions sends n GETs and counts the answers by "X-Route vX-Model-Version".
func routeVersions(t *testing.T, c *http.Client, url string, n int, hdr ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		res, _ := get(t, c, url, hdr...)
		if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d", res.StatusCode)
		}
		counts[res.Header.Get("X-Route")+" v"+res.Header.Get("X-Model-Version")]++
	}
	return counts
}

func inRange(t *testing.T, counts map[string]int, key string, lo, hi int) {
	t.Helper()
	if n := counts[key]; n < lo || n > hi {
		t.Fatalf("%s got %d requests, want %d..%d (all: %v)", key, n, lo, hi, counts)
	}
}

// TestRolloutServesWeightsInForce: while a rollout is progressing or
// paused the gateway serves its weights in force, the old version's share
// under "<name>@v<version>"; a step reaches the gateway through the poll
// (the revision does not change, the status's Seq does) within a second;
// header-matched requests reach their route at every step; route state
// carries across steps while each step's observations start afresh; once
// the rollout completes the configured routes are served.
func TestRolloutServesWeightsInForce(t *testing.T) {
	v1 := upstream(t, "v1").URL
	v2 := upstream(t, "v2").URL
	tester := rt("tester", 2, v2, 0)
	tester.Match = &registry.RouteMatch{Header: "X-Canary", Value: "always"}
	e := endpointOf("churn", rt("stable", 2, v2, 100), tester)
	e.Guard = &registry.Guard{MaxErrorRate: 0.5, MinRequests: 1000, Window: "5m"}
	src := newMemSource(e)
	from := []registry.Route{rt("stable", 1, v1, 100), tester}
	step := func(n, pct int, state string) registry.RolloutStatus {
		return registry.RolloutStatus{
			ID: 7, State: state, Step: n, StepPercents: []int{25, 50, 100},
			From: from,
			Routes: []registry.Route{
				rt("stable", 2, v2, pct), tester, rt("stable@v1", 1, v1, 100-pct),
			},
		}
	}
	src.setRollout("churn", step(1, 25, registry.RolloutProgressing))
	h := newHarness(t, src, nil)
	runGateway(t, h)
	c := client(t)
	url := h.srv.URL + "/serve/churn/"

	counts := routeVersions(t, c, url, 400)
	inRange(t, counts, "stable v2", 50, 150)
	inRange(t, counts, "stable@v1 v1", 250, 350)
	if got := routeVersions(t, c, url, 30, "X-Canary", "always"); got["tester v2"] != 30 {
		t.Fatalf("matched requests during the rollout went to %v, want tester only", got)
	}

	ep := h.gw.table.Load().endpoints["churn"]
	st, obs := ep.route("stable").st, ep.route("stable").obs
	if obs == nil || obs.step != 1 {
		t.Fatalf("step 1 observations of stable: %+v", obs)
	}
	if n, _, _ := obs.read(); n == 0 {
		t.Fatal("stable's step 1 counted no request")
	}

	// Step 2 through the poll, at its default interval.
	seq := func() int64 { return h.gw.table.Load().endpoints["churn"].rolloutSeq }
	before := seq()
	start := time.Now()
	src.setRollout("churn", step(2, 50, registry.RolloutProgressing))
	waitFor(t, "step 2 in force", func() bool { return seq() != before })
	took := time.Since(start)
	t.Logf("step 2 in force %v after it was stored", took)
	if took > time.Second {
		t.Fatalf("step 2 took %v to reach the gateway, want within 1s", took)
	}
	counts = routeVersions(t, c, url, 400)
	inRange(t, counts, "stable v2", 140, 260)
	inRange(t, counts, "stable@v1 v1", 140, 260)
	ep = h.gw.table.Load().endpoints["churn"]
	if ep.route("stable").st != st {
		t.Fatal("the route's state (guard window, metrics) did not carry across steps")
	}
	if o := ep.route("stable").obs; o == obs || o.step != 2 {
		t.Fatalf("step 2 counts into %+v, want a new step 2 counter", o)
	}

	// Paused: the step's weights stay in force.
	src.setRollout("churn", step(2, 50, registry.RolloutPaused))
	before = seq()
	waitFor(t, "pause seen", func() bool { return seq() != before })
	counts = routeVersions(t, c, url, 100)
	if counts["stable@v1 v1"] == 0 {
		t.Fatalf("paused rollout: %v, want the step's weights", counts)
	}

	// Completed: the configured routes.
	done := step(3, 100, registry.RolloutCompleted)
	done.Routes = e.Routes
	src.setRollout("churn", done)
	before = seq()
	waitFor(t, "completion seen", func() bool { return seq() != before })
	if counts := routeVersions(t, c, url, 100); counts["stable v2"] != 100 {
		t.Fatalf("completed rollout: %v, want stable v2 only", counts)
	}
	if ep := h.gw.table.Load().endpoints["churn"]; ep.route("stable").obs != nil {
		t.Fatal("a route still counts observations after the rollout ended")
	}
}

// TestRolledBackRolloutServesRoutes: a rolled-back rollout's routes are
// not served: the endpoint's routes (the store wrote From back) are.
func TestRolledBackRolloutServesRoutes(t *testing.T) {
	v1 := upstream(t, "v1").URL
	v2 := upstream(t, "v2").URL
	src := newMemSource(endpointOf("churn", rt("stable", 1, v1, 100)))
	src.setRollout("churn", registry.RolloutStatus{
		ID: 3, State: registry.RolloutRolledBack, Step: 2,
		Routes: []registry.Route{rt("stable", 2, v2, 50), rt("stable@v1", 1, v1, 50)},
	})
	h := newHarness(t, src, nil)
	if counts := routeVersions(t, client(t), h.srv.URL+"/serve/churn/", 50); counts["stable v1"] != 50 {
		t.Fatalf("rolled back: %v, want stable v1 only", counts)
	}
}

// memSink keeps each process's latest observations, as the store does,
// and sums them per route.
type memSink struct {
	mu   sync.Mutex
	rows map[string][]registry.RolloutObservation
}

func (s *memSink) RecordRolloutObservations(_ context.Context, process string, obs []registry.RolloutObservation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows = map[string][]registry.RolloutObservation{}
	}
	s.rows[process] = slices.Clone(obs)
	return nil
}

func (s *memSink) sum(endpoint string, id int64, step int) map[string]registry.RolloutObservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]registry.RolloutObservation{}
	for _, rows := range s.rows {
		for _, o := range rows {
			if o.Endpoint != endpoint || o.RolloutID != id || o.Step != step {
				continue
			}
			sum := out[o.Route]
			sum.Route, sum.Version = o.Route, o.Version
			sum.Requests += o.Requests
			sum.Errors += o.Errors
			if sum.Latency == nil {
				sum.Latency = make([]int64, registry.LatencyBins)
			}
			for i, n := range o.Latency {
				sum.Latency[i] += n
			}
			out[o.Route] = sum
		}
	}
	return out
}

// TestRolloutObservationsFlushed: two gateway processes count each route
// in force of a rollout (requests, errors as the guard counts them, and
// latency bins) and flush their cumulative counts; summed, they are every
// request each route answered. An endpoint without a rollout is not
// counted at all.
func TestRolloutObservationsFlushed(t *testing.T) {
	ok := upstream(t, "ok").URL
	failing := statusUpstream(t, http.StatusInternalServerError).URL
	src := newMemSource(
		endpointOf("churn", rt("main", 2, failing, 100)),
		endpointOf("plain", rt("main", 1, ok, 100)),
	)
	src.setRollout("churn", registry.RolloutStatus{
		ID: 11, State: registry.RolloutProgressing, Step: 1, StepPercents: []int{50, 100},
		Routes: []registry.Route{rt("main", 2, failing, 50), rt("main@v1", 1, ok, 50)},
	})
	sink := &memSink{}
	var hs []*harness
	for _, p := range []string{"p1", "p2"} {
		h := newHarness(t, src, func(o *Options) {
			o.Observations, o.FlushInterval, o.Process = sink, 10*time.Millisecond, p
		})
		runGateway(t, h)
		hs = append(hs, h)
	}
	c := client(t)
	want := map[string]int{}
	for i, h := range hs {
		for route, n := range routeVersions(t, c, h.srv.URL+"/serve/churn/", 60+i*40) {
			want[strings.Fields(route)[0]] += n
		}
		routeVersions(t, c, h.srv.URL+"/serve/plain/", 20)
	}
	waitFor(t, "observations of both processes", func() bool {
		got := sink.sum("churn", 11, 1)
		return got["main"].Requests == int64(want["main"]) && got["main@v1"].Requests == int64(want["main@v1"])
	})
	got := sink.sum("churn", 11, 1)
	if m := got["main"]; m.Errors != m.Requests || m.Version != 2 {
		t.Fatalf("main (answers 500): %+v, want every request an error, version 2", m)
	}
	if m := got["main@v1"]; m.Errors != 0 || m.Version != 1 {
		t.Fatalf("main@v1: %+v, want no errors, version 1", m)
	}
	for route, o := range got {
		var n int64
		for _, b := range o.Latency {
			n += b
		}
		if n != o.Requests {
			t.Fatalf("%s: latency bins hold %d requests, want %d", route, n, o.Requests)
		}
	}
	for _, h := range hs {
		for _, o := range h.gw.Observations() {
			if o.Endpoint != "churn" {
				t.Fatalf("observed %s, which has no rollout", o.Endpoint)
			}
		}
	}
}

// TestGuardDuringRolloutRestoresFrom: the guard tripping on a route of a
// rollout in force ends the rollout: the weights in force before it
// started come back at once, and the rollback is stored with them.
func TestGuardDuringRolloutRestoresFrom(t *testing.T) {
	stable := rt("stable", 1, upstream(t, "stable").URL, 100)
	canary := rt("canary", 2, statusUpstream(t, http.StatusInternalServerError).URL, 50)
	target := stable
	target.Weight = 50
	src := newMemSource(guarded("churn", registry.Guard{MaxErrorRate: 0.05, MinRequests: 10, Window: "5m"}, target, canary))
	from := []registry.Route{stable}
	canaryInForce := canary
	canaryInForce.Weight = 25
	stableInForce := stable
	stableInForce.Weight = 75
	src.setRollout("churn", registry.RolloutStatus{
		ID: 5, State: registry.RolloutProgressing, Step: 1, StepPercents: []int{50, 100},
		From: from, Routes: []registry.Route{stableInForce, canaryInForce},
	})
	h := newHarness(t, src, nil)
	c := client(t)
	url := h.srv.URL + "/serve/churn/"
	waitFor(t, "the guard's rollback", func() bool {
		get(t, c, url)
		return len(src.rollbackCalls()) > 0
	})
	h.gw.bg.Wait()
	call := src.rollbackCalls()[0]
	if !slices.EqualFunc(call.routes, from, func(a, b registry.Route) bool {
		return a.Name == b.Name && a.Weight == b.Weight && a.Version == b.Version
	}) {
		t.Fatalf("stored routes %+v, want the rollout's From %+v", call.routes, from)
	}
	if !strings.Contains(call.message, "rolled back rollout 5 at step 1") {
		t.Fatalf("message %q does not say the rollout was rolled back", call.message)
	}
	if counts := routeVersions(t, c, url, 50); counts["stable v1"] != 50 {
		t.Fatalf("after the guard: %v, want stable only", counts)
	}
}

// TestStepObsNeverMoreErrorsThanRequests: a snapshot taken while failing
// requests are counted never holds more errors than requests, which the
// store would refuse (and with it the whole flush).
func TestStepObsNeverMoreErrorsThanRequests(t *testing.T) {
	o := &stepObs{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					o.record(true, time.Millisecond)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for range 200000 {
		if n, errs, _ := o.read(); errs > n {
			t.Fatalf("snapshot with %d errors over %d requests", errs, n)
		}
	}
}
