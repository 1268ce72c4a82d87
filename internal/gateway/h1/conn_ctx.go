package h1

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connCtx is the context of the Server's requests on one connection. Err
// reports context.Canceled once the client has closed or reset the
// connection, which it checks on each call (a non-blocking MSG_PEEK), so
// the client side (Conn), which polls Err while it waits for an answer's head,
// costs the fast requests nothing. Done, which only streams and the
// Transport path ask for, starts a watcher that peeks every
// watchEvery until the request ends (endRequest) and closes the
// channel when the client has gone, so context.AfterFunc and selects on
// Done work as on any context.
type connCtx struct {
	c    net.Conn
	gone atomic.Bool

	mu     sync.Mutex // guards the rest
	done   chan struct{}
	closed bool          // done is closed
	stop   chan struct{} // closed to stop the running watcher (nil: none)
}

// watchEvery is how often a request whose Done was asked for looks
// for its client: a departure releases the upstream within about this.
const watchEvery = 200 * time.Millisecond

func (x *connCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *connCtx) Value(any) any               { return nil }

func (x *connCtx) Done() <-chan struct{} {
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

func (x *connCtx) Err() error {
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
func (x *connCtx) cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gone.Store(true)
	if x.done != nil && !x.closed {
		close(x.done)
		x.closed = true
	}
}

func (x *connCtx) watch(stop chan struct{}) {
	t := time.NewTicker(watchEvery)
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
func (x *connCtx) endRequest() {
	x.mu.Lock()
	if x.stop != nil {
		close(x.stop)
		x.stop = nil
	}
	x.mu.Unlock()
}
