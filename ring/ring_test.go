package ring

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"slices"
	"testing"
)

func ids(names ...string) []Member {
	ms := make([]Member, len(names))
	for i, n := range names {
		ms[i] = Member{ID: n}
	}
	return ms
}

func mustNew(t testing.TB, ms []Member, partitions, replicas int) *Ring {
	t.Helper()
	r, err := New(ms, partitions, replicas)
	if err != nil {
		t.Fatalf("New(%d members, %d, %d): %v", len(ms), partitions, replicas, err)
	}
	return r
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name       string
		members    []Member
		partitions int
		replicas   int
		want       error
	}{
		{"zero partitions", ids("a"), 0, 3, ErrInvalid},
		{"too many partitions", ids("a"), MaxPartitions + 1, 3, ErrInvalid},
		{"zero replicas", ids("a"), 16, 0, ErrInvalid},
		{"negative replicas", ids("a"), 16, -1, ErrInvalid},
		{"too many replicas", ids("a"), 16, MaxReplicas + 1, ErrInvalid},
		{"too many members", make([]Member, MaxMembers+1), 16, 3, ErrInvalid},
		{"empty ID", ids("a", ""), 16, 3, ErrInvalid},
		{"duplicate ID", ids("a", "b", "a"), 16, 3, ErrDuplicateMember},
		{"duplicate ID in other zones", []Member{{"a", "z1"}, {"a", "z2"}}, 16, 3, ErrDuplicateMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.members, tt.partitions, tt.replicas)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New: err = %v, want %v", err, tt.want)
			}
			if r != nil {
				t.Fatalf("New returned a ring with error %v", err)
			}
		})
	}
}

func TestEmptyRing(t *testing.T) {
	r := mustNew(t, nil, DefaultPartitions, 3)
	if got := r.Partitions(); got != DefaultPartitions {
		t.Errorf("Partitions() = %d, want %d", got, DefaultPartitions)
	}
	if got := r.Replicas(); got != 3 {
		t.Errorf("Replicas() = %d, want 3", got)
	}
	if p := r.PartitionOf([]byte("k")); p < 0 || p >= DefaultPartitions {
		t.Errorf("PartitionOf = %d, out of range", p)
	}
	for _, p := range []int{0, DefaultPartitions - 1} {
		if got := r.Primaries(p); got != nil {
			t.Errorf("Primaries(%d) = %v, want nil", p, got)
		}
		if got := r.PreferenceList(p); got != nil {
			t.Errorf("PreferenceList(%d) = %v, want nil", p, got)
		}
		if r.IsPrimary("a", p) {
			t.Errorf("IsPrimary(a, %d) on an empty ring", p)
		}
	}
	if got := r.Members(); len(got) != 0 {
		t.Errorf("Members() = %v", got)
	}
	if got := r.PartitionsOf("a"); got != nil {
		t.Errorf("PartitionsOf(a) = %v", got)
	}
	if got := r.PrimaryCount("a"); got != 0 {
		t.Errorf("PrimaryCount(a) = %d", got)
	}
}

// With no more members than replicas every partition holds every member.
func TestSmallRings(t *testing.T) {
	tests := []struct {
		members  []Member
		replicas int
	}{
		{ids("solo"), 1},
		{ids("solo"), 3},
		{ids("a", "b"), 3},
		{ids("c", "a", "b"), 3},
		{[]Member{{"a", "z1"}, {"b", "z1"}}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.members, tt.replicas), func(t *testing.T) {
			r := mustNew(t, tt.members, 64, tt.replicas)
			firsts := map[string]bool{}
			for p := 0; p < 64; p++ {
				got := slices.Clone(r.Primaries(p))
				firsts[got[0]] = true
				slices.Sort(got)
				want := []string{}
				for _, m := range r.Members() {
					want = append(want, m.ID)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("Primaries(%d) = %v, want all of %v", p, got, want)
				}
			}
			for _, m := range tt.members {
				if n := r.PrimaryCount(m.ID); n != 64 {
					t.Errorf("PrimaryCount(%s) = %d, want 64", m.ID, n)
				}
			}
			// The preference order still varies, so coordinators spread.
			if len(tt.members) > 1 && len(firsts) != len(tt.members) {
				t.Errorf("first replicas over all partitions = %v, want every member", firsts)
			}
		})
	}
}

