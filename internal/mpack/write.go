// Package mpack writes and reads msgpack by hand, for the few message types
// on quorumkv's hot paths (node-to-node RPC envelopes, stored objects).
//
// The reflective codec (vmihailenco/msgpack/v5) spent a fifth of a loaded
// node's CPU looking up struct fields by type; callers here know their
// fields, so they append them directly and read them with a Reader that
// allocates nothing but what the caller keeps.
//
// The writers reproduce the byte forms msgpack/v5 chooses, so a
// hand-encoded message is byte for byte what the reflective encoder wrote
// (stored objects and mixed-version clusters depend on that). The Reader
// accepts every form msgpack allows for a value, checks each announced
// length against the bytes actually present before allocating, and bounds
// nesting, so a short hostile message can neither make it allocate much
// nor overflow the stack.
//
// mpack imports nothing from the project: it is the bottom layer.
package mpack

import "math"

// Type bytes of the msgpack format that the writers emit.
const (
	codeNil     = 0xc0
	codeFalse   = 0xc2
	codeTrue    = 0xc3
	codeBin8    = 0xc4
	codeBin16   = 0xc5
	codeBin32   = 0xc6
	codeUint8   = 0xcc
	codeUint16  = 0xcd
	codeUint32  = 0xce
	codeUint64  = 0xcf
	codeInt8    = 0xd0
	codeInt16   = 0xd1
	codeInt32   = 0xd2
	codeInt64   = 0xd3
	codeStr8    = 0xd9
	codeStr16   = 0xda
	codeStr32   = 0xdb
	codeArray16 = 0xdc
	codeArray32 = 0xdd
	codeMap16   = 0xde
	codeMap32   = 0xdf
)

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, codeNil) }

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

// AppendMapHeader appends the header of a map of n key/value pairs; the
// caller appends the 2n keys and values.
func AppendMapHeader(b []byte, n int) []byte { return appendHeader(b, n, 0x80, codeMap16, codeMap32) }

// AppendArrayHeader appends the header of an array of n elements.
func AppendArrayHeader(b []byte, n int) []byte {
	return appendHeader(b, n, 0x90, codeArray16, codeArray32)
}

// appendHeader appends a map or array header: the fix form (fix|n) below
// 16, else the 16- or 32-bit form.
func appendHeader(b []byte, n int, fix, c16, c32 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return append16(b, c16, uint16(n))
	}
	return append32(b, c32, uint32(n))
}

// AppendUint appends n in the smallest form that holds it (1, 2, 3, 5 or 9
// bytes), as msgpack/v5 writes Go uint and int fields.
func AppendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, codeUint8, byte(n))
	case n <= math.MaxUint16:
		return append16(b, codeUint16, uint16(n))
	case n <= math.MaxUint32:
		return append32(b, codeUint32, uint32(n))
	}
	return append64(b, codeUint64, n)
}

// AppendInt appends n in the smallest form that holds it.
func AppendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return AppendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, codeInt8, byte(n))
	case n >= math.MinInt16:
		return append16(b, codeInt16, uint16(n))
	case n >= math.MinInt32:
		return append32(b, codeInt32, uint32(n))
	}
	return append64(b, codeInt64, uint64(n))
}

// AppendUint8 appends n as a msgpack uint8 (2 bytes) whatever its value.
// msgpack/v5 keeps the width of sized Go integers (uint8, int64, uint64)
// instead of compacting them; byte-identical output must do the same.
func AppendUint8(b []byte, n uint8) []byte { return append(b, codeUint8, n) }

// AppendUint64 appends n as a msgpack uint64 (9 bytes) whatever its value.
func AppendUint64(b []byte, n uint64) []byte { return append64(b, codeUint64, n) }

// AppendInt64 appends n as a msgpack int64 (9 bytes) whatever its value.
func AppendInt64(b []byte, n int64) []byte { return append64(b, codeInt64, uint64(n)) }

// AppendString appends s as a msgpack string.
func AppendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, codeStr8, byte(n))
	case n <= math.MaxUint16:
		b = append16(b, codeStr16, uint16(n))
	default:
		b = append32(b, codeStr32, uint32(n))
	}
	return append(b, s...)
}

// AppendBytes appends v as msgpack binary, and a nil slice as nil, so that
// nil and empty survive a round trip apart. There is no fixed-size binary
// form: even one byte takes a bin8 header.
func AppendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, codeNil)
	}
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, codeBin8, byte(n))
	case n <= math.MaxUint16:
		b = append16(b, codeBin16, uint16(n))
	default:
		b = append32(b, codeBin32, uint32(n))
	}
	return append(b, v...)
}

// MaxHeaderLen is the longest header (type byte plus length) of a string,
// binary, array or map, and MaxUintLen the longest integer; size estimates
// use them.
const (
	MaxHeaderLen = 5
	MaxUintLen   = 9
)

func append16(b []byte, code byte, n uint16) []byte {
	return append(b, code, byte(n>>8), byte(n))
}

func append32(b []byte, code byte, n uint32) []byte {
	return append(b, code, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func append64(b []byte, code byte, n uint64) []byte {
	return append(b, code, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
