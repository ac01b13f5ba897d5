package vclock

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"sort"
)

// Tag orders strong (linearizable) writes: a logical counter, ties broken by
// the writer's actor id. The zero Tag means "never written at strong".
type Tag struct {
	Counter uint64 `msgpack:"c"`
	Writer  string `msgpack:"w"`
}

// IsZero reports whether t is the zero tag.
func (t Tag) IsZero() bool { return t.Counter == 0 && t.Writer == "" }

// Less reports whether t orders before o.
func (t Tag) Less(o Tag) bool {
	if t.Counter != o.Counter {
		return t.Counter < o.Counter
	}
	return t.Writer < o.Writer
}

// Dot is the dot a strong write with this tag is stored under. Strong dots
// live in their own actor space ("~" + writer) so they never collide with the
// per-key counters of ordinary writes.
func (t Tag) Dot() Dot { return Dot{Actor: "~" + t.Writer, Counter: t.Counter} }

// Sibling is one live version of a key.
type Sibling struct {
	Dot       Dot    `msgpack:"d"`
	Value     []byte `msgpack:"v"`
	Tombstone bool   `msgpack:"t,omitempty"`
	// Tag is set when the version was written at the strong level.
	Tag Tag `msgpack:"g,omitempty"`
}

// Object is everything a replica stores for one key.
type Object struct {
	// Clock covers every dot this replica has seen for the key, including
	// those of every sibling it holds.
	Clock    VV        `msgpack:"k"`
	Siblings []Sibling `msgpack:"s"`
	// Tag is the highest strong tag this replica has seen for the key.
	Tag Tag `msgpack:"g,omitempty"`
}

// IsEmpty reports whether o has never been written.
func (o Object) IsEmpty() bool { return len(o.Clock) == 0 && len(o.Siblings) == 0 }

// Live returns the siblings that are values, not tombstones.
func (o Object) Live() []Sibling {
	var out []Sibling
	for _, s := range o.Siblings {
		if !s.Tombstone {
			out = append(out, s)
		}
	}
	return out
}

// Deleted reports whether o holds only tombstones.
func (o Object) Deleted() bool { return len(o.Siblings) > 0 && len(o.Live()) == 0 }

// Update returns o after a write coordinated by actor: the siblings ctx covers
// are replaced by one new sibling; the others stay, concurrent with it. It
// also returns the new sibling's dot.
func (o Object) Update(actor string, ctx VV, value []byte, tombstone bool) (Object, Dot) {
	return o.UpdateAbove(actor, 0, ctx, value, tombstone)
}

// UpdateAbove is Update with the new dot's counter above floor as well. A
// coordinator passes a floor that only grows (across all keys and restarts)
// so that after a key's object was purged, its next write cannot reuse a
// counter that a replica which has not purged yet still covers — such a
// write would look already seen there and be dropped.
func (o Object) UpdateAbove(actor string, floor uint64, ctx VV, value []byte, tombstone bool) (Object, Dot) {
	n := max(o.Clock.Get(actor), floor)
	if c := ctx.Get(actor); c > n {
		n = c
	}
	dot := Dot{Actor: actor, Counter: n + 1}
	out := Object{Clock: o.Clock.Join(ctx).With(dot), Tag: o.Tag}
	for _, s := range o.Siblings {
		if !ctx.Covers(s.Dot) {
			out.Siblings = append(out.Siblings, s)
		}
	}
	out.Siblings = append(out.Siblings, Sibling{Dot: dot, Value: value, Tombstone: tombstone})
	out.normalize()
	return out, dot
}

// StrongWrite is a strong write as a replica applies it.
type StrongWrite struct {
	Tag Tag `msgpack:"g"`
	// Context is the join of the clocks the writer read in its first phase.
	Context   VV     `msgpack:"k"`
	Value     []byte `msgpack:"v"`
	Tombstone bool   `msgpack:"t,omitempty"`
}

