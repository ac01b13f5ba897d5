package antientropy

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"slices"
	"testing"
)

// trueDiff is the symmetric difference of two replicas' (key, hash) sets,
// sorted, with the side that holds each key.
func trueDiff(local, remote map[string]uint64) ([]string, []Presence) {
	type kp struct {
		k string
		p Presence
	}
	var out []kp
	for k, h := range local {
		rh, ok := remote[k]
		switch {
		case !ok:
			out = append(out, kp{k, LocalOnly})
		case rh != h:
			out = append(out, kp{k, InBoth})
		}
	}
	for k := range remote {
		if _, ok := local[k]; !ok {
			out = append(out, kp{k, RemoteOnly})
		}
	}
	slices.SortFunc(out, func(a, b kp) int { return bytes.Compare([]byte(a.k), []byte(b.k)) })
	keys := make([]string, len(out))
	ps := make([]Presence, len(out))
	for i, e := range out {
		keys[i], ps[i] = e.k, e.p
	}
	return keys, ps
}

func diffKeys(d Diff) []string {
	out := make([]string, len(d.Keys))
	for i, k := range d.Keys {
		out[i] = string(k)
	}
	return out
}

func swapSides(ps []Presence) []Presence {
	out := make([]Presence, len(ps))
	for i, p := range ps {
		switch p {
		case LocalOnly:
			out[i] = RemoteOnly
		case RemoteOnly:
			out[i] = LocalOnly
		default:
			out[i] = p
		}
	}
	return out
}

// Two replicas from a common base plus random divergence: Compare finds
// exactly the symmetric difference, from either side, and the roots match
// exactly when the sets do.
func TestCompareFindsExactDifference(t *testing.T) {
	ctx := context.Background()
	const seed = 42
	rng := rand.New(rand.NewSource(seed))
	var equalCases, diffCases int
	for iter := range 600 {
		shape := propertyShapes[iter%len(propertyShapes)]
		a := newMemStore(shape)
		n := rng.Intn(400)
		if iter%50 == 0 {
			n = 5000
		}
		var keys []string
		for range n {
			k := randomKey(rng)
			keys = append(keys, k)
			a.put(k, rng.Uint64())
		}
		b := a.clone()
		// Diverge: a quarter of the cases stay identical.
		if rng.Intn(4) != 0 {
			for range 1 + rng.Intn(1+rng.Intn(60)) {
				side := a
				if rng.Intn(2) == 0 {
					side = b
				}
				switch r := rng.Intn(3); {
				case r == 0 && len(keys) > 0: // missing on one side
					side.del(keys[rng.Intn(len(keys))])
				case r == 1 && len(keys) > 0: // changed version on one side
					side.put(keys[rng.Intn(len(keys))], rng.Uint64())
				default: // extra key on one side
					side.put(randomKey(rng), rng.Uint64())
				}
			}
		}
		am, bm := a.all(), b.all()
		wantKeys, wantP := trueDiff(am, bm)

		d, err := Compare(ctx, 7, a.replica(), b.replica(), shape)
		if err != nil {
			t.Fatalf("seed %d iteration %d: %v", seed, iter, err)
		}
		if got := diffKeys(d); !slices.Equal(got, wantKeys) || !slices.Equal(d.Presence, wantP) {
			t.Fatalf("seed %d iteration %d (%+v, %d keys): Compare found %q %v, want %q %v",
				seed, iter, shape, len(am), got, d.Presence, wantKeys, wantP)
		}
		back, err := Compare(ctx, 7, b.replica(), a.replica(), shape)
		if err != nil {
			t.Fatal(err)
		}
		if got := diffKeys(back); !slices.Equal(got, wantKeys) || !slices.Equal(back.Presence, swapSides(wantP)) {
			t.Fatalf("seed %d iteration %d: reversed Compare found %q %v", seed, iter, got, back.Presence)
		}
		if same := len(wantKeys) == 0; same != (a.tree.Root() == b.tree.Root()) {
			t.Fatalf("seed %d iteration %d: sets equal %v but roots %x, %x", seed, iter, same, a.tree.Root(), b.tree.Root())
		}
		if len(wantKeys) == 0 {
			equalCases++
			if d.LevelsWalked != 1 || d.HashesCompared != 1 || d.SegmentsFetched != 0 {
				t.Fatalf("iteration %d: identical replicas cost %+v", iter, d)
			}
		} else {
			diffCases++
			if d.LevelsWalked != shape.Depth() || d.SegmentsFetched == 0 {
				t.Fatalf("iteration %d: differing replicas walked %d levels, fetched %d segments", iter, d.LevelsWalked, d.SegmentsFetched)
			}
		}
	}
	// Both branches of the property must have been exercised.
	if equalCases < 50 || diffCases < 300 {
		t.Fatalf("only %d identical and %d differing cases", equalCases, diffCases)
	}
}

