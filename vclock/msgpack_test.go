package vclock

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/internal/mpack"
)

// The generators below favour the edges of the encoding: empty and nil,
// lengths at the boundaries of msgpack's forms, counters above 2^32.

func genString(rng *rand.Rand) string {
	switch rng.IntN(12) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("w", 31+rng.IntN(3)) // fixstr / str8 boundary
	case 2:
		return strings.Repeat("w", 255+rng.IntN(3)) // str8 / str16 boundary
	case 3:
		if rng.IntN(20) == 0 {
			return strings.Repeat("w", 65535+rng.IntN(3))
		}
	}
	b := make([]byte, 1+rng.IntN(12))
	for i := range b {
		b[i] = byte(rng.UintN(256)) // any bytes: msgpack does not check UTF-8
	}
	return string(b)
}

func genBytes(rng *rand.Rand) []byte {
	switch rng.IntN(10) {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2:
		return bytes.Repeat([]byte{0xab}, 255+rng.IntN(3))
	case 3:
		if rng.IntN(20) == 0 {
			return bytes.Repeat([]byte{0xcd}, 65535+rng.IntN(3))
		}
	}
	b := make([]byte, 1+rng.IntN(120))
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

func genCounter(rng *rand.Rand) uint64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64
	case 2:
		return 1<<32 + rng.Uint64N(1<<40) // above 2^32
	}
	return rng.Uint64() >> rng.IntN(64)
}

func genTag(rng *rand.Rand) Tag {
	switch rng.IntN(4) {
	case 0:
		return Tag{}
	case 1:
		return Tag{Writer: genString(rng)} // zero counter, not a zero tag
	case 2:
		return Tag{Counter: genCounter(rng)}
	}
	return Tag{Counter: genCounter(rng), Writer: genString(rng)}
}

func genVV(rng *rand.Rand) VV {
	switch rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return VV{}
	}
	n := 1 + rng.IntN(4)
	if rng.IntN(10) == 0 {
		n = 15 + rng.IntN(3) // fixarray / array16 boundary
	}
	v := make(VV, n)
	for i := range v {
		v[i] = Entry{Actor: genString(rng), Counter: genCounter(rng)}
	}
	return v
}

func genSibling(rng *rand.Rand) Sibling {
	return Sibling{
		Dot:       Dot{Actor: genString(rng), Counter: genCounter(rng)},
		Value:     genBytes(rng),
		Tombstone: rng.IntN(3) == 0,
		Tag:       genTag(rng),
	}
}

func genObject(rng *rand.Rand) Object {
	o := Object{Clock: genVV(rng), Tag: genTag(rng)}
	switch rng.IntN(6) {
	case 0:
	case 1:
		o.Siblings = []Sibling{}
	default:
		n := 1 + rng.IntN(3)
		if rng.IntN(15) == 0 {
			n = 16
		}
		for range n {
			o.Siblings = append(o.Siblings, genSibling(rng))
		}
	}
	return o
}

func genStrongWrite(rng *rand.Rand) StrongWrite {
	return StrongWrite{Tag: genTag(rng), Context: genVV(rng), Value: genBytes(rng), Tombstone: rng.IntN(2) == 0}
}

// checkCodec holds the hand codec of one value to msgpack/v5: the same
// bytes, each side reading what the other wrote back to the original, every
// truncation refused, and the size bound respected.
func checkCodec[T any](t *testing.T, rng *rand.Rand, v T, appendTo func(T, []byte) []byte, read func(*T, *mpack.Reader) error, maxSize func(T) int) {
	t.Helper()
	hand := appendTo(v, nil)
	ref, err := msgpack.Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hand, ref) {
		t.Fatalf("%T %+.60v\nhand    %x\nmsgpack %x", v, v, hand, ref)
	}
	var viaV5 T
	if err := msgpack.Unmarshal(hand, &viaV5); err != nil || !reflect.DeepEqual(viaV5, v) {
		t.Fatalf("msgpack read back %+.60v (%v), want %+.60v", viaV5, err, v)
	}
	var got T
	r := mpack.NewReader(ref)
	if err := read(&got, r); err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("hand read back %+.60v (%v), want %+.60v", got, err, v)
	}
	if r.Len() != 0 {
		t.Fatalf("hand read left %d bytes", r.Len())
	}
	if maxSize != nil && len(hand) > maxSize(v) {
		t.Fatalf("%d bytes, MaxMsgpackSize says at most %d", len(hand), maxSize(v))
	}
	for range 3 {
		cut := rng.IntN(len(hand))
		var partial T
		if err := read(&partial, mpack.NewReader(hand[:cut])); err == nil {
			t.Fatalf("read %d of %d bytes without error: %x", cut, len(hand), hand[:cut])
		}
	}
}

