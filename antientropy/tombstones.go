package antientropy

import (
	"context"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/vclock"
)

// Safe deletes. A tombstone may be purged only once every primary of its
// partition holds it, with the same version, and a grace period has passed
// since this node first saw that. The evidence is first-hand: this node's own
// exchanges. An exchange with peer P that started at time E and listed the
// keys D as different proves that every other key of the partition held the
// same versions on both sides at about E. So:
//
//   - The sweep records, for each local tombstone, its version hash and when
//     the sweep first saw that version (a store.TombstoneMark, persisted, so
//     the grace clock survives restarts).
//   - At a later sweep, if for every other primary P the last exchange with
//     P started after the tombstone was noted and either did not list its
//     key or listed it as held here only, then no primary holds anything
//     older: versions only grow, so the local copy at E was already the
//     noted one, and P's matched it or P had nothing at all for the key (it
//     was wiped, never got the key, or purged the tombstone already — a peer
//     with nothing cannot bring an old value back, and it is sent the
//     tombstone anyway). The mark records the moment as Confirmed.
//   - Once TombstoneGrace has passed since Confirmed, the sweep purges the
//     tombstone (store.Purge, which does nothing if the key changed).
//
// A primary that is down is never compared, so nothing of its partitions is
// purged until it is back and has the tombstone. A replica that comes back
// holding the old value meets the tombstone as a differing key (InBoth) and
// both sides merge: the tombstone's clock covers the old value's dot, so the
// tombstone wins, never the reverse.
//
// Primaries purge at slightly different times (each on its own sweep). A
// node that has purged would receive the tombstone back from a peer that
// has not, and the cycle would never end. So a node keeps each tombstone it
// purged in memory (the memo) and refuses it — and anything it covers —
// until its own exchanges show that every peer lacks the key too, or the
// grace period and ten sweep periods pass (memoRetention). The memo is lost on a restart; a tombstone
// received again then is simply confirmed and purged once more.
//
// What the grace period is for: hints, and writes still in flight, can
// carry a version older than the tombstone to a replica after the purge, and
// no replica would remember that it is dead. Hints live at most the hint
// window (3h by default), so the grace (24h by default) must exceed it.

const (
	// maxEvidenceKeys bounds the differing keys remembered per exchange; an
	// exchange that found more confirms nothing (the next one, after the
	// repair, will).
	maxEvidenceKeys = 1024
	// maxMemo bounds the purged tombstones remembered; past it, a purged
	// tombstone may come back once from a slower peer and be purged again.
	maxMemo = 1 << 18
)

// evidence is the outcome of the last exchange with one peer for one
// partition: when it started and which keys differed, with the side that
// held each.
type evidence struct {
	start    time.Time
	diff     map[string]Presence
	overflow bool
}

// confirms reports whether an exchange that started after noted showed the
// peer holding the same versions of key, or nothing for it.
func (e *evidence) confirms(key []byte, noted time.Time) bool {
	if e == nil || e.overflow || !e.start.After(noted) {
		return false
	}
	p, differs := e.diff[string(key)]
	return !differs || p == LocalOnly
}

// agrees reports whether an exchange that started after t showed the peer
// holding the same versions of key as this node — for a key this node
// purged, that the peer holds nothing either.
func (e *evidence) agrees(key []byte, t time.Time) bool {
	if e == nil || e.overflow || !e.start.After(t) {
		return false
	}
	_, differs := e.diff[string(key)]
	return !differs
}

// memoEntry is a tombstone this node purged.
type memoEntry struct {
	obj     vclock.Object
	purged  time.Time
	cleared map[string]bool // peers whose exchanges showed they lack it too
}

// noteExchange records what an exchange proved, for the sweep and the memo.
func (s *Service) noteExchange(p int, peer string, start time.Time, diff Diff) {
	ev := &evidence{start: start}
	if len(diff.Keys) > maxEvidenceKeys {
		ev.overflow = true
	} else {
		ev.diff = make(map[string]Presence, len(diff.Keys))
		for i, k := range diff.Keys {
			ev.diff[string(k)] = diff.Presence[i]
		}
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evidence[peerKey{p, peer}] = ev
	s.progressOf(p).lastExchange = now
	entries := s.memo[p]
	if len(entries) == 0 || ev.overflow {
		return
	}
	peers := s.otherPrimaries(p)
	for key, e := range entries {
		if !ev.agrees([]byte(key), e.purged) {
			continue
		}
		e.cleared[peer] = true
		if allCleared(e, peers) {
			delete(entries, key)
			s.memoSize--
		}
	}
}

func allCleared(e *memoEntry, peers []string) bool {
	for _, p := range peers {
		if !e.cleared[p] {
			return false
		}
	}
	return true
}

// otherPrimaries returns p's primaries other than this node.
func (s *Service) otherPrimaries(p int) []string {
	r := s.rings.Ring()
	if p >= r.Partitions() {
		return nil
	}
	var out []string
	for _, id := range r.Primaries(p) {
		if id != s.cfg.ID {
			out = append(out, id)
		}
	}
	return out
}

// refuse reports whether obj is covered by a tombstone this node purged of
// key, so merging it would bring the tombstone (or something older) back.
// Anything newer is let through, and the memo entry is forgotten.
func (s *Service) refuse(p int, key []byte, obj vclock.Object) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memoSize == 0 {
		return false
	}
	e := s.memo[p][string(key)]
	if e == nil {
		return false
	}
	if e.obj.Descends(obj) {
		return true
	}
	delete(s.memo[p], string(key))
	s.memoSize--
	return false
}

