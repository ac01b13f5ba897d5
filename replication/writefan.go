package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// A writeFan is one coordinated write on its way to the key's other
// primaries: what the pipes need to report each replica's outcome, and the
// fallbacks a failed replica's hint may go to. It is the write path's one
// allocation for the fan-out (no closure per replica, no context per
// request), because under load the coordinator makes tens of thousands of
// them a second.
type writeFan struct {
	c    *Coordinator
	key  []byte
	pl   placement
	obj  vclock.Object
	acks chan writeAck // room for every replica: senders never block

	mu     sync.Mutex // guards nextFb
	nextFb int
}

// writeAck is one replica's outcome: the node that took the write (the
// primary, or the fallback that holds it as a hint for the primary), or the
// primary and why neither it nor any fallback took it.
type writeAck struct {
	node     string
	fallback bool
	err      error
}

func (c *Coordinator) newWriteFan(key []byte, pl placement, obj vclock.Object) *writeFan {
	return &writeFan{c: c, key: key, pl: pl, obj: obj, acks: make(chan writeAck, len(pl.primaries))}
}

// send hands the write to node's pipe or, if membership says node is down,
// straight to a fallback as a hint.
func (f *writeFan) send(node string) {
	if !f.c.cl.Up(node) {
		f.c.goBackground(func(context.Context) { f.acks <- f.hintFor(node, errors.New("down according to membership")) })
		return
	}
	f.c.pipeTo(node).write(f)
}

// done records node's outcome; called by the pipe once the batch holding
// the write was answered. It must not block: a failure looks for a
// fallback in the background.
func (f *writeFan) done(node string, err error) {
	if err == nil {
		f.acks <- writeAck{node: node}
		return
	}
	f.c.goBackground(func(context.Context) { f.acks <- f.hintFor(node, err) })
}

// takeFallback hands out the write's fallbacks, each at most once.
func (f *writeFan) takeFallback() (string, bool) {
	if f.c.cfg.DisableSloppy {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fallbacks := f.pl.pref[len(f.pl.primaries):]
	for f.nextFb < len(fallbacks) {
		n := fallbacks[f.nextFb]
		f.nextFb++
		if n != f.c.cfg.ID && f.c.cl.Up(n) {
			return n, true
		}
	}
	return "", false
}

// hintFor hands the write to the next fallback that takes it, as a hint
// for node, which failed with err.
func (f *writeFan) hintFor(node string, err error) writeAck {
	obj := f.obj
	req := wire.Request{Op: wire.OpWrite, Partition: f.pl.partition, Key: f.key, Object: &obj, HintFor: node}
	for {
		fb, ok := f.takeFallback()
		if !ok {
			return writeAck{node: node, err: err}
		}
		rctx, cancel := f.c.replicaCtx()
		_, ferr := f.c.call(rctx, fb, req)
		cancel()
		if ferr == nil {
			return writeAck{node: fb, fallback: true}
		}
		err = fmt.Errorf("%v; fallback %s: %v", err, fb, ferr)
	}
}

// wait collects the outcomes of total replicas until need of them took the
// write, until need is out of reach, or until the request's time is up:
// ctx's deadline or, if it has none, Config.RequestTimeout (a pooled timer,
// not a context per request). It returns how many took it and how many of
// those were fallbacks.
func (f *writeFan) wait(ctx context.Context, total, need int) (acked, fallbacks int, err error) {
	var expired <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := getTimer(f.c.cfg.RequestTimeout)
		defer putTimer(t)
		expired = t.C
	}
	ok, _, err := gather(ctx, f.acks, total, need, "write", expired)
	for _, a := range ok {
		if a.fallback {
			fallbacks++
		}
	}
	return len(ok), fallbacks, err
}

// Timers are reused: a stopped timer's channel holds no stale tick, so
// Reset makes it as good as new.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}
