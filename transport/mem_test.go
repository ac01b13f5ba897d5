package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// tagged answers "<own addr>:<caller>:<req>".
func tagged(addr string) Handler {
	return func(ctx context.Context, req []byte) ([]byte, error) {
		return fmt.Appendf(nil, "%s:%s:%s", addr, CallerAddr(ctx), req), nil
	}
}

// threeNodes listens a, b and c on n.
func threeNodes(n *Network) (a, b, c *Mem) {
	return n.Listen("a", tagged("a")), n.Listen("b", tagged("b")), n.Listen("c", tagged("c"))
}

func TestMemRoundTripNoAliasing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		var seen []byte
		keep := []byte("answer")
		srv := n.Listen("srv", func(ctx context.Context, req []byte) ([]byte, error) {
			seen = req
			return keep, nil
		})
		cli := n.Listen("cli", nil)
		req := []byte("question")
		resp, err := cli.Call(context.Background(), "srv", req)
		if err != nil || string(resp) != "answer" {
			t.Fatalf("Call = %q, %v", resp, err)
		}
		req[0], resp[0] = 'X', 'X'
		if string(seen) != "question" || string(keep) != "answer" {
			t.Fatalf("payloads alias: handler saw %q, handler's answer now %q", seen, keep)
		}
		if srv.Addr() != "srv" {
			t.Fatalf("Addr = %q", srv.Addr())
		}
		_, err = srv.Call(context.Background(), "cli", nil)
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("nil handler: err = %v, want *RemoteError", err)
		}
		if _, err := cli.Call(context.Background(), "nobody", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("unknown address: err = %v", err)
		}
		if _, err := cli.Call(context.Background(), "srv", make([]byte, defaultMaxFrame+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversized: err = %v", err)
		}
	})
}

func TestMemHandlerErrorAndDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		n.Listen("srv", func(ctx context.Context, req []byte) ([]byte, error) {
			switch string(req) {
			case "fail":
				return nil, errors.New("no such key")
			case "slow":
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return req, nil
		})
		cli := n.Listen("cli", nil)
		_, err := cli.Call(context.Background(), "srv", []byte("fail"))
		var re *RemoteError
		if !errors.As(err, &re) || re.Msg != "no such key" {
			t.Fatalf("err = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = cli.Call(ctx, "srv", []byte("slow"))
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 300*time.Millisecond {
			t.Fatalf("slow: err = %v after %v", err, time.Since(start))
		}
		// No deadline: the network's default.
		start = time.Now()
		_, err = cli.Call(context.Background(), "srv", []byte("slow"))
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != defaultTimeout {
			t.Fatalf("default timeout: err = %v after %v", err, time.Since(start))
		}
	})
}

func TestMemPartitionHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		a, b, c := threeNodes(n)
		d := n.Listen("d", nil) // never listed: reaches everyone
		ctx := context.Background()
		n.Partition([]string{"a"}, []string{"b", "c"})
		if _, err := a.Call(ctx, "b", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("a→b across the partition: err = %v", err)
		}
		if _, err := c.Call(ctx, "a", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("c→a across the partition: err = %v", err)
		}
		if resp, err := b.Call(ctx, "c", []byte("x")); err != nil || string(resp) != "c:b:x" {
			t.Fatalf("b→c inside a group: %q, %v", resp, err)
		}
		for _, to := range []string{"a", "b", "c"} {
			if _, err := d.Call(ctx, to, nil); err != nil {
				t.Fatalf("unlisted d→%s: %v", to, err)
			}
		}
		n.Heal()
		if resp, err := a.Call(ctx, "b", []byte("y")); err != nil || string(resp) != "b:a:y" {
			t.Fatalf("after Heal: %q, %v", resp, err)
		}
	})
}

func TestMemPartitionDropsAnswerInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		release := make(chan struct{})
		n.Listen("b", func(ctx context.Context, req []byte) ([]byte, error) {
			<-release
			return req, nil
		})
		a := n.Listen("a", nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { _, err := a.Call(ctx, "b", nil); errc <- err }()
		synctest.Wait() // the handler is blocked on release
		n.Partition([]string{"a"}, []string{"b"})
		close(release)
		if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("answer crossing a new partition: err = %v, want timeout", err)
		}
	})
}

func TestMemBlockOneWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		var ran sync.WaitGroup
		ran.Add(1)
		aEnd := n.Listen("a", func(context.Context, []byte) ([]byte, error) { ran.Done(); return nil, nil })
		b := n.Listen("b", tagged("b"))
		n.Block("a", "b")
		if _, err := aEnd.Call(context.Background(), "b", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("a→b blocked: err = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := b.Call(ctx, "a", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("b→a with a→b blocked: err = %v, want timeout (answer lost)", err)
		}
		ran.Wait() // the request did arrive
		n.Unblock("a", "b")
		if _, err := aEnd.Call(context.Background(), "b", nil); err != nil {
			t.Fatalf("after Unblock: %v", err)
		}
	})
}

// dropOutcomes runs a sequential workload on a fresh network with the given
// seed and drop rate and returns one letter per call: o(k) or t(imeout).
func dropOutcomes(t *testing.T, seed int64, drop float64, calls int) string {
	var out strings.Builder
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(seed)
		a, _, _ := threeNodes(n)
		n.SetDrop(drop)
		for i := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_, err := a.Call(ctx, []string{"b", "c"}[i%2], []byte{byte(i)})
			cancel()
			switch {
			case err == nil:
				out.WriteByte('o')
			case errors.Is(err, context.DeadlineExceeded):
				out.WriteByte('t')
			default:
				t.Fatalf("call %d: unexpected %v", i, err)
			}
		}
	})
	return out.String()
}