func TestMembersSortedCopy(t *testing.T) {
	r := mustNew(t, []Member{{"c", "z2"}, {"a", "z1"}, {"b", ""}}, 16, 3)
	got := r.Members()
	want := []Member{{"a", "z1"}, {"b", ""}, {"c", "z2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Members() = %v, want %v", got, want)
	}
	got[0].ID = "mutated"
	if r.Members()[0].ID != "a" {
		t.Fatal("Members() shares its slice with the ring")
	}
	if !r.Contains("b") || r.Contains("mutated") {
		t.Fatal("Contains disagrees with Members")
	}
}

// Golden values: a change here moves every stored key.
func TestPartitionOfGolden(t *testing.T) {
	r := mustNew(t, nil, DefaultPartitions, 3)
	r7 := mustNew(t, nil, 7, 3)
	tests := []struct {
		key         string
		want, want7 int
	}{
		// Cross-checked with an independent implementation (Python).
		{"", 959, 6},
		{"a", 522, 3},
		{"user1", 811, 5},
		{"user2", 563, 3},
		{"hello world", 497, 3},
		{"\x00\xff\x10", 106, 0},
	}
	for _, tt := range tests {
		if got := r.PartitionOf([]byte(tt.key)); got != tt.want {
			t.Errorf("PartitionOf(%q) over %d = %d, want %d", tt.key, DefaultPartitions, got, tt.want)
		}
		if got := r7.PartitionOf([]byte(tt.key)); got != tt.want7 {
			t.Errorf("PartitionOf(%q) over 7 = %d, want %d", tt.key, got, tt.want7)
		}
	}
}

// Sequential keys must spread over the ring. The negative control shows the
// check bites: plain FNV-1a read through its high bits fails it.
func TestPartitionOfSpreadsSequentialKeys(t *testing.T) {
	const keys, parts = 10000, DefaultPartitions
	r := mustNew(t, nil, parts, 3)
	spread := func(place func([]byte) int) (used, most int) {
		count := map[int]int{}
		for i := 0; i < keys; i++ {
			count[place(fmt.Appendf(nil, "user%d", i))]++
		}
		for _, c := range count {
			most = max(most, c)
		}
		return len(count), most
	}
	ok := func(used, most int) bool { return used > parts*99/100 && most < 4*keys/parts }
	if used, most := spread(r.PartitionOf); !ok(used, most) {
		t.Errorf("PartitionOf: %d keys used %d of %d partitions, fullest %d", keys, used, parts, most)
	}
	plain := func(key []byte) int {
		h := fnv.New64a()
		h.Write(key)
		hi, _ := bits.Mul64(h.Sum64(), parts)
		return int(hi)
	}
	if used, most := spread(plain); ok(used, most) {
		t.Errorf("negative control: plain FNV-1a passed the spread check (%d used, fullest %d)", used, most)
	}
}

// Golden placement: a change here reshuffles every cluster on upgrade.
func TestPlacementGolden(t *testing.T) {
	r := mustNew(t, []Member{{"n1", ""}, {"n2", ""}, {"n3", ""}, {"n4", ""}, {"n5", ""}, {"n6", ""}}, DefaultPartitions, 3)
	want := map[int][]string{
		0:    {"n1", "n6", "n3"},
		1:    {"n4", "n5", "n1"},
		511:  {"n2", "n1", "n6"},
		1023: {"n4", "n6", "n2"},
	}
	for p, w := range want {
		if got := r.Primaries(p); !slices.Equal(got, w) {
			t.Errorf("Primaries(%d) = %#v, want %#v", p, got, w)
		}
	}
	z := mustNew(t, []Member{{"n1", "a"}, {"n2", "a"}, {"n3", "b"}, {"n4", "b"}, {"n5", "c"}, {"n6", "c"}}, DefaultPartitions, 3)
	wantZ := map[int][]string{
		0:    {"n1", "n6", "n3"},
		1:    {"n4", "n5", "n1"},
		511:  {"n2", "n6", "n3"},
		1023: {"n4", "n6", "n2"},
	}
	for p, w := range wantZ {
		if got := z.Primaries(p); !slices.Equal(got, w) {
			t.Errorf("zoned Primaries(%d) = %#v, want %#v", p, got, w)
		}
	}
}

