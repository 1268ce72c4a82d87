package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The tests in this file hold the rule that no client can change what
// another client gets or what the guard does: an upstream connection is
// reused only after a clean exchange, a client's own framing errors are
// answered to that client and never count against a route, and request
// heads that two HTTP implementations could frame differently are
// refused.

// rawExchange writes raw on a fresh connection to addr and reads the
// answers until the gateway closes the connection or n answers arrived.
func rawExchange(t *testing.T, addr, raw string, n int) (statuses []int, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for len(statuses) < n {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("no answer and no close after %d answers to %q", len(statuses), raw)
			}
			return statuses, bodies, true
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		statuses = append(statuses, res.StatusCode)
		bodies = append(bodies, string(b))
		if res.Close {
			_, err := br.ReadByte()
			return statuses, bodies, err != nil
		}
	}
	return statuses, bodies, false
}

// TestClientFramingErrorsAreTheClients: a body that breaks its own
// framing is answered 400 to its sender, never reaches the guard as an
// upstream failure, and so can never roll a route back.
func TestClientFramingErrorsAreTheClients(t *testing.T) {
	cases := []struct {
		name string
		raw  string // after the request line and Host
		// cut: the client stops sending (half-closes) inside its body,
		// which servers take for a client gone: no answer is required,
		// but never a 5xx, and never a count against the route.
		cut bool
	}{
		{name: "chunk size not hex", raw: "Transfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{name: "chunk size overflow", raw: "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n"},
		{name: "chunk data longer than its size", raw: "Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"},
		{name: "chunk without CRLF after data", raw: "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"},
		{name: "chunked body cut short", raw: "Transfer-Encoding: chunked\r\n\r\n10\r\nabc", cut: true},
		{name: "streamed body cut short", raw: "Content-Length: " + fmt.Sprint(h1.MaxBody+100) + "\r\n\r\n" + strings.Repeat("x", h1.MaxBody+10), cut: true},
		{name: "lean body cut short", raw: "Content-Length: 300\r\n\r\n" + strings.Repeat("x", 10), cut: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The head of a streamed body reaches the upstream before the
			// body is known to be broken; its read then fails there too.
			up, _ := echoUpstream(t)
			src := newMemSource(guarded("g", registry.Guard{MaxErrorRate: 0.05, MinRequests: 5, Window: "5m"},
				rt("stable", 1, up, 50), rt("canary", 2, up, 50)))
			h := newLaneHarness(t, src, LaneOptions{})
			for range 15 {
				raw := "POST /serve/g/predict HTTP/1.1\r\nHost: x\r\n" + c.raw
				conn, err := net.Dial("tcp", h.addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(conn, raw); err != nil {
					t.Fatal(err)
				}
				if c.cut {
					_ = conn.(*net.TCPConn).CloseWrite()
				}
				res, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					if c.cut {
						conn.Close()
						continue
					}
					t.Fatalf("no answer: %v", err)
				}
				b, _ := io.ReadAll(res.Body)
				conn.Close()
				if c.cut && res.StatusCode < 500 {
					continue
				}
				if res.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d %q, want 400: the client's own framing error", res.StatusCode, b)
				}
				if !strings.Contains(string(b), `"code":"invalid_argument"`) || !strings.Contains(string(b), "body") {
					t.Fatalf("answer %q does not say the request body was at fault", b)
				}
			}
			if calls := src.rollbackCalls(); len(calls) != 0 {
				t.Fatalf("client framing errors rolled a route back: %+v", calls)
			}
			if calls := src.degradedCalls(); len(calls) != 0 {
				t.Fatalf("client framing errors marked the endpoint degraded: %+v", calls)
			}
			var client float64
			for i, name := range []string{"stable", "canary"} {
				v := strconv.Itoa(i + 1)
				if n := counterValue(t, h.gw.metrics.upErrors.WithLabelValues("g", name, v)); n != 0 {
					t.Errorf("route %s counted %v upstream errors for client framing errors", name, n)
				}
				for _, class := range []string{"5xx", "transport"} {
					if n := counterValue(t, h.gw.metrics.requests.WithLabelValues("g", name, v, class)); n != 0 {
						t.Errorf("route %s counted %v requests as %s for client framing errors", name, n, class)
					}
				}
				client += counterValue(t, h.gw.metrics.requests.WithLabelValues("g", name, v, "client"))
			}
			// Each request is counted once, as the client's.
			if !c.cut && client != 15 {
				t.Errorf("%v requests counted as client faults, want 15", client)
			}
		})
	}
}

// TestRiskyRequestFramingRefused: a request head that another HTTP
// implementation in front of or behind the gateway could frame
// differently (both Transfer-Encoding and Content-Length, an obs-folded
// line, a line that ends in a bare LF) is refused with 400 and the
// connection closed, so the request pipelined after it is never served.
// On a connection net/http serves, where the gateway sees the request
// only parsed, a Transfer-Encoding request's connection closes after
// its answer.
func TestRiskyRequestFramingRefused(t *testing.T) {
	up, hits := echoUpstream(t)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
	next := "GET /serve/e/next HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name string
		raw  string
	}{
		{"TE and CL", "POST /serve/e/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"CL and TE", "POST /serve/e/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"TE and CL on the API", "POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"obs-folded TE", "POST /serve/e/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
		{"obs-folded line", "GET /serve/e/x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n"},
		{"bare LF head", "GET /serve/e/x HTTP/1.1\nHost: x\n\n"},
		{"bare LF in one line", "GET /serve/e/x HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n"},
		{"bare LF ends the head", "GET /serve/e/x HTTP/1.1\r\nHost: x\r\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := hits.Load()
			statuses, _, closed := rawExchange(t, h.addr, c.raw+next, 2)
			if len(statuses) != 1 || statuses[0] != http.StatusBadRequest || !closed {
				t.Fatalf("answers %v, closed %v: want one 400 and the connection closed", statuses, closed)
			}
			if n := hits.Load() - before; n != 0 {
				t.Fatalf("%d requests reached the upstream", n)
			}
		})
	}
	t.Run("TE on a net/http connection", func(t *testing.T) {
		before := hits.Load()
		// An OPTIONS makes the lane hand the connection to net/http,
		// which reads the next heads itself.
		first := "OPTIONS /serve/e/x HTTP/1.1\r\nHost: x\r\n\r\n"
		te := "POST /serve/e/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		statuses, _, closed := rawExchange(t, h.addr, first+te+next, 3)
		if len(statuses) != 2 || statuses[0] != http.StatusOK || !closed {
			t.Fatalf("answers %v, closed %v: want two answers and the connection closed", statuses, closed)
		}
		if n := hits.Load() - before; n > 2 {
			t.Fatalf("the request pipelined after a Transfer-Encoding one was served (%d upstream requests)", n)
		}
	})
}
