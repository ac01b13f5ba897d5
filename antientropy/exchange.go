package antientropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
)

var (
	// ErrInvalidRequest: a Replica was asked for a level, node or segment
	// that its tree shape does not have.
	ErrInvalidRequest = errors.New("antientropy: invalid request")
	// ErrNotHeld: a Replica was asked about a partition it does not hold.
	ErrNotHeld = errors.New("antientropy: partition not held")
	// ErrBadAnswer: a Replica answered with the wrong number of hashes, a key
	// outside the segments asked for, or the same key twice. Usually the two
	// sides disagree on the tree shape.
	ErrBadAnswer = errors.New("antientropy: malformed answer from replica")
)

// KeyHash is one key of a partition and the hash of the versions stored for
// it (vclock.Object.Hash).
type KeyHash struct {
	Key  []byte
	Hash uint64
}

// Replica is one side of an exchange: a node's view of its partitions. The
// local side and the remote side implement the same interface, so Compare is
// symmetric and runs in tests against two in-memory replicas.
type Replica interface {
	// Hashes returns the hashes of the nodes at the given indices of a level
	// of the partition's tree, in the order asked.
	Hashes(ctx context.Context, partition, level int, indices []int) ([]uint64, error)
	// Segment returns every (key, hash) of the partition whose key falls into
	// one of the given segments, in any order.
	Segment(ctx context.Context, partition int, segments []int) ([]KeyHash, error)
}

// Presence says which side of an exchange holds a differing key.
type Presence uint8

const (
	// InBoth: both replicas hold the key, with different versions. Each side
	// needs the other's object.
	InBoth Presence = iota
	// LocalOnly: only the local replica holds the key; the remote needs it.
	LocalOnly
	// RemoteOnly: only the remote replica holds the key; the local side
	// needs it.
	RemoteOnly
)

// String names the presence for logs.
func (p Presence) String() string {
	switch p {
	case InBoth:
		return "both"
	case LocalOnly:
		return "local-only"
	case RemoteOnly:
		return "remote-only"
	}
	return fmt.Sprintf("Presence(%d)", uint8(p))
}

// Diff is the outcome of one exchange, and what it cost.
type Diff struct {
	// Keys are the keys whose version hash differs between the replicas or
	// that only one of them holds, sorted bytewise. The slices belong to the
	// answers of the replicas.
	Keys [][]byte
	// Presence, parallel to Keys, says which side holds each key.
	Presence []Presence

	// LevelsWalked is the number of levels compared: 1 when the roots match,
	// the tree's depth when some segment differs. Each is one request to
	// each side.
	LevelsWalked int
	// HashesCompared is the number of tree nodes compared; each side sent
	// that many hashes.
	HashesCompared int
	// SegmentsFetched is the number of differing segments whose keys both
	// sides listed (in one request each). Segments fetched with no key in
	// Keys mean the trees changed during the exchange or a tree disagrees
	// with its store.
	SegmentsFetched int
	// KeysCompared is the number of (key, hash) pairs received from both
	// sides together.
	KeysCompared int
	// RemoteKeys and RemoteKeyBytes are the pairs, and their key bytes,
	// received from the remote side.
	RemoteKeys     int
	RemoteKeyBytes int
}

// RemoteBytes estimates the payload received from the remote replica: 8
// bytes per hash and per listed key's hash, plus the key bytes. Requests and
// framing are not counted.
func (d Diff) RemoteBytes() int {
	return 8*d.HashesCompared + 8*d.RemoteKeys + d.RemoteKeyBytes
}

