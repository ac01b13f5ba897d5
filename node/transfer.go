package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/transfer"
	"github.com/quorumkv/quorumkv/wire"
)

// peerCaller sends a wire request to a node by id over the node's RPC
// transport.
type peerCaller struct{ n *Node }

func (p peerCaller) Call(ctx context.Context, node string, req wire.Request) (wire.Response, error) {
	addr, ok := p.n.coordView.Addr(node)
	if !ok {
		return wire.Response{}, fmt.Errorf("no address known for %s", node)
	}
	req.From = p.n.cfg.ID
	b, err := wire.Encode(&req)
	if err != nil {
		return wire.Response{}, err
	}
	out, err := p.n.rpc.Call(ctx, addr, b)
	if err != nil {
		return wire.Response{}, err
	}
	return wire.DecodeResponse(out)
}

// transferView is membership as ownership transfer needs it.
type transferView struct{ n *Node }

func (t transferView) Ring() *ring.Ring  { return t.n.coordView.Ring() }
func (t transferView) Up(id string) bool { return t.n.coordView.Up(id) }

// Gone reports whether id left the cluster or is no longer a member at all:
// such a node will never hand anything off, so waiting for it is pointless.
func (t transferView) Gone(id string) bool {
	v := t.n.view
	if v == nil {
		return false
	}
	for _, m := range v.Members() {
		if m.ID == id {
			return m.State == membership.StateLeft || (m.State == membership.StateDead && !t.Ring().Contains(id))
		}
	}
	return true
}

func (n *Node) newTransfer() error {
	tc := transfer.DefaultConfig()
	tc.ID, tc.Logger = n.cfg.ID, n.log
	if n.cfg.TransferInterval > 0 {
		tc.Interval = n.cfg.TransferInterval
	}
	svc, err := transfer.New(tc, n.store, transferView{n}, peerCaller{n})
	if err != nil {
		return err
	}
	n.transfer = svc
	return nil
}

func (n *Node) serveTransfer(ctx context.Context, req wire.Request) ([]byte, bool, error) {
	if req.Op != wire.OpTransfer && req.Op != wire.OpHolds {
		return nil, false, nil
	}
	resp, err := n.transfer.HandleRequest(ctx, req)
	if err != nil {
		return nil, true, err
	}
	out, err := wire.Encode(&resp)
	return out, true, err
}

func (n *Node) transferStatus() ([]wire.TransferStatus, int) {
	out := []wire.TransferStatus{}
	for _, p := range n.transfer.Active() {
		el := time.Since(p.Started).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(p.Keys) / el
		}
		eta := 0.0
		if rate > 0 {
			eta = float64(p.Remaining) / rate
		}
		out = append(out, wire.TransferStatus{Partition: p.Partition, From: n.cfg.ID, To: strings.Join(p.To, ","),
			Keys: p.Keys, Bytes: p.Bytes, KeysPerSec: rate, ETASeconds: eta})
	}
	return out, len(n.transfer.Fenced())
}

// leaver is the part of membership that can announce a departure.
type leaver interface {
	UpdateMeta(func(*membership.Meta)) error
	Leave(timeout time.Duration) error
}

// Leave makes the node hand every partition it holds to the new owners,
// leave the cluster and stop. It returns at once; Done is closed when the
// node has stopped.
func (n *Node) Leave() error {
	lv, ok := n.view.(leaver)
	if !ok {
		return errors.New("this node's membership cannot leave")
	}
	if !n.leaving.CompareAndSwap(false, true) {
		return errors.New("the node is already leaving")
	}
	// Out of the ring everywhere: the other nodes compute the new owners,
	// and this node's handoff loop sees every partition it holds as one to
	// hand off.
	if err := lv.UpdateMeta(func(m *membership.Meta) { m.Leaving = true }); err != nil {
		n.leaving.Store(false)
		return fmt.Errorf("announce leaving: %w", err)
	}
	n.log.Info("leaving: handing off every partition")
	go func() {
		defer close(n.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			pending, err := n.transfer.Pending()
			if err == nil && len(pending) == 0 {
				break
			}
			n.log.Debug("leaving: partitions still to hand off", "count", len(pending))
		}
		// Hints are for nodes that were down; give them a moment to be
		// delivered, then leave them to anti-entropy.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if h, err := n.coord.PendingHints(); err == nil && len(h) == 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err := lv.Leave(10 * time.Second); err != nil {
			n.log.Warn("leave announcement", "err", err)
		}
		// Started again on this data directory, a node that left is a
		// new node: it joins only where --join says.
		if err := n.forgetMembers(); err != nil {
			n.log.Warn("cannot forget the member table", "err", err)
		}
		n.log.Info("left the cluster")
	}()
	return nil
}

// PendingHandoff lists the partitions this node still has to hand off.
func (n *Node) PendingHandoff() ([]int, error) { return n.transfer.Pending() }

// TransferStats exposes the ownership-transfer counters.
func (n *Node) TransferStats() *transfer.Stats { return &n.transfer.Stats }
