package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/gateway/h1"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

const servePrefix = "/serve/"

// ServeHTTP proxies /serve/{endpoint}/{path...} to one of the endpoint's
// routes: the rest of the path and the query go to the route's
// upstream_url. Responses carry X-Model-Version and X-Route.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.serve(w, r) {
		panic(http.ErrAbortHandler)
	}
}

// serve answers one gateway request. abort is true when the upstream
// broke off mid-body after the status line was sent: the client
// connection must then be dropped so the truncated body cannot pass for a
// complete one.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) (abort bool) {
	start := g.now()
	if len(r.TransferEncoding) > 0 {
		// net/http frames a request with both Transfer-Encoding and
		// Content-Length by the former and drops the latter, so it cannot
		// be told apart here: the connection of every request framed by
		// Transfer-Encoding closes after it (RFC 9112 section 6.1), and
		// a front proxy that framed it by Content-Length cannot have a
		// request of its own read from its body. (The engine's server refuses
		// the ambiguous heads it reads outright.)
		w.Header()["Connection"] = []string{"close"}
	}
	name, rest, status, msg := splitServePath(r.URL.EscapedPath())
	if status != 0 {
		code := registry.CodeInvalidArgument
		if status == http.StatusNotFound {
			code = registry.CodeNotFound
		}
		g.problem(w, r, status, code, msg)
		return false
	}
	if _, ok := hops(r.Header); !ok {
		g.problem(w, r, http.StatusLoopDetected, registry.CodeInvalidArgument,
			"the request passed "+strconv.Itoa(maxHops)+" mlregistry gateways already; an endpoint's upstream_url probably points back at a gateway")
		return false
	}
	t, err := g.current(r.Context())
	if err != nil {
		g.log.Warn("gateway: cannot load endpoints", "err", err)
		g.problem(w, r, http.StatusServiceUnavailable, registry.CodeUnavailable, "the gateway cannot load its endpoints")
		return false
	}
	ep := t.endpoints[name]
	if ep == nil {
		g.problem(w, r, http.StatusNotFound, registry.CodeNotFound, "endpoint "+quote(name)+" not found")
		return false
	}
	rt := ep.pick(r)
	if rt == nil {
		g.problem(w, r, http.StatusServiceUnavailable, registry.CodeUnavailable, "endpoint "+quote(name)+" has no route with weight > 0")
		return false
	}
	return g.forward(w, r, ep, rt, rest, start)
}

// EndpointName is the endpoint a /serve/ request is for, read from its
// path as the gateway routes it; "" when the path names none (the gateway
// then answers 400 or 404). Authorization keys on it, so it must be the
// very name the gateway routes by.
func EndpointName(r *http.Request) string {
	name, _, _, _ := splitServePath(r.URL.EscapedPath())
	return name
}

// splitServePath splits the escaped request path /serve/{endpoint}{rest}:
// name is the endpoint name unescaped, rest the remainder still escaped,
// as it goes upstream after the route's base path. The name ends at the
// first "/" of the escaped path, so an escaped byte in it cannot shift
// where the remainder starts. A path the gateway refuses gets status
// (404: not a gateway path; 400: a name with an encoded "/", a bad escape,
// or a dot segment, plain or encoded, that could climb out of the route's
// base path on the upstream) and a message.
func splitServePath(escaped string) (name, rest string, status int, msg string) {
	if !strings.HasPrefix(escaped, servePrefix) {
		return "", "", http.StatusNotFound, "gateway paths look like /serve/{endpoint}/{path}"
	}
	p := escaped[len(servePrefix):]
	name = p
	if i := strings.IndexByte(p, '/'); i >= 0 {
		name, rest = p[:i], p[i:]
	}
	if strings.IndexByte(name, '%') >= 0 {
		var err error
		if name, err = url.PathUnescape(name); err != nil || strings.ContainsAny(name, "/\\") {
			return "", "", http.StatusBadRequest, "the endpoint name in the path is not a valid name"
		}
	}
	if name == "" {
		return "", "", http.StatusNotFound, "gateway paths look like /serve/{endpoint}/{path}"
	}
	if dotSegment(rest) {
		return "", "", http.StatusBadRequest, `the path after the endpoint name must not hold "." or ".." segments, plain or percent-encoded`
	}
	return name, rest, 0, ""
}

