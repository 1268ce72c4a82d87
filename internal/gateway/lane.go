package gateway

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
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The fast lane.
//
// net/http's server costs more per request than the proxying itself on
// small prediction calls: besides parsing, it starts a background read on
// every connection for every request (to notice a client leaving), which
// is one more system call, a goroutine and two wake-ups each time. The
// lane serves the common request itself, on the connection's goroutine:
// a GET, HEAD, POST, PUT, PATCH or DELETE under /serve/, without a body
// or with one Content-Length of plain digits, whose head arrived whole
// and whose caller the Authorize hook accepts. Everything else (chunked
// or otherwise framed bodies, Expect: 100-continue, an upgrade, HTTP/1.0,
// a bad or partial head, a Host net/http would refuse, a refused token,
// any API route) hands the connection, with the bytes already read, to
// net/http through the lane's listener interface, and net/http serves it
// from then on. FuzzLaneParse holds the lane to that: what it serves,
// net/http's server would have read the same way. The lane answers with
// the same gateway code, so routing, the guard, metrics, streaming and
// problem+json responses are the same on both paths, and Observe gives
// its requests the same access log and API metrics.
//
// A body (laneBody) is read from the connection as the gateway asks for
// it: whole by the lean client (up to leanBodyMax), streamed by
// http.Transport beyond. ReadTimeout bounds a body that did not arrive
// with its head; what the handler left unread is discarded (up to
// maxDiscard, as net/http) or the connection closes.
//
// A client that leaves while the upstream thinks: instead of a read
// that waits on the client connection all along, the request's context
// looks at the socket (a non-blocking MSG_PEEK) when asked, and the lean
// client asks every half second while it waits for an answer's head. So
// a departed client cancels the upstream request within a second rather
// than at once, and a fast request pays nothing. A body that streams
// (and the Transport path) waits on the context's Done channel, which a
// watcher closes when the client has gone (see laneCtx).

// LaneOptions configures Lane.
type LaneOptions struct {
	// Authorize reports whether the request may be served (for the
	// registry: a valid token with read scope). A request it refuses is
	// handed to net/http, whose handler writes the 401/403. nil allows
	// everything.
	Authorize func(*http.Request) bool
	// Header is added to every lane response (for the registry: the
	// security headers its middleware sets on every route).
	Header http.Header
	// RequestIDHeader, when set, names a response header that carries the
	// request's ID: the client's own when it sent a valid one under the
	// same name, else a generated one (registry.NewRequestID, the API's
	// format). The upstream receives it too.
	RequestIDHeader string
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
	// Observe, when set, is called after every request the lane served
	// with the request, its ID (as the answer carries it), the status
	// (499: the client went away), the time taken and the body bytes
	// written: for the registry, the same API metrics and access log
	// line that net/http's middleware records for the requests it serves.
	Observe func(r *http.Request, id string, status int, elapsed time.Duration, bytes int64)
	// Logger for accept errors (default: the gateway's).
	Logger *slog.Logger
}

