package antientropy

import (
	"errors"
	"fmt"
	"math/bits"
)

// Shape is the fixed layout of a partition's Merkle tree. Both replicas of an
// exchange must use the same shape, like they use the same ring size: it is a
// cluster-wide constant, not a per-node tuning knob.
type Shape struct {
	// Segments is the number of leaves. Every key falls into one segment,
	// chosen by a hash of the key (SegmentOf). More segments mean fewer keys
	// fetched per differing leaf and more memory per tree (8 bytes per node,
	// about Segments·Fanout/(Fanout-1) nodes). It must be a power of Fanout,
	// at most MaxSegments. Default 1024: an 8 KiB tree, and one or two keys
	// per segment for the 1,000-key partitions of a 1M-key cluster.
	Segments int
	// Fanout is the number of children of each internal node. A larger fanout
	// means fewer round trips (levels) but more hashes sent per differing
	// node. Default 32: one differing key costs 1+32+32 hashes over three
	// levels, where a flat fanout of 1024 would cost 1+1024 and fanout 4
	// would need six round trips.
	Fanout int
}

// MaxSegments bounds Shape.Segments, which bounds one tree at about 9 MiB.
const MaxSegments = 1 << 20

// DefaultShape returns 1024 segments under fanout 32: levels of 1, 32 and
// 1024 nodes.
func DefaultShape() Shape { return Shape{Segments: 1024, Fanout: 32} }

// Validate reports every problem with s at once, or nil.
func (s Shape) Validate() error {
	var errs []error
	if s.Fanout < 2 {
		errs = append(errs, fmt.Errorf("antientropy: fanout %d: must be at least 2", s.Fanout))
	}
	switch {
	case s.Segments < 1:
		errs = append(errs, fmt.Errorf("antientropy: segments %d: must be at least 1", s.Segments))
	case s.Segments > MaxSegments:
		errs = append(errs, fmt.Errorf("antientropy: segments %d: must be at most %d", s.Segments, MaxSegments))
	case s.Fanout >= 2 && !isPowerOf(s.Segments, s.Fanout):
		errs = append(errs, fmt.Errorf("antientropy: segments %d: must be a power of the fanout %d", s.Segments, s.Fanout))
	}
	return errors.Join(errs...)
}

func isPowerOf(n, base int) bool {
	for n > 1 && n%base == 0 {
		n /= base
	}
	return n == 1
}

// Depth is the number of levels, the root level (0) and the leaf level
// (Depth()-1) included. A shape with one segment has depth 1: the root is the
// only segment. For an invalid shape the result means nothing.
func (s Shape) Depth() int {
	d := 1
	if s.Fanout < 2 {
		return d
	}
	for w := 1; w < s.Segments; w *= s.Fanout {
		d++
	}
	return d
}

// Width is the number of nodes at a level: Fanout^level.
func (s Shape) Width(level int) int {
	w := 1
	for range level {
		w *= s.Fanout
	}
	return w
}

// nodes is the number of nodes of the whole tree.
func (s Shape) nodes() int { return s.offset(s.Depth()) }

// offset is where a level starts in the flat node array: the number of nodes
// in the levels above it, 1 + f + f² + … + f^(level-1).
func (s Shape) offset(level int) int { return (s.Width(level) - 1) / (s.Fanout - 1) }

// CheckLevel reports whether level and indices name nodes of a tree of shape
// s. Call it on requests from other nodes before Tree.Level, which panics on
// an index out of range. The error wraps ErrInvalidRequest.
func (s Shape) CheckLevel(level int, indices []int) error {
	if level < 0 || level >= s.Depth() {
		return fmt.Errorf("%w: level %d outside 0..%d", ErrInvalidRequest, level, s.Depth()-1)
	}
	w := s.Width(level)
	for _, i := range indices {
		if i < 0 || i >= w {
			return fmt.Errorf("%w: index %d outside 0..%d at level %d", ErrInvalidRequest, i, w-1, level)
		}
	}
	return nil
}

// CheckSegments reports whether every segment index is in range. The error
// wraps ErrInvalidRequest.
func (s Shape) CheckSegments(segments []int) error {
	for _, i := range segments {
		if i < 0 || i >= s.Segments {
			return fmt.Errorf("%w: segment %d outside 0..%d", ErrInvalidRequest, i, s.Segments-1)
		}
	}
	return nil
}

// SegmentOf returns the segment, in 0..segments-1, that key falls into in a
// tree with that many segments. Every node must agree on it, so it depends on
// nothing but its arguments. segments must be at least 1.
func SegmentOf(key []byte, segments int) int {
	return segmentOfDigest(keyDigest(key), segments)
}

// segmentOfDigest maps a digest to a segment by multiply-shift, which uses
// the digest's high bits and needs no power-of-two count.
func segmentOfDigest(d uint64, segments int) int {
	hi, _ := bits.Mul64(d, uint64(segments))
	return int(hi)
}

// keyDigest is FNV-1a over the key, finished with a strong mixer because
// FNV's low and high bits avalanche poorly on short keys. The FNV state is
// salted before the mixer: ring.PartitionOf uses the same FNV-1a and the
// same finalizer and also scales the high bits, so without the salt every
// key of a partition would fall into one segment whenever the ring has as
// many partitions as the tree has segments (1024 and 1024 by default), and
// a differing key would list the whole partition.
func keyDigest(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return mix64(h ^ segmentSalt)
}

// segmentSalt separates keyDigest from ring.PartitionOf (the first 64 bits
// of the fractional part of π).
const segmentSalt = 0x243f6a8885a308d3

// itemHash is what one (key, version hash) pair contributes to the tree.
// Mixing key and version together makes the sum of items depend on which key
// holds which version, not just on the multiset of versions.
func itemHash(keyDigest, versionHash uint64) uint64 {
	return mix64(keyDigest ^ mix64(versionHash+0x9e3779b97f4a7c15))
}

// mix64 is MurmurHash3's 64-bit finalizer: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// SegmentSet is a set of segments of one shape, for filtering a scan of a
// partition's keys down to the segments an exchange asked for.
type SegmentSet struct {
	segments int
	bits     []uint64
}

// NewSegmentSet returns the set of the given segments. The caller must have
// checked them (Shape.CheckSegments); an index out of range panics.
func NewSegmentSet(shape Shape, segments []int) SegmentSet {
	s := SegmentSet{segments: shape.Segments, bits: make([]uint64, (shape.Segments+63)/64)}
	for _, i := range segments {
		s.bits[i/64] |= 1 << (i % 64)
	}
	return s
}

// Has reports whether segment i is in the set.
func (s SegmentSet) Has(i int) bool {
	return i >= 0 && i < s.segments && s.bits[i/64]&(1<<(i%64)) != 0
}

// Contains reports whether key falls into a segment of the set.
func (s SegmentSet) Contains(key []byte) bool {
	return s.segments > 0 && s.Has(SegmentOf(key, s.segments))
}

// Len is the number of segments in the set.
func (s SegmentSet) Len() int {
	n := 0
	for _, w := range s.bits {
		n += bits.OnesCount64(w)
	}
	return n
}
