package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The server side.
//
// net/http's server costs more per request than the proxying itself on
// small prediction calls: besides parsing, it starts a background read on
// every connection for every request (to notice a client leaving), which
// is one more system call, a goroutine and two wake-ups each time. Server
// serves the common request itself, on the connection's goroutine: a GET,
// HEAD, POST, PUT, PATCH or DELETE under ServerOptions.PathPrefix,
// without a body or with one Content-Length of plain digits, whose head
// arrived whole and whose caller the Authorize hook accepts. Everything
// else (chunked or otherwise framed bodies, Expect: 100-continue, an
// upgrade, HTTP/1.0, a bad or partial head, a Host net/http would refuse,
// a refused caller, any other path) hands the connection, with the bytes
// already read, to net/http through the Server's listener interface, and
// net/http serves it from then on. FuzzRequestParse holds the parser to
// that: what Server serves, net/http's server would have read the same
// way. Heads that two implementations could frame differently (see
// screenHead) it refuses outright, whichever path they were for. Both
// paths run the same Handler.
//
// A body (requestBody) is read from the connection as the handler asks
// for it. ReadTimeout bounds a body that did not arrive with its head;
// what the handler left unread is discarded (up to maxDiscard, as
// net/http) or the connection closes.
//
// A client that leaves while the handler waits: instead of a read that
// waits on the client connection all along, the request's context looks
// at the socket (a non-blocking MSG_PEEK) when asked, and the client side
// (Conn) asks every half second while it waits for an answer's head. So a
// departed client cancels the upstream request within a second rather
// than at once, and a fast request pays nothing. A body that streams
// waits on the context's Done channel, which a watcher closes when the
// client has gone (see connCtx).

// ServerOptions configures a Server. Handler and PathPrefix are required.
type ServerOptions struct {
	// Handler serves every request the Server parses; it is the handler
	// the http.Server behind the Server runs too. It may panic with
	// http.ErrAbortHandler to drop the connection, as with net/http.
	Handler http.Handler
	// PathPrefix is the start of the request paths the Server serves
	// itself (e.g. "/serve/"); other requests go to net/http.
	PathPrefix string
	// Authorize reports whether the request may be served here. A request
	// it refuses is handed to net/http, whose handler answers it. nil
	// allows everything.
	Authorize func(*http.Request) bool
	// Header is added to every response the Server writes (for the
	// registry: the security headers its middleware sets on every route).
	Header http.Header
	// RequestIDHeader, when set, names a response header that carries the
	// request's ID: the client's own when ValidRequestID accepts it, else
	// one from NewRequestID (both required with it).
	RequestIDHeader string
	NewRequestID    func() string
	ValidRequestID  func(string) bool
	// WriteError writes the answer to a request the Server refuses before
	// any handler sees it (400); nil writes plain text.
	WriteError func(w http.ResponseWriter, status int, detail string)
	// IdleTimeout closes a connection that sends nothing for this long
	// between requests (default 120 s).
	IdleTimeout time.Duration
	// HeaderTimeout closes a new connection whose first request does not
	// start within it (default 10 s), as http.Server.ReadHeaderTimeout
	// does: a client that connects and trickles nothing must not hold the
	// connection for IdleTimeout. (A head that arrives only in part is
	// handed to net/http, whose ReadHeaderTimeout bounds the rest.)
	HeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a request body that has not
	// arrived whole with its head (default 30 s), as
	// http.Server.ReadTimeout does: a client that stops halfway loses its
	// connection, and the upstream request its body is for fails.
	ReadTimeout time.Duration
	// Observe, when set, is called after every request the Server served
	// with the request, its ID (as the answer carries it), the status
	// (499: the client went away), the time taken and the body bytes
	// written: for the registry, the same API metrics and access log
	// line that net/http's middleware records for the requests it serves.
	Observe func(r *http.Request, id string, status int, elapsed time.Duration, bytes int64)
	// Logger for accept errors and handler panics (nil discards).
	Logger *slog.Logger
}

