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
// It also holds every change that is queued for the group committer but
// not yet committed, pinned: a write makes its new value the key's cached
// value under the key's stripe lock, right after queueing it, and unpins it
// once its commit is done. A pinned entry is never evicted, so the next
// writer of the key (under the same lock) builds on the queued value, not
// on what badger still holds, and a writer need not keep the lock through
// the commit: writes to one hot key share group commits instead of taking
// one each, in turn.
//
// Coherence: every change of an object happens under its key's stripe lock
// and pins its value before the lock is released, and a cache miss fills
// the cache only under that lock too. A miss therefore means badger holds
// the key's latest value, and a filler can never cache a version a writer
// has already replaced.
//
// It stores encoded bytes, not decoded objects, so callers get their own
// copy to change. Eviction is random within a shard: cheap, and good
// enough for the uniform and skewed loads a key-value store sees.
type objectCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	limit  int // bytes per shard

	// evictPinned breaks the pinning rule; tests set it to show that
	// their checks catch lost updates.
	evictPinned bool
}

const cacheShards = 64

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]cacheEntry
	bytes int
	// hits counts lookups the shard answered; misses, values read from
	// badger to fill it (CacheStats).
	hits, misses int64
}

// cacheEntry is a cached value; an empty v means the key is absent. pins
// counts the writes of this key queued but not yet committed.
type cacheEntry struct {
	v    []byte
	pins int32
}

// newObjectCache returns a cache of about size bytes, or nil for size 0.
func newObjectCache(size int64) *objectCache {
	if size <= 0 {
		return nil
	}
	c := &objectCache{seed: maphash.MakeSeed(), limit: int(size / cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
	}
	return c
}

func (c *objectCache) shard(k []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, k)%cacheShards]
}

// entryOverhead approximates a map entry's memory beyond key and value.
const entryOverhead = 72

func entrySize(k, v []byte) int { return len(k) + len(v) + entryOverhead }

// get returns k's cached value and whether a write of it is still
// uncommitted.
func (c *objectCache) get(k []byte) (v []byte, pending, ok bool) {
	if c == nil {
		return nil, false, false
	}
	s := c.shard(k)
	s.mu.Lock()
	e, ok := s.m[string(k)]
	if ok {
		s.hits++
	}
	s.mu.Unlock()
	return e.v, e.pins > 0, ok
}

// fill caches v, read from badger, for k (which has no entry: the caller
// holds k's stripe lock and just missed).
func (c *objectCache) fill(k, v []byte) {
	if c == nil {
		return
	}
	size := entrySize(k, v)
	s := c.shard(k)
	s.mu.Lock()
	s.misses++
	if size <= c.limit/8 {
		s.makeRoom(size, c.limit, c.evictPinned)
		if _, ok := s.m[string(k)]; !ok {
			s.m[string(k)] = cacheEntry{v: v}
			s.bytes += size
		}
	}
	s.mu.Unlock()
}

// CacheStats describes the object cache (Config.ObjectCacheSize).
type CacheStats struct {
	// Capacity is the configured size in bytes; 0 when the cache is off.
	Capacity int64
	// Bytes is what the cached objects take now, by the cache's own
	// estimate (keys, values and a map entry's overhead).
	Bytes int64
	// Hits counts lookups the cache answered; Misses, objects read from
	// badger because it did not hold them.
	Hits, Misses int64
}

func (c *objectCache) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	st := CacheStats{Capacity: int64(c.limit) * cacheShards}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Bytes += int64(s.bytes)
		st.Hits += s.hits
		st.Misses += s.misses
		s.mu.Unlock()
	}
	return st
}

// pin makes v (which the cache now owns) k's value, pinned until a matching
// unpin: the caller holds k's stripe lock and has queued the write of v.
// Pinned values stay whatever their size.
func (c *objectCache) pin(k, v []byte) {
	if c == nil {
		return
	}
	size := entrySize(k, v)
	s := c.shard(k)
	s.mu.Lock()
	e, ok := s.m[string(k)]
	if ok {
		s.bytes -= entrySize(k, e.v)
	} else {
		s.makeRoom(size, c.limit, c.evictPinned)
	}
	s.m[string(k)] = cacheEntry{v: v, pins: e.pins + 1}
	s.bytes += size
	s.mu.Unlock()
}

// unpin ends one pin of k, after its write's commit. When no pin is left
// the entry becomes evictable, or goes at once if failed (the commit
// failed, so badger may hold an older value) or if it is too large to keep.
func (c *objectCache) unpin(k []byte, failed bool) {
	if c == nil {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	if e, ok := s.m[string(k)]; ok {
		e.pins--
		size := entrySize(k, e.v)
		if e.pins <= 0 && (failed || size > c.limit/8) {
			delete(s.m, string(k))
			s.bytes -= size
		} else {
			s.m[string(k)] = e
		}
	}
	s.mu.Unlock()
}

// makeRoom evicts unpinned entries until size more bytes fit; s.mu is held.
func (s *cacheShard) makeRoom(size, limit int, evictPinned bool) {
	for kk, e := range s.m {
		if s.bytes+size <= limit {
			return
		}
		if e.pins > 0 && !evictPinned {
			continue
		}
		delete(s.m, kk)
		s.bytes -= len(kk) + len(e.v) + entryOverhead
	}
}
