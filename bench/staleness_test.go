package bench

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// step is one event of a scripted history on key 1.
type step struct {
	at   int64
	kind string // "begin" (write), "ack", "fail", "read"
	ref  int    // which write (1-based, in begin order) for ack/fail
}

func TestStalenessRule(t *testing.T) {
	cases := []struct {
		name    string
		history []step
		readAt  int64
		returns []int // writes whose values the read returns (0: a value not ours); nil: not found
		stale   bool
	}{
		{"sequential, returns the older", []step{{0, "begin", 0}, {1, "ack", 1}, {2, "begin", 0}, {3, "ack", 2}}, 4, []int{1}, true},
		{"sequential, returns the newest", []step{{0, "begin", 0}, {1, "ack", 1}, {2, "begin", 0}, {3, "ack", 2}}, 4, []int{2}, false},
		{"newer write not acked when the read started", []step{{0, "begin", 0}, {1, "ack", 1}, {2, "begin", 0}}, 3, []int{1}, false},
		{"overlapping writes: the earlier may win", []step{{0, "begin", 0}, {1, "begin", 0}, {2, "ack", 2}, {3, "ack", 1}}, 4, []int{1}, false},
		{"overlapping writes: the later may win", []step{{0, "begin", 0}, {1, "begin", 0}, {2, "ack", 2}, {3, "ack", 1}}, 4, []int{2}, false},
		{"siblings: one of them is the newest", []step{{0, "begin", 0}, {1, "ack", 1}, {2, "begin", 0}, {3, "ack", 2}}, 4, []int{1, 2}, false},
		{"not found after an acknowledged write", []step{{0, "begin", 0}, {1, "ack", 1}}, 2, nil, true},
		{"not found, nothing acknowledged", []step{{0, "begin", 0}}, 2, nil, false},
		{"value of a failed write (outcome unknown)", []step{{0, "begin", 0}, {1, "ack", 1}, {2, "begin", 0}, {3, "fail", 2}, {4, "begin", 0}, {5, "ack", 3}}, 6, []int{2}, false},
		{"older than a failed write and a later acked one", []step{{0, "begin", 0}, {1, "ack", 1}, {2, "begin", 0}, {3, "fail", 2}, {4, "begin", 0}, {5, "ack", 3}}, 6, []int{1}, true},
		{"a value the bench did not write", []step{{0, "begin", 0}, {1, "ack", 1}}, 2, []int{0}, false},
		{"long history, compacted", longHistory(200), 1000, []int{3}, true},
		{"long history, newest", longHistory(200), 1000, []int{200}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			var seqs []uint64
			for _, s := range tc.history {
				switch s.kind {
				case "begin":
					seqs = append(seqs, tr.BeginWrite(1, s.at))
				case "ack":
					tr.AckWrite(1, seqs[s.ref-1], s.at)
				case "fail":
					tr.FailWrite(1, seqs[s.ref-1])
				}
			}
			snap := tr.BeginRead(1, tc.readAt)
			var got []uint64
			for _, w := range tc.returns {
				if w == 0 {
					got = append(got, 0)
				} else {
					got = append(got, seqs[w-1])
				}
			}
			if stale := tr.Stale(1, snap, got); stale != tc.stale {
				t.Fatalf("stale = %v, want %v", stale, tc.stale)
			}
		})
	}
}

// longHistory is n sequential writes, each acknowledged before the next.
func longHistory(n int) []step {
	var h []step
	for i := 0; i < n; i++ {
		h = append(h, step{int64(4 * i), "begin", 0}, step{int64(4*i + 1), "ack", i + 1})
	}
	return h
}

func TestTrackerCompactsHistory(t *testing.T) {
	tr := NewTracker()
	for i := int64(0); i < 10000; i++ {
		s := tr.BeginWrite(7, 2*i)
		tr.AckWrite(7, s, 2*i+1)
	}
	h, unlock := tr.lock(7)
	n := len(h.writes)
	unlock()
	if n > 2 {
		t.Fatalf("after 10000 sequential writes the key keeps %d records, want at most 2", n)
	}
}