// Negative control for the property test: a replica whose tree is out of step
// with its store makes Compare miss a difference, which the check above would
// catch. (Compare trusts the trees; that is why the write path must keep them
// exact.)
func TestCompareTrustsTheTrees(t *testing.T) {
	a := newMemStore(DefaultShape())
	fillKeys(a, rand.New(rand.NewSource(1)), 100)
	b := a.clone()
	s := SegmentOf([]byte("key-5"), 1024)
	b.buckets[s]["key-5"]++ // store changes, tree not told
	d, err := Compare(context.Background(), 7, a.replica(), b.replica(), DefaultShape())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Keys) != 0 {
		t.Fatalf("Compare found %q despite equal trees", diffKeys(d))
	}
	wantKeys, _ := trueDiff(a.all(), b.all())
	if len(wantKeys) != 1 {
		t.Fatalf("true difference %q, want key-5", wantKeys)
	}
}

// What an exchange costs: identical replicas send one hash each; one differing
// key costs one path down the tree and one segment.
func TestExchangeCost(t *testing.T) {
	ctx := context.Background()
	shape := DefaultShape()
	for _, n := range []int{1000, 100_000} {
		rng := rand.New(rand.NewSource(int64(n)))
		a := newMemStore(shape)
		keys := fillKeys(a, rng, n)
		b := a.clone()

		lc, rc := &counting{Replica: a.replica()}, &counting{Replica: b.replica()}
		d, err := Compare(ctx, 7, lc, rc, shape)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Keys) != 0 || d.LevelsWalked != 1 || d.HashesCompared != 1 || d.SegmentsFetched != 0 || d.KeysCompared != 0 {
			t.Errorf("%d identical keys: %+v, want the root only", n, d)
		}
		if rc.hashCalls != 1 || rc.hashesSent != 1 || rc.segmentCalls != 0 || d.RemoteBytes() != 8 {
			t.Errorf("%d identical keys: remote answered %d calls, %d hashes, %d segment calls; RemoteBytes %d",
				n, rc.hashCalls, rc.hashesSent, rc.segmentCalls, d.RemoteBytes())
		}
		t.Logf("%d identical keys: %d hash each way, %d B from remote (%.5f%% of %d B of key+hash pairs)",
			n, d.HashesCompared, d.RemoteBytes(), 100*float64(d.RemoteBytes())/float64(pairBytes(keys)), pairBytes(keys))

		for _, mutate := range []struct {
			name string
			do   func(k string)
			want Presence
		}{
			{"changed", func(k string) { b.put(k, rng.Uint64()) }, InBoth},
			{"missing remotely", func(k string) { b.del(k) }, LocalOnly},
			{"extra remotely", func(k string) { b.put(k+"-new", 1) }, RemoteOnly},
		} {
			b = a.clone()
			k := keys[rng.Intn(n)]
			mutate.do(k)
			want := k
			if mutate.want == RemoteOnly {
				want = k + "-new"
			}
			seg := SegmentOf([]byte(want), shape.Segments)
			segKeys := len(a.buckets[seg]) + len(b.buckets[seg])

			lc, rc := &counting{Replica: a.replica()}, &counting{Replica: b.replica()}
			d, err := Compare(ctx, 7, lc, rc, shape)
			if err != nil {
				t.Fatal(err)
			}
			if got := diffKeys(d); !slices.Equal(got, []string{want}) || d.Presence[0] != mutate.want {
				t.Errorf("%d keys, one %s: found %q %v, want [%q] %v", n, mutate.name, got, d.Presence, want, mutate.want)
			}
			wantHashes := 1 + 32 + 32
			if d.LevelsWalked != 3 || d.HashesCompared != wantHashes || d.SegmentsFetched != 1 || d.KeysCompared != segKeys {
				t.Errorf("%d keys, one %s: %+v; want 3 levels, %d hashes, 1 segment, %d keys", n, mutate.name, d, wantHashes, segKeys)
			}
			if rc.hashCalls != 3 || rc.hashesSent != wantHashes || rc.segmentCalls != 1 || rc.segmentsAsked != 1 ||
				rc.keysSent != d.RemoteKeys || rc.keyBytesSent != d.RemoteKeyBytes || lc.hashesSent != wantHashes {
				t.Errorf("%d keys, one %s: remote calls disagree with Diff: %+v vs %+v", n, mutate.name, rc, d)
			}
			t.Logf("%d keys, one %s: %d levels, %d hashes and %d segment (%d keys) each way, %d B from remote",
				n, mutate.name, d.LevelsWalked, d.HashesCompared, d.SegmentsFetched, d.RemoteKeys, d.RemoteBytes())
		}
	}
}