// Lane serves the gateway's common requests on a lean HTTP/1.1 loop and
// hands the rest to net/http. It is a net.Listener: pass it to
// http.Server.Serve, which then sees the connections handed over. Close
// (which http.Server.Shutdown calls) stops accepting; Shutdown then waits
// for the lane's own connections.
type Lane struct {
	g    *Gateway
	ln   net.Listener
	opts LaneOptions
	log  *slog.Logger

	handoff chan net.Conn
	done    chan struct{} // closed when accepting stopped
	errMu   sync.Mutex
	err     error

	mu      sync.Mutex // guards conns
	conns   map[*laneConn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

// Lane starts serving ln's connections. The caller serves the returned
// listener with an http.Server whose handler mounts the gateway.
func (g *Gateway) Lane(ln net.Listener, opts LaneOptions) *Lane {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 10 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	// Canonical, so the gateway finds the ID where net/http's path puts it.
	opts.RequestIDHeader = http.CanonicalHeaderKey(opts.RequestIDHeader)
	l := &Lane{
		g:       g,
		ln:      ln,
		opts:    opts,
		log:     opts.Logger,
		handoff: make(chan net.Conn),
		done:    make(chan struct{}),
		conns:   make(map[*laneConn]struct{}),
	}
	if l.log == nil {
		l.log = g.log
	}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection handed over to net/http.
func (l *Lane) Accept() (net.Conn, error) {
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
func (l *Lane) Close() error { return l.ln.Close() }

// Addr is the listening address.
func (l *Lane) Addr() net.Addr { return l.ln.Addr() }

// Shutdown closes the lane's idle connections and waits until the busy
// ones finished their request and the gateway's upgraded connections
// ended, or ctx ends: then it closes them. Call it after Close.
func (l *Lane) Shutdown(ctx context.Context) error {
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
	go func() { l.wg.Wait(); l.g.upgrades.Wait(); close(waited) }()
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
		l.g.abortAll()
		<-waited
		return ctx.Err()
	}
}

func (l *Lane) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and the like: back off as
				// net/http does, then keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.log.Warn("gateway lane: accept failed; retrying", "err", err, "delay", delay)
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
		lc := &laneConn{c: c, br: bufio.NewReaderSize(c, laneBufSize), remote: c.RemoteAddr().String(), ctx: &laneCtx{c: c}}
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
	laneBufSize = 4 << 10
	// laneMaxHeaders bounds the header lines of a lane request; more go
	// to net/http.
	laneMaxHeaders = 64
)

type laneConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	idle   atomic.Bool
	// deadline is when the read deadline set last runs out.
	deadline time.Time
	scratch  []byte
	hdr      http.Header // the response header map, reused
	ctx      *laneCtx
	body     *laneBody // the current request's body, when it has one
}

// laneCtx is the context of the lane's requests on one connection. Err
// reports context.Canceled once the client has closed or reset the
// connection, which it checks on each call (a non-blocking MSG_PEEK), so
// the lean client, which polls Err while it waits for an answer's head,
// costs the fast requests nothing. Done, which only streams and the
// Transport path ask for, starts a watcher that peeks every
// laneWatchEvery until the request ends (endRequest) and closes the
// channel when the client has gone, so context.AfterFunc and selects on
// Done work as on any context.
type laneCtx struct {
	c    net.Conn
	gone atomic.Bool

	mu     sync.Mutex // guards the rest
	done   chan struct{}
	closed bool          // done is closed
	stop   chan struct{} // closed to stop the running watcher (nil: none)
}

// laneWatchEvery is how often a request whose Done was asked for looks
// for its client: a departure releases the upstream within about this.
const laneWatchEvery = 200 * time.Millisecond

func (x *laneCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *laneCtx) Value(any) any               { return nil }

func (x *laneCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.gone.Load() {
			close(x.done)
			x.closed = true
		}
	}
	if !x.closed && x.stop == nil {
		x.stop = make(chan struct{})
		go x.watch(x.stop)
	}
	return x.done
}

func (x *laneCtx) Err() error {
	if x.gone.Load() {
		return context.Canceled
	}
	if peerGone(x.c) {
		x.cancel()
		return context.Canceled
	}
	return nil
}

// cancel marks the client gone and closes Done.
func (x *laneCtx) cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gone.Store(true)
	if x.done != nil && !x.closed {
		close(x.done)
		x.closed = true
	}
}

func (x *laneCtx) watch(stop chan struct{}) {
	t := time.NewTicker(laneWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if x.Err() != nil {
				return
			}
		}
	}
}

// endRequest stops the watcher of the request that ended, if it had one.
func (x *laneCtx) endRequest() {
	x.mu.Lock()
	if x.stop != nil {
		close(x.stop)
		x.stop = nil
	}
	x.mu.Unlock()
}

func (l *Lane) forget(lc *laneConn) {
	l.mu.Lock()
	delete(l.conns, lc)
	l.mu.Unlock()
	l.wg.Done()
}

