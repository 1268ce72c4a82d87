//go:build linux

package h1

import (
	"os"
	"syscall"
	"unsafe"
)

// rawIO: the client side sends its request from inside the raw read
// (see clientConn.Read).
const rawIO = true

// rawWrite and rawRead are write(2) and read(2) on a non-blocking socket.
// They use RawSyscall, without telling the scheduler: the socket never
// blocks, and a syscall the scheduler knows about is one sysmon may find
// "running long" on a loaded machine and hand the P of to another thread
// (a wake-up and a context switch); while that keeps happening sysmon
// itself wakes every 20µs.
func rawWrite(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch e {
		case 0:
			return int(r), false, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true, nil
		default:
			return 0, false, os.NewSyscallError("write", e)
		}
	}
}

func rawRead(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch e {
		case 0:
			return int(r), false, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true, nil
		default:
			return 0, false, os.NewSyscallError("read", e)
		}
	}
}
