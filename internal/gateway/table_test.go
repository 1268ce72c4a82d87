package gateway

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func TestStickyRouting(t *testing.T) {
	e := endpointOf("e", rt("a", 1, upstream(t, "a").URL, 50), rt("b", 2, upstream(t, "b").URL, 50))
	e.StickyHeader = "x-user-id" // any case: header names are case-insensitive
	src := newMemSource(e)
	h := newHarness(t, src, nil)
	c := client(t)

	// The same key lands on the same route, request after request.
	first := map[string]string{}
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i%10)
		res, _ := get(t, c, h.srv.URL+"/serve/e/", "X-User-Id", key)
		r := res.Header.Get("X-Route")
		if f, ok := first[key]; ok && f != r {
			t.Fatalf("key %s went to %s, then to %s", key, f, r)
		}
		first[key] = r
	}

	// Over many keys the split follows the weights, and a weight change
	// 50/50 -> 60/40 moves only keys from b to a, about 10% of them.
	const keys = 2000
	before := routeKeys(t, h, c, keys)
	src.setWeights("e", 60, 40)
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := routeKeys(t, h, c, keys)
	moved, toA := 0, 0
	for k := range keys {
		if before[k] != after[k] {
			moved++
			if before[k] == "b" && after[k] == "a" {
				toA++
			}
		}
	}
	if share := float64(moved) / keys; share < 0.06 || share > 0.14 {
		t.Errorf("%.1f%% of keys moved on a 10-point weight change, want about 10%%", 100*share)
	}
	if toA != moved {
		t.Errorf("%d of %d moved keys did not move from b to a", moved-toA, moved)
	}

	// Without the header, traffic is weighted at random.
	counts := split(t, c, h.srv.URL+"/serve/e/", 2000)
	if counts["a"] < 1000 || counts["b"] < 600 {
		t.Errorf("requests without the sticky header: %v", counts)
	}
}

func routeKeys(t *testing.T, h *harness, c *http.Client, n int) []string {
	t.Helper()
	out := make([]string, n)
	for k := range n {
		res, _ := get(t, c, h.srv.URL+"/serve/e/", "X-User-Id", fmt.Sprintf("key-%d", k))
		out[k] = res.Header.Get("X-Route")
	}
	return out
}

// TestStickyHashMovesFewKeys checks the hashing directly on many keys:
// the split matches weights, and moving weight between neighbouring
// routes moves exactly the keys between the old and new boundary.
func TestStickyHashMovesFewKeys(t *testing.T) {
	g, err := New(Options{Source: newMemSource()})
	if err != nil {
		t.Fatal(err)
	}
	compile := func(weights ...int) *endpoint {
		e := registry.Endpoint{Name: "e", StickyHeader: "K"}
		for i, w := range weights {
			e.Routes = append(e.Routes, rt(fmt.Sprintf("r%d", i), 1, "http://127.0.0.1:1", w))
		}
		ce, err := g.compile(e, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		return ce
	}
	const n = 100000
	pickAll := func(ce *endpoint) []string {
		out := make([]string, n)
		req := &http.Request{Header: http.Header{}}
		for i := range n {
			req.Header["K"] = []string{fmt.Sprint("k", i)}
			out[i] = ce.pick(req).name
		}
		return out
	}
	a := pickAll(compile(70, 20, 10))
	counts := map[string]int{}
	for _, r := range a {
		counts[r]++
	}
	for i, w := range []int{70, 20, 10} {
		got := 100 * float64(counts[fmt.Sprintf("r%d", i)]) / n
		if d := got - float64(w); d > 1 || d < -1 {
			t.Errorf("r%d: %.2f%%, want %d%%", i, got, w)
		}
	}
	// 70/20/10 -> 70/10/20: 10 points move from r1 to r2, nothing else.
	b := pickAll(compile(70, 10, 20))
	moved := 0
	for i := range n {
		if a[i] != b[i] {
			moved++
			if a[i] != "r1" || b[i] != "r2" {
				t.Fatalf("key %d moved %s -> %s", i, a[i], b[i])
			}
		}
	}
	if share := float64(moved) / n; share < 0.09 || share > 0.11 {
		t.Errorf("%.2f%% moved, want 10%%", 100*share)
	}
	// Zero-weight routes never get a key.
	for _, r := range pickAll(compile(0, 100, 0)) {
		if r != "r1" {
			t.Fatalf("key went to zero-weight route %s", r)
		}
	}
}

func TestStickyHashIsStable(t *testing.T) {
	// Replicas must agree: the hash is a fixed function, not seeded.
	if got := stickyHash("user-42"); got != stickyHash("user-42") || got == stickyHash("user-43") {
		t.Fatal("hash not deterministic")
	}
	const want = uint64(0xa39532c7ab051e8d)
	if got := stickyHash("user-42"); got != want {
		t.Errorf("stickyHash changed: %#x, want %#x (changing it moves every sticky key)", got, want)
	}
}
