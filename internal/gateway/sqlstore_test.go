package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/store/sqlstore"
)

// The tests in this file run the gateway on the real store (SQLite in a
// temporary directory), as the app does.

var admin = registry.Actor{Name: "test"}

func openStore(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), "sqlite://"+path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// seedStore creates model m with n versions and returns the store and the
// database path (for a second "replica" to open).
func seedStore(t *testing.T, n int) (*sqlstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openStore(t, path)
	ctx := context.Background()
	if _, err := s.CreateModel(ctx, admin, registry.ModelCreate{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, err := s.CreateVersion(ctx, admin, "m", registry.ModelVersionCreate{
			Source:   fmt.Sprintf("file:///m/%d", i+1),
			Checksum: "sha256:" + strings.Repeat(fmt.Sprintf("%x", i+1), 64),
			Format:   "onnx",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

func createEndpoint(t *testing.T, s *sqlstore.Store, e registry.EndpointCreate) {
	t.Helper()
	e.Model = "m"
	if _, err := s.CreateEndpoint(context.Background(), admin, e); err != nil {
		t.Fatal(err)
	}
}

func patchWeights(t *testing.T, s *sqlstore.Store, name string, weights ...int) {
	t.Helper()
	ctx := context.Background()
	e, err := s.GetEndpoint(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	routes := e.Routes
	for i, w := range weights {
		routes[i].Weight = w
	}
	if _, err := s.UpdateEndpoint(ctx, admin, name, registry.EndpointPatch{Routes: &routes}, registry.Precondition{}); err != nil {
		t.Fatal(err)
	}
}

func TestSQLStoreSplitAndWeightChanges(t *testing.T) {
	s, _ := seedStore(t, 2)
	createEndpoint(t, s, registry.EndpointCreate{Name: "churn", Routes: []registry.Route{
		rt("stable", 1, upstream(t, "stable").URL, 90),
		rt("canary", 2, upstream(t, "canary").URL, 10),
	}})
	h := newHarness(t, s, nil)
	c := client(t)

	const n = 10000
	counts := split(t, c, h.srv.URL+"/serve/churn/predict", n)
	if got := 100 * float64(counts["canary"]) / n; got < 8 || got > 12 {
		t.Errorf("canary got %.2f%% of %d requests, want 10%% ± 2 (%v)", got, n, counts)
	}

	// Canary steps 90/10 -> 50/50 -> 0/100 and back, each written to the
	// store and applied by Refresh (what the server does after a write):
	// the very next request sees it.
	for _, step := range [][2]int{{50, 50}, {0, 100}, {100, 0}} {
		patchWeights(t, s, "churn", step[0], step[1])
		if err := h.gw.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		if step[0] == 0 || step[1] == 0 {
			want := "stable"
			if step[0] == 0 {
				want = "canary"
			}
			for range 50 {
				res, _ := get(t, c, h.srv.URL+"/serve/churn/")
				if got := res.Header.Get("X-Route"); got != want {
					t.Fatalf("weights %v: request went to %s", step, got)
				}
				if v := res.Header.Get("X-Model-Version"); (want == "stable") != (v == "1") {
					t.Fatalf("weights %v: X-Model-Version %s", step, v)
				}
			}
		}
	}
}

func TestSQLStoreOtherReplicaChangeWithinOneSecond(t *testing.T) {
	s, path := seedStore(t, 2)
	createEndpoint(t, s, registry.EndpointCreate{Name: "e", Routes: []registry.Route{
		rt("a", 1, upstream(t, "a").URL, 100),
		rt("b", 2, upstream(t, "b").URL, 0),
	}})
	h := newHarness(t, s, nil) // default PollInterval
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.gw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Another replica (its own store handle on the same database) writes.
	other := openStore(t, path)
	c := client(t)
	changed := time.Now()
	patchWeights(t, other, "e", 0, 100)
	for {
		res, _ := get(t, c, h.srv.URL+"/serve/e/")
		if res.Header.Get("X-Route") == "b" {
			break
		}
		if time.Since(changed) > time.Second {
			t.Fatal("the other replica's change was not served within 1s")
		}
	}
	t.Logf("picked up after %v", time.Since(changed))
}

func TestSQLStoreGuardRollback(t *testing.T) {
	s, _ := seedStore(t, 2)
	createEndpoint(t, s, registry.EndpointCreate{
		Name: "churn",
		Routes: []registry.Route{
			rt("stable", 1, upstream(t, "stable").URL, 90),
			rt("canary", 2, statusUpstream(t, 500).URL, 10),
		},
		Guard: &registry.Guard{MaxErrorRate: 0.05, MinRequests: 20, Window: "5m"},
	})
	h := newHarness(t, s, nil)
	c := client(t)
	ctx := context.Background()

	canary := 0
	for canary < 20 {
		if res, _ := get(t, c, h.srv.URL+"/serve/churn/"); res.Header.Get("X-Route") == "canary" {
			canary++
		}
	}
	var e *registry.Endpoint
	waitFor(t, "the rollback in the store", func() bool {
		var err error
		e, err = s.GetEndpoint(ctx, "churn")
		if err != nil {
			t.Fatal(err)
		}
		return e.Status == registry.EndpointStatusRolledBack
	})
	const msg = "route canary: error rate 1.00 over 20 requests in 5m exceeded 0.05; moved weight 10 to stable"
	if e.StatusMessage != msg {
		t.Errorf("status message %q\nwant           %q", e.StatusMessage, msg)
	}
	if e.Routes[0].Weight != 100 || e.Routes[1].Weight != 0 {
		t.Errorf("stored routes %+v", e.Routes)
	}
	page, err := s.ListEvents(ctx, registry.EventFilter{Endpoint: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	var found *registry.Event
	for i := range page.Items {
		if page.Items[i].Action == registry.ActionEndpointGuardRollback {
			found = &page.Items[i]
		}
	}
	if found == nil {
		t.Fatalf("no %s event in %+v", registry.ActionEndpointGuardRollback, page.Items)
	}
	if found.Actor != GuardActor {
		t.Errorf("event actor %q, want %q", found.Actor, GuardActor)
	}
	for range 100 {
		if res, _ := get(t, c, h.srv.URL+"/serve/churn/"); res.Header.Get("X-Route") != "stable" {
			t.Fatal("traffic reached the rolled-back canary")
		}
	}
	if err := h.gw.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if ce := h.gw.table.Load().endpoints["churn"]; ce.revision != e.Revision || ce.routes[1].weight != 0 {
		t.Errorf("table: revision %d (store %d), canary weight %d", ce.revision, e.Revision, ce.routes[1].weight)
	}
}

func TestSQLStoreGuardLosesToConcurrentChange(t *testing.T) {
	s, _ := seedStore(t, 2)
	createEndpoint(t, s, registry.EndpointCreate{
		Name: "e",
		Routes: []registry.Route{
			rt("good", 1, upstream(t, "good").URL, 50),
			rt("bad", 2, statusUpstream(t, 502).URL, 50),
		},
		Guard: &registry.Guard{MaxErrorRate: 0.2, MinRequests: 10, Window: "1m"},
	})
	h := newHarness(t, s, nil)
	c := client(t)
	// An operator's change the gateway has not loaded yet: the guard's
	// write names the old revision and is refused; the gateway reloads.
	patchWeights(t, s, "e", 80, 20)
	waitFor(t, "the reload after the refused rollback", func() bool {
		get(t, c, h.srv.URL+"/serve/e/")
		ce := h.gw.table.Load().endpoints["e"]
		return ce.revision == 2 && ce.routes[0].weight == 80
	})
	e, err := s.GetEndpoint(context.Background(), "e")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != registry.EndpointStatusHealthy || e.Routes[0].Weight != 80 {
		t.Errorf("store changed by a refused rollback: %+v", e)
	}
}

// TestSQLStoreRolloutServedAndObserved: a version change on an endpoint
// with a rollout starts one in the store; two gateway processes on the
// same database serve its weights in force and flush what they observed,
// which the store sums per route for the driver.
func TestSQLStoreRolloutServedAndObserved(t *testing.T) {
	s, path := seedStore(t, 2)
	v1, v2 := upstream(t, "v1").URL, upstream(t, "v2").URL
	createEndpoint(t, s, registry.EndpointCreate{
		Name:    "churn",
		Routes:  []registry.Route{rt("stable", 1, v1, 100)},
		Rollout: &registry.RolloutSpec{Steps: []int{25, 100}, Bake: "1h"},
	})
	ctx := context.Background()
	routes := []registry.Route{rt("stable", 2, v2, 100)}
	e, err := s.UpdateEndpoint(ctx, admin, "churn", registry.EndpointPatch{Routes: &routes}, registry.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Rollout == nil || e.Rollout.RolloutStatus == nil || e.Rollout.State != registry.RolloutProgressing {
		t.Fatalf("no rollout started: %+v", e.Rollout)
	}
	id := e.Rollout.ID
	var hs []*harness
	for i, src := range []*sqlstore.Store{s, openStore(t, path)} {
		h := newHarness(t, src, func(o *Options) {
			o.Observations, o.FlushInterval, o.Process = src, 10*time.Millisecond, fmt.Sprint("p", i)
		})
		runGateway(t, h)
		hs = append(hs, h)
	}
	c := client(t)
	want := map[string]int{}
	for i, h := range hs {
		for rv, n := range routeVersions(t, c, h.srv.URL+"/serve/churn/", 200+100*i) {
			want[rv] += n
		}
	}
	inRange(t, want, "stable v2", 75, 175)
	inRange(t, want, "stable@v1 v1", 325, 425)
	waitFor(t, "both processes' observations summed", func() bool {
		obs, err := s.RolloutObservations(ctx, "churn", id, 1)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, o := range obs {
			got[fmt.Sprintf("%s v%d", o.Route, o.Version)] = int(o.Requests)
		}
		return got["stable v2"] == want["stable v2"] && got["stable@v1 v1"] == want["stable@v1 v1"]
	})
}
