package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/quorumkv/quorumkv/internal/mpack"
	"github.com/quorumkv/quorumkv/vclock"
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store: closed")

const (
	prefixObject = 'o'
	prefixHint   = 'h'
	prefixMeta   = 'm'
	lockStripes  = 1024
	maxPartition = 1<<16 - 1
)

// Config configures a Store. The defaults favour a small memory footprint:
// quorumkv's values are small and a node should stay well under 256 MiB with
// a million keys.
type Config struct {
	// Dir is the badger directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests only; nothing survives Close).
	InMemory bool
	// Sync makes every commit wait for fsync. Concurrent commits share one
	// fsync. Without it a commit is in the OS page cache when it returns: it
	// survives a crash of the process (kill -9) but not of the machine.
	Sync bool
	// MemTableSize is the size of each badger memtable. Default 16 MiB
	// (badger's own default is 64 MiB); smaller means less memory and more,
	// smaller level-0 tables.
	MemTableSize int64
	// NumMemtables is how many memtables may be in memory at once. Default 3.
	NumMemtables int
	// BlockCacheSize caches table blocks. Default 0: tables are written
	// uncompressed, so a block is read straight from the table's mapping
	// and a cache would only hold a second copy in the heap. Tables an
	// older version wrote compressed stay readable (each is decompressed
	// on every read until a compaction rewrites it); set a cache if a
	// store holds many of them.
	BlockCacheSize int64
	// ObjectCacheSize caches recently used objects, encoded, in front of
	// badger (see cache.go). Default 16 MiB; 0 turns it off.
	ObjectCacheSize int64
	// IndexCacheSize caches table indexes and bloom filters. Default 8 MiB;
	// 0 in badger means "keep every index in memory", which grows with data.
	IndexCacheSize int64
	// ValueThreshold: values larger than this go to the value log instead of
	// the LSM tree. Default 1 KiB, so the common small object stays inline
	// and reads need one lookup.
	ValueThreshold int64
	// ValueLogFileSize is the size of each value-log file. Default 64 MiB.
	ValueLogFileSize int64
	// NumCompactors is the number of compaction goroutines. Default 2.
	NumCompactors int
	// TrimInterval is how often the pages of badger's mapped table files
	// are handed back to the page cache (trim.go). Default 100ms; zero never
	// trims, and so does an in-memory store.
	TrimInterval time.Duration
	// Logger receives badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
	// OnChange, when set, is called after every committed change of an
	// object with the key's old and new version hashes, while the key's
	// lock is held (so calls for one key are ordered). Anti-entropy keeps
	// its Merkle trees current through it. It must be fast.
	OnChange func(partition int, key []byte, oldHash, newHash uint64, hadOld, hasNew bool)
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		MemTableSize:     16 << 20,
		NumMemtables:     3,
		BlockCacheSize:   0,
		ObjectCacheSize:  16 << 20,
		IndexCacheSize:   8 << 20,
		ValueThreshold:   1 << 10,
		ValueLogFileSize: 64 << 20,
		NumCompactors:    2,
		TrimInterval:     100 * time.Millisecond,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" && !c.InMemory {
		errs = append(errs, errors.New("store: a data directory is required"))
	}
	if c.MemTableSize < 1<<20 {
		errs = append(errs, fmt.Errorf("store: memtable size %d is below 1 MiB", c.MemTableSize))
	}
	if c.NumMemtables < 1 {
		errs = append(errs, errors.New("store: at least one memtable is required"))
	}
	if c.ValueLogFileSize < 1<<20 || c.ValueLogFileSize >= 2<<30 {
		errs = append(errs, fmt.Errorf("store: value log file size %d must be in [1 MiB, 2 GiB)", c.ValueLogFileSize))
	}
	if c.ObjectCacheSize < 0 {
		errs = append(errs, fmt.Errorf("store: object cache size %d is negative", c.ObjectCacheSize))
	}
	if c.NumCompactors < 2 {
		errs = append(errs, errors.New("store: badger needs at least 2 compactors"))
	}
	if c.TrimInterval < 0 {
		errs = append(errs, fmt.Errorf("store: trim interval %v is negative", c.TrimInterval))
	}
	if c.ValueThreshold < 1 || c.ValueThreshold > 1<<20 {
		errs = append(errs, fmt.Errorf("store: value threshold %d must be in [1, 1 MiB]", c.ValueThreshold))
	}
	return errors.Join(errs...)
}

