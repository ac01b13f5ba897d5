package store

import (
	"hash/maphash"
	"sync"
)

// objectCache keeps the encoded objects of recently used keys, so the read
// a write does before it writes (and most reads) skip badger's lookup
// through three memtables and the levels, which profiles of a loaded node
// showed at a fifth of its CPU.
//
// Coherence: every change of an object happens under its key's stripe lock
// and updates (or drops) the cached copy before the lock is released, and a
// cache miss fills the cache only under that lock too. A reader without
// the lock can therefore only fill with what badger holds while no writer
// can change it, never with a version a writer has already replaced.
//
// It stores encoded bytes, not decoded objects, so callers get their own
// copy to change. Eviction is random within a shard: cheap, and good
// enough for the uniform and skewed loads a key-value store sees.
type objectCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	limit  int // bytes per shard
}

const cacheShards = 64

type cacheShard struct {
	mu    sync.Mutex
	m     map[string][]byte
	bytes int
}

// newObjectCache returns a cache of about size bytes, or nil for size 0.
func newObjectCache(size int64) *objectCache {
	if size <= 0 {
		return nil
	}
	c := &objectCache{seed: maphash.MakeSeed(), limit: int(size / cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]byte)
	}
	return c
}

func (c *objectCache) shard(k []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, k)%cacheShards]
}

// entryOverhead approximates a map entry's memory beyond key and value.
const entryOverhead = 64

func (c *objectCache) get(k []byte) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	s := c.shard(k)
	s.mu.Lock()
	v, ok := s.m[string(k)]
	s.mu.Unlock()
	return v, ok
}

// put caches v (which the cache now owns) for k.
func (c *objectCache) put(k, v []byte) {
	if c == nil {
		return
	}
	size := len(k) + len(v) + entryOverhead
	if size > c.limit/8 {
		c.drop(k)
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	if old, ok := s.m[string(k)]; ok {
		s.bytes -= len(k) + len(old) + entryOverhead
	}
	for kk, vv := range s.m {
		if s.bytes+size <= c.limit {
			break
		}
		delete(s.m, kk)
		s.bytes -= len(kk) + len(vv) + entryOverhead
	}
	s.m[string(k)] = v
	s.bytes += size
	s.mu.Unlock()
}

func (c *objectCache) drop(k []byte) {
	if c == nil {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	if old, ok := s.m[string(k)]; ok {
		delete(s.m, string(k))
		s.bytes -= len(k) + len(old) + entryOverhead
	}
	s.mu.Unlock()
}
