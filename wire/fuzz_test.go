package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/vclock"
)

// seedRequests are valid requests of every shape, so the fuzzer starts from
// real messages and mutates their fields.
func seedRequests() []Request {
	obj := &vclock.Object{
		Clock:    vclock.VV{{Actor: "n1.abc", Counter: 3}},
		Siblings: []vclock.Sibling{{Dot: vclock.Dot{Actor: "n1.abc", Counter: 3}, Value: []byte("v")}},
	}
	return []Request{
		{Op: OpRead, From: "n1", Partition: 7, Key: []byte("k")},
		{Op: OpWrite, From: "n2", Partition: 1023, Key: []byte("k"), Object: obj, HintFor: "n3"},
		{Op: OpStrongWrite, Key: []byte("k"), Strong: &vclock.StrongWrite{Value: []byte("s")}},
		{Op: OpCoordinate, Key: []byte{0, 0xff}, Client: &ClientOp{Value: []byte("v"), W: 2, TimeoutMs: 1500}},
		{Op: OpTreeLevel, Partition: 5, Level: 2, Indices: []int{0, 1, 2}},
		{Op: OpSegment, Partition: 5, Indices: []int{4}},
		{Op: OpFetch, Partition: 5, Keys: [][]byte{[]byte("a"), []byte("b")}},
		{Op: OpMergeBatch, Partition: 5, Objects: []KeyObject{{Key: []byte("a"), Object: *obj}}},
		{Op: OpTransfer, Partition: 9, Objects: []KeyObject{{Key: []byte("a"), Object: *obj}}, Cursor: []byte("a")},
		{Op: OpPing, From: "n1"},
		{Op: OpHolds, Partition: 3},
		{Op: OpWriteBatch, SentAt: 7, Items: []WriteItem{{Partition: 2, Key: []byte("a"), Object: *obj, SentAt: 5}, {Partition: 900, Key: []byte("b"), Object: *obj}}},
	}
}

// FuzzDecodeRequest feeds arbitrary bytes to the decoder every RPC request
// goes through. It must never panic; whatever it accepts must satisfy the
// checks it promises (a known op, a partition in range) and survive an
// encode/decode round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, r := range seedRequests() {
		b, err := Encode(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})                  // array32 claiming 4G elements
	f.Add([]byte{0x81, 0xa1, 'k', 0xc6, 0xff, 0xff, 0xff, 0xff}) // bin32 claiming 4 GiB
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if r.Op == 0 || r.Op >= opEnd {
			t.Fatalf("accepted unknown op %d", r.Op)
		}
		if r.Partition < 0 || r.Partition > 1<<16-1 {
			t.Fatalf("accepted partition %d", r.Partition)
		}
		again, err := Encode(&r)
		if err != nil {
			t.Fatalf("re-encoding an accepted request: %v", err)
		}
		if ref, err := msgpack.Marshal(&r); err != nil || !bytes.Equal(again, ref) {
			t.Fatalf("hand encoding differs from msgpack/v5:\n%x\n%x (%v)", again, ref, err)
		}
		r2, err := DecodeRequest(again)
		if err != nil {
			t.Fatalf("re-decoding an accepted request: %v", err)
		}
		third, err := Encode(&r2)
		if err != nil || !bytes.Equal(again, third) {
			t.Fatalf("round trip changed the request:\n%x\n%x", again, third)
		}
	})
}

