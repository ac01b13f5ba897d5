package replication

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// nextTag returns a tag counter above seen and above every counter this node
// issued before, persisting a lease ahead of it so a restart never reuses one.
func (c *Coordinator) nextTag(seen uint64) (uint64, error) {
	c.tagMu.Lock()
	defer c.tagMu.Unlock()
	n := max(seen, c.tagLast) + 1
	if n > c.tagLease {
		lease := n + tagLeaseStep
		if err := c.st.SetMeta(metaTagLease, binary.BigEndian.AppendUint64(nil, lease)); err != nil {
			return 0, fmt.Errorf("replication: persist tag lease: %w", err)
		}
		c.tagLease = lease
	}
	c.tagLast = n
	return n, nil
}

// majorityRead is the first phase of both strong operations: the objects of
// a majority of the primaries (asking only a majority at first; see readFan).
func (c *Coordinator) majorityRead(ctx context.Context, key []byte, pl placement, rc *Receipt, op string) ([]reply, error) {
	total := len(pl.primaries)
	if total == 0 {
		return nil, &QuorumError{Op: op, Needed: 1}
	}
	f := c.newReadFan(ctx, key, pl, true)
	ok, err := f.gather(ctx, total/2+1, op)
	rc.Replicas, rc.Acks = f.sent, len(ok)
	return ok, err
}

// majorityApply sends req to every primary and waits for a majority of
// acknowledgements.
func (c *Coordinator) majorityApply(ctx context.Context, pl placement, req wire.Request, rc *Receipt, op string) error {
	total := len(pl.primaries)
	ch := make(chan reply, total)
	for _, node := range pl.primaries {
		if node == c.cfg.ID {
			_, err := c.HandleRequest(c.bgCtx, req)
			ch <- reply{node: node, err: err}
			continue
		}
		c.goBackground(func(context.Context) {
			rctx, cancel := c.replicaCtx()
			defer cancel()
			_, err := c.call(rctx, node, req)
			ch <- reply{node: node, err: err}
		})
	}
	ok, _, err := gather(ctx, ch, total, total/2+1, op, nil)
	rc.Acks = len(ok)
	return err
}

func (c *Coordinator) strongRead(ctx context.Context, key []byte, pl placement) (Result, error) {
	ctx, cancel := c.requestCtx(ctx)
	defer cancel()
	rc := Receipt{Replicas: len(pl.primaries)}
	ok, err := c.majorityRead(ctx, key, pl, &rc, "strong read")
	if err != nil {
		return Result{Receipt: rc}, c.failed(err, rc)
	}
	merged := vclock.Object{}
	for _, r := range ok {
		merged = vclock.Merge(merged, objectOf(r.resp))
	}
	lacking := 0
	for _, r := range ok {
		if !objectOf(r.resp).Descends(merged) {
			lacking++
		}
	}
	if lacking > 0 && !c.cfg.DisableWriteBack {
		// Some replica of the majority lacks the newest version: make a
		// majority hold it before answering, so no later read can see less.
		c.Stats.StrongWriteBacks.Add(1)
		req := wire.Request{Op: wire.OpWrite, Partition: pl.partition, Key: key, Object: &merged, Primary: true}
		rc.Replicas = len(pl.primaries)
		if err := c.majorityApply(ctx, pl, req, &rc, "strong read write-back"); err != nil {
			return Result{Receipt: rc}, c.failed(err, rc)
		}
		rc.ReadRepair = lacking
	}
	return Result{Object: merged, Context: merged.Clock, Receipt: rc}, nil
}

func (c *Coordinator) strongWrite(ctx context.Context, key []byte, pl placement, w Write) (Result, error) {
	ctx, cancel := c.requestCtx(ctx)
	defer cancel()
	rc := Receipt{Replicas: len(pl.primaries)}
	ok, err := c.majorityRead(ctx, key, pl, &rc, "strong write")
	if err != nil {
		return Result{Receipt: rc}, c.failed(err, rc)
	}
	var seen vclock.Tag
	var clock vclock.VV
	for _, r := range ok {
		o := objectOf(r.resp)
		if seen.Less(o.Tag) {
			seen = o.Tag
		}
		clock = clock.Join(o.Clock)
	}
	n, err := c.nextTag(seen.Counter)
	if err != nil {
		return Result{Receipt: rc}, err
	}
	sw := vclock.StrongWrite{Tag: vclock.Tag{Counter: n, Writer: c.cfg.Actor}, Context: clock, Value: w.Value, Tombstone: w.Delete}
	req := wire.Request{Op: wire.OpStrongWrite, Partition: pl.partition, Key: key, Strong: &sw, Primary: true}
	rc.Replicas = len(pl.primaries)
	if err := c.majorityApply(ctx, pl, req, &rc, "strong write"); err != nil {
		return Result{Receipt: rc}, c.failed(err, rc)
	}
	obj := vclock.Object{}.ApplyStrong(sw).WithClock(clock)
	return Result{Object: obj, Context: obj.Clock, Receipt: rc}, nil
}
