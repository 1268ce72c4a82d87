package gateway

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// shadowSeen is what a shadow upstream received.
type shadowSeen struct {
	method, uri string
	header      http.Header
	body        []byte
}

// shadowUpstream records every request; when hold is not nil each answer
// waits until hold is closed or delay passed.
type shadowUpstream struct {
	url  string
	mu   sync.Mutex
	seen []shadowSeen
}

func newShadowUpstream(t *testing.T, delay time.Duration, hold <-chan struct{}) *shadowUpstream {
	t.Helper()
	s := &shadowUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, shadowSeen{r.Method, r.RequestURI, r.Header.Clone(), body})
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-time.After(delay):
			}
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "shadow answer")
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *shadowUpstream) requests() []shadowSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func shadowRouteOf(name string, version int64, url string, share float64) registry.Route {
	return registry.Route{Name: name, Version: version, UpstreamURL: url, Shadow: true, Share: share}
}

// send sends one request and fails unless the primary answered it.
func send(t *testing.T, c *http.Client, method, url string, body io.Reader, size int64, hdr http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	for k, vv := range hdr {
		req.Header[k] = vv
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Route") != "primary" {
		t.Fatalf("%s %s: status %d from %q, want 200 from primary", method, url, res.StatusCode, res.Header.Get("X-Route"))
	}
	return res
}

// onlyReader hides a body's length, so the request goes chunked.
type onlyReader struct{ io.Reader }

// TestShadowSeesBodies: a shadow gets a copy of each request with its
// method, path, query and body, on both serving paths (a body the engine
// reads whole, and a chunked one teed while it streams to the primary),
// under the forwarding rules of the primary (no registry token) plus the
// shadow marker, which a client cannot set; a body over the copy limit is
// not copied and counted, whether its length is announced or found out
// while it streams.
func TestShadowSeesBodies(t *testing.T) {
	sh := newShadowUpstream(t, 0, nil)
	src := newMemSource(endpointOf("e",
		rt("primary", 1, upstream(t, "primary").URL, 100),
		shadowRouteOf("mirror", 3, sh.url+"/base", 1),
	))
	h := newHarness(t, src, nil)
	c := client(t)
	token, _, err := registry.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	url := h.srv.URL + "/serve/e/predict?x=1"
	small := bytes.Repeat([]byte("a"), 2048)
	chunked := bytes.Repeat([]byte("b"), 10<<10)
	big := bytes.Repeat([]byte("c"), 100<<10)

	send(t, c, http.MethodGet, url, nil, 0, http.Header{
		"Authorization":       {"Bearer " + token},
		"X-Mlregistry-Shadow": {"forged"},
		"X-Custom":            {"kept"},
	})
	send(t, c, http.MethodPost, url, bytes.NewReader(small), int64(len(small)), nil)
	send(t, c, http.MethodPost, url, onlyReader{bytes.NewReader(chunked)}, -1, nil)
	send(t, c, http.MethodPost, url, bytes.NewReader(big), int64(len(big)), nil)
	send(t, c, http.MethodPost, url, onlyReader{bytes.NewReader(big)}, -1, nil)

	waitFor(t, "three shadow copies", func() bool { return len(sh.requests()) == 3 })
	got := sh.requests()
	sort.Slice(got, func(i, j int) bool { return len(got[i].body) < len(got[j].body) })
	for i, want := range [][]byte{nil, small, chunked} {
		s := got[i]
		if !bytes.Equal(s.body, want) {
			t.Errorf("copy %d: body of %d bytes (sha %x), want %d bytes", i, len(s.body), sha256.Sum256(s.body), len(want))
		}
		if s.uri != "/base/predict?x=1" {
			t.Errorf("copy %d: %s %s, want /base/predict?x=1", i, s.method, s.uri)
		}
		if v := s.header["X-Mlregistry-Shadow"]; !slices.Equal(v, []string{"1"}) {
			t.Errorf("copy %d: X-Mlregistry-Shadow %q, want the gateway's 1 only", i, v)
		}
		if s.header.Get("X-Route") != "mirror" || s.header.Get("X-Model-Version") != "3" {
			t.Errorf("copy %d: X-Route %q X-Model-Version %q, want mirror 3", i, s.header.Get("X-Route"), s.header.Get("X-Model-Version"))
		}
	}
	if got[0].method != http.MethodGet || got[0].header.Get("X-Custom") != "kept" {
		t.Errorf("GET copy: %s with X-Custom %q", got[0].method, got[0].header.Get("X-Custom"))
	}
	for _, s := range got {
		if strings.Contains(strings.Join(s.header["Authorization"], " "), registry.TokenPrefix) {
			t.Fatalf("a registry token reached the shadow: %q", s.header["Authorization"])
		}
	}
	m := h.gw.metrics
	if n := counterValue(t, m.shadowDropped.WithLabelValues("e", "mirror", "body_too_large")); n != 2 {
		t.Errorf("body_too_large drops %v, want 2", n)
	}
	waitFor(t, "the copies' answers counted", func() bool {
		return counterValue(t, m.shadowRequests.WithLabelValues("e", "mirror", "3", "2xx")) == 3
	})
}