func TestSnapshotOlderThanCompactionIsNotCalledStale(t *testing.T) {
	tr := NewTracker()
	s1 := tr.BeginWrite(1, 0)
	tr.AckWrite(1, s1, 1)
	snap := tr.BeginRead(1, 2) // the read starts: only write 1 is acknowledged
	for i := int64(0); i < 5; i++ {
		s := tr.BeginWrite(1, 3+2*i)
		tr.AckWrite(1, s, 4+2*i)
	}
	if tr.Stale(1, snap, []uint64{s1}) {
		t.Fatal("a read that started when write 1 was the newest acknowledged one is called stale for returning it")
	}
}

// TestLinearizableHistoriesAreNeverStale simulates a linearizable register:
// every operation takes effect at a random instant between its start and
// its acknowledgement, and a read returns the register at its instant. The
// rule must never call such a read stale. The negative control serves reads
// from a lagging copy of the register and must be caught.
func TestLinearizableHistoriesAreNeverStale(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		if n := simulateRegister(seed, 0); n != 0 {
			t.Fatalf("seed %d: %d reads of a linearizable register called stale", seed, n)
		}
	}
	caught := 0
	for seed := uint64(1); seed <= 20; seed++ {
		caught += simulateRegister(seed, 50)
	}
	if caught == 0 {
		t.Fatal("negative control: reads served 50 time units late were never called stale")
	}
}

type simOp struct {
	write          bool
	inv, lin, resp int64
	seq            uint64 // writes: assigned at inv; reads: the value seen
	snap           ReadSnapshot
}

// simulateRegister runs a random history of overlapping reads and writes on
// one key and returns how many reads the tracker calls stale. lag > 0 makes
// reads return the register as it was lag time units before their instant.
func simulateRegister(seed uint64, lag int64) int {
	r := rand.New(rand.NewPCG(seed, 42))
	var ops []*simOp
	for i := 0; i < 400; i++ {
		inv := int64(r.IntN(10000))*10 + 10 // distinct-ish, after the initial write
		dur := int64(r.IntN(300)) + 2
		ops = append(ops, &simOp{write: r.IntN(2) == 0, inv: inv, resp: inv + dur, lin: inv + 1 + int64(r.IntN(int(dur-1)))})
	}
	type event struct {
		at   int64
		kind int // 0 inv, 1 lin, 2 resp (in this order at equal times)
		op   *simOp
	}
	var evs []event
	for _, o := range ops {
		evs = append(evs, event{o.inv, 0, o}, event{o.lin, 1, o}, event{o.resp, 2, o})
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].kind < evs[j].kind
	})
	tr := NewTracker()
	s0 := tr.BeginWrite(1, 0)
	tr.AckWrite(1, s0, 1)
	// register history: (time, value), for lagging reads.
	type change struct {
		at  int64
		val uint64
	}
	hist := []change{{1, s0}}
	valueAt := func(at int64) uint64 {
		v := hist[0].val
		for _, c := range hist {
			if c.at <= at {
				v = c.val
			}
		}
		return v
	}
	stale := 0
	for _, e := range evs {
		o := e.op
		switch {
		case e.kind == 0 && o.write:
			o.seq = tr.BeginWrite(1, e.at)
		case e.kind == 0:
			o.snap = tr.BeginRead(1, e.at)
		case e.kind == 1 && o.write:
			hist = append(hist, change{e.at, o.seq})
		case e.kind == 1:
			o.seq = valueAt(e.at - lag)
		case e.kind == 2 && o.write:
			tr.AckWrite(1, o.seq, e.at)
		case e.kind == 2:
			if tr.Stale(1, o.snap, []uint64{o.seq}) {
				stale++
			}
		}
	}
	return stale
}

func TestValueCarriesSequence(t *testing.T) {
	buf := make([]byte, 100)
	v := encodeValue(buf, 123456789, []byte("padding"))
	if s, ok := decodeSeq(v); !ok || s != 123456789 {
		t.Fatalf("decodeSeq = %d, %v", s, ok)
	}
	if _, ok := decodeSeq([]byte("short")); ok {
		t.Fatal("a 5-byte value decoded as carrying a sequence number")
	}
}
