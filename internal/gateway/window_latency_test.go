package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

func TestLatencyQuantile(t *testing.T) {
	ms := time.Millisecond
	bins := func(pairs ...int64) (b [latencyBins]int64) {
		for i := 0; i < len(pairs); i += 2 {
			b[pairs[i]] = pairs[i+1]
		}
		return b
	}
	cases := []struct {
		name string
		q    float64
		bins [latencyBins]int64
		want time.Duration
		ok   bool
	}{
		{"empty", 0.99, bins(), 0, false},
		{"q out of range", 1.5, bins(0, 10), 0, false},
		{"q zero", 0, bins(0, 10), 0, false},
		// 100 requests in (0, 5ms]: rank 99 of 100 inside the first bin.
		{"all in the first bin", 0.99, bins(0, 100), 4950 * time.Microsecond, true},
		// 99 fast, 1 in (100ms, 250ms]: the 99th is the last fast one.
		{"one slow in a hundred", 0.99, bins(1, 99, 5, 1), 10 * ms, true},
		// 98 fast, 2 slow: rank 99 is half way into the slow bin.
		{"two slow in a hundred", 0.99, bins(1, 98, 5, 2), 175 * ms, true},
		{"median", 0.5, bins(2, 50, 3, 50), 25 * ms, true},
		{"one request", 0.99, bins(7, 1), 500*ms + time.Duration(0.99*float64(500*ms)), true},
		// Slower than every bound: the highest bound, not a guess.
		{"overflow", 0.99, bins(11, 10), 10 * time.Second, true},
		{"p100 at the top of a bin", 1, bins(0, 5, 4, 5), 100 * ms, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := latencyQuantile(c.q, c.bins)
			if ok != c.ok || got != c.want {
				t.Errorf("latencyQuantile(%v) = %v, %v; want %v, %v", c.q, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestLatencyBin(t *testing.T) {
	for d, want := range map[time.Duration]int{
		0: 0, 5 * time.Millisecond: 0, 5*time.Millisecond + 1: 1,
		time.Second: 7, 10 * time.Second: 10, time.Minute: 11,
	} {
		if got := latencyBin(d); got != want {
			t.Errorf("latencyBin(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestWindowLatencySlides(t *testing.T) {
	clk := newFakeClock()
	w := newWindow(time.Minute)
	for range 50 {
		w.observe(clk.Now(), 400*time.Millisecond)
	}
	clk.Advance(30 * time.Second)
	for range 50 {
		w.observe(clk.Now(), 3*time.Millisecond)
	}
	if p, _ := latencyQuantile(0.99, w.latencies(clk.Now())); p <= 250*time.Millisecond {
		t.Fatalf("p99 %v with half the window slow, want above 250ms", p)
	}
	clk.Advance(31 * time.Second) // the slow half left the window
	if p, _ := latencyQuantile(0.99, w.latencies(clk.Now())); p > 5*time.Millisecond {
		t.Fatalf("p99 %v after the slow requests left the window, want at most 5ms", p)
	}
}

// TestGuardWindowP99: the guard window carries each route's latency, on
// both serving paths, and the p99 tells a slow version from a fast one.
func TestGuardWindowP99(t *testing.T) {
	fast := upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {})
	// The upstream's own latency is what the test measures, so it sleeps.
	slow := upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) })
	s := rt("slow", 2, slow, 0)
	s.Match = &registry.RouteMatch{Header: "X-To", Value: "slow"}
	src := newMemSource(guarded("e", registry.Guard{MaxErrorRate: 0.5, MinRequests: 100, Window: "5m"}, rt("fast", 1, fast, 100), s))
	h := newLaneHarness(t, src, LaneOptions{})
	for _, p := range gatewayPaths[:4] {
		p.send(t, h, "/serve/e/", nil)
		p.send(t, h, "/serve/e/", http.Header{"X-To": {"slow"}})
	}
	got := map[string]RouteWindow{}
	for _, w := range h.gw.GuardWindows("e") {
		got[w.Route] = w
	}
	if w := got["slow"]; w.Requests != 4 || w.P99 < 250*time.Millisecond {
		t.Errorf("slow route window %+v, want 4 requests and a p99 of at least 250ms", w)
	}
	if w := got["fast"]; w.Requests != 4 || w.P99 <= 0 || w.P99 >= 250*time.Millisecond {
		t.Errorf("fast route window %+v, want 4 requests and a p99 under 250ms", w)
	}
}
