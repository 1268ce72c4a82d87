package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pattern is a deterministic byte stream generated on the fly.
type pattern struct{ off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((p.off*7 + p.off>>11) % 251)
		p.off++
	}
	return len(b), nil
}

func TestStreamsLargeResponse(t *testing.T) {
	const size = 64 << 20
	// The first part ends off any buffer boundary: every byte of it must
	// reach the client while the upstream holds back the rest.
	const first = 1<<20 + 777
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			firstSent := make(chan struct{})
			release := make(chan struct{})
			var finished atomic.Bool
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(size))
				}
				src := &pattern{}
				if _, err := io.CopyN(w, src, first); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				close(firstSent)
				// Hold the rest back until the client has seen the start:
				// a buffering proxy would deadlock here.
				select {
				case <-release:
				case <-time.After(20 * time.Second):
					return
				}
				io.CopyN(w, src, size-first)
				finished.Store(true)
			}))
			t.Cleanup(up.Close)
			h := newHarness(t, newMemSource(endpointOf("big", rt("a", 1, up.URL, 100))), nil)

			res, err := client(t).Get(h.srv.URL + "/serve/big/")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			<-firstSent
			head := make([]byte, first)
			if _, err := io.ReadFull(res.Body, head); err != nil {
				t.Fatal(err)
			}
			if finished.Load() {
				t.Fatal("upstream finished before the client read the first part")
			}
			close(release)

			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			sum := sha256.New()
			sum.Write(head)
			n, err := io.Copy(sum, res.Body)
			if err != nil {
				t.Fatal(err)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if n+int64(len(head)) != size {
				t.Fatalf("got %d bytes, want %d", n+int64(len(head)), size)
			}
			want := sha256.New()
			io.CopyN(want, &pattern{}, size)
			if !bytes.Equal(sum.Sum(nil), want.Sum(nil)) {
				t.Fatal("body differs from what the upstream sent")
			}
			// Streaming keeps the heap flat: far less than the body.
			if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 16<<20 {
				t.Errorf("heap grew by %d MiB while streaming 64 MiB", grew>>20)
			}
		})
	}
}

func TestStreamsRequestBody(t *testing.T) {
	const size = 32 << 20
	gotFirst := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1<<16)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Error(err)
			return
		}
		close(gotFirst)
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n+int64(len(buf)))
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), nil)

	pr, pw := io.Pipe()
	go func() {
		src := &pattern{}
		io.CopyN(pw, src, 1<<16)
		// The upstream must see the start before the client sends the rest.
		select {
		case <-gotFirst:
		case <-time.After(20 * time.Second):
			pw.CloseWithError(errors.New("upstream never saw the start of the body"))
			return
		}
		io.CopyN(pw, src, size-1<<16)
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/serve/e/upload", pr)
	res, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != fmt.Sprint(size) {
		t.Fatalf("status %d body %q", res.StatusCode, body)
	}
	if res.Header.Get("X-Route") != "a" {
		t.Error("X-Route missing on a proxied POST")
	}
}

// rawUpstream serves each accepted connection with handle.
func rawUpstream(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
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
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// readRequestHead consumes one request head.
func readRequestHead(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if l == "\r\n" {
			return strings.TrimSpace(line), nil
		}
	}
}

