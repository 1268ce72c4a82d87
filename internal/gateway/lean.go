package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
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
// read buffer. A request body with a Content-Length up to leanBodyMax is
// read whole first and leaves with the head in one write (so a stale
// connection can be retried with it, and a client that stops halfway
// never reaches the upstream). Everything else (larger and chunked
// bodies, which are streamed and need full duplex, TLS, upgrades, a
// caller-supplied Transport) goes through http.Transport.

const (
	upReadBuf      = 16 << 10
	maxIdlePerHost = 1024
	idleTimeout    = 90 * time.Second
	dialTimeout    = 2 * time.Second
	// staleRisk is how long a connection may sit idle before a request
	// that cannot be retried avoids it (upstream keep-alive timeouts are
	// commonly 5 s and more).
	staleRisk = time.Second
	// maxHeadBytes bounds an upstream's response head.
	maxHeadBytes = 1 << 20
	// leanBodyMax is the largest request body the lean client carries
	// (read whole before it is sent); larger ones stream through
	// http.Transport. It is far below the socket buffers, so writing a
	// whole body before reading cannot deadlock with an upstream that
	// answers while it reads.
	leanBodyMax = 64 << 10
	// keptHeadBuf: a connection keeps a request buffer up to this size
	// for the next request; a larger one (a big body) is dropped.
	keptHeadBuf = 16 << 10
)

// leanCarries reports whether the lean client can carry r's body.
func leanCarries(r *http.Request) bool {
	return len(r.TransferEncoding) == 0 && r.ContentLength >= 0 && r.ContentLength <= leanBodyMax
}

// readBody reads r's Content-Length body whole into a pooled buffer;
// put returns the buffer. A body that fails to arrive is the client's
// fault: the gateway answers it (400, 413 past a MaxBytesReader limit)
// and the upstream sees nothing.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) (body []byte, put func(), o outcome, ok bool) {
	bp, _ := g.bodies.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, leanBodyMax)
		bp = &b
	}
	body = (*bp)[:r.ContentLength]
	if _, err := io.ReadFull(r.Body, body); err != nil {
		g.bodies.Put(bp)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			g.problem(w, r, http.StatusRequestEntityTooLarge, registry.CodeTooLarge,
				"the request body is larger than the "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes allowed")
			return nil, nil, outcome{status: http.StatusRequestEntityTooLarge}, false
		}
		// Most likely nobody reads this (the client left or stalled),
		// and the connection closes after it.
		g.problem(w, r, http.StatusBadRequest, registry.CodeInvalidArgument,
			"the request body ended before the "+strconv.FormatInt(r.ContentLength, 10)+" bytes its Content-Length announced")
		return nil, nil, outcome{status: http.StatusBadRequest, clientGone: true}, false
	}
	return body, func() { g.bodies.Put(bp) }, outcome{}, true
}

// forwardLean proxies a request without a body, or with one the lean
// client carries (leanCarries), to a plain-http upstream over the lean
// client.
func (g *Gateway) forwardLean(w http.ResponseWriter, r *http.Request, rt *route, rest, id string, start time.Time) outcome {
	ctx := r.Context()
	now := start // deadlines and idle times need the real clock
	if !g.realClock {
		now = time.Now()
	}
	var body []byte
	if r.ContentLength > 0 {
		b, put, o, ok := g.readBody(w, r)
		if !ok {
			return o
		}
		defer put()
		body = b
	}
	path := targetPath(rest, rt)
	pool := rt.pool
	c := pool.take()
	for c != nil && (!c.quiet() || !replayable(r) && time.Duration(now.UnixNano()-c.idleSince) > staleRisk) {
		// An idle connection must have nothing to say: bytes waiting on
		// it answer no request of ours (an upstream that answered before
		// reading a body, then took that body for a request), and
		// relayed they would reach the wrong client; a close that arrived
		// means it is gone. A request that cannot be retried does not bet
		// on one idle for long either. (http.Transport learns the same
		// from the read it keeps running on every idle connection; here
		// it is one peek per request.)
		c.close()
		c = pool.take()
	}
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
		o, retry := g.exchange(w, r, rt, c, path, id, body, now, reused && !retried)
		if o.reuse {
			pool.put(c, now.UnixNano())
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
func (g *Gateway) exchange(w http.ResponseWriter, r *http.Request, rt *route, c *upConn, path, id string, body []byte, now time.Time, mayRetry bool) (o leanOutcome, retry bool) {
	c.writeRequest(r, path, rt, id, body)
	// Let the other requests that are ready get this far too, so their
	// heads leave back to back: the upstream then wakes once for several
	// requests instead of once for each (nginx's event loop batches the
	// same way). With nothing else ready this returns at once.
	runtime.Gosched()
	c.sent = false
	c.beginWait(r.Context(), now, rt.timeout)
	h, err := c.readHead(r.Method, w.Header())
	c.endWait()
	if cap(c.whead) > keptHeadBuf {
		c.whead = nil // sent; a big body's buffer is not kept per connection
	}
	if err == nil && h.status == http.StatusSwitchingProtocols {
		err = errBadResponse("protocol switch nobody asked for")
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
	// When the body is not all here yet, reads follow: no deadline for
	// them (a stream may pause as long as it likes) but the client's
	// departure must still end them.
	var stop func() bool
	if h.length < 0 || int64(c.br.Buffered()) < h.length {
		c.disarm()
		c.cancelled.Store(false)
		stop = context.AfterFunc(r.Context(), c.cancel)
	}

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

	flush := &bodyFlusher{w: w, eager: h.stream, pending: true}
	if h.stream {
		flush.flush() // the head, before the first event
	}
	complete, rerr, werr := c.copyBodyTo(w, h, flush, trailer)
	if stop != nil && (!stop() || c.cancelled.Load()) {
		// The client left while the body streamed.
		complete = false
	}
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
