package store

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/vclock"
)

// Item is one object to merge into a partition, as replication sends them
// in batches.
type Item struct {
	Partition int
	Key       []byte
	Object    vclock.Object
}

// MergeMany joins every item's object into what is stored for its key, as
// Merge does one at a time, and returns how many stored objects changed.
// The writes are committed together (through the group committer, so they
// also share its syncs): a replica taking a batch of N writes pays for one
// commit, not N. Items for
// the same key are joined first, which is the same as merging them in turn
// because the join is associative and commutative.
func (s *Store) MergeMany(items []Item) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	type entry struct {
		k       []byte // objectKey
		p       int
		key     []byte
		obj     vclock.Object
		cur     vclock.Object
		found   bool
		changed bool
	}
	entries := make([]*entry, 0, len(items))
	byKey := make(map[string]*entry, len(items))
	for _, it := range items {
		if err := checkPartition(it.Partition); err != nil {
			return 0, err
		}
		k := objectKey(it.Partition, it.Key)
		if e, ok := byKey[string(k)]; ok {
			e.obj = vclock.Merge(e.obj, it.Object)
			continue
		}
		e := &entry{k: k, p: it.Partition, key: it.Key, obj: it.Object}
		byKey[string(k)] = e
		entries = append(entries, e)
	}
	// Lock every stripe involved, in index order, so two batches (or a
	// batch and single-key callers, who take one stripe) cannot deadlock.
	stripes := make([]int, 0, len(entries))
	for _, e := range entries {
		stripes = append(stripes, s.stripe(e.key))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.locks[i].Lock()
	}
	unlock := func() {
		for _, i := range stripes {
			s.locks[i].Unlock()
		}
	}
	for _, e := range entries {
		var err error
		if e.cur, e.found, err = s.getLocked(e.k); err != nil {
			unlock()
			return 0, err
		}
	}
	var reqs []*commitReq
	for _, e := range entries {
		next := e.obj
		if e.found {
			next = vclock.Merge(e.cur, e.obj)
			if next.Equal(e.cur) {
				continue
			}
		}
		e.obj, e.changed = next, true
		reqs = append(reqs, &commitReq{key: e.k, val: encodeObject(&next)})
	}
	if len(reqs) == 0 {
		unlock()
		return 0, nil
	}
	wait := s.stageLocked(reqs)
	if s.cfg.OnChange != nil {
		for _, e := range entries {
			if e.changed {
				s.cfg.OnChange(e.p, e.key, e.cur.Hash(), e.obj.Hash(), e.found, true)
			}
		}
	}
	unlock()
	if err := wait(); err != nil {
		return 0, fmt.Errorf("store: write: %w", err)
	}
	return len(reqs), nil
}
