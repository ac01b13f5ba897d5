package wire

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/vclock"
)

// gen draws messages for the codec property tests. With exact set, no
// omitempty slice is empty but non-nil: v5 leaves such a field out, so it
// reads back as nil and cannot equal the original; without it those cases
// are drawn too, and the codec must still agree with v5 on them.
type gen struct {
	rng   *rand.Rand
	exact bool
}

func (g gen) maybe() bool { return g.rng.IntN(2) == 0 }

// int draws integers of every msgpack width and sign.
func (g gen) int() int {
	switch g.rng.IntN(8) {
	case 0:
		return 0
	case 1:
		return math.MinInt64
	case 2:
		return math.MaxInt64
	}
	v := g.rng.Int64() >> g.rng.IntN(64)
	if g.maybe() {
		v = -v
	}
	return int(v)
}

func (g gen) uint64() uint64 {
	switch g.rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return 1<<32 + g.rng.Uint64N(1<<40)
	}
	return g.rng.Uint64() >> g.rng.IntN(64)
}

func (g gen) string() string {
	switch g.rng.IntN(8) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("s", 31+g.rng.IntN(3))
	case 2:
		return strings.Repeat("s", 255+g.rng.IntN(3))
	}
	b := make([]byte, 1+g.rng.IntN(10))
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	return string(b)
}

// bytes draws a slice; omitempty says whether the field holding it is.
func (g gen) bytes(omitempty bool) []byte {
	switch g.rng.IntN(8) {
	case 0:
		return nil
	case 1:
		if !(omitempty && g.exact) {
			return []byte{}
		}
	case 2:
		return bytes.Repeat([]byte{7}, 255+g.rng.IntN(3))
	case 3:
		if g.rng.IntN(20) == 0 {
			return bytes.Repeat([]byte{8}, 65535+g.rng.IntN(3))
		}
	}
	b := make([]byte, 1+g.rng.IntN(100))
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	return b
}

// count draws a slice length; nil reports a nil slice.
func (g gen) count(omitempty bool) (n int, isNil bool) {
	switch g.rng.IntN(6) {
	case 0:
		return 0, true
	case 1:
		if !(omitempty && g.exact) {
			return 0, false
		}
	case 2:
		return 15 + g.rng.IntN(3), false // fixarray / array16 boundary
	}
	return 1 + g.rng.IntN(3), false
}

func (g gen) vv(omitempty bool) vclock.VV {
	n, isNil := g.count(omitempty)
	if isNil {
		return nil
	}
	v := make(vclock.VV, n)
	for i := range v {
		v[i] = vclock.Entry{Actor: g.string(), Counter: g.uint64()}
	}
	return v
}

func (g gen) tag() vclock.Tag {
	if g.maybe() {
		return vclock.Tag{}
	}
	return vclock.Tag{Counter: g.uint64(), Writer: g.string()}
}

func (g gen) object() vclock.Object {
	o := vclock.Object{Clock: g.vv(false), Tag: g.tag()}
	n, isNil := g.count(false)
	if !isNil {
		o.Siblings = make([]vclock.Sibling, n)
	}
	for i := range o.Siblings {
		o.Siblings[i] = vclock.Sibling{
			Dot:       vclock.Dot{Actor: g.string(), Counter: g.uint64()},
			Value:     g.bytes(false),
			Tombstone: g.maybe(),
			Tag:       g.tag(),
		}
	}
	return o
}

func (g gen) keyObjects() []KeyObject {
	n, isNil := g.count(true)
	if isNil {
		return nil
	}
	out := make([]KeyObject, n)
	for i := range out {
		out[i] = KeyObject{Key: g.bytes(false), Object: g.object()}
	}
	return out
}

func (g gen) request() Request {
	q := Request{Op: Op(g.rng.UintN(256))}
	if g.maybe() {
		q.Op = OpWrite
	}
	if g.maybe() {
		q.From = g.string()
	}
	if g.maybe() {
		q.Partition = g.int()
	}
	if g.maybe() {
		q.Key = g.bytes(true)
	}
	if g.maybe() {
		o := g.object()
		q.Object = &o
	}
	if g.maybe() {
		q.HintFor = g.string()
	}
	if g.maybe() {
		q.Strong = &vclock.StrongWrite{Tag: g.tag(), Context: g.vv(false), Value: g.bytes(false), Tombstone: g.maybe()}
	}
	if g.maybe() {
		q.Client = &ClientOp{Delete: g.maybe(), Value: g.bytes(true), Context: g.vv(true), Overwrite: g.maybe(), W: g.int(), TimeoutMs: int64(g.int())}
	}
	if g.maybe() {
		q.Level = g.int()
	}
	if g.maybe() {
		if n, isNil := g.count(true); !isNil {
			q.Indices = make([]int, n)
			for i := range q.Indices {
				q.Indices[i] = g.int()
			}
		}
	}
	if g.maybe() {
		if n, isNil := g.count(true); !isNil {
			q.Keys = make([][]byte, n)
			for i := range q.Keys {
				q.Keys[i] = g.bytes(false)
			}
		}
	}
	if g.maybe() {
		q.Objects = g.keyObjects()
	}
	if g.maybe() {
		q.Cursor = g.bytes(true)
	}
	if g.maybe() {
		q.Limit = g.int()
	}
	if g.maybe() {
		q.Transfer = g.string()
	}
	if g.maybe() {
		q.SentAt = int64(g.int())
	}
	q.Primary = g.maybe()
	return q
}

