package gateway

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

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
