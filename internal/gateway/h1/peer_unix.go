//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package h1

import (
	"net"
	"syscall"
)

// peerGone reports whether the peer of c has closed or reset the
// connection, without consuming anything: a non-blocking MSG_PEEK read
// that finds EOF or an error. Data waiting (a pipelined request) or
// nothing yet both mean the peer is still there.
func peerGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true // closed
	}
	gone := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
		case err != nil || n == 0:
			gone = true
		}
		return true // never wait
	})
	return gone || err != nil
}

// quiet reports whether nothing at all is waiting on the idle upstream
// connection: no bytes and no close (a non-blocking MSG_PEEK that finds
// nothing to read). The callback is bound once per connection, so the
// check allocates nothing.
func (c *clientConn) quiet() bool {
	if c.quietFn == nil {
		c.quietFn = c.quietStep
	}
	c.isQuiet = false
	err := c.rc.Read(c.quietFn)
	return c.isQuiet && err == nil
}

func (c *clientConn) quietStep(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), c.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.isQuiet = err == syscall.EAGAIN
	return true // never wait
}