func (g gen) response() Response {
	var p Response
	p.Found = g.maybe()
	if g.maybe() {
		o := g.object()
		p.Object = &o
	}
	if g.maybe() {
		p.Client = &ClientResult{
			Object: g.object(), Context: g.vv(true), Replicas: g.int(), Acks: g.int(), Fallbacks: g.int(),
			Code: g.string(), Message: g.string(), Needed: g.int(),
		}
	}
	if g.maybe() {
		if n, isNil := g.count(true); !isNil {
			p.Hashes = make([]uint64, n)
			for i := range p.Hashes {
				p.Hashes[i] = g.uint64()
			}
		}
	}
	if g.maybe() {
		if n, isNil := g.count(true); !isNil {
			p.KeyHashes = make([]KeyHash, n)
			for i := range p.KeyHashes {
				p.KeyHashes[i] = KeyHash{Key: g.bytes(false), Hash: g.uint64()}
			}
		}
	}
	if g.maybe() {
		p.Objects = g.keyObjects()
	}
	if g.maybe() {
		p.Cursor = g.bytes(true)
	}
	p.Done = g.maybe()
	if g.maybe() {
		p.Count = g.int()
	}
	if g.maybe() {
		p.SentAt = int64(g.int())
	}
	return p
}

// checkMessage holds the hand codec to msgpack/v5 for one message: Encode
// writes msgpack.Marshal's bytes (for the value and its pointer); the hand
// decoder reads those bytes to what msgpack.Unmarshal reads, and, when the
// message was drawn exactly, to the original.
func checkMessage[T any](t *testing.T, v T, exact bool, decode func([]byte, *T) error) {
	t.Helper()
	ref, err := msgpack.Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []any{&v, v} {
		hand, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(hand, ref) {
			t.Fatalf("%T %+.80v\nhand    %.200x\nmsgpack %.200x", m, v, hand, ref)
		}
	}
	var viaV5, got T
	if err := msgpack.Unmarshal(ref, &viaV5); err != nil {
		t.Fatal(err)
	}
	if err := decode(ref, &got); err != nil {
		t.Fatalf("decoding %.200x: %v", ref, err)
	}
	if !reflect.DeepEqual(got, viaV5) {
		t.Fatalf("hand decoded %+.200v\nmsgpack      %+.200v", got, viaV5)
	}
	if exact && !reflect.DeepEqual(got, v) {
		t.Fatalf("hand decoded %+.200v\nwant         %+.200v", got, v)
	}
}

func TestCodecMatchesMsgpackV5(t *testing.T) {
	for seed := range uint64(4) {
		g := gen{rng: rand.New(rand.NewPCG(seed, 99)), exact: seed%2 == 0}
		for range 1500 {
			checkMessage(t, g.request(), g.exact, decodeRequest)
			checkMessage(t, g.response(), g.exact, decodeResponse)
		}
	}
	// The envelopes of every shape the nodes send, too.
	for _, q := range seedRequests() {
		checkMessage(t, q, true, decodeRequest)
	}
	checkMessage(t, Request{}, true, decodeRequest)
	checkMessage(t, Response{}, true, decodeResponse)
	// Anything else still goes through msgpack.
	for _, v := range []any{KeyHash{Key: []byte("k"), Hash: 1}, map[string]int{"a": 1}, (*Request)(nil), (*Response)(nil)} {
		got, err := Encode(v)
		want, _ := msgpack.Marshal(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Encode(%T) = %x, %v; want %x", v, got, err, want)
		}
	}
}

