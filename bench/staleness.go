package bench

import (
	"encoding/binary"
	"sync"
)

// seqBytes is the size of the sequence number at the start of every value
// the bench writes (big-endian uint64, then padding to the value size).
const seqBytes = 8

// encodeValue fills buf (len = value size) with seq followed by pad.
func encodeValue(buf []byte, seq uint64, pad []byte) []byte {
	binary.BigEndian.PutUint64(buf, seq)
	copy(buf[seqBytes:], pad)
	return buf
}

// decodeSeq reads the sequence number of a value the bench wrote; ok is
// false for a value too short to carry one (not written by this bench).
func decodeSeq(v []byte) (seq uint64, ok bool) {
	if len(v) < seqBytes {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// Tracker decides which reads are stale. It is the bench's record of every
// write it issued: per key, the sequence number of each write (handed out in
// the order writes start), when it started, and when its acknowledgement
// arrived. Times are nanoseconds on one monotonic clock, passed in by the
// caller, so the rule can be tested as plain function calls.
//
// The rule: a read is stale when the newest write to its key acknowledged
// before the read started is newer than every value the read returned.
// "Newer" means real-time order: write W is newer than the write of value v
// when v's acknowledgement arrived before W started. Two writes that
// overlapped in time are not ordered (a linearizable store may apply them
// either way round: a strong write that started first can win), so a read
// returning either of them is fresh. With sequential writes this is exactly
// "returned an older sequence number than the newest acknowledged one".
// Every approximation errs towards fresh: acknowledgements are stamped when
// the bench sees them (late) and starts before the request is sent (early).
// A value whose write failed or timed out has an unknown outcome and is
// never called stale; nor is a value the bench did not write. A read that
// finds nothing is stale when any write to the key was acknowledged before
// it started.
//
// Tracker is safe for concurrent use; keys are sharded over locks.
type Tracker struct {
	shards [trackerShards]trackerShard
}

const trackerShards = 64

type trackerShard struct {
	mu   sync.Mutex
	keys map[uint64]*keyHistory
}

// maxFailedKept bounds the failed writes remembered per key.
const maxFailedKept = 64

// keyHistory is what the tracker knows about one key. Writes at or below
// floor were all superseded (their acks all arrived before some later
// acknowledged write started) and are summarised by floorAck, the latest of
// their acknowledgements, except those in failed.
type keyHistory struct {
	next           uint64 // highest sequence number handed out
	anyAcked       bool
	maxAckedInvoke int64 // latest start among acknowledged writes
	lastAck        int64 // latest acknowledgement
	floor          uint64
	floorAck       int64
	writes         []writeRecord // seq > floor, ascending
	failed         []uint64      // failed writes at or below floor
	context        string        // the newest causal context seen for the key
}

type writeState uint8

const (
	writePending writeState = iota
	writeAcked
	writeFailed
)

type writeRecord struct {
	seq    uint64
	invoke int64
	ack    int64
	state  writeState
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	t := &Tracker{}
	for i := range t.shards {
		t.shards[i].keys = map[uint64]*keyHistory{}
	}
	return t
}

func (t *Tracker) lock(key uint64) (*keyHistory, func()) {
	s := &t.shards[key%trackerShards]
	s.mu.Lock()
	h := s.keys[key]
	if h == nil {
		h = &keyHistory{}
		s.keys[key] = h
	}
	return h, s.mu.Unlock
}

// BeginWrite records that a write of key starts at now and returns the
// sequence number its value must carry.
func (t *Tracker) BeginWrite(key uint64, now int64) uint64 {
	h, unlock := t.lock(key)
	defer unlock()
	h.next++
	h.writes = append(h.writes, writeRecord{seq: h.next, invoke: now})
	return h.next
}

// AckWrite records that the write of seq was acknowledged at now.
func (t *Tracker) AckWrite(key, seq uint64, now int64) {
	h, unlock := t.lock(key)
	defer unlock()
	w := h.find(seq)
	if w == nil || w.state != writePending {
		return
	}
	w.state, w.ack = writeAcked, now
	if !h.anyAcked || w.invoke > h.maxAckedInvoke {
		h.maxAckedInvoke = w.invoke
	}
	h.anyAcked = true
	h.lastAck = max(h.lastAck, now)
	h.compact()
}

// FailWrite records that the write of seq failed or its outcome is unknown.
func (t *Tracker) FailWrite(key, seq uint64) {
	h, unlock := t.lock(key)
	defer unlock()
	if w := h.find(seq); w != nil && w.state == writePending {
		w.state = writeFailed
		h.compact()
	}
}

// ReadSnapshot is what a read needs to know about its key's writes at the
// moment it starts.
type ReadSnapshot struct {
	// Acked: some write was acknowledged before the read started.
	Acked bool
	// Before is the latest start among writes acknowledged before the read;
	// a value acknowledged before it is superseded.
	Before int64
	// LastAck is the latest acknowledgement before the read (for the age of
	// the data the read should see).
	LastAck int64
	// Start is when the read started.
	Start int64
}

// BeginRead takes the snapshot for a read of key starting at now.
func (t *Tracker) BeginRead(key uint64, now int64) ReadSnapshot {
	h, unlock := t.lock(key)
	defer unlock()
	return ReadSnapshot{Acked: h.anyAcked, Before: h.maxAckedInvoke, LastAck: h.lastAck, Start: now}
}

// Stale judges a read of key that started with snap and returned values
// carrying seqs (empty: not found). It applies the rule on Tracker.
func (t *Tracker) Stale(key uint64, snap ReadSnapshot, seqs []uint64) bool {
	if !snap.Acked {
		return false
	}
	if len(seqs) == 0 {
		return true
	}
	h, unlock := t.lock(key)
	defer unlock()
	for _, s := range seqs {
		if !h.supersededBefore(s, snap.Before) {
			return false
		}
	}
	return true
}

// Context returns the newest causal context seen for key ("" if none).
func (t *Tracker) Context(key uint64) string {
	h, unlock := t.lock(key)
	defer unlock()
	return h.context
}

// SetContext remembers ctx as the newest causal context seen for key.
func (t *Tracker) SetContext(key uint64, ctx string) {
	if ctx == "" {
		return
	}
	h, unlock := t.lock(key)
	defer unlock()
	h.context = ctx
}

// supersededBefore reports whether the write of seq is known to have been
// acknowledged before `before` (the start of a write acknowledged before the
// read began).
func (h *keyHistory) supersededBefore(seq uint64, before int64) bool {
	if seq == 0 || seq > h.next {
		return false // not a write this bench made to this key
	}
	if seq <= h.floor {
		for _, f := range h.failed {
			if f == seq {
				return false
			}
		}
		// Every write at or below floor was acknowledged by floorAck; a
		// read whose snapshot is older than the compaction may not be able
		// to tell, and then it is called fresh.
		return h.floorAck < before
	}
	w := h.find(seq)
	return w != nil && w.state == writeAcked && w.ack < before
}

func (h *keyHistory) find(seq uint64) *writeRecord {
	if seq <= h.floor || seq > h.next {
		return nil
	}
	// writes holds every seq in floor+1..next in order.
	i := int(seq - h.floor - 1)
	if i < len(h.writes) && h.writes[i].seq == seq {
		return &h.writes[i]
	}
	return nil
}

// compact folds the oldest writes into floor once they are superseded for
// every read that starts from now on, or failed, so a key's history stays
// as short as the writes that can still matter.
func (h *keyHistory) compact() {
	n := 0
	for n < len(h.writes) {
		w := h.writes[n]
		switch {
		case w.state == writeFailed:
			if len(h.failed) == maxFailedKept {
				h.failed = h.failed[1:]
			}
			h.failed = append(h.failed, w.seq)
		case w.state == writeAcked && h.anyAcked && w.ack < h.maxAckedInvoke:
			h.floorAck = max(h.floorAck, w.ack)
		default:
			h.writes = append(h.writes[:0], h.writes[n:]...)
			return
		}
		h.floor = w.seq
		n++
	}
	h.writes = h.writes[:0]
}