func TestCodecMatchesMsgpackV5(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 3000 {
		checkCodec(t, rng, genObject(rng), Object.AppendMsgpack, (*Object).ReadMsgpack, Object.MaxMsgpackSize)
		checkCodec(t, rng, genStrongWrite(rng), StrongWrite.AppendMsgpack, (*StrongWrite).ReadMsgpack, StrongWrite.MaxMsgpackSize)
		checkCodec(t, rng, genSibling(rng), Sibling.AppendMsgpack, (*Sibling).ReadMsgpack, nil)
		checkCodec(t, rng, genTag(rng), Tag.AppendMsgpack, (*Tag).ReadMsgpack, nil)
		checkCodec(t, rng, Dot{Actor: genString(rng), Counter: genCounter(rng)}, Dot.AppendMsgpack, (*Dot).ReadMsgpack, nil)
		checkCodec(t, rng, Entry{Actor: genString(rng), Counter: genCounter(rng)}, Entry.AppendMsgpack, (*Entry).ReadMsgpack, nil)
		checkCodec(t, rng, genVV(rng), VV.AppendMsgpack, (*VV).ReadMsgpack, VV.MaxMsgpackSize)
	}
}

// loose renders o the way another msgpack writer might have: keys in
// random order (v5 writes Go maps unordered), integers compacted, strings
// as binaries, a zero tag written out (before Tag was omitempty), explicit
// false, and unknown keys holding values of every kind.
func loose(rng *rand.Rand, o Object) map[string]any {
	str := func(s string) any {
		if rng.IntN(3) == 0 {
			return []byte(s)
		}
		return s
	}
	tag := func(t Tag) map[string]any { return map[string]any{"c": t.Counter, "w": str(t.Writer)} }
	vv := func(v VV) any {
		if v == nil {
			return nil
		}
		out := []any{}
		for _, e := range v {
			out = append(out, map[string]any{"a": str(e.Actor), "c": e.Counter})
		}
		return out
	}
	junk := func() any {
		return []any{1.5, float32(2), time.Unix(1700000000, 5), map[string]any{"x": []any{nil, true, -7}}, "s", []byte{1}}
	}
	m := map[string]any{"k": vv(o.Clock), "zz": junk()}
	if o.Siblings != nil {
		sibs := []any{}
		for _, s := range o.Siblings {
			sm := map[string]any{"d": map[string]any{"a": str(s.Dot.Actor), "c": s.Dot.Counter, "?": junk()}, "v": s.Value, "t": s.Tombstone}
			if !s.Tag.IsZero() || rng.IntN(2) == 0 {
				sm["g"] = tag(s.Tag)
			}
			sibs = append(sibs, sm)
		}
		m["s"] = sibs
	} else if rng.IntN(2) == 0 {
		m["s"] = nil
	}
	if !o.Tag.IsZero() || rng.IntN(2) == 0 {
		m["g"] = tag(o.Tag)
	}
	return m
}

// TestReadsOtherWriters: objects written differently from v5's struct
// encoding, as older versions or other writers may have stored them, read
// the same with the hand codec as with msgpack/v5.
func TestReadsOtherWriters(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for i := range 2000 {
		o := genObject(rng)
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		if err := enc.Encode(loose(rng, o)); err != nil {
			t.Fatal(err)
		}
		var got Object
		if err := got.ReadMsgpack(mpack.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("object %d: %v\n%x", i, err, buf.Bytes())
		}
		var viaV5 Object
		if err := msgpack.Unmarshal(buf.Bytes(), &viaV5); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, viaV5) || !got.Equal(o) {
			t.Fatalf("object %d:\nhand    %+v\nmsgpack %+v\nwant    %+v", i, got, viaV5, o)
		}
	}
	// Nil for the object and for each struct inside it reads as zero.
	for _, b := range [][]byte{{0xc0}, {0x81, 0xa1, 's', 0x91, 0xc0}, {0x81, 0xa1, 'g', 0xc0}} {
		var got, viaV5 Object
		if err := got.ReadMsgpack(mpack.NewReader(b)); err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		if err := msgpack.Unmarshal(b, &viaV5); err != nil || !reflect.DeepEqual(got, viaV5) {
			t.Fatalf("%x: hand %+v, msgpack %+v (%v)", b, got, viaV5, err)
		}
	}
}