func TestMemDropSeeded(t *testing.T) {
	first := dropOutcomes(t, 42, 0.3, 200)
	if again := dropOutcomes(t, 42, 0.3, 200); again != first {
		t.Fatalf("same seed, different outcomes:\n%s\n%s", first, again)
	}
	if other := dropOutcomes(t, 43, 0.3, 200); other == first {
		t.Fatal("different seeds gave the same 200 outcomes")
	}
	// Each call loses with probability 1-(0.7)^2 = 0.51.
	lost := strings.Count(first, "t")
	if lost < 70 || lost > 135 {
		t.Fatalf("%d of 200 calls lost at drop 0.3, want about 102: %s", lost, first)
	}
	if s := dropOutcomes(t, 42, 0, 50); strings.Contains(s, "t") {
		t.Fatalf("drop 0 lost calls: %s", s)
	}
}

func TestMemDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(7)
		a, _, _ := threeNodes(n)
		n.SetDelay(10*time.Millisecond, 30*time.Millisecond)
		var total time.Duration
		distinct := map[time.Duration]bool{}
		for range 50 {
			start := time.Now()
			if _, err := a.Call(context.Background(), "b", nil); err != nil {
				t.Fatal(err)
			}
			rtt := time.Since(start)
			if rtt < 20*time.Millisecond || rtt > 60*time.Millisecond {
				t.Fatalf("round trip %v outside [20ms, 60ms]", rtt)
			}
			total += rtt
			distinct[rtt] = true
		}
		if len(distinct) < 10 {
			t.Fatalf("delays barely vary: %d distinct round trips", len(distinct))
		}
		// A delay longer than the deadline is a timeout.
		n.SetDelay(time.Second, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := a.Call(ctx, "b", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want timeout", err)
		}
		n.SetDelay(0, 0)
		defer n.Close() // ends the request still travelling with its 1s delay
		start := time.Now()
		if _, err := a.Call(context.Background(), "b", nil); err != nil || time.Since(start) != 0 {
			t.Fatalf("after SetDelay(0, 0): %v after %v", err, time.Since(start))
		}
	})
}

func TestMemKillRevive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		release := make(chan struct{})
		handlerCtxErr := make(chan error, 1)
		n.Listen("b", func(ctx context.Context, req []byte) ([]byte, error) {
			if string(req) == "block" {
				<-release
				handlerCtxErr <- ctx.Err()
			}
			return req, nil
		})
		a := n.Listen("a", nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { _, err := a.Call(ctx, "b", []byte("block")); errc <- err }()
		synctest.Wait()
		n.Kill("b")
		close(release)
		if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("answer from a killed node: err = %v, want it discarded (timeout)", err)
		}
		if err := <-handlerCtxErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("killed node's handler ctx: %v, want canceled", err)
		}
		start := time.Now()
		if _, err := a.Call(context.Background(), "b", nil); !errors.Is(err, ErrUnreachable) || time.Since(start) != 0 {
			t.Fatalf("call to a killed node: err = %v after %v, want ErrUnreachable at once", err, time.Since(start))
		}
		n.Kill("a")
		if _, err := a.Call(context.Background(), "c", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call from a killed node: err = %v", err)
		}
		n.Revive("a")
		n.Revive("b")
		if resp, err := a.Call(context.Background(), "b", []byte("hi")); err != nil || string(resp) != "hi" {
			t.Fatalf("after Revive: %q, %v", resp, err)
		}
		n.Kill("b")
		n.Restart("b", tagged("b2"))
		if resp, err := a.Call(context.Background(), "b", []byte("hi")); err != nil || string(resp) != "b2:a:hi" {
			t.Fatalf("after Restart: %q, %v", resp, err)
		}
	})
}

func TestMemCloseAndRelisten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		a, b, _ := threeNodes(n)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if _, err := a.Call(context.Background(), "b", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call to closed endpoint: %v", err)
		}
		if _, err := b.Call(context.Background(), "a", nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("call from closed endpoint: %v", err)
		}
		b2 := n.Listen("b", tagged("new-b"))
		if resp, _ := a.Call(context.Background(), "b", []byte("x")); !bytes.Equal(resp, []byte("new-b:a:x")) {
			t.Fatalf("relistened b answered %q", resp)
		}
		// Listening again on a live address replaces the old endpoint.
		b3 := n.Listen("b", tagged("newer-b"))
		if _, err := b2.Call(context.Background(), "a", nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("replaced endpoint: %v", err)
		}
		if resp, _ := a.Call(context.Background(), "b", []byte("x")); !bytes.Equal(resp, []byte("newer-b:a:x")) {
			t.Fatalf("replacement answered %q", resp)
		}
		b2.Close() // must not remove b3
		if _, err := a.Call(context.Background(), "b", nil); err != nil {
			t.Fatalf("closing a replaced endpoint removed its successor: %v", err)
		}
		_ = b3
	})
}

// Both implementations satisfy the method set consumers code against.
var _ interface {
	Call(ctx context.Context, addr string, req []byte) ([]byte, error)
	Addr() string
	Close() error
} = (*Mem)(nil)

var _ interface {
	Call(ctx context.Context, addr string, req []byte) ([]byte, error)
	Addr() string
	Close() error
} = (*TCP)(nil)
