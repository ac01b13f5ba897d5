package vclock

import (
	"fmt"

	"github.com/quorumkv/quorumkv/internal/mpack"
)

// This file is the hand-written msgpack codec of the version types. Objects
// are stored on disk and travel in every replica message, and the
// reflective codec spent most of its time finding struct fields; here each
// type appends and reads its own fields.
//
// The bytes are exactly what msgpack/v5 writes for the struct tags above
// (a map keyed by the short names, in field order; omitempty fields left
// out when empty, a zero Tag included, as v5 asks IsZero; nil slices as
// nil; uint64 at full width), so objects stored by earlier versions and
// messages from nodes still running them read the same. Readers accept
// what v5 accepted: keys in any order, unknown keys skipped, nil for a
// struct, slice or binary, any integer width.

// appendActorCounter appends the map {"a": actor, "c": counter} of a Dot
// or an Entry.
func appendActorCounter(b []byte, actor string, counter uint64) []byte {
	b = mpack.AppendMapHeader(b, 2)
	b = mpack.AppendString(b, "a")
	b = mpack.AppendString(b, actor)
	b = mpack.AppendString(b, "c")
	return mpack.AppendUint64(b, counter)
}

func readActorCounter(r *mpack.Reader, typ string) (actor string, counter uint64, err error) {
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "a":
			actor, err = r.ReadString()
		case "c":
			counter, err = r.ReadUint()
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return "", 0, fmt.Errorf("vclock: %s: %w", typ, err)
	}
	return actor, counter, nil
}

// AppendMsgpack appends d encoded as msgpack.
func (d Dot) AppendMsgpack(b []byte) []byte { return appendActorCounter(b, d.Actor, d.Counter) }

// ReadMsgpack decodes a Dot from r into d.
func (d *Dot) ReadMsgpack(r *mpack.Reader) (err error) {
	d.Actor, d.Counter, err = readActorCounter(r, "dot")
	return err
}

// AppendMsgpack appends e encoded as msgpack.
func (e Entry) AppendMsgpack(b []byte) []byte { return appendActorCounter(b, e.Actor, e.Counter) }

// ReadMsgpack decodes an Entry from r into e.
func (e *Entry) ReadMsgpack(r *mpack.Reader) (err error) {
	e.Actor, e.Counter, err = readActorCounter(r, "entry")
	return err
}

// AppendMsgpack appends t encoded as msgpack. Both fields are always
// written, also for the zero tag (omitting it is up to the containing
// struct).
func (t Tag) AppendMsgpack(b []byte) []byte {
	b = mpack.AppendMapHeader(b, 2)
	b = mpack.AppendString(b, "c")
	b = mpack.AppendUint64(b, t.Counter)
	b = mpack.AppendString(b, "w")
	return mpack.AppendString(b, t.Writer)
}

// ReadMsgpack decodes a Tag from r into t.
func (t *Tag) ReadMsgpack(r *mpack.Reader) error {
	*t = Tag{}
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "c":
			t.Counter, err = r.ReadUint()
		case "w":
			t.Writer, err = r.ReadString()
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("vclock: tag: %w", err)
	}
	return nil
}

// AppendMsgpack appends v encoded as msgpack: an array of entries, or nil
// for a nil vector.
func (v VV) AppendMsgpack(b []byte) []byte {
	if v == nil {
		return mpack.AppendNil(b)
	}
	b = mpack.AppendArrayHeader(b, len(v))
	for _, e := range v {
		b = e.AppendMsgpack(b)
	}
	return b
}

// ReadMsgpack decodes a version vector from r into v. Nil decodes as a nil
// vector, an empty array as an empty one. The entries are taken as they
// come; Normalize them if they are from outside.
func (v *VV) ReadMsgpack(r *mpack.Reader) error {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil {
		return fmt.Errorf("vclock: vector: %w", err)
	}
	if isNil {
		*v = nil
		return nil
	}
	// ReadArrayHeader checked that n bytes are left, so n is bounded by
	// the input.
	out := make(VV, n)
	for i := range out {
		if err := out[i].ReadMsgpack(r); err != nil {
			return err
		}
	}
	*v = out
	return nil
}

// MaxMsgpackSize is an upper bound on the length of v.AppendMsgpack(nil).
func (v VV) MaxMsgpackSize() int {
	n := mpack.MaxHeaderLen
	for _, e := range v {
		n += actorCounterMaxSize(e.Actor)
	}
	return n
}

// actorCounterMaxSize bounds the encoded size of a Dot or Entry: map
// header, two one-byte keys, the actor and a full-width counter.
func actorCounterMaxSize(actor string) int {
	return 1 + 2 + mpack.MaxHeaderLen + len(actor) + 2 + mpack.MaxUintLen
}

