package antientropy

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/quorumkv/quorumkv/ring"
)

func TestShapeValidate(t *testing.T) {
	tests := []struct {
		shape Shape
		ok    bool
		depth int
	}{
		{DefaultShape(), true, 3},
		{Shape{Segments: 1024, Fanout: 16}, false, 0},
		{Shape{Segments: 4096, Fanout: 16}, true, 4},
		{Shape{Segments: 1, Fanout: 2}, true, 1},
		{Shape{Segments: 16, Fanout: 16}, true, 2},
		{Shape{Segments: 27, Fanout: 3}, true, 4},
		{Shape{Segments: 1 << 20, Fanout: 2}, true, 21},
		{Shape{Segments: 1000, Fanout: 10}, true, 4},
		{Shape{Segments: 1000, Fanout: 16}, false, 0},
		{Shape{Segments: 1024, Fanout: 1}, false, 0},
		{Shape{Segments: 0, Fanout: 16}, false, 0},
		{Shape{Segments: 1 << 21, Fanout: 2}, false, 0},
	}
	for _, tt := range tests {
		err := tt.shape.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.shape, err, tt.ok)
			continue
		}
		if tt.ok && tt.shape.Depth() != tt.depth {
			t.Errorf("%+v.Depth() = %d, want %d", tt.shape, tt.shape.Depth(), tt.depth)
		}
		if tt.ok && tt.shape.Width(tt.depth-1) != tt.shape.Segments {
			t.Errorf("%+v: leaf level width %d, want %d", tt.shape, tt.shape.Width(tt.depth-1), tt.shape.Segments)
		}
	}
	// Every problem is reported at once.
	err := Shape{Segments: 0, Fanout: 0}.Validate()
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Errorf("Validate of two problems = %v, want both", err)
	}
	if _, err := NewTreeWithShape(Shape{Segments: 1000, Fanout: 16}); err == nil {
		t.Error("NewTreeWithShape accepted an invalid shape")
	}
}

func TestDefaultTreeShape(t *testing.T) {
	tr := NewTree()
	if tr.Depth() != 3 || tr.Fanout() != 32 || tr.Segments() != 1024 {
		t.Fatalf("default tree: depth %d fanout %d segments %d, want 3, 32, 1024", tr.Depth(), tr.Fanout(), tr.Segments())
	}
	if n := DefaultShape().nodes(); n != 1+32+1024 {
		t.Fatalf("default tree has %d nodes, want 1057", n)
	}
}

// SegmentOf decides which keys an exchange lists, so every node, of every
// version, must compute the same value: pin a few.
func TestSegmentOfIsStable(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"", 287},
		{"a", 753},
		{"user:42", 28},
		{"\x00\xff", 124},
	}
	for _, tt := range tests {
		if got := SegmentOf([]byte(tt.key), 1024); got != tt.want {
			t.Errorf("SegmentOf(%q, 1024) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestSegmentOfSpreadsKeys(t *testing.T) {
	const n, segs = 102400, 1024
	counts := make([]int, segs)
	for i := range n {
		s := SegmentOf([]byte("key-"+string(rune('a'+i%26))+itoaTest(i)), segs)
		if s < 0 || s >= segs {
			t.Fatalf("segment %d out of range", s)
		}
		counts[s]++
	}
	// Mean 100, standard deviation about 10: 50..150 is five sigma.
	lo, hi := slices.Min(counts), slices.Max(counts)
	if lo < 50 || hi > 150 {
		t.Errorf("segment loads range %d..%d, want within 50..150", lo, hi)
	}
	for _, segs := range []int{1, 3, 16, 1000} {
		for i := range 1000 {
			if s := SegmentOf([]byte(itoaTest(i)), segs); s < 0 || s >= segs {
				t.Fatalf("SegmentOf(_, %d) = %d", segs, s)
			}
		}
	}
}

// The keys of one ring partition must spread over the segments like any
// keys: the ring and the tree hash keys with the same FNV-1a and finalizer,
// and before the salt in keyDigest every key of a partition of a 1024-way
// ring fell into one segment of a 1024-segment tree.
func TestSegmentsIndependentOfPartitions(t *testing.T) {
	const keys, segs = 1 << 16, 1024
	for _, parts := range []int{64, 1024, 4096} {
		r, err := ring.New([]ring.Member{{ID: "n1"}}, parts, 1)
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]map[int]bool, parts)
		for i := range keys {
			k := fmt.Appendf(nil, "user%09d", i)
			p := r.PartitionOf(k)
			if seen[p] == nil {
				seen[p] = map[int]bool{}
			}
			seen[p][SegmentOf(k, segs)] = true
		}
		// k keys over 1024 segments fill about 1024·(1-e^(-k/1024)) of
		// them; with the bug, one.
		per := float64(keys) / float64(parts)
		want := segs * (1 - math.Exp(-per/segs))
		got := 0.0
		for _, s := range seen {
			got += float64(len(s))
		}
		got /= float64(parts)
		if got < 0.9*want {
			t.Errorf("%d-partition ring: a partition's %.0f keys fall into %.1f segments on average, want about %.1f", parts, per, got, want)
		}
	}
}

