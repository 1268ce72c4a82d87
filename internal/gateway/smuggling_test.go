package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1/h1test"
)

// TestSmugglingAnswersThroughGateway sends each answer through the engine's
// client (the fast path and net/http) and the Transport path and checks what
// the client gets: the body net/http would read, a 502, or a broken-off
// answer; never anything framed differently.
func TestSmugglingAnswersThroughGateway(t *testing.T) {
	for _, c := range h1test.SmugglingAnswers {
		up := rawUpstream(t, func(conn net.Conn, br *bufio.Reader) {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil { // a POST body, whole
				return
			}
			_, _ = io.WriteString(conn, c.Answer)
		})
		for _, p := range gatewayPaths {
			if p.name == "upgrade" {
				continue
			}
			t.Run(c.Name+"/"+p.name, func(t *testing.T) {
				// A gateway each: the upstream closes every connection
				// after its answer, and no path may inherit another's
				// pooled connection that is closing.
				h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
				want := c.Want
				if p.viaTransport && c.Stricter {
					// net/http parses this path's answers: its body, or
					// a 502 when its Transport's own limits refuse.
					body, err := h1test.NetHTTPBody(c.Answer)
					if err != nil {
						t.Fatal(err)
					}
					want = body
					if c.Name == "oversized head" {
						want = "502"
					}
				}
				req, _ := http.NewRequest(p.method, "http://"+h.addr+"/serve/e/x", p.bodyReader())
				tr := &http.Transport{}
				defer tr.CloseIdleConnections()
				res, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					if want == "abort" {
						return
					}
					t.Fatal(err)
				}
				defer res.Body.Close()
				got, rerr := io.ReadAll(res.Body)
				switch want {
				case "abort":
					if rerr == nil {
						t.Fatalf("status %d and a complete body %q, want a broken-off answer", res.StatusCode, got)
					}
				case "502":
					if res.StatusCode != http.StatusBadGateway {
						t.Fatalf("status %d body %q, want 502", res.StatusCode, got)
					}
				default:
					if rerr != nil || res.StatusCode != http.StatusOK || string(got) != want {
						t.Fatalf("status %d body %q (%v), want 200 %q", res.StatusCode, got, rerr, want)
					}
				}
			})
		}
	}
}
