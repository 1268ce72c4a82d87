package gateway

import (
	"bufio"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestUpstreamPolicyCheck(t *testing.T) {
	p, err := compilePolicy(UpstreamPolicy{Self: []string{"127.0.0.1:8080", "0.0.0.0:9090", "[::1]:7070"}})
	if err != nil {
		t.Fatal(err)
	}
	allowed, _ := compilePolicy(UpstreamPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Deny: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}})
	for _, c := range []struct {
		p    *policy
		addr string
		ok   bool
	}{
		{p, "169.254.169.254:80", false},
		{p, "[::ffff:169.254.169.254]:80", false},
		{p, "[fe80::1]:80", false},
		{p, "[fe80::1%lo]:80", false},
		{p, "[fd00:ec2::254]:80", false},
		{p, "[fd00:ec2::254%eth0]:80", false},
		{p, "100.100.100.200:80", false},
		{p, "[64:ff9b::a9fe:a9fe]:80", false},
		{p, "[::1%lo]:7070", false},
		{p, "0.0.0.0:22", false},
		{p, "[::]:22", false},
		{p, "127.0.0.1:8081", true},
		{p, "127.0.0.1:8080", false}, // the registry itself
		{p, "127.0.0.1:9090", false}, // listens on every address
		{p, "127.0.0.2:9090", false},
		{p, "[::1]:7070", false},
		{p, "[::1]:7071", true},
		{p, "10.1.2.3:80", true},
		{allowed, "10.1.2.3:80", true},
		{allowed, "10.9.2.3:80", false},
		{allowed, "127.0.0.1:80", false},
		{allowed, "169.254.169.254:80", false},
	} {
		err := c.p.check(netip.MustParseAddrPort(c.addr))
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want allowed %v", c.addr, err, c.ok)
		}
	}
}

// listenAll is a real upstream on every local address (0.0.0.0:port),
// counting its requests.
func listenAll(t *testing.T) (port string, hits *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("secret service"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, hits
}

// Upstreams the policy refuses answer 502 on every path, without a
// connection to them and without naming the address or the dial error.
func TestUpstreamPolicyOnEveryPath(t *testing.T) {
	port, hits := listenAll(t)
	var self string
	// Routes the write-time check refuses can still be in the store
	// (written before the rule, or by a registry with another policy).
	refused := map[string]string{
		"unspecified":   "http://0.0.0.0:" + port,
		"metadata":      "http://169.254.169.254",
		"metadata-name": "http://metadata.google.internal/",
		"alibaba":       "http://100.100.100.200/",
		"aws-v6":        "http://[fd00:ec2::254]/",
		"zoned":         "http://[fe80::1%25lo]:" + port,
		"numeric":       "http://2852039166/",
		"numeric-zero":  "http://0:" + port,
	}
	src := newMemSource()
	for name, up := range refused {
		src.put(endpointOf(name, rt("a", 1, up, 100)))
	}
	h := newLaneHarnessWith(t, src, LaneOptions{}, func(o *Options, addr string) {
		self = addr
		o.Upstreams.Self = []string{addr}
	})
	src.put(endpointOf("self", rt("a", 1, "http://"+self, 100)))
	src.put(endpointOf("self-by-name", rt("a", 1, "http://localhost:"+strings.TrimPrefix(self, "127.0.0.1:"), 100)))
	if err := h.gw.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range gatewayPaths {
		for _, ep := range append(slices.Sorted(maps.Keys(refused)), "self", "self-by-name") {
			t.Run(p.name+"/"+ep, func(t *testing.T) {
				res, body, _ := p.send(t, h, "/serve/"+ep+"/x", nil)
				if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "upstream policy") {
					t.Fatalf("status %d, want 502 naming the upstream policy: %s", res.StatusCode, body)
				}
				for _, leak := range []string{port, "0.0.0.0", "169.254", "metadata", self, "dial", "refused"} {
					if strings.Contains(body, leak) {
						t.Errorf("answer reveals %q: %s", leak, body)
					}
				}
			})
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the refused upstream got %d requests", n)
	}
}

// A dead upstream's 502 does not reveal its address or the dial error.
func TestBadGatewayRevealsNothing(t *testing.T) {
	dead := deadAddr(t)
	h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, "http://"+dead, 100))), LaneOptions{})
	_, port, _ := net.SplitHostPort(dead)
	for _, p := range gatewayPaths {
		t.Run(p.name, func(t *testing.T) {
			res, body, _ := p.send(t, h, "/serve/e/x", nil)
			if res.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			for _, leak := range []string{port, "127.0.0.1", "dial", "refused", "connect"} {
				if strings.Contains(body, leak) {
					t.Errorf("answer reveals %q: %s", leak, body)
				}
			}
		})
	}
}

// An endpoint that points back at its own gateway, by a way the policy
// does not recognise (no Self configured here), ends after maxHops hops
// with 508 Loop Detected.
func TestSelfLoopEndsWithLoopDetected(t *testing.T) {
	src := newMemSource()
	h := newLaneHarness(t, src, LaneOptions{})
	src.put(endpointOf("loop", rt("a", 1, "http://"+h.addr+"/serve/loop", 100)))
	if err := h.gw.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range gatewayPaths {
		t.Run(p.name, func(t *testing.T) {
			before := h.handled.Load()
			res, body, _ := p.send(t, h, "/serve/loop/x", nil)
			if res.StatusCode != http.StatusLoopDetected {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			if n := h.handled.Load() - before; n > maxHops+1 {
				t.Errorf("%d requests through net/http for one call", n)
			}
		})
	}
	t.Run("incoming hop count", func(t *testing.T) {
		for n := range maxHops + 2 {
			res, _, _ := gatewayPaths[0].send(t, h, "/serve/none/x", http.Header{hopHeader: {strconv.Itoa(n)}})
			want := http.StatusNotFound
			if n >= maxHops {
				want = http.StatusLoopDetected
			}
			if res.StatusCode != want {
				t.Errorf("%s: %d: status %d, want %d", hopHeader, n, res.StatusCode, want)
			}
		}
	})
}

// A route the policy refuses is answered before its request body is
// read; the body must not be taken for the next request on the
// connection (the connection is closed, or the body is skipped).
func TestRefusedRouteBodyIsNotARequest(t *testing.T) {
	up, _ := echoUpstream(t)
	h := newLaneHarness(t, newMemSource(
		endpointOf("e", rt("a", 1, up, 100)),
		endpointOf("refused", rt("a", 1, "http://metadata.google.internal/", 100)),
	), LaneOptions{})
	inner := "GET /serve/e/INBODY HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, framing := range []string{
		"Content-Length: " + strconv.Itoa(len(inner)) + "\r\n\r\n" + inner,
		"Transfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(inner)), 16) + "\r\n" + inner + "\r\n0\r\n\r\n",
	} {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		raw := "POST /serve/refused/x HTTP/1.1\r\nHost: x\r\n" + framing + "GET /serve/e/after HTTP/1.1\r\nHost: x\r\n\r\n"
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("refused route: status %d", res.StatusCode)
		}
		res, err = http.ReadResponse(br, nil)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			if strings.Contains(string(b), "INBODY") || !strings.Contains(string(b), "/after") {
				t.Errorf("the next answer on the connection is %d %s, want the echo of /after", res.StatusCode, b)
			}
		}
		c.Close()
	}
}