// dotSegment reports whether the escaped path p holds a "." or ".."
// segment once unescaped, counting "/" and "\\" (encoded or not) as
// separators, since an upstream may decode and resolve either. An invalid
// escape counts too, as the upstream could read it in any way.
func dotSegment(p string) bool {
	if strings.IndexByte(p, '.') < 0 && strings.IndexByte(p, '%') < 0 {
		return false // the common case: nothing to look at
	}
	for seg := range strings.SplitSeq(p, "/") {
		if strings.IndexByte(seg, '%') >= 0 {
			u, err := url.PathUnescape(seg)
			if err != nil {
				return true
			}
			seg = u
		}
		for piece := range strings.FieldsFuncSeq(seg, isSlash) {
			if piece == "." || piece == ".." {
				return true
			}
		}
	}
	return false
}

func isSlash(r rune) bool { return r == '/' || r == '\\' }

func quote(s string) string { return `"` + s + `"` }

// outcome is how a proxied request ended, for metrics and the guard.
type outcome struct {
	status int
	// failed: a transport error, a timeout or a 5xx answer.
	failed bool
	// upstreamErr: no usable answer from the upstream (subset of failed).
	upstreamErr bool
	// clientGone: the client went away; the guard ignores the request.
	clientGone bool
	// clientFault: the client's own request was at fault (its body broke
	// its framing); the guard ignores the request.
	clientFault bool
	// abort: the upstream broke off mid-body after the status line was
	// sent; the client connection must be aborted so the truncated body
	// cannot pass for a complete one.
	abort bool
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, ep *endpoint, rt *route, rest string, start time.Time) (abort bool) {
	// Every answer from here on names the route, the gateway's own
	// 502/504 too; the upstream's headers cannot override these.
	h := w.Header()
	h["X-Model-Version"] = rt.hdrVersion
	h["X-Route"] = rt.hdrRoute
	id := requestID(w, r)
	if g.receipts != nil {
		h[registry.ReceiptHeader] = []string{g.receipts.Sign(registry.Receipt{
			Endpoint: ep.name, Route: rt.name, Model: ep.spec.Model, Version: rt.version, RequestID: id,
		})}
	}
	if rt.refused != nil {
		g.finish(ep, rt, start, g.upstreamFailed(w, r, rt, rt.refused, false))
		return false
	}
	if isUpgrade(r.Header) {
		g.finish(ep, rt, start, g.forwardUpgrade(w, r, rt, rest, id))
		return false
	}
	var sc *shadowCopy
	if len(ep.shadows) > 0 {
		sc = g.shadowsFor(ep, r, rest, id)
	}
	var o outcome
	if rt.pool != nil && engineCarries(r) {
		o = g.forwardH1(w, r, rt, rest, id, start, sc)
	} else {
		o = g.forwardTransport(w, r, ep, rt, rest, id, sc)
	}
	sc.settle()
	g.finish(ep, rt, start, o)
	return o.abort
}

// finish records the outcome in metrics and in the guard's window.
func (g *Gateway) finish(ep *endpoint, rt *route, start time.Time, o outcome) {
	end := g.now()
	st := rt.st
	m := st.metrics
	m.requests[outcomeClass(o)].Inc()
	if o.failed {
		m.upErrors.Inc()
	}
	took := end.Sub(start)
	m.duration.Observe(took.Seconds())
	if rt.obs != nil && !o.clientGone && !o.clientFault {
		rt.obs.record(o.failed, took)
	}
	if st.win != nil && !o.clientGone && !o.clientFault {
		st.win.record(end, o.failed)
		st.win.observe(end, took)
		g.checkGuard(ep, rt, end, o.failed)
	}
}

// targetPath joins the route's upstream path and the part of the request
// path after /serve/{endpoint} (see splitServePath), both in escaped form.
func targetPath(rest string, rt *route) string {
	if rest == "" {
		return rt.fullPath
	}
	if rt.basePath == "" {
		return rest
	}
	return rt.basePath + rest
}