// ApplyStrong returns o after a strong write. A write whose tag is not above
// o.Tag is already superseded and leaves o unchanged; otherwise the write
// replaces every sibling o holds.
func (o Object) ApplyStrong(w StrongWrite) Object {
	if !o.Tag.Less(w.Tag) {
		return o
	}
	dot := w.Tag.Dot()
	return Object{
		Clock:    o.Clock.Join(w.Context).With(dot),
		Siblings: []Sibling{{Dot: dot, Value: w.Value, Tombstone: w.Tombstone, Tag: w.Tag}},
		Tag:      w.Tag,
	}
}

// Merge joins two replicas' objects for one key. A sibling survives when both
// hold it or when the other side has not seen its dot; among strong siblings
// only those with the highest tag survive.
func Merge(a, b Object) Object {
	// Replicas mostly agree, and a read folds its answers into an empty
	// object: skip the work (and the two maps) when the join is one side.
	// Every Object this package makes is normalized, so the join of equal
	// objects, or with nothing, is that object; objects are never changed
	// in place, so sharing it is safe.
	switch {
	case a.Equal(b), b.IsEmpty() && b.Tag.IsZero():
		return a
	case a.IsEmpty() && a.Tag.IsZero():
		return b
	}
	out := Object{Clock: a.Clock.Join(b.Clock), Tag: a.Tag}
	if out.Tag.Less(b.Tag) {
		out.Tag = b.Tag
	}
	inA := make(map[Dot]bool, len(a.Siblings))
	for _, s := range a.Siblings {
		inA[s.Dot] = true
	}
	inB := make(map[Dot]bool, len(b.Siblings))
	for _, s := range b.Siblings {
		inB[s.Dot] = true
	}
	keep := func(s Sibling) {
		if !s.Tag.IsZero() && s.Tag.Less(out.Tag) {
			return
		}
		out.Siblings = append(out.Siblings, s)
	}
	for _, s := range a.Siblings {
		if inB[s.Dot] || !b.Clock.Covers(s.Dot) {
			keep(s)
		}
	}
	for _, s := range b.Siblings {
		if !inA[s.Dot] && !a.Clock.Covers(s.Dot) {
			keep(s)
		}
	}
	out.normalize()
	return out
}

// Descends reports whether o has seen every version in p: merging p into o
// would change nothing.
func (o Object) Descends(p Object) bool {
	return Merge(o, p).Equal(o)
}

// Equal reports whether a and b hold the same versions.
func (o Object) Equal(p Object) bool {
	if o.Tag != p.Tag || len(o.Clock) != len(p.Clock) || len(o.Siblings) != len(p.Siblings) {
		return false
	}
	for i := range o.Clock {
		if o.Clock[i] != p.Clock[i] {
			return false
		}
	}
	for i := range o.Siblings {
		x, y := o.Siblings[i], p.Siblings[i]
		if x.Dot != y.Dot || x.Tombstone != y.Tombstone || x.Tag != y.Tag || !bytes.Equal(x.Value, y.Value) {
			return false
		}
	}
	return true
}

// Hash is a digest of the versions o holds: its clock, its siblings' dots and
// its tag. Dots name values uniquely, so values are not hashed. Two replicas
// hold the same versions exactly when their hashes match (up to collisions).
func (o Object) Hash() uint64 {
	h := fnv.New64a()
	var buf [binary.MaxVarintLen64]byte
	put := func(s string, n uint64) {
		h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(s)))])
		h.Write([]byte(s))
		h.Write(buf[:binary.PutUvarint(buf[:], n)])
	}
	for _, e := range o.Clock {
		put(e.Actor, e.Counter)
	}
	h.Write([]byte{0xff})
	for _, s := range o.Siblings {
		put(s.Dot.Actor, s.Dot.Counter)
		if s.Tombstone {
			h.Write([]byte{1})
		}
	}
	h.Write([]byte{0xfe})
	put(o.Tag.Writer, o.Tag.Counter)
	return h.Sum64()
}

// ValueHash is a short digest of one sibling's value, for /v1/explain.
func ValueHash(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

func (o *Object) normalize() {
	sort.Slice(o.Siblings, func(i, j int) bool { return o.Siblings[i].Dot.Less(o.Siblings[j].Dot) })
}

// WithClock returns o with clock joined into its causal context.
func (o Object) WithClock(clock VV) Object {
	o.Clock = o.Clock.Join(clock)
	return o
}
