package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	if err := (Config{ListenAddr: ":0"}).Validate(); err != nil {
		t.Fatalf("zero fields should take defaults: %v", err)
	}
	bad := Config{
		DefaultTimeout:     -1,
		ConnsPerPeer:       100,
		MaxFrameBytes:      -5,
		MaxInFlightPerConn: -1,
		BackoffMin:         time.Second,
		BackoffMax:         time.Millisecond,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"ListenAddr", "DefaultTimeout", "ConnsPerPeer", "MaxFrameBytes", "MaxInFlightPerConn", "BackoffMax"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if _, err := ListenTCP(bad, echo); err == nil {
		t.Fatal("ListenTCP accepted a bad config")
	}
}

func TestTCPManyConcurrentCallsOneConn(t *testing.T) {
	defer checkNoLeak(t)()
	cfg := testConfig()
	cfg.ConnsPerPeer = 1
	srv := listen(t, cfg, func(_ context.Context, req []byte) ([]byte, error) {
		if req[len(req)-1]%3 == 0 {
			time.Sleep(time.Millisecond) // some answers overtake others
		}
		return append([]byte("re:"), req...), nil
	})
	cli := listen(t, cfg, nil)

	const workers, perWorker = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				req := fmt.Appendf(nil, "w%d-i%d", w, i)
				resp, err := cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), req)
				if err != nil {
					errs <- err
					return
				}
				if want := append([]byte("re:"), req...); !bytes.Equal(resp, want) {
					errs <- fmt.Errorf("got %q, want %q", resp, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	srv.mu.Lock()
	n := len(srv.conns)
	srv.mu.Unlock()
	if n != 1 {
		t.Fatalf("server has %d connections, want 1", n)
	}
	cli.Close()
	srv.Close()
}

func TestTCPDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.ConnsPerPeer = 1
	sawDeadline := make(chan time.Duration, 1)
	srv := listen(t, cfg, func(ctx context.Context, req []byte) ([]byte, error) {
		if string(req) == "slow" {
			left := time.Duration(-1)
			if dl, ok := ctx.Deadline(); ok {
				left = time.Until(dl)
			}
			select {
			case sawDeadline <- left:
			default: // the test already failed; do not block Close
			}
			<-ctx.Done() // the propagated deadline ends the handler too
			return nil, ctx.Err()
		}
		return req, nil
	})
	cli := listen(t, cfg, nil)
	if _, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), []byte("warm")); err != nil {
		t.Fatal(err)
	}
	conn := cli.peer(srv.Addr()).slots[0].Load()

	const d = 150 * time.Millisecond
	start := time.Now()
	_, err := cli.Call(ctxTimeout(t, d), srv.Addr(), []byte("slow"))
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if elapsed < d || elapsed > d+500*time.Millisecond {
		t.Fatalf("call returned after %v, want about %v", elapsed, d)
	}
	if left := <-sawDeadline; left <= 0 || left > d {
		t.Fatalf("handler saw %v left of its deadline, want (0, %v]", left, d)
	}
	resp, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), []byte("fast"))
	if err != nil || string(resp) != "fast" {
		t.Fatalf("call after timeout: %q, %v", resp, err)
	}
	if got := cli.peer(srv.Addr()).slots[0].Load(); got != conn {
		t.Fatal("the timeout replaced the connection")
	}

	// A ctx without deadline gets Config.DefaultTimeout.
	cfg2 := testConfig()
	cfg2.DefaultTimeout = 100 * time.Millisecond
	cli2 := listen(t, cfg2, nil)
	start = time.Now()
	_, err = cli2.Call(context.Background(), srv.Addr(), []byte("slow"))
	<-sawDeadline
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("default timeout: err = %v after %v", err, time.Since(start))
	}

	// Cancel (not deadline) abandons the call and keeps the connection.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-sawDeadline; cancel() }()
	_, err = cli.Call(ctx, srv.Addr(), []byte("slow"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: err = %v", err)
	}
	if got := cli.peer(srv.Addr()).slots[0].Load(); got != conn || got.broken.Load() {
		t.Fatal("cancel broke the connection")
	}
}

