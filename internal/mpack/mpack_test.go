package mpack

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// interestingInts are the boundaries between msgpack's integer forms.
var interestingInts = []int64{
	0, 1, 31, 32, 127, 128, 255, 256, 32767, 32768, 65535, 65536, math.MaxInt32, math.MaxInt32 + 1,
	math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
	-1, -31, -32, -33, -127, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64,
}

// randInt draws integers of every width, not just large ones.
func randInt(rng *rand.Rand) int64 {
	v := rng.Int64() >> rng.IntN(64)
	if rng.IntN(2) == 0 {
		v = -v
	}
	return v
}

// TestWritersMatchMsgpackV5: every writer emits what msgpack/v5 emits for
// the Go type it stands for.
func TestWritersMatchMsgpackV5(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ints := append([]int64(nil), interestingInts...)
	for range 20000 {
		ints = append(ints, randInt(rng))
	}
	for _, n := range ints {
		if got, want := AppendInt(nil, n), marshal(t, int(n)); !bytes.Equal(got, want) {
			t.Fatalf("AppendInt(%d) = %x, msgpack %x", n, got, want)
		}
		if got, want := AppendInt64(nil, n), marshal(t, n); !bytes.Equal(got, want) {
			t.Fatalf("AppendInt64(%d) = %x, msgpack %x", n, got, want)
		}
		u := uint64(n)
		if got, want := AppendUint(nil, u), marshal(t, uint(u)); !bytes.Equal(got, want) {
			t.Fatalf("AppendUint(%d) = %x, msgpack %x", u, got, want)
		}
		if got, want := AppendUint64(nil, u), marshal(t, u); !bytes.Equal(got, want) {
			t.Fatalf("AppendUint64(%d) = %x, msgpack %x", u, got, want)
		}
		if got, want := AppendUint8(nil, uint8(u)), marshal(t, uint8(u)); !bytes.Equal(got, want) {
			t.Fatalf("AppendUint8(%d) = %x, msgpack %x", uint8(u), got, want)
		}
	}
	for _, n := range []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000} {
		s := strings.Repeat("s", n)
		if got, want := AppendString(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(len %d) = %.8x, msgpack %.8x", n, got, want)
		}
		p := bytes.Repeat([]byte{7}, n)
		if got, want := AppendBytes(nil, p), marshal(t, p); !bytes.Equal(got, want) {
			t.Fatalf("AppendBytes(len %d) = %.8x, msgpack %.8x", n, got, want)
		}
		arr := AppendArrayHeader(nil, n)
		for range n {
			arr = AppendUint(arr, 0)
		}
		if want := marshal(t, make([]uint, n)); !bytes.Equal(arr, want) {
			t.Fatalf("array of %d: %.8x, msgpack %.8x", n, arr, want)
		}
		m := map[int]int{}
		for i := range n {
			m[i] = 0
		}
		if got, want := AppendMapHeader(nil, n), marshal(t, m); !bytes.Equal(got, want[:len(got)]) {
			t.Fatalf("map of %d: %x, msgpack %.8x", n, got, want)
		}
	}
	if got, want := AppendBytes(nil, nil), marshal(t, []byte(nil)); !bytes.Equal(got, want) {
		t.Fatalf("nil bytes: %x, msgpack %x", got, want)
	}
	for _, v := range []bool{false, true} {
		if got, want := AppendBool(nil, v), marshal(t, v); !bytes.Equal(got, want) {
			t.Fatalf("AppendBool(%v) = %x, msgpack %x", v, got, want)
		}
	}
	if got := AppendNil([]byte{1}); !bytes.Equal(got, []byte{1, 0xc0}) {
		t.Fatalf("AppendNil appended %x", got)
	}
}

// everyForm encodes n in every msgpack integer form that can hold it, as a
// writer other than this package may have chosen.
func everyForm(t *testing.T, n int64) [][]byte {
	var out [][]byte
	add := func(enc func(*msgpack.Encoder) error) {
		var buf bytes.Buffer
		if err := enc(msgpack.NewEncoder(&buf)); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	if n >= -32 && n <= 127 {
		out = append(out, []byte{byte(n)})
	}
	if n >= 0 {
		u := uint64(n)
		if u <= math.MaxUint8 {
			add(func(e *msgpack.Encoder) error { return e.EncodeUint8(uint8(u)) })
		}
		if u <= math.MaxUint16 {
			add(func(e *msgpack.Encoder) error { return e.EncodeUint16(uint16(u)) })
		}
		if u <= math.MaxUint32 {
			add(func(e *msgpack.Encoder) error { return e.EncodeUint32(uint32(u)) })
		}
		add(func(e *msgpack.Encoder) error { return e.EncodeUint64(u) })
	}
	if n >= math.MinInt8 && n <= math.MaxInt8 {
		add(func(e *msgpack.Encoder) error { return e.EncodeInt8(int8(n)) })
	}
	if n >= math.MinInt16 && n <= math.MaxInt16 {
		add(func(e *msgpack.Encoder) error { return e.EncodeInt16(int16(n)) })
	}
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		add(func(e *msgpack.Encoder) error { return e.EncodeInt32(int32(n)) })
	}
	add(func(e *msgpack.Encoder) error { return e.EncodeInt64(n) })
	return out
}

