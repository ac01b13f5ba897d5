package replication

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// coalesceScenario runs the case coalescing must get right: read A starts,
// a write is acknowledged, then reads B and C arrive while A is still
// under way. It returns what A, B and C saw (the number of writes
// acknowledged when the read they got started) and how many reads ran.
func coalesceScenario(t *testing.T, g *callGroups) (a, b, c int, runs int64) {
	t.Helper()
	var (
		written atomic.Int64
		nruns   atomic.Int64
		started = make(chan int64, 4)
		gates   = [4]chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})}
	)
	run := func(bool, any) (Result, error) {
		n := nruns.Add(1)
		seen := written.Load()
		started <- n
		<-gates[min(n, 3)]
		return Result{Receipt: Receipt{Acks: int(seen)}}, nil
	}
	k := groupKey{key: "k", need: 2}
	ctx := context.Background()
	var wg sync.WaitGroup
	var ra, rb, rc Result
	wg.Go(func() { ra, _, _ = g.do(ctx, k, nil, run) })
	if n := <-started; n != 1 {
		t.Fatalf("first read started as run %d", n)
	}
	written.Store(1) // acknowledged after A asked its replicas
	wg.Go(func() { rb, _, _ = g.do(ctx, k, nil, run) })
	wg.Go(func() { rc, _, _ = g.do(ctx, k, nil, run) })
	// Let B and C queue (or join) before A ends.
	if !g.joinRunning {
		waitFor(t, "two requests to queue", func() bool { return queued(g, k) })
	}
	time.Sleep(20 * time.Millisecond)
	close(gates[1])
	select {
	case <-started: // the read for B and C
		close(gates[2])
	case <-time.After(time.Second): // none: B and C joined A
	}
	wg.Wait()
	close(gates[3])
	return ra.Receipt.Acks, rb.Receipt.Acks, rc.Receipt.Acks, nruns.Load()
}

func TestCoalescedReadStartsAfterItArrives(t *testing.T) {
	a, b, c, runs := coalesceScenario(t, &callGroups{})
	if a != 0 || b != 1 || c != 1 {
		t.Fatalf("reads saw %d, %d, %d acknowledged writes; want 0 for the read under way, 1 for the two that arrived after the write", a, b, c)
	}
	if runs != 2 {
		t.Fatalf("%d reads ran for three requests; want 2 (the two later requests share one)", runs)
	}
}

// The control: joining the read under way answers B and C with replies
// asked for before the write was acknowledged.
func TestCoalescedReadControlJoinRunning(t *testing.T) {
	a, b, c, runs := coalesceScenario(t, &callGroups{joinRunning: true})
	if b != 0 || c != 0 || runs != 1 {
		t.Fatalf("with joinRunning reads saw %d, %d, %d in %d runs; the scenario no longer shows the stale answer", a, b, c, runs)
	}
}

// A request whose context ends while it waits returns at once; the read it
// waited for still answers the others.
func TestCoalescedReadWaiterTimesOut(t *testing.T) {
	g := &callGroups{}
	gate := make(chan struct{})
	started := make(chan struct{}, 2)
	run := func(bool, any) (Result, error) {
		started <- struct{}{}
		<-gate
		return Result{Receipt: Receipt{Acks: 7}}, nil
	}
	k := groupKey{key: "k", need: 2}
	done := make(chan Result, 1)
	go func() { r, _, _ := g.do(context.Background(), k, nil, run); done <- r }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err, shared := g.do(ctx, k, nil, run)
	if !shared || err != context.DeadlineExceeded {
		t.Fatalf("waiter: shared %v err %v, want its context's deadline", shared, err)
	}
	close(gate)
	if r := <-done; r.Receipt.Acks != 7 {
		t.Fatalf("leader got %+v", r)
	}
	// The queued read still runs (for nobody now) and the group empties.
	waitFor(t, "the group to forget the finished key", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.m) == 0
	})
}

// A call that panics answers the requests waiting for it with an error,
// reports the panic, and leaves the key free for the next read.
func TestCoalescedCallPanicFreesTheKey(t *testing.T) {
	var heard atomic.Value
	g := &callGroups{onPanic: func(r any) { heard.Store(r) }}
	k := groupKey{key: "k", need: 2}
	gate := make(chan struct{})
	started := make(chan struct{}, 1)
	calls := atomic.Int64{}
	run := func(inline bool, _ any) (Result, error) {
		n := calls.Add(1)
		if n == 1 {
			started <- struct{}{}
			<-gate
			return Result{Receipt: Receipt{Acks: 1}}, nil
		}
		panic("boom")
	}
	first := make(chan struct{})
	go func() { g.do(context.Background(), k, nil, run); close(first) }()
	<-started
	waiter := make(chan error, 1)
	go func() { _, err, _ := g.do(context.Background(), k, nil, run); waiter <- err }()
	waitFor(t, "the waiter to queue", func() bool { return queued(g, k) })
	close(gate)
	<-first
	select {
	case err := <-waiter:
		if err != errCallPanicked {
			t.Fatalf("waiter of a panicked call got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter of a panicked call was never answered")
	}
	if heard.Load() != "boom" {
		t.Fatalf("onPanic heard %v", heard.Load())
	}
	// The key is free: an inline read that panics propagates and frees it too.
	func() {
		defer func() { _ = recover() }()
		g.do(context.Background(), k, nil, run)
	}()
	g.mu.Lock()
	n := len(g.m)
	g.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d keys still busy after the panics", n)
	}
}

// queued reports whether a request waits behind the call under way for k.
func queued(g *callGroups, k groupKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[k] != nil && g.m[k].next != nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
		time.Sleep(time.Millisecond)
	}
}
