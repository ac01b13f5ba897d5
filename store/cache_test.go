package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/quorumkv/quorumkv/vclock"
)

// With a cache small enough to evict all the time, concurrent writers and
// readers of a few keys must never see a key go back to an older version
// (a miss filling the cache with what a writer already replaced would),
// and at the end the cache must agree with badger.
func TestObjectCacheNeverServesReplacedVersions(t *testing.T) {
	for _, size := range []int64{0, 4 << 10, 1 << 20} {
		t.Run(fmt.Sprint("cache=", size), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir = t.TempDir()
			cfg.ObjectCacheSize = size
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const keys, writes = 8, 300
			counter := func(o vclock.Object) uint64 {
				if l := o.Live(); len(l) == 1 {
					return binary.BigEndian.Uint64(l[0].Value)
				}
				return 0
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			for k := range keys {
				key := fmt.Appendf(nil, "c%d", k)
				wg.Go(func() { // the writer of key: counts up
					for range writes {
						if _, err := s.Update(1, key, func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
							next, _ := cur.Update("a", cur.Clock, binary.BigEndian.AppendUint64(nil, counter(cur)+1), false)
							return next, true, nil
						}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			for r := range 4 {
				wg.Go(func() { // readers: what they see of a key never goes down
					last := make([]uint64, keys)
					for i := 0; !stop.Load() || i < 100; i++ {
						k := (i + r) % keys
						o, _, err := s.Get(1, fmt.Appendf(nil, "c%d", k))
						if err != nil {
							t.Error(err)
							return
						}
						if c := counter(o); c < last[k] {
							t.Errorf("c%d went back from %d to %d", k, last[k], c)
							return
						} else {
							last[k] = c
						}
					}
				})
			}
			// Evict more: touch many other keys.
			for i := range 2000 {
				write(t, s, 2, fmt.Sprint("other", i), "x")
			}
			stop.Store(true)
			wg.Wait()
			for k := range keys {
				key := objectKey(1, fmt.Appendf(nil, "c%d", k))
				var fromDisk vclock.Object
				if err := s.db.View(func(txn *badger.Txn) error {
					item, err := txn.Get(key)
					if err != nil {
						return err
					}
					return item.Value(func(v []byte) error { fromDisk, err = decodeObject(v); return err })
				}); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					t.Fatal(err)
				}
				got, _, err := s.Get(1, key[3:])
				if err != nil || counter(got) != writes || !got.Equal(fromDisk) {
					t.Errorf("c%d: Get says %d, badger %d (want %d), err %v", k, counter(got), counter(fromDisk), writes, err)
				}
			}
		})
	}
}
