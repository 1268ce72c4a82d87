package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// countingSource counts full endpoint listings.
type countingSource struct {
	*memSource
	lists atomic.Int64
}

func (s *countingSource) ListEndpoints(ctx context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error) {
	if opts.PageToken == "" {
		s.lists.Add(1)
	}
	return s.memSource.ListEndpoints(ctx, opts)
}

// TestPollReloadsOnlyOnRevisionChanges: a poll that finds every stamp as
// the last Refresh listed it reads nothing more; a changed revision, a
// new endpoint, a deleted one, and one deleted and created again at
// revision 1 (told apart by its creation time) each cause one reload.
func TestPollReloadsOnlyOnRevisionChanges(t *testing.T) {
	a, b := upstream(t, "a").URL, upstream(t, "b").URL
	src := &countingSource{memSource: newMemSource(
		endpointOf("e", rt("a", 1, a, 100), rt("b", 2, b, 0)),
		// An endpoint the gateway cannot compile is skipped, and must not
		// make every poll reload.
		endpointOf("broken", rt("a", 1, "ftp://nope", 100)),
	)}
	h := newHarness(t, src, nil)
	c := client(t)
	ctx := t.Context()
	poll := func() {
		t.Helper()
		if err := h.gw.poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	route := func(name string) string {
		t.Helper()
		res, _ := get(t, c, h.srv.URL+"/serve/"+name+"/")
		if res.StatusCode == 404 {
			return ""
		}
		return res.Header.Get("X-Route")
	}
	reloads := func(what string, want int64, before int64) {
		t.Helper()
		if got := src.lists.Load() - before; got != want {
			t.Errorf("%s: %d reloads, want %d", what, got, want)
		}
	}

	n := src.lists.Load()
	for range 5 {
		poll()
	}
	reloads("nothing changed", 0, n)

	n = src.lists.Load()
	src.setWeights("e", 0, 100)
	poll()
	poll()
	reloads("weights changed", 1, n)
	if got := route("e"); got != "b" {
		t.Fatalf("after the weight change: route %q, want b", got)
	}

	n = src.lists.Load()
	src.put(endpointOf("new", rt("a", 1, a, 100)))
	poll()
	poll()
	reloads("endpoint created", 1, n)
	if got := route("new"); got != "a" {
		t.Fatalf("new endpoint: route %q, want a", got)
	}

	// Deleted and created again between two polls: the same name and
	// revision, another creation time and other routes.
	n = src.lists.Load()
	src.mu.Lock()
	delete(src.endpoints, "new")
	src.mu.Unlock()
	src.put(endpointOf("new", rt("b", 2, b, 100)))
	src.mu.Lock()
	e := src.endpoints["new"]
	e.CreatedAt = e.CreatedAt.Add(time.Minute) // put gives every new endpoint one creation time
	src.endpoints["new"] = e
	src.mu.Unlock()
	if e.Revision != 1 {
		t.Fatalf("re-created endpoint at revision %d, want 1", e.Revision)
	}
	poll()
	reloads("endpoint re-created", 1, n)
	if got := route("new"); got != "b" {
		t.Fatalf("re-created endpoint: route %q, want b", got)
	}

	n = src.lists.Load()
	src.mu.Lock()
	delete(src.endpoints, "new")
	src.mu.Unlock()
	poll()
	poll()
	reloads("endpoint deleted", 1, n)
	if got := route("new"); got != "" {
		t.Fatalf("deleted endpoint still routed to %q", got)
	}
}