// Server serves the common requests on its own HTTP/1.1 loop and hands
// the rest to net/http. It is a net.Listener: pass it to
// http.Server.Serve, which then sees the connections handed over. Close
// (which http.Server.Shutdown calls) stops accepting; Shutdown then waits
// for the Server's own connections.
type Server struct {
	ln   net.Listener
	opts ServerOptions
	log  *slog.Logger

	handoff chan net.Conn
	done    chan struct{} // closed when accepting stopped
	errMu   sync.Mutex
	err     error

	mu      sync.Mutex // guards conns
	conns   map[*serverConn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

// NewServer starts serving ln's connections. The caller serves the
// returned listener with an http.Server whose handler is opts.Handler.
func NewServer(ln net.Listener, opts ServerOptions) *Server {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 10 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	// Canonical, so the handler finds the ID where net/http's path puts it.
	opts.RequestIDHeader = http.CanonicalHeaderKey(opts.RequestIDHeader)
	l := &Server{
		ln:      ln,
		opts:    opts,
		log:     opts.Logger,
		handoff: make(chan net.Conn),
		done:    make(chan struct{}),
		conns:   make(map[*serverConn]struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection handed over to net/http.
func (l *Server) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		return nil, l.err
	}
}

// Close stops accepting connections.
func (l *Server) Close() error { return l.ln.Close() }

// Addr is the listening address.
func (l *Server) Addr() net.Addr { return l.ln.Addr() }

// Conns is the number of connections the Server serves itself.
func (l *Server) Conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Shutdown closes the Server's idle connections and waits until the busy
// ones finished their request, or ctx ends: then it closes them. Call it
// after Close.
func (l *Server) Shutdown(ctx context.Context) error {
	l.closing.Store(true)
	l.mu.Lock()
	for c := range l.conns {
		if c.idle.Load() {
			// Wakes the read the connection waits in; the loop then sees
			// closing and ends.
			_ = c.c.SetReadDeadline(time.Unix(1, 0))
		}
	}
	l.mu.Unlock()
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			_ = c.c.Close()
			c.ctx.cancel() // ends a stream that waits on its upstream
		}
		l.mu.Unlock()
		<-waited
		return ctx.Err()
	}
}

func (l *Server) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and the like: back off as
				// net/http does, then keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.log.Warn("h1 server: accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			l.errMu.Lock()
			l.err = err
			l.errMu.Unlock()
			close(l.done)
			return
		}
		delay = 0
		lc := &serverConn{c: c, br: bufio.NewReaderSize(c, ServerBufferSize), remote: c.RemoteAddr().String(), ctx: &connCtx{c: c}}
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.conns[lc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serveConn(lc)
	}
}

const (
	// ServerBufferSize is the read and write buffer of a connection.
	ServerBufferSize = 4 << 10
	// maxHeaders bounds the header lines of a request the Server serves;
	// more go to net/http.
	maxHeaders = 64
)

type serverConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	idle   atomic.Bool
	// deadline is when the read deadline set last runs out.
	deadline time.Time
	scratch  []byte
	hdr      http.Header // the response header map, reused
	ctx      *connCtx
	body     *requestBody // the current request's body, when it has one
}

func (l *Server) forget(lc *serverConn) {
	l.mu.Lock()
	delete(l.conns, lc)
	l.mu.Unlock()
	l.wg.Done()
}

func (l *Server) serveConn(lc *serverConn) {
	handedOff := false
	defer func() {
		if !handedOff {
			_ = lc.c.Close()
		}
		l.forget(lc)
	}()
	// The first request must start within HeaderTimeout; from the second
	// on, the idle deadline below applies (lc.deadline is still zero, so
	// the loop sets it once the first request has been served).
	_ = lc.c.SetReadDeadline(time.Now().Add(l.opts.HeaderTimeout))
	for first := true; ; first = false {
		// The idle deadline moves at most once a second: setting it costs
		// a poller update, and a second more or less of idle time does
		// not matter. It is set before the closing check, so Shutdown's
		// wake-up deadline cannot be overwritten.
		now := time.Now()
		if !first && lc.deadline.Sub(now) < l.opts.IdleTimeout-time.Second {
			lc.deadline = now.Add(l.opts.IdleTimeout)
			_ = lc.c.SetReadDeadline(lc.deadline)
		}
		// Shutdown stores closing before it looks at idle, and this loop
		// stores idle before it looks at closing: one of the two sees the
		// other (atomics are sequentially consistent).
		lc.idle.Store(true)
		if l.closing.Load() {
			return
		}
		if _, err := lc.br.Peek(1); err != nil {
			return
		}
		lc.idle.Store(false)
		if why := screenHead(lc.buffered()); why != "" {
			l.refuse(lc, why)
			return
		}
		req, headLen, ok := l.parse(lc)
		if ok && l.opts.Authorize != nil && !l.opts.Authorize(req) {
			ok = false
		}
		if !ok {
			handedOff = l.handOff(lc)
			return
		}
		if _, err := lc.br.Discard(headLen); err != nil {
			return
		}
		if req.ContentLength > 0 {
			l.bodyDeadline(lc, req.ContentLength)
		}
		if !l.serveOne(lc, req) {
			return
		}
		if req.ContentLength > 0 && !l.finishBody(lc) {
			return
		}
	}
}

// buffered is what the connection's reader holds, unconsumed.
func (lc *serverConn) buffered() []byte {
	buf, _ := lc.br.Peek(lc.br.Buffered())
	return buf
}

