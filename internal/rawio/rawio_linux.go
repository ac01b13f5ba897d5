package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a *net.TCPConn whose Read and Write skip the scheduler's
// system-call bookkeeping (see the package comment). Everything else is
// the wrapped connection's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// One Read and one Write at a time, as in net.Conn: the callbacks
	// pass their buffer and results through these fields.
	rmu   sync.Mutex
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readF func(fd uintptr) bool

	wmu    sync.Mutex
	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writeF func(fd uintptr) bool
}

// Wrap returns nc as a *Conn when it is a *net.TCPConn, and nc itself
// otherwise (TLS, Unix sockets, test pipes).
func Wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &Conn{TCPConn: tc, rc: rc}
	c.readF = c.readFD
	c.writeF = c.writeFD
	return c
}

// readFD reads once into rbuf; false means nothing to read yet, and the
// poller parks the goroutine until there is.
func (c *Conn) readFD(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, c.rbuf)
		switch errno {
		case 0:
			c.rn = n
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = errno
			return true
		}
	}
}

// writeFD writes what is left of wbuf; false means the socket's buffer is
// full, and the poller parks the goroutine until it has room.
func (c *Conn) writeFD(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		rest := c.wbuf[c.wn:]
		n, errno := sysWrite(fd, rest)
		switch errno {
		case 0:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

// Read reads like net.Conn's Read: io.EOF at the end of the stream, and
// errors as *net.OpError (deadlines, net.ErrClosed, the kernel's errno).
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = b, 0, 0
	err := c.rc.Read(c.readF)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, relabel(err, "read")
	case c.rerr != 0:
		return 0, c.opError("read", c.rerr)
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// Write writes all of b, like net.Conn's Write, or returns how much it
// wrote before the error.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = b, 0, 0
	err := c.rc.Write(c.writeF)
	c.wbuf = nil
	switch {
	case err != nil:
		return c.wn, relabel(err, "write")
	case c.werr != 0:
		return c.wn, c.opError("write", c.werr)
	}
	return c.wn, nil
}

func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// relabel names a RawConn error ("raw-read") after the call the caller
// made.
func relabel(err error, op string) error {
	if oe, ok := err.(*net.OpError); ok {
		e := *oe
		e.Op = op
		return &e
	}
	return err
}

// listener wraps every connection it accepts.
type listener struct{ net.Listener }

// WrapListener returns l with every connection it accepts wrapped.
func WrapListener(l net.Listener) net.Listener { return listener{l} }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
