package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The tests in this file cover request bodies on the lane: Content-Length
// bodies the lean client carries whole (up to h1.MaxBody), larger ones
// streamed through http.Transport, chunked uploads (handed to net/http),
// clients that stop halfway, pipelining and 100-continue.

// digestUpstream answers every request with its method, the
// Content-Length and Transfer-Encoding it saw, the body's length and its
// SHA-256; started (when not nil) is signalled on the first body byte.
func digestUpstream(t *testing.T, started chan<- struct{}) (url string, bodyErrs *atomic.Int64) {
	t.Helper()
	bodyErrs = new(atomic.Int64)
	url = upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		var first [1]byte
		n, err := io.ReadFull(r.Body, first[:])
		if n == 1 {
			if started != nil {
				started <- struct{}{}
			}
			h.Write(first[:])
			var m int64
			m, err = io.Copy(h, r.Body)
			n += int(m)
		} else if err == io.EOF {
			err = nil
		}
		if err != nil {
			bodyErrs.Add(1)
			return
		}
		fmt.Fprintf(w, "%s cl=%s te=%v n=%d sha=%s", r.Method, r.Header.Get("Content-Length"), r.TransferEncoding, n, hex.EncodeToString(h.Sum(nil)))
	})
	return url, bodyErrs
}

func digestOf(method string, body string, te string) string {
	sum := sha256.Sum256([]byte(body))
	cl := strconv.Itoa(len(body))
	tes := "[]"
	if te != "" {
		cl, tes = "", "["+te+"]"
	}
	return fmt.Sprintf("%s cl=%s te=%s n=%d sha=%s", method, cl, tes, len(body), hex.EncodeToString(sum[:]))
}

// TestLaneBodies: POSTs with a Content-Length body of every size class go
// through the lane and reach the upstream byte for byte, with the same
// framing: small, a request ending exactly at the lane's read buffer,
// exactly h1.MaxBody (the lean client's largest), one byte more (the
// Transport), 1 MB.
func TestLaneBodies(t *testing.T) {
	up, _ := digestUpstream(t, nil)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	c, br := h.dial(t)
	head := func(n int) string {
		return fmt.Sprintf("POST /serve/e/p HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n", n)
	}
	atBoundary := h1.ServerBufferSize - len(head(h1.ServerBufferSize))
	for _, n := range []int{7, atBoundary, atBoundary + 1, h1.MaxBody, h1.MaxBody + 1, 1 << 20} {
		body := strings.Repeat(string(rune('a'+n%26)), n)
		if _, err := io.WriteString(c, head(n)+body); err != nil {
			t.Fatal(err)
		}
		res, got := readResponse(t, br, "POST")
		if res.StatusCode != 200 || got != digestOf("POST", body, "") {
			t.Fatalf("%d-byte body: %d %q", n, res.StatusCode, got)
		}
		if res.Header.Get("X-Served-By") != "" {
			t.Fatalf("%d-byte body: served by net/http", n)
		}
	}
	if n := h.handled.Load(); n != 0 {
		t.Fatalf("net/http served %d requests", n)
	}
}

// TestLaneStreamsLargeBodies: a body too large for the lean client, and
// a chunked upload, reach the upstream while the client is still sending
// (nothing buffers them whole).
func TestLaneStreamsLargeBodies(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			started := make(chan struct{}, 1)
			up, _ := digestUpstream(t, started)
			h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
			c, br := h.dial(t)
			part := strings.Repeat("x", 512<<10)
			if chunked {
				fmt.Fprintf(c, "POST /serve/e/p HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(part), part)
			} else {
				fmt.Fprintf(c, "POST /serve/e/p HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s", 2*len(part), part)
			}
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream saw nothing of the body while its first half was sent: the gateway buffers it")
			}
			if chunked {
				fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(part), part)
			} else {
				_, _ = io.WriteString(c, part)
			}
			te := ""
			if chunked {
				te = "chunked"
			}
			res, got := readResponse(t, br, "POST")
			if res.StatusCode != 200 || got != digestOf("POST", part+part, te) {
				t.Fatalf("%d %q", res.StatusCode, got)
			}
			if viaNetHTTP := res.Header.Get("X-Served-By") != ""; viaNetHTTP != chunked {
				t.Fatalf("served by net/http: %v", viaNetHTTP)
			}
		})
	}
}