// TestReadIntegersInEveryForm: ReadInt and ReadUint take an integer in any
// width and sign form; ReadUint refuses negatives and ReadInt values above
// MaxInt64.
func TestReadIntegersInEveryForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ints := append([]int64(nil), interestingInts...)
	for range 5000 {
		ints = append(ints, randInt(rng))
	}
	for _, n := range ints {
		for _, b := range everyForm(t, n) {
			r := NewReader(b)
			got, err := r.ReadInt()
			if err != nil || got != n || r.Len() != 0 {
				t.Fatalf("ReadInt(%x) = %d, %v; want %d", b, got, err, n)
			}
			r = NewReader(b)
			u, err := r.ReadUint()
			switch {
			case n < 0 && !errors.Is(err, ErrRange):
				t.Fatalf("ReadUint(%x) of %d = %d, %v; want ErrRange", b, n, u, err)
			case n >= 0 && (err != nil || u != uint64(n)):
				t.Fatalf("ReadUint(%x) = %d, %v; want %d", b, u, err, n)
			}
		}
	}
	big := AppendUint64(nil, math.MaxUint64)
	if u, err := NewReader(big).ReadUint(); err != nil || u != math.MaxUint64 {
		t.Fatalf("ReadUint(MaxUint64) = %d, %v", u, err)
	}
	if _, err := NewReader(big).ReadInt(); !errors.Is(err, ErrRange) {
		t.Fatalf("ReadInt(MaxUint64) = %v; want ErrRange", err)
	}
	for _, b := range [][]byte{{0xa1, 'x'}, {0xc0}, {0xc3}, {0xca, 0, 0, 0, 0}} {
		if _, err := NewReader(b).ReadInt(); !errors.Is(err, ErrType) {
			t.Errorf("ReadInt(%x) = %v; want ErrType", b, err)
		}
	}
}

// TestReadStringsAndBytes: strings and binaries read interchangeably (v5
// did), nil reads as nil, an empty binary as an empty non-nil slice, and
// ReadBytes copies while ReadStringBytes does not allocate.
func TestReadStringsAndBytes(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		want := bytes.Repeat([]byte{'z'}, n)
		for _, b := range [][]byte{AppendString(nil, string(want)), AppendBytes(nil, want)} {
			r := NewReader(b)
			s, err := r.ReadString()
			if err != nil || s != string(want) || r.Len() != 0 {
				t.Fatalf("ReadString(%.8x): len %d, %v", b, len(s), err)
			}
			got, err := NewReader(b).ReadBytes()
			if err != nil || !bytes.Equal(got, want) || got == nil {
				t.Fatalf("ReadBytes(%.8x): %d bytes (nil %v), %v", b, len(got), got == nil, err)
			}
			if n > 0 && &got[0] == &b[len(b)-n] {
				t.Fatal("ReadBytes returned a slice of its input")
			}
		}
	}
	if p, err := NewReader([]byte{0xc0}).ReadBytes(); p != nil || err != nil {
		t.Fatalf("ReadBytes(nil) = %v, %v", p, err)
	}
	b := AppendString(nil, "actor")
	if a := testing.AllocsPerRun(100, func() {
		if _, err := NewReader(b).ReadStringBytes(); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("ReadStringBytes allocates %v times", a)
	}
	if _, err := NewReader([]byte{0x01}).ReadString(); !errors.Is(err, ErrType) {
		t.Fatalf("ReadString(1) = %v; want ErrType", err)
	}
}

