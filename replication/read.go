package replication

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/quorumkv/quorumkv/wire"
)

// readFan asks a key's primaries for their objects a few at a time: at
// first only as many as the read needs (this node first, since its answer
// costs no message), then one more whenever a replica fails or the answers
// are slower than the speculation delay. On two cores shared by three nodes
// every replica message costs the cluster CPU that a client request could
// use; asking all N primaries and discarding N-R answers made `one` no
// cheaper than `all`. Quorum intersection does not depend on which R
// replicas answer.
//
// The price is read repair coverage: a read repairs only the replicas it
// asked. Replicas no read asks are caught up by hinted handoff and
// anti-entropy, as in Cassandra's reads below ALL.
type readFan struct {
	c     *Coordinator
	ctx   context.Context // the request's: a read no one waits for is dropped
	req   wire.Request
	order []string // primaries not asked yet, in the order to ask them
	ch    chan reply
	sent  int
}

func (c *Coordinator) newReadFan(ctx context.Context, key []byte, pl placement, primary bool) *readFan {
	f := &readFan{
		c:     c,
		ctx:   ctx,
		req:   wire.Request{Op: wire.OpRead, Partition: pl.partition, Key: key, Primary: primary},
		order: make([]string, 0, len(pl.primaries)),
		ch:    make(chan reply, len(pl.primaries)),
	}
	var up, down []string
	local := false
	for _, n := range pl.primaries {
		switch {
		case n == c.cfg.ID:
			local = true
		case c.cl.Up(n):
			up = append(up, n)
		default:
			down = append(down, n)
		}
	}
	if local {
		f.order = append(f.order, c.cfg.ID)
	}
	// Remote replicas that are up in random order, so the load spreads and
	// over many reads every replica gets read (and repaired); the ones
	// membership thinks are down last.
	rand.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	f.order = append(f.order, up...)
	f.order = append(f.order, down...)
	return f
}

// next asks the next replica in order; it reports false when none is left.
func (f *readFan) next() bool {
	if len(f.order) == 0 {
		return false
	}
	node := f.order[0]
	f.order = f.order[1:]
	f.sent++
	ctx := f.ctx
	if node == f.c.cfg.ID {
		ctx = f.c.bgCtx
	}
	// The request's deadline bounds a remote call (no timer of its own):
	// once the request is answered, a reply still on its way would only
	// feed read repair, which anti-entropy covers. f.ch has room for a
	// reply from every primary, so done never blocks.
	f.c.goCall(ctx, node, f.req, func(resp wire.Response, err error) {
		f.ch <- reply{node: node, resp: resp, err: err}
	})
	return true
}

// gather asks need replicas and waits until need of them answered, until
// need can no longer be reached, or until ctx ends. It returns the
// successful replies; the replies still on their way arrive on f.ch, and
// f.sent counts every replica asked.
func (f *readFan) gather(ctx context.Context, need int, op string) ([]reply, error) {
	for range need {
		f.next()
	}
	var ok []reply
	causes := map[string]error{}
	failed := 0
	var spec <-chan time.Time
	if d := f.c.cfg.SpeculativeRead; d > 0 && len(f.order) > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		spec = t.C
	}
	for len(ok) < need {
		if f.sent-failed+len(f.order) < need {
			// Out of reach: collect the replies already on their way
			// (briefly), so the error counts what really answered.
			waitInFlight(ctx, f.ch, f.sent-failed-len(ok), &ok, causes)
			return ok, &QuorumError{Op: op, Needed: need, Acked: len(ok), Causes: causes}
		}
		select {
		case r := <-f.ch:
			if r.err != nil {
				failed++
				causes[r.node] = r.err
				f.next()
				continue
			}
			ok = append(ok, r)
		case <-spec:
			// Slower than usual: ask one more replica rather than wait for
			// a node that may be paused or overloaded.
			spec = nil
			f.next()
		case <-ctx.Done():
			return ok, &QuorumError{Op: op, Needed: need, Acked: len(ok), Timeout: true, Causes: causes}
		}
	}
	return ok, nil
}

// waitInFlight collects up to outstanding replies from ch for at most
// failFastGrace, sorting them into ok and causes.
func waitInFlight[R outcome](ctx context.Context, ch <-chan R, outstanding int, ok *[]R, causes map[string]error) {
	if outstanding <= 0 {
		return
	}
	grace := getTimer(failFastGrace)
	defer putTimer(grace)
	for ; outstanding > 0; outstanding-- {
		select {
		case r := <-ch:
			if err := r.failure(); err != nil {
				causes[r.peer()] = err
			} else {
				*ok = append(*ok, r)
			}
		case <-grace.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