// forwardTransport proxies through an http.RoundTripper.
func (g *Gateway) forwardTransport(w http.ResponseWriter, r *http.Request, ep *endpoint, rt *route, rest, id string, sc *shadowCopy) outcome {
	ctx := r.Context()
	// The route's timeout (the endpoint's, or the gateway's default)
	// cancels the request if the answer takes too long to start; our
	// transport's ResponseHeaderTimeout is only a backstop at the longest
	// timeout an endpoint may set.
	var timedOut atomic.Bool
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(rt.timeout, func() { timedOut.Store(true); cancel() })

	out := r.WithContext(ctx)
	out.URL = &url.URL{Scheme: rt.scheme, Host: rt.hostHdr}
	setOutURL(out.URL, targetPath(rest, rt), r.URL.RawQuery)
	out.Host = ""
	out.RequestURI = ""
	out.Close = false
	var body *stickyEOF
	if r.ContentLength == 0 {
		out.Body = nil // lets the transport retry on a stale idle connection
		g.sendShadows(sc, nil)
	} else {
		// The answer may start before the upload ended (a stream that
		// answers as it reads): net/http would otherwise close the
		// request body at the first write, and the Transport's read
		// after the last byte would then fail the upstream connection.
		_ = http.NewResponseController(w).EnableFullDuplex()
		body = &stickyEOF{ReadCloser: r.Body}
		if sc != nil {
			body.ReadCloser = &teeBody{ReadCloser: r.Body, g: g, sc: sc}
		}
		out.Body = body
		// The Transport may still be reading the body when the answer
		// has been relayed (an upstream that answered early); the
		// server must not read the connection's next request meanwhile.
		defer body.reclaim(w)
	}
	out.Header = outHeader(r, rt, id)

	res, err := g.transport.RoundTrip(out)
	timer.Stop()
	if err != nil {
		if cerr := body.clientErr(); cerr != nil {
			return g.clientBodyFailed(w, r, cerr)
		}
		return g.upstreamFailed(w, r, rt, err, timedOut.Load())
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Upgrades take forwardUpgrade; relayed here, a 101 would pass
		// for an informational answer and leave the rest unframed.
		g.log.Warn("gateway: upstream switched protocols unasked", "route", rt.name)
		g.problem(w, r, http.StatusBadGateway, registry.CodeUnavailable, "route "+quote(rt.name)+": upstream sent a protocol switch nobody asked for")
		return outcome{status: http.StatusBadGateway, failed: true, upstreamErr: true}
	}

	h := w.Header()
	copyResponseHeader(h, res.Header)
	h["X-Model-Version"] = rt.hdrVersion
	h["X-Route"] = rt.hdrRoute
	if len(res.Trailer) > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	o := outcome{status: res.StatusCode, failed: res.StatusCode >= 500}

	// Whether the next Read would wait cannot be told here, so every
	// write is flushed (FlushInterval -1); bodies on this path are the
	// answers to uploads and TLS upstreams, not the small-GET hot path.
	rc := http.NewResponseController(w)
	flush := func() { _ = rc.Flush() }
	if streaming(res) {
		flush()
	}
	bp, _ := g.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 32<<10)
		bp = &b
	}
	rerr, werr := copyBody(w, res.Body, *bp, flush)
	g.bufs.Put(bp)
	if werr != nil || ctx.Err() != nil && rerr != nil {
		o.clientGone = true
		return o
	}
	if rerr != nil && body.clientErr() != nil {
		// The upstream broke off because the client's body did: the
		// client's fault, not the route's.
		o.abort, o.clientFault = true, true
		return o
	}
	if rerr != nil {
		g.log.Debug("gateway: upstream body failed", "endpoint", ep.name, "route", rt.name, "err", rerr)
		o.failed, o.upstreamErr, o.abort = true, true, true
		return o
	}
	for k, vv := range res.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return o
}

// stickyEOF keeps answering io.EOF once its body did: the Transport reads
// once more after a body's last byte to check its length, and the
// server's request body may be closed by then. reclaim takes it back from
// the Transport when the handler ends: mu is held for the whole of a
// Read, and reads after reclaim fail.
type stickyEOF struct {
	io.ReadCloser
	mu   sync.Mutex
	eof  bool
	done bool
	// err is the error reading the client's body ended with, other than
	// io.EOF: the client's own framing or connection failed.
	err atomic.Pointer[error]
}