// TestShadowShare: a shadow with share 0.25 gets exactly every fourth
// request (the counter, not chance, decides), on both paths.
func TestShadowShare(t *testing.T) {
	sh := newShadowUpstream(t, 0, nil)
	src := newMemSource(endpointOf("e",
		rt("primary", 1, upstream(t, "primary").URL, 100),
		shadowRouteOf("quarter", 2, sh.url, 0.25),
	))
	h := newHarness(t, src, nil)
	c := client(t)
	for i := range 100 {
		if i%2 == 0 {
			send(t, c, http.MethodGet, h.srv.URL+"/serve/e/", nil, 0, nil)
		} else {
			send(t, c, http.MethodPost, h.srv.URL+"/serve/e/", strings.NewReader("x"), 1, nil)
		}
	}
	waitFor(t, "25 copies", func() bool { return len(sh.requests()) >= 25 })
	h.gw.bg.Wait()
	if n := len(sh.requests()); n != 25 {
		t.Fatalf("%d copies of 100 requests, want 25", n)
	}
}

// TestShadowQueueFullDropped: copies that find the queue full are dropped
// and counted; the client's answers never wait for them.
func TestShadowQueueFullDropped(t *testing.T) {
	hold := make(chan struct{})
	sh := newShadowUpstream(t, time.Minute, hold)
	src := newMemSource(endpointOf("e",
		rt("primary", 1, upstream(t, "primary").URL, 100),
		shadowRouteOf("stuck", 2, sh.url, 1),
	))
	h := newHarness(t, src, func(o *Options) { o.ShadowQueue, o.ShadowWorkers = 2, 1 })
	t.Cleanup(func() { close(hold) })
	c := client(t)
	send(t, c, http.MethodGet, h.srv.URL+"/serve/e/", nil, 0, nil)
	waitFor(t, "the first copy held by the shadow", func() bool { return len(sh.requests()) == 1 })
	for range 9 {
		send(t, c, http.MethodGet, h.srv.URL+"/serve/e/", nil, 0, nil)
	}
	// One copy in flight, two queued: the other seven were dropped.
	if n := counterValue(t, h.gw.metrics.shadowDropped.WithLabelValues("e", "stuck", "queue_full")); n != 7 {
		t.Fatalf("queue_full drops %v, want 7", n)
	}
}

