package resp

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/vclock"
)

// fakeKV is an in-memory KV with real version semantics (vclock.Object:
// a write supersedes the siblings its context covers, the rest stay), so
// siblings, contexts and tombstones behave as on a cluster. It records what
// it was asked, can inject errors per key and a delay per call.
type fakeKV struct {
	shards [64]fakeShard
	seed   maphash.Seed

	// delay is slept (or until ctx ends) in every call.
	delay time.Duration
	// maxSiblings refuses writes past it, as the coordinator does.
	maxSiblings int

	// mu guards fail and calls.
	mu    sync.Mutex
	fail  map[string]error
	calls []fakeCall
	// record turns on the calls log.
	record bool

	gets, puts        atomic.Int64
	mostSiblings      atomic.Int64 // the most live siblings any write left
	inflight, maxSeen atomic.Int64
}

type fakeShard struct {
	mu   sync.Mutex
	data map[string]vclock.Object
}

// fakeCall is one call the fake saw.
type fakeCall struct {
	op        string // "get" or "put"
	key       string
	level     replication.Consistency
	ctx       vclock.VV
	del       bool
	overwrite bool
}

// errPanic, injected with setFail, makes the fake panic instead.
var errPanic = errors.New("panic")

func newFakeKV() *fakeKV {
	f := &fakeKV{seed: maphash.MakeSeed(), maxSiblings: 100, fail: map[string]error{}, record: true}
	for i := range f.shards {
		f.shards[i].data = map[string]vclock.Object{}
	}
	return f
}

func (f *fakeKV) shard(key []byte) *fakeShard {
	return &f.shards[maphash.Bytes(f.seed, key)%uint64(len(f.shards))]
}

func (f *fakeKV) setFail(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, key)
	} else {
		f.fail[key] = err
	}
}

func (f *fakeKV) callLog() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func (f *fakeKV) resetLog() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// enter records a call, applies the delay and any injected error.
func (f *fakeKV) enter(ctx context.Context, call fakeCall) error {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	if f.record {
		f.calls = append(f.calls, call)
	}
	err := f.fail[call.key]
	f.mu.Unlock()
	if err == errPanic {
		panic("fake KV told to panic on " + call.key)
	}
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeKV) Get(ctx context.Context, key []byte, c replication.Consistency) (replication.Result, error) {
	f.gets.Add(1)
	if err := f.enter(ctx, fakeCall{op: "get", key: string(key), level: c}); err != nil {
		return replication.Result{}, err
	}
	sh := f.shard(key)
	sh.mu.Lock()
	obj := sh.data[string(key)]
	sh.mu.Unlock()
	return replication.Result{Object: obj, Context: obj.Clock, Receipt: replication.Receipt{Replicas: 3, Acks: 3}}, nil
}

func (f *fakeKV) Put(ctx context.Context, key []byte, w replication.Write) (replication.Result, error) {
	f.puts.Add(1)
	if err := f.enter(ctx, fakeCall{op: "put", key: string(key), level: w.Consistency, ctx: w.Context, del: w.Delete, overwrite: w.Overwrite}); err != nil {
		return replication.Result{}, err
	}
	sh := f.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.data[string(key)]
	vctx := w.Context
	if w.Consistency.Level == replication.Strong || w.Overwrite {
		// A strong write supersedes everything by tag; an overwrite
		// supersedes what this (the coordinating) replica holds.
		vctx = cur.Clock.Join(w.Context)
	}
	next, dot := cur.Update("fake", vctx, append([]byte{}, w.Value...), w.Delete)
	if len(next.Siblings) > f.maxSiblings {
		return replication.Result{}, fmt.Errorf("%w: key would have %d siblings, the limit is %d; read the key and write with its context to resolve them", replication.ErrTooManySiblings, len(next.Siblings), f.maxSiblings)
	}
	sh.data[string(key)] = next
	if n := int64(len(next.Live())); n > f.mostSiblings.Load() {
		f.mostSiblings.Store(n) // under the shard lock; racy across shards, fine for tests
	}
	return replication.Result{Object: next, Context: w.Context.With(dot), Receipt: replication.Receipt{Replicas: 3, Acks: 2}}, nil
}

func writeOf(v string) replication.Write { return replication.Write{Value: []byte(v)} }

// waitInflight waits until at least n calls are in the fake at once.
func (f *fakeKV) waitInflight(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.inflight.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("set-up: %d KV calls in flight, want %d", f.inflight.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
