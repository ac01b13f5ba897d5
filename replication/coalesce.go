package replication

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// Read coalescing and write combining.
//
// Concurrent reads of one key at one level share replica round trips: a
// read that finds a read of its key under way does not ask the replicas
// itself, but waits for the next read of that key, which starts as soon as
// the one under way ends and answers every read that arrived meanwhile. A
// hot key read by many clients then costs the cluster one remote read per
// round trip instead of one per request; reads of different keys are not
// affected.
//
// It never answers a read with replies that were asked for before the read
// arrived: joining the read under way would, and that read may have missed
// a write acknowledged after it started but before the joiner arrived. A
// quorum read still sees every write acknowledged before it began
// (TestCoalescedReadStartsAfterItArrives, with the joinRunning control).
// Strong reads are never coalesced (they run their own protocol), nor are
// reads of one replica (they cost no message).
//
// Overwrites (RESP SET) of one key on its coordinator use the same groups
// (Coordinator.Put): the next call writes the value of the last request
// that queued for it and answers them all. The requests of one call all
// overlap in time, so any order among them is valid, and the call's write
// supersedes each as if they had run back to back.

// groupKey names the requests that may share a call: one key, one number
// of replicas.
type groupKey struct {
	key  string
	need int
}

// groupCall is one read or write of a key that several requests may wait
// for.
type groupCall struct {
	done chan struct{}
	res  Result
	err  error
	// run performs the call with arg; set for calls that start when
	// another ends. arg is the last argument a request queued with.
	run func(inline bool, arg any) (Result, error)
	arg any
	// next is the call for the requests that arrived while this one ran.
	next *groupCall
}

// callGroups holds the calls under way, by key.
type callGroups struct {
	mu sync.Mutex
	m  map[groupKey]*groupCall

	// joinRunning lets a request join the call under way, which breaks
	// the rule above; tests set it to show that their check catches it.
	joinRunning bool
	// onPanic, when set, hears of a panic in a call no request runs.
	onPanic func(any)
}

// do returns the result of a call for k: run(true, arg)'s, on the caller's
// goroutine, if no call for k is under way; otherwise that of the next
// call for k, which starts when the one under way ends and runs with the
// arg of the last request that queued for it. shared reports the latter;
// the caller must not change a shared result (see shareResult). A caller
// whose ctx ends while it waits gets ctx's error.
func (g *callGroups) do(ctx context.Context, k groupKey, arg any, run func(inline bool, arg any) (Result, error)) (res Result, err error, shared bool) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[groupKey]*groupCall)
	}
	cur := g.m[k]
	if cur == nil {
		call := &groupCall{done: make(chan struct{})}
		g.m[k] = call
		g.mu.Unlock()
		res, err = g.run(k, call, run, true, arg)
		return res, err, false
	}
	wait := cur.next
	switch {
	case g.joinRunning:
		wait = cur
	case wait == nil:
		wait = &groupCall{done: make(chan struct{}), run: run, arg: arg}
		cur.next = wait
	default:
		wait.arg = arg
	}
	g.mu.Unlock()
	select {
	case <-wait.done:
		return wait.res, wait.err, true
	case <-ctx.Done():
		return Result{}, ctx.Err(), true
	}
}

// errCallPanicked answers the requests that waited for a call that
// panicked.
var errCallPanicked = errors.New("replication: internal error in a shared read or write; see the node's log")

// run runs call and finishes it, even if run panics (the panic goes on
// after the waiting requests are answered), so a key never stays busy.
func (g *callGroups) run(k groupKey, call *groupCall, run func(bool, any) (Result, error), inline bool, arg any) (res Result, err error) {
	done := false
	defer func() {
		if !done {
			g.finish(k, call, Result{}, errCallPanicked)
		}
	}()
	res, err = run(inline, arg)
	done = true
	g.finish(k, call, res, err)
	return res, err
}

// finish publishes call's result and starts the call waiting behind it.
func (g *callGroups) finish(k groupKey, call *groupCall, res Result, err error) {
	call.res, call.err = res, err
	g.mu.Lock()
	next := call.next
	var arg any
	if next == nil {
		delete(g.m, k)
	} else {
		g.m[k] = next
		arg = next.arg // later requests now queue behind next
	}
	g.mu.Unlock()
	close(call.done)
	if next != nil {
		go func() {
			defer func() {
				// The requests waiting for next are answered by the
				// deferred finish in run; a panic must not end the node
				// from a goroutine no request owns.
				if r := recover(); r != nil && g.onPanic != nil {
					g.onPanic(r)
				}
			}()
			g.run(k, next, next.run, false, arg)
		}()
	}
}

// shareResult copies the parts of a shared result a caller could change.
// Values are shared: no caller changes them.
func shareResult(r Result) Result {
	r.Object.Siblings = slices.Clone(r.Object.Siblings)
	r.Object.Clock = slices.Clone(r.Object.Clock)
	r.Context = slices.Clone(r.Context)
	return r
}
