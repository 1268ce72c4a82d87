package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// laneHarness serves a gateway through Lane with an http.Server that
// counts the requests net/http served (the ones handed over), so tests
// can tell which path answered.
type laneHarness struct {
	gw      *Gateway
	lane    *Lane
	addr    string
	handled atomic.Int64 // requests served by net/http
}

func newLaneHarness(t *testing.T, src Source, opts LaneOptions) *laneHarness {
	t.Helper()
	return newLaneHarnessWith(t, src, opts, nil)
}

// newLaneHarnessWith is newLaneHarness with gateway options changed by
// mod, which also learns the listen address.
func newLaneHarnessWith(t *testing.T, src Source, opts LaneOptions, mod func(o *Options, addr string)) *laneHarness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gopts := Options{
		Source:     src,
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if mod != nil {
		mod(&gopts, ln.Addr().String())
	}
	gw, err := New(gopts)
	if err != nil {
		t.Fatal(err)
	}
	h := &laneHarness{gw: gw, addr: ln.Addr().String()}
	h.lane = gw.Lane(Listener(ln), opts)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.handled.Add(1)
		w.Header().Set("X-Served-By", "net/http")
		gw.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(h.lane) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close() // what is still busy after the deadline
		}
		if err := h.lane.Shutdown(ctx); err != nil {
			t.Errorf("lane shutdown: %v", err)
		}
		gw.bg.Wait()
	})
	return h
}

func (h *laneHarness) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readResponse reads the next final answer (1xx answers are skipped).
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	for err == nil && res.StatusCode < 200 {
		res, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

func TestLaneServesGetsAndHandsOverTheRest(t *testing.T) {
	up := upstream(t, "a")
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 4, up.URL, 100))), LaneOptions{})
	c, br := h.dial(t)

	// 1. A plain GET: the lane answers.
	fmt.Fprintf(c, "GET /serve/e/predict?x=1 HTTP/1.1\r\nHost: gw\r\nX-Trace: t1\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if res.StatusCode != 200 || body != "a /predict?x=1" || res.Header.Get("X-Model-Version") != "4" || res.Header.Get("X-Route") != "a" {
		t.Fatalf("lane GET: %d %q %v", res.StatusCode, body, res.Header)
	}
	if res.Header.Get("X-Served-By") != "" || h.handled.Load() != 0 {
		t.Fatal("the lane's GET was served by net/http")
	}
	if res.Header.Get("Date") == "" {
		t.Error("lane response without Date")
	}

	// 2. A POST with a Content-Length body: the lane answers too.
	fmt.Fprintf(c, "POST /serve/e/predict HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello")
	res, body = readResponse(t, br, "POST")
	if res.StatusCode != 200 || body != "a /predict" || res.Header.Get("X-Served-By") != "" {
		t.Fatalf("lane POST: %d %q %v", res.StatusCode, body, res.Header)
	}

	// 2b. An OPTIONS on the same connection: handed to net/http, which
	// keeps the connection from then on.
	fmt.Fprintf(c, "OPTIONS /serve/e/predict HTTP/1.1\r\nHost: gw\r\n\r\n")
	res, body = readResponse(t, br, "OPTIONS")
	if res.StatusCode != 200 || body != "a /predict" || res.Header.Get("X-Served-By") != "net/http" {
		t.Fatalf("handed-over OPTIONS: %d %q %v", res.StatusCode, body, res.Header)
	}

	// 3. The next GET stays with net/http.
	fmt.Fprintf(c, "GET /serve/e/again HTTP/1.1\r\nHost: gw\r\n\r\n")
	res, body = readResponse(t, br, "GET")
	if res.StatusCode != 200 || body != "a /again" || res.Header.Get("X-Served-By") != "net/http" {
		t.Fatalf("GET after hand-over: %d %q %v", res.StatusCode, body, res.Header)
	}
	if n := h.handled.Load(); n != 2 {
		t.Fatalf("net/http served %d requests, want 2", n)
	}
}