// refuse answers 400 to a request whose head screenHead refused and ends
// the connection: what follows the head cannot be framed safely. Like
// net/http, it half-closes and reads what the client still sends for a
// moment, so the answer is not lost to a reset.
func (l *Server) refuse(lc *serverConn, why string) {
	var body bytes.Buffer
	rec := &bufferedAnswer{hdr: http.Header{}, body: &body}
	if l.opts.WriteError != nil {
		l.opts.WriteError(rec, http.StatusBadRequest, why)
	} else {
		rec.hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
		body.WriteString(why + "\n")
	}
	bw := bufio.NewWriterSize(lc.c, 512)
	_, _ = bw.WriteString("HTTP/1.1 400 Bad Request\r\nDate: " + httpDate() + "\r\n")
	for _, h := range []http.Header{l.opts.Header, rec.hdr} {
		for k, vv := range h {
			if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" {
				continue
			}
			for _, v := range vv {
				writeHeaderLine(bw, k, v)
			}
		}
	}
	_, _ = bw.WriteString("Connection: close\r\nContent-Length: " + strconv.Itoa(body.Len()) + "\r\n\r\n")
	_, _ = bw.Write(body.Bytes())
	if bw.Flush() != nil {
		return
	}
	if cw, ok := lc.c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = lc.c.SetReadDeadline(time.Now().Add(refuseLinger))
		_, _ = io.CopyN(io.Discard, lc.br, maxDiscard)
	}
}

// bufferedAnswer collects the answer WriteError writes.
type bufferedAnswer struct {
	hdr  http.Header
	body *bytes.Buffer
}

func (a *bufferedAnswer) Header() http.Header         { return a.hdr }
func (a *bufferedAnswer) WriteHeader(int)             {}
func (a *bufferedAnswer) Write(p []byte) (int, error) { return a.body.Write(p) }

// refuseLinger is how long a refused connection is read (and dropped)
// after its answer, so the client sees the answer rather than a reset.
const refuseLinger = 500 * time.Millisecond

// handOff gives the connection to net/http, with what was read of it.
func (l *Server) handOff(lc *serverConn) bool {
	_ = lc.c.SetReadDeadline(time.Time{})
	hc := &handedConn{Conn: lc.c, br: lc.br}
	select {
	case l.handoff <- hc:
		return true
	case <-l.done:
		return false
	}
}

// handedConn is a connection handed to net/http: reads drain what the
// Server buffered first.
type handedConn struct {
	net.Conn
	br *bufio.Reader
}

// CloseWrite half-closes the connection when it can, as net/http does
// before closing a connection whose request it did not read to the end.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *handedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// serveOne answers one request; false means the connection must close.
// A panic in the handler is logged and ends the connection, as net/http
// does, instead of the process.
func (l *Server) serveOne(lc *serverConn, req *http.Request) (ok bool) {
	var start time.Time
	if l.opts.Observe != nil {
		start = time.Now()
	}
	w := &responseWriter{lc: lc, method: req.Method}
	defer func() {
		lc.ctx.endRequest()
		v := recover()
		if v != nil {
			if v != http.ErrAbortHandler { //nolint:errorlint // the sentinel itself, as net/http compares it
				l.log.Error("h1 server: panic serving request", "path", req.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			ok = false
		}
		if l.opts.Observe != nil {
			l.observe(w, req, start, v != nil)
		}
	}()
	if lc.bw == nil {
		lc.bw = bufio.NewWriterSize(lc.c, ServerBufferSize)
		lc.hdr = make(http.Header, 16)
	} else {
		clear(lc.hdr)
	}
	w.hdr = lc.hdr
	for k, vv := range l.opts.Header {
		w.hdr[k] = vv
	}
	if name := l.opts.RequestIDHeader; name != "" {
		id := req.Header.Get(name)
		if !l.opts.ValidRequestID(id) {
			id = l.opts.NewRequestID()
		}
		w.hdr[name] = []string{id}
	}
	l.opts.Handler.ServeHTTP(w, req)
	if w.err != nil {
		return false
	}
	return w.finish() == nil
}

// observe reports a served request to ServerOptions.Observe, with the
// status as net/http's middleware records it: 499 when the client went
// away, 500 after a panic.
func (l *Server) observe(w *responseWriter, req *http.Request, start time.Time, panicked bool) {
	status := w.status
	switch {
	case panicked && w.status == 0:
		status = http.StatusInternalServerError
	case w.lc.ctx.gone.Load():
		status = 499
	case status == 0:
		status = http.StatusOK
	}
	name := l.opts.RequestIDHeader
	if name == "" {
		name = "X-Request-Id"
	}
	var id string
	if vv := w.hdr[name]; len(vv) > 0 {
		id = vv[0]
	}
	l.opts.Observe(req, id, status, time.Since(start), w.bytes)
}
