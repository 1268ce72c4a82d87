package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stallingUpstream starts a stream (or, for an upgrade, switches
// protocols) and then sends nothing more; active counts the requests it
// still holds, which end when the gateway closes their connection.
func stallingUpstream(t *testing.T) (url string, active *atomic.Int64) {
	t.Helper()
	active = new(atomic.Int64)
	url = upstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		if r.Header.Get("Upgrade") != "" {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", r.Header.Get("Upgrade"))
			w.WriteHeader(http.StatusSwitchingProtocols)
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("hello\n")
			_ = brw.Flush()
			_, _ = io.Copy(io.Discard, brw) // until the gateway closes
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "hello\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // the gateway closed the connection
	})
	return url, active
}

// openStream sends p's request on a fresh connection and reads until the
// stream's first line arrived.
func openStream(t *testing.T, addr string, p gatewayPath) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s /serve/e/stream HTTP/1.1\r\nHost: gw\r\n", p.method)
	for k, vv := range p.header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, vv[0])
	}
	switch {
	case p.chunked:
		fmt.Fprintf(&b, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(p.body), p.body)
	case p.body != "":
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(p.body), p.body)
	default:
		b.WriteString("\r\n")
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: no stream: %v", p.name, err)
		}
		if strings.Contains(line, "hello") {
			return c
		}
	}
}

// within polls cond until it holds or d passed.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (h *laneHarness) laneConns() int { return h.lane.Conns() }

// 20 clients give up on a stream whose upstream paused: on every path
// the gateway releases their upstream connections, and its own
// goroutines, within a second.
func TestDepartedClientsReleaseStalledUpstreams(t *testing.T) {
	const clients = 20
	for _, p := range gatewayPaths {
		t.Run(p.name, func(t *testing.T) {
			up, active := stallingUpstream(t)
			h := newLaneHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), LaneOptions{})
			before := runtime.NumGoroutine()
			var conns []net.Conn
			for range clients {
				conns = append(conns, openStream(t, h.addr, p))
			}
			if n := active.Load(); n != clients {
				t.Fatalf("%d upstream requests open, want %d", n, clients)
			}
			for _, c := range conns {
				_ = c.Close()
			}
			if !within(time.Second, func() bool { return active.Load() == 0 }) {
				t.Fatalf("%d of %d upstream requests still open 1s after their clients left", active.Load(), clients)
			}
			if !within(time.Second, func() bool { return h.laneConns() == 0 }) {
				t.Fatalf("%d lane connections still open", h.laneConns())
			}
			// The test's own dial goroutines are gone too; a few of the
			// servers' may linger in their poll loops.
			if !within(time.Second, func() bool { return runtime.NumGoroutine() <= before+4 }) {
				t.Fatalf("%d goroutines, %d before the streams", runtime.NumGoroutine(), before)
			}
		})
	}
}

// Shutdown with clients still reading stalled streams: after its
// deadline it closes what remains, promptly, on every path.
func TestShutdownClosesStalledStreams(t *testing.T) {
	up, active := stallingUpstream(t)
	src := newMemSource(endpointOf("e", rt("a", 1, up, 100)))
	gw, err := New(Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lane := gw.Lane(Listener(ln), LaneOptions{})
	srv := &http.Server{Handler: gw}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lane) }()
	for _, p := range gatewayPaths {
		for range 5 {
			c := openStream(t, ln.Addr().String(), p)
			t.Cleanup(func() { c.Close() })
		}
	}
	if n := active.Load(); n != 5*int64(len(gatewayPaths)) {
		t.Fatalf("%d streams open", n)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		// As app.Main.Close does it.
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		_ = lane.Shutdown(ctx)
		<-served
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown still waiting 5s after a 300ms deadline")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	if !within(time.Second, func() bool { return active.Load() == 0 }) {
		t.Fatalf("%d upstream requests still open after shutdown", active.Load())
	}
}
