package node

import (
	"context"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/membership"
)

// The member table survives restarts. Without it a restarted node's first
// ring held only itself until gossip found the others (on the same address
// within about a second, on another only through --join), and in that
// window it answered quorum and strong requests alone: a strong write
// acknowledged by it and a concurrent one by the others' majority never
// met. With the table, the others are in its ring from the start, as dead
// members (membership.Config.Remembered), so those requests wait for them
// or answer 503, and a --join that reaches nobody is not fatal.

// metaMembers is the store metadata key of the saved member table.
const metaMembers = "members"

// membersSaveInterval bounds how stale the saved table's "last known"
// times are; it is also saved at every change.
const membersSaveInterval = 30 * time.Second

// rememberedMembers loads the member table the last run saved, or nil.
func (n *Node) rememberedMembers() []membership.Member {
	b, ok, err := n.store.GetMeta(metaMembers)
	if err != nil || !ok {
		return nil
	}
	var ms []membership.Member
	if err := msgpack.Unmarshal(b, &ms); err != nil {
		n.log.Warn("ignoring the saved member table", "err", err)
		return nil
	}
	return ms
}

// keepMembers saves the member table whenever changed says it changed, and
// every membersSaveInterval, until ctx ends.
func (n *Node) keepMembers(ctx context.Context, changed <-chan struct{}) {
	tick := time.NewTicker(membersSaveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		if err := n.saveMembers(time.Now()); err != nil {
			n.log.Warn("cannot save the member table", "err", err)
		}
	}
}

// saveMembers writes the member table, with now as the last time the
// members alive or suspect were known to be. A leaving node saves nothing:
// Leave forgets the table once it is done.
func (n *Node) saveMembers(now time.Time) error {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	if n.leaving.Load() {
		return nil
	}
	ms := n.view.Members()
	for i := range ms {
		if ms[i].Up() {
			ms[i].Since = now
		}
	}
	return n.writeMembersLocked(ms)
}

// forgetMembers replaces the saved member table with an empty one.
func (n *Node) forgetMembers() error {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	return n.writeMembersLocked([]membership.Member{})
}

// writeMembersLocked stores ms as the member table; n.membersMu is held.
func (n *Node) writeMembersLocked(ms []membership.Member) error {
	b, err := msgpack.Marshal(ms)
	if err != nil {
		return err
	}
	return n.store.SetMeta(metaMembers, b)
}
