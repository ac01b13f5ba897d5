package antientropy

import "context"

// Trees live in memory only. After a start the node rebuilds them with one
// scan of its store while it already serves writes. The store makes that
// simple (store.Store.SnapshotHashes): it opens its snapshot while holding
// every key lock, and a change commits and is reported to OnChange under its
// key's lock, so the moment the snapshot opens splits the changes cleanly —
// those reported before it are in the snapshot, those reported after it are
// not. So:
//
//  1. Until the snapshot opens, OnChange ignores changes (the trees are
//     reset; the scan will see those changes).
//  2. From the moment it opens, OnChange applies every change to the trees
//     as a delta, while the scan inserts the snapshot's keys. Tree hashes
//     are sums, so the order of the two does not matter: inserting a key's
//     snapshot hash and applying the changes after it gives the key's
//     current hash.
//  3. When the scan ends, the trees equal the store and the service is
//     ready: it answers tree requests and starts exchanges.
//
// No change is lost or counted twice, and writers wait only for the moment
// the snapshot opens.

// OnChange is the store's change hook (store.Config.OnChange): it keeps the
// partition's tree current. It is called with the key's store lock held and
// costs a key hash and a few additions.
func (s *Service) OnChange(partition int, key []byte, oldHash, newHash uint64, hadOld, hasNew bool) {
	if partition < 0 || partition >= len(s.trees) || !s.applying.Load() {
		return
	}
	s.trees[partition].Update(key, oldHash, newHash, hadOld, hasNew)
}

// Rebuild fills the trees from one scan of the store (see above). Run calls
// it first; until it returns nil the service answers tree requests with
// ErrNotReady and starts no exchange. Calling it after success does
// nothing.
func (s *Service) Rebuild(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.applying.Store(false)
	for _, t := range s.trees {
		t.Reset()
	}
	n := 0
	err := s.st.SnapshotHashes(func() { s.applying.Store(true) }, func(p int, key []byte, hash uint64) error {
		if p < len(s.trees) {
			s.trees[p].Insert(key, hash)
		}
		if n++; n%4096 == 0 {
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		s.applying.Store(false)
		return err
	}
	s.ready.Store(true)
	return nil
}
