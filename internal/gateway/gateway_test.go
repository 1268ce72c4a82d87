package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// memSource is an in-memory test double of the three Store methods the
// gateway uses. The integration tests run against the real sqlstore.
type memSource struct {
	mu        sync.Mutex
	endpoints map[string]registry.Endpoint
	rollbacks []rollbackCall
	degraded  []rollbackCall
	// failRollback, when set, is returned by RecordGuardRollback.
	failRollback error
	listErr      error
}

type rollbackCall struct {
	actor    registry.Actor
	name     string
	revision int64
	routes   []registry.Route
	message  string
}

func newMemSource(eps ...registry.Endpoint) *memSource {
	s := &memSource{endpoints: map[string]registry.Endpoint{}}
	for _, e := range eps {
		s.put(e)
	}
	return s
}

// put stores e as a write would: next revision.
func (s *memSource) put(e registry.Endpoint) registry.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.endpoints[e.Name]
	if ok {
		e.Revision = old.Revision + 1
		e.CreatedAt = old.CreatedAt
	} else {
		e.Revision = 1
		e.CreatedAt = time.Unix(1700000000, 0)
	}
	if e.Status == "" {
		e.Status = registry.EndpointStatusHealthy
	}
	s.endpoints[e.Name] = e
	return e
}

func (s *memSource) setWeights(name string, weights ...int) {
	s.mu.Lock()
	e := s.endpoints[name]
	s.mu.Unlock()
	e.Routes = slices.Clone(e.Routes)
	for i, w := range weights {
		e.Routes[i].Weight = w
	}
	e.Status = registry.EndpointStatusHealthy
	s.put(e)
}

func (s *memSource) get(name string) registry.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints[name]
}

func (s *memSource) ListEndpoints(_ context.Context, opts registry.ListOptions) (*registry.Page[registry.Endpoint], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listErr != nil {
		return nil, s.listErr
	}
	var names []string
	for n := range s.endpoints {
		names = append(names, n)
	}
	slices.Sort(names)
	// Page by one so the gateway's paging is exercised.
	start := 0
	if opts.PageToken != "" {
		start = slices.Index(names, opts.PageToken) + 1
	}
	p := &registry.Page[registry.Endpoint]{}
	if start < len(names) {
		p.Items = []registry.Endpoint{s.endpoints[names[start]]}
		if start+1 < len(names) {
			p.NextPageToken = names[start]
		}
	}
	return p, nil
}

func (s *memSource) EndpointRevisions(context.Context) (map[string]registry.EndpointRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listErr != nil {
		return nil, s.listErr
	}
	out := map[string]registry.EndpointRevision{}
	for n, e := range s.endpoints {
		out[n] = registry.EndpointRevision{Revision: e.Revision, CreatedAt: e.CreatedAt}
		if e.Rollout != nil && e.Rollout.RolloutStatus != nil {
			out[n] = registry.EndpointRevision{Revision: e.Revision, CreatedAt: e.CreatedAt, RolloutSeq: e.Rollout.Seq}
		}
	}
	return out, nil
}

func (s *memSource) RecordGuardRollback(_ context.Context, actor registry.Actor, name string, rev int64, routes []registry.Route, msg string) (*registry.Endpoint, error) {
	s.mu.Lock()
	s.rollbacks = append(s.rollbacks, rollbackCall{actor, name, rev, slices.Clone(routes), msg})
	fail := s.failRollback
	e, ok := s.endpoints[name]
	s.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if !ok {
		return nil, registry.Errorf(registry.CodeNotFound, "endpoint %q not found", name)
	}
	if e.Revision != rev {
		return nil, registry.Errorf(registry.CodePreconditionFailed, "endpoint %q changed", name)
	}
	e.Routes = slices.Clone(routes)
	e.Status = registry.EndpointStatusRolledBack
	e.StatusMessage = msg
	if ro := activeRollout(&e); ro != nil {
		// As the store does: the guard's rollback ends the rollout.
		ended := *ro
		ended.State, ended.Routes, ended.Message, ended.Seq = registry.RolloutRolledBack, slices.Clone(routes), msg, ro.Seq+1
		e.Rollout = &registry.EndpointRollout{RolloutSpec: e.Rollout.RolloutSpec, RolloutStatus: &ended}
	}
	e = s.put(e)
	return &e, nil
}

