package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The lean HTTP/1.1 client.
//
// net/http's Transport runs every request through three goroutines (the
// caller, the connection's writeLoop and readLoop) that hand the request
// and the response over channels; on this workload that hand-over costs
// more CPU than the proxying itself. For the common case, a request
// without a body to a plain-http upstream, the gateway instead writes the
// request and reads the response on the handler's own goroutine over a
// pooled keep-alive connection, parses the response head straight into
// the response header map and copies the body out of the connection's
// read buffer. Everything else (request bodies, which need full duplex,
// TLS, upgrades, a caller-supplied Transport) goes through http.Transport.

const (
	upReadBuf      = 16 << 10
	upWriteBuf     = 4 << 10
	maxIdlePerHost = 1024
	idleTimeout    = 90 * time.Second
	dialTimeout    = 2 * time.Second
	// maxHeadBytes bounds an upstream's response head.
	maxHeadBytes = 1 << 20
)

// aLongTimeAgo is a deadline in the past: setting it fails pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// pools maps upstream addresses to connection pools.
type pools struct {
	dialer net.Dialer
	mu     sync.Mutex
	byAddr map[string]*connPool
}

func newPools() *pools {
	return &pools{
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		byAddr: map[string]*connPool{},
	}
}

// get returns the pool for addr, creating it.
func (ps *pools) get(addr string) *connPool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byAddr[addr]
	if p == nil {
		p = &connPool{addr: addr, dialer: &ps.dialer}
		ps.byAddr[addr] = p
	}
	return p
}

// retain drops the pools whose address is not in keep, closing their idle
// connections; busy connections close when their request ends.
func (ps *pools) retain(keep map[string]bool) {
	ps.mu.Lock()
	var gone []*connPool
	for a, p := range ps.byAddr {
		if !keep[a] {
			gone = append(gone, p)
			delete(ps.byAddr, a)
		}
	}
	ps.mu.Unlock()
	for _, p := range gone {
		p.close()
	}
}

// prune closes connections idle for longer than idleTimeout.
func (ps *pools) prune(now time.Time) {
	ps.mu.Lock()
	all := make([]*connPool, 0, len(ps.byAddr))
	for _, p := range ps.byAddr {
		all = append(all, p)
	}
	ps.mu.Unlock()
	for _, p := range all {
		p.prune(now.UnixNano())
	}
}

