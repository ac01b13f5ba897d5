package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/vclock"
)

// Hint is a write a fallback node holds for a primary that did not answer.
type Hint struct {
	Seq       uint64        `msgpack:"q"`
	Target    string        `msgpack:"t"`
	Partition int           `msgpack:"p"`
	Key       []byte        `msgpack:"k"`
	Object    vclock.Object `msgpack:"o"`
	// Created is when the hint was stored, in Unix nanoseconds; hints older
	// than the hint window expire (anti-entropy covers them).
	Created int64 `msgpack:"c"`
}

func hintPrefix(target string) []byte {
	p := make([]byte, 0, len(target)+2)
	p = append(p, prefixHint)
	p = append(p, target...)
	return append(p, 0)
}

func hintKey(target string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(hintPrefix(target), seq)
}

func (s *Store) loadHintSeq() error {
	var max uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixHint}})
		defer it.Close()
		for it.Seek([]byte{prefixHint}); it.ValidForPrefix([]byte{prefixHint}); it.Next() {
			k := it.Item().Key()
			if len(k) >= 8 {
				if seq := binary.BigEndian.Uint64(k[len(k)-8:]); seq > max {
					max = seq
				}
			}
		}
		return nil
	})
	s.hintSeq.Store(max)
	return err
}

// AddHint stores a hint for target durably and returns its sequence number.
func (s *Store) AddHint(h Hint, now time.Time) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if h.Target == "" || bytes.IndexByte([]byte(h.Target), 0) >= 0 {
		return 0, errors.New("store: hint target must be a non-empty node id")
	}
	h.Seq = s.hintSeq.Add(1)
	h.Created = now.UnixNano()
	b, err := msgpack.Marshal(&h)
	if err != nil {
		return 0, err
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(hintKey(h.Target, h.Seq), b)
	}); err != nil {
		return 0, fmt.Errorf("store: add hint: %w", err)
	}
	return h.Seq, nil
}

// Hints calls fn for up to limit hints held for target, oldest first.
func (s *Store) Hints(target string, limit int, fn func(Hint) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	prefix := hintPrefix(target)
	var batch []Hint
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 32})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix) && len(batch) < limit; it.Next() {
			var h Hint
			if err := it.Item().Value(func(v []byte) error { return msgpack.Unmarshal(v, &h) }); err != nil {
				return fmt.Errorf("store: corrupt hint: %w", err)
			}
			batch = append(batch, h)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, h := range batch {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// DeleteHint removes one hint (after the target acknowledged it, or when it
// expired).
func (s *Store) DeleteHint(target string, seq uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(hintKey(target, seq)) })
}

// HintCounts returns how many hints are held per target node.
func (s *Store) HintCounts() (map[string]int64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	out := map[string]int64{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixHint}})
		defer it.Close()
		for it.Seek([]byte{prefixHint}); it.ValidForPrefix([]byte{prefixHint}); it.Next() {
			k := it.Item().Key()
			if len(k) < 10 {
				continue
			}
			out[string(k[1:len(k)-9])]++
		}
		return nil
	})
	return out, err
}
