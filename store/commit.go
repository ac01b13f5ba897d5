package store

import (
	"errors"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// Group commit, with and without Config.Sync.
//
// Why: with SyncWrites badger (v4.9) syncs the value log once per batch of
// queued transactions, but the memtable's write-ahead log once per
// transaction (writeToLSM → SyncWAL, for every request of the batch). A node
// under 64 concurrent writers measured ~1.3 transactions per msync, so
// `--sync always` ran at a fraction of `never`. Putting the puts of concurrent
// Updates into one transaction makes them share both syncs: durability is
// unchanged (each caller still returns only after the sync that covers its
// write). A writer queues its change under its key's stripe lock and waits
// for the commit after releasing it (Store.stageLocked), so changes of one
// key are queued, and committed, in the order they were made, and writes to
// one hot key share commits too.
//
// Without Sync it pays too: every badger transaction costs its own commit
// timestamp, watermark updates and a hand-off to badger's write goroutine.
// With 32 concurrent writers on 2 cores one Update took 19.5 µs alone and
// 13.2 µs grouped (BenchmarkUpdateParallel).
//
// No goroutine of its own: the first caller to find the committer idle
// becomes the leader and commits everything queued, batch after batch, until
// the queue is empty; the others wait for their batch's result.

// Limits of one group transaction, well under badger's maxBatchCount and
// maxBatchSize (15% of the memtable) for every allowed memtable size.
const (
	groupMaxEntries = 256
	groupMaxBytes   = 128 << 10
)

// commitReq is one queued change: a put of val, a delete (del), or, with no
// key, a barrier that only waits for everything queued before it.
type commitReq struct {
	key, val []byte
	del      bool
	done     chan error
}

type groupCommitter struct {
	db *badger.DB

	mu      sync.Mutex // guards the fields below
	pending []*commitReq
	busy    bool
}

// enqueue queues reqs (their done channels are made here). Batches commit
// in queue order, so changes of one key queued under its stripe lock land
// in the order they were made, and a later put of a key in the same
// transaction replaces an earlier one.
func (g *groupCommitter) enqueue(reqs []*commitReq) {
	for _, r := range reqs {
		r.done = make(chan error, 1)
	}
	g.mu.Lock()
	g.pending = append(g.pending, reqs...)
	g.mu.Unlock()
}

// wait commits the queue if no other caller is doing so, then returns the
// first error of reqs' commits. The pairs may land in different
// transactions; each is atomic on its own, which is all independent keys
// need.
func (g *groupCommitter) wait(reqs []*commitReq) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		for len(g.pending) > 0 {
			batch := g.take()
			g.mu.Unlock()
			g.commit(batch)
			g.mu.Lock()
		}
		g.busy = false
	}
	g.mu.Unlock()
	var first error
	for _, r := range reqs {
		if err := <-r.done; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// barrier returns once everything queued before it has committed.
func (g *groupCommitter) barrier() error {
	reqs := []*commitReq{{}}
	g.enqueue(reqs)
	return g.wait(reqs)
}

// take removes the next batch from the queue; g.mu is held.
func (g *groupCommitter) take() []*commitReq {
	n, size := 0, 0
	for n < len(g.pending) && n < groupMaxEntries {
		size += len(g.pending[n].key) + len(g.pending[n].val)
		n++
		if size >= groupMaxBytes {
			break
		}
	}
	batch := g.pending[:n:n]
	rest := g.pending[n:]
	if len(rest) == 0 {
		g.pending = nil
	} else {
		g.pending = append([]*commitReq(nil), rest...)
	}
	return batch
}

// commit writes batch in one transaction and tells every caller the result.
// A batch badger finds too big is retried one put per transaction.
func (g *groupCommitter) commit(batch []*commitReq) {
	n := 0
	for _, r := range batch {
		if r.key != nil {
			n++
		}
	}
	var err error
	if n > 0 {
		err = g.db.Update(func(txn *badger.Txn) error {
			for _, r := range batch {
				if err := r.apply(txn); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
		for _, r := range batch {
			r.done <- g.db.Update(r.apply)
		}
		return
	}
	for _, r := range batch {
		r.done <- err
	}
}

// apply adds r's change to txn; a barrier adds nothing.
func (r *commitReq) apply(txn *badger.Txn) error {
	switch {
	case r.key == nil:
		return nil
	case r.del:
		return txn.Delete(r.key)
	default:
		return txn.Set(r.key, r.val)
	}
}
