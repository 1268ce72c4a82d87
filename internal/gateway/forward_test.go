package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestForwardingSameOnEveryPath is the differential test of the one set
// of forwarding rules (forwardHeaders): the same request goes through
// every path of gatewayPaths (the lane and net/http, each with the lean
// client and with http.Transport, bodies of every framing, the upgrade
// path), and what the upstream receives (headers, method, target, body),
// and what the client gets back, must be the same on every path (issue 9
// item 8).
func TestForwardingSameOnEveryPath(t *testing.T) {
	up, _ := echoUpstream(t)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 7, up, 100))), LaneOptions{RequestIDHeader: "X-Request-ID"})
	token, _, err := registry.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, c := range []struct {
		name string
		hdr  http.Header
		// id: the X-Request-ID both sides must see ("" : a generated one).
		id string
	}{
		{name: "plain"},
		{name: "client request id", hdr: http.Header{"X-Request-Id": {"req-42"}}, id: "req-42"},
		{name: "invalid request id", hdr: http.Header{"X-Request-Id": {"bad id with spaces and a very long tail xxxxxxxxxx"}}},
		{name: "everything a proxy rewrites", hdr: http.Header{
			"Authorization":     {"Bearer " + token, "Bearer model-secret"},
			"X-Custom":          {"drop me"},
			"X-Keep":            {"keep me"},
			"Keep-Alive":        {"timeout=5"},
			"Proxy-Connection":  {"keep-alive"},
			"Te":                {"trailers"},
			"X-Forwarded-For":   {"203.0.113.9"},
			"X-Forwarded-Proto": {"https"},
			"X-Forwarded-Host":  {"spoofed.example"},
			"Forwarded":         {"for=198.51.100.1"},
			"X-Model-Version":   {"999"},
			"X-Route":           {"spoofed"},
			"X-Mlregistry-Hops": {"1"},
			"Cookie":            {"theme=dark; " + registry.SessionCookie + "=s3cret"},
		}},
	} {
		var first map[string][]string
		var firstPath string
		for _, p := range gatewayPaths {
			hdr := c.hdr.Clone()
			if hdr == nil {
				hdr = http.Header{}
			}
			if c.name == "everything a proxy rewrites" {
				// Connection lists X-Custom (and Upgrade on that path).
				conn := "X-Custom"
				if p.name == "upgrade" {
					conn = "Upgrade, X-Custom"
				}
				hdr["Connection"] = []string{conn}
				if !p.viaNetHTTP {
					// The lane hands a Connection header naming more than
					// keep-alive to net/http; it sends X-Custom nowhere.
					delete(hdr, "Connection")
					delete(hdr, "X-Custom")
				}
			}
			res, body, e := p.send(t, h, "/serve/e/predict?q=1", hdr)
			if res.StatusCode != http.StatusOK || e == nil {
				t.Fatalf("%s via %s: %d %s", c.name, p.name, res.StatusCode, body)
			}
			got := e.Header
			// What legitimately differs by path: framing, the upgrade
			// request's own hop-by-hop pair.
			for _, k := range []string{"Content-Length", "Connection", "Upgrade"} {
				delete(got, k)
			}
			id := got["X-Request-Id"]
			if len(id) != 1 || (c.id != "" && id[0] != c.id) || (c.id == "" && !hexID.MatchString(id[0])) {
				t.Errorf("%s via %s: upstream X-Request-Id %q, want %q (or 32 hex digits)", c.name, p.name, id, c.id)
			} else if cid := res.Header.Get("X-Request-Id"); cid != id[0] {
				t.Errorf("%s via %s: client got X-Request-Id %q, upstream %q", c.name, p.name, cid, id[0])
			}
			delete(got, "X-Request-Id") // generated ones differ per request
			if v, r := res.Header.Get("X-Model-Version"), res.Header.Get("X-Route"); v != "7" || r != "a" {
				t.Errorf("%s via %s: client got X-Model-Version %q, X-Route %q", c.name, p.name, v, r)
			}
			if e.URI != "/predict?q=1" || e.Method != p.method {
				t.Errorf("%s via %s: upstream got %s %q", c.name, p.name, e.Method, e.URI)
			}
			if e.Body != p.body {
				t.Errorf("%s via %s: upstream body of %d bytes, sent %d", c.name, p.name, len(e.Body), len(p.body))
			}
			want := map[string][]string{
				"X-Model-Version":   {"7"},
				"X-Route":           {"a"},
				"X-Forwarded-Proto": {"http"},
				"X-Forwarded-Host":  {h.addr},
				"X-Mlregistry-Hops": {"1"},
				"X-Forwarded-For":   {"127.0.0.1"},
			}
			if c.name == "everything a proxy rewrites" {
				want["X-Forwarded-For"] = []string{"203.0.113.9, 127.0.0.1"}
				want["X-Mlregistry-Hops"] = []string{"2"}
				want["Authorization"] = []string{"Bearer model-secret"}
				want["X-Keep"] = []string{"keep me"}
				want["Te"] = []string{"trailers"}
				want["Cookie"] = []string{"theme=dark"}
			}
			for k, vv := range want {
				if !slices.Equal(got[k], vv) {
					t.Errorf("%s via %s: upstream %s = %q, want %q", c.name, p.name, k, got[k], vv)
				}
			}
			for _, k := range []string{"X-Custom", "Keep-Alive", "Proxy-Connection", "Forwarded"} {
				if vv, ok := got[k]; ok {
					t.Errorf("%s via %s: upstream received %s: %q", c.name, p.name, k, vv)
				}
			}
			if first == nil {
				first, firstPath = got, p.name
				continue
			}
			if a, b := headerLines(first), headerLines(got); !slices.Equal(a, b) {
				t.Errorf("%s: upstream headers differ between %s and %s:\n%s\n%s", c.name, firstPath, p.name, strings.Join(a, "\n"), strings.Join(b, "\n"))
			}
		}
	}
}