func pairBytes(keys []string) int {
	n := 0
	for _, k := range keys {
		n += len(k) + 8
	}
	return n
}

// The brief's case: 1% of a 1,000-key partition differs.
func TestExchangeCostOnePercent(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	a := newMemStore(DefaultShape())
	keys := fillKeys(a, rng, 1000)
	b := a.clone()
	for _, i := range rng.Perm(len(keys))[:10] {
		b.put(keys[i], rng.Uint64())
	}
	d, err := Compare(context.Background(), 7, a.replica(), b.replica(), DefaultShape())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Keys) != 10 {
		t.Fatalf("found %d keys, want 10", len(d.Keys))
	}
	if d.HashesCompared > 1+32*(1+10) || d.SegmentsFetched != 10 {
		t.Errorf("1%% of 1000 keys: %+v", d)
	}
	t.Logf("1%% of 1000 keys: %d hashes, %d segments, %d keys each way, %d B from remote of %d B of pairs",
		d.HashesCompared, d.SegmentsFetched, d.RemoteKeys, d.RemoteBytes(), pairBytes(keys))
}

// badReplica answers with whatever it is told to.
type badReplica struct {
	hashes []uint64
	keys   []KeyHash
	err    error
}

func (r badReplica) Hashes(context.Context, int, int, []int) ([]uint64, error) {
	return r.hashes, r.err
}

func (r badReplica) Segment(context.Context, int, []int) ([]KeyHash, error) {
	return r.keys, r.err
}