// Store is one node's local data.
type Store struct {
	cfg  Config
	db   *badger.DB
	seed maphash.Seed

	locks [lockStripes]sync.Mutex

	hintSeq atomic.Uint64
	closed  atomic.Bool

	// group lets concurrent Updates share one transaction (see commit.go):
	// with Sync, one round of syncs; without, one commit's bookkeeping.
	group *groupCommitter
	// cache holds recently used objects; nil when Config.ObjectCacheSize is 0.
	cache *objectCache
	// trimmer drops resident table pages; nil when trimming is off.
	trimmer *tableTrimmer
}

// Open opens (or creates) the store described by cfg.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		WithSyncWrites(cfg.Sync).
		WithMemTableSize(cfg.MemTableSize).
		WithNumMemtables(cfg.NumMemtables).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		// Uncompressed tables: a table builder then buffers each table
		// once in the heap instead of twice (blocks, then their compressed
		// copies), and badger keeps finished builders' buffers pooled for
		// seconds. Compressed, a memtable flush held about 60 MiB of heap
		// under write load, which under the heap's soft limit made the GC
		// run every 50-100 ms (docs/benchmarks.md, fifth round). The larger
		// files cost disk, not memory: their pages are trimmed (trim.go).
		WithCompression(options.None).
		WithBlockCacheSize(cfg.BlockCacheSize).
		WithIndexCacheSize(cfg.IndexCacheSize).
		WithValueThreshold(cfg.ValueThreshold).
		WithValueLogFileSize(cfg.ValueLogFileSize).
		WithNumCompactors(cfg.NumCompactors).
		WithBaseTableSize(2 << 20).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{cfg.Logger})
	opts.TableSizeMultiplier = 1
	if cfg.InMemory {
		opts = opts.WithDir("").WithValueDir("")
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", cfg.Dir, err)
	}
	s := &Store{cfg: cfg, db: db, seed: maphash.MakeSeed()}
	s.group = &groupCommitter{db: db}
	s.cache = newObjectCache(cfg.ObjectCacheSize)
	if err := s.loadHintSeq(); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.TrimInterval > 0 && !cfg.InMemory {
		if s.trimmer, err = startTrimmer(db, cfg.TrimInterval); err != nil && cfg.Logger != nil {
			cfg.Logger.Warn("store: table pages will not be trimmed", "err", err)
		}
	}
	return s, nil
}

// Close flushes and closes badger. It is idempotent.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.trimmer != nil {
		s.trimmer.close()
	}
	return s.db.Close()
}

// DB exposes the badger handle for size metrics.
func (s *Store) Size() (lsm, vlog int64) { return s.db.Size() }

func objectKey(partition int, key []byte) []byte {
	k := make([]byte, 3+len(key))
	k[0] = prefixObject
	binary.BigEndian.PutUint16(k[1:3], uint16(partition))
	copy(k[3:], key)
	return k
}

func (s *Store) lock(key []byte) *sync.Mutex { return &s.locks[s.stripe(key)] }

// stripe is the index of key's lock stripe.
func (s *Store) stripe(key []byte) int { return int(maphash.Bytes(s.seed, key) % lockStripes) }

// encodeObject is how objects are stored: msgpack, by vclock's own codec.
func encodeObject(o *vclock.Object) []byte {
	return o.AppendMsgpack(make([]byte, 0, o.MaxMsgpackSize()))
}

func decodeObject(b []byte) (vclock.Object, error) {
	var o vclock.Object
	if err := o.ReadMsgpack(mpack.NewReader(b)); err != nil {
		return o, fmt.Errorf("store: corrupt object: %w", err)
	}
	return o, nil
}

// CacheStats reports the object cache's size and how often it was used.
func (s *Store) CacheStats() CacheStats { return s.cache.stats() }

func checkPartition(p int) error {
	if p < 0 || p > maxPartition {
		return fmt.Errorf("store: partition %d out of range", p)
	}
	return nil
}

