package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// The guard's timing rules, on the real store (SQLite) and real upstreams.

// switchUpstream answers 200 until fail is set, then 500.
func switchUpstream(t *testing.T) (url string, fail *atomic.Bool) {
	t.Helper()
	fail = new(atomic.Bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "answer")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, fail
}

// routedTo sends one request and names the route that served it.
func routedTo(t *testing.T, c *http.Client, h *harness, name string) string {
	t.Helper()
	res, _ := get(t, c, h.srv.URL+"/serve/"+name+"/")
	return res.Header.Get("X-Route")
}

func guardEvents(t *testing.T, s *sqlstore.Store, name string) []string {
	t.Helper()
	p, err := s.ListEvents(context.Background(), registry.EventFilter{Endpoint: name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range p.Items {
		if e.Action == registry.ActionEndpointGuardRollback || e.Action == registry.ActionEndpointGuardDegraded {
			out = append(out, e.Action)
		}
	}
	return out
}

// TestGuardFastAfterHealthyPhase: a canary whose 1m window is full of
// healthy answers starts failing every request; the guard trips after at
// most 2 x min_requests failures, not after the error rate over the
// whole window catches up (which took 225 failures in issue 9).
func TestGuardFastAfterHealthyPhase(t *testing.T) {
	s, _ := seedStore(t, 2)
	canaryURL, fail := switchUpstream(t)
	const minRequests = 20
	createEndpoint(t, s, registry.EndpointCreate{Name: "e", Routes: []registry.Route{
		rt("stable", 1, upstream(t, "stable").URL, 50),
		rt("canary", 2, canaryURL, 50),
	}, Guard: &registry.Guard{MaxErrorRate: 0.2, MinRequests: minRequests, Window: "1m"}})
	clk := newFakeClock()
	h := newHarness(t, s, func(o *Options) { o.Now = clk.Now })
	c := client(t)

	healthy := 0
	for healthy < 500 {
		if routedTo(t, c, h, "e") == "canary" {
			healthy++
		}
		clk.Advance(50 * time.Millisecond) // 2 buckets of the window per canary answer, within 1m
	}
	fail.Store(true)
	canaryWeight := func() uint64 { return h.gw.table.Load().endpoints["e"].route("canary").weight }
	failures := 0
	for canaryWeight() > 0 && failures <= 10*minRequests {
		if routedTo(t, c, h, "e") == "canary" {
			failures++
		}
		clk.Advance(10 * time.Millisecond)
	}
	// Rolled back (applied here at once): every request goes to stable.
	for range 50 {
		if r := routedTo(t, c, h, "e"); r != "stable" {
			t.Fatalf("request served by %q after %d failures", r, failures)
		}
	}
	t.Logf("guard tripped after %d failures (min_requests %d)", failures, minRequests)
	if failures > 2*minRequests {
		t.Fatalf("the canary served %d failures before the guard tripped, want at most 2 x min_requests = %d", failures, 2*minRequests)
	}
	waitFor(t, "the rollback to be stored", func() bool {
		e, err := s.GetEndpoint(context.Background(), "e")
		return err == nil && e.Status == registry.EndpointStatusRolledBack
	})
}

// TestGuardWindowStartsAfreshOnWeightChange: failures counted under one
// weight split do not count under the next one.
func TestGuardWindowStartsAfreshOnWeightChange(t *testing.T) {
	s, _ := seedStore(t, 2)
	createEndpoint(t, s, registry.EndpointCreate{Name: "e", Routes: []registry.Route{
		rt("bad", 1, statusUpstream(t, 500).URL, 50),
		rt("good", 2, upstream(t, "good").URL, 50),
	}, Guard: &registry.Guard{MaxErrorRate: 0.5, MinRequests: 10, Window: "1m"}})
	h := newHarness(t, s, func(o *Options) { o.Now = newFakeClock().Now })
	c := client(t)
	failNine := func() {
		t.Helper()
		for n, sent := 0, 0; n < 9; sent++ {
			if sent > 1000 {
				t.Fatalf("route bad got %d of %d requests: the guard already took its weight (events %v)", n, sent, guardEvents(t, s, "e"))
			}
			if routedTo(t, c, h, "e") == "bad" {
				n++
			}
		}
	}
	failNine()
	patchWeights(t, s, "e", 60, 40)
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	failNine()
	if ev := guardEvents(t, s, "e"); len(ev) != 0 {
		t.Fatalf("guard acted on failures from before the weight change: %v", ev)
	}
	for routedTo(t, c, h, "e") != "bad" { // the tenth failure; the other route answers meanwhile
	}
	waitFor(t, "the rollback after the tenth failure under the new weights", func() bool {
		return len(guardEvents(t, s, "e")) == 1
	})
}

// TestGuardDegradedWhenEveryRouteFails: with nowhere healthy to move
// weight, the guard moves none, records degraded once, and both routes
// keep their share.
func TestGuardDegradedWhenEveryRouteFails(t *testing.T) {
	s, _ := seedStore(t, 2)
	createEndpoint(t, s, registry.EndpointCreate{Name: "e", Routes: []registry.Route{
		rt("a", 1, statusUpstream(t, 500).URL, 50),
		rt("b", 2, statusUpstream(t, 503).URL, 50),
	}, Guard: &registry.Guard{MaxErrorRate: 0.1, MinRequests: 20, Window: "1m"}})
	h := newHarness(t, s, func(o *Options) { o.Now = newFakeClock().Now })
	c := client(t)
	waitFor(t, "the degraded status", func() bool {
		routedTo(t, c, h, "e")
		e, err := s.GetEndpoint(context.Background(), "e")
		if err != nil {
			t.Fatal(err)
		}
		return e.Status != registry.EndpointStatusHealthy
	})
	e, err := s.GetEndpoint(context.Background(), "e")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != registry.EndpointStatusDegraded || e.Routes[0].Weight != 50 || e.Routes[1].Weight != 50 {
		t.Fatalf("endpoint after every route failed: status %q (%s) routes %+v", e.Status, e.StatusMessage, e.Routes)
	}
	t.Logf("status message: %s", e.StatusMessage)
	counts := map[string]int{}
	for range 200 {
		counts[routedTo(t, c, h, "e")]++
	}
	if counts["a"] < 50 || counts["b"] < 50 {
		t.Errorf("traffic piled onto one route after degraded: %v", counts)
	}
	h.gw.bg.Wait()
	if ev := guardEvents(t, s, "e"); len(ev) != 1 || ev[0] != registry.ActionEndpointGuardDegraded {
		t.Errorf("guard events %v, want one %s", ev, registry.ActionEndpointGuardDegraded)
	}
}