// Compare finds the keys of a partition whose versions differ between two
// replicas. It compares the roots, then walks down level by level asking each
// side, in one call per level, only for the children of nodes that differ;
// then it lists the differing segments on both sides, in one call each, and
// compares them key by key. Both replicas must use shape.
//
// The trees may change while Compare runs; a write landing mid-exchange can
// add or hide a difference, which the next round settles. Compare returns the
// first error of either side, or ErrBadAnswer when an answer does not fit the
// question.
func Compare(ctx context.Context, partition int, local, remote Replica, shape Shape) (Diff, error) {
	var diff Diff
	if err := shape.Validate(); err != nil {
		return diff, err
	}
	depth := shape.Depth()
	indices := []int{0}
	for level := 0; ; level++ {
		if err := ctx.Err(); err != nil {
			return diff, err
		}
		lh, err := askHashes(ctx, local, "local", partition, level, indices)
		if err != nil {
			return diff, err
		}
		rh, err := askHashes(ctx, remote, "remote", partition, level, indices)
		if err != nil {
			return diff, err
		}
		diff.LevelsWalked++
		diff.HashesCompared += len(indices)

		differ := indices[:0:0]
		for n, i := range indices {
			if lh[n] != rh[n] {
				differ = append(differ, i)
			}
		}
		if len(differ) == 0 {
			return diff, nil
		}
		if level == depth-1 {
			indices = differ
			break
		}
		indices = make([]int, 0, len(differ)*shape.Fanout)
		for _, i := range differ {
			for c := range shape.Fanout {
				indices = append(indices, i*shape.Fanout+c)
			}
		}
	}

	segments := indices
	diff.SegmentsFetched = len(segments)
	set := NewSegmentSet(shape, segments)
	lk, err := askSegment(ctx, local, "local", partition, segments, set)
	if err != nil {
		return diff, err
	}
	rk, err := askSegment(ctx, remote, "remote", partition, segments, set)
	if err != nil {
		return diff, err
	}
	diff.KeysCompared = len(lk) + len(rk)
	diff.RemoteKeys = len(rk)
	for _, kh := range rk {
		diff.RemoteKeyBytes += len(kh.Key)
	}

	type entry struct {
		kh   KeyHash
		seen bool
	}
	mine := make(map[string]*entry, len(lk))
	for _, kh := range lk {
		mine[string(kh.Key)] = &entry{kh: kh}
	}
	type found struct {
		key []byte
		p   Presence
	}
	var out []found
	for _, kh := range rk {
		e, ok := mine[string(kh.Key)]
		switch {
		case !ok:
			out = append(out, found{kh.Key, RemoteOnly})
		case e.seen:
			return diff, fmt.Errorf("%w: remote listed key %q twice", ErrBadAnswer, kh.Key)
		default:
			e.seen = true
			if e.kh.Hash != kh.Hash {
				out = append(out, found{e.kh.Key, InBoth})
			}
		}
	}
	for _, e := range mine {
		if !e.seen {
			out = append(out, found{e.kh.Key, LocalOnly})
		}
	}
	slices.SortFunc(out, func(a, b found) int { return bytes.Compare(a.key, b.key) })
	diff.Keys = make([][]byte, len(out))
	diff.Presence = make([]Presence, len(out))
	for n, f := range out {
		diff.Keys[n], diff.Presence[n] = f.key, f.p
	}
	return diff, nil
}

func askHashes(ctx context.Context, r Replica, side string, partition, level int, indices []int) ([]uint64, error) {
	h, err := r.Hashes(ctx, partition, level, indices)
	if err != nil {
		return nil, fmt.Errorf("antientropy: %s hashes of partition %d level %d: %w", side, partition, level, err)
	}
	if len(h) != len(indices) {
		return nil, fmt.Errorf("%w: %s sent %d hashes for %d nodes at level %d", ErrBadAnswer, side, len(h), len(indices), level)
	}
	return h, nil
}

// askSegment lists the segments on one side and checks that every key
// belongs there and appears once: a duplicate or a stray key would otherwise
// show up as a difference that no transfer can settle.
func askSegment(ctx context.Context, r Replica, side string, partition int, segments []int, set SegmentSet) ([]KeyHash, error) {
	kh, err := r.Segment(ctx, partition, segments)
	if err != nil {
		return nil, fmt.Errorf("antientropy: %s segments of partition %d: %w", side, partition, err)
	}
	seen := make(map[string]struct{}, len(kh))
	for _, e := range kh {
		if !set.Contains(e.Key) {
			return nil, fmt.Errorf("%w: %s listed key %q outside the segments asked for", ErrBadAnswer, side, e.Key)
		}
		if _, dup := seen[string(e.Key)]; dup {
			return nil, fmt.Errorf("%w: %s listed key %q twice", ErrBadAnswer, side, e.Key)
		}
		seen[string(e.Key)] = struct{}{}
	}
	return kh, nil
}

// TreeReplica answers Replica calls for the node it runs on: hashes from its
// trees, segments from a scan of its store. It checks every request against
// Shape first, so it can serve requests from other nodes.
type TreeReplica struct {
	// Shape is the tree shape of the cluster.
	Shape Shape
	// Tree returns the tree of a partition this node holds, or nil.
	Tree func(partition int) *Tree
	// Scan returns every (key, hash) the store holds in the partition whose
	// key is in set (SegmentSet.Contains).
	Scan func(ctx context.Context, partition int, set SegmentSet) ([]KeyHash, error)
}

// Hashes implements Replica.
func (r TreeReplica) Hashes(ctx context.Context, partition, level int, indices []int) ([]uint64, error) {
	if err := r.Shape.CheckLevel(level, indices); err != nil {
		return nil, err
	}
	t := r.Tree(partition)
	if t == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotHeld, partition)
	}
	if t.Shape() != r.Shape {
		return nil, fmt.Errorf("%w: tree of partition %d has shape %+v, not %+v", ErrInvalidRequest, partition, t.Shape(), r.Shape)
	}
	return t.Level(level, indices), nil
}

// Segment implements Replica.
func (r TreeReplica) Segment(ctx context.Context, partition int, segments []int) ([]KeyHash, error) {
	if err := r.Shape.CheckSegments(segments); err != nil {
		return nil, err
	}
	if r.Tree(partition) == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotHeld, partition)
	}
	return r.Scan(ctx, partition, NewSegmentSet(r.Shape, segments))
}