func TestPrimariesCannotBeGrownIntoRingState(t *testing.T) {
	r := mustNew(t, ids("a", "b", "c", "d", "e"), 8, 3)
	before := slices.Clone(r.Primaries(1))
	_ = append(r.Primaries(0), "intruder")
	if got := r.Primaries(1); !slices.Equal(got, before) {
		t.Fatalf("appending to Primaries(0) changed Primaries(1): %v -> %v", before, got)
	}
}

func TestPreferenceList(t *testing.T) {
	ms := ids("a", "b", "c", "d", "e", "f", "g", "h")
	r := mustNew(t, ms, DefaultPartitions, 3)
	firstFallback := map[string]int{}
	for p := 0; p < r.Partitions(); p++ {
		list := r.PreferenceList(p)
		if !slices.Equal(list[:3], r.Primaries(p)) {
			t.Fatalf("PreferenceList(%d) = %v does not start with Primaries %v", p, list, r.Primaries(p))
		}
		sorted := slices.Sorted(slices.Values(list))
		if !slices.Equal(sorted, []string{"a", "b", "c", "d", "e", "f", "g", "h"}) {
			t.Fatalf("PreferenceList(%d) = %v, want every member once", p, list)
		}
		if again := r.PreferenceList(p); !slices.Equal(again, list) {
			t.Fatalf("PreferenceList(%d) not deterministic: %v then %v", p, list, again)
		}
		firstFallback[list[3]]++
	}
	// Every node is the first fallback somewhere, and none takes the
	// load of a failed node's partitions alone.
	if len(firstFallback) != len(ms) {
		t.Errorf("first fallbacks %v, want all %d members", firstFallback, len(ms))
	}
	for id, n := range firstFallback {
		if n > 2*r.Partitions()/len(ms) {
			t.Errorf("%s is first fallback of %d partitions", id, n)
		}
	}
	next := slices.Clone(r.PreferenceList(1))
	_ = append(r.PreferenceList(0), "intruder")
	if !slices.Equal(r.PreferenceList(1), next) {
		t.Error("appending to PreferenceList(0) changed PreferenceList(1)")
	}
}

func TestOwnershipQueriesAgree(t *testing.T) {
	r := mustNew(t, []Member{{"a", "x"}, {"b", "y"}, {"c", "x"}, {"d", "y"}, {"e", "z"}}, 128, 3)
	for _, m := range r.Members() {
		parts := r.PartitionsOf(m.ID)
		if !slices.IsSorted(parts) {
			t.Errorf("PartitionsOf(%s) not ascending: %v", m.ID, parts)
		}
		if len(parts) != r.PrimaryCount(m.ID) {
			t.Errorf("PrimaryCount(%s) = %d, PartitionsOf has %d", m.ID, r.PrimaryCount(m.ID), len(parts))
		}
		for p := 0; p < r.Partitions(); p++ {
			if want := slices.Contains(r.Primaries(p), m.ID); r.IsPrimary(m.ID, p) != want || slices.Contains(parts, p) != want {
				t.Errorf("partition %d, %s: IsPrimary=%v, in PartitionsOf=%v, in Primaries=%v",
					p, m.ID, r.IsPrimary(m.ID, p), slices.Contains(parts, p), want)
			}
		}
		parts[0] = -1
		if r.PartitionsOf(m.ID)[0] == -1 {
			t.Errorf("PartitionsOf(%s) shares memory with the ring", m.ID)
		}
	}
	if r.IsPrimary("stranger", 0) || r.PrimaryCount("stranger") != 0 || r.PartitionsOf("stranger") != nil {
		t.Error("a non-member owns partitions")
	}
}