// TestDecodeSkipsUnknownFields: a newer node may send fields this one does
// not know; they are skipped whatever they hold.
func TestDecodeSkipsUnknownFields(t *testing.T) {
	type future struct {
		Request
		Extra   map[string]any `msgpack:"zz"`
		Another []any          `msgpack:"zy"`
	}
	q := seedRequests()[1]
	b, err := msgpack.Marshal(&future{
		Request: q,
		Extra:   map[string]any{"a": []any{1.5, nil, map[string]any{"b": []byte{1}}}},
		Another: []any{-1, uint64(1 << 63), "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(b)
	if err != nil || !reflect.DeepEqual(got, q) {
		t.Fatalf("got %+v (%v), want %+v", got, err, q)
	}
}

// TestDecodeChecksStillApply: DecodeRequest refuses unknown ops and
// partitions out of range, wrapping ErrDecode, as it did before.
func TestDecodeChecksStillApply(t *testing.T) {
	for _, q := range []Request{{Op: 0}, {Op: opEnd}, {Op: 255}, {Op: OpRead, Partition: -1}, {Op: OpRead, Partition: 1 << 16}} {
		b, _ := Encode(&q)
		if _, err := DecodeRequest(b); !errors.Is(err, ErrDecode) {
			t.Errorf("%+v: %v; want ErrDecode", q, err)
		}
	}
	// An op written wider than a byte is refused, not truncated.
	b := []byte{0x81, 0xa1, 'o', 0xcd, 0x01, 0x02}
	if _, err := DecodeRequest(b); !errors.Is(err, ErrDecode) {
		t.Errorf("op 0x102: %v; want ErrDecode", err)
	}
}

// TestLengthBombsAllocateLittle: refusing a message that announces a huge
// length costs next to no memory (the guarantee checkLengths gave the
// reflective decoder, now the hand decoder's own). The negative control
// shows the measurement sees msgpack/v5 allocate the announced size.
func TestLengthBombsAllocateLittle(t *testing.T) {
	for name, b := range lengthBombs() {
		var errQ, errP error
		if n := allocated(func() { _, errQ = DecodeRequest(b) }); n > 1<<16 {
			t.Errorf("%s: DecodeRequest allocated %d bytes", name, n)
		}
		if n := allocated(func() { _, errP = DecodeResponse(b) }); n > 1<<16 {
			t.Errorf("%s: DecodeResponse allocated %d bytes", name, n)
		}
		if errQ == nil || errP == nil {
			t.Errorf("%s: decoded (%v, %v)", name, errQ, errP)
		}
	}
	bomb := []byte{0x81, 0xa1, 'k', 0xc6, 0x01, 0x00, 0x00, 0x00, 'x'} // "k": bin32 of 16 MiB
	if n := allocated(func() { _ = msgpack.Unmarshal(bomb, new(Request)) }); n < 1<<24 {
		t.Fatalf("negative control: msgpack/v5 allocated only %d bytes for a 16 MiB binary header", n)
	}
}

func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// typicalWrite is a replica write as the coordinator sends it: a 100-byte
// value under a three-entry clock.
func typicalWrite() Request {
	clock := vclock.VV{{Actor: "n1.4f2a9c", Counter: 1<<20 + 17}, {Actor: "n2.77c1d0", Counter: 9}, {Actor: "n3.0b9e51", Counter: 4}}
	return Request{
		Op:        OpWrite,
		From:      "n1.4f2a9c",
		Partition: 517,
		Key:       []byte("user:000000012345"),
		Object: &vclock.Object{
			Clock:    clock,
			Siblings: []vclock.Sibling{{Dot: vclock.Dot{Actor: "n1.4f2a9c", Counter: 1<<20 + 17}, Value: bytes.Repeat([]byte{'v'}, 100)}},
		},
		SentAt: 1_750_000_000_123_456_789,
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	q := typicalWrite()
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(&q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(&q); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeRequest(b *testing.B) {
	q := typicalWrite()
	enc, _ := Encode(&q)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRequest(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What DecodeRequest did before the hand codec: the length pass, then
	// reflection.
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkLengths(enc); err != nil {
				b.Fatal(err)
			}
			var r Request
			if err := msgpack.Unmarshal(enc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fillEveryField sets every exported field reachable from v to a non-zero
// value: slices get one element, pointers a value.
func fillEveryField(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillEveryField(t, s.Index(0))
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillEveryField(t, p.Elem())
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillEveryField(t, v.Field(i))
			}
		}
	default:
		t.Fatalf("fillEveryField: no rule for %s", v.Type())
	}
}

// TestCodecCoversEveryField: a field added to Request or Response (or to
// anything inside them) without being added to codec.go would be dropped
// silently by Encode; with every field set, the hand codec must still
// write msgpack/v5's bytes and read them back whole.
func TestCodecCoversEveryField(t *testing.T) {
	var q Request
	fillEveryField(t, reflect.ValueOf(&q).Elem())
	checkMessage(t, q, true, decodeRequest)
	var p Response
	fillEveryField(t, reflect.ValueOf(&p).Elem())
	checkMessage(t, p, true, decodeResponse)
}