// setRollout stores st as name's rollout status, as the rollout driver
// does: the revision stays, the status's Seq tells the gateway.
func (s *memSource) setRollout(name string, st registry.RolloutStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.endpoints[name]
	var spec registry.RolloutSpec
	if e.Rollout != nil {
		spec = e.Rollout.RolloutSpec
		if e.Rollout.RolloutStatus != nil {
			st.Seq = e.Rollout.Seq + 1
		}
	}
	if st.Seq == 0 {
		st.Seq = 1
	}
	e.Rollout = &registry.EndpointRollout{RolloutSpec: spec, RolloutStatus: &st}
	s.endpoints[name] = e
}

func (s *memSource) RecordGuardDegraded(_ context.Context, actor registry.Actor, name string, rev int64, msg string) (*registry.Endpoint, error) {
	s.mu.Lock()
	s.degraded = append(s.degraded, rollbackCall{actor, name, rev, nil, msg})
	e, ok := s.endpoints[name]
	s.mu.Unlock()
	if !ok {
		return nil, registry.Errorf(registry.CodeNotFound, "endpoint %q not found", name)
	}
	if e.Revision != rev {
		return nil, registry.Errorf(registry.CodePreconditionFailed, "endpoint %q changed", name)
	}
	e.Status = registry.EndpointStatusDegraded
	e.StatusMessage = msg
	e = s.put(e)
	return &e, nil
}

func (s *memSource) degradedCalls() []rollbackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.degraded)
}

func (s *memSource) rollbackCalls() []rollbackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rollbacks)
}

// upstream is a real HTTP server on 127.0.0.1 that names itself in its
// answers.
func upstream(t testing.TB, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func statusUpstream(t testing.TB, status int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, "status")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func endpointOf(name string, routes ...registry.Route) registry.Endpoint {
	return registry.Endpoint{Name: name, Model: "m", Routes: routes}
}

func rt(name string, version int64, url string, weight int) registry.Route {
	return registry.Route{Name: name, Version: version, UpstreamURL: url, Weight: weight}
}

// harness is a gateway served by an httptest server.
type harness struct {
	gw  *Gateway
	srv *httptest.Server
	src Source
	reg *prometheus.Registry
}

func newHarness(t testing.TB, src Source, mod func(*Options)) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{
		Source:     src,
		Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if mod != nil {
		mod(&opts)
	}
	gw, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Served as mlregistry serves it: through Listener and the fast lane,
	// so every test also runs the raw-syscall connections, and plain GETs
	// take the lane while everything else is handed to net/http.
	srv := httptest.NewUnstartedServer(gw)
	lane := gw.Lane(Listener(srv.Listener), LaneOptions{})
	srv.Listener = lane
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := lane.Shutdown(ctx); err != nil {
			t.Errorf("lane shutdown: %v", err)
		}
	})
	t.Cleanup(gw.bg.Wait)
	return &harness{gw: gw, srv: srv, src: src, reg: reg}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client returns an HTTP client with enough idle connections for the
