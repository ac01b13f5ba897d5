package store

// This file holds what anti-entropy needs from the store beyond Get, Merge
// and Purge: scans that yield version hashes (and skip decoding the keys a
// caller filters out), a snapshot for rebuilding Merkle trees while writes
// land, and the tombstone marks that carry the purge grace clock across
// restarts. Marks live under their own prefix:
//
//	't' | partition (uint16, big endian) | user key  -> msgpack(TombstoneMark)

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/vclock"
)

const prefixTombMark = 't'

func tombMarkKey(partition int, key []byte) []byte {
	k := make([]byte, 3+len(key))
	k[0] = prefixTombMark
	binary.BigEndian.PutUint16(k[1:3], uint16(partition))
	copy(k[3:], key)
	return k
}

// ScanHashes calls fn with the version hash (vclock.Object.Hash) of every key
// of partition at or after from, in key order, until fn returns false or an
// error. When keep is set, keys it rejects are skipped without reading or
// decoding their objects. The key slice is only valid during the call.
func (s *Store) ScanHashes(partition int, from []byte, keep func(key []byte) bool, fn func(key []byte, hash uint64) (bool, error)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkPartition(partition); err != nil {
		return err
	}
	prefix := objectKey(partition, nil)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: keep == nil, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(objectKey(partition, from)); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			key := item.Key()[3:]
			if keep != nil && !keep(key) {
				continue
			}
			var h uint64
			if err := item.Value(func(v []byte) error {
				o, err := decodeObject(v)
				h = o.Hash()
				return err
			}); err != nil {
				return err
			}
			more, err := fn(key, h)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// SnapshotHashes reads one consistent snapshot of the store for rebuilding
// Merkle trees while writes land. It takes every key lock, opens the
// snapshot and calls begin, then releases the locks and calls fn with the
// partition, key and version hash of every object in the snapshot. Because
// a change commits and is reported to OnChange under its key's lock, every
// change reported before begin is in the snapshot and every change reported
// after begin is not: a caller that ignores OnChange until begin and applies
// it from then on, on top of what fn reports, ends with exactly the store's
// state. The key slice passed to fn is only valid during the call.
func (s *Store) SnapshotHashes(begin func(), fn func(partition int, key []byte, hash uint64) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	for i := range s.locks {
		s.locks[i].Lock()
	}
	// Changes reported to OnChange may still wait in the commit queue;
	// the snapshot must hold every one of them.
	if s.group != nil {
		if err := s.group.barrier(); err != nil {
			for i := range s.locks {
				s.locks[i].Unlock()
			}
			return fmt.Errorf("store: snapshot: %w", err)
		}
	}
	txn := s.db.NewTransaction(false)
	begin()
	for i := range s.locks {
		s.locks[i].Unlock()
	}
	defer txn.Discard()
	prefix := []byte{prefixObject}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 128})
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) < 3 {
			continue
		}
		var h uint64
		if err := item.Value(func(v []byte) error {
			o, err := decodeObject(v)
			h = o.Hash()
			return err
		}); err != nil {
			return err
		}
		if err := fn(int(binary.BigEndian.Uint16(k[1:3])), k[3:], h); err != nil {
			return err
		}
	}
	return nil
}

// TombstoneMark is anti-entropy's note about one tombstone: the version hash
// it was made for, when this node first saw that version (Noted) and when it
// first saw it on every replica (Confirmed), in Unix nanoseconds, 0 for not
// yet.
type TombstoneMark struct {
	Hash      uint64 `msgpack:"h"`
	Noted     int64  `msgpack:"n"`
	Confirmed int64  `msgpack:"c,omitempty"`
}

// Tombstones calls fn, in key order, for every object of partition that holds
// no live value (only tombstones), with the mark stored for its key (marked
// is false when there is none). fn returns the mark to store and whether to
// keep one at all; the store writes only marks that changed. Marks of keys
// that no longer hold only tombstones (rewritten, purged, dropped) are
// deleted on the way. fn returning more=false stops the walk (marks after the
// stopping point are left as they are).
func (s *Store) Tombstones(partition int, fn func(key []byte, obj vclock.Object, mark TombstoneMark, marked bool) (next TombstoneMark, keep, more bool, err error)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := checkPartition(partition); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	opfx := objectKey(partition, nil)
	mpfx := tombMarkKey(partition, nil)
	err := s.db.View(func(txn *badger.Txn) error {
		oit := txn.NewIterator(badger.IteratorOptions{Prefix: opfx, PrefetchValues: true, PrefetchSize: 64})
		defer oit.Close()
		mit := txn.NewIterator(badger.IteratorOptions{Prefix: mpfx, PrefetchValues: true, PrefetchSize: 16})
		defer mit.Close()
		mit.Seek(mpfx)
		for oit.Seek(opfx); oit.ValidForPrefix(opfx); oit.Next() {
			item := oit.Item()
			key := item.Key()[3:]
			// Marks of keys before this one have no tombstone: drop them.
			for mit.ValidForPrefix(mpfx) && bytes.Compare(mit.Item().Key()[3:], key) < 0 {
				if err := wb.Delete(mit.Item().KeyCopy(nil)); err != nil {
					return err
				}
				mit.Next()
			}
			var obj vclock.Object
			if err := item.Value(func(v []byte) error {
				var err error
				obj, err = decodeObject(v)
				return err
			}); err != nil {
				return err
			}
			var (
				mark   TombstoneMark
				marked bool
			)
			if mit.ValidForPrefix(mpfx) && bytes.Equal(mit.Item().Key()[3:], key) {
				if err := mit.Item().Value(func(v []byte) error { return msgpack.Unmarshal(v, &mark) }); err != nil {
					return fmt.Errorf("store: corrupt tombstone mark: %w", err)
				}
				marked = true
				mit.Next()
			}
			if len(obj.Live()) > 0 {
				if marked {
					if err := wb.Delete(tombMarkKey(partition, key)); err != nil {
						return err
					}
				}
				continue
			}
			next, keep, more, err := fn(key, obj, mark, marked)
			if err != nil {
				return err
			}
			switch {
			case !keep && marked:
				if err := wb.Delete(tombMarkKey(partition, key)); err != nil {
					return err
				}
			case keep && (!marked || next != mark):
				b, err := msgpack.Marshal(&next)
				if err != nil {
					return err
				}
				if err := wb.Set(tombMarkKey(partition, key), b); err != nil {
					return err
				}
			}
			if !more {
				return nil
			}
		}
		for ; mit.ValidForPrefix(mpfx); mit.Next() {
			if err := wb.Delete(mit.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: write tombstone marks: %w", err)
	}
	return nil
}