func headerLines(h map[string][]string) []string {
	var out []string
	for k, vv := range h {
		out = append(out, k+": "+strings.Join(vv, " | "))
	}
	slices.Sort(out)
	return out
}

// earlyUpstream is a model server that answers each request as soon as
// its head arrived, without reading a body, and then reads on from where
// it stopped, as Python's http.server does with a handler that ignores
// the body: the body's bytes are taken for the next request. Its answers
// echo the request target. It reports on events every target it answered,
// "BAD" for a line it could not read as a request, and "EOF" when a
// connection ends; after answering a request that announced a body it
// waits on proceed before it reads on.
func earlyUpstream(t *testing.T) (url string, proceed chan struct{}, events chan string) {
	t.Helper()
	proceed = make(chan struct{}, 16)
	events = make(chan string, 64)
	url = rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		defer func() { events <- "EOF" }()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			hasBody := false
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == "\r\n" {
					break
				}
				name, _, _ := strings.Cut(strings.ToLower(l), ":")
				hasBody = hasBody || name == "content-length" || name == "transfer-encoding"
			}
			method, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			target, proto, _ := strings.Cut(rest, " ")
			if method == "" || proto != "HTTP/1.1" {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				events <- "BAD"
				return
			}
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(target), target); err != nil {
				return
			}
			events <- target
			if hasBody {
				select {
				case <-proceed:
				case <-time.After(10 * time.Second):
					return
				}
			}
		}
	})
	return url, proceed, events
}

// smuggledBody is a request body of size bytes that is itself a complete
// GET request for target (padded in a header).
func smuggledBody(target string, size int) string {
	head := "GET " + target + " HTTP/1.1\r\nHost: x\r\nX-Pad: "
	return head + strings.Repeat("p", size-len(head)-4) + "\r\n\r\n"
}

// TestEarlyAnswerNeverReachesAnotherClient: client A's body holds a
// request of its own; the upstream answers A before reading that body
// and then answers the request in it. Client B, next on the same
// gateway, must get the answer to its own request on every path.
func TestEarlyAnswerNeverReachesAnotherClient(t *testing.T) {
	for _, p := range gatewayPaths {
		if p.name == "upgrade" {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			up, proceed, events := earlyUpstream(t)
			h := newLaneHarness(t, newMemSource(endpointOf("e1", rt("a", 1, up, 100))), LaneOptions{})
			size := 200
			if len(p.body) > h1.MaxBody {
				size = len(p.body) // the streamed (Transport) body
			}
			a := p
			a.body = smuggledBody("/serve/e1/INBODY-EVIL", size)
			res, body, _ := a.send(t, h, "/serve/e1/early", nil)
			if res.StatusCode != http.StatusOK || body != "/early" {
				t.Fatalf("client A: %d %q", res.StatusCode, body)
			}
			waitEvent(t, events, "/early")
			// Only now does the upstream read A's body as a request and
			// answer it, on the connection the gateway holds (or closed).
			proceed <- struct{}{}
			waitEvent(t, events, "/serve/e1/INBODY-EVIL", "BAD", "EOF")
			for i := range 3 {
				want := fmt.Sprintf("/client-B-%d", i)
				b := gatewayPath{name: "lane", method: http.MethodGet}
				res, body, _ := b.send(t, h, "/serve/e1"+want, nil)
				if res.StatusCode != http.StatusOK || body != want {
					t.Fatalf("client B's GET %s got %d %q: another client's answer", want, res.StatusCode, body)
				}
			}
		})
	}
}

// waitEvent waits for one of want on events, skipping others.
func waitEvent(t *testing.T, events <-chan string, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-events:
			if slices.Contains(want, got) {
				return
			}
		case <-deadline:
			t.Fatalf("upstream never reported %q", want)
		}
	}
}