// split tests (the default keeps two per host and dials constantly).
func client(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t testing.TB, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// split sends n requests and counts the X-Route answers.
func split(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 16 {
		wg.Go(func() {
			for range jobs {
				res, err := c.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				mu.Lock()
				counts[res.Header.Get("X-Route")]++
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return counts
}

func TestSplitMatchesWeights(t *testing.T) {
	for _, weights := range [][]int{{90, 10}, {70, 20, 10}, {50, 0, 50}} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			var routes []registry.Route
			for i, w := range weights {
				name := fmt.Sprintf("r%d", i)
				routes = append(routes, rt(name, int64(i+1), upstream(t, name).URL, w))
			}
			h := newHarness(t, newMemSource(endpointOf("e", routes...)), nil)
			const n = 10000
			counts := split(t, client(t), h.srv.URL+"/serve/e/predict", n)
			for i, w := range weights {
				got := 100 * float64(counts[fmt.Sprintf("r%d", i)]) / n
				if d := got - float64(w); d > 2 || d < -2 {
					t.Errorf("route r%d: %.2f%% of requests, want %d%% ± 2 (counts %v)", i, got, w, counts)
				}
			}
			if w := weights[1]; w == 0 && counts["r1"] != 0 {
				t.Errorf("route with weight 0 got %d requests", counts["r1"])
			}
		})
	}
}

func TestResponseHeadersAndPath(t *testing.T) {
	var got *http.Request
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Clone(context.Background())
		mu.Unlock()
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "drop me")
		w.Header().Set("X-Keep", "keep me")
		io.WriteString(w, r.URL.RequestURI())
	}))
	t.Cleanup(up.Close)
	src := newMemSource(endpointOf("churn", rt("stable", 7, up.URL+"/base/", 100)))
	h := newHarness(t, src, nil)
	c := client(t)

	res, body := get(t, c, h.srv.URL+"/serve/churn/v1/predict%2Fx?q=1&b=a%20b",
		"Authorization", "Bearer mlr_secret", "X-Forwarded-For", "10.0.0.1", "Connection", "X-Drop", "X-Drop", "gone", "X-Custom", "kept")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if v := res.Header.Get("X-Model-Version"); v != "7" {
		t.Errorf("X-Model-Version = %q, want 7", v)
	}
	if v := res.Header.Get("X-Route"); v != "stable" {
		t.Errorf("X-Route = %q, want stable", v)
	}
	if v := res.Header.Get("X-Hop"); v != "" {
		t.Errorf("hop-by-hop response header forwarded: %q", v)
	}
	if v := res.Header.Get("X-Keep"); v != "keep me" {
		t.Errorf("X-Keep = %q", v)
	}
	if body != "/base/v1/predict%2Fx?q=1&b=a%20b" {
		t.Errorf("upstream saw %q", body)
	}
	mu.Lock()
	if v := got.Header.Get("Authorization"); v != "" {
		t.Errorf("registry token forwarded upstream: %q", v)
	}
	if v := got.Header.Get("X-Drop"); v != "" {
		t.Errorf("header named in Connection forwarded: %q", v)
	}
	if v := got.Header.Get("X-Custom"); v != "kept" {
		t.Errorf("X-Custom = %q", v)
	}
	if v := got.Header.Get("X-Forwarded-For"); v != "10.0.0.1, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", v)
	}
	if v := got.Header.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto = %q", v)
	}
	if v := got.Header.Get("X-Forwarded-Host"); v != strings.TrimPrefix(h.srv.URL, "http://") {
		t.Errorf("X-Forwarded-Host = %q", v)
	}
	if got.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("Host = %q, want the upstream's", got.Host)
	}
	mu.Unlock()

	// Without a trailing path: the upstream's base path.
	_, body = get(t, c, h.srv.URL+"/serve/churn")
	if body != "/base/" {
		t.Errorf("upstream saw %q for /serve/churn", body)
	}
	// Other credentials pass through.
	get(t, c, h.srv.URL+"/serve/churn/x", "Authorization", "Bearer upstream-key")
	mu.Lock()
	if v := got.Header.Get("Authorization"); v != "Bearer upstream-key" {
		t.Errorf("upstream credential not forwarded: %q", v)
	}
	mu.Unlock()
}

func decodeProblem(t *testing.T, res *http.Response, body string) problem {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != res.StatusCode || p.Type != problemTypeBase+string(p.Code) || p.Title == "" {
		t.Errorf("inconsistent problem %+v for status %d", p, res.StatusCode)
	}
	return p
}