// clientErr is the error the client's body failed with, if it did (nil
// for a nil body).
func (b *stickyEOF) clientErr() error {
	if b == nil {
		return nil
	}
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *stickyEOF) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.ReadCloser.Read(p)
	b.eof = err == io.EOF
	if err != nil && !b.eof {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// reclaim waits until no Read is running, waking one that waits for the
// client with a read deadline in the past (the connection is then lost,
// as it must be: its request was not read to the end).
func (b *stickyEOF) reclaim(w http.ResponseWriter) {
	if !b.mu.TryLock() {
		_ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
	}
	b.done = true
	b.mu.Unlock()
}

// streaming reports whether the response should reach the client as it
// arrives rather than when buffers fill: unknown length (chunked, SSE,
// token streams) means flush after every read.
func streaming(res *http.Response) bool {
	if res.ContentLength == -1 {
		return true
	}
	return strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
}

// clientBodyFailed answers a request whose own body could not be read
// (bad chunked framing, a body cut short, one over the size limit): the
// client's fault, so a 4xx to it and nothing against the route.
func (g *Gateway) clientBodyFailed(w http.ResponseWriter, r *http.Request, err error) outcome {
	if r.Context().Err() != nil {
		return outcome{status: 499, clientGone: true}
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		g.problem(w, r, http.StatusRequestEntityTooLarge, registry.CodeTooLarge,
			"the request body is larger than the "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes allowed")
		return outcome{status: http.StatusRequestEntityTooLarge, clientFault: true}
	}
	// The connection cannot carry another request after a body that
	// broke its framing.
	w.Header().Set("Connection", "close")
	g.problem(w, r, http.StatusBadRequest, registry.CodeInvalidArgument,
		"the request body could not be read: "+errText(err))
	return outcome{status: http.StatusBadRequest, clientFault: true}
}

// upstreamFailed answers a request whose upstream gave no response.
func (g *Gateway) upstreamFailed(w http.ResponseWriter, r *http.Request, rt *route, err error, timedOut bool) outcome {
	if r.Context().Err() != nil {
		// The client went away first; nobody reads the answer.
		return outcome{status: 499, clientGone: true}
	}
	// The cause stays in the log: dial errors name internal addresses
	// and ports, which callers must not be able to probe with.
	var ne net.Error
	if timedOut || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		g.log.Warn("gateway: upstream timed out", "route", rt.name, "err", errText(err))
		g.problem(w, r, http.StatusGatewayTimeout, registry.CodeUnavailable,
			"route "+quote(rt.name)+": upstream did not answer in time")
		return outcome{status: http.StatusGatewayTimeout, failed: true, upstreamErr: true}
	}
	g.log.Warn("gateway: upstream failed", "route", rt.name, "err", errText(err))
	detail := "route " + quote(rt.name) + ": upstream unreachable"
	if errors.Is(err, errUpstreamDenied) {
		detail = "route " + quote(rt.name) + ": the upstream's address is not allowed by the gateway's upstream policy"
	}
	g.problem(w, r, http.StatusBadGateway, registry.CodeUnavailable, detail)
	return outcome{status: http.StatusBadGateway, failed: true, upstreamErr: true}
}

// setOutURL sets an outgoing URL's path from its escaped form.
func setOutURL(u *url.URL, escaped, query string) {
	u.Path, u.RawPath = escaped, ""
	if p, err := url.PathUnescape(escaped); err == nil && p != escaped {
		u.Path, u.RawPath = p, escaped
	}
	u.RawQuery = query
}

// errText strips the request URL net/http wraps around transport errors.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// forwardUpgrade hands protocol upgrades (WebSocket) to
// httputil.ReverseProxy, which splices the two connections. It is the
// rare path and is not tuned.
func (g *Gateway) forwardUpgrade(w http.ResponseWriter, r *http.Request, rt *route, rest, id string) outcome {
	o := outcome{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(rt.target)
			setOutURL(pr.Out.URL, targetPath(rest, rt), r.URL.RawQuery)
			// The same rules as every other path; then the two
			// hop-by-hop headers that ask the upstream to switch.
			up := pr.Out.Header.Get("Upgrade")
			pr.Out.Header = outHeader(r, rt, id)
			pr.Out.Header["Connection"] = []string{"Upgrade"}
			pr.Out.Header["Upgrade"] = []string{up}
		},
		Transport: g.transport,
		ModifyResponse: func(res *http.Response) error {
			res.Header["X-Model-Version"] = rt.hdrVersion
			res.Header["X-Route"] = rt.hdrRoute
			delete(res.Header, registry.ReceiptHeader) // the gateway's own stays
			o.status = res.StatusCode
			o.failed = res.StatusCode >= 500
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			o = g.upstreamFailed(w, r, rt, err, false)
		},
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(g.abort, cancel)()
	g.upgrades.Add(1)
	defer g.upgrades.Done()
	rp.ServeHTTP(w, r.WithContext(ctx))
	if o.status == 0 {
		o.status = http.StatusSwitchingProtocols
	}
	return o
}

// aLongTimeAgo is a deadline in the past: setting it fails pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// The h1 engine's client carries the common request to a plain-http
// upstream on the handler's own goroutine: no body, or a Content-Length
// one up to h1.MaxBody, read whole first so it leaves with the head in
// one write, a stale connection can be retried with it, and a client
// that stops halfway never reaches the upstream.

// engineCarries reports whether the engine's client can carry r's body.
func engineCarries(r *http.Request) bool {
	return len(r.TransferEncoding) == 0 && r.ContentLength >= 0 && r.ContentLength <= h1.MaxBody
}

// keepResponseHeader is the forwarding rule for an upstream's response
// fields, for the engine's client: end-to-end fields only.
func keepResponseHeader(k string, conn []string) bool {
	return !isHopHeader(k) && k != registry.ReceiptHeader && (len(conn) == 0 || !connectionListed(conn, k))
}

// forwardH1 proxies a request the engine carries (engineCarries) to a
// plain-http upstream.
func (g *Gateway) forwardH1(w http.ResponseWriter, r *http.Request, rt *route, rest, id string, start time.Time, sc *shadowCopy) outcome {
	now := start // deadlines and idle times need the real clock
	if !g.realClock {
		now = time.Now()
	}
	bp, _ := g.wires.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 2048)
		bp = &b
	}
	defer func() {
		if cap(*bp) <= maxKeptWire {
			g.wires.Put(bp)
		}
	}()
	b := h1.AppendRequestLine((*bp)[:0], r.Method, targetPath(rest, rt), r.URL.RawQuery, rt.hostHdr)
	forwardHeaders(r, rt, id, func(k string, vv []string) { b = h1.AppendHeader(b, k, vv) })
	b = h1.AppendBodyLength(b, r.Method, int(r.ContentLength))
	if r.ContentLength > 0 {
		var o outcome
		var ok bool
		if b, o, ok = g.readBody(w, r, b); !ok {
			*bp = b[:0]
			return o
		}
	}
	*bp = b[:0]
	if sc != nil {
		// The wire buffer is reused by the next request: the copies get
		// their own.
		g.sendShadows(sc, bytes.Clone(b[len(b)-int(r.ContentLength):]))
	}

	res, err := rt.pool.Do(r.Context(), &h1.Request{
		Wire: b, Method: r.Method, Replayable: replayable(r), Timeout: rt.timeout, Start: now,
	}, w.Header())
	if err != nil {
		var bad h1.MalformedResponseError
		if errors.As(err, &bad) && r.Context().Err() == nil {
			g.problem(w, r, http.StatusBadGateway, registry.CodeUnavailable, "route "+quote(rt.name)+": upstream sent a "+bad.Error())
			return outcome{status: http.StatusBadGateway, failed: true, upstreamErr: true}
		}
		return g.upstreamFailed(w, r, rt, err, false)
	}
	hdr := w.Header()
	hdr["X-Model-Version"] = rt.hdrVersion
	hdr["X-Route"] = rt.hdrRoute
	var trailer http.Header
	if res.Trailers != "" {
		hdr["Trailer"] = []string{res.Trailers}
		trailer = http.Header{}
	}
	w.WriteHeader(res.Status)
	o := outcome{status: res.Status, failed: res.Status >= 500}
	rerr, werr := res.Relay(w, trailer)
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
	return o
}

