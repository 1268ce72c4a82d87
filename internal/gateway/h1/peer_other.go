//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package h1

import "net"

// peerGone cannot tell on this platform; a departed client is noticed
// when the answer is written to it.
func peerGone(net.Conn) bool { return false }

// quiet cannot tell on this platform: a connection is reused on the
// strength of its last exchange alone.
func (c *clientConn) quiet() bool { return true }
