package rawio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, wrapped.
func pair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	a, b = Wrap(d), Wrap(s)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestWrapOnlyTCP(t *testing.T) {
	a, _ := pair(t)
	if runtime.GOOS == "linux" {
		if _, ok := a.(*Conn); !ok {
			t.Fatalf("Wrap of a *net.TCPConn gave %T", a)
		}
	}
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if Wrap(p) != p {
		t.Fatal("Wrap changed a connection that is not TCP")
	}
}

// TestLargeTransfersBothWays sends more than the socket buffers hold, in
// writes of random sizes from several goroutines at once, both ways: every
// Write must go out whole and uninterleaved (as net.Conn promises), through
// partial writes and waits for room.
func TestLargeTransfersBothWays(t *testing.T) {
	a, b := pair(t)
	const writers, chunks = 4, 64
	send := func(c net.Conn, seed uint64) error {
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				for range chunks {
					n := 1 + r.IntN(256<<10)
					msg := bytes.Repeat([]byte{byte(w)}, n)
					// A chunk is: writer id, length (4 bytes), payload.
					frame := append([]byte{byte(w), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, msg...)
					if _, err := c.Write(frame); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	recv := func(c net.Conn) (map[byte]int, error) {
		got := make(map[byte]int)
		hdr := make([]byte, 5)
		for total := 0; total < writers*chunks; total++ {
			if _, err := io.ReadFull(c, hdr); err != nil {
				return got, err
			}
			n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
			body := make([]byte, n)
			if _, err := io.ReadFull(c, body); err != nil {
				return got, err
			}
			if !bytes.Equal(body, bytes.Repeat([]byte{hdr[0]}, n)) {
				return got, errors.New("a chunk arrived interleaved with another")
			}
			got[hdr[0]]++
		}
		return got, nil
	}
	var wg sync.WaitGroup
	for _, dir := range [][2]net.Conn{{a, b}, {b, a}} {
		wg.Go(func() {
			if err := send(dir[0], 1); err != nil {
				t.Errorf("send: %v", err)
			}
		})
		wg.Go(func() {
			got, err := recv(dir[1])
			if err != nil {
				t.Errorf("receive: %v", err)
				return
			}
			for w := range writers {
				if got[byte(w)] != chunks {
					t.Errorf("writer %d: %d chunks arrived, want %d", w, got[byte(w)], chunks)
				}
			}
		})
	}
	wg.Wait()
}

func TestEOFAndCloseWrite(t *testing.T) {
	a, b := pair(t)
	if _, err := a.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := a.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last words" {
		t.Fatalf("read %q, %v; want the bytes and then io.EOF", got, err)
	}
	if n, err := b.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF: %d, %v; want 0, io.EOF", n, err)
	}
	// The other direction is still open.
	if _, err := b.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "reply" {
		t.Fatalf("half-closed side read %q, %v", buf, err)
	}
}

func TestDeadlines(t *testing.T) {
	a, _ := pair(t)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := a.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v; want a timeout", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the deadline took %v", time.Since(start))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %#v, want a *net.OpError for read", err)
	}
	// A write deadline ends a write the peer never reads.
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := a.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 64<<20 {
		t.Fatalf("write past its deadline: %d bytes, %v; want part of it and a timeout", n, err)
	}
}

func TestCloseEndsBlockedRead(t *testing.T) {
	a, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v; want net.ErrClosed", err)
	}
}

func TestResetIsAnError(t *testing.T) {
	a, b := pair(t)
	// Closing with unread data and linger 0 sends a reset.
	b.(interface{ SetLinger(int) error }).SetLinger(0)
	b.Close()
	var err error
	for range 100 {
		if _, err = a.Write([]byte("are you there")); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err == nil {
		_, err = a.Read(make([]byte, 8))
	}
	var oe *net.OpError
	if err == nil || err == io.EOF || !errors.As(err, &oe) {
		t.Fatalf("after the peer's reset: %v; want a *net.OpError", err)
	}
}