// TestSlowShadowLeavesPrimaryP99: a shadow that takes 2 s to answer every
// copy does not move the primary's latency: its p99 measured by the client
// with the shadow stays near the p99 without it (both measured here, over
// real upstreams, on both paths).
func TestSlowShadowLeavesPrimaryP99(t *testing.T) {
	hold := make(chan struct{})
	sh := newShadowUpstream(t, 2*time.Second, hold)
	primary := rt("primary", 1, upstream(t, "primary").URL, 100)
	src := newMemSource(endpointOf("e", primary))
	h := newHarness(t, src, nil)
	t.Cleanup(func() { close(hold) })
	c := client(t)
	body := bytes.Repeat([]byte("p"), 2048)
	p99 := func() time.Duration {
		var took []time.Duration
		for i := range 200 {
			start := time.Now()
			if i%2 == 0 {
				send(t, c, http.MethodGet, h.srv.URL+"/serve/e/", nil, 0, nil)
			} else {
				send(t, c, http.MethodPost, h.srv.URL+"/serve/e/", bytes.NewReader(body), int64(len(body)), nil)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		return took[len(took)*99/100-1]
	}
	base := p99()
	src.put(endpointOf("e", primary, shadowRouteOf("slow", 2, sh.url, 1)))
	if err := h.gw.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	with := p99()
	copies := len(sh.requests())
	t.Logf("primary p99 without a shadow %v, with a 2 s shadow %v (%d copies sent)", base, with, copies)
	if copies == 0 {
		t.Fatal("the shadow got no copies")
	}
	if with > base+250*time.Millisecond && with > 2*base {
		t.Fatalf("primary p99 %v with the slow shadow, %v without: the client waited for the shadow", with, base)
	}
}

// TestShadowAndRolloutSeriesForgotten: the series of a shadow route, and
// of a rollout's "<route>@v<version>" share, leave /metrics once the
// table no longer has them, so label sets stay bounded by what is
// configured.
func TestShadowAndRolloutSeriesForgotten(t *testing.T) {
	sh := newShadowUpstream(t, 0, nil)
	v1 := upstream(t, "v1").URL
	primary := rt("primary", 2, upstream(t, "primary").URL, 100)
	src := newMemSource(endpointOf("e", primary, shadowRouteOf("mirror", 3, sh.url, 1)))
	src.setRollout("e", registry.RolloutStatus{
		ID: 1, State: registry.RolloutProgressing, Step: 1,
		Routes: []registry.Route{{Name: "primary", Version: 2, UpstreamURL: primary.UpstreamURL, Weight: 50},
			rt("primary@v1", 1, v1, 50), shadowRouteOf("mirror", 3, sh.url, 1)},
	})
	h := newHarness(t, src, nil)
	c := client(t)
	for range 20 {
		get(t, c, h.srv.URL+"/serve/e/")
	}
	waitFor(t, "20 copies", func() bool { return len(sh.requests()) == 20 })
	h.gw.bg.Wait()
	families := []string{"mlregistry_gateway_shadow_requests_total", "mlregistry_gateway_shadow_duration_seconds", "mlregistry_gateway_shadow_dropped_total"}
	if n := seriesCount(t, h.reg, families...); n == 0 {
		t.Fatal("no shadow series")
	}
	if seriesWith(t, h.reg, "primary@v1") == 0 {
		t.Fatal("no series of the old version's share")
	}
	src.put(endpointOf("e", primary))
	if err := h.gw.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := seriesCount(t, h.reg, families...); n != 0 {
		t.Fatalf("%d shadow series left after the shadow route went", n)
	}
	if n := seriesWith(t, h.reg, "primary@v1"); n != 0 {
		t.Fatalf("%d series of primary@v1 left after the rollout ended", n)
	}
}

// seriesWith counts the gathered series with a route label of route.
func seriesWith(t *testing.T, g prometheus.Gatherer, route string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					n++
				}
			}
		}
	}
	return n
}

// TestShadowShareAcrossReloads: the share's counter outlives a reload of
// the endpoint (a rollout step, an unrelated change), so a share of 0.5
// copies every second request however often the table is rebuilt.
func TestShadowShareAcrossReloads(t *testing.T) {
	sh := newShadowUpstream(t, 0, nil)
	primary := rt("primary", 1, upstream(t, "primary").URL, 100)
	half := shadowRouteOf("half", 2, sh.url, 0.5)
	src := newMemSource(endpointOf("e", primary, half))
	h := newHarness(t, src, nil)
	c := client(t)
	for i := range 10 {
		send(t, c, http.MethodGet, h.srv.URL+"/serve/e/", nil, 0, nil)
		e := endpointOf("e", primary, half)
		e.Timeout = fmt.Sprintf("%ds", 10+i)
		src.put(e)
		if err := h.gw.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "5 copies", func() bool { return len(sh.requests()) >= 5 })
	h.gw.bg.Wait()
	if n := len(sh.requests()); n != 5 {
		t.Fatalf("%d copies of 10 requests with a reload after each, want 5", n)
	}
}
