// Package proxycheck is the like-for-like check every alternative gateway
// passes before its numbers count: the 90/10 split, the path mapping,
// the forwarding rules on the way up (hop-by-hop and Connection-listed
// headers dropped, registry tokens stripped, X-Forwarded-For appended,
// gateway headers not spoofable), the answer headers on the way back, the
// body echoed byte for byte, and server-sent events streamed (the client
// sees the first event while the upstream still holds the rest).
package proxycheck

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Start runs the gateway under test on 127.0.0.1:0 for the two upstream
// URLs (weights 90/10) and returns its base URL; it stops with t.
type Start func(t *testing.T, upstreams []string) string

type seen struct {
	upstream int
	uri      string
	header   http.Header
	body     []byte
}

// Run checks the gateway that start runs.
func Run(t *testing.T, start Start) {
	var (
		mu      sync.Mutex
		got     = map[string]seen{} // by X-Request-Id
		release sync.Map            // X-Request-Id -> chan struct{}
		held    atomic.Int32        // SSE streams whose rest the client released
	)
	event := "data: {\"token\":\"abcdefghijklmnop\"}\n\n"
	upstream := func(i int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			id := r.Header.Get("X-Request-Id")
			mu.Lock()
			got[id] = seen{upstream: i, uri: r.RequestURI, header: r.Header.Clone(), body: body}
			mu.Unlock()
			w.Header().Set("X-Upstream", fmt.Sprint(i))
			w.Header().Set("X-Hop-Resp", "1")
			w.Header().Set("Connection", "X-Hop-Resp")
			if strings.HasSuffix(r.URL.Path, "/sse") {
				w.Header().Set("Content-Type", "text/event-stream")
				rc := http.NewResponseController(w)
				ch := make(chan struct{})
				release.Store(id, ch)
				for e := range 8 {
					_, _ = io.WriteString(w, event)
					_ = rc.Flush()
					if e == 0 {
						select {
						case <-ch:
							held.Add(1)
						case <-time.After(5 * time.Second):
						}
					}
				}
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(body)
		})
	}
	up0 := httptest.NewServer(upstream(0))
	t.Cleanup(up0.Close)
	up1 := httptest.NewServer(upstream(1))
	t.Cleanup(up1.Close)
	// Route 0 has a base path, route 1 none.
	gw := start(t, []string{up0.URL + "/base", up1.URL})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	wantRoute := map[int][2]string{0: {"1", "stable"}, 1: {"2", "canary"}}
	wantPath := map[int]string{0: "/base/v1/predict?x=1&y=%2F", 1: "/v1/predict?x=1&y=%2F"}
	post := func(id string, body []byte) (seen, int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", gw+"/serve/bench/v1/predict?x=1&y=%2F", bytes.NewReader(body))
		req.Header["Authorization"] = []string{"Bearer  mlr_secretsecret", "Basic dXNlcjpwYXNz"}
		req.Header.Set("Connection", "keep-alive, X-Drop-Me")
		req.Header.Set("X-Drop-Me", "1")
		req.Header.Set("Proxy-Authorization", "Basic eA==")
		req.Header.Set("X-Forwarded-For", "10.0.0.1")
		req.Header.Set("X-Model-Version", "99")
		req.Header.Set("X-Route", "spoofed")
		req.Header.Set("X-Mlregistry-Hops", "0")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", id)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", id, err)
		}
		defer res.Body.Close()
		rb, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("POST %s: read answer: %v", id, err)
		}
		mu.Lock()
		s, ok := got[id]
		mu.Unlock()
		if !ok {
			t.Fatalf("POST %s: no upstream saw it (status %d, %q)", id, res.StatusCode, rb)
		}
		return s, res.StatusCode, res.Header, rb
	}
	check := func(id string, body []byte) int {
		t.Helper()
		s, code, hdr, rb := post(id, body)
		want := wantRoute[s.upstream]
		if code != 200 || !bytes.Equal(rb, body) {
			t.Fatalf("%s: status %d, body %d bytes equal=%v, want 200 and the %d bytes sent", id, code, len(rb), bytes.Equal(rb, body), len(body))
		}
		if !bytes.Equal(s.body, body) {
			t.Fatalf("%s: upstream got %d bytes, not the %d sent", id, len(s.body), len(body))
		}
		if s.uri != wantPath[s.upstream] {
			t.Fatalf("%s: upstream %d got %q, want %q", id, s.upstream, s.uri, wantPath[s.upstream])
		}
		if v, r := hdr.Get("X-Model-Version"), hdr.Get("X-Route"); v != want[0] || r != want[1] {
			t.Fatalf("%s: answer X-Model-Version %q X-Route %q, want %q %q (upstream %d)", id, v, r, want[0], want[1], s.upstream)
		}
		if hdr.Get("X-Request-Id") != id || hdr.Get("X-Upstream") != fmt.Sprint(s.upstream) {
			t.Fatalf("%s: answer X-Request-Id %q X-Upstream %q", id, hdr.Get("X-Request-Id"), hdr.Get("X-Upstream"))
		}
		if hdr.Get("X-Hop-Resp") != "" {
			t.Fatalf("%s: a Connection-listed answer header reached the client", id)
		}
		h := s.header
		for k, want := range map[string]string{
			"Authorization":       "Basic dXNlcjpwYXNz",
			"X-Forwarded-For":     "10.0.0.1, 127.0.0.1",
			"X-Model-Version":     want[0],
			"X-Route":             want[1],
			"X-Mlregistry-Hops":   "1",
			"X-Request-Id":        id,
			"Content-Type":        "application/json",
			"X-Drop-Me":           "",
			"Proxy-Authorization": "",
		} {
			if vv := h.Values(k); strings.Join(vv, "|") != want {
				t.Fatalf("%s: upstream got %s %q, want %q", id, k, vv, want)
			}
		}
		return s.upstream
	}

	// The split, with 2 KB bodies.
	const n = 1000
	var counts [2]int
	for i := range n {
		body := make([]byte, 2048)
		_, _ = rand.Read(body)
		counts[check(fmt.Sprintf("req-%d", i), body)]++
	}
	// 90% of 1000 has a standard deviation of under 10.
	if counts[0] < 850 || counts[0] > 950 {
		t.Fatalf("split: stable %d, canary %d of %d, want about 900/100", counts[0], counts[1], n)
	}
	t.Logf("split: stable %d, canary %d", counts[0], counts[1])

	// A 64 KB body and an empty one.
	big := make([]byte, 64<<10)
	_, _ = rand.Read(big)
	check("big", big)
	check("empty", []byte{})

	// A GET without an ID gets a 32-hex-digit one.
	res, err := client.Get(gw + "/serve/bench/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if id := res.Header.Get("X-Request-Id"); res.StatusCode != 200 || len(id) != 32 {
		t.Fatalf("GET: status %d, X-Request-Id %q", res.StatusCode, id)
	}
	// Outside /serve/bench/: not proxied.
	res, err = client.Get(gw + "/serve/other/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("/serve/other/x: status %d, want 404", res.StatusCode)
	}

	// SSE: the first event arrives while the upstream holds the other 7.
	for k := range 5 {
		id := fmt.Sprintf("sse-%d", k)
		req, _ := http.NewRequest("GET", gw+"/serve/bench/sse", nil)
		req.Header.Set("X-Request-Id", id)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		br := bufio.NewReader(res.Body)
		first := make([]byte, len(event))
		if _, err := io.ReadFull(br, first); err != nil || string(first) != event {
			t.Fatalf("%s: first event %q, %v", id, first, err)
		}
		before := held.Load()
		ch, ok := release.Load(id)
		if !ok {
			t.Fatalf("%s: the upstream did not see it", id)
		}
		close(ch.(chan struct{}))
		rest, err := io.ReadAll(br)
		res.Body.Close()
		if err != nil || string(rest) != strings.Repeat(event, 7) {
			t.Fatalf("%s: the other events: %q, %v", id, rest, err)
		}
		if held.Load() != before+1 {
			t.Fatalf("%s: the first event did not reach the client before the upstream sent the rest (buffered, not streamed)", id)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("%s: Content-Type %q", id, ct)
		}
	}
}
