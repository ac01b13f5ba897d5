package mpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxDepth bounds how deeply Skip lets arrays and maps nest. Project
// messages nest four or five levels; anything much deeper is hostile.
const MaxDepth = 32

// Errors the Reader returns, wrapped with the offset where they happened.
var (
	// ErrShort means the input ends before the value does, or announces a
	// length (or element count) larger than what is left of it.
	ErrShort = errors.New("mpack: input too short")
	// ErrType means the next value is not of the type asked for.
	ErrType = errors.New("mpack: unexpected type")
	// ErrRange means an integer does not fit the type asked for.
	ErrRange = errors.New("mpack: integer out of range")
	// ErrDepth means arrays and maps nest deeper than MaxDepth.
	ErrDepth = errors.New("mpack: nested too deep")
)

// Reader reads msgpack values one after the other from a byte slice. It
// never reads past the slice, and every length a header announces is
// checked against the bytes left before anything is allocated for it.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader at the start of b. The Reader keeps b: slices
// returned by ReadStringBytes point into it.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Offset is how many bytes have been consumed.
func (r *Reader) Offset() int { return r.off }

// Len is how many bytes are left.
func (r *Reader) Len() int { return len(r.b) - r.off }

func (r *Reader) errShort() error {
	return fmt.Errorf("%w at offset %d", ErrShort, r.off)
}

func (r *Reader) errType(want string, c byte) error {
	return fmt.Errorf("%w: want %s, found 0x%02x at offset %d", ErrType, want, c, r.off-1)
}

// IsNil reports whether the next value is nil, without consuming it.
func (r *Reader) IsNil() bool { return r.off < len(r.b) && r.b[r.off] == codeNil }

// ReadNil consumes the next value if it is nil and reports whether it was.
func (r *Reader) ReadNil() bool {
	if r.IsNil() {
		r.off++
		return true
	}
	return false
}

func (r *Reader) next() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errShort()
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// fixed reads n bytes as a big-endian unsigned integer (n is 1, 2, 4 or 8).
func (r *Reader) fixed(n int) (uint64, error) {
	if len(r.b)-r.off < n {
		return 0, r.errShort()
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// count checks that n elements, each taking at least perElem bytes, can
// still be in the input, and converts n to int.
func (r *Reader) count(n uint64, perElem uint64) (int, error) {
	if n > uint64(r.Len())/perElem {
		return 0, fmt.Errorf("%w: %d elements announced at offset %d, %d bytes left", ErrShort, n, r.off, r.Len())
	}
	return int(n), nil
}

// ReadMapHeader reads a map header and returns its number of key/value
// pairs. Nil reads as an empty map, with isNil set; msgpack/v5 decoded nil
// into a struct as its zero value.
func (r *Reader) ReadMapHeader() (n int, isNil bool, err error) {
	c, err := r.next()
	if err != nil {
		return 0, false, err
	}
	var m uint64
	switch {
	case c&0xf0 == 0x80:
		m = uint64(c & 0x0f)
	case c == codeMap16:
		m, err = r.fixed(2)
	case c == codeMap32:
		m, err = r.fixed(4)
	case c == codeNil:
		return 0, true, nil
	default:
		return 0, false, r.errType("map", c)
	}
	if err != nil {
		return 0, false, err
	}
	n, err = r.count(m, 2)
	return n, false, err
}

// ReadArrayHeader reads an array header and returns its number of
// elements. Nil reads as an empty array, with isNil set: a nil slice is
// encoded as nil, and callers keep the distinction.
func (r *Reader) ReadArrayHeader() (n int, isNil bool, err error) {
	c, err := r.next()
	if err != nil {
		return 0, false, err
	}
	var m uint64
	switch {
	case c&0xf0 == 0x90:
		m = uint64(c & 0x0f)
	case c == codeArray16:
		m, err = r.fixed(2)
	case c == codeArray32:
		m, err = r.fixed(4)
	case c == codeNil:
		return 0, true, nil
	default:
		return 0, false, r.errType("array", c)
	}
	if err != nil {
		return 0, false, err
	}
	n, err = r.count(m, 1)
	return n, false, err
}

// ReadMap reads a map with string keys, calling field once per key with
// the reader positioned at the key's value, which field must read or Skip.
// Errors say which key failed. The key slice points into the input.
func (r *Reader) ReadMap(field func(key []byte) error) error {
	n, _, err := r.ReadMapHeader()
	if err != nil {
		return err
	}
	for range n {
		k, err := r.ReadStringBytes()
		if err != nil {
			return fmt.Errorf("key: %w", err)
		}
		if err := field(k); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

// ReadStringBytes reads a string or a binary (msgpack/v5 accepted either
// for either) and returns its bytes without copying: the slice points into
// the input and is only valid as long as it is. Nil reads as nil.
func (r *Reader) ReadStringBytes() ([]byte, error) {
	c, err := r.next()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == codeStr8 || c == codeBin8:
		n, err = r.fixed(1)
	case c == codeStr16 || c == codeBin16:
		n, err = r.fixed(2)
	case c == codeStr32 || c == codeBin32:
		n, err = r.fixed(4)
	case c == codeNil:
		return nil, nil
	default:
		return nil, r.errType("string or binary", c)
	}
	if err != nil {
		return nil, err
	}
	if n > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: %d bytes announced at offset %d, %d left", ErrShort, n, r.off, r.Len())
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p, nil
}

// ReadString reads a string (or binary; nil reads as "").
func (r *Reader) ReadString() (string, error) {
	p, err := r.ReadStringBytes()
	return string(p), err
}

// ReadBytes reads a binary (or string) into a new slice the caller may keep.
// Nil reads as a nil slice and an empty binary as an empty, non-nil one, as
// msgpack/v5 decoded them.
func (r *Reader) ReadBytes() ([]byte, error) {
	p, err := r.ReadStringBytes()
	if p == nil || err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(p)), p...), nil
}

// ReadBool reads true or false.
func (r *Reader) ReadBool() (bool, error) {
	c, err := r.next()
	if err != nil {
		return false, err
	}
	switch c {
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	}
	return false, r.errType("bool", c)
}

// readInteger reads any msgpack integer. neg reports a negative value, in
// which case int64(v) is the value; otherwise v is.
func (r *Reader) readInteger() (v uint64, neg bool, err error) {
	c, err := r.next()
	if err != nil {
		return 0, false, err
	}
	switch {
	case c <= 0x7f:
		return uint64(c), false, nil
	case c >= 0xe0:
		return uint64(int64(int8(c))), true, nil
	}
	switch c {
	case codeUint8:
		v, err = r.fixed(1)
	case codeUint16:
		v, err = r.fixed(2)
	case codeUint32:
		v, err = r.fixed(4)
	case codeUint64:
		v, err = r.fixed(8)
	case codeInt8:
		v, err = r.fixed(1)
		v = uint64(int64(int8(v)))
	case codeInt16:
		v, err = r.fixed(2)
		v = uint64(int64(int16(v)))
	case codeInt32:
		v, err = r.fixed(4)
		v = uint64(int64(int32(v)))
	case codeInt64:
		v, err = r.fixed(8)
	default:
		return 0, false, r.errType("integer", c)
	}
	// Only the signed forms can hold a negative value; a uint64 above
	// MaxInt64 is positive.
	neg = c >= codeInt8 && c <= codeInt64 && int64(v) < 0
	return v, neg, err
}

// ReadUint reads an integer of any msgpack form and refuses a negative one.
func (r *Reader) ReadUint() (uint64, error) {
	start := r.off
	v, neg, err := r.readInteger()
	if err != nil {
		return 0, err
	}
	if neg {
		return 0, fmt.Errorf("%w: %d is negative, at offset %d", ErrRange, int64(v), start)
	}
	return v, nil
}

// ReadInt reads an integer of any msgpack form and refuses one above
// math.MaxInt64.
func (r *Reader) ReadInt() (int64, error) {
	start := r.off
	v, neg, err := r.readInteger()
	if err != nil {
		return 0, err
	}
	if !neg && v > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %d overflows int64, at offset %d", ErrRange, v, start)
	}
	return int64(v), nil
}

