//go:build linux && race

package rawio

import "syscall"

// Under the race detector, reads and writes go through syscall.Read and
// syscall.Write, which tell the detector that bytes written to a
// connection were written before they are read at the other end. Raw
// system calls do not, and the detector would report races that the
// connection orders (one side changes a value, sends a message; the
// other reads the message, then the value).
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), b)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), b)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
