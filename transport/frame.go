package transport

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"runtime"
	"sync"
	"time"
)

// headerSize is the fixed frame header: payload length (uint32), request id
// (uint64), flags (byte), time budget in microseconds (uint32), big-endian.
const headerSize = 17

// Frame kinds, carried in the flags byte.
const (
	flagRequest  byte = 1 // a call; budget = caller's remaining time in µs (0: none)
	flagResponse byte = 2 // a handler's answer
	flagError    byte = 3 // a handler's error; payload = its text
	flagHello    byte = 4 // first frame of a client connection; payload = caller's address
	flagTooLarge byte = 5 // the handler's answer exceeded MaxFrameBytes; empty payload
)

// maxSpareBuf caps the write buffer a connection keeps between batches, so
// one huge frame does not pin its memory for the connection's lifetime.
const maxSpareBuf = 1 << 20

// header is a decoded frame header.
type header struct {
	size   uint32
	id     uint64
	flags  byte
	budget uint32
}

// appendFrame appends one encoded frame to dst.
func appendFrame(dst []byte, id uint64, flags byte, budget uint32, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, budget)
	return append(dst, payload...)
}

// errFrameTooLarge is returned by readFrame for a frame over the limit; the
// connection cannot be resynchronised, so the reader closes it.
type errFrameTooLarge struct{ size, limit int }

func (e errFrameTooLarge) Error() string {
	return fmt.Sprintf("transport: incoming frame of %d bytes exceeds the %d-byte limit", e.size, e.limit)
}

func (e errFrameTooLarge) Unwrap() error { return ErrTooLarge }

// readFrame reads one frame. The payload is freshly allocated: it is handed
// to a handler or returned to a caller, who own it from then on.
func readFrame(r io.Reader, buf *[headerSize]byte, limit int) (header, []byte, error) {
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return header{}, nil, err
	}
	h := header{
		size:   binary.BigEndian.Uint32(buf[0:4]),
		id:     binary.BigEndian.Uint64(buf[4:12]),
		flags:  buf[12],
		budget: binary.BigEndian.Uint32(buf[13:17]),
	}
	if int64(h.size) > int64(limit) {
		return h, nil, errFrameTooLarge{size: int(h.size), limit: limit}
	}
	if h.size == 0 {
		return h, []byte{}, nil
	}
	p := make([]byte, h.size)
	if _, err := io.ReadFull(r, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// budgetMicros encodes the time left until deadline for the request header.
func budgetMicros(d time.Duration) uint32 {
	us := d.Microseconds()
	switch {
	case us < 1:
		return 1 // already late; the handler sees an expired ctx
	case us > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(us)
}

// frameQueue is a connection's outgoing queue. Senders append encoded frames
// to one shared buffer under a mutex; the connection's writer goroutine swaps
// the buffer out and writes everything queued with one Write. Under load many
// frames pile up while the previous Write is in the kernel, so they go out
// together: the writer only waits when the queue is empty. Two buffers
// alternate, so the steady state allocates nothing.
type frameQueue struct {
	wake chan struct{} // capacity 1; poked when the queue goes from empty to non-empty

	mu      sync.Mutex // guards buf, closed and writing
	buf     []byte
	closed  bool
	writing bool // the writer holds frames it has not finished writing
}

// busy reports whether frames are queued or being written.
func (q *frameQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.closed && (len(q.buf) > 0 || q.writing)
}

func newFrameQueue() *frameQueue {
	return &frameQueue{wake: make(chan struct{}, 1)}
}

// push queues a frame; it reports false when the queue is closed.
func (q *frameQueue) push(id uint64, flags byte, budget uint32, payload []byte) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	first := len(q.buf) == 0
	q.buf = appendFrame(q.buf, id, flags, budget, payload)
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take returns everything queued and installs spare as the new queue buffer.
func (q *frameQueue) take(spare []byte) []byte {
	q.mu.Lock()
	out := q.buf
	q.buf = spare[:0]
	q.writing = len(out) > 0
	q.mu.Unlock()
	return out
}

// close drops whatever is queued; later pushes fail.
func (q *frameQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.buf = nil
	q.mu.Unlock()
}

// writeLoop drains q into nc until done is closed or a write fails.
func writeLoop(nc net.Conn, q *frameQueue, done <-chan struct{}, timeout time.Duration) error {
	var spare []byte
	for {
		select {
		case <-q.wake:
		case <-done:
			return nil
		}
		for {
			// Let the goroutines that are about to send run first, so their
			// frames join this batch: one write syscall costs more than the
			// frames' encoding many times over.
			runtime.Gosched()
			out := q.take(spare)
			if len(out) == 0 {
				spare = out
				break
			}
			if err := nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				return err
			}
			if _, err := nc.Write(out); err != nil {
				return err
			}
			if cap(out) > maxSpareBuf {
				out = nil
			}
			spare = out
		}
	}
}