func TestEqual(t *testing.T) {
	base := mustNew(t, ids("a", "b", "c", "d"), 64, 3)
	tests := []struct {
		name  string
		other *Ring
		want  bool
	}{
		{"same members, other order", mustNew(t, ids("d", "c", "b", "a"), 64, 3), true},
		{"other partition count", mustNew(t, ids("a", "b", "c", "d"), 32, 3), false},
		{"other replication factor", mustNew(t, ids("a", "b", "c", "d"), 64, 2), false},
		{"one more member", mustNew(t, ids("a", "b", "c", "d", "e"), 64, 3), false},
		{"a zone label", mustNew(t, []Member{{"a", "z"}, {"b", ""}, {"c", ""}, {"d", ""}}, 64, 3), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := base.Equal(tt.other); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
		if tt.other != nil {
			if got := tt.other.Equal(base); got != tt.want {
				t.Errorf("%s: Equal is not symmetric", tt.name)
			}
		}
	}
	var nilRing *Ring
	if !nilRing.Equal(nil) {
		t.Error("nil rings are not Equal")
	}
}

func TestDiff(t *testing.T) {
	a := mustNew(t, ids("a", "b", "c", "d", "e"), 256, 3)
	b := mustNew(t, ids("a", "b", "c", "d", "e", "f"), 256, 3)

	if moves, err := Diff(a, a); err != nil || len(moves) != 0 {
		t.Fatalf("Diff(a, a) = %v, %v; want no moves", moves, err)
	}
	moves, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[int]bool{}
	for i, mv := range moves {
		if i > 0 && moves[i-1].Partition >= mv.Partition {
			t.Fatalf("moves not in ascending partition order: %d then %d", moves[i-1].Partition, mv.Partition)
		}
		listed[mv.Partition] = true
		// Applying the move to a's replica set must give b's.
		set := slices.Clone(a.Primaries(mv.Partition))
		set = slices.DeleteFunc(set, func(id string) bool { return slices.Contains(mv.Removed, id) })
		set = append(set, mv.Added...)
		slices.Sort(set)
		want := slices.Sorted(slices.Values(b.Primaries(mv.Partition)))
		if !slices.Equal(set, want) {
			t.Fatalf("partition %d: a %v %+v gives %v, b has %v", mv.Partition, a.Primaries(mv.Partition), mv, set, want)
		}
		if len(mv.Added) != len(mv.Removed) || len(mv.Added) == 0 {
			t.Fatalf("partition %d: unbalanced move %+v", mv.Partition, mv)
		}
	}
	for p := 0; p < 256; p++ {
		if listed[p] {
			continue
		}
		if !slices.Equal(slices.Sorted(slices.Values(a.Primaries(p))), slices.Sorted(slices.Values(b.Primaries(p)))) {
			t.Fatalf("partition %d changed but is not listed", p)
		}
	}
	// The joining node must receive exactly what it now holds.
	added := 0
	for _, mv := range moves {
		if slices.Contains(mv.Added, "f") {
			added++
		}
	}
	if added != b.PrimaryCount("f") {
		t.Errorf("f is added to %d partitions but holds %d", added, b.PrimaryCount("f"))
	}

	if _, err := Diff(a, mustNew(t, ids("a"), 128, 3)); !errors.Is(err, ErrPartitionMismatch) {
		t.Errorf("Diff over different sizes: err = %v, want ErrPartitionMismatch", err)
	}
	if _, err := Diff(a, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Diff with nil: err = %v, want ErrInvalid", err)
	}
	// Growing from an empty ring adds every replica slot.
	empty := mustNew(t, nil, 256, 3)
	moves, err = Diff(empty, a)
	if err != nil || len(moves) != 256 || len(moves[0].Added) != 3 || moves[0].Removed != nil {
		t.Errorf("Diff(empty, a): %d moves, first %+v, err %v", len(moves), moves[0], err)
	}
}

func TestPartitionOutOfRangePanics(t *testing.T) {
	r := mustNew(t, ids("a"), 8, 1)
	for _, p := range []int{-1, 8} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Primaries(%d) did not panic", p)
				}
			}()
			r.Primaries(p)
		}()
	}
}