func itoaTest(i int) string { return string([]byte{byte(i), byte(i >> 8), byte(i >> 16)}) }

var treeSink *Tree

func TestEmptyTreeIsCheap(t *testing.T) {
	if got := unsafe.Sizeof(Tree{}); got != treeStructBytes {
		t.Fatalf("Tree struct is %d bytes, treeStructBytes says %d", got, treeStructBytes)
	}
	if a := testing.AllocsPerRun(100, func() { treeSink = NewTree() }); a != 1 {
		t.Errorf("NewTree allocates %v times, want 1", a)
	}
	tr := NewTree()
	if tr.Root() != 0 || tr.Len() != 0 || tr.MemoryBytes() != treeStructBytes {
		t.Errorf("empty tree: root %x len %d memory %d", tr.Root(), tr.Len(), tr.MemoryBytes())
	}
	if got := tr.Level(2, []int{0, 1023}); !slices.Equal(got, []uint64{0, 0}) {
		t.Errorf("empty tree leaves = %v", got)
	}
	tr.Update([]byte("k"), 0, 0, false, false) // no transition
	tr.Update([]byte("k"), 5, 5, true, true)   // versions unchanged
	if tr.MemoryBytes() != treeStructBytes {
		t.Error("a no-op update allocated the node array")
	}
	tr.Insert([]byte("k"), 5)
	full := tr.MemoryBytes()
	t.Logf("tree memory: empty %d B, holding keys %d B", treeStructBytes, full)
	if full > 16<<10 {
		t.Errorf("default tree takes %d bytes, want at most 16 KiB", full)
	}
	tr.Remove([]byte("k"), 5)
	if tr.Root() != 0 || tr.Len() != 0 {
		t.Errorf("after insert and remove: root %x len %d", tr.Root(), tr.Len())
	}
	tr.Insert([]byte("k"), 5)
	tr.Reset()
	if tr.Root() != 0 || tr.Len() != 0 || tr.MemoryBytes() != treeStructBytes {
		t.Error("Reset did not empty and free the tree")
	}
}

var propertyShapes = []Shape{
	DefaultShape(),
	{Segments: 1, Fanout: 2},
	{Segments: 8, Fanout: 2},
	{Segments: 27, Fanout: 3},
	{Segments: 64, Fanout: 4},
	{Segments: 256, Fanout: 16},
	{Segments: 4096, Fanout: 16},
}