// freePort returns a loopback address nothing listens on (just now).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCPPeerDownAndBack(t *testing.T) {
	defer checkNoLeak(t)()
	cfg := testConfig()
	cli := listen(t, cfg, nil)
	addr := freePort(t)

	start := time.Now()
	_, err := cli.Call(ctxTimeout(t, 2*time.Second), addr, []byte("x"))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("first call: err = %v, want ErrUnreachable", err)
	}
	_, err = cli.Call(ctxTimeout(t, 2*time.Second), addr, []byte("x"))
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "backoff") {
		t.Fatalf("second call: err = %v, want ErrUnreachable in backoff", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("failing calls took %v, want fast failure", el)
	}

	scfg := testConfig()
	scfg.ListenAddr = addr
	srv, err := ListenTCP(scfg, echo)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	var last error
	waitFor(t, 5*time.Second, "calls to succeed after the peer came back", func() bool {
		_, last = cli.Call(ctxTimeout(t, time.Second), addr, []byte("x"))
		return last == nil
	})

	// The peer restarts; once reachable again, it goes away with a call in
	// flight: that call fails with ErrConnLost.
	srv.Close()
	block := make(chan struct{})
	srv2, err := ListenTCP(scfg, func(ctx context.Context, req []byte) ([]byte, error) {
		if string(req) == "block" {
			close(block)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return req, nil
	})
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	waitFor(t, 5*time.Second, "calls to reach the restarted peer", func() bool {
		_, last = cli.Call(ctxTimeout(t, time.Second), addr, []byte("x"))
		return last == nil
	})
	done := make(chan error, 1)
	for started := false; !started; {
		go func() {
			_, err := cli.Call(ctxTimeout(t, 5*time.Second), addr, []byte("block"))
			done <- err
		}()
		select {
		case <-block:
			started = true
		case err := <-done:
			// A connection to the old server not yet noticed as closed.
			if !errors.Is(err, ErrConnLost) {
				t.Fatalf("call to restarted peer: %v", err)
			}
		}
	}
	srv2.Close()
	if err := <-done; !errors.Is(err, ErrConnLost) {
		t.Fatalf("call in flight when the peer closed: err = %v, want ErrConnLost", err)
	}
	cli.Close()
}

func TestTCPBadFrames(t *testing.T) {
	defer checkNoLeak(t)()
	cfg := testConfig()
	cfg.MaxFrameBytes = 1024
	srv := listen(t, cfg, echo)
	cli := listen(t, cfg, nil)
	if _, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), []byte("hi")); err != nil {
		t.Fatal(err)
	}

	rawFrame := func(size uint32, flags byte) []byte {
		var h [headerSize]byte
		binary.BigEndian.PutUint32(h[0:], size)
		binary.BigEndian.PutUint64(h[4:], 7)
		h[12] = flags
		return h[:]
	}
	cases := map[string][]byte{
		"oversized":  rawFrame(1<<20, flagRequest),
		"bad kind":   rawFrame(0, 99),
		"response":   rawFrame(0, flagResponse),
		"late hello": append(rawFrame(0, flagRequest), rawFrame(0, flagHello)...),
		"garbage":    []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
	for name, junk := range cases {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(junk); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = io.Copy(io.Discard, nc) // returns once the server closes
			if err != nil {
				t.Fatalf("server did not close the connection: %v", err)
			}
			if _, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), []byte("still")); err != nil {
				t.Fatalf("server stopped serving others: %v", err)
			}
		})
	}

	// Client side: a peer that answers with an oversized frame.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		var h [headerSize]byte
		io.ReadFull(nc, h[:]) // hello
		io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint32(h[:])))
		nc.Write(rawFrame(0, flagHello))
		io.ReadFull(nc, h[:]) // the request
		nc.Write(rawFrame(1<<30, flagResponse))
		io.Copy(io.Discard, nc)
	}()
	_, err = cli.Call(ctxTimeout(t, 2*time.Second), ln.Addr().String(), []byte("x"))
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized response frame: err = %v, want ErrConnLost wrapping ErrTooLarge", err)
	}
	cli.Close()
	srv.Close()
}

func TestTCPErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFrameBytes = 1 << 10
	srv := listen(t, cfg, func(_ context.Context, req []byte) ([]byte, error) {
		switch string(req) {
		case "fail":
			return nil, errors.New("disk on fire")
		case "panic":
			panic("boom")
		case "big":
			return make([]byte, 2<<10), nil
		case "empty":
			return nil, nil
		}
		return req, nil
	})
	cli := listen(t, cfg, nil)
	ctx := ctxTimeout(t, 5*time.Second)

	_, err := cli.Call(ctx, srv.Addr(), []byte("fail"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "disk on fire" {
		t.Fatalf("handler error: err = %#v", err)
	}
	_, err = cli.Call(ctx, srv.Addr(), []byte("panic"))
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "boom") {
		t.Fatalf("handler panic: err = %v", err)
	}
	_, err = cli.Call(ctx, srv.Addr(), []byte("big"))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized response: err = %v", err)
	}
	_, err = cli.Call(ctx, srv.Addr(), make([]byte, 2<<10))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized request: err = %v", err)
	}
	resp, err := cli.Call(ctx, srv.Addr(), []byte("empty"))
	if err != nil || resp == nil || len(resp) != 0 {
		t.Fatalf("empty answer: %v, %v", resp, err)
	}
	// Still usable after all that.
	if resp, err := cli.Call(ctx, srv.Addr(), []byte("ok")); err != nil || string(resp) != "ok" {
		t.Fatalf("after errors: %q, %v", resp, err)
	}
}