func TestErrors(t *testing.T) {
	dead := deadAddr(t)
	src := newMemSource(
		endpointOf("ok", rt("a", 1, upstream(t, "a").URL, 100)),
		endpointOf("dead", rt("a", 1, "http://"+dead, 100)),
	)
	h := newHarness(t, src, nil)
	c := client(t)

	for _, tc := range []struct {
		path   string
		status int
		code   registry.Code
	}{
		{"/serve/missing/x", 404, registry.CodeNotFound},
		{"/serve/", 404, registry.CodeNotFound},
		{"/other", 404, registry.CodeNotFound},
	} {
		res, body := get(t, c, h.srv.URL+tc.path)
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, res.StatusCode, tc.status)
			continue
		}
		if p := decodeProblem(t, res, body); p.Code != tc.code {
			t.Errorf("%s: code %q, want %q", tc.path, p.Code, tc.code)
		}
	}

	start := time.Now()
	res, body := get(t, c, h.srv.URL+"/serve/dead/x")
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead upstream: status %d, want 502: %s", res.StatusCode, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dead upstream took %v", d)
	}
	if p := decodeProblem(t, res, body); p.Code != registry.CodeUnavailable {
		t.Errorf("dead upstream: code %q", p.Code)
	}
	// The gateway's own 502 names the route it tried (issue 9 item 8).
	if res.Header.Get("X-Route") != "a" || res.Header.Get("X-Model-Version") == "" {
		t.Errorf("502 answer: X-Route %q, X-Model-Version %q", res.Header.Get("X-Route"), res.Header.Get("X-Model-Version"))
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestNoWeightIs503(t *testing.T) {
	// The store never holds such an endpoint (weights sum to 100), but the
	// guard can drain the only route with weight; the answer is 503.
	e := endpointOf("e", rt("a", 1, upstream(t, "a").URL, 0))
	h := newHarness(t, newMemSource(e), nil)
	res, body := get(t, client(t), h.srv.URL+"/serve/e/x")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", res.StatusCode, body)
	}
	if p := decodeProblem(t, res, body); p.Code != registry.CodeUnavailable {
		t.Errorf("code %q", p.Code)
	}
}

func TestSlowUpstreamIs504(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	for _, custom := range []bool{false, true} {
		t.Run(fmt.Sprintf("custom_transport=%v", custom), func(t *testing.T) {
			src := newMemSource(endpointOf("slow", rt("a", 1, slow.URL, 100)))
			h := newHarness(t, src, func(o *Options) {
				o.UpstreamTimeout = 200 * time.Millisecond
				if custom {
					o.Transport = &http.Transport{}
				}
			})
			start := time.Now()
			res, body := get(t, client(t), h.srv.URL+"/serve/slow/x")
			if res.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("status %d, want 504: %s", res.StatusCode, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			decodeProblem(t, res, body)
		})
	}
}

func TestWeightChangeAppliesOnRefresh(t *testing.T) {
	src := newMemSource(endpointOf("e", rt("a", 1, upstream(t, "a").URL, 100), rt("b", 2, upstream(t, "b").URL, 0)))
	h := newHarness(t, src, nil)
	c := client(t)
	if res, _ := get(t, c, h.srv.URL+"/serve/e/"); res.Header.Get("X-Route") != "a" {
		t.Fatalf("before: route %q", res.Header.Get("X-Route"))
	}
	src.setWeights("e", 0, 100)
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if res, _ := get(t, c, h.srv.URL+"/serve/e/"); res.Header.Get("X-Route") != "b" {
			t.Fatalf("after Refresh: route %q, want b", res.Header.Get("X-Route"))
		}
	}
}

