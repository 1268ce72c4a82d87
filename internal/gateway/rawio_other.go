//go:build !unix

package gateway

import "errors"

// rawIO is false where there are no non-blocking file descriptors to
// drive by hand: the lean client writes and then reads through net.Conn.
const rawIO = false

var errNoRawIO = errors.New("raw socket I/O is not supported on this platform")

func rawWrite(uintptr, []byte) (int, bool, error) { return 0, false, errNoRawIO }
func rawRead(uintptr, []byte) (int, bool, error)  { return 0, false, errNoRawIO }