func TestTCPCallerAddr(t *testing.T) {
	got := make(chan string, 1)
	srv := listen(t, testConfig(), func(ctx context.Context, req []byte) ([]byte, error) {
		got <- CallerAddr(ctx)
		return nil, nil
	})
	cli := listen(t, testConfig(), nil)
	if _, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), nil); err != nil {
		t.Fatal(err)
	}
	if from := <-got; from != cli.Addr() {
		t.Fatalf("CallerAddr = %q, want %q", from, cli.Addr())
	}
}

func TestTCPCloseIdempotentNoLeak(t *testing.T) {
	leak := checkNoLeak(t)
	started := make(chan struct{}, 16)
	srv, err := ListenTCP(testConfig(), func(ctx context.Context, req []byte) ([]byte, error) {
		if string(req) == "block" {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return req, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ListenTCP(testConfig(), echo)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Call(ctxTimeout(t, time.Second), cli.Addr(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Calls in flight when the caller closes fail with ErrClosed.
	var inflight sync.WaitGroup
	var closedErrs atomic.Int32
	for range 4 {
		inflight.Go(func() {
			_, err := cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), []byte("block"))
			if errors.Is(err, ErrClosed) {
				closedErrs.Add(1)
			} else {
				t.Errorf("in-flight call: err = %v, want ErrClosed", err)
			}
		})
	}
	for range 4 {
		<-started
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	inflight.Wait()
	if err := cli.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := cli.Call(context.Background(), srv.Addr(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: err = %v", err)
	}
	srv.Close()
	srv.Close()
	leak()
}

func TestTCPInFlightLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightPerConn = 4
	cfg.ConnsPerPeer = 1
	var running, peak atomic.Int32
	release := make(chan struct{})
	srv := listen(t, cfg, func(ctx context.Context, req []byte) ([]byte, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return req, nil
	})
	cli := listen(t, cfg, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), []byte("x")); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, 5*time.Second, "4 handlers running", func() bool { return running.Load() == 4 })
	close(release)
	wg.Wait()
	if p := peak.Load(); p != 4 {
		t.Fatalf("peak concurrent handlers = %d, want 4", p)
	}
}

func TestBackoffGrowsAndJitters(t *testing.T) {
	cfg := testConfig()
	cfg.BackoffMin = 100 * time.Millisecond
	cfg.BackoffMax = time.Second
	tr := listen(t, cfg, nil)
	for f, maxWant := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for range 50 {
			d := tr.backoff(f)
			if d < maxWant/2 || d > maxWant {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", f, d, maxWant/2, maxWant)
			}
		}
	}
}

func TestTCPResetBackoff(t *testing.T) {
	cfg := testConfig()
	cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour
	cli := listen(t, cfg, nil)
	addr := freePort(t)
	if _, err := cli.Call(ctxTimeout(t, time.Second), addr, nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v", err)
	}
	scfg := testConfig()
	scfg.ListenAddr = addr
	srv, err := ListenTCP(scfg, echo)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer srv.Close()
	if _, err := cli.Call(ctxTimeout(t, time.Second), addr, nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("in an hour-long backoff: err = %v", err)
	}
	cli.ResetBackoff(addr)
	if _, err := cli.Call(ctxTimeout(t, time.Second), addr, nil); err != nil {
		t.Fatalf("after ResetBackoff: %v", err)
	}
}

// TestTCPWriteTimeout: a peer that stops reading gets its connection torn
// down after WriteTimeout instead of wedging every later call.
func TestTCPWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stalled := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		var h [headerSize]byte
		io.ReadFull(nc, h[:])
		io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint32(h[:])))
		nc.Write(appendFrame(nil, 0, flagHello, 0, nil))
		stalled <- nc // and never read again
	}()
	cfg := testConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	cli := listen(t, cfg, nil)
	big := make([]byte, 4<<20)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			_, err := cli.Call(ctxTimeout(t, 10*time.Second), ln.Addr().String(), big)
			if !errors.Is(err, ErrConnLost) {
				t.Errorf("call to a stalled peer: err = %v, want ErrConnLost", err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("stalled writes detected after %v", el)
	}
	(<-stalled).Close()
}

