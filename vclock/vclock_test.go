package vclock

import (
	"math/rand/v2"
	"testing"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b VV
		want Ordering
	}{
		{nil, nil, Equal},
		{VV{{"a", 1}}, nil, After},
		{nil, VV{{"a", 1}}, Before},
		{VV{{"a", 2}}, VV{{"a", 1}}, After},
		{VV{{"a", 1}, {"b", 1}}, VV{{"a", 1}, {"b", 1}}, Equal},
		{VV{{"a", 2}}, VV{{"b", 1}}, Concurrent},
		{VV{{"a", 2}, {"b", 1}}, VV{{"a", 1}, {"b", 2}}, Concurrent},
		{VV{{"a", 2}, {"b", 2}}, VV{{"a", 1}, {"b", 2}}, After},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("Compare(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func randVV(r *rand.Rand) VV {
	var v VV
	for _, a := range []string{"a", "b", "c", "d"} {
		if r.IntN(2) == 0 {
			v = v.With(Dot{a, uint64(r.IntN(4) + 1)})
		}
	}
	return v
}

// TestPartialOrderLaws: Compare is a partial order and Join is its least
// upper bound.
func TestPartialOrderLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		a, b, c := randVV(r), randVV(r), randVV(r)
		if a.Compare(a) != Equal {
			t.Fatalf("not reflexive: %v", a)
		}
		if a.Descends(b) && b.Descends(a) && a.Compare(b) != Equal {
			t.Fatalf("not antisymmetric: %v %v", a, b)
		}
		if a.Descends(b) && b.Descends(c) && !a.Descends(c) {
			t.Fatalf("not transitive: %v %v %v", a, b, c)
		}
		j := a.Join(b)
		if !j.Descends(a) || !j.Descends(b) {
			t.Fatalf("join %v of %v, %v is not an upper bound", j, a, b)
		}
		if c.Descends(a) && c.Descends(b) && !c.Descends(j) {
			t.Fatalf("join %v of %v, %v is not the least upper bound (%v)", j, a, b, c)
		}
		if a.Join(b).Compare(b.Join(a)) != Equal {
			t.Fatal("join not commutative")
		}
	}
}

// history builds random objects the way replicas do: updates by several
// actors with contexts from earlier states, and merges between replicas.
func history(r *rand.Rand, steps int) []Object {
	replicas := make([]Object, 3)
	actors := []string{"a", "b", "c"}
	var seen []VV
	for i := 0; i < steps; i++ {
		x := r.IntN(3)
		switch r.IntN(3) {
		case 0, 1:
			var ctx VV
			if len(seen) > 0 && r.IntN(3) > 0 {
				ctx = seen[r.IntN(len(seen))]
			}
			replicas[x], _ = replicas[x].Update(actors[x], ctx, []byte{byte(i)}, r.IntN(5) == 0)
			seen = append(seen, replicas[x].Clock)
		case 2:
			y := r.IntN(3)
			replicas[x] = Merge(replicas[x], replicas[y])
		}
	}
	return replicas
}

// TestMergeIsAJoin: merge is commutative, associative and idempotent, so
// replicas may exchange objects in any order, any number of times.
func TestMergeIsAJoin(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		o := history(r, 2+r.IntN(12))
		a, b, c := o[0], o[1], o[2]
		if !Merge(a, a).Equal(a) {
			t.Fatalf("merge not idempotent:\n%+v", a)
		}
		if !Merge(a, b).Equal(Merge(b, a)) {
			t.Fatalf("merge not commutative:\n%+v\n%+v", a, b)
		}
		if !Merge(Merge(a, b), c).Equal(Merge(a, Merge(b, c))) {
			t.Fatalf("merge not associative:\n%+v\n%+v\n%+v", a, b, c)
		}
		m := Merge(a, b)
		if !m.Descends(a) || !m.Descends(b) {
			t.Fatal("merge does not descend its inputs")
		}
		for _, s := range m.Siblings {
			if !m.Clock.Covers(s.Dot) {
				t.Fatalf("clock %v does not cover sibling %v", m.Clock, s.Dot)
			}
		}
	}
}