// A tree kept up to date through random inserts, changes and removals is
// node for node the tree built from the final contents.
func TestIncrementalMatchesRebuild(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := range 300 {
		shape := propertyShapes[iter%len(propertyShapes)]
		inc, _ := NewTreeWithShape(shape)
		model := map[string]uint64{}
		var keys []string
		ops := rng.Intn(2000)
		for range ops {
			switch r := rng.Intn(10); {
			case r < 5 || len(keys) == 0: // insert (or overwrite) a key
				k := randomKey(rng)
				if rng.Intn(4) == 0 && len(keys) > 0 {
					k = keys[rng.Intn(len(keys))]
				}
				h := rng.Uint64()
				old, had := model[k]
				if !had {
					keys = append(keys, k)
				}
				model[k] = h
				inc.Update([]byte(k), old, h, had, true)
			case r < 8: // remove
				i := rng.Intn(len(keys))
				k := keys[i]
				keys[i] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
				inc.Remove([]byte(k), model[k])
				delete(model, k)
			default: // change to a hash that may be zero
				k := keys[rng.Intn(len(keys))]
				h := uint64(rng.Intn(3))
				inc.Update([]byte(k), model[k], h, true, true)
				model[k] = h
			}
		}
		fresh, _ := NewTreeWithShape(shape)
		for k, h := range model {
			fresh.Insert([]byte(k), h)
		}
		if !slices.EqualFunc(allNodes(inc), allNodes(fresh), slices.Equal) {
			t.Fatalf("iteration %d (%+v, %d ops): incremental tree differs from rebuilt one", iter, shape, ops)
		}
		if inc.Len() != len(model) {
			t.Fatalf("iteration %d: Len %d, want %d", iter, inc.Len(), len(model))
		}
		checkSums(t, inc)
	}
}

// checkSums checks that every internal node is the sum of its children.
func checkSums(t *testing.T, tr *Tree) {
	t.Helper()
	levels := allNodes(tr)
	f := tr.Fanout()
	for l := 0; l+1 < len(levels); l++ {
		for i, h := range levels[l] {
			var sum uint64
			for _, c := range levels[l+1][i*f : (i+1)*f] {
				sum += c
			}
			if sum != h {
				t.Fatalf("level %d node %d is %x, its children sum to %x", l, i, h, sum)
			}
		}
	}
}

// The combination is order-independent across keys but must still tell which
// key holds which version: negative controls for the item hash.
func TestRootTellsWhichKeyHoldsWhichVersion(t *testing.T) {
	build := func(kh ...KeyHash) uint64 {
		tr := NewTree()
		for _, e := range kh {
			tr.Insert(e.Key, e.Hash)
		}
		return tr.Root()
	}
	a, b := []byte("alpha"), []byte("beta")
	base := build(KeyHash{a, 1}, KeyHash{b, 2})
	if base != build(KeyHash{b, 2}, KeyHash{a, 1}) {
		t.Error("insertion order changed the root")
	}
	for name, other := range map[string]uint64{
		"swapped versions": build(KeyHash{a, 2}, KeyHash{b, 1}),
		"one hash changed": build(KeyHash{a, 1}, KeyHash{b, 3}),
		"one bit changed":  build(KeyHash{a, 1 ^ 1<<63}, KeyHash{b, 2}),
		"key missing":      build(KeyHash{a, 1}),
		"extra hash-0 key": build(KeyHash{a, 1}, KeyHash{b, 2}, KeyHash{[]byte("gamma"), 0}),
		"renamed key":      build(KeyHash{a, 1}, KeyHash{[]byte("betb"), 2}),
	} {
		if other == base {
			t.Errorf("%s: root unchanged", name)
		}
	}
	if build() != 0 || build(KeyHash{a, 0}) == 0 {
		t.Error("a key with version hash 0 must differ from no key")
	}
}