// Get returns the object stored for key in partition, and whether there is one.
func (s *Store) Get(partition int, key []byte) (vclock.Object, bool, error) {
	if s.closed.Load() {
		return vclock.Object{}, false, ErrClosed
	}
	if err := checkPartition(partition); err != nil {
		return vclock.Object{}, false, err
	}
	k := objectKey(partition, key)
	v, pending, ok := s.cache.get(k)
	if !ok {
		// A miss fills the cache, which only a holder of the key's lock
		// may do (see cache.go).
		mu := s.lock(key)
		mu.Lock()
		var err error
		v, pending, err = s.readLocked(k)
		mu.Unlock()
		if err != nil {
			return vclock.Object{}, false, err
		}
	}
	if pending {
		// Never answer with a change that is not committed yet: wait for
		// the commit of everything queued so far, which includes it.
		if err := s.group.barrier(); err != nil {
			return vclock.Object{}, false, fmt.Errorf("store: read: %w", err)
		}
	}
	return decodeCached(v)
}

// getLocked reads the object under objectKey k, including a change queued
// but not yet committed; the caller holds the key's stripe lock.
func (s *Store) getLocked(k []byte) (vclock.Object, bool, error) {
	v, _, err := s.readLocked(k)
	if err != nil {
		return vclock.Object{}, false, err
	}
	return decodeCached(v)
}

// readLocked returns the encoded object under k (empty when absent) and
// whether it is still uncommitted, from the cache or else from badger
// (filling the cache); the caller holds the key's stripe lock.
func (s *Store) readLocked(k []byte) ([]byte, bool, error) {
	if v, pending, ok := s.cache.get(k); ok {
		return v, pending, nil
	}
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if val == nil {
		val = []byte{} // cached as "absent"
	}
	s.cache.fill(k, val)
	return val, false, nil
}

// decodeCached decodes a stored or cached value; an empty one means absent.
func decodeCached(v []byte) (vclock.Object, bool, error) {
	if len(v) == 0 {
		return vclock.Object{}, false, nil
	}
	o, err := decodeObject(v)
	return o, err == nil, err
}

// Update atomically replaces the object of key with fn's result. fn sees the
// current object (zero and found=false when absent); when it returns
// write=false nothing is written. Update returns the object stored
// afterwards.
func (s *Store) Update(partition int, key []byte, fn func(cur vclock.Object, found bool) (next vclock.Object, write bool, err error)) (vclock.Object, error) {
	next, wait, err := s.UpdateStaged(partition, key, fn)
	if err != nil {
		return next, err
	}
	if err := wait(); err != nil {
		return vclock.Object{}, err
	}
	return next, nil
}

// UpdateStaged is Update without waiting for the commit: it returns the
// new object as soon as the change is queued, and wait, which returns once
// it is committed (with Config.Sync, on disk) and must be called exactly
// once. Until then the change is invisible to Get, but later writers of
// the key build on it. A coordinator uses it to send a write to the other
// replicas while its own copy is being committed.
func (s *Store) UpdateStaged(partition int, key []byte, fn func(cur vclock.Object, found bool) (next vclock.Object, write bool, err error)) (vclock.Object, func() error, error) {
	if s.closed.Load() {
		return vclock.Object{}, nil, ErrClosed
	}
	if err := checkPartition(partition); err != nil {
		return vclock.Object{}, nil, err
	}
	mu := s.lock(key)
	mu.Lock()
	k := objectKey(partition, key)
	cur, found, err := s.getLocked(k)
	if err != nil {
		mu.Unlock()
		return cur, nil, err
	}
	next, write, err := fn(cur, found)
	if err != nil || !write {
		mu.Unlock()
		return cur, noWait, err
	}
	wait := s.stageLocked([]*commitReq{{key: k, val: encodeObject(&next)}})
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(partition, key, cur.Hash(), next.Hash(), found, true)
	}
	mu.Unlock()
	return next, func() error {
		if err := wait(); err != nil {
			return fmt.Errorf("store: write: %w", err)
		}
		return nil
	}, nil
}

func noWait() error { return nil }

// stageLocked queues reqs' changes for the group committer and pins their
// values in the cache, so that the next change of each key builds on them
// (see cache.go). The caller holds every key's stripe lock; it releases
// them and then calls the returned wait, which returns once the changes are
// committed (with Config.Sync, on disk) and must be called exactly once.
// Without a cache there is nowhere to keep an uncommitted value, so the
// commit happens here, under the locks.
//
// A failed commit is reported to the caller and drops the keys from the
// cache, but the OnChange calls made for it stand: anti-entropy's trees
// then hold a version the store lacks until the next start rebuilds them.
// Badger only fails a commit when its disk does, or when it is closing.
func (s *Store) stageLocked(reqs []*commitReq) (wait func() error) {
	if s.group == nil { // only benchmarks run without the group committer
		var err error
		for _, r := range reqs {
			if err = s.db.Update(r.apply); err != nil {
				break
			}
		}
		for _, r := range reqs {
			s.cache.pin(r.key, r.val)
			s.cache.unpin(r.key, err != nil)
		}
		return func() error { return err }
	}
	s.group.enqueue(reqs)
	if s.cache == nil {
		err := s.group.wait(reqs)
		return func() error { return err }
	}
	for _, r := range reqs {
		s.cache.pin(r.key, r.val)
	}
	return func() error {
		err := s.group.wait(reqs)
		for _, r := range reqs {
			s.cache.unpin(r.key, err != nil)
		}
		return err
	}
}

