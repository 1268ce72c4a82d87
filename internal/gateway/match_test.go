package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestHeaderMatchRouting: requests carrying a route's match header go to
// that route whatever the weights (here 0) and whatever the sticky header
// says, on both serving paths (a GET takes the fast lane, a POST net/http);
// the others are split by weight, so the weight-0 route gets none of them.
func TestHeaderMatchRouting(t *testing.T) {
	stable := rt("stable", 1, upstream(t, "stable").URL, 100)
	canary := rt("canary", 2, upstream(t, "canary").URL, 0)
	canary.Match = &registry.RouteMatch{Header: "x-canary", Value: "always"}
	beta := rt("beta", 3, upstream(t, "beta").URL, 0)
	beta.Match = &registry.RouteMatch{Header: "X-Tester", Value: "team-", Prefix: true}
	// A second route matching the same requests as canary: route order
	// decides, so it never gets them.
	shadowed := rt("shadowed", 3, upstream(t, "shadowed").URL, 0)
	shadowed.Match = &registry.RouteMatch{Header: "X-Canary", Value: "always"}
	e := endpointOf("e", stable, canary, beta, shadowed)
	e.StickyHeader = "X-User"
	h := newHarness(t, newMemSource(e), nil)
	c := client(t)
	url := h.srv.URL + "/serve/e/"

	send := func(method string, hdr ...string) string {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"x":1}`)
		}
		req, err := http.NewRequest(method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s with %q: status %d", method, hdr, res.StatusCode)
		}
		return res.Header.Get("X-Route")
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, c := range []struct {
			hdr  []string
			want string
		}{
			{[]string{"X-Canary", "always"}, "canary"},
			{[]string{"X-Canary", "always", "X-User", "u1"}, "canary"},
			{[]string{"X-Canary", "other", "X-Canary", "always"}, "canary"},
			{[]string{"X-Tester", "team-search"}, "beta"},
			{[]string{"X-Tester", "team-"}, "beta"},
			{[]string{"X-Canary", "Always"}, "stable"},
			{[]string{"X-Canary", "always-not"}, "stable"},
			{[]string{"X-Tester", "tea"}, "stable"},
			{[]string{"X-User", "u1"}, "stable"},
			{nil, "stable"},
		} {
			for range 50 {
				if got := send(method, c.hdr...); got != c.want {
					t.Fatalf("%s with %q went to %q, want %q", method, c.hdr, got, c.want)
				}
			}
		}
	}
}

// TestGuardRemovesFailingMatch: a matched route at weight 0 that fails the
// guard loses its match (there is no weight to move), so matched requests
// go by weight from then on; the rollback is stored like any other.
func TestGuardRemovesFailingMatch(t *testing.T) {
	canary := rt("canary", 7, statusUpstream(t, 500).URL, 0)
	canary.Match = &registry.RouteMatch{Header: "X-Canary", Value: "always"}
	src := newMemSource(guarded("churn", registry.Guard{MaxErrorRate: 0.05, MinRequests: 20, Window: "5m"},
		rt("stable", 6, upstream(t, "stable").URL, 100), canary))
	clk := newFakeClock()
	h := newHarness(t, src, func(o *Options) { o.Now = clk.Now })
	c := client(t)

	for range 20 {
		res, _ := get(t, c, h.srv.URL+"/serve/churn/", "X-Canary", "always")
		if res.Header.Get("X-Route") != "canary" || res.StatusCode != 500 {
			t.Fatalf("matched request: route %q status %d", res.Header.Get("X-Route"), res.StatusCode)
		}
	}
	for range 100 {
		if res, _ := get(t, c, h.srv.URL+"/serve/churn/", "X-Canary", "always"); res.Header.Get("X-Route") != "stable" {
			t.Fatal("matched request routed to the rolled-back canary")
		}
	}
	waitFor(t, "the rollback to be stored", func() bool { return src.get("churn").Status == registry.EndpointStatusRolledBack })
	calls := src.rollbackCalls()
	if len(calls) != 1 {
		t.Fatalf("%d RecordGuardRollback calls, want 1", len(calls))
	}
	if r := calls[0].routes; len(r) != 2 || r[0].Weight != 100 || r[1].Weight != 0 || r[1].Match != nil {
		t.Errorf("routes %+v", r)
	}
	const msg = "route canary: error rate 1.00 over 20 requests in 5m exceeded 0.05; removed its header match, so matched requests go by weight"
	if calls[0].message != msg {
		t.Errorf("message %q\nwant    %q", calls[0].message, msg)
	}
}

// TestHeaderMatchRawCase: header names are matched in any case as they
// arrive on the wire, on the fast lane (GET) and on net/http (POST).
func TestHeaderMatchRawCase(t *testing.T) {
	canary := rt("canary", 2, upstream(t, "canary").URL, 0)
	canary.Match = &registry.RouteMatch{Header: "X-CANARY", Value: "always"}
	h := newHarness(t, newMemSource(endpointOf("e", rt("stable", 1, upstream(t, "stable").URL, 100), canary)), nil)
	for _, head := range []string{
		"GET /serve/e/ HTTP/1.1\r\nHost: x\r\nx-canary: always\r\nConnection: close\r\n\r\n",
		"POST /serve/e/ HTTP/1.1\r\nHost: x\r\nx-cAnArY: always\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
	} {
		c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		c.Close()
		if got := res.Header.Get("X-Route"); res.StatusCode != http.StatusOK || got != "canary" {
			t.Errorf("%q: status %d route %q, want canary", strings.SplitN(head, "\r\n", 2)[0], res.StatusCode, got)
		}
	}
}
