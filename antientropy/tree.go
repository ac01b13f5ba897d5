package antientropy

import (
	"fmt"
	"sync"
)

// Tree is the Merkle tree of one partition over its (key, version hash)
// pairs, kept current by the write path.
//
// Every node's hash is the sum, modulo 2^64, of the item hashes of the keys
// below it, so a write changes exactly one leaf and its ancestors by the same
// delta. Updates commute: a tree that has seen a set of transitions is the
// same whatever order they arrived in.
//
// The tree stores no keys. Its node array is allocated on the first update, so
// the tree of a partition that holds nothing costs only the struct. A Tree is
// safe for concurrent use; its zero value is not usable, call NewTree.
type Tree struct {
	shape Shape
	depth int

	mu sync.Mutex
	// nodes holds every level, root first, each level left to right; nil
	// until the first update.
	nodes []uint64
	keys  int
}

// NewTree returns an empty tree of the default shape.
func NewTree() *Tree {
	s := DefaultShape()
	return &Tree{shape: s, depth: s.Depth()}
}

// NewTreeWithShape returns an empty tree of the given shape, or the problems
// with the shape.
func NewTreeWithShape(shape Shape) (*Tree, error) {
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	return &Tree{shape: shape, depth: shape.Depth()}, nil
}

// Shape returns the tree's shape.
func (t *Tree) Shape() Shape { return t.shape }

// Depth is the number of levels; 0 is the root, Depth()-1 the segments.
func (t *Tree) Depth() int { return t.depth }

// Fanout is the number of children of an internal node.
func (t *Tree) Fanout() int { return t.shape.Fanout }

// Segments is the number of leaves.
func (t *Tree) Segments() int { return t.shape.Segments }

// Update records one transition of key in the store: an insert
// (hadOld=false), a change of version hash from oldHash to newHash, or a
// removal (hasNew=false). The hash arguments that the flags mark absent are
// ignored. It costs one key hash and Depth() additions.
//
// The caller must report the transitions the store actually made, each
// exactly once; because updates commute, it need not hold a lock across the
// store write and this call. A transition reported wrongly (an old hash that
// was not stored) leaves the tree out of step with the store until Reset and
// a rebuild.
func (t *Tree) Update(key []byte, oldHash, newHash uint64, hadOld, hasNew bool) {
	if !hadOld && !hasNew {
		return
	}
	d := keyDigest(key)
	var delta uint64
	if hasNew {
		delta += itemHash(d, newHash)
	}
	if hadOld {
		delta -= itemHash(d, oldHash)
	}
	count := 0
	if hasNew {
		count++
	}
	if hadOld {
		count--
	}
	if delta == 0 && count == 0 {
		return // a write that did not change the versions
	}
	i := segmentOfDigest(d, t.shape.Segments)
	f := t.shape.Fanout

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes == nil {
		t.nodes = make([]uint64, t.shape.nodes())
	}
	// Walk from the leaf up: the leaf level starts right after the levels
	// above it; a node's parent is its index divided by the fanout.
	w := t.shape.Segments
	start := len(t.nodes) - w
	for {
		t.nodes[start+i] += delta
		if w == 1 {
			break
		}
		w /= f
		start -= w
		i /= f
	}
	t.keys += count
}

// Insert records that key now holds versions hashing to hash.
func (t *Tree) Insert(key []byte, hash uint64) { t.Update(key, 0, hash, false, true) }

// Remove records that key, which held versions hashing to hash, is gone.
func (t *Tree) Remove(key []byte, hash uint64) { t.Update(key, hash, 0, true, false) }

// Root returns the root hash: 0 for an empty tree, and equal on two trees of
// one shape exactly when they hold the same (key, hash) pairs, up to 64-bit
// collisions.
func (t *Tree) Root() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes == nil {
		return 0
	}
	return t.nodes[0]
}

// Level returns the hashes of the nodes at the given indices of a level
// (0 = root level), in the order asked. It panics when level or an index is
// out of range, like a slice index; check untrusted requests with
// Shape.CheckLevel first.
func (t *Tree) Level(level int, indices []int) []uint64 {
	if level < 0 || level >= t.depth {
		panic(fmt.Sprintf("antientropy: level %d outside 0..%d", level, t.depth-1))
	}
	w := t.shape.Width(level)
	start := t.shape.offset(level)
	out := make([]uint64, len(indices))
	t.mu.Lock()
	defer t.mu.Unlock()
	for n, i := range indices {
		if i < 0 || i >= w {
			panic(fmt.Sprintf("antientropy: index %d outside 0..%d at level %d", i, w-1, level))
		}
		if t.nodes != nil {
			out[n] = t.nodes[start+i]
		}
	}
	return out
}

// Len is the number of keys the tree has been told about.
func (t *Tree) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys
}

// Reset empties the tree and frees its nodes, before a rebuild or when the
// partition leaves this node.
func (t *Tree) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodes = nil
	t.keys = 0
}

// MemoryBytes is roughly what the tree occupies: the struct, plus its node
// array once allocated.
func (t *Tree) MemoryBytes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return treeStructBytes + 8*cap(t.nodes)
}

// treeStructBytes is unsafe.Sizeof(Tree{}) on 64-bit platforms; a test keeps
// it honest.
const treeStructBytes = 64
