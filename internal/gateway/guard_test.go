package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// fakeClock is an injectable clock for the guard's windows.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestWindowSlides(t *testing.T) {
	clk := newFakeClock()
	w := newWindow(time.Minute) // 1s buckets
	for range 10 {
		w.record(clk.Now(), true)
	}
	clk.Advance(30 * time.Second)
	for range 5 {
		w.record(clk.Now(), false)
	}
	if r, e := w.totals(clk.Now()); r != 15 || e != 10 {
		t.Fatalf("totals %d/%d, want 15/10", r, e)
	}
	clk.Advance(31 * time.Second) // the first batch is now older than 1m
	if r, e := w.totals(clk.Now()); r != 5 || e != 0 {
		t.Fatalf("totals %d/%d after the window slid, want 5/0", r, e)
	}
	clk.Advance(10 * time.Minute)
	w.record(clk.Now(), true) // reuses a stale bucket
	if r, e := w.totals(clk.Now()); r != 1 || e != 1 {
		t.Fatalf("totals %d/%d after idling, want 1/1", r, e)
	}
}

func TestWindowConcurrentCounts(t *testing.T) {
	w := newWindow(time.Minute)
	now := time.Unix(1000, 0)
	done := make(chan struct{})
	for range 8 {
		go func() {
			for i := range 10000 {
				w.record(now, i%4 == 0)
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	if r, e := w.totals(now); r != 80000 || e != 20000 {
		t.Fatalf("totals %d/%d, want 80000/20000: counts lost", r, e)
	}
}

func guarded(name string, guard registry.Guard, routes ...registry.Route) registry.Endpoint {
	e := endpointOf(name, routes...)
	e.Guard = &guard
	return e
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGuardRollsBackFailingCanary(t *testing.T) {
	src := newMemSource(guarded("churn", registry.Guard{MaxErrorRate: 0.05, MinRequests: 20, Window: "5m"},
		rt("stable", 6, upstream(t, "stable").URL, 90),
		rt("canary", 7, statusUpstream(t, 500).URL, 10),
	))
	clk := newFakeClock()
	h := newHarness(t, src, func(o *Options) { o.Now = clk.Now })
	c := client(t)

	// Sequential requests: the guard trips on exactly the 20th canary one.
	canary := 0
	for canary < 20 {
		res, _ := get(t, c, h.srv.URL+"/serve/churn/")
		if res.Header.Get("X-Route") == "canary" {
			canary++
			if res.StatusCode != 500 {
				t.Fatalf("canary answered %d", res.StatusCode)
			}
		}
	}
	// Applied locally at once: the next requests all go to stable.
	for range 200 {
		if res, _ := get(t, c, h.srv.URL+"/serve/churn/"); res.Header.Get("X-Route") != "stable" {
			t.Fatal("request routed to the rolled-back canary")
		}
	}
	waitFor(t, "the rollback to be stored", func() bool { return src.get("churn").Status == registry.EndpointStatusRolledBack })

	calls := src.rollbackCalls()
	if len(calls) != 1 {
		t.Fatalf("%d RecordGuardRollback calls, want 1", len(calls))
	}
	call := calls[0]
	if call.actor.Name != GuardActor || call.name != "churn" || call.revision != 1 {
		t.Errorf("call %+v", call)
	}
	if len(call.routes) != 2 || call.routes[0].Name != "stable" || call.routes[0].Weight != 100 ||
		call.routes[1].Name != "canary" || call.routes[1].Weight != 0 || call.routes[1].Version != 7 {
		t.Errorf("routes %+v", call.routes)
	}
	const msg = "route canary: error rate 1.00 over 20 requests in 5m exceeded 0.05; moved weight 10 to stable"
	if call.message != msg {
		t.Errorf("message %q\nwant    %q", call.message, msg)
	}
	if e := src.get("churn"); e.StatusMessage != msg || e.Routes[1].Weight != 0 {
		t.Errorf("stored endpoint %+v", e)
	}
	if got := counterValue(t, h.gw.metrics.rollbacks.WithLabelValues("churn", "canary")); got != 1 {
		t.Errorf("guard_rollbacks_total{canary} = %v", got)
	}

	// The stored rollback is what the gateway serves from now on, and a
	// later Refresh does not undo it.
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := h.gw.table.Load().endpoints["churn"]; e.revision != 2 || e.routes[1].weight != 0 {
		t.Errorf("table after refresh: revision %d canary weight %d", e.revision, e.routes[1].weight)
	}

	// The operator restores the canary (a new configuration): it gets
	// traffic again, with a fresh window, and can be rolled back again.
	src.setWeights("churn", 90, 10)
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "traffic on the restored canary", func() bool {
		res, _ := get(t, c, h.srv.URL+"/serve/churn/")
		return res.Header.Get("X-Route") == "canary"
	})
	waitFor(t, "a second rollback", func() bool {
		get(t, c, h.srv.URL+"/serve/churn/")
		return len(src.rollbackCalls()) == 2
	})
}

func TestGuardIgnoresOldErrors(t *testing.T) {
	src := newMemSource(guarded("e", registry.Guard{MaxErrorRate: 0.5, MinRequests: 10, Window: "1m"},
		rt("bad", 1, statusUpstream(t, 503).URL, 100),
		rt("good", 2, upstream(t, "good").URL, 0),
	))
	clk := newFakeClock()
	h := newHarness(t, src, func(o *Options) { o.Now = clk.Now })
	c := client(t)
	for range 9 {
		get(t, c, h.srv.URL+"/serve/e/")
	}
	clk.Advance(2 * time.Minute) // those nine failures leave the window
	for range 9 {
		get(t, c, h.srv.URL+"/serve/e/")
	}
	if n := len(src.rollbackCalls()); n != 0 {
		t.Fatalf("guard acted on errors outside its window (%d calls)", n)
	}
	get(t, c, h.srv.URL+"/serve/e/") // the tenth failure inside the window
	waitFor(t, "the rollback", func() bool { return len(src.rollbackCalls()) == 1 })
	if call := src.rollbackCalls()[0]; call.routes[0].Weight != 0 || call.routes[1].Weight != 100 {
		t.Errorf("routes %+v", call.routes)
	}
}

func TestGuardTransportErrorsCount(t *testing.T) {
	src := newMemSource(guarded("e", registry.Guard{MaxErrorRate: 0.1, MinRequests: 5, Window: "1m"},
		rt("dead", 1, "http://"+deadAddr(t), 50),
		rt("good", 2, upstream(t, "good").URL, 50),
	))
	h := newHarness(t, src, nil)
	c := client(t)
	waitFor(t, "the rollback of the dead route", func() bool {
		get(t, c, h.srv.URL+"/serve/e/")
		return len(src.rollbackCalls()) == 1
	})
	if got := counterValue(t, h.gw.metrics.upErrors.WithLabelValues("e", "dead", "1")); got < 5 {
		t.Errorf("upstream_errors_total{dead} = %v", got)
	}
}

func TestGuardPreconditionFailedReloads(t *testing.T) {
	src := newMemSource(guarded("e", registry.Guard{MaxErrorRate: 0.1, MinRequests: 5, Window: "1m"},
		rt("bad", 1, statusUpstream(t, 500).URL, 50),
		rt("good", 2, upstream(t, "good").URL, 50),
	))
	h := newHarness(t, src, nil)
	c := client(t)
	// Someone changes the endpoint after the gateway loaded it: the
	// guard's write is refused and the newer configuration wins.
	src.setWeights("e", 30, 70)
	waitFor(t, "a rollback attempt", func() bool {
		get(t, c, h.srv.URL+"/serve/e/")
		return len(src.rollbackCalls()) == 1
	})
	waitFor(t, "the reload", func() bool {
		e := h.gw.table.Load().endpoints["e"]
		return e.revision == 2 && e.routes[0].weight == 30
	})
	if s := src.get("e").Status; s != registry.EndpointStatusHealthy {
		t.Errorf("status %q", s)
	}
}

func TestGuardSingleRouteCannotMove(t *testing.T) {
	src := newMemSource(guarded("e", registry.Guard{MaxErrorRate: 0.1, MinRequests: 5, Window: "1m"},
		rt("only", 1, statusUpstream(t, 500).URL, 100),
	))
	h := newHarness(t, src, nil)
	c := client(t)
	for range 50 {
		if res, _ := get(t, c, h.srv.URL+"/serve/e/"); res.StatusCode != 500 {
			t.Fatalf("status %d: the only route must keep its traffic", res.StatusCode)
		}
	}
	if n := len(src.rollbackCalls()); n != 0 {
		t.Errorf("%d rollback calls for a single route", n)
	}
	if !h.gw.table.Load().endpoints["e"].routes[0].st.tripped.Load() {
		t.Error("single failing route not marked, it would be logged on every request")
	}
	// Every route (the only one) fails: degraded, recorded once.
	h.gw.bg.Wait()
	calls := src.degradedCalls()
	if len(calls) != 1 || calls[0].revision != 1 || calls[0].actor.Name != GuardActor ||
		calls[0].message != "route only: error rate 1.00 over 5 requests in 1m exceeded 0.1; it is the only route, so the guard moved no weight" {
		t.Errorf("degraded calls %+v", calls)
	}
	if e := src.get("e"); e.Status != registry.EndpointStatusDegraded || e.Routes[0].Weight != 100 {
		t.Errorf("stored endpoint %+v", e)
	}
}

func TestGuardStoreFailureKeepsLocalRollback(t *testing.T) {
	src := newMemSource(guarded("e", registry.Guard{MaxErrorRate: 0.1, MinRequests: 5, Window: "1m"},
		rt("bad", 1, statusUpstream(t, 500).URL, 50),
		rt("good", 2, upstream(t, "good").URL, 50),
	))
	src.failRollback = registry.Errorf(registry.CodeUnavailable, "database down")
	h := newHarness(t, src, nil)
	c := client(t)
	waitFor(t, "a rollback attempt", func() bool {
		get(t, c, h.srv.URL+"/serve/e/")
		return len(src.rollbackCalls()) == 1
	})
	h.gw.bg.Wait()
	// The store still has revision 1, so a Refresh keeps the local rollback.
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if res, _ := get(t, c, h.srv.URL+"/serve/e/"); res.Header.Get("X-Route") != "good" {
			t.Fatal("local rollback lost")
		}
	}
}

func TestHealthiestChoice(t *testing.T) {
	g, err := New(Options{Source: newMemSource()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5000, 0)
	build := func(weights []int, traffic [][2]int) *endpoint {
		e := guarded("e", registry.Guard{MaxErrorRate: 0.1, MinRequests: 1, Window: "1m"})
		for i, w := range weights {
			e.Routes = append(e.Routes, rt(fmt.Sprintf("r%d", i), 1, "http://127.0.0.1:1", w))
		}
		ce, err := g.compile(e, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, tr := range traffic {
			for j := range tr[0] {
				ce.routes[i].st.win.record(now, j < tr[1])
			}
		}
		return ce
	}
	for _, tc := range []struct {
		name    string
		weights []int
		traffic [][2]int // requests, errors per route
		bad     int
		want    int
	}{
		{"lowest error rate", []int{40, 30, 30}, [][2]int{{100, 5}, {100, 1}, {100, 90}}, 2, 1},
		{"tie goes to the highest weight", []int{20, 50, 30}, [][2]int{{100, 0}, {100, 0}, {100, 90}}, 2, 1},
		{"tie on weight goes to route order", []int{35, 35, 30}, [][2]int{{10, 0}, {10, 0}, {100, 90}}, 2, 0},
		{"idle route after healthy busy one", []int{0, 90, 10}, [][2]int{{0, 0}, {100, 2}, {100, 90}}, 2, 1},
		{"idle route before failing one", []int{0, 60, 40}, [][2]int{{0, 0}, {100, 50}, {100, 90}}, 2, 0},
		{"nothing else", []int{100}, [][2]int{{100, 90}}, 0, -1},
		{"only failing routes left", []int{50, 30, 20}, [][2]int{{100, 90}, {100, 50}, {100, 11}}, 0, -1},
		{"failing route skipped for an idle one", []int{50, 50, 0}, [][2]int{{100, 90}, {100, 50}, {0, 0}}, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := build(tc.weights, tc.traffic)
			if got := healthiest(ce, tc.bad, now); got != tc.want {
				t.Errorf("healthiest = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestGuardStateAcrossRecompile(t *testing.T) {
	g, err := New(Options{Source: newMemSource()})
	if err != nil {
		t.Fatal(err)
	}
	e := guarded("e", registry.Guard{MaxErrorRate: 0.1, MinRequests: 1, Window: "1m"},
		rt("a", 1, "http://127.0.0.1:1", 90), rt("b", 2, "http://127.0.0.1:2", 10))
	e.Revision = 1
	first, err := g.compile(e, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	// A weight change starts each changed route's window afresh; a route
	// whose weight stays keeps its window.
	e.Revision = 2
	e.Routes[0].Weight, e.Routes[1].Weight = 50, 50
	second, _ := g.compile(e, first, false)
	if second.routes[0].st == first.routes[0].st || second.routes[1].st == first.routes[1].st {
		t.Error("weight change kept the guard windows")
	}
	e.Revision = 3
	e.StickyHeader = "X-User"
	same, _ := g.compile(e, second, false)
	if same.routes[0].st != second.routes[0].st || same.routes[1].st != second.routes[1].st {
		t.Error("a change that moves no weight reset the guard windows")
	}
	// The guard's own move (keepTripped) keeps the windows it judged by.
	e.Revision = 3
	e.Routes[0].Weight, e.Routes[1].Weight = 100, 0
	moved, _ := g.compile(e, same, true)
	if moved.routes[0].st != same.routes[0].st || moved.routes[1].st != same.routes[1].st {
		t.Error("the guard's own move reset the guard windows")
	}
	e.Routes[0].Weight, e.Routes[1].Weight = 50, 50
	second, _ = g.compile(e, moved, false)
	if second.routes[0].st == moved.routes[0].st {
		t.Error("setting the weight back after a guard move kept the window")
	}
	second.routes[0].st = moved.routes[0].st // continue with carried states below
	second.routes[1].st = moved.routes[1].st
	// A tripped route starts over under a new configuration...
	second.routes[1].st.tripped.Store(true)
	e.Revision = 3
	third, _ := g.compile(e, second, false)
	if third.routes[1].st == second.routes[1].st || third.routes[1].st.tripped.Load() {
		t.Error("tripped route kept its state across a configuration change")
	}
	if third.routes[0].st != second.routes[0].st {
		t.Error("untouched route lost its window")
	}
	// ...and a new version or upstream is a new route.
	e.Revision = 4
	e.Routes[0].Version = 3
	fourth, _ := g.compile(e, third, false)
	if fourth.routes[0].st == third.routes[0].st {
		t.Error("new version kept the old version's window")
	}
}
