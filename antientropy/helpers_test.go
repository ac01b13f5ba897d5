package antientropy

import (
	"context"
	"math/rand"
	"strconv"
	"sync"
)

// memStore is one replica's partition in memory: its (key, hash) pairs,
// indexed by segment so listing a segment does not scan the partition, and
// the tree the write path keeps in step.
type memStore struct {
	shape   Shape
	tree    *Tree
	buckets []map[string]uint64
}

func newMemStore(shape Shape) *memStore {
	t, err := NewTreeWithShape(shape)
	if err != nil {
		panic(err)
	}
	return &memStore{shape: shape, tree: t, buckets: make([]map[string]uint64, shape.Segments)}
}

// put stores key with hash and tells the tree, as the write path would.
func (m *memStore) put(key string, hash uint64) {
	s := SegmentOf([]byte(key), m.shape.Segments)
	if m.buckets[s] == nil {
		m.buckets[s] = map[string]uint64{}
	}
	old, had := m.buckets[s][key]
	m.buckets[s][key] = hash
	m.tree.Update([]byte(key), old, hash, had, true)
}

func (m *memStore) del(key string) {
	s := SegmentOf([]byte(key), m.shape.Segments)
	old, had := m.buckets[s][key]
	if !had {
		return
	}
	delete(m.buckets[s], key)
	m.tree.Update([]byte(key), old, 0, true, false)
}

func (m *memStore) all() map[string]uint64 {
	out := map[string]uint64{}
	for _, b := range m.buckets {
		for k, h := range b {
			out[k] = h
		}
	}
	return out
}

func (m *memStore) clone() *memStore {
	c := newMemStore(m.shape)
	for k, h := range m.all() {
		c.put(k, h)
	}
	return c
}

// replica serves the store as partition 7 through TreeReplica, the same code
// a node runs.
func (m *memStore) replica() TreeReplica {
	return TreeReplica{
		Shape: m.shape,
		Tree: func(p int) *Tree {
			if p != 7 {
				return nil
			}
			return m.tree
		},
		Scan: func(ctx context.Context, p int, set SegmentSet) ([]KeyHash, error) {
			var out []KeyHash
			for s, b := range m.buckets {
				if !set.Has(s) {
					continue
				}
				for k, h := range b {
					out = append(out, KeyHash{Key: []byte(k), Hash: h})
				}
			}
			return out, nil
		},
	}
}

// counting wraps a Replica and counts what it was asked and what it sent.
type counting struct {
	Replica
	mu            sync.Mutex
	hashCalls     int
	segmentCalls  int
	hashesSent    int
	keysSent      int
	keyBytesSent  int
	segmentsAsked int
}

func (c *counting) Hashes(ctx context.Context, partition, level int, indices []int) ([]uint64, error) {
	h, err := c.Replica.Hashes(ctx, partition, level, indices)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hashCalls++
	c.hashesSent += len(h)
	return h, err
}

func (c *counting) Segment(ctx context.Context, partition int, segments []int) ([]KeyHash, error) {
	kh, err := c.Replica.Segment(ctx, partition, segments)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.segmentCalls++
	c.segmentsAsked += len(segments)
	c.keysSent += len(kh)
	for _, e := range kh {
		c.keyBytesSent += len(e.Key)
	}
	return kh, err
}

// randomKey returns a key of 1..24 arbitrary bytes.
func randomKey(rng *rand.Rand) string {
	b := make([]byte, 1+rng.Intn(24))
	rng.Read(b)
	return string(b)
}

// fillKeys puts n distinct keys "key-<i>" with random hashes.
func fillKeys(m *memStore, rng *rand.Rand, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
		m.put(keys[i], rng.Uint64())
	}
	return keys
}

// allNodes reads every node of t, level by level.
func allNodes(t *Tree) [][]uint64 {
	out := make([][]uint64, t.Depth())
	for l := range out {
		idx := make([]int, t.Shape().Width(l))
		for i := range idx {
			idx[i] = i
		}
		out[l] = t.Level(l, idx)
	}
	return out
}
