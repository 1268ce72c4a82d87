package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// TestServeNoClientPoisonsAnother runs, on every way the product serves
// /serve/ (the shared listener, --serve-listen, and the gateway command
// on the registry's database), the three ways one client could change
// what others get: a body the upstream takes for a request of its own
// (answered early, connection kept), malformed bodies aimed at the
// guard, and request heads framed ambiguously.
func TestServeNoClientPoisonsAnother(t *testing.T) {
	for _, mode := range []string{"api+serve", "serve-listen", "gateway"} {
		t.Run(mode, func(t *testing.T) {
			db := "sqlite://" + filepath.Join(t.TempDir(), "registry.db")
			r := apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(func(c *app.Config) {
				if mode == "serve-listen" {
					c.ServeListen = "127.0.0.1:0"
				}
			}))
			serveAddr := strings.TrimPrefix(r.Main.ServeURL(), "http://")
			if mode == "gateway" {
				gw := apptest.Start(t, apptest.WithDB(db), apptest.WithConfig(func(c *app.Config) {
					c.DataPlaneOnly = true
				}))
				serveAddr = strings.TrimPrefix(gw.URL, "http://")
			}
			token := r.Token(t, "client", registry.ScopeRead)
			early, proceed := earlyAnsweringUpstream(t)
			mustStatus(t, call(t, "POST", r.URL+"/api/v1/models", r.AdminToken, map[string]any{"name": "m"}), http.StatusCreated)
			for i := 1; i <= 2; i++ {
				mustStatus(t, call(t, "POST", r.URL+"/api/v1/models/m/versions", r.AdminToken, map[string]any{
					"source": fmt.Sprintf("s3://b/m/%d", i), "checksum": "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i), 32), "format": "onnx",
				}), http.StatusCreated)
			}
			mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
				"name": "e1", "model": "m",
				"routes": []map[string]any{{"name": "only", "version": 1, "upstream_url": early, "weight": 100}},
			}), http.StatusCreated)
			mustStatus(t, call(t, "POST", r.URL+"/api/v1/endpoints", r.AdminToken, map[string]any{
				"name": "g", "model": "m",
				"routes": []map[string]any{
					{"name": "stable", "version": 1, "upstream_url": upstream(t, "stable"), "weight": 50},
					{"name": "canary", "version": 2, "upstream_url": upstream(t, "canary"), "weight": 50},
				},
				"guard": map[string]any{"max_error_rate": 0.05, "min_requests": 5, "window": "5m"},
			}), http.StatusCreated)
			auth := "Authorization: Bearer " + token + "\r\n"
			waitServing(t, serveAddr, auth)

			t.Run("early answer", func(t *testing.T) {
				// A's body is a request of its own; B must get its own answer.
				head := "GET /serve/e1/INBODY-EVIL HTTP/1.1\r\nHost: x\r\nX-Pad: "
				evil := head + strings.Repeat("p", 200-len(head)-4) + "\r\n\r\n"
				st, body, _ := rawSend(t, serveAddr, "POST /serve/e1/early HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 200\r\n\r\n"+evil)
				if st != 200 || body != "/early" {
					t.Fatalf("client A: %d %q", st, body)
				}
				proceed <- struct{}{}
				<-proceed // the upstream answered the request in A's body
				for i := range 3 {
					want := fmt.Sprintf("/client-B-%d", i)
					st, body, _ := rawSend(t, serveAddr, "GET /serve/e1"+want+" HTTP/1.1\r\nHost: x\r\n"+auth+"\r\n")
					if st != 200 || body != want {
						t.Fatalf("client B's GET %s got %d %q: another client's answer", want, st, body)
					}
				}
			})
			t.Run("malformed bodies", func(t *testing.T) {
				// Malformed bodies are the client's 400s and never trip the guard.
				for range 15 {
					st, body, _ := rawSend(t, serveAddr, "POST /serve/g/predict HTTP/1.1\r\nHost: x\r\n"+auth+"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
					if st != http.StatusBadRequest {
						t.Fatalf("malformed chunked body: %d %q, want 400", st, body)
					}
				}
				res := call(t, "GET", r.URL+"/api/v1/events?endpoint=g", r.AdminToken, nil)
				mustStatus(t, res, http.StatusOK)
				var events struct {
					Items []registry.Event `json:"items"`
				}
				if err := json.NewDecoder(res.Body).Decode(&events); err != nil {
					t.Fatal(err)
				}
				for _, e := range events.Items {
					if e.Actor == "gateway-guard" {
						t.Fatalf("client framing errors made the guard act: %+v", e)
					}
				}
			})
			t.Run("ambiguous framing", func(t *testing.T) {
				// Ambiguous framing: 400, and nothing pipelined after it served.
				st, body, closed := rawSend(t, serveAddr, "POST /serve/g/predict HTTP/1.1\r\nHost: x\r\n"+auth+
					"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /serve/g/next HTTP/1.1\r\nHost: x\r\n"+auth+"\r\n", true)
				if st != http.StatusBadRequest || !closed {
					t.Fatalf("Transfer-Encoding with Content-Length: %d %s, closed %v; want 400 and the connection closed", st, body, closed)
				}
			})
		})
	}
}

// earlyAnsweringUpstream answers every request as soon as its head
// arrived, echoing the target, without reading a body; after the first
// request with a body it waits on proceed, then reads on (the body's
// bytes as a request), and after answering that one signals on proceed.
func earlyAnsweringUpstream(t *testing.T) (string, chan struct{}) {
	t.Helper()
	proceed := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				waited := false
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
						hasBody = hasBody || strings.HasPrefix(strings.ToLower(l), "content-length:")
					}
					f := strings.Fields(line)
					if len(f) != 3 {
						return
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(f[1]), f[1])
					switch {
					case hasBody && !waited:
						waited = true
						<-proceed
					case strings.Contains(f[1], "INBODY-EVIL"):
						proceed <- struct{}{}
					}
				}
			}()
		}
	}()
	return "http://" + l.Addr().String(), proceed
}

// waitServing polls until the data plane knows endpoint g.
func waitServing(t *testing.T, addr, auth string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _, _ := rawSend(t, addr, "GET /serve/g/ready HTTP/1.1\r\nHost: x\r\n"+auth+"\r\n")
		if st == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint g not served on %s: %d", addr, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawSend writes raw on a new connection and reads one answer; closed
// reports whether the server then closed the connection instead of
// answering anything more.
func rawSend(t *testing.T, addr, raw string, checkClose ...bool) (status int, body string, closed bool) {
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
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(checkClose) == 0 {
		return res.StatusCode, string(b), false
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	return res.StatusCode, string(b), err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
