package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// parseAll reads every command from r until EOF or an error, copying the
// arguments (they are only valid until the next batch).
func parseAll(r io.Reader, max int) ([][]string, error) {
	p := newReader(r, max)
	var out [][]string
	for {
		cmds, err := p.readBatch()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		for _, c := range cmds {
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = string(a)
			}
			out = append(out, args)
		}
	}
}

// chunky returns its data in pieces of random size (seeded), down to one
// byte, the way TCP may deliver it.
type chunky struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func (c *chunky) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+c.rng.Intn(c.max), len(b), len(c.data))
	copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestReaderParses(t *testing.T) {
	big := strings.Repeat("v", 40000)
	for _, tc := range []struct {
		in   string
		want string // fmt of [][]string, or "error: ..."
	}{
		{"*1\r\n$4\r\nPING\r\n", "[[PING]]"},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", "[[SET k ]]"},
		{"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", "[[GET a\r\nb]]"},
		{"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", "[[PING] [ECHO hi]]"},
		{"*0\r\n*-1\r\n*1\r\n$1\r\nx\r\n", "[[x]]"},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$40000\r\n" + big + "\r\n", "[[SET k " + big + "]]"},
		{"PING\r\n", "[[PING]]"},
		{"PING\n", "[[PING]]"},
		{"\r\n  \r\nPING\r\n", "[[PING]]"},
		{"set a 'b c' \"d\\te\\x41\\\"\"\r\n", "[[set a b c d\te" + "A\"]]"},
		{"echo '' \"\"\r\n", "[[echo  ]]"},
		{"echo 'it\\'s'\r\n", "[[echo it's]]"},
		{"PING", "[]"}, // incomplete at EOF: nothing
		{"*2\r\n$3\r\nGET\r\n", "[]"},
		{"echo \"a\r\n", "error: Protocol error: unbalanced quotes in request"},
		{"echo \"a\"b\r\n", "error: Protocol error: unbalanced quotes in request"},
		{"*1\r\n$3\r\nabc\r\r", "error: Protocol error: bulk not followed by CRLF"},
		{"*1\r\n:3\r\n", "error: Protocol error: expected '$', got ':'"},
		{"*1\r\n$\r\n", "error: Protocol error: invalid bulk length"},
		{"*\r\n", "error: Protocol error: invalid multibulk length"},
		{"*1\r\n$-1\r\n", "error: Protocol error: invalid bulk length"},
		{"*1\r\n$1\r\n\x00\r\n", "[[\x00]]"},
		{"*1048577\r\n", "error: Protocol error: invalid multibulk length"},
		{"*1\r\n$100001\r\n", "error: Protocol error: command larger than 100000 bytes (proto-max-bulk-len)"},
		{"*2\r\n$50000\r\n" + strings.Repeat("a", 50000) + "\r\n$49990\r\n", "error: Protocol error: command larger than 100000 bytes (proto-max-bulk-len)"},
	} {
		for _, chunk := range []int{0, 1, 7, 4096} {
			var r io.Reader = strings.NewReader(tc.in)
			if chunk > 0 {
				r = &chunky{data: []byte(tc.in), rng: rand.New(rand.NewSource(int64(chunk))), max: chunk}
			}
			cmds, err := parseAll(r, 100000)
			got := fmt.Sprint(cmds)
			if err != nil {
				got = "error: " + err.Error()
				var pe *protocolError
				if !errors.As(err, &pe) {
					got = "non-protocol " + got
				}
			}
			if got != tc.want {
				t.Errorf("%.60q (chunks of ≤%d):\n got %.200q\nwant %.200q", tc.in, chunk, got, tc.want)
			}
		}
	}
}

// TestReaderBufferIsBounded checks that a large command does not leave a
// large buffer behind and that a hostile length is refused before anything
// is buffered.
func TestReaderBufferIsBounded(t *testing.T) {
	in := "*2\r\n$4\r\nECHO\r\n$1000000\r\n" + strings.Repeat("x", 1000000) + "\r\n*1\r\n$4\r\nPING\r\n"
	p := newReader(strings.NewReader(in), 2<<20)
	var names []string
	for {
		cmds, err := p.readBatch()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			names = append(names, fmt.Sprintf("%s/%d", c.args[0], len(c.args[len(c.args)-1])))
		}
	}
	if fmt.Sprint(names) != "[ECHO/1000000 PING/4]" {
		t.Fatalf("commands %v", names)
	}
	if len(p.buf) > initialBuffer {
		t.Errorf("buffer is still %d bytes after the large command", len(p.buf))
	}
	p = newReader(strings.NewReader("*1\r\n$999999999999999999\r\n"), 1<<20)
	if _, err := p.readBatch(); err == nil || len(p.buf) > initialBuffer {
		t.Fatalf("hostile length: err %v, buffer %d", err, len(p.buf))
	}
}

// FuzzReader checks that no input panics the parser, and that how the input
// is split into reads never changes the result.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"set a 'b c' \"d\\x41\"\r\n",
		"*9223372036854775807\r\n$1\r\na\r\n",
		"*1\r\n$9223372036854775807\r\nabc\r\n",
		"*1\r\n$-9223372036854775808\r\n",
		"*-9223372036854775808\r\n",
		"*0\r\n*-1\r\n\r\n",
		"*2\r\n$1\r\na\r\n$",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole, werr := parseAll(bytes.NewReader(data), 4096)
		pieces, perr := parseAll(&chunky{data: data, rng: rand.New(rand.NewSource(int64(chunk))), max: int(chunk%16) + 1}, 4096)
		if (werr == nil) != (perr == nil) || fmt.Sprint(whole) != fmt.Sprint(pieces) {
			t.Fatalf("whole: %q, %v; in pieces: %q, %v", whole, werr, pieces, perr)
		}
	})
}
