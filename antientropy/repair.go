package antientropy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// ExchangePartition compares partition p with each other primary that is up
// and repairs both sides: it pulls the peer's objects of the keys that
// differ or that only the peer holds and merges them here, then pushes this
// node's objects of the keys that differ (now merged) or that only it holds.
// Merging is vclock.Merge via the store, a join: no newer or concurrent
// version is ever overwritten, and repeating a transfer is harmless. It
// returns the errors of the peers it could not finish with, or
// errPeerDown-wrapped errors for peers that are down.
func (s *Service) ExchangePartition(ctx context.Context, p int) error {
	if !s.Ready() {
		return ErrNotReady
	}
	r := s.rings.Ring()
	if p < 0 || p >= r.Partitions() || !r.IsPrimary(s.cfg.ID, p) {
		return fmt.Errorf("%w: %d on %s", ErrNotHeld, p, s.cfg.ID)
	}
	var errs []error
	full := true
	for _, peer := range r.Primaries(p) {
		if peer == s.cfg.ID {
			continue
		}
		if !s.up(peer) {
			s.Stats.PeersSkipped.Add(1)
			full = false
			errs = append(errs, fmt.Errorf("%w: %s", errPeerDown, peer))
			continue
		}
		if err := s.exchangeWith(ctx, p, peer); err != nil {
			s.Stats.ExchangeErrors.Add(1)
			full = false
			errs = append(errs, err)
		}
	}
	if full {
		now := s.cfg.Now()
		s.mu.Lock()
		s.progressOf(p).lastFull = now
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// progressOf returns p's progress record; s.mu must be held.
func (s *Service) progressOf(p int) *partProgress {
	pp := s.progress[p]
	if pp == nil {
		pp = &partProgress{}
		s.progress[p] = pp
	}
	return pp
}

// exchangeWith runs one exchange of p with peer.
func (s *Service) exchangeWith(ctx context.Context, p int, peer string) error {
	start := s.cfg.Now()
	diff, err := Compare(ctx, p, s.local(), remote{s, peer}, s.cfg.Shape)
	if err != nil {
		return err
	}
	s.Stats.Exchanges.Add(1)
	s.Stats.HashesCompared.Add(int64(diff.HashesCompared))
	s.Stats.KeysCompared.Add(int64(diff.KeysCompared))
	s.Stats.KeysDiffering.Add(int64(len(diff.Keys)))
	s.noteExchange(p, peer, start, diff)

	var pull, push [][]byte
	for i, k := range diff.Keys {
		switch diff.Presence[i] {
		case InBoth:
			pull = append(pull, k)
			push = append(push, k)
		case RemoteOnly:
			pull = append(pull, k)
		case LocalOnly:
			push = append(push, k)
		}
	}
	if err := s.pull(ctx, p, peer, pull); err != nil {
		return err
	}
	return s.push(ctx, p, peer, push)
}

// pull fetches peer's objects of keys, in batches, and merges them here.
func (s *Service) pull(ctx context.Context, p int, peer string, keys [][]byte) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), s.cfg.BatchKeys)]
		if err := s.keys.wait(ctx, len(batch)); err != nil {
			return err
		}
		resp, err := s.call(ctx, peer, wire.Request{Op: wire.OpFetch, Partition: p, Keys: batch})
		if err != nil {
			return err
		}
		if resp.Count < 1 || resp.Count > len(batch) {
			return fmt.Errorf("%w: fetch of %d keys answered for %d", ErrBadAnswer, len(batch), resp.Count)
		}
		s.Stats.KeysFetched.Add(int64(len(resp.Objects)))
		if _, err := s.repairBatch(p, resp.Objects); err != nil {
			return err
		}
		keys = keys[resp.Count:]
	}
	return nil
}

// push sends this node's objects of keys to peer, in batches bounded by
// BatchKeys and BatchBytes.
func (s *Service) push(ctx context.Context, p int, peer string, keys [][]byte) error {
	var (
		batch []wire.KeyObject
		size  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.keys.wait(ctx, len(batch)); err != nil {
			return err
		}
		if _, err := s.call(ctx, peer, wire.Request{Op: wire.OpMergeBatch, Partition: p, Objects: batch}); err != nil {
			return err
		}
		s.Stats.KeysPushed.Add(int64(len(batch)))
		batch, size = nil, 0
		return nil
	}
	for _, k := range keys {
		obj, found, err := s.st.Get(p, k)
		if err != nil {
			return err
		}
		if !found {
			continue // purged or dropped since the comparison
		}
		batch = append(batch, wire.KeyObject{Key: k, Object: obj})
		size += objectSize(k, obj)
		if len(batch) >= s.cfg.BatchKeys || size >= s.cfg.BatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// mergeWorkers is how many objects of a batch are merged at once. Each merge
// is its own badger commit; concurrent commits share one write, so a batch
// of 64 takes a few commit times, not 64.
const mergeWorkers = 4

// repairBatch merges a batch of objects from a peer (see repair) and
// returns how many changed the store.
func (s *Service) repairBatch(p int, objs []wire.KeyObject) (int, error) {
	if len(objs) == 1 {
		changed, err := s.repair(p, objs[0].Key, objs[0].Object)
		if changed {
			return 1, err
		}
		return 0, err
	}
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		changed atomic.Int64
		mu      sync.Mutex
		first   error
	)
	for range min(mergeWorkers, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(objs) {
					return
				}
				ok, err := s.repair(p, objs[i].Key, objs[i].Object)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				if ok {
					changed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(changed.Load()), first
}

// repair merges an object from a peer into the store, unless it is a
// tombstone this node purged and the peer has not yet (see Sweep).
func (s *Service) repair(p int, key []byte, obj vclock.Object) (bool, error) {
	if s.refuse(p, key, obj) {
		s.Stats.TombstonesRefused.Add(1)
		return false, nil
	}
	_, changed, err := s.st.Merge(p, key, obj)
	if err != nil || !changed {
		return false, err
	}
	s.Stats.KeysRepaired.Add(1)
	s.mu.Lock()
	s.progressOf(p).repaired++
	s.mu.Unlock()
	return true, nil
}
