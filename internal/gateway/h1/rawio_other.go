//go:build !unix

package h1

import "errors"

// rawIO is false where there are no non-blocking file descriptors to
// drive by hand: the client side writes and then reads through net.Conn.
const rawIO = false

var errNoRawIO = errors.New("raw socket I/O is not supported on this platform")

func rawWrite(uintptr, []byte) (int, bool, error) { return 0, false, errNoRawIO }
func rawRead(uintptr, []byte) (int, bool, error)  { return 0, false, errNoRawIO }