// TestNoAcknowledgedWriteLost: a write survives every merge unless a later
// write whose context covered it replaced it.
func TestNoAcknowledgedWriteLost(t *testing.T) {
	var a, b Object
	a, _ = a.Update("a", nil, []byte("x"), false)
	b, _ = b.Update("b", nil, []byte("y"), false)
	m := Merge(a, b)
	if len(m.Siblings) != 2 {
		t.Fatalf("concurrent writes must become siblings, got %+v", m.Siblings)
	}
	// A write with the merged context replaces both.
	r, _ := m.Update("a", m.Clock, []byte("xy"), false)
	if len(r.Siblings) != 1 || string(r.Siblings[0].Value) != "xy" {
		t.Fatalf("context write should resolve: %+v", r.Siblings)
	}
	// The resolution wins over the old siblings wherever they are.
	if got := Merge(b, r); len(got.Siblings) != 1 {
		t.Fatalf("resolved object merged with an old replica: %+v", got.Siblings)
	}
	// A write with an older context stays concurrent with what it missed.
	s, _ := m.Update("b", a.Clock, []byte("z"), false)
	if len(s.Siblings) != 2 {
		t.Fatalf("write that saw only x must keep y: %+v", s.Siblings)
	}
}

// TestNewIncarnationIsNotAlreadySeen is Riak's kv679: a node that lost its
// disk restarts with counters from zero. Under the same actor id its new
// write would look already seen and be dropped; with a new incarnation it
// survives.
func TestNewIncarnationIsNotAlreadySeen(t *testing.T) {
	var old Object
	for i := 0; i < 3; i++ {
		old, _ = old.Update("n1.aaa", old.Clock, []byte{byte(i)}, false)
	}
	var wiped Object
	sameActor, _ := wiped.Update("n1.aaa", nil, []byte("new"), false)
	if got := Merge(old, sameActor); hasValue(got, "new") {
		t.Fatal("control: the reused actor id should lose the new write (this is the bug incarnations prevent)")
	}
	newActor, _ := wiped.Update("n1.bbb", nil, []byte("new"), false)
	if got := Merge(old, newActor); !hasValue(got, "new") {
		t.Fatalf("new incarnation's write was dropped: %+v", got.Siblings)
	}
}

func hasValue(o Object, v string) bool {
	for _, s := range o.Siblings {
		if string(s.Value) == v {
			return true
		}
	}
	return false
}

func TestStrongWritesNeverMakeSiblings(t *testing.T) {
	var o Object
	o, _ = o.Update("a", nil, []byte("plain"), false)
	o = o.ApplyStrong(StrongWrite{Tag: Tag{1, "x"}, Context: o.Clock, Value: []byte("s1")})
	if len(o.Siblings) != 1 || string(o.Siblings[0].Value) != "s1" {
		t.Fatalf("strong write should replace: %+v", o.Siblings)
	}
	p := Object{}.ApplyStrong(StrongWrite{Tag: Tag{2, "y"}, Value: []byte("s2")})
	m := Merge(o, p)
	if len(m.Live()) != 1 || string(m.Live()[0].Value) != "s2" {
		t.Fatalf("higher tag must win a merge: %+v", m.Siblings)
	}
	// A lower tag arriving later changes nothing.
	if got := m.ApplyStrong(StrongWrite{Tag: Tag{1, "z"}, Value: []byte("old")}); !got.Equal(m) {
		t.Fatal("lower tag applied")
	}
}

func TestContextRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 500; i++ {
		v := randVV(r)
		got, err := DecodeContext(EncodeContext(v))
		if err != nil || got.Compare(v) != Equal {
			t.Fatalf("round trip %v: %v %v", v, got, err)
		}
	}
	for _, bad := range []string{"!!", "AAAA", "Ag", "AQpuMS4xcDRlbjZiAQAA", "/////w"} {
		if _, err := DecodeContext(bad); err == nil {
			t.Errorf("DecodeContext(%q) accepted garbage", bad)
		}
	}
}

func FuzzDecodeContext(f *testing.F) {
	f.Add(EncodeContext(VV{{"n1.abc", 3}, {"n2.x", 9}}))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := DecodeContext(s)
		if err != nil {
			return
		}
		back, err := DecodeContext(EncodeContext(v))
		if err != nil || back.Compare(v) != Equal {
			t.Fatalf("re-encoding %q changed it", s)
		}
	})
}

// TestPurgedKeyDoesNotReuseCounters: after a replica purged a key's
// tombstone, the coordinator's next write must not reuse a counter that a
// replica which still holds the tombstone covers.
func TestPurgedKeyDoesNotReuseCounters(t *testing.T) {
	var o Object
	o, _ = o.Update("a", nil, []byte("v"), false)
	tomb, _ := o.Update("a", o.Clock, nil, true) // a:2, still held by a slow replica
	purged := Object{}                           // the coordinator purged it
	reused, _ := purged.Update("a", nil, []byte("new"), false)
	if hasValue(Merge(tomb, reused), "new") {
		t.Fatal("control: without a floor the new write should look already seen")
	}
	fresh, d := purged.UpdateAbove("a", 2, nil, []byte("new"), false)
	if d.Counter != 3 || !hasValue(Merge(tomb, fresh), "new") {
		t.Fatalf("write above the floor was dropped (dot %v)", d)
	}
}
