package resp

import (
	"bytes"
	"io"
	"strconv"
)

// The request parser. redcon's own reader is not used: in v1.6.4 a bulk
// length near 2^63 makes it index out of range (a panic on a goroutine
// redcon does not recover, which takes the whole node down), and a huge
// multibulk count makes it spin for hours. This parser checks every length
// against MaxCommandBytes before it buffers anything, so a hostile frame costs
// a protocol error, never memory or a crash.

const (
	// maxArgs bounds the number of arguments of one command.
	maxArgs = 1 << 20
	// maxInline bounds an inline (telnet-style) command line, as Redis's
	// PROTO_INLINE_MAX_SIZE does.
	maxInline = 64 << 10
	// maxLenLine bounds a "*N" or "$N" header line (sign, 19 digits, CRLF).
	maxLenLine = 24
	// initialBuffer is the read buffer of a fresh connection; it grows for
	// large commands and shrinks back once they are done.
	initialBuffer = 16 << 10
)

// protocolError is a malformed request. The connection answers it with
// "-ERR Protocol error: ..." and is closed, as Redis does: after a framing
// error the rest of the stream cannot be trusted.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "Protocol error: " + e.msg }

// command is one parsed request. args alias the reader's buffer and are valid
// until the next readBatch.
type command struct {
	args [][]byte
	spec *spec

	argStart, argEnd int
}

// reader parses RESP2 requests (arrays of bulk strings, plus inline commands
// as telnet and redis-cli send them) from a connection.
type reader struct {
	rd  io.Reader
	max int // MaxCommandBytes

	// buf[r:w] is received, unparsed data.
	buf  []byte
	r, w int

	// readErr is an error rd returned along with data; it is reported once
	// that data has been parsed.
	readErr error
	// badFrame is a protocol error found after complete commands of the
	// same batch; it is reported by the next readBatch.
	badFrame error

	argv [][]byte
	cmds []command

	// part is the array being parsed when its end has not arrived yet.
	part partial
}

// partial is the state of an incompletely received array command.
type partial struct {
	active bool
	count  int   // arguments announced
	pos    int   // where the next argument starts, from the command's start
	bounds []int // start, end of each argument received, from the command's start
}

func newReader(rd io.Reader, maxCommand int) *reader {
	return &reader{rd: rd, max: maxCommand, buf: make([]byte, initialBuffer)}
}