func TestReadHeadersAndBool(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 65535, 65536} {
		b := AppendArrayHeader(nil, n)
		b = append(b, make([]byte, n)...)
		if got, isNil, err := NewReader(b).ReadArrayHeader(); got != n || isNil || err != nil {
			t.Fatalf("array header %d: %d, %v, %v", n, got, isNil, err)
		}
		b = AppendMapHeader(nil, n)
		b = append(b, make([]byte, 2*n)...)
		if got, isNil, err := NewReader(b).ReadMapHeader(); got != n || isNil || err != nil {
			t.Fatalf("map header %d: %d, %v, %v", n, got, isNil, err)
		}
	}
	if n, isNil, err := NewReader([]byte{0xc0}).ReadArrayHeader(); n != 0 || !isNil || err != nil {
		t.Fatalf("nil array: %d, %v, %v", n, isNil, err)
	}
	if n, isNil, err := NewReader([]byte{0xc0}).ReadMapHeader(); n != 0 || !isNil || err != nil {
		t.Fatalf("nil map: %d, %v, %v", n, isNil, err)
	}
	// A map of n pairs needs 2n bytes, not n.
	if _, _, err := NewReader([]byte{0x82, 0, 0, 0}).ReadMapHeader(); !errors.Is(err, ErrShort) {
		t.Fatalf("map of 2 pairs in 3 bytes: %v; want ErrShort", err)
	}
	for b, want := range map[byte]bool{0xc2: false, 0xc3: true} {
		if got, err := NewReader([]byte{b}).ReadBool(); got != want || err != nil {
			t.Fatalf("ReadBool(%x) = %v, %v", b, got, err)
		}
	}
	if _, err := NewReader([]byte{0x00}).ReadBool(); !errors.Is(err, ErrType) {
		t.Fatalf("ReadBool(0) = %v; want ErrType", err)
	}
	r := NewReader([]byte{0xc0, 0x01})
	if !r.IsNil() || !r.ReadNil() || r.IsNil() || r.ReadNil() || r.Offset() != 1 {
		t.Fatal("IsNil/ReadNil")
	}
}

// randValue builds a random msgpack value of every kind v5 writes,
// including floats, timestamps and extensions, nested up to depth.
func randValue(rng *rand.Rand, depth int) any {
	k := rng.IntN(12)
	if depth <= 0 && k >= 9 {
		k = rng.IntN(9)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return randInt(rng)
	case 3:
		return rng.Uint64()
	case 4:
		return rng.Float64()
	case 5:
		return float32(rng.Float64())
	case 6:
		return strings.Repeat("x", rng.IntN(300))
	case 7:
		return bytes.Repeat([]byte{1}, rng.IntN(300))
	case 8:
		ext := []msgpack.RawMessage{
			{0xd4, 1, 2}, {0xd5, 1, 2, 3}, {0xd6, 1, 1, 2, 3, 4}, {0xd7, 1, 1, 2, 3, 4, 5, 6, 7, 8},
			{0xd8, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {0xc7, 3, 1, 1, 2, 3},
			{0xc8, 0, 2, 1, 1, 2}, {0xc9, 0, 0, 0, 1, 1, 9},
			{0xd6, 0xff, 0, 0, 0, 1},                                               // timestamp 32
			{0xd7, 0xff, 0, 0, 0, 4, 0, 0, 0, 1},                                   // timestamp 64
			{0xc7, 12, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},                   // timestamp 96
			{0xdc, 0, 1, 0x01}, {0xdd, 0, 0, 0, 1, 0x01}, {0xde, 0, 1, 0x01, 0x02}, // wide headers
			{0xdf, 0, 0, 0, 1, 0x01, 0x02}, {0xd9, 1, 'a'}, {0xda, 0, 1, 'a'}, {0xdb, 0, 0, 0, 1, 'a'},
			{0xc5, 0, 1, 9}, {0xc6, 0, 0, 0, 1, 9},
		}
		return ext[rng.IntN(len(ext))]
	case 9:
		if rng.IntN(50) == 0 {
			return make([]int, 70000) // array32 of scalars
		}
		out := make([]any, rng.IntN(6))
		for i := range out {
			out[i] = randValue(rng, depth-1)
		}
		return out
	default:
		n := rng.IntN(6)
		if rng.IntN(20) == 0 {
			n = 17 // past fixmap
		}
		out := make(map[string]any, n)
		for i := range n {
			out[strings.Repeat("k", i)] = randValue(rng, depth-1)
		}
		return out
	}
}

// TestSkip: Skip consumes exactly one value of any kind, and refuses every
// truncation of one.
func TestSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		b := marshal(t, randValue(rng, 4))
		b = append(b, 0x2a) // the next value must be left alone
		r := NewReader(b)
		if err := r.Skip(); err != nil {
			t.Fatalf("value %d (%.16x): %v", i, b, err)
		}
		if r.Len() != 1 {
			t.Fatalf("value %d (%.16x): Skip left %d bytes, want 1", i, b, r.Len())
		}
		if len(b) > 2000 {
			continue // the truncation loop is quadratic
		}
		for cut := range len(b) - 1 {
			if err := NewReader(b[:cut]).Skip(); err == nil {
				t.Fatalf("value %d (%x) cut at %d: skipped", i, b, cut)
			}
		}
	}
}