// FuzzDecodeResponse: no answer from a peer, however malformed, panics the
// caller; an accepted one re-encodes to msgpack/v5's bytes and decodes
// back to itself.
func FuzzDecodeResponse(f *testing.F) {
	obj := vclock.Object{Clock: vclock.VV{{Actor: "n1.abc", Counter: 1}}, Siblings: []vclock.Sibling{{Dot: vclock.Dot{Actor: "n1.abc", Counter: 1}, Value: []byte("v")}}}
	for _, r := range []Response{
		{Found: true, Object: &obj},
		{Client: &ClientResult{Object: obj, Replicas: 3, Acks: 2, Code: CodeUnavailable, Message: "m", Needed: 2}},
		{Hashes: []uint64{1, 2, 3}, KeyHashes: []KeyHash{{Key: []byte("a"), Hash: 9}}},
		{Objects: []KeyObject{{Key: []byte("a"), Object: obj}}, Cursor: []byte("a"), Done: true, Count: 1},
	} {
		b, err := Encode(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		again, err := Encode(&r)
		if err != nil {
			t.Fatalf("re-encoding an accepted response: %v", err)
		}
		if ref, err := msgpack.Marshal(&r); err != nil || !bytes.Equal(again, ref) {
			t.Fatalf("hand encoding differs from msgpack/v5:\n%x\n%x (%v)", again, ref, err)
		}
		r2, err := DecodeResponse(again)
		if err != nil {
			t.Fatalf("re-decoding an accepted response: %v", err)
		}
		if third, _ := Encode(&r2); !bytes.Equal(again, third) {
			t.Fatalf("round trip changed the response:\n%x\n%x", again, third)
		}
	})
}

// lengthBombs are messages whose headers announce far more than they hold,
// or that nest too deep.
func lengthBombs() map[string][]byte {
	nested := bytes.Repeat([]byte{0x91}, 1<<16)
	nested = append(nested, 0x01)
	return map[string][]byte{
		"bin32 2 GiB":      {0x82, 0xa1, 'o', 0x01, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff, 'x'},
		"array32 of 2^28":  {0x82, 0xa1, 'o', 0x01, 0xa1, 'i', 0xdd, 0x10, 0x00, 0x00, 0x00, 0x01},
		"map32 of 2^32-1":  {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01},
		"str32 in a key":   {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff},
		"ext32":            {0x81, 0xa1, 'b', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
		"array16 too long": {0x81, 0xa2, 'k', 's', 0xdc, 0x00, 0x10, 0xc4, 0x00},
		"deep nesting":     nested,
		// Nesting inside a field the decoder does not know, which it skips.
		"deep unknown field": append([]byte{0x82, 0xa1, 'o', 0x01, 0xa1, 'z'}, nested...),
		"truncated uint64":   {0x81, 0xa1, 'o', 0xcf, 0x00},
		"invalid byte":       {0xc1},
	}
}

// TestLengthBombs: headers that announce far more than the message holds,
// or nest too deep, are refused before anything is allocated (msgpack/v5
// would allocate the announced size and the runtime would die of it).
func TestLengthBombs(t *testing.T) {
	for name, b := range lengthBombs() {
		if _, err := DecodeRequest(b); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: request decoded (%v)", name, err)
		}
		if _, err := DecodeResponse(b); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: response decoded (%v)", name, err)
		}
	}
	// Every well-formed message passes the check unchanged.
	for _, r := range seedRequests() {
		b, _ := Encode(&r)
		if err := checkLengths(b); err != nil {
			t.Errorf("op %d: %v", r.Op, err)
		}
		if _, err := DecodeRequest(b); err != nil {
			t.Errorf("op %d: %v", r.Op, err)
		}
	}
	// Values of every msgpack type pass.
	for _, v := range []any{nil, true, false, 1, -1, 200, -200, 70000, -70000, 1 << 40, -(1 << 40), uint64(1 << 63), 1.5, float32(2.5),
		"", "short", string(bytes.Repeat([]byte("s"), 300)), string(bytes.Repeat([]byte("s"), 70000)), []byte{}, bytes.Repeat([]byte{1}, 300),
		bytes.Repeat([]byte{1}, 70000), []any{1, "a", []any{}, map[string]any{}}, make([]int, 20), make([]int, 70000), map[string]int{"a": 1},
		map[int]any{1: []int{1, 2}, 2: map[string]any{"x": nil}}} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkLengths(b); err != nil {
			t.Errorf("%T %.20v: %v", v, v, err)
		}
	}
	for _, v := range []any{msgpack.RawMessage{0xd4, 0x01, 0x02}, msgpack.RawMessage{0xc7, 0x03, 0x01, 1, 2, 3}, msgpack.RawMessage{0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}} {
		b, _ := msgpack.Marshal(v)
		if err := checkLengths(b); err != nil {
			t.Errorf("ext %x: %v", b, err)
		}
	}
}