type purgeItem struct {
	key  []byte
	hash uint64
	obj  vclock.Object
}

// Sweep walks the tombstones of every partition once: it notes new ones,
// confirms those its exchanges have seen on every primary, and purges those
// confirmed at least TombstoneGrace ago. Run calls it every SweepEvery
// rounds; the scan is paced by ScanKeysPerSec. Tests call it directly.
func (s *Service) Sweep(ctx context.Context) error {
	if !s.Ready() {
		return ErrNotReady
	}
	r := s.rings.Ring()
	now := s.cfg.Now()
	s.expire(now)
	for p := range s.cfg.Partitions {
		held := p < r.Partitions() && r.IsPrimary(s.cfg.ID, p)
		peers := s.otherPrimaries(p)
		if err := s.scan.wait(ctx, s.trees[p].Len()); err != nil {
			return err
		}
		var purge []purgeItem
		err := s.st.Tombstones(p, func(key []byte, obj vclock.Object, mark store.TombstoneMark, marked bool) (store.TombstoneMark, bool, bool, error) {
			if !held {
				return mark, false, true, nil // not ours to purge: forget the marks
			}
			h := obj.Hash()
			switch {
			case !marked || mark.Hash != h:
				mark = store.TombstoneMark{Hash: h, Noted: now.UnixNano()}
			case mark.Confirmed == 0:
				if s.seenEverywhere(p, peers, key, time.Unix(0, mark.Noted)) {
					mark.Confirmed = now.UnixNano()
					s.Stats.TombstonesConfirmed.Add(1)
				}
			case now.Sub(time.Unix(0, mark.Confirmed)) >= s.cfg.TombstoneGrace:
				purge = append(purge, purgeItem{key: slices.Clone(key), hash: h, obj: obj})
			}
			return mark, true, true, ctx.Err()
		})
		if err != nil {
			return err
		}
		for _, it := range purge {
			if err := s.purge(p, peers, it, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// seenEverywhere reports whether this node's last exchange with every peer
// started after noted and found the peer holding key's versions or nothing.
func (s *Service) seenEverywhere(p int, peers []string, key []byte, noted time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, peer := range peers {
		if !s.evidence[peerKey{p, peer}].confirms(key, noted) {
			return false
		}
	}
	return true
}

// purge removes one confirmed tombstone, remembering it first so that a
// peer that has not purged yet cannot hand it back in between.
func (s *Service) purge(p int, peers []string, it purgeItem, now time.Time) error {
	memo := len(peers) > 0
	s.mu.Lock()
	if memo && s.memoSize < maxMemo {
		if s.memo[p] == nil {
			s.memo[p] = map[string]*memoEntry{}
		}
		if _, ok := s.memo[p][string(it.key)]; !ok {
			s.memoSize++
		}
		s.memo[p][string(it.key)] = &memoEntry{obj: it.obj, purged: now, cleared: map[string]bool{}}
	}
	s.mu.Unlock()
	ok, err := s.st.Purge(p, it.key, it.hash)
	if ok {
		s.Stats.TombstonesPurged.Add(1)
		return nil
	}
	// The key changed since the scan: whatever it holds now is not purged.
	s.mu.Lock()
	if _, had := s.memo[p][string(it.key)]; had {
		delete(s.memo[p], string(it.key))
		s.memoSize--
	}
	s.mu.Unlock()
	return err
}

// memoRetention is how long a purged tombstone is refused at most, when
// the exchanges do not show sooner that every peer purged it too: the grace
// period plus ten sweep periods. A peer that confirmed the tombstone later
// than this node purges it at most a few sweeps later; one that stays away
// longer may hand it back, and it is then confirmed and purged again.
func (s *Service) memoRetention() time.Duration {
	return s.cfg.TombstoneGrace + 10*time.Duration(s.cfg.SweepEvery)*s.cfg.Interval
}

// expire forgets purged tombstones older than memoRetention, and the
// evidence of partitions this node no longer holds.
func (s *Service) expire(now time.Time) {
	r := s.rings.Ring()
	retain := s.memoRetention()
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, entries := range s.memo {
		for key, e := range entries {
			if now.Sub(e.purged) >= retain {
				delete(entries, key)
				s.memoSize--
			}
		}
		if len(entries) == 0 {
			delete(s.memo, p)
		}
	}
	for k := range s.evidence {
		if k.p >= r.Partitions() || !r.IsPrimary(s.cfg.ID, k.p) {
			delete(s.evidence, k)
		}
	}
}

// Memo returns the number of purged tombstones this node still refuses.
func (s *Service) Memo() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memoSize
}
