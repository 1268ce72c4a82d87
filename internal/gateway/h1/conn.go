package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// clientConn is one keep-alive connection to an upstream. One request
// uses it at a time.
type clientConn struct {
	nc        net.Conn
	rc        syscall.RawConn
	br        *bufio.Reader // reads through clientConn.Read
	pool      *Pool
	idleSince int64
	// read counts bytes read for the current request: a reused connection
	// that fails before answering anything was closed by the upstream
	// while idle, and the request may be retried on a fresh one.
	read int64
	// cancelled is set when the client's context ended; deadlines are
	// then kept in the past.
	cancelled atomic.Bool
	// deadline is the read deadline set on the connection (zero: none).
	deadline time.Time
	// While waiting is set (between sending a request and reading the
	// answer's head) deadline expiries are checks (see checkWait) of ctx
	// and of the header timeout, counted from start.
	waiting bool
	ctx     context.Context
	start   time.Time
	timeout time.Duration
	every   time.Duration

	// The request waiting to be sent by the next Read, and the state of
	// that raw read (see Read).
	pending []byte
	sent    bool
	partial bool
	rawFn   func(uintptr) bool
	rp      []byte
	rn      int
	rerr    error

	// The idle check's bound callback, its result and buffer (see quiet).
	quietFn func(uintptr) bool
	isQuiet bool
	peek    [1]byte

	// excess is the chunked body's framing overhead so far (see
	// chunkSize).
	excess int64

	// head is scratch space for the response head, reused per request.
	head []byte
	kvs  []kv
}

type kv struct{ k0, k1, v0, v1 int }

func (c *clientConn) close() { _ = c.nc.Close() }

// cancel fails the connection's pending and future I/O; it runs when the
// client's request context ends.
func (c *clientConn) cancel() {
	c.cancelled.Store(true)
	_ = c.nc.SetDeadline(aLongTimeAgo)
}

// setReadDeadline sets a read deadline unless the request was cancelled.
func (c *clientConn) setReadDeadline(t time.Time) {
	c.deadline = t
	_ = c.nc.SetReadDeadline(t)
	if c.cancelled.Load() {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// maxCheckEvery is how often a request waiting for an answer's head
// checks whether its client is still there (with the 10% slack of
// beginWait, a departed client is noticed within a second).
const maxCheckEvery = 500 * time.Millisecond

// beginWait prepares the wait for an answer's head: a read deadline at
// most every (min(timeout, maxCheckEvery)) away, after which checkWait runs. Setting
// a deadline is a timer operation, so a deadline still at least every
// away is kept: deadlines are set with 10% slack and reused until they
// come closer than every, which makes the first check come between every
// and 1.1*every and the common case free.
func (c *clientConn) beginWait(ctx context.Context, now time.Time, timeout time.Duration) {
	c.waiting, c.ctx, c.start, c.timeout = true, ctx, now, timeout
	c.every = min(timeout, maxCheckEvery)
	if !c.deadline.IsZero() && c.deadline.Sub(now) >= c.every {
		return
	}
	c.setReadDeadline(now.Add(c.every + c.every/10))
}

func (c *clientConn) endWait() { c.waiting, c.ctx = false, nil }

// disarm clears the read deadline before reading a body from the socket:
// a streaming body may pause for as long as it likes.
func (c *clientConn) disarm() {
	if !c.deadline.IsZero() {
		c.setReadDeadline(time.Time{})
	}
}

// stale reports whether err on a reused connection means the upstream had
// closed it while it sat idle (nothing of an answer arrived).
func stale(err error, c *clientConn) bool {
	if c.read > 0 {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// Read reads from the upstream. When a request head is pending it is
// sent from inside the raw read: arming the poller, writing, then waiting
// for the answer, in that order, spares the read that would otherwise
// run straight after the write and find nothing (EAGAIN) on every
// request. The order matters: the poller forgets earlier readiness when a
// read starts, so the write must come after that point, never before.
func (c *clientConn) Read(p []byte) (int, error) {
	for {
		n, err := c.readOnce(p)
		if err == nil || !c.waiting || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if err := c.checkWait(); err != nil {
			return 0, err
		}
	}
}

func (c *clientConn) readOnce(p []byte) (int, error) {
	if c.pending != nil && !rawIO {
		head := c.pending
		c.pending = nil
		if _, err := c.nc.Write(head); err != nil {
			return 0, err
		}
	}
	if c.pending == nil {
		n, err := c.nc.Read(p)
		c.read += int64(n)
		return n, err
	}
	c.rp, c.rn, c.rerr, c.partial = p, 0, nil, false
	err := c.rc.Read(c.rawFn)
	c.rp = nil
	if err == nil {
		err = c.rerr
	}
	if c.partial && err == nil {
		// The socket buffer took only part of the head: finish through
		// the poller and read the ordinary way.
		rest := c.pending
		c.pending = nil
		if _, err := c.nc.Write(rest); err != nil {
			return 0, err
		}
		n, err := c.nc.Read(p)
		c.read += int64(n)
		return n, err
	}
	if c.sent {
		c.pending = nil
	}
	c.read += int64(c.rn)
	if err != nil {
		return c.rn, wrapNetErr(err)
	}
	return c.rn, nil
}

// checkWait runs when a check deadline passes while the request waits for
// the answer's head: it gives up when the client has gone or the header
// timeout has passed, else sets the next check. Checking every second
// (rather than arming a context callback and a fresh timer per request)
// keeps both off the path of the requests that are answered quickly,
// which is nearly all of them.
func (c *clientConn) checkWait() error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	left := c.timeout - now.Sub(c.start)
	if left <= 0 {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	c.setReadDeadline(now.Add(min(left, c.every)))
	return nil
}

// rawStep is the syscall.RawConn read callback: first the pending write,
// then reads until one returns data, EOF or an error.
func (c *clientConn) rawStep(fd uintptr) bool {
	if c.pending != nil && !c.sent {
		n, again, err := rawWrite(fd, c.pending)
		if err != nil {
			c.rerr = err
			return true
		}
		c.sent = true
		if again || n < len(c.pending) {
			c.pending = c.pending[n:]
			c.partial = true
			return true
		}
		return false // wait for the answer
	}
	n, again, err := rawRead(fd, c.rp)
	switch {
	case again:
		return false
	case err != nil:
		c.rerr = err
	case n == 0:
		c.rerr = io.EOF
	default:
		c.rn = n
	}
	return true
}

// wrapNetErr makes raw-read errors look like net.Conn errors.
func wrapNetErr(err error) error {
	if err == io.EOF {
		return err
	}
	return &net.OpError{Op: "read", Net: "tcp", Err: err}
}