// Skip consumes the next value whatever it is, including extensions,
// floats and timestamps. It walks nested arrays and maps with an explicit
// stack rather than recursion, and refuses nesting deeper than MaxDepth.
func (r *Reader) Skip() error {
	// stack holds, for each enclosing container, how many of its elements
	// are still to come; left is that count for the innermost level.
	var stack [MaxDepth]uint64
	depth := 0
	left := uint64(1)
	for {
		for left == 0 {
			if depth == 0 {
				return nil
			}
			depth--
			left = stack[depth]
		}
		left--
		c, err := r.next()
		if err != nil {
			return err
		}
		var (
			skip  uint64 // payload bytes that follow
			elems uint64 // elements of an array or map that follow
			open  bool
		)
		switch {
		case c <= 0x7f || c >= 0xe0 || c == codeNil || c == codeFalse || c == codeTrue:
		case c <= 0x8f:
			elems, open = 2*uint64(c&0x0f), true
		case c <= 0x9f:
			elems, open = uint64(c&0x0f), true
		case c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			switch c {
			case codeBin8, codeStr8:
				skip, err = r.fixed(1)
			case codeBin16, codeStr16:
				skip, err = r.fixed(2)
			case codeBin32, codeStr32:
				skip, err = r.fixed(4)
			case 0xc7, 0xc8, 0xc9: // ext8/16/32: length, then type byte and data
				skip, err = r.fixed(1 << (c - 0xc7))
				skip++
			case codeUint8, codeInt8:
				skip = 1
			case codeUint16, codeInt16:
				skip = 2
			case 0xca, codeUint32, codeInt32: // 0xca: float32
				skip = 4
			case 0xcb, codeUint64, codeInt64: // 0xcb: float64
				skip = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16, plus the type byte
				skip = 1 + 1<<(c-0xd4)
			case codeArray16:
				elems, err = r.fixed(2)
				open = true
			case codeArray32:
				elems, err = r.fixed(4)
				open = true
			case codeMap16:
				elems, err = r.fixed(2)
				elems *= 2
				open = true
			case codeMap32:
				elems, err = r.fixed(4)
				elems *= 2
				open = true
			default: // 0xc1 is never used
				return fmt.Errorf("%w: invalid byte 0x%02x at offset %d", ErrType, c, r.off-1)
			}
			if err != nil {
				return err
			}
		}
		if skip > uint64(r.Len()) {
			return fmt.Errorf("%w: %d bytes announced at offset %d, %d left", ErrShort, skip, r.off, r.Len())
		}
		r.off += int(skip)
		if !open || elems == 0 {
			continue
		}
		// Every element takes at least one byte.
		if _, err := r.count(elems, 1); err != nil {
			return err
		}
		if depth == MaxDepth {
			return fmt.Errorf("%w: more than %d levels at offset %d", ErrDepth, MaxDepth, r.off)
		}
		stack[depth] = left
		depth++
		left = elems
	}
}
