package antientropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// The wire protocol of an exchange. The side that starts it (the initiator)
// sends four kinds of request to the other primary; every one names the
// partition, and the answering side refuses a partition it is not a primary
// of in its own ring (ErrNotHeld) or, for tree requests, any partition
// before its trees are built (ErrNotReady). The initiator skips the
// partition with that peer for this round on any error.
//
//	OpTreeLevel  Level, Indices        -> Hashes (one per index)
//	OpSegment    Indices (segments),   -> KeyHashes, Cursor, Done
//	             Cursor, Limit            (a page of at most Limit pairs, in key
//	                                       order from Cursor; Done on the last)
//	OpFetch      Keys                  -> Objects of the keys held, Count =
//	                                      how many of Keys the answer covers
//	                                      (it stops early at BatchBytes)
//	OpMergeBatch Objects               -> Count = objects that changed the store

// maxSegmentPage caps a segment page whatever the request asks.
const maxSegmentPage = 1 << 16

// HandleRequest serves the answering side of an exchange for the four
// anti-entropy operations.
func (s *Service) HandleRequest(ctx context.Context, req wire.Request) (wire.Response, error) {
	p := req.Partition
	switch req.Op {
	case wire.OpTreeLevel, wire.OpSegment, wire.OpFetch, wire.OpMergeBatch:
	default:
		return wire.Response{}, fmt.Errorf("antientropy: op %d is not served here", req.Op)
	}
	if !s.held(p) {
		return wire.Response{}, fmt.Errorf("%w: %d on %s", ErrNotHeld, p, s.cfg.ID)
	}
	switch req.Op {
	case wire.OpTreeLevel:
		if !s.Ready() {
			return wire.Response{}, ErrNotReady
		}
		if err := s.cfg.Shape.CheckLevel(req.Level, req.Indices); err != nil {
			return wire.Response{}, err
		}
		return wire.Response{Hashes: s.trees[p].Level(req.Level, req.Indices)}, nil

	case wire.OpSegment:
		if !s.Ready() {
			return wire.Response{}, ErrNotReady
		}
		if err := s.cfg.Shape.CheckSegments(req.Indices); err != nil {
			return wire.Response{}, err
		}
		limit := req.Limit
		if limit <= 0 || limit > maxSegmentPage {
			limit = min(s.cfg.SegmentPageKeys, maxSegmentPage)
		}
		set := NewSegmentSet(s.cfg.Shape, req.Indices)
		var resp wire.Response
		done := true
		err := s.st.ScanHashes(p, req.Cursor, set.Contains, func(key []byte, h uint64) (bool, error) {
			if len(resp.KeyHashes) == limit {
				// Resume right at this key next time.
				resp.Cursor = slices.Clone(key)
				done = false
				return false, nil
			}
			resp.KeyHashes = append(resp.KeyHashes, wire.KeyHash{Key: slices.Clone(key), Hash: h})
			return true, ctx.Err()
		})
		resp.Done = done
		return resp, err

	case wire.OpFetch:
		var resp wire.Response
		size := 0
		for _, key := range req.Keys {
			if size >= s.cfg.BatchBytes && resp.Count > 0 {
				break
			}
			resp.Count++
			obj, found, err := s.st.Get(p, key)
			if err != nil {
				return wire.Response{}, err
			}
			if found {
				resp.Objects = append(resp.Objects, wire.KeyObject{Key: key, Object: obj})
				size += objectSize(key, obj)
			}
		}
		return resp, nil

	default: // wire.OpMergeBatch
		n, err := s.repairBatch(p, req.Objects)
		return wire.Response{Count: n}, err
	}
}

// ServeRPC is HandleRequest with the answer encoded, counting its bytes as
// sent by this node. The node's RPC handler dispatches the anti-entropy
// operations here.
func (s *Service) ServeRPC(ctx context.Context, req wire.Request) ([]byte, error) {
	resp, err := s.HandleRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	b, err := wire.Encode(&resp)
	if err != nil {
		return nil, err
	}
	s.Stats.BytesSent.Add(int64(len(b)))
	return b, nil
}

// objectSize estimates an object's encoded size for batching.
func objectSize(key []byte, o vclock.Object) int {
	n := len(key) + 16
	for _, e := range o.Clock {
		n += len(e.Actor) + 10
	}
	for _, sib := range o.Siblings {
		n += len(sib.Value) + len(sib.Dot.Actor) + 16 + len(sib.Tag.Writer)
	}
	return n + len(o.Tag.Writer)
}

// call sends req to peer, counting bytes and pacing by the byte budget.
// The request leaves From empty: the answer does not depend on who asks, and
// five bytes are a sixth of a root comparison.
func (s *Service) call(ctx context.Context, peer string, req wire.Request) (wire.Response, error) {
	b, err := wire.Encode(&req)
	if err != nil {
		return wire.Response{}, err
	}
	if err := s.reqs.wait(ctx, 1); err != nil {
		return wire.Response{}, err
	}
	s.Stats.Requests.Add(1)
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	out, err := s.tr.Call(cctx, peer, b)
	cancel()
	s.Stats.BytesSent.Add(int64(len(b)))
	s.Stats.BytesReceived.Add(int64(len(out)))
	if werr := s.bytes.wait(ctx, len(b)+len(out)); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return wire.Response{}, fmt.Errorf("antientropy: %s: %w", peer, err)
	}
	return wire.DecodeResponse(out)
}

// remote is the Replica of an exchange that lives on a peer.
type remote struct {
	s    *Service
	peer string
}

// Hashes implements Replica.
func (r remote) Hashes(ctx context.Context, partition, level int, indices []int) ([]uint64, error) {
	resp, err := r.s.call(ctx, r.peer, wire.Request{Op: wire.OpTreeLevel, Partition: partition, Level: level, Indices: indices})
	if err != nil {
		return nil, err
	}
	return resp.Hashes, nil
}

// Segment implements Replica, a page at a time.
func (r remote) Segment(ctx context.Context, partition int, segments []int) ([]KeyHash, error) {
	var (
		out    []KeyHash
		cursor []byte
	)
	for {
		resp, err := r.s.call(ctx, r.peer, wire.Request{Op: wire.OpSegment, Partition: partition, Indices: segments, Cursor: cursor, Limit: r.s.cfg.SegmentPageKeys})
		if err != nil {
			return nil, err
		}
		for _, kh := range resp.KeyHashes {
			out = append(out, KeyHash{Key: kh.Key, Hash: kh.Hash})
		}
		if resp.Done {
			return out, nil
		}
		if len(resp.KeyHashes) == 0 || bytes.Compare(resp.Cursor, cursor) <= 0 {
			return nil, fmt.Errorf("%w: segment page without progress", ErrBadAnswer)
		}
		cursor = resp.Cursor
	}
}

// local is this node's Replica of an exchange.
func (s *Service) local() TreeReplica {
	return TreeReplica{
		Shape: s.cfg.Shape,
		Tree: func(p int) *Tree {
			if !s.held(p) || !s.Ready() {
				return nil
			}
			return s.trees[p]
		},
		Scan: func(ctx context.Context, p int, set SegmentSet) ([]KeyHash, error) {
			var out []KeyHash
			err := s.st.ScanHashes(p, nil, set.Contains, func(key []byte, h uint64) (bool, error) {
				out = append(out, KeyHash{Key: slices.Clone(key), Hash: h})
				return true, nil
			})
			return out, err
		},
	}
}

// errPeerDown marks a peer that membership reports down.
var errPeerDown = errors.New("antientropy: peer is down")