func TestLanePipelinedRequests(t *testing.T) {
	up := upstream(t, "a")
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), LaneOptions{})
	c, br := h.dial(t)
	var reqs strings.Builder
	for i := range 5 {
		fmt.Fprintf(&reqs, "GET /serve/e/%d HTTP/1.1\r\nHost: gw\r\n\r\n", i)
	}
	reqs.WriteString("HEAD /serve/e/head HTTP/1.1\r\nHost: gw\r\n\r\n")
	if _, err := io.WriteString(c, reqs.String()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		res, body := readResponse(t, br, "GET")
		if want := fmt.Sprintf("a /%d", i); res.StatusCode != 200 || body != want {
			t.Fatalf("pipelined %d: %d %q, want %q", i, res.StatusCode, body, want)
		}
	}
	res, body := readResponse(t, br, "HEAD")
	if res.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", res.StatusCode, body)
	}
	if n := h.handled.Load(); n != 0 {
		t.Fatalf("net/http served %d of the pipelined requests", n)
	}
}

// Requests the lane must not answer itself reach net/http, which applies
// its own rules (400s, path cleaning, HTTP/1.0 semantics, 100-continue).
func TestLaneHandsOverWhatItDoesNotServe(t *testing.T) {
	up := upstream(t, "a")
	cases := []struct {
		name, req  string
		wantStatus int
	}{
		{"http/1.0", "GET /serve/e/x HTTP/1.0\r\nHost: gw\r\n\r\n", 200},
		{"dot segments", "GET /serve/e/../e/x HTTP/1.1\r\nHost: gw\r\n\r\n", 400}, // refused by the gateway
		{"double slash", "GET /serve/e//x HTTP/1.1\r\nHost: gw\r\n\r\n", 200},
		{"no host", "GET /serve/e/x HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
		{"two hosts", "GET /serve/e/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"space before colon", "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nX-A : b\r\n\r\n", 400},
		{"control byte in value", "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nX-A: b\x01c\r\n\r\n", 400},
		{"obs-fold", "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nX-A: b\r\n c\r\n\r\n", 400}, // net/http would fold it; the lane refuses
		{"connection close", "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 200},
		{"expect", "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n\r\n", 200},
		{"not /serve/", "GET /api/v1/models HTTP/1.1\r\nHost: gw\r\n\r\n", 404},
		{"options", "OPTIONS /serve/e/x HTTP/1.1\r\nHost: gw\r\n\r\n", 200},
		// Request bodies: the lane takes one Content-Length of plain
		// digits; any other framing is net/http's to accept or refuse
		// (the smuggling cases: CL.TE, TE.CL, TE obfuscation, repeated
		// and malformed lengths, 100-continue).
		{"chunked upload", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200},
		// net/http would read both as chunked (and drop the
		// Content-Length); the lane refuses every head with both.
		{"CL.TE", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE.CL", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"TE obfuscated", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello", 400},
		{"TE identity", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"TE obfuscated alone", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: xchunked\r\n\r\nhello", 501},
		{"CL twice equal", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 200},
		{"CL twice differing", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"CL list", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5, 5\r\n\r\nhello", 400},
		{"CL sign", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: +5\r\n\r\nhello", 400},
		{"CL hex", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0x5\r\n\r\nhello", 400},
		{"CL huge", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 99999999999999999999\r\n\r\nhello", 400},
		{"expect 100-continue", "POST /serve/e/x HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", 200},
		{"body on HTTP/1.0", "POST /serve/e/x HTTP/1.0\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello", 200},
		{"other method", "PROPFIND /serve/e/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), LaneOptions{})
			c, br := h.dial(t)
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			method, _, _ := strings.Cut(tc.req, " ")
			res, body := readResponse(t, br, method)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.wantStatus, body)
			}
			// net/http's own 400s and 501s never reach the handler (and
			// carry no route); everything else did, so nothing was
			// answered by the lane.
			if res.StatusCode >= 400 && res.Header.Get("X-Route") == "" {
				return
			}
			if h.handled.Load() != 1 {
				t.Fatalf("net/http served %d requests, want 1 (lane answered: %v)", h.handled.Load(), res.Header)
			}
		})
	}
}

// A head that arrives in pieces is net/http's to read (with its header
// timeout), not the lane's.
func TestLanePartialHeadHandedOver(t *testing.T) {
	up := upstream(t, "a")
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), LaneOptions{})
	c, br := h.dial(t)
	io.WriteString(c, "GET /serve/e/slow HTTP/1.1\r\nHo")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "st: gw\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if res.StatusCode != 200 || body != "a /slow" || h.handled.Load() != 1 {
		t.Fatalf("%d %q, net/http served %d", res.StatusCode, body, h.handled.Load())
	}
}

func TestLaneAuthorizeRefusalGoesToNetHTTP(t *testing.T) {
	up := upstream(t, "a")
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), LaneOptions{
		Authorize:       func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer good" },
		Header:          http.Header{"X-Content-Type-Options": {"nosniff"}},
		RequestIDHeader: "X-Request-ID",
	})
	c, br := h.dial(t)
	fmt.Fprintf(c, "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer good\r\nX-Request-ID: abc-1\r\n\r\n")
	res, _ := readResponse(t, br, "GET")
	if res.StatusCode != 200 || h.handled.Load() != 0 {
		t.Fatalf("authorised GET: %d, net/http served %d", res.StatusCode, h.handled.Load())
	}
	if res.Header.Get("X-Request-ID") != "abc-1" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("lane headers: %v", res.Header)
	}
	fmt.Fprintf(c, "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	readResponse(t, br, "GET")
	if h.handled.Load() != 1 {
		t.Fatal("a refused request was not handed to net/http")
	}

	// Generated request IDs differ.
	c2, br2 := h.dial(t)
	ids := map[string]bool{}
	for range 3 {
		fmt.Fprintf(c2, "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer good\r\n\r\n")
		res, _ := readResponse(t, br2, "GET")
		ids[res.Header.Get("X-Request-ID")] = true
	}
	if len(ids) != 3 || ids[""] {
		t.Fatalf("generated request IDs: %v", ids)
	}
}