// readBatch returns every complete command that has arrived, reading from
// the connection until there is at least one. The commands stay valid until
// the next call. Errors are either *protocolError or the connection's own.
func (p *reader) readBatch() ([]command, error) {
	p.argv = p.argv[:0]
	p.cmds = p.cmds[:0]
	if p.badFrame != nil {
		return nil, p.badFrame
	}
	if p.r == p.w {
		p.r, p.w = 0, 0
		if len(p.buf) > 4*initialBuffer {
			// A large command is done; do not keep its buffer.
			p.buf = make([]byte, initialBuffer)
		}
	}
	for {
		for p.r < p.w {
			n, err := p.parseOne(p.buf[p.r:p.w])
			if err != nil {
				if len(p.cmds) == 0 {
					return nil, err
				}
				// Run the commands before the bad frame first, as
				// Redis does; report the error on the next call.
				p.badFrame = err
				break
			}
			if n == 0 {
				break
			}
			p.r += n
		}
		if len(p.cmds) > 0 {
			for i := range p.cmds {
				c := &p.cmds[i]
				c.args = p.argv[c.argStart:c.argEnd:c.argEnd]
			}
			return p.cmds, nil
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more data, first moving unparsed bytes to the front and growing
// the buffer when it is full.
func (p *reader) fill() error {
	if p.readErr != nil {
		return p.readErr
	}
	if p.r > 0 {
		p.w = copy(p.buf, p.buf[p.r:p.w])
		p.r = 0
	}
	if p.w == len(p.buf) {
		// Only an incomplete command is buffered, and parseOne has
		// checked that it is no larger than max (or maxInline), so the
		// buffer never needs to grow past that (plus a header line).
		limit := max(p.max, maxInline) + maxLenLine
		if len(p.buf) >= limit {
			return &protocolError{"request too large"}
		}
		n := min(2*len(p.buf), limit)
		nb := make([]byte, n)
		copy(nb, p.buf[:p.w])
		p.buf = nb
	}
	n, err := p.rd.Read(p.buf[p.w:])
	p.w += n
	if err != nil {
		if n > 0 {
			p.readErr = err
			return nil
		}
		return err
	}
	return nil
}

// parseOne parses the command at the start of b. It returns the number of
// bytes consumed, 0 when the command is not complete yet. A command with no
// arguments ("*0", an empty line) is consumed without adding a command.
//
// The parse of an incomplete array resumes where it stopped when more data
// arrives (p.part), so a large command trickling in costs linear, not
// quadratic, time. Its arguments are kept as offsets from the command's
// start, because fill may move the command in the buffer.
func (p *reader) parseOne(b []byte) (int, error) {
	if !p.part.active {
		if b[0] != '*' {
			return p.parseInline(b)
		}
		count, pos, err := parseHeader(b, 0, "multibulk")
		if err != nil || pos == 0 {
			return 0, err
		}
		if count <= 0 {
			return pos, nil
		}
		if count > maxArgs {
			return 0, &protocolError{"invalid multibulk length"}
		}
		p.part = partial{active: true, count: count, pos: pos, bounds: p.part.bounds[:0]}
	}
	pt := &p.part
	for len(pt.bounds) < 2*pt.count {
		pos := pt.pos
		if pos >= len(b) {
			return 0, nil
		}
		if b[pos] != '$' {
			return 0, &protocolError{"expected '$', got '" + printable(b[pos]) + "'"}
		}
		size, next, err := parseHeader(b, pos, "bulk")
		if err != nil || next == 0 {
			return 0, err
		}
		if size < 0 {
			return 0, &protocolError{"invalid bulk length"}
		}
		if size > p.max-next {
			return 0, &protocolError{"command larger than " + strconv.Itoa(p.max) + " bytes (proto-max-bulk-len)"}
		}
		end := next + size
		if end+2 > len(b) {
			return 0, nil
		}
		if b[end] != '\r' || b[end+1] != '\n' {
			return 0, &protocolError{"bulk not followed by CRLF"}
		}
		pt.bounds = append(pt.bounds, next, end)
		pt.pos = end + 2
	}
	mark := len(p.argv)
	for i := 0; i < len(pt.bounds); i += 2 {
		s, e := pt.bounds[i], pt.bounds[i+1]
		p.argv = append(p.argv, b[s:e:e])
	}
	p.cmds = append(p.cmds, command{argStart: mark, argEnd: len(p.argv)})
	pt.active = false
	if cap(pt.bounds) > 1024 {
		pt.bounds = nil
	}
	return pt.pos, nil
}

// parseHeader parses the "*N\r\n" or "$N\r\n" line at b[at:]. It returns N
// and the position after the line, or next == 0 when the line is not
// complete yet.
func parseHeader(b []byte, at int, what string) (n, next int, err error) {
	line := b[at+1:]
	if len(line) > maxLenLine {
		line = line[:maxLenLine]
	}
	i := bytes.IndexByte(line, '\n')
	if i < 0 {
		if len(line) == maxLenLine {
			return 0, 0, &protocolError{"invalid " + what + " length"}
		}
		return 0, 0, nil
	}
	if i == 0 || line[i-1] != '\r' {
		return 0, 0, &protocolError{"invalid " + what + " length"}
	}
	n, ok := parseLength(line[:i-1])
	if !ok {
		return 0, 0, &protocolError{"invalid " + what + " length"}
	}
	return n, at + 1 + i + 1, nil
}

// parseLength parses a decimal integer of at most 18 digits (so it cannot
// overflow), with an optional leading minus.
func parseLength(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return "\\x" + strconv.FormatUint(uint64(c), 16)
}

// parseInline parses a telnet-style command line: arguments separated by
// spaces or tabs, with "double" (C escapes, \xHH) or 'single' quotes, as
// redis-server's sdssplitargs does.
func (p *reader) parseInline(b []byte) (int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > maxInline {
			return 0, &protocolError{"too big inline request"}
		}
		return 0, nil
	}
	if i > maxInline {
		return 0, &protocolError{"too big inline request"}
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	mark := len(p.argv)
	args, ok := splitArgs(line)
	if !ok {
		return 0, &protocolError{"unbalanced quotes in request"}
	}
	if len(args) > 0 {
		p.argv = append(p.argv, args...)
		p.cmds = append(p.cmds, command{argStart: mark, argEnd: len(p.argv)})
	}
	return i + 1, nil
}

// splitArgs splits an inline command line. Inline commands are rare (a
// person typing at telnet), so each argument gets its own allocation.
func splitArgs(line []byte) ([][]byte, bool) {
	var args [][]byte
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, true
		}
		var arg []byte
		switch line[i] {
		case '"':
			i++
			for {
				if i >= len(line) {
					return nil, false
				}
				c := line[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(line) {
					i++
					switch e := line[i]; e {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					case 'x':
						if i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]) {
							c = unhex(line[i+1])<<4 | unhex(line[i+2])
							i += 2
						} else {
							c = 'x'
						}
					default:
						c = e
					}
				}
				arg = append(arg, c)
				i++
			}
		case '\'':
			i++
			for {
				if i >= len(line) {
					return nil, false
				}
				c := line[i]
				if c == '\'' {
					i++
					break
				}
				if c == '\\' && i+1 < len(line) && line[i+1] == '\'' {
					i++
					c = '\''
				}
				arg = append(arg, c)
				i++
			}
		default:
			start := i
			for i < len(line) && !isSpace(line[i]) {
				i++
			}
			arg = append([]byte(nil), line[start:i]...)
		}
		if i < len(line) && !isSpace(line[i]) {
			// A closing quote must be followed by a space or the end.
			return nil, false
		}
		if arg == nil {
			arg = []byte{}
		}
		args = append(args, arg)
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