// Merge joins obj into what is stored for key and reports whether the stored
// object changed.
func (s *Store) Merge(partition int, key []byte, obj vclock.Object) (vclock.Object, bool, error) {
	changed := false
	out, err := s.Update(partition, key, func(cur vclock.Object, found bool) (vclock.Object, bool, error) {
		if !found {
			changed = true
			return obj, true, nil
		}
		m := vclock.Merge(cur, obj)
		changed = !m.Equal(cur)
		return m, changed, nil
	})
	return out, changed, err
}

// Purge removes key when its stored object still hashes to expectHash. It is
// how fully replicated tombstones are finally dropped: if anything wrote the
// key since the caller looked, the purge does nothing.
func (s *Store) Purge(partition int, key []byte, expectHash uint64) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	mu := s.lock(key)
	mu.Lock()
	k := objectKey(partition, key)
	cur, found, err := s.getLocked(k)
	if err != nil || !found || cur.Hash() != expectHash {
		mu.Unlock()
		return false, err
	}
	wait := s.stageLocked([]*commitReq{{key: k, val: []byte{}, del: true}})
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(partition, key, expectHash, 0, true, false)
	}
	mu.Unlock()
	if err := wait(); err != nil {
		return false, fmt.Errorf("store: purge: %w", err)
	}
	return true, nil
}

// Scan calls fn for every key of partition in key order until fn returns
// false or an error. The key slice is only valid during the call.
func (s *Store) Scan(partition int, fn func(key []byte, obj vclock.Object) (bool, error)) error {
	return s.ScanFrom(partition, nil, fn)
}

// ScanFrom is Scan starting at the first key >= from (a resumable scan).
func (s *Store) ScanFrom(partition int, from []byte, fn func(key []byte, obj vclock.Object) (bool, error)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkPartition(partition); err != nil {
		return err
	}
	prefix := objectKey(partition, nil)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(objectKey(partition, from)); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			var obj vclock.Object
			if err := item.Value(func(v []byte) error {
				var err error
				obj, err = decodeObject(v)
				return err
			}); err != nil {
				return err
			}
			more, err := fn(item.Key()[3:], obj)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// DropPartition removes every key of partition (after its data has moved to
// its new owners).
func (s *Store) DropPartition(partition int) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkPartition(partition); err != nil {
		return err
	}
	var keys [][]byte
	if err := s.Scan(partition, func(key []byte, _ vclock.Object) (bool, error) {
		keys = append(keys, append([]byte(nil), key...))
		return true, nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		mu := s.lock(k)
		mu.Lock()
		okey := objectKey(partition, k)
		cur, found, err := s.getLocked(okey)
		if err == nil && found {
			wait := s.stageLocked([]*commitReq{{key: okey, val: []byte{}, del: true}})
			if s.cfg.OnChange != nil {
				s.cfg.OnChange(partition, k, cur.Hash(), 0, true, false)
			}
			mu.Unlock()
			err = wait()
		} else {
			mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("store: drop partition %d: %w", partition, err)
		}
	}
	return nil
}

// GetMeta reads a metadata value.
func (s *Store) GetMeta(name string) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append([]byte{prefixMeta}, name...))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	return out, err == nil, err
}

// SetMeta writes a metadata value and syncs it to disk whatever Config.Sync
// says: metadata guards invariants across restarts.
func (s *Store) SetMeta(name string, value []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{prefixMeta}, name...), value)
	}); err != nil {
		return err
	}
	if s.cfg.InMemory {
		return nil
	}
	return s.db.Sync()
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	if b.l != nil {
		b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
	}
}
func (b badgerLogger) Warningf(f string, a ...any) {
	if b.l != nil {
		b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
	}
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