// maxKeptWire: a request buffer up to this size is kept for the next
// request; a larger one (a big body) is dropped.
const maxKeptWire = 16 << 10

// readBody appends r's Content-Length body to b. A body that fails to
// arrive is the client's fault: the gateway answers it (400, 413 past a
// MaxBytesReader limit) and the upstream sees nothing.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, b []byte) ([]byte, outcome, bool) {
	n := len(b)
	b = append(b, make([]byte, r.ContentLength)...)
	if _, err := io.ReadFull(r.Body, b[n:]); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			g.problem(w, r, http.StatusRequestEntityTooLarge, registry.CodeTooLarge,
				"the request body is larger than the "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes allowed")
			return b, outcome{status: http.StatusRequestEntityTooLarge, clientFault: true}, false
		}
		// Most likely nobody reads this (the client left or stalled),
		// and the connection closes after it.
		g.problem(w, r, http.StatusBadRequest, registry.CodeInvalidArgument,
			"the request body ended before the "+strconv.FormatInt(r.ContentLength, 10)+" bytes its Content-Length announced")
		return b, outcome{status: http.StatusBadRequest, clientGone: true}, false
	}
	return b, outcome{}, true
}

// replayable reports whether a request may be sent again after a stale
// connection failed it, by the rule net/http uses (the engine's client
// holds the whole body of the requests it carries, so it can resend it).
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