func (l *Lane) serveConn(lc *laneConn) {
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
func (lc *laneConn) buffered() []byte {
	buf, _ := lc.br.Peek(lc.br.Buffered())
	return buf
}

// screenHead looks at the complete lines of the request head at the
// start of buf for framing that two HTTP implementations can read
// differently, which a front proxy and this server (or this server and
// an upstream) would then disagree on: a line that ends in a bare LF, an
// obs-folded line, both Transfer-Encoding and Content-Length (RFC 9112
// sections 2.2, 5.2 and 6.1). net/http accepts all three; the lane
// refuses them for every request it reads, not only the ones it serves.
// It returns why the head is refused, or "".
func screenHead(buf []byte) string {
	te, cl := false, false
	for first := true; ; first = false {
		nl := bytes.IndexByte(buf, '\n')
		if nl < 0 {
			return "" // the rest has not arrived; net/http reads it
		}
		if nl == 0 || buf[nl-1] != '\r' {
			return "a line of the request head ends in a bare LF instead of CRLF"
		}
		line := buf[:nl-1]
		buf = buf[nl+1:]
		if len(line) == 0 {
			if first {
				continue
			}
			return ""
		}
		if !first && (line[0] == ' ' || line[0] == '\t') {
			return "the request head holds an obs-folded line (a line that starts with white space)"
		}
		name, _, found := bytes.Cut(line, []byte(":"))
		if !found || first {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		te = te || equalFoldASCII(string(name), "Transfer-Encoding")
		cl = cl || equalFoldASCII(string(name), "Content-Length")
		if te && cl {
			return "the request has both Transfer-Encoding and Content-Length"
		}
	}
}

// refuse answers 400 to a request whose head screenHead refused and ends
// the connection: what follows the head cannot be framed safely. Like
// net/http, it half-closes and reads what the client still sends for a
// moment, so the answer is not lost to a reset.
func (l *Lane) refuse(lc *laneConn, why string) {
	body := `{"type":"` + problemTypeBase + string(registry.CodeInvalidArgument) + `","title":"Bad Request","status":400,` +
		`"detail":"` + why + `","code":"` + string(registry.CodeInvalidArgument) + `"}` + "\n"
	bw := bufio.NewWriterSize(lc.c, 512)
	_, _ = bw.WriteString("HTTP/1.1 400 Bad Request\r\nDate: " + httpDate() + "\r\n")
	for k, vv := range l.opts.Header {
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	_, _ = bw.WriteString("Content-Type: application/problem+json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	if bw.Flush() != nil {
		return
	}
	if cw, ok := lc.c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = lc.c.SetReadDeadline(time.Now().Add(refuseLinger))
		_, _ = io.CopyN(io.Discard, lc.br, maxDiscard)
	}
}

// refuseLinger is how long a refused connection is read (and dropped)
// after its answer, so the client sees the answer rather than a reset.
const refuseLinger = 500 * time.Millisecond

// handOff gives the connection to net/http, with what was read of it.
func (l *Lane) handOff(lc *laneConn) bool {
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
// lane buffered first.
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
func (l *Lane) serveOne(lc *laneConn, req *http.Request) (ok bool) {
	var start time.Time
	if l.opts.Observe != nil {
		start = time.Now()
	}
	w := &laneWriter{lc: lc, method: req.Method}
	defer func() {
		lc.ctx.endRequest()
		v := recover()
		if v != nil {
			l.log.Error("gateway lane: panic serving request", "path", req.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			ok = false
		}
		if l.opts.Observe != nil {
			l.observe(w, req, start, v != nil)
		}
	}()
	if lc.bw == nil {
		lc.bw = bufio.NewWriterSize(lc.c, laneBufSize)
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
		if !registry.ValidRequestID(id) {
			id = registry.NewRequestID() // the API's format
		}
		w.hdr[name] = []string{id}
	}
	abort := l.g.serve(w, req)
	if abort || w.err != nil {
		return false
	}
	return w.finish() == nil
}

// observe reports a served request to LaneOptions.Observe, with the
// status as net/http's middleware records it: 499 when the client went
// away, 500 after a panic.
func (l *Lane) observe(w *laneWriter, req *http.Request, start time.Time, panicked bool) {
	status := w.status
	switch {
	case panicked:
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

// parse reads the request head from what is buffered, without consuming
// it. ok is false when the request is not the lane's to serve.
func (l *Lane) parse(lc *laneConn) (req *http.Request, headLen int, ok bool) {
	buf, _ := lc.br.Peek(lc.br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, 0, false // partial head: net/http reads the rest
	}
	headLen = end + 4
	head := append(lc.scratch[:0], buf[:end+2]...)
	lc.scratch = head

	// Request line: METHOD SP origin-form SP HTTP/1.1
	nl := bytes.Index(head, []byte("\r\n"))
	line := head[:nl]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, 0, false
	}
	var method string
	switch string(line[:sp]) { // no allocation: the compiler compares in place
	case http.MethodGet:
		method = http.MethodGet
	case http.MethodHead:
		method = http.MethodHead
	case http.MethodPost:
		method = http.MethodPost
	case http.MethodPut:
		method = http.MethodPut
	case http.MethodPatch:
		method = http.MethodPatch
	case http.MethodDelete:
		method = http.MethodDelete
	default:
		return nil, 0, false // other methods: net/http
	}
	line = line[sp+1:]
	if !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return nil, 0, false
	}
	target := line[:len(line)-len(" HTTP/1.1")]
	if !bytes.HasPrefix(target, []byte(servePrefix)) || !cleanTarget(target) {
		return nil, 0, false
	}

	// Header lines, canonicalised in place, then one string for all.
	type span struct{ k0, k1, v0, v1 int }
	var spans [laneMaxHeaders]span
	n := 0
	for i := nl + 2; i < len(head); {
		j := bytes.Index(head[i:], []byte("\r\n"))
		if j <= 0 || n == laneMaxHeaders {
			return nil, 0, false
		}
		ln := head[i : i+j]
		colon := bytes.IndexByte(ln, ':')
		if colon <= 0 || !canonicalize(ln[:colon]) {
			return nil, 0, false // also obs-fold and "Name :"
		}
		v0, v1 := colon+1, len(ln)
		for v0 < v1 && (ln[v0] == ' ' || ln[v0] == '\t') {
			v0++
		}
		for v1 > v0 && (ln[v1-1] == ' ' || ln[v1-1] == '\t') {
			v1--
		}
		for _, c := range ln[v0:v1] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, 0, false
			}
		}
		spans[n] = span{i, i + colon, i + v0, i + v1}
		n++
		i += j + 2
	}
	block := string(head)
	hdr := make(http.Header, n)
	vals := make([]string, n)
	host, hosts := "", 0
	length, lengths := int64(0), 0
	for x, s := range spans[:n] {
		k, v := block[s.k0:s.k1], block[s.v0:s.v1]
		switch k {
		case "Host":
			host, hosts = v, hosts+1
			continue // net/http keeps Host out of the header map too
		case "Content-Length":
			// One value, digits only (no sign, no list): anything else,
			// even what net/http would accept (repeated equal values),
			// is net/http's to judge.
			n, ok := parseLength(v)
			if !ok || lengths > 0 {
				return nil, 0, false
			}
			length, lengths = n, 1
		case "Transfer-Encoding", "Expect", "Upgrade":
			return nil, 0, false
		case "Connection":
			if !onlyKeepAlive(v) {
				return nil, 0, false
			}
		}
		vals[x] = v
		if old, ok := hdr[k]; ok {
			hdr[k] = append(old, v)
		} else {
			hdr[k] = vals[x : x+1 : x+1]
		}
	}
	if hosts != 1 || !validHost(host) {
		return nil, 0, false
	}
	uri := block[len(method)+1 : len(method)+1+len(target)]
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, 0, false
	}
	req = &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          http.NoBody,
		ContentLength: length,
		Host:          host,
		RemoteAddr:    lc.remote,
		RequestURI:    uri,
	}
	if length > 0 {
		// A new one each time: a reader still holding the last one
		// must not read this request's body.
		lc.body = &laneBody{lc: lc, left: length}
		req.Body = lc.body
	}
	return req.WithContext(lc.ctx), headLen, true
}