func TestRunPicksUpChanges(t *testing.T) {
	src := newMemSource(endpointOf("e", rt("a", 1, upstream(t, "a").URL, 100), rt("b", 2, upstream(t, "b").URL, 0)))
	h := newHarness(t, src, func(o *Options) { o.PollInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c := client(t)

	// A change made elsewhere (another replica): only the store moves.
	changed := time.Now()
	src.setWeights("e", 0, 100)
	for {
		res, _ := get(t, c, h.srv.URL+"/serve/e/")
		if res.Header.Get("X-Route") == "b" {
			break
		}
		if time.Since(changed) > time.Second {
			t.Fatal("change not picked up within 1s")
		}
	}
	// A new endpoint appears, a deleted one goes.
	src.put(endpointOf("new", rt("a", 1, upstream(t, "n").URL, 100)))
	deadline := time.Now().Add(time.Second)
	for {
		if res, _ := get(t, c, h.srv.URL+"/serve/new/"); res.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new endpoint not served within 1s")
		}
	}
}

func TestLazyLoadAndSourceFailure(t *testing.T) {
	src := newMemSource(endpointOf("e", rt("a", 1, upstream(t, "a").URL, 100)))
	gw, err := New(Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	c := client(t)
	// Nobody called Refresh: the first request loads the table.
	if res, body := get(t, c, srv.URL+"/serve/e/"); res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}

	bad := newMemSource()
	bad.listErr = registry.Errorf(registry.CodeUnavailable, "db down")
	gw2, err := New(Options{Source: bad})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(gw2)
	t.Cleanup(srv2.Close)
	res, body := get(t, c, srv2.URL+"/serve/e/")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", res.StatusCode, body)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without Source succeeded")
	}
}

func TestCustomWriteProblem(t *testing.T) {
	var called atomic.Int32
	h := newHarness(t, newMemSource(), func(o *Options) {
		o.WriteProblem = func(w http.ResponseWriter, r *http.Request, status int, code registry.Code, detail string) {
			called.Add(1)
			w.WriteHeader(status)
			io.WriteString(w, string(code))
		}
	})
	res, body := get(t, client(t), h.srv.URL+"/serve/x/")
	if res.StatusCode != 404 || body != "not_found" || called.Load() != 1 {
		t.Fatalf("status %d body %q calls %d", res.StatusCode, body, called.Load())
	}
}

func TestMetrics(t *testing.T) {
	src := newMemSource(
		endpointOf("e", rt("ok", 1, upstream(t, "ok").URL, 50), rt("bad", 2, statusUpstream(t, 500).URL, 50)),
	)
	h := newHarness(t, src, nil)
	counts := split(t, client(t), h.srv.URL+"/serve/e/", 200)

	if got := counterValue(t, h.gw.metrics.requests.WithLabelValues("e", "ok", "1", "2xx")); int(got) != counts["ok"] {
		t.Errorf("requests{ok,2xx} = %v, want %d", got, counts["ok"])
	}
	if got := counterValue(t, h.gw.metrics.requests.WithLabelValues("e", "bad", "2", "5xx")); int(got) != counts["bad"] {
		t.Errorf("requests{bad,5xx} = %v, want %d", got, counts["bad"])
	}
	if got := counterValue(t, h.gw.metrics.upErrors.WithLabelValues("e", "bad", "2")); int(got) != counts["bad"] {
		t.Errorf("upstream_errors{bad} = %v, want %d", got, counts["bad"])
	}
	if n := seriesCount(t, h.reg, "mlregistry_gateway_request_duration_seconds", "mlregistry_gateway_guard_rollbacks_total"); n != 4 { // a histogram and a rollback counter per route
		t.Errorf("%d duration/rollback series, want 4", n)
	}

	// A deleted endpoint's series go away with it.
	src.mu.Lock()
	delete(src.endpoints, "e")
	src.mu.Unlock()
	if err := h.gw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := seriesCount(t, h.reg); n != 0 {
		t.Errorf("%d series left after the endpoint was deleted", n)
	}

	// A second gateway on the same registry shares the collectors.
	if _, err := New(Options{Source: src, Registerer: h.reg}); err != nil {
		t.Errorf("second gateway on one registry: %v", err)
	}
}