func TestSkipDepth(t *testing.T) {
	nest := func(n int) []byte {
		return append(bytes.Repeat([]byte{0x91}, n), 0x01)
	}
	if err := NewReader(nest(MaxDepth)).Skip(); err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
	for _, n := range []int{MaxDepth + 1, 1 << 20} {
		if err := NewReader(nest(n)).Skip(); !errors.Is(err, ErrDepth) {
			t.Fatalf("%d levels: %v; want ErrDepth", n, err)
		}
	}
	// Maps count too, and empty containers open no level.
	deepMaps := append(bytes.Repeat([]byte{0x81, 0xa0}, MaxDepth+1), 0x01)
	if err := NewReader(deepMaps).Skip(); !errors.Is(err, ErrDepth) {
		t.Fatalf("%d maps: %v; want ErrDepth", MaxDepth+1, err)
	}
	flat := append([]byte{0xdc, 0x01, 0x00}, bytes.Repeat([]byte{0x90}, 256)...)
	if err := NewReader(flat).Skip(); err != nil {
		t.Fatalf("256 empty arrays: %v", err)
	}
}

// lengthBombs announce far more than they hold.
var lengthBombs = map[string][]byte{
	"bin32 2 GiB":        {0xc6, 0x7f, 0xff, 0xff, 0xff, 'x'},
	"str32 4 GiB":        {0xdb, 0xff, 0xff, 0xff, 0xff},
	"array32 of 2^32-1":  {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
	"map32 of 2^32-1":    {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01},
	"ext32":              {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
	"array16 too long":   {0xdc, 0x00, 0x10, 0xc4, 0x00},
	"fixarray too long":  {0x93, 0x01, 0x02},
	"fixmap too long":    {0x82, 0x01, 0x02, 0x03},
	"truncated uint64":   {0xcf, 0x00},
	"truncated fixext16": {0xd8, 0x01, 0x00},
}

// TestLengthBombsRefusedCheaply: every reader refuses a header announcing
// more than the input holds, and allocates next to nothing doing so. The
// negative control shows the measurement catches an allocation of the
// announced size (msgpack/v5 reading the same bytes unchecked).
func TestLengthBombsRefusedCheaply(t *testing.T) {
	reads := map[string]func(*Reader) error{
		"Skip":            (*Reader).Skip,
		"ReadBytes":       func(r *Reader) error { _, err := r.ReadBytes(); return err },
		"ReadString":      func(r *Reader) error { _, err := r.ReadString(); return err },
		"ReadArrayHeader": func(r *Reader) error { _, _, err := r.ReadArrayHeader(); return err },
		"ReadMapHeader":   func(r *Reader) error { _, _, err := r.ReadMapHeader(); return err },
	}
	for name, b := range lengthBombs {
		for rname, read := range reads {
			var err error
			if n := allocated(func() { err = read(NewReader(b)) }); n > 1<<16 {
				t.Errorf("%s: %s allocated %d bytes", name, rname, n)
			}
			if err == nil {
				t.Errorf("%s: %s accepted %x", name, rname, b)
			}
		}
	}
	bomb := []byte{0xc6, 0x01, 0x00, 0x00, 0x00, 'x'} // bin32 of 16 MiB
	if n := allocated(func() { _ = msgpack.Unmarshal(bomb, new([]byte)) }); n < 1<<24 {
		t.Fatalf("negative control: msgpack/v5 allocated only %d bytes for a 16 MiB binary header", n)
	}
}

// allocated returns how many bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzSkip: Skip never panics, never reads past its input, and whatever it
// skips msgpack/v5 skips too, to the same byte.
func FuzzSkip(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		b, _ := msgpack.Marshal(randValue(rng, 3))
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	for _, b := range lengthBombs {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		if err := r.Skip(); err != nil {
			return
		}
		if r.Len() < 0 || r.Offset() > len(b) {
			t.Fatalf("Skip ran past the input: offset %d of %d", r.Offset(), len(b))
		}
		// Only now is it safe to hand b to v5: every length is in bounds.
		br := bytes.NewReader(b)
		if err := msgpack.NewDecoder(br).Skip(); err != nil {
			t.Fatalf("Skip accepted %x, msgpack/v5 refused it: %v", b, err)
		}
		if v5 := len(b) - br.Len(); v5 != r.Offset() {
			t.Fatalf("Skip consumed %d bytes of %x, msgpack/v5 %d", r.Offset(), b, v5)
		}
	})
}
