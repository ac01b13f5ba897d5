package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/antientropy"
	"github.com/quorumkv/quorumkv/wire"
)

// This file wires anti-entropy into the node: the store's change hook feeds
// its trees, the RPC handler hands it the four exchange operations, a loop
// runs its rounds, and Status reports its progress. node.go calls in here at
// those four places only.

// errAntiEntropyStarting answers exchange requests that arrive before the
// service exists (RPC serves a moment before the ring is known).
var errAntiEntropyStarting = errors.New("anti-entropy is starting")

// newAntiEntropy builds the service once membership is known. Store changes
// before this moment are not lost: the service rebuilds its trees from a
// snapshot taken after it exists, and tracks changes during that scan.
func (n *Node) newAntiEntropy() error {
	cfg := antientropy.DefaultConfig()
	cfg.ID = n.cfg.ID
	cfg.Partitions = n.cfg.Partitions
	cfg.Interval = n.cfg.AntiEntropyInterval
	cfg.Disabled = n.cfg.DisableAntiEntropy
	cfg.KeysPerSec = n.cfg.AntiEntropyKeysPerSec
	cfg.BytesPerSec = n.cfg.AntiEntropyBytesPerSec
	cfg.TombstoneGrace = n.cfg.TombstoneGrace
	cfg.Logger = n.log
	if n.cfg.AntiEntropyTune != nil {
		n.cfg.AntiEntropyTune(&cfg)
	}
	svc, err := antientropy.New(cfg, n.store, n.view, aeTransport{n}, n.view.Up)
	if err != nil {
		return err
	}
	n.ae.Store(svc)
	return nil
}

// runAntiEntropy runs the service until ctx ends.
func (n *Node) runAntiEntropy(ctx context.Context) {
	if svc := n.ae.Load(); svc != nil {
		if err := svc.Run(ctx); err != nil {
			n.log.Error("anti-entropy stopped", "err", err)
		}
	}
}

// aeOnChange is the store's change hook.
func (n *Node) aeOnChange(partition int, key []byte, oldHash, newHash uint64, hadOld, hasNew bool) {
	if svc := n.ae.Load(); svc != nil {
		svc.OnChange(partition, key, oldHash, newHash, hadOld, hasNew)
	}
}

// serveAntiEntropy answers req when it is an anti-entropy operation; ok is
// false for every other operation.
func (n *Node) serveAntiEntropy(ctx context.Context, req wire.Request) (out []byte, ok bool, err error) {
	switch req.Op {
	case wire.OpTreeLevel, wire.OpSegment, wire.OpFetch, wire.OpMergeBatch:
	default:
		return nil, false, nil
	}
	svc := n.ae.Load()
	if svc == nil {
		return nil, true, errAntiEntropyStarting
	}
	out, err = svc.ServeRPC(ctx, req)
	return out, true, err
}

// antiEntropyStatus is the anti-entropy part of /v1/status.
func (n *Node) antiEntropyStatus() wire.AntiEntropyStatus {
	if svc := n.ae.Load(); svc != nil {
		return svc.Status()
	}
	return wire.AntiEntropyStatus{Interval: n.cfg.AntiEntropyInterval.String()}
}

// AntiEntropy exposes the node's anti-entropy service (tests, metrics); nil
// until the node has started.
func (n *Node) AntiEntropy() *antientropy.Service { return n.ae.Load() }

// aeTransport sends anti-entropy requests to a node by id over the node's
// RPC transport.
type aeTransport struct{ n *Node }

func (t aeTransport) Call(ctx context.Context, peer string, req []byte) ([]byte, error) {
	addr, ok := t.n.view.Addr(peer)
	if !ok {
		return nil, fmt.Errorf("no address known for %s", peer)
	}
	return t.n.rpc.Call(ctx, addr, req)
}