func TestCompareRejectsMalformedAnswers(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Segments: 1, Fanout: 2} // the root is the only segment
	good := newMemStore(shape)
	good.put("x", 1)
	boom := errors.New("boom")
	tests := []struct {
		name   string
		remote Replica
		want   error
	}{
		{"too few hashes", badReplica{hashes: nil}, ErrBadAnswer},
		{"too many hashes", badReplica{hashes: []uint64{1, 2}}, ErrBadAnswer},
		{"duplicate key", badReplica{hashes: []uint64{9}, keys: []KeyHash{{[]byte("y"), 1}, {[]byte("y"), 2}}}, ErrBadAnswer},
		{"replica error", badReplica{err: boom}, boom},
	}
	for _, tt := range tests {
		if _, err := Compare(ctx, 7, good.replica(), tt.remote, shape); !errors.Is(err, tt.want) {
			t.Errorf("%s: Compare = %v, want %v", tt.name, err, tt.want)
		}
	}

	// A key outside the segments asked for.
	a := newMemStore(DefaultShape())
	a.put("x", 1)
	var stray []byte
	for i := 0; stray == nil; i++ {
		if k := []byte(itoaTest(i)); SegmentOf(k, 1024) != SegmentOf([]byte("x"), 1024) {
			stray = k
		}
	}
	lie := &segmentLiar{Replica: newMemStore(DefaultShape()).replica(), extra: KeyHash{stray, 1}}
	if _, err := Compare(ctx, 7, a.replica(), lie, DefaultShape()); !errors.Is(err, ErrBadAnswer) {
		t.Errorf("stray key: Compare = %v, want ErrBadAnswer", err)
	}

	if _, err := Compare(ctx, 7, a.replica(), a.replica(), Shape{Segments: 1000, Fanout: 16}); err == nil {
		t.Error("Compare accepted an invalid shape")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Compare(cancelled, 7, a.replica(), a.replica(), DefaultShape()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Compare = %v", err)
	}
}

type segmentLiar struct {
	Replica
	extra KeyHash
}

func (s *segmentLiar) Segment(ctx context.Context, p int, segs []int) ([]KeyHash, error) {
	kh, err := s.Replica.Segment(ctx, p, segs)
	return append(kh, s.extra), err
}

func TestTreeReplicaChecksRequests(t *testing.T) {
	ctx := context.Background()
	m := newMemStore(DefaultShape())
	m.put("x", 1)
	r := m.replica()
	if _, err := r.Hashes(ctx, 8, 0, []int{0}); !errors.Is(err, ErrNotHeld) {
		t.Errorf("unheld partition: %v", err)
	}
	if _, err := r.Segment(ctx, 8, []int{0}); !errors.Is(err, ErrNotHeld) {
		t.Errorf("unheld partition segment: %v", err)
	}
	for _, c := range []struct{ level, index int }{{3, 0}, {-1, 0}, {1, 32}, {2, -1}} {
		if _, err := r.Hashes(ctx, 7, c.level, []int{c.index}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Hashes(level %d, [%d]) = %v, want ErrInvalidRequest", c.level, c.index, err)
		}
	}
	if _, err := r.Segment(ctx, 7, []int{1024}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("Segment(1024) = %v", err)
	}
	other := r
	other.Shape = Shape{Segments: 256, Fanout: 16}
	other.Tree = func(int) *Tree { return m.tree }
	if _, err := other.Hashes(ctx, 7, 0, []int{0}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("shape mismatch: %v", err)
	}
	h, err := r.Hashes(ctx, 7, 0, []int{0})
	if err != nil || h[0] != m.tree.Root() {
		t.Errorf("root = %v, %v", h, err)
	}
}

func benchReplicas(b *testing.B, n int, diverge func(b *memStore, keys []string)) (*memStore, *memStore) {
	rng := rand.New(rand.NewSource(1))
	a := newMemStore(DefaultShape())
	keys := fillKeys(a, rng, n)
	c := a.clone()
	diverge(c, keys)
	return a, c
}

func BenchmarkCompareOneDiff(b *testing.B) {
	l, r := benchReplicas(b, 100_000, func(m *memStore, keys []string) { m.put(keys[500], 0) })
	ctx := context.Background()
	b.ReportAllocs()
	var d Diff
	for b.Loop() {
		var err error
		d, err = Compare(ctx, 7, l.replica(), r.replica(), DefaultShape())
		if err != nil || len(d.Keys) != 1 {
			b.Fatal(d, err)
		}
	}
	b.ReportMetric(float64(d.RemoteBytes()), "remote-B/op")
}

func BenchmarkCompareIdentical(b *testing.B) {
	l, r := benchReplicas(b, 100_000, func(*memStore, []string) {})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compare(ctx, 7, l.replica(), r.replica(), DefaultShape()); err != nil {
			b.Fatal(err)
		}
	}
}
