package h1

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzRequestParse is the differential test of the server's request
// parser against net/http's server on the same bytes: for any input,
// either the Server hands the connection to net/http (which then does
// what it always does), or net/http's server would have served the very
// same request: same method, target, Host, header fields, Content-Length
// and body bytes, and the next request starting at the same offset. What
// net/http refuses (400, 501, 431) the Server must hand over, never
// serve; what screenHead refuses (ambiguous framing net/http accepts)
// it must not have served either. The seed corpus
// (testdata/fuzz/FuzzRequestParse and the seeds below: the smuggling
// cases) runs as a plain test.
func FuzzRequestParse(f *testing.F) {
	for _, seed := range []string{
		"GET /serve/e/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /serve/e/x?q=1 HTTP/1.1\r\nHost: a\r\nX-User-Id: 7\r\nConnection: keep-alive\r\n\r\n",
		"GET /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"GET /serve/e/x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
		"GET /serve/e/x HTTP/1.1\r\nHost: a\r\n\tX: b\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /serve/e/y HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc",
		"PUT /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\nabcdefg",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n x\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nX: \x00\r\nContent-Length: 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.1\r\nHost: a b\r\nContent-Length: 3\r\n\r\nabc",
		"POST http://a/serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /serve/e/x HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"post /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"DELETE /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nabc",
		// Risky framing the Server refuses, and bodies that break their
		// own framing (net/http's to refuse).
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
		"GET /serve/e/x HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
		"GET /serve/e/x HTTP/1.1\r\nHost: a\r\n\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\nGET /serve/e/INBODY-EVIL HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /serve/e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Long: " + strings.Repeat("v", 5000) + "\r\n\r\nabc",
	} {
		f.Add([]byte(seed))
	}
	client, server := net.Pipe()
	f.Cleanup(func() { client.Close(); server.Close() })
	l := &Server{opts: ServerOptions{PathPrefix: "/serve/"}}
	f.Fuzz(func(t *testing.T, in []byte) {
		lc := &serverConn{c: server, br: bufio.NewReaderSize(bytes.NewReader(in), ServerBufferSize), ctx: &connCtx{c: server}}
		if _, err := lc.br.Peek(1); err != nil {
			return
		}
		why := screenHead(lc.buffered())
		req, n, ok := l.parse(lc)
		if why != "" {
			// Refused outright: only heads the Server would not have
			// served either (net/http would have read them, leniently).
			if ok {
				t.Fatalf("the Server refuses (%s) a head it would serve: %q", why, in)
			}
			return
		}
		if !ok {
			return // handed to net/http
		}
		if n > len(in) || !bytes.HasSuffix(in[:n], []byte("\r\n\r\n")) {
			t.Fatalf("head length %d does not end a head in %q", n, in)
		}
		if !strings.HasPrefix(req.URL.Path, "/serve/") {
			t.Fatalf("accepted path %q", req.URL.Path)
		}
		if _, err := lc.br.Discard(n); err != nil {
			t.Fatal(err)
		}
		body, bodyErr := io.ReadAll(req.Body)
		ours := seenRequest{
			Method: req.Method, URI: req.RequestURI, Host: req.Host, Header: req.Header,
			Length: req.ContentLength, Body: string(body), BodyOK: bodyErr == nil,
		}
		theirs, served := netHTTPServes(t, in)
		if !served {
			t.Fatalf("the Server serves a request net/http refuses: %q\nlane: %+v", in, ours)
		}
		if !reflect.DeepEqual(ours, theirs) {
			t.Fatalf("the Server and net/http read %q differently:\nlane:     %+v\nnet/http: %+v", in, ours, theirs)
		}
	})
}

// seenRequest is what a server made of a request's bytes.
type seenRequest struct {
	Method, URI, Host string
	Header            http.Header
	Length            int64
	Body              string
	// BodyOK: the body arrived whole. Equal bodies of an equal
	// Content-Length, without Transfer-Encoding, mean the next request
	// starts at the same byte for both.
	BodyOK           bool
	TransferEncoding []string
}

// netHTTPServes feeds in to a real http.Server as one connection and
// reports the first request its handler received (served false: none,
// net/http refused the bytes).
func netHTTPServes(t *testing.T, in []byte) (seen seenRequest, served bool) {
	t.Helper()
	ln := &oneConnListener{c: &bytesConn{r: bytes.NewReader(in)}, done: make(chan struct{})}
	closed := make(chan struct{})
	var once sync.Once
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() {
				body, err := io.ReadAll(r.Body)
				seen = seenRequest{
					Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(),
					Length: r.ContentLength, Body: string(body), BodyOK: err == nil,
					TransferEncoding: r.TransferEncoding,
				}
				served = true
			})
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				close(closed)
			}
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(ln) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("net/http did not finish with %q", in)
	}
	_ = srv.Close()
	if seen.Header != nil && len(seen.Header) == 0 {
		seen.Header = http.Header{}
	}
	return seen, served
}

// bytesConn is a net.Conn that reads its bytes, then EOF, and discards
// what is written.
type bytesConn struct {
	r  *bytes.Reader
	mu sync.Mutex
}

func (c *bytesConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.Read(p)
}

func (c *bytesConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *bytesConn) Close() error                { return nil }
func (c *bytesConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *bytesConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}
}
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// oneConnListener accepts c once, then waits until closed.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