// TestReadRefusesMalformed: wrong types and impossible lengths are errors.
func TestReadRefusesMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"array for object":      {0x90},
		"string key count":      {0x81, 0x01, 0x02},
		"negative counter":      {0x81, 0xa1, 'k', 0x91, 0x81, 0xa1, 'c', 0xff},
		"string for clock":      {0x81, 0xa1, 'k', 0xa1, 'x'},
		"huge sibling array":    {0x81, 0xa1, 's', 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0},
		"huge value":            {0x81, 0xa1, 's', 0x91, 0x81, 0xa1, 'v', 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"int for tombstone":     {0x81, 0xa1, 's', 0x91, 0x81, 0xa1, 't', 0x01},
		"deep unknown":          append([]byte{0x81, 0xa1, '?'}, bytes.Repeat([]byte{0x91}, 100)...),
		"truncated after a key": {0x82, 0xa1, 'k', 0xc0, 0xa1, 'g'},
	} {
		var o Object
		if err := o.ReadMsgpack(mpack.NewReader(b)); err == nil {
			t.Errorf("%s: read %x as %+v", name, b, o)
		}
	}
}

// FuzzReadObject: no stored bytes, however corrupt, panic the reader;
// whatever reads re-encodes to msgpack/v5's bytes and reads back the same.
func FuzzReadObject(f *testing.F) {
	rng := rand.New(rand.NewPCG(15, 16))
	for range 30 {
		o := genObject(rng)
		if b := o.AppendMsgpack(nil); len(b) < 2048 {
			f.Add(b)
		}
	}
	f.Add([]byte{0x81, 0xa1, 's', 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var o Object
		if err := o.ReadMsgpack(mpack.NewReader(b)); err != nil {
			return
		}
		enc := o.AppendMsgpack(nil)
		if ref, err := msgpack.Marshal(&o); err != nil || !bytes.Equal(enc, ref) {
			t.Fatalf("re-encoding %+v:\nhand    %x\nmsgpack %x (%v)", o, enc, ref, err)
		}
		var again Object
		if err := again.ReadMsgpack(mpack.NewReader(enc)); err != nil || !reflect.DeepEqual(again, o) {
			t.Fatalf("round trip: %+v (%v), want %+v", again, err, o)
		}
	})
}

func BenchmarkObjectCodec(b *testing.B) {
	o := Object{
		Clock:    VV{{Actor: "n1.4f2a", Counter: 1 << 33}, {Actor: "n2.77c1", Counter: 12}, {Actor: "n3.0b9e", Counter: 7}},
		Siblings: []Sibling{{Dot: Dot{Actor: "n2.77c1", Counter: 12}, Value: bytes.Repeat([]byte("v"), 100)}},
	}
	enc := o.AppendMsgpack(nil)
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = o.AppendMsgpack(make([]byte, 0, o.MaxMsgpackSize()))
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got Object
			if err := got.ReadMsgpack(mpack.NewReader(enc)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCodecCoversEveryField: with every field of Object and StrongWrite
// set (and of everything inside them), the hand codec still writes
// msgpack/v5's bytes and reads them back whole, so a field added to these
// types without being added to msgpack.go fails here rather than being
// dropped from disk.
func TestCodecCoversEveryField(t *testing.T) {
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int64:
			v.SetInt(1)
		case reflect.Uint8, reflect.Uint64:
			v.SetUint(1)
		case reflect.Slice:
			s := reflect.MakeSlice(v.Type(), 1, 1)
			fill(s.Index(0))
			v.Set(s)
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					fill(v.Field(i))
				}
			}
		default:
			t.Fatalf("no rule for %s", v.Type())
		}
	}
	rng := rand.New(rand.NewPCG(17, 18))
	var o Object
	fill(reflect.ValueOf(&o).Elem())
	checkCodec(t, rng, o, Object.AppendMsgpack, (*Object).ReadMsgpack, Object.MaxMsgpackSize)
	var w StrongWrite
	fill(reflect.ValueOf(&w).Elem())
	checkCodec(t, rng, w, StrongWrite.AppendMsgpack, (*StrongWrite).ReadMsgpack, StrongWrite.MaxMsgpackSize)
}
