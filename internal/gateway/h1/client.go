package h1

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"time"
)

// The client side: one exchange.
//
// net/http's Transport runs every request through three goroutines (the
// caller, the connection's writeLoop and readLoop) that hand the request
// and the response over channels; on small requests that hand-over costs
// more CPU than the proxying itself. Pool.Do instead writes the request
// and reads the answer's head on the caller's own goroutine over a pooled
// keep-alive connection, parses the head straight into the caller's
// header map, and Response.Relay copies the body out of the connection's
// read buffer. The request, head and body, is handed over whole (at most
// MaxBody of body), so it leaves in one write and a stale connection can
// be retried with it. Anything else (larger or chunked bodies, which
// stream and need full duplex, TLS, upgrades) is for http.Transport.

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
)

// MaxBody is the largest request body Do carries. It is far below the
// socket buffers, so writing a whole request before reading cannot
// deadlock with an upstream that answers while it reads.
const MaxBody = 64 << 10

// Request is one request for Do.
type Request struct {
	// Wire is the whole request as it goes on the wire: request line,
	// header fields, the blank line and the body (see AppendRequestLine,
	// AppendHeader, AppendBody). Do does not keep it.
	Wire []byte
	// Method is the request's method (a HEAD answer has no body).
	Method string
	// Replayable: the request may be sent again when a reused connection
	// turns out to have been closed by the upstream before it answered
	// anything (net/http's rule: idempotent methods, or an idempotency
	// key).
	Replayable bool
	// Timeout bounds the wait for the answer's head, counted from Start.
	Timeout time.Duration
	Start   time.Time
}

// AppendRequestLine appends "METHOD target HTTP/1.1" and the Host field.
func AppendRequestLine(b []byte, method, path, rawQuery, host string) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	if rawQuery != "" {
		b = append(b, '?')
		b = append(b, rawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\n"...)
}

// AppendHeader appends one field line per value of k. The values must
// hold no CR or LF (net/http's server and Pool's callers' parsers refuse
// them in what they pass on).
func AppendHeader(b []byte, k string, vv []string) []byte {
	for _, v := range vv {
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	return b
}

// AppendBodyLength appends the Content-Length field for a body of n
// bytes, then the blank line that ends the head. POST, PUT and PATCH
// carry one even when empty, as http.Transport sends it: many servers
// expect it on these methods.
func AppendBodyLength(b []byte, method string, n int) []byte {
	switch {
	case n > 0, method == http.MethodPost, method == http.MethodPut, method == http.MethodPatch:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// Response is the head of an answer Do read; Relay delivers its body.
type Response struct {
	// Status is the final status code (informational answers skipped).
	Status int
	// Trailers: the trailer names a chunked answer announced ("" none).
	Trailers string
	// Stream: the answer is relayed as it arrives (no length, or an event
	// stream), each write flushed.
	Stream bool

	c    *clientConn
	h    respHead
	ctx  context.Context
	pool *Pool
	now  time.Time
}

// Do sends req on a connection of p and reads the answer's head, writing
// its end-to-end header fields into dst. A connection is reused only
// after an exchange that ended cleanly on both sides (the request
// written whole, the answer read to its end, nothing more waiting on
// it); a reused one found stale before it answered anything is replaced
// by a fresh one once, when req is Replayable. Errors: the dial's, a
// timeout (a net.Error whose Timeout is true), ctx's, or a
// MalformedResponseError.
func (p *Pool) Do(ctx context.Context, req *Request, dst http.Header) (Response, error) {
	now := req.Start
	c := p.take()
	for c != nil && (!c.quiet() || !req.Replayable && time.Duration(now.UnixNano()-c.idleSince) > staleRisk) {
		// An idle connection must have nothing to say: bytes waiting on
		// it answer no request of ours (an upstream that answered before
		// reading a body, then took that body for a request), and
		// relayed they would reach the wrong client; a close that arrived
		// means it is gone. A request that cannot be retried does not bet
		// on one idle for long either. (http.Transport learns the same
		// from the read it keeps running on every idle connection; here
		// it is one peek per request.)
		c.close()
		c = p.take()
	}
	retried := false
	for {
		reused := c != nil
		if c == nil {
			var err error
			if c, err = p.dial(ctx); err != nil {
				return Response{}, err
			}
		}
		c.read = 0
		h, err := c.roundTrip(ctx, req, dst, now)
		if err == nil {
			return Response{Status: h.status, Trailers: h.trailers, Stream: h.stream, c: c, h: h, ctx: ctx, pool: p, now: now}, nil
		}
		c.close()
		if !reused || retried || !stale(err, c) || !req.Replayable || ctx.Err() != nil {
			return Response{}, err
		}
		retried, c = true, nil
	}
}

// roundTrip sends the request and reads the answer's head.
func (c *clientConn) roundTrip(ctx context.Context, req *Request, dst http.Header, now time.Time) (respHead, error) {
	c.pending = req.Wire
	// Let the other requests that are ready get this far too, so their
	// heads leave back to back: the upstream then wakes once for several
	// requests instead of once for each (nginx's event loop batches the
	// same way). With nothing else ready this returns at once.
	runtime.Gosched()
	c.sent = false
	c.beginWait(ctx, now, req.Timeout)
	h, err := c.readHead(req.Method, dst)
	c.endWait()
	c.pending = nil // sent, or the connection is lost
	if err == nil && h.status == http.StatusSwitchingProtocols {
		err = MalformedResponseError("protocol switch nobody asked for")
	}
	if err == nil && h.trailers != "" && h.length != lengthChunked {
		h.trailers = "" // only a chunked body carries trailers
	}
	return h, err
}

// Relay copies the answer's body to w and ends the exchange: the
// connection goes back to the pool when it ended cleanly, else it is
// closed. The caller has written the head (w.WriteHeader). A stream is
// flushed after each write; any other body only before Relay waits for
// more of it, so a body that is all here leaves with its head in one
// write. trailer, when not nil, receives a chunked body's trailer
// fields. readErr is the upstream's failure (or ctx's, when the client
// left), writeErr the client's.
func (res *Response) Relay(w http.ResponseWriter, trailer http.Header) (readErr, writeErr error) {
	c, h := res.c, res.h
	// When the body is not all here yet, reads follow: no deadline for
	// them (a stream may pause as long as it likes) but the client's
	// departure must still end them.
	var stop func() bool
	if h.length < 0 || int64(c.br.Buffered()) < h.length {
		c.disarm()
		c.cancelled.Store(false)
		stop = context.AfterFunc(res.ctx, c.cancel)
	}
	flush := &bodyFlusher{w: w, eager: h.stream, pending: true}
	if h.stream {
		flush.flush() // the head, before the first event
	}
	complete, rerr, werr := c.copyBodyTo(w, h, flush, trailer)
	if stop != nil && (!stop() || c.cancelled.Load()) {
		complete = false // the client left while the body streamed
	}
	if complete && !h.close && c.br.Buffered() == 0 {
		res.pool.put(c, res.now.UnixNano())
	} else {
		c.close()
	}
	return rerr, werr
}