func tagMaxSize(t Tag) int {
	return 1 + 2 + mpack.MaxUintLen + 2 + mpack.MaxHeaderLen + len(t.Writer)
}

// AppendMsgpack appends s encoded as msgpack.
func (s Sibling) AppendMsgpack(b []byte) []byte {
	n := 2
	if s.Tombstone {
		n++
	}
	hasTag := !s.Tag.IsZero()
	if hasTag {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendString(b, "d")
	b = s.Dot.AppendMsgpack(b)
	b = mpack.AppendString(b, "v")
	b = mpack.AppendBytes(b, s.Value)
	if s.Tombstone {
		b = mpack.AppendString(b, "t")
		b = mpack.AppendBool(b, true)
	}
	if hasTag {
		b = mpack.AppendString(b, "g")
		b = s.Tag.AppendMsgpack(b)
	}
	return b
}

// ReadMsgpack decodes a Sibling from r into s.
func (s *Sibling) ReadMsgpack(r *mpack.Reader) error {
	*s = Sibling{}
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "d":
			err = s.Dot.ReadMsgpack(r)
		case "v":
			s.Value, err = r.ReadBytes()
		case "t":
			s.Tombstone, err = r.ReadBool()
		case "g":
			err = s.Tag.ReadMsgpack(r)
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("vclock: sibling: %w", err)
	}
	return nil
}

// AppendMsgpack appends o encoded as msgpack, byte for byte what
// msgpack.Marshal(&o) writes.
func (o Object) AppendMsgpack(b []byte) []byte {
	n := 2
	hasTag := !o.Tag.IsZero()
	if hasTag {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendString(b, "k")
	b = o.Clock.AppendMsgpack(b)
	b = mpack.AppendString(b, "s")
	if o.Siblings == nil {
		b = mpack.AppendNil(b)
	} else {
		b = mpack.AppendArrayHeader(b, len(o.Siblings))
		for _, s := range o.Siblings {
			b = s.AppendMsgpack(b)
		}
	}
	if hasTag {
		b = mpack.AppendString(b, "g")
		b = o.Tag.AppendMsgpack(b)
	}
	return b
}

// ReadMsgpack decodes an Object from r into o.
func (o *Object) ReadMsgpack(r *mpack.Reader) error {
	*o = Object{}
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "k":
			err = o.Clock.ReadMsgpack(r)
		case "s":
			o.Siblings, err = readSiblings(r)
		case "g":
			err = o.Tag.ReadMsgpack(r)
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("vclock: object: %w", err)
	}
	return nil
}

func readSiblings(r *mpack.Reader) ([]Sibling, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([]Sibling, n)
	for i := range out {
		if err := out[i].ReadMsgpack(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MaxMsgpackSize is an upper bound on the length of o.AppendMsgpack(nil),
// for sizing a buffer once.
func (o Object) MaxMsgpackSize() int {
	n := 1 + 2 + o.Clock.MaxMsgpackSize() + 2 + mpack.MaxHeaderLen + 2 + tagMaxSize(o.Tag)
	for _, s := range o.Siblings {
		n += 1 + 2 + actorCounterMaxSize(s.Dot.Actor) + 2 + mpack.MaxHeaderLen + len(s.Value) + 3 + 2 + tagMaxSize(s.Tag)
	}
	return n
}

// AppendMsgpack appends w encoded as msgpack.
func (w StrongWrite) AppendMsgpack(b []byte) []byte {
	n := 3
	if w.Tombstone {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendString(b, "g")
	b = w.Tag.AppendMsgpack(b)
	b = mpack.AppendString(b, "k")
	b = w.Context.AppendMsgpack(b)
	b = mpack.AppendString(b, "v")
	b = mpack.AppendBytes(b, w.Value)
	if w.Tombstone {
		b = mpack.AppendString(b, "t")
		b = mpack.AppendBool(b, true)
	}
	return b
}

// ReadMsgpack decodes a StrongWrite from r into w.
func (w *StrongWrite) ReadMsgpack(r *mpack.Reader) error {
	*w = StrongWrite{}
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "g":
			err = w.Tag.ReadMsgpack(r)
		case "k":
			err = w.Context.ReadMsgpack(r)
		case "v":
			w.Value, err = r.ReadBytes()
		case "t":
			w.Tombstone, err = r.ReadBool()
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("vclock: strong write: %w", err)
	}
	return nil
}

// MaxMsgpackSize is an upper bound on the length of w.AppendMsgpack(nil).
func (w StrongWrite) MaxMsgpackSize() int {
	return 1 + 2 + tagMaxSize(w.Tag) + 2 + w.Context.MaxMsgpackSize() + 2 + mpack.MaxHeaderLen + len(w.Value) + 3
}
