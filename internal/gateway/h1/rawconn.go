package h1

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// Listener wraps a TCP listener so that the connections it accepts read
// and write with raw non-blocking system calls driven by the runtime's
// poller (syscall.RawConn) instead of net.Conn's usual path.
//
// Why: every socket read and write the usual way is a system call the Go
// scheduler is told about. When one takes longer than sysmon's 20µs tick,
// as loopback writes that wake the receiver often do on a loaded virtual
// machine, sysmon takes the P away and hands it to another thread, which
// costs two thread wake-ups per request, and sysmon itself then keeps
// polling every 20µs. A proxy does little but such calls, so on two cores
// this was the largest remaining cost after the client side that reads on the caller's goroutine (Pool.Do).
// Non-blocking socket calls never block, so there is nothing to hand the
// P over for.
//
// Deadlines, Close and every other method behave as on the wrapped
// connection. On platforms without raw I/O, l is returned as it is.
func Listener(l net.Listener) net.Listener {
	if !rawIO {
		return l
	}
	return fastListener{l}
}

type fastListener struct{ net.Listener }

func (l fastListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, rerr := tc.SyscallConn()
	if rerr != nil {
		return c, nil //nolint:nilerr // without a raw handle the plain connection serves
	}
	fc := &fastConn{TCPConn: tc, rc: rc}
	fc.readFn, fc.writeFn = fc.readStep, fc.writeStep
	return fc, nil
}

// fastConn is a *net.TCPConn whose Read and Write use raw system calls.
// The callbacks are bound once and keep their arguments and results in
// the struct, so a call allocates nothing; the mutexes keep net.Conn's
// promise that methods may be called concurrently (a Read and a Write at
// the same time is what net/http does, and they use separate state).
type fastConn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex
	readFn func(uintptr) bool
	rbuf   []byte
	rn     int
	rerr   error

	wmu     sync.Mutex
	writeFn func(uintptr) bool
	wbuf    []byte
	wn      int
	werr    error
}

func (c *fastConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n := c.rn
	if err == nil {
		err = c.rerr
	}
	c.rbuf = nil
	c.rmu.Unlock()
	if err == io.EOF {
		return 0, io.EOF
	}
	if err != nil {
		return n, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

func (c *fastConn) readStep(fd uintptr) bool {
	n, again, err := rawRead(fd, c.rbuf)
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

func (c *fastConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n := c.wn
	if err == nil {
		err = c.werr
	}
	c.wbuf = nil
	c.wmu.Unlock()
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

func (c *fastConn) writeStep(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, again, err := rawWrite(fd, c.wbuf[c.wn:])
		if again {
			return false // the poller waits until the socket takes more
		}
		if err != nil {
			c.werr = err
			return true
		}
		c.wn += n
	}
	return true
}
