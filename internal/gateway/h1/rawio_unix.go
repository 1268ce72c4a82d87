//go:build unix && !linux

package h1

import (
	"os"
	"syscall"
)

const rawIO = true

func rawWrite(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		n, err := syscall.Write(int(fd), p)
		switch err {
		case nil:
			return n, false, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true, nil
		default:
			return 0, false, os.NewSyscallError("write", err)
		}
	}
}

func rawRead(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		n, err := syscall.Read(int(fd), p)
		switch err {
		case nil:
			return n, false, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true, nil
		default:
			return 0, false, os.NewSyscallError("read", err)
		}
	}
}