func TestUpstreamResponseForms(t *testing.T) {
	responses := map[string]string{
		"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nContent-Type: text/plain\r\n\r\n" +
			"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 42\r\n\r\n",
		"/close":   "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
		"/http10":  "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/nobody":  "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		"/early":   "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
		"/headers": "HTTP/1.1 201 Created\r\ncontent-type: text/x\r\nSET-COOKIE: a=1\r\nset-cookie: b=2\r\nContent-Length: 3\r\nKeep-Alive: timeout=5\r\n\r\nabc",
		"/bad":     "HTTP/1.1 2x0 OK\r\n\r\n",
		"/badlen":  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"/fold":    "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
		"/short":   "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
	}
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			line, err := readRequestHead(br)
			if err != nil {
				return
			}
			path := strings.Fields(line)[1]
			c.Write([]byte(responses[path]))
			if path == "/close" || path == "/http10" || path == "/short" || path == "/bad" {
				return
			}
		}
	})
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), nil)
	c := client(t)

	for _, tc := range []struct {
		path, body string
		status     int
		check      func(t *testing.T, res *http.Response)
	}{
		{"/chunked", "hello, world", 200, func(t *testing.T, res *http.Response) {
			if v := res.Trailer.Get("X-Sum"); v != "42" {
				t.Errorf("trailer X-Sum = %q", v)
			}
		}},
		{"/close", "until close", 200, nil},
		{"/http10", "ok", 200, nil},
		{"/nobody", "", 204, func(t *testing.T, res *http.Response) {
			if res.Header.Get("X-A") != "1" {
				t.Error("204 headers lost")
			}
		}},
		{"/early", "final", 200, nil},
		{"/headers", "abc", 201, func(t *testing.T, res *http.Response) {
			if v := res.Header.Get("Content-Type"); v != "text/x" {
				t.Errorf("Content-Type = %q", v)
			}
			if v := res.Header.Values("Set-Cookie"); len(v) != 2 || v[0] != "a=1" || v[1] != "b=2" {
				t.Errorf("Set-Cookie = %q", v)
			}
			if v := res.Header.Get("Keep-Alive"); v != "" {
				t.Errorf("hop-by-hop Keep-Alive forwarded: %q", v)
			}
		}},
		{"/bad", "", 502, nil},
		{"/badlen", "", 502, nil},
		{"/fold", "", 502, nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, err := c.Get(h.srv.URL + "/serve/e" + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if tc.status < 300 && string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}

	// A body cut short after the status line went out: the client's
	// connection is aborted rather than handed a truncated 200.
	res, err := c.Get(h.srv.URL + "/serve/e/short")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Error("truncated upstream body reached the client as complete")
	}
}

func TestHeadRequest(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		if r.Method != http.MethodHead {
			w.Write(make([]byte, 1000))
		}
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), nil)
	c := client(t)
	for range 3 { // the connection stays usable after a body-less answer
		res, err := c.Head(h.srv.URL + "/serve/e/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.ContentLength != 1000 {
			t.Fatalf("HEAD: status %d length %d", res.StatusCode, res.ContentLength)
		}
	}
}

// TestStaleConnectionRetried: an upstream that closes idle keep-alive
// connections must not turn the next request into a 502.
func TestStaleConnectionRetried(t *testing.T) {
	var conns atomic.Int32
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		if _, err := readRequestHead(br); err != nil {
			return
		}
		// Answer as keep-alive, then close anyway, as an idle timeout does.
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	})
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 1, up, 100))), nil)
	c := client(t)
	for i := range 5 {
		res, body := get(t, c, h.srv.URL+"/serve/e/")
		if res.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: status %d body %q", i, res.StatusCode, body)
		}
	}
	if conns.Load() < 5 {
		t.Errorf("%d upstream connections for 5 requests on closing connections", conns.Load())
	}
}

func TestKeepAliveReuse(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), nil)
	c := client(t)
	for range 50 {
		get(t, c, h.srv.URL+"/serve/e/")
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 50 sequential requests, want 1", n)
	}
}

func TestClientGoneCancelsUpstream(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // the gateway closes the upstream connection
		close(cancelled)
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 1, up.URL, 100))), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/serve/e/", nil)
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := client(t).Do(req); err == nil {
		t.Fatal("request succeeded")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled after the client left")
	}
}

func TestUpgrade(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "no upgrade", 400)
			return
		}
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, newMemSource(endpointOf("e", rt("a", 3, up.URL, 100))), nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /serve/e/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("X-Model-Version") != "3" {
		t.Fatalf("status %d, X-Model-Version %q", res.StatusCode, res.Header.Get("X-Model-Version"))
	}
	fmt.Fprintf(conn, "hi\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hi\n" {
		t.Fatalf("read %q, %v", line, err)
	}
}
