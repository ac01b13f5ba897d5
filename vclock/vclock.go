package vclock

import (
	"sort"
	"strings"
)

// Dot names one version: the actor that created it and the actor's counter.
type Dot struct {
	Actor   string `msgpack:"a"`
	Counter uint64 `msgpack:"c"`
}

// Less orders dots by actor, then counter.
func (d Dot) Less(o Dot) bool {
	if d.Actor != o.Actor {
		return d.Actor < o.Actor
	}
	return d.Counter < o.Counter
}

// Entry is one actor's counter in a version vector.
type Entry struct {
	Actor   string `msgpack:"a"`
	Counter uint64 `msgpack:"c"`
}

// VV is a version vector kept sorted by actor, with no zero counters. The
// zero value is the empty vector. Methods never modify the receiver.
type VV []Entry

// Ordering is the result of comparing two version vectors.
type Ordering int

// The four possible outcomes of Compare.
const (
	Equal Ordering = iota
	Before
	After
	Concurrent
)

func (o Ordering) String() string {
	return [...]string{"equal", "before", "after", "concurrent"}[o]
}

func (v VV) find(actor string) (int, bool) {
	i := sort.Search(len(v), func(i int) bool { return v[i].Actor >= actor })
	return i, i < len(v) && v[i].Actor == actor
}

// Get returns the counter for actor, 0 when absent.
func (v VV) Get(actor string) uint64 {
	if i, ok := v.find(actor); ok {
		return v[i].Counter
	}
	return 0
}

// Covers reports whether d is one of the dots v has seen.
func (v VV) Covers(d Dot) bool { return d.Counter != 0 && v.Get(d.Actor) >= d.Counter }

// With returns v with d's actor raised to at least d's counter.
func (v VV) With(d Dot) VV { return v.Join(VV{{Actor: d.Actor, Counter: d.Counter}}) }

// Join returns the pointwise maximum of v and o.
func (v VV) Join(o VV) VV {
	out := make(VV, 0, len(v)+len(o))
	i, j := 0, 0
	for i < len(v) || j < len(o) {
		switch {
		case j == len(o) || (i < len(v) && v[i].Actor < o[j].Actor):
			out = append(out, v[i])
			i++
		case i == len(v) || o[j].Actor < v[i].Actor:
			out = append(out, o[j])
			j++
		default:
			e := v[i]
			if o[j].Counter > e.Counter {
				e.Counter = o[j].Counter
			}
			out = append(out, e)
			i++
			j++
		}
	}
	return out
}

// Descends reports whether v has seen everything o has.
func (v VV) Descends(o VV) bool {
	for _, e := range o {
		if v.Get(e.Actor) < e.Counter {
			return false
		}
	}
	return true
}

// Compare places v relative to o in the causal order.
func (v VV) Compare(o VV) Ordering {
	vd, od := v.Descends(o), o.Descends(v)
	switch {
	case vd && od:
		return Equal
	case vd:
		return After
	case od:
		return Before
	}
	return Concurrent
}

// Normalize returns a copy of v sorted by actor with duplicate actors folded
// to their maximum and zero counters removed. Use it on vectors from outside.
func Normalize(v VV) VV {
	out := make(VV, 0, len(v))
	for _, e := range v {
		if e.Counter == 0 {
			continue
		}
		out = out.With(Dot(e))
	}
	return out
}

// String renders v as "a:1,b:3" for logs and tests.
func (v VV) String() string {
	var b strings.Builder
	for i, e := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.Actor)
		b.WriteByte(':')
		b.WriteString(uitoa(e.Counter))
	}
	return b.String()
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}
