package replication

import (
	"context"
	"errors"
	"sync"

	"github.com/quorumkv/quorumkv/wire"
)

// A pipe carries the replica writes this node coordinates to one peer.
// Writes that queue up while earlier ones are on the wire leave together
// as one OpWriteBatch, which the peer applies with one store commit. Under
// load most of a replica write's cost is per message (a goroutine and a
// context on each side, the envelope, a badger transaction), so batching
// cuts the CPU a write costs the cluster; at light load a write finds the
// pipe idle and goes out alone at once, so batching adds no delay.
//
// At most pipeInFlight batches per peer are on the wire; the rest wait in
// the queue, which is where batches form.
type pipe struct {
	c    *Coordinator
	node string

	mu       sync.Mutex // guards queue, spare and inFlight
	queue    []pipeWrite
	spare    []pipeWrite // a sent batch's array, for the next queue
	inFlight int
}

type pipeWrite struct {
	item wire.WriteItem
	fan  *writeFan // told the outcome
}

const (
	pipeInFlight = 2
	// A batch stays well under the transport's frame limit and badger's
	// transaction limits.
	pipeMaxItems = 256
	pipeMaxBytes = 512 << 10
	// pipeMaxQueue bounds the writes waiting for one peer.
	pipeMaxQueue = 8192
)

// ErrPeerBehind fails a replica write queued behind too many others for a
// peer that does not keep up.
var ErrPeerBehind = errors.New("replication: peer is too far behind; write shed")

// pipeTo returns the pipe to node, creating it on first use.
func (c *Coordinator) pipeTo(node string) *pipe {
	if p, ok := c.pipes.Load(node); ok {
		return p.(*pipe)
	}
	p, _ := c.pipes.LoadOrStore(node, &pipe{c: c, node: node})
	return p.(*pipe)
}

// write queues fan's write for the peer and tells fan the outcome (nil
// once the peer merged it), from the goroutine that sent the batch.
func (p *pipe) write(fan *writeFan) {
	w := pipeWrite{item: wire.WriteItem{Partition: fan.pl.partition, Key: fan.key, Object: fan.obj, SentAt: p.c.cfg.Now().UnixNano()}, fan: fan}
	p.mu.Lock()
	if len(p.queue) >= pipeMaxQueue {
		// The peer falls behind (writes at `one` do not wait for it):
		// shed the write rather than grow without bound. The caller hands
		// it to a fallback as a hint, or anti-entropy repairs the replica.
		p.mu.Unlock()
		fan.done(p.node, ErrPeerBehind)
		return
	}
	p.queue = append(p.queue, w)
	if p.inFlight >= pipeInFlight {
		p.mu.Unlock()
		return
	}
	p.inFlight++
	batch := p.takeLocked()
	p.mu.Unlock()
	p.c.goBackground(func(context.Context) { p.run(batch) })
}

// run sends batch, then whatever queued meanwhile, until the queue is empty.
func (p *pipe) run(batch []pipeWrite) {
	for {
		p.send(batch)
		clear(batch) // the objects are garbage now
		p.mu.Lock()
		if p.spare == nil {
			p.spare = batch[:0]
		}
		if len(p.queue) == 0 {
			p.inFlight--
			p.mu.Unlock()
			return
		}
		batch = p.takeLocked()
		p.mu.Unlock()
	}
}

// takeLocked removes the next batch from the queue; p.mu is held.
func (p *pipe) takeLocked() []pipeWrite {
	n, size := 0, 0
	for n < len(p.queue) && n < pipeMaxItems {
		size += len(p.queue[n].item.Key) + p.queue[n].item.Object.MaxMsgpackSize()
		n++
		if size >= pipeMaxBytes {
			break
		}
	}
	batch := p.queue[:n:n]
	if n == len(p.queue) {
		p.queue, p.spare = p.spare, nil
	} else {
		p.queue = append([]pipeWrite(nil), p.queue[n:]...)
	}
	return batch
}

// send delivers one batch: a single write as a plain OpWrite, more as an
// OpWriteBatch that the peer applies as a whole or not at all.
func (p *pipe) send(batch []pipeWrite) {
	var req wire.Request
	if len(batch) == 1 {
		it := batch[0].item
		req = wire.Request{Op: wire.OpWrite, Partition: it.Partition, Key: it.Key, Object: &it.Object, SentAt: it.SentAt}
	} else {
		items := make([]wire.WriteItem, len(batch))
		for i, w := range batch {
			items[i] = w.item
		}
		req = wire.Request{Op: wire.OpWriteBatch, Items: items}
	}
	p.c.Stats.ReplicaBatches.Add(1)
	p.c.Stats.ReplicaBatchWrites.Add(int64(len(batch)))
	rctx, cancel := p.c.replicaCtx()
	_, err := p.c.call(rctx, p.node, req)
	cancel()
	for _, w := range batch {
		w.fan.done(p.node, err)
	}
}