// An upstream that answers in chunks with a trailer: the lane frames the
// answer chunked and passes the trailer on.
func TestLaneChunkedAnswerAndTrailer(t *testing.T) {
	up := upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(200)
		for i := range 3 {
			fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Checksum", "abc")
	})
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	c, br := h.dial(t)
	fmt.Fprintf(c, "GET /serve/e/stream HTTP/1.1\r\nHost: gw\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if body != "part0;part1;part2;" || len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
		t.Fatalf("body %q, transfer encoding %v", body, res.TransferEncoding)
	}
	if res.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("trailer %v", res.Trailer)
	}
	if h.handled.Load() != 0 {
		t.Fatal("served by net/http")
	}
	// The connection is still good.
	fmt.Fprintf(c, "GET /serve/e/again HTTP/1.1\r\nHost: gw\r\n\r\n")
	if res, _ := readResponse(t, br, "GET"); res.StatusCode != 200 {
		t.Fatalf("next request: %d", res.StatusCode)
	}
}

// Gateway errors on the lane are the same problem+json answers.
func TestLaneProblemAnswers(t *testing.T) {
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, "http://"+deadAddr(t), 100))), LaneOptions{})
	c, br := h.dial(t)
	fmt.Fprintf(c, "GET /serve/missing/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if res.StatusCode != 404 || !strings.Contains(body, `"code":"not_found"`) || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("unknown endpoint: %d %q %v", res.StatusCode, body, res.Header)
	}
	fmt.Fprintf(c, "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	res, body = readResponse(t, br, "GET")
	if res.StatusCode != 502 || !strings.Contains(body, "upstream unreachable") {
		t.Fatalf("dead upstream: %d %q", res.StatusCode, body)
	}
	if h.handled.Load() != 0 {
		t.Fatal("served by net/http")
	}
}

func TestLaneShutdownClosesIdleConnections(t *testing.T) {
	up := upstream(t, "a")
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), LaneOptions{})
	c, br := h.dial(t)
	fmt.Fprintf(c, "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	readResponse(t, br, "GET")
	// The connection now sits idle in the lane.
	if err := h.lane.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.lane.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with only an idle connection", d)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after shutdown: read gave %v, want EOF", err)
	}
}

func TestLaneIdleTimeout(t *testing.T) {
	up := upstream(t, "a")
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), LaneOptions{IdleTimeout: 1500 * time.Millisecond})
	c, br := h.dial(t)
	fmt.Fprintf(c, "GET /serve/e/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	readResponse(t, br, "GET")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read gave %v, want EOF after the idle timeout", err)
	}
}

func upstreamFunc(t *testing.T, f http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}