// Writers report transitions concurrently and in no particular order; the
// result is the tree of the final contents. Run under -race.
func TestConcurrentUpdatesCommute(t *testing.T) {
	const writers, perWriter = 8, 2000
	tr := NewTree()
	want := NewTree()
	var wg sync.WaitGroup
	for w := range writers {
		rng := rand.New(rand.NewSource(int64(w)))
		var final []KeyHash
		var trans [][2]uint64
		var keys [][]byte
		for i := range perWriter {
			k := []byte{byte(w), byte(i), byte(i >> 8)}
			h1, h2 := rng.Uint64(), rng.Uint64()
			keys = append(keys, k)
			trans = append(trans, [2]uint64{h1, h2})
			if i%3 != 0 {
				final = append(final, KeyHash{k, h2})
			}
		}
		for _, e := range final {
			want.Insert(e.Key, e.Hash)
		}
		wg.Go(func() {
			// Each key: insert h1, change to h2, and for every third key remove
			// it; deliver the three transitions in reverse order.
			for i, k := range keys {
				if i%3 == 0 {
					tr.Remove(k, trans[i][1])
				}
				tr.Update(k, trans[i][0], trans[i][1], true, true)
				tr.Insert(k, trans[i][0])
			}
		})
	}
	wg.Go(func() {
		for range 1000 {
			_ = tr.Root()
			_ = tr.Level(2, []int{1, 2, 3})
		}
	})
	wg.Wait()
	if tr.Root() != want.Root() || tr.Len() != want.Len() {
		t.Fatalf("root %x len %d, want %x len %d", tr.Root(), tr.Len(), want.Root(), want.Len())
	}
	checkSums(t, tr)
}

func TestLevelPanicsOutOfRange(t *testing.T) {
	tr := NewTree()
	for _, c := range []struct{ level, index int }{{-1, 0}, {3, 0}, {0, 1}, {2, 1024}, {1, 32}, {2, -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Level(%d, [%d]) did not panic", c.level, c.index)
				}
			}()
			tr.Level(c.level, []int{c.index})
		}()
		if err := tr.Shape().CheckLevel(c.level, []int{c.index}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("CheckLevel(%d, [%d]) = %v, want ErrInvalidRequest", c.level, c.index, err)
		}
	}
	if err := tr.Shape().CheckLevel(2, []int{0, 1023}); err != nil {
		t.Errorf("CheckLevel of valid leaves = %v", err)
	}
}

func TestSegmentSet(t *testing.T) {
	s := NewSegmentSet(DefaultShape(), []int{0, 63, 64, 1023, 64})
	if s.Len() != 4 {
		t.Errorf("Len = %d, want 4", s.Len())
	}
	for i, want := range map[int]bool{0: true, 1: false, 63: true, 64: true, 65: false, 1023: true, -1: false, 1024: false} {
		if s.Has(i) != want {
			t.Errorf("Has(%d) = %v, want %v", i, !want, want)
		}
	}
	k := []byte("some key")
	in := NewSegmentSet(DefaultShape(), []int{SegmentOf(k, 1024)})
	if !in.Contains(k) || (SegmentSet{}).Contains(k) {
		t.Error("Contains disagrees with SegmentOf")
	}
}

func BenchmarkUpdate(b *testing.B) {
	tr := NewTree()
	rng := rand.New(rand.NewSource(1))
	const n = 100_000
	keys := make([][]byte, n)
	hashes := make([]uint64, n)
	for i := range keys {
		keys[i] = []byte("user:" + randomKey(rng)[:1] + itoaTest(i) + "-profile")
		hashes[i] = rng.Uint64()
		tr.Insert(keys[i], hashes[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i % n
		h := hashes[j] + 1
		tr.Update(keys[j], hashes[j], h, true, true)
		hashes[j] = h
	}
}

func BenchmarkUpdateParallel(b *testing.B) {
	tr := NewTree()
	key := []byte("user:0000000042-profile")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var h uint64
		for pb.Next() {
			tr.Update(key, h, h+1, true, true)
			h++
		}
	})
}

// Roots are compared across nodes and releases: pin one.
func TestRootIsStable(t *testing.T) {
	tr := NewTree()
	tr.Insert([]byte("a"), 1)
	tr.Insert([]byte("user:42"), 0xdeadbeef)
	if got, want := tr.Root(), uint64(0x7ac5b9b9279c2f99); got != want {
		t.Errorf("root = %#x, want %#x", got, want)
	}
}