// maxLengthDigits bounds a Content-Length value: 15 digits is more than
// any body the gateway will see, and cannot overflow an int64.
const maxLengthDigits = 15

// parseLength parses a Content-Length value: 1 to maxLengthDigits ASCII
// digits and nothing else (net/http takes the same digits, no sign).
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > maxLengthDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// laneBody is the body of a lane request: exactly Content-Length bytes
// read from the connection's buffered reader. The gateway reads it on the
// handler's goroutine (lean client) or on http.Transport's write loop,
// which may still hold it when the handler returns; finishBody then takes
// it back (see Lane.finishBody). mu is held for the whole of a Read.
type laneBody struct {
	lc     *laneConn
	mu     sync.Mutex
	left   int64 // bytes of the body not yet read
	closed bool
	err    error // a read error: the connection cannot carry another request
}

func (b *laneBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.left == 0:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.lc.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the client closed inside the body
		}
		b.err = err
		return n, err
	}
	if b.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// Close ends the body for its reader; the lane discards what is unread.
func (b *laneBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// maxDiscard is how much of a body nobody read the lane reads and drops
// to keep the connection, as net/http's server does (256 KB); past it the
// connection closes.
const maxDiscard = 256 << 10

// finishBody takes the body of the request just answered back from
// whoever read it and skips what is left of it. false: the connection
// cannot carry another request.
func (l *Lane) finishBody(lc *laneConn) bool {
	b := lc.body
	lc.body = nil
	if !b.mu.TryLock() {
		// http.Transport's write loop is still inside a Read, waiting
		// for the client: wake it (the connection is lost then) and wait.
		_ = lc.c.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		return false
	}
	b.closed = true
	left, err := b.left, b.err
	b.mu.Unlock()
	if err != nil {
		return false
	}
	if left == 0 {
		return true
	}
	if left > maxDiscard {
		return false
	}
	l.bodyDeadline(lc, left)
	_, err = lc.br.Discard(int(left))
	return err == nil
}

// bodyDeadline bounds the reading of n more body bytes by ReadTimeout
// when they have not all arrived yet.
func (l *Lane) bodyDeadline(lc *laneConn, n int64) {
	if int64(lc.br.Buffered()) >= n {
		return
	}
	lc.deadline = time.Now().Add(l.opts.ReadTimeout)
	_ = lc.c.SetReadDeadline(lc.deadline)
}

// validHost reports whether a Host value holds only the bytes net/http's
// server allows in one (httpguts.ValidHostHeader); it answers 400 to
// anything else, so the lane hands such requests over.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cleanTarget reports whether a request target needs none of the path
// cleaning net/http's ServeMux would do (dot segments, empty segments)
// and holds no fragment or control byte.
func cleanTarget(t []byte) bool {
	path := t
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		path = t[:q]
	}
	if bytes.Contains(path, []byte("//")) || bytes.Contains(path, []byte("/./")) || bytes.Contains(path, []byte("/../")) ||
		bytes.HasSuffix(path, []byte("/.")) || bytes.HasSuffix(path, []byte("/..")) {
		return false
	}
	for _, c := range t {
		if c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// onlyKeepAlive reports whether a Connection header lists nothing but
// keep-alive (what HTTP/1.1 means anyway).
func onlyKeepAlive(v string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if !strings.EqualFold(strings.TrimSpace(t), "keep-alive") {
			return false
		}
	}
	return true
}

// laneWriter is the http.ResponseWriter of a lane request: it writes
// HTTP/1.1 to the connection's buffered writer, with Content-Length
// framing when the handler set it and chunked framing otherwise.
type laneWriter struct {
	lc          *laneConn
	method      string
	hdr         http.Header
	wroteHeader bool
	status      int
	bytes       int64 // body bytes written
	chunked     bool
	noBody      bool
	err         error
	numBuf      [20]byte
}

func (w *laneWriter) Header() http.Header { return w.hdr }

func (w *laneWriter) WriteHeader(code int) {
	if w.wroteHeader || code < 200 {
		return // informational answers are not forwarded
	}
	w.wroteHeader = true
	w.status = code
	bw := w.lc.bw
	w.noBody = w.method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	_, hasLen := w.hdr["Content-Length"]
	w.chunked = !hasLen && !w.noBody
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(w.numBuf[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(http.StatusText(code))
	_, _ = bw.WriteString("\r\n")
	if _, ok := w.hdr["Date"]; !ok {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Transfer-Encoding" || k == "Connection" {
			continue // trailers come after the body; framing is ours
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

// writeHeaderLine writes "k: v", with CR and LF in v turned into spaces
// as net/http does, so no value can start a header of its own.
func writeHeaderLine(bw *bufio.Writer, k, v string) {
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			_ = bw.WriteByte(' ')
		} else {
			_ = bw.WriteByte(c)
		}
	}
	_, _ = bw.WriteString("\r\n")
}

func (w *laneWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	bw := w.lc.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendInt(w.numBuf[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.bytes += int64(n)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered (http.Flusher, for streamed answers).
func (w *laneWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil {
		w.err = w.lc.bw.Flush()
	}
}

// SetReadDeadline sets the client connection's read deadline (for
// http.ResponseController): the proxy wakes a body read with it.
func (w *laneWriter) SetReadDeadline(t time.Time) error {
	w.lc.deadline = t
	return w.lc.c.SetReadDeadline(t)
}

// finish ends the response: the last chunk and trailers when chunked,
// then one write to the connection.
func (w *laneWriter) finish() error {
	if !w.wroteHeader {
		if _, ok := w.hdr["Content-Length"]; !ok {
			w.hdr["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	bw := w.lc.bw
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		for k, vv := range w.hdr {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					writeHeaderLine(bw, name, v)
				}
			}
		}
		_, _ = bw.WriteString("\r\n")
	}
	w.err = bw.Flush()
	return w.err
}

// httpDate is the Date header value, formatted at most once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]