// connPool keeps idle keep-alive connections to one address, most
// recently used last (a stack, so hot connections stay hot and stale
// ones sink to the bottom where prune finds them).
type connPool struct {
	addr   string
	dialer *net.Dialer
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

func (p *connPool) take() *upConn {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	p.mu.Unlock()
	return c
}

func (p *connPool) put(c *upConn, now int64) {
	c.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerHost {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *connPool) prune(now int64) {
	p.mu.Lock()
	var stale []*upConn
	i := 0
	for i < len(p.idle) && now-p.idle[i].idleSince > int64(idleTimeout) {
		i++
	}
	if i > 0 {
		stale = append(stale, p.idle[:i]...)
		n := copy(p.idle, p.idle[i:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

func (p *connPool) dial(ctx context.Context) (*upConn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{
		nc:   nc,
		bw:   bufio.NewWriterSize(nc, upWriteBuf),
		pool: p,
	}
	c.br = bufio.NewReaderSize(c, upReadBuf)
	return c, nil
}

// upConn is one keep-alive connection to an upstream. One request uses it
// at a time.
type upConn struct {
	nc        net.Conn
	br        *bufio.Reader // reads through upConn.Read
	bw        *bufio.Writer
	pool      *connPool
	idleSince int64
	// read counts bytes read for the current request: a reused connection
	// that fails before answering anything was closed by the upstream
	// while idle, and the request may be retried on a fresh one.
	read int64
	// cancelled is set when the client's context ended; deadlines are
	// then kept in the past.
	cancelled atomic.Bool
	// head is scratch space for the response head, reused per request.
	head []byte
	kvs  []kv
}

type kv struct{ k0, k1, v0, v1 int }

func (c *upConn) Read(p []byte) (int, error) {
	n, err := c.nc.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *upConn) close() { _ = c.nc.Close() }

// cancel fails the connection's pending and future I/O; it runs when the
// client's request context ends.
func (c *upConn) cancel() {
	c.cancelled.Store(true)
	_ = c.nc.SetDeadline(aLongTimeAgo)
}

// setReadDeadline sets a read deadline unless the request was cancelled.
func (c *upConn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	if c.cancelled.Load() {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// stale reports whether err on a reused connection means the upstream had
// closed it while it sat idle (nothing of an answer arrived).
func stale(err error, c *upConn) bool {
	if c.read > 0 {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// replayable reports whether a body-less request may be sent again after
// a stale connection failed it, by the rule net/http uses.
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	if !ok {
		_, ok = r.Header["X-Idempotency-Key"]
	}
	return ok
}

// writeRequest writes r's head (no body) for route rt.
func (c *upConn) writeRequest(r *http.Request, path string, rt *route) error {
	bw := c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	if q := r.URL.RawQuery; q != "" {
		bw.WriteByte('?')
		bw.WriteString(q)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(rt.hostHdr)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		switch k {
		case "Content-Length", "Expect":
			continue // the lean path carries no body
		}
		if !forwardable(k, vv, conn) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("X-Forwarded-For: ")
	for _, v := range r.Header["X-Forwarded-For"] {
		bw.WriteString(v)
		bw.WriteString(", ")
	}
	bw.WriteString(remoteIP(r.RemoteAddr))
	if r.TLS != nil {
		bw.WriteString("\r\nX-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	}
	if r.Host != "" {
		bw.WriteString("X-Forwarded-Host: ")
		bw.WriteString(r.Host)
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// remoteIP is the host part of a RemoteAddr, without allocating.
func remoteIP(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			addr = addr[:i]
			break
		}
		if addr[i] < '0' || addr[i] > '9' {
			break // no port
		}
	}
	if len(addr) > 1 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		addr = addr[1 : len(addr)-1]
	}
	return addr
}

// errBadResponse is an upstream answer the gateway cannot parse.
type errBadResponse string

func (e errBadResponse) Error() string { return "malformed response: " + string(e) }

// respHead is a parsed response head.
type respHead struct {
	status int
	// length is the body length, -1 for read-until-close, -2 for chunked.
	length int64
	// close: the connection cannot be reused after this response.
	close bool
	// trailers: the names the response announced in its Trailer header.
	trailers string
	// stream: flush each write (no length, or an event stream).
	stream bool
}

const (
	lengthUntilClose = -1
	lengthChunked    = -2
)

// readHead reads a response head for a request of method and writes its
// end-to-end headers into dst. 1xx answers other than 101 are skipped.
func (c *upConn) readHead(method string, dst http.Header) (respHead, error) {
	for {
		h, err := c.readOneHead(method, dst)
		if err != nil || h.status >= 200 || h.status == http.StatusSwitchingProtocols {
			return h, err
		}
	}
}

func (c *upConn) readOneHead(method string, dst http.Header) (respHead, error) {
	var h respHead
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return h, errBadResponse("status line too long")
		}
		return h, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 14 || string(line[:7]) != "HTTP/1." || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || (line[12] != ' ' && line[12] != '\r') {
		return h, errBadResponse("bad status line")
	}
	http10 := line[7] == '0'
	h.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if h.status < 100 {
		return h, errBadResponse("bad status code")
	}

	// Collect the header lines into the connection's scratch buffer; one
	// string conversion at the end gives every key and value without
	// further allocation.
	hb := c.head[:0]
	kvs := c.kvs[:0]
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return h, errBadResponse("header line too long")
			}
			return h, err
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, errBadResponse("obsolete line folding")
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 {
			return h, errBadResponse("header line without a name")
		}
		if len(hb)+len(line) > maxHeadBytes {
			return h, errBadResponse("head too large")
		}
		k0 := len(hb)
		hb = append(hb, line[:colon]...)
		if !canonicalize(hb[k0:]) {
			return h, errBadResponse("invalid header name")
		}
		k1 := len(hb)
		v := trimSpace(line[colon+1:])
		hb = append(hb, v...)
		kvs = append(kvs, kv{k0, k1, k1, len(hb)})
	}
	c.head, c.kvs = hb, kvs

	block := string(hb)
	h.length = lengthUntilClose
	if http10 {
		h.close = true
	}
	var conn []string
	lengthSeen := false
	chunked := false
	for _, e := range kvs {
		k, v := block[e.k0:e.k1], block[e.v0:e.v1]
		switch k {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (lengthSeen && n != h.length) {
				return h, errBadResponse("bad Content-Length")
			}
			h.length, lengthSeen = n, true
		case "Transfer-Encoding":
			if !equalFoldASCII(v, "chunked") {
				return h, errBadResponse("unsupported Transfer-Encoding " + v)
			}
			chunked = true
		case "Connection":
			conn = append(conn, v)
			if containsToken(v, "close") {
				h.close = true
			} else if http10 && containsToken(v, "keep-alive") {
				h.close = false
			}
		case "Trailer":
			if h.trailers != "" {
				h.trailers += ", "
			}
			h.trailers += v
		case "Content-Type":
			if len(v) >= 17 && equalFoldASCII(v[:17], "text/event-stream") {
				h.stream = true
			}
		}
	}
	if chunked {
		h.length = lengthChunked
	}
	noBody := method == http.MethodHead || h.status < 200 || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	if noBody {
		h.length = 0
	}
	if h.length == lengthUntilClose {
		h.close = true
	}
	if h.length < 0 {
		h.stream = true
	}
	if h.status < 200 {
		return h, nil // informational: nothing to forward
	}

	vals := make([]string, len(kvs))
	for i, e := range kvs {
		k := block[e.k0:e.k1]
		if isHopHeader(k) || (len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		if chunked && k == "Content-Length" {
			continue // Transfer-Encoding wins (RFC 9112 6.3)
		}
		vals[i] = block[e.v0:e.v1]
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vals[i])
		} else {
			dst[k] = vals[i : i+1 : i+1]
		}
	}
	return h, nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// canonicalize rewrites a header name in place into net/http's canonical
// form ("content-type" -> "Content-Type") and reports whether it is a
// valid token.
func canonicalize(b []byte) bool {
	upper := true
	for i, c := range b {
		if !isTokenChar(c) {
			return false
		}
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// errChunk is a malformed chunked body.
var errChunk = errors.New("malformed chunked body")

// copyBodyTo copies the response body described by h from the connection
// to w, straight out of the read buffer. It returns whether the body was
// read completely (so the connection may be reused) and which side
// failed. trailer receives trailer fields of a chunked body.
func (c *upConn) copyBodyTo(w io.Writer, h respHead, flush func(), trailer http.Header) (complete bool, readErr, writeErr error) {
	br := c.br
	switch h.length {
	case 0:
		return true, nil, nil
	case lengthChunked:
		for {
			size, err := c.chunkSize()
			if err != nil {
				return false, err, nil
			}
			if size == 0 {
				if err := c.readTrailer(trailer); err != nil {
					return false, err, nil
				}
				return true, nil, nil
			}
			if _, rerr, werr := c.copyN(w, size, flush); rerr != nil || werr != nil {
				return false, rerr, werr
			}
			line, err := br.ReadSlice('\n')
			if err != nil {
				return false, err, nil
			}
			if len(trimCRLF(line)) != 0 {
				return false, errChunk, nil
			}
		}
	case lengthUntilClose:
		_, rerr, werr := c.copyN(w, -1, flush)
		if errors.Is(rerr, io.EOF) {
			rerr = nil
		}
		return false, rerr, werr
	default:
		_, rerr, werr := c.copyN(w, h.length, flush)
		return rerr == nil && werr == nil, rerr, werr
	}
}

// copyN copies n bytes (all until EOF when n < 0) from the read buffer
// to w. A short body is io.ErrUnexpectedEOF.
func (c *upConn) copyN(w io.Writer, n int64, flush func()) (int64, error, error) {
	br := c.br
	var done int64
	for n < 0 || done < n {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) && n >= 0 {
					err = io.ErrUnexpectedEOF
				}
				return done, err, nil
			}
		}
		m := br.Buffered()
		if n >= 0 && int64(m) > n-done {
			m = int(n - done)
		}
		chunk, _ := br.Peek(m)
		if _, err := w.Write(chunk); err != nil {
			return done, nil, err
		}
		_, _ = br.Discard(m)
		done += int64(m)
		if flush != nil {
			flush()
		}
	}
	return done, nil, nil
}

// chunkSize reads a chunk-size line ("1a2b;ext=1\r\n").
func (c *upConn) chunkSize() (int64, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	line = trimCRLF(line)
	var n int64
	digits := 0
	for _, b := range line {
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		case b == ';' || b == ' ' || b == '\t':
			goto done
		default:
			return 0, errChunk
		}
		if digits == 15 {
			return 0, errChunk
		}
		n = n<<4 | int64(d)
		digits++
	}
done:
	if digits == 0 {
		return 0, errChunk
	}
	return n, nil
}

// readTrailer reads the trailer section after the last chunk.
func (c *upConn) readTrailer(trailer http.Header) error {
	size := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			return nil
		}
		size += len(line)
		if size > maxHeadBytes {
			return errBadResponse("trailer too large")
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 || trailer == nil {
			continue
		}
		name := append([]byte(nil), line[:colon]...)
		if !canonicalize(name) {
			continue
		}
		k := string(name)
		if isHopHeader(k) {
			continue
		}
		trailer[k] = append(trailer[k], string(trimSpace(line[colon+1:])))
	}
}

// forwardLean proxies a body-less request to a plain-http upstream over
// the lean client.
func (g *Gateway) forwardLean(w http.ResponseWriter, r *http.Request, ep *endpoint, rt *route) outcome {
	ctx := r.Context()
	path := targetPath(r, len(ep.name), rt.basePath)
	pool := rt.pool
	c := pool.take()
	retried := false
	for {
		reused := c != nil
		if c == nil {
			var err error
			if c, err = pool.dial(ctx); err != nil {
				return g.upstreamFailed(w, r, rt, err, false)
			}
		}
		c.read = 0
		c.cancelled.Store(false)
		stop := context.AfterFunc(ctx, c.cancel)
		o, retry := g.exchange(w, r, rt, c, path, reused && !retried)
		if !stop() || c.cancelled.Load() {
			// The client left; whatever the connection was doing, it is
			// no longer in a state to be reused.
			o.reuse = false
		}
		if o.reuse {
			_ = c.nc.SetDeadline(time.Time{})
			pool.put(c, time.Now().UnixNano())
		} else {
			c.close()
		}
		if !retry {
			return o.outcome
		}
		retried, c = true, nil
	}
}

type leanOutcome struct {
	outcome
	reuse bool
}

// exchange sends one request on c and relays the answer. retry is true
// when c turned out to be stale and nothing was sent to the client, so
// the caller may try again on a fresh connection.
func (g *Gateway) exchange(w http.ResponseWriter, r *http.Request, rt *route, c *upConn, path string, mayRetry bool) (o leanOutcome, retry bool) {
	err := c.writeRequest(r, path, rt)
	var h respHead
	if err == nil {
		c.setReadDeadline(time.Now().Add(g.upstreamTimeout))
		h, err = c.readHead(r.Method, w.Header())
	}
	if err != nil {
		if mayRetry && stale(err, c) && replayable(r) && r.Context().Err() == nil {
			return o, true
		}
		var bad errBadResponse
		if errors.As(err, &bad) {
			g.problem(w, r, http.StatusBadGateway, registry.CodeUnavailable, "route "+quote(rt.name)+": upstream sent a "+bad.Error())
			o.outcome = outcome{status: http.StatusBadGateway, failed: true, upstreamErr: true}
			return o, false
		}
		o.outcome = g.upstreamFailed(w, r, rt, err, false)
		return o, false
	}
	c.setReadDeadline(time.Time{})

	hdr := w.Header()
	hdr["X-Model-Version"] = rt.hdrVersion
	hdr["X-Route"] = rt.hdrRoute
	var trailer http.Header
	if h.trailers != "" && h.length == lengthChunked {
		hdr["Trailer"] = []string{h.trailers}
		trailer = http.Header{}
	}
	w.WriteHeader(h.status)
	o.status = h.status
	o.failed = h.status >= 500

	var flush func()
	if h.stream {
		rc := http.NewResponseController(w)
		flush = func() { _ = rc.Flush() }
		flush()
	}
	complete, rerr, werr := c.copyBodyTo(w, h, flush, trailer)
	switch {
	case werr != nil:
		o.clientGone = true
	case rerr != nil:
		if r.Context().Err() != nil {
			o.clientGone = true
			break
		}
		g.log.Debug("gateway: upstream body failed", "route", rt.name, "err", rerr)
		o.failed, o.upstreamErr, o.abort = true, true, true
	default:
		for k, vv := range trailer {
			hdr[http.TrailerPrefix+k] = vv
		}
	}
	o.reuse = complete && !h.close && c.br.Buffered() == 0
	return o, false
}
