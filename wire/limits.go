package wire

import (
	"encoding/binary"
	"fmt"
)

// maxNesting bounds how deep arrays and maps may nest in a message. Ours
// nest four or five levels; the decoder recurses once per level (also when
// it skips an unknown field), so a deep enough message would overflow the
// goroutine stack, which no recover catches.
const maxNesting = 32

// checkLengths walks the first msgpack value in b without decoding it and
// checks every length it announces against the bytes that are actually
// there: a string, binary or extension longer than the rest of the message,
// or an array or map with more elements than bytes left (each element takes
// at least one), is refused, as is nesting deeper than maxNesting.
//
// Why: msgpack/v5 allocates what a header announces before reading it
// (readN for []byte fields; growSliceValue for slices, whose alloc limit a
// flag test disables), so a 12-byte request announcing a 2 GiB binary or a
// 4-billion-element array makes the runtime throw "out of memory", a fatal
// error that takes the whole node down. With this check an allocation is at
// most proportional to the message, which the transport bounds
// (MaxFrameBytes).
func checkLengths(b []byte) error {
	pos := 0
	// pending[i] is how many values are still to come at depth i.
	pending := make([]uint64, 1, 8)
	pending[0] = 1
	need := func(n uint64) error {
		if n > uint64(len(b)-pos) {
			return fmt.Errorf("%w: %d bytes announced at offset %d, %d left", ErrDecode, n, pos, len(b)-pos)
		}
		return nil
	}
	readLen := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(b[pos])
		case 2:
			n = uint64(binary.BigEndian.Uint16(b[pos:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(b[pos:]))
		}
		pos += size
		return n, nil
	}
	skip := func(n uint64) error {
		if err := need(n); err != nil {
			return err
		}
		pos += int(n)
		return nil
	}
	open := func(elems uint64) error {
		if elems == 0 {
			return nil
		}
		if len(pending) >= maxNesting {
			return fmt.Errorf("%w: nested deeper than %d", ErrDecode, maxNesting)
		}
		// Every element takes at least one byte.
		if err := need(elems); err != nil {
			return err
		}
		pending = append(pending, elems)
		return nil
	}
	openMap := func(pairs uint64) error { return open(2 * pairs) }
	skipExt := func(n uint64) error { return skip(n + 1) }
	lenThen := func(size int, then func(uint64) error) error {
		n, err := readLen(size)
		if err != nil {
			return err
		}
		return then(n)
	}
	for len(pending) > 0 {
		top := len(pending) - 1
		if pending[top] == 0 {
			pending = pending[:top]
			continue
		}
		pending[top]--
		if err := need(1); err != nil {
			return err
		}
		c := b[pos]
		pos++
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			// fixint, nil, bool
		case c <= 0x8f: // fixmap
			err = open(2 * uint64(c&0x0f))
		case c <= 0x9f: // fixarray
			err = open(uint64(c & 0x0f))
		case c <= 0xbf: // fixstr
			err = skip(uint64(c & 0x1f))
		default:
			switch c {
			case 0xc4, 0xd9: // bin8, str8
				err = lenThen(1, skip)
			case 0xc5, 0xda: // bin16, str16
				err = lenThen(2, skip)
			case 0xc6, 0xdb: // bin32, str32
				err = lenThen(4, skip)
			case 0xc7: // ext8: length, type, data
				err = lenThen(1, skipExt)
			case 0xc8: // ext16
				err = lenThen(2, skipExt)
			case 0xc9: // ext32
				err = lenThen(4, skipExt)
			case 0xcc, 0xd0: // uint8, int8
				err = skip(1)
			case 0xcd, 0xd1: // uint16, int16
				err = skip(2)
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				err = skip(4)
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				err = skip(8)
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16 plus the type byte
				err = skip(1 + 1<<(c-0xd4))
			case 0xdc: // array16
				err = lenThen(2, open)
			case 0xdd: // array32
				err = lenThen(4, open)
			case 0xde: // map16
				err = lenThen(2, openMap)
			case 0xdf: // map32
				err = lenThen(4, openMap)
			default: // 0xc1 is never used
				err = fmt.Errorf("%w: invalid byte 0x%02x at offset %d", ErrDecode, c, pos-1)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckMsgpack reports whether b is safe to hand to a msgpack decoder: no
// length it announces exceeds the bytes present, and nesting is bounded.
// Every package that decodes msgpack from the network with msgpack/v5
// (gossip metadata) calls it first. DecodeRequest and DecodeResponse do
// not need it: their hand decoder checks each length as it reads it.
func CheckMsgpack(b []byte) error { return checkLengths(b) }