// Go delivers every outcome exactly once: answers (many at once on one
// connection), the deadline, a dead peer (before Go returns), a broken
// connection; and an answered call leaves nothing watching its ctx.
func TestTCPGo(t *testing.T) {
	defer checkNoLeak(t)()
	cfg := testConfig()
	cfg.ConnsPerPeer = 1
	hold := make(chan struct{})
	srv := listen(t, cfg, func(ctx context.Context, req []byte) ([]byte, error) {
		switch string(req) {
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "hold":
			<-hold
		}
		return req, nil
	})
	cli := listen(t, cfg, nil)
	type result struct {
		resp string
		err  error
	}
	goCall := func(ctx context.Context, addr, req string) <-chan result {
		ch := make(chan result, 2) // room for a second delivery, which would fail the test
		cli.Go(ctx, addr, []byte(req), func(resp []byte, err error) { ch <- result{string(resp), err} })
		return ch
	}
	once := func(ch <-chan result) result {
		t.Helper()
		r := <-ch
		select {
		case r2 := <-ch:
			t.Fatalf("second delivery %+v after %+v", r2, r)
		case <-time.After(20 * time.Millisecond):
		}
		return r
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var chs []<-chan result
	for i := range 200 {
		chs = append(chs, goCall(ctx, srv.Addr(), fmt.Sprint("req", i)))
	}
	for i, ch := range chs {
		if r := <-ch; r.err != nil || r.resp != fmt.Sprint("req", i) {
			t.Fatalf("call %d: %+v", i, r)
		}
	}

	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	if r := once(goCall(short, srv.Addr(), "slow")); !errors.Is(r.err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("slow call: %+v after %v, want DeadlineExceeded after about 100ms", r, time.Since(start))
	}

	noDeadline := make(chan result, 1)
	cli.Go(context.Background(), srv.Addr(), []byte("x"), func(_ []byte, err error) { noDeadline <- result{err: err} })
	if r := <-noDeadline; r.err == nil {
		t.Fatal("Go without a deadline was accepted")
	}

	dead := freePort(t)
	got := make(chan error, 1)
	cli.Go(ctx, dead, []byte("x"), func(_ []byte, err error) { got <- err })
	select {
	case err := <-got:
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("dead peer: %v, want ErrUnreachable", err)
		}
	default:
		t.Fatal("a call that could not be sent was not failed before Go returned")
	}

	held := goCall(ctx, srv.Addr(), "hold")
	waitFor(t, time.Second, "the held call to be pending", func() bool {
		c := cli.peer(srv.Addr()).slots[0].Load()
		if c == nil {
			return false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == 1
	})
	cli.peer(srv.Addr()).slots[0].Load().nc.Close()
	if r := once(held); !errors.Is(r.err, ErrConnLost) {
		t.Fatalf("broken connection: %+v, want ErrConnLost", r)
	}
	close(hold)
	cli.Close()
	srv.Close()
}

// Drain lets a running request finish and answers it, refuses new requests
// with a remote error (they did not run), and returns once the answer is
// out.
func TestTCPDrain(t *testing.T) {
	cfg := testConfig()
	started := make(chan struct{})
	var ran atomic.Int64
	srv := listen(t, cfg, func(ctx context.Context, req []byte) ([]byte, error) {
		ran.Add(1)
		if string(req) == "slow" {
			close(started)
			time.Sleep(200 * time.Millisecond)
		}
		return req, nil
	})
	cli := listen(t, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, srv.Addr(), []byte("warm")); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		resp, err := cli.Call(ctx, srv.Addr(), []byte("slow"))
		if err == nil && string(resp) != "slow" {
			err = fmt.Errorf("answer %q", resp)
		}
		slow <- err
	}()
	<-started
	drained := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		srv.Drain(5 * time.Second)
		drained <- time.Since(start)
	}()
	waitFor(t, time.Second, "drain to start", srv.draining.Load)
	_, err := cli.Call(ctx, srv.Addr(), []byte("late"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != errDraining {
		t.Fatalf("request during drain: %v, want the remote error %q", err, errDraining)
	}
	if err := <-slow; err != nil {
		t.Fatalf("the running request was not answered: %v", err)
	}
	// The slow handler had about 200 ms to go when Drain started.
	if d := <-drained; d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Drain took %v, want it to wait for the running request (about 200 ms)", d)
	}
	if n := ran.Load(); n != 2 {
		t.Fatalf("%d requests ran, want 2 (the refused one must not run)", n)
	}
}
