package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestEndpointTimeout: an endpoint's own timeout bounds the wait for its
// upstream on every path (a plain GET on the lane and lean client, a POST
// on the Transport), shorter or longer than the gateway's default, and
// the 504 still names the route and version.
func TestEndpointTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(700 * time.Millisecond):
			_, _ = w.Write([]byte("late"))
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	short := endpointOf("short", rt("a", 1, slow.URL, 100))
	short.Timeout = "150ms"
	long := endpointOf("long", rt("b", 2, slow.URL, 100))
	long.Timeout = "5s"
	src := newMemSource(short, long)
	// The gateway's default (300ms) sits between the two.
	h := newHarness(t, src, func(o *Options) { o.UpstreamTimeout = 300 * time.Millisecond })
	c := client(t)

	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			do := func(path string) (*http.Response, string, time.Duration) {
				t.Helper()
				var body *strings.Reader
				if method == "POST" {
					body = strings.NewReader(`{"x":1}`)
				} else {
					body = strings.NewReader("")
				}
				req, err := http.NewRequest(method, h.srv.URL+path, body)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b := new(strings.Builder)
				_, _ = io.Copy(b, res.Body)
				return res, b.String(), time.Since(start)
			}
			res, body, d := do("/serve/short/x")
			if res.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("short: status %d, want 504: %s", res.StatusCode, body)
			}
			if d > 600*time.Millisecond {
				t.Errorf("short: 504 after %v; the endpoint's 150ms should end the wait before the upstream's 700ms", d)
			}
			if res.Header.Get("X-Route") != "a" || res.Header.Get("X-Model-Version") != "1" {
				t.Errorf("short: 504 without routing headers: %v", res.Header)
			}
			// Longer than the gateway's default: the upstream's late answer
			// arrives.
			res, body, _ = do("/serve/long/x")
			if res.StatusCode != http.StatusOK || body != "late" {
				t.Fatalf("long: status %d %q, want the upstream's answer after 700ms", res.StatusCode, body)
			}
		})
	}
}
