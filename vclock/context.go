package vclock

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadContext is returned when a client context does not decode.
var ErrBadContext = errors.New("vclock: context does not decode")

// Limits on decoded contexts, so a hostile context cannot exhaust memory.
const (
	maxContextEntries = 1024
	maxActorLen       = 255
)

// EncodeContext renders a version vector as the opaque, URL-safe context
// string clients carry between a read and a write.
func EncodeContext(v VV) string {
	buf := make([]byte, 0, 8+len(v)*16)
	buf = binary.AppendUvarint(buf, uint64(len(v)))
	for _, e := range v {
		buf = binary.AppendUvarint(buf, uint64(len(e.Actor)))
		buf = append(buf, e.Actor...)
		buf = binary.AppendUvarint(buf, e.Counter)
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}

// DecodeContext parses a context made by EncodeContext. The empty string is
// the empty context. Errors wrap ErrBadContext.
func DecodeContext(s string) (VV, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", ErrBadContext, err)
	}
	n, k := binary.Uvarint(raw)
	if k <= 0 || n > maxContextEntries {
		return nil, fmt.Errorf("%w: bad entry count", ErrBadContext)
	}
	raw = raw[k:]
	out := make(VV, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(raw)
		if k <= 0 || l == 0 || l > maxActorLen || uint64(len(raw)-k) < l {
			return nil, fmt.Errorf("%w: bad actor at entry %d", ErrBadContext, i)
		}
		actor := string(raw[k : k+int(l)])
		raw = raw[k+int(l):]
		c, k2 := binary.Uvarint(raw)
		if k2 <= 0 || c == 0 {
			return nil, fmt.Errorf("%w: bad counter at entry %d", ErrBadContext, i)
		}
		raw = raw[k2:]
		if len(out) > 0 && out[len(out)-1].Actor >= actor {
			return nil, fmt.Errorf("%w: entries out of order", ErrBadContext)
		}
		out = append(out, Entry{Actor: actor, Counter: c})
	}
	if len(raw) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadContext, len(raw))
	}
	return out, nil
}

// Context returns the context a reader of o should carry to its next write.
func (o Object) Context() VV { return o.Clock }
