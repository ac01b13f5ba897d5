package antientropy

import "context"

// Trees live in memory only. After a start the node rebuilds them with one
// scan of its store while it already serves writes, so the rebuild has to
// settle the keys that change during the scan:
//
//  1. From New on, the service is building: OnChange does not touch the
//     trees but notes the changed key as dirty.
//  2. Rebuild reads one consistent snapshot of the store and inserts every
//     (key, hash) into the trees.
//  3. For each dirty key, with the key's store lock held (so no change of it
//     commits or is reported meanwhile), it replaces what the scan inserted
//     (looked up in the same snapshot) with the key's current hash, and marks
//     the key reconciled: later changes of it update the tree directly.
//  4. When no dirty key is left it leaves the building state, under the same
//     mutex OnChange takes, so no change falls between the two regimes.
//
// Changes are never lost or counted twice: a change committed before the
// snapshot is in the scan and, if reported after step 1, marks its key dirty,
// whose reconciliation reads the current state; a change after the snapshot
// is likewise dirty or, once its key is reconciled, applied as a delta.

// OnChange is the store's change hook (store.Config.OnChange): it keeps the
// partition's tree current. It is called with the key's store lock held and
// costs a key hash and a few additions.
func (s *Service) OnChange(partition int, key []byte, oldHash, newHash uint64, hadOld, hasNew bool) {
	if partition < 0 || partition >= len(s.trees) {
		return
	}
	if !s.building.Load() {
		s.trees[partition].Update(key, oldHash, newHash, hadOld, hasNew)
		return
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	k := partKey{partition, string(key)}
	if _, ok := s.reconciled[k]; ok || !s.building.Load() {
		s.trees[partition].Update(key, oldHash, newHash, hadOld, hasNew)
		return
	}
	s.dirty[k] = struct{}{}
}

// Rebuild fills the trees from one scan of the store (see above). Run calls
// it first; until it returns nil the service answers tree requests with
// ErrNotReady. Calling it again after success does nothing.
func (s *Service) Rebuild(ctx context.Context) error {
	if !s.building.Load() {
		return nil
	}
	s.bmu.Lock()
	s.dirty = map[partKey]struct{}{}
	s.reconciled = map[partKey]struct{}{}
	s.bmu.Unlock()
	for _, t := range s.trees {
		t.Reset()
	}
	n := 0
	return s.st.SnapshotHashes(func(p int, key []byte, hash uint64) error {
		if p < len(s.trees) {
			s.trees[p].Insert(key, hash)
		}
		if n++; n%4096 == 0 {
			return ctx.Err()
		}
		return nil
	}, func(at func(partition int, key []byte) (uint64, bool, error)) error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			s.bmu.Lock()
			if len(s.dirty) == 0 {
				s.building.Store(false)
				s.dirty, s.reconciled = nil, nil
				s.bmu.Unlock()
				return nil
			}
			batch := make([]partKey, 0, len(s.dirty))
			for k := range s.dirty {
				batch = append(batch, k)
			}
			s.bmu.Unlock()
			for _, k := range batch {
				key := []byte(k.key)
				err := s.st.Locked(k.p, key, func(cur uint64, found bool) error {
					snap, inSnap, err := at(k.p, key)
					if err != nil {
						return err
					}
					s.bmu.Lock()
					defer s.bmu.Unlock()
					if _, done := s.reconciled[k]; done {
						return nil
					}
					s.trees[k.p].Update(key, snap, cur, inSnap, found)
					delete(s.dirty, k)
					s.reconciled[k] = struct{}{}
					return nil
				})
				if err != nil {
					return err
				}
			}
		}
	})
}