// TestLaneStalledBody: a client that sends part of its body and stops
// loses its connection after ReadTimeout; a small body never reaches the
// upstream, a large one's upstream request ends within a second after.
func TestLaneStalledBody(t *testing.T) {
	for _, c := range []struct {
		name       string
		length     int
		sent       int
		reachesUp  bool
		readTimout time.Duration
	}{
		{"small body (lean client)", 1000, 10, false, 300 * time.Millisecond},
		{"large body (Transport)", 1 << 20, 200 << 10, true, 300 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			up, bodyErrs := digestUpstream(t, started)
			h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{ReadTimeout: c.readTimout})
			conn, br := h.dial(t)
			fmt.Fprintf(conn, "POST /serve/e/p HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s", c.length, strings.Repeat("y", c.sent))
			if c.reachesUp {
				select {
				case <-started:
				case <-time.After(5 * time.Second):
					t.Fatal("the body never reached the upstream")
				}
			}
			begin := time.Now()
			// The gateway may answer 400 before it closes; then EOF.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, br)
			if waited := time.Since(begin); waited > c.readTimout+time.Second {
				t.Fatalf("connection closed after %v, ReadTimeout is %v", waited, c.readTimout)
			}
			if c.reachesUp {
				if !within(time.Second, func() bool { return bodyErrs.Load() == 1 }) {
					t.Fatal("the upstream request did not end within a second of the client's connection")
				}
			} else if len(started) != 0 {
				t.Fatal("a body that never arrived whole reached the upstream")
			}
			if !within(time.Second, func() bool { return h.laneConns() == 0 }) {
				t.Fatalf("%d lane connections still open", h.laneConns())
			}
		})
	}
}

// TestLanePipelinedPosts: POSTs sent back to back in one write are
// answered in order, each with its own body.
func TestLanePipelinedPosts(t *testing.T) {
	up, _ := digestUpstream(t, nil)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	c, br := h.dial(t)
	// The 70 KB body goes through http.Transport, which reads with its
	// own buffer size: it must not take the next request's bytes.
	bodies := []string{`{"a":1}`, strings.Repeat("d", 70<<10), strings.Repeat("b", 3000), "", `{"c":3}`}
	var all strings.Builder
	for _, b := range bodies {
		fmt.Fprintf(&all, "PUT /serve/e/p HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	}
	if _, err := io.WriteString(c, all.String()); err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		res, got := readResponse(t, br, "PUT")
		if res.StatusCode != 200 || got != digestOf("PUT", b, "") {
			t.Fatalf("answer %d: %d %q", i, res.StatusCode, got)
		}
	}
	if n := h.handled.Load(); n != 0 {
		t.Fatalf("net/http served %d requests", n)
	}
}

// TestExpectContinue: a client that waits for 100 Continue before its
// body gets it (net/http answers these), then its answer.
func TestExpectContinue(t *testing.T) {
	up, _ := digestUpstream(t, nil)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	c, br := h.dial(t)
	fmt.Fprintf(c, "POST /serve/e/p HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want 100 Continue before the body", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "hello")
	res, got := readResponse(t, br, "POST")
	if res.StatusCode != 200 || got != digestOf("POST", "hello", "") {
		t.Fatalf("%d %q", res.StatusCode, got)
	}
}

// TestPostOutcomesCount: POSTs served by the lane count in the gateway's
// metrics and in the guard's window like GETs: failing ones trip the
// guard.
func TestPostOutcomesCount(t *testing.T) {
	src := newMemSource(guarded("g", registry.Guard{MaxErrorRate: 0.05, MinRequests: 10, Window: "5m"},
		rt("stable", 1, upstream(t, "stable").URL, 50),
		rt("canary", 2, statusUpstream(t, 500).URL, 50),
	))
	h := newLaneHarness(t, src, LaneOptions{})
	c, br := h.dial(t)
	counts := map[string]int{}
	for range 60 {
		fmt.Fprintf(c, "POST /serve/g/p HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc")
		res, _ := readResponse(t, br, "POST")
		counts[res.Header.Get("X-Route")+" "+strconv.Itoa(res.StatusCode)]++
	}
	if h.handled.Load() != 0 {
		t.Fatal("net/http served some of the POSTs")
	}
	if counts["canary 500"] != 10 {
		t.Errorf("canary answered %d POSTs before the guard moved its weight, want 10 (%v)", counts["canary 500"], counts)
	}
	m := h.gw.metrics
	if got := counterValue(t, m.requests.WithLabelValues("g", "stable", "1", "2xx")); int(got) != counts["stable 200"] {
		t.Errorf("requests{stable,2xx} = %v, want %d", got, counts["stable 200"])
	}
	if got := counterValue(t, m.requests.WithLabelValues("g", "canary", "2", "5xx")); int(got) != counts["canary 500"] {
		t.Errorf("requests{canary,5xx} = %v, want %d", got, counts["canary 500"])
	}
	if got := counterValue(t, m.rollbacks.WithLabelValues("g", "canary")); got != 1 {
		t.Errorf("guard_rollbacks_total{canary} = %v, want 1", got)
	}
}
