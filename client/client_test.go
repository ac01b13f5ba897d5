package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/wire"
)

// newTestClient starts h on an httptest server and returns a client for it.
func newTestClient(t *testing.T, h http.Handler, mod ...func(*Config)) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := DefaultConfig()
	cfg.Endpoints = []string{srv.URL}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, srv
}

// refEscape is an independent statement of the key encoding.
func refEscape(key []byte) string {
	if string(key) == "." || string(key) == ".." {
		return strings.Repeat("%2E", len(key))
	}
	var b strings.Builder
	for _, c := range key {
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func awkwardKeys() map[string][]byte {
	all := make([]byte, 1024)
	for i := range all {
		all[i] = byte(i)
	}
	return map[string][]byte{
		"plain":         []byte("user42"),
		"unreserved":    []byte("A-z_0.9~"),
		"slash":         []byte("a/b/c"),
		"leading slash": []byte("/a"),
		"space":         []byte("hello world"),
		"percent":       []byte("100%"),
		"escaped-look":  []byte("a%2Fb"),
		"query chars":   []byte("a?b=c&d#e+f"),
		"sub-delims":    []byte("!$&'()*+,;=:@"),
		"unicode":       []byte("ключ-日本-é"),
		"nul":           {0x00},
		"ff":            {0xff},
		"invalid utf8":  {0xc3, 0x28, 0xa0, 0xa1},
		"newline":       []byte("a\r\nb"),
		"dot":           []byte("."),
		"dotdot":        []byte(".."),
		"dot segments":  []byte("a/../b/./c"),
		"all bytes":     all,
		"1024 plain":    bytes.Repeat([]byte("k"), 1024),
		"1024 escaped":  bytes.Repeat([]byte{0xfe}, 1024),
	}
}

// TestKeyEscapingRoundTrip checks the exact path on the wire and that a Go
// ServeMux pattern /v1/kv/{key} decodes every awkward key back to its bytes.
func TestKeyEscapingRoundTrip(t *testing.T) {
	var mu sync.Mutex
	var seenPath, seenKey string
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		mu.Lock()
		seenPath, seenKey = r.URL.EscapedPath(), r.PathValue("key")
		mu.Unlock()
	}
	mux.HandleFunc("GET /v1/kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		_, _ = io.WriteString(w, r.PathValue("key"))
	})
	mux.HandleFunc("PUT /v1/kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/explain/{key}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		_ = json.NewEncoder(w).Encode(wire.Explain{Key: r.PathValue("key")})
	})
	c, _ := newTestClient(t, mux)
	ctx := context.Background()
	for name, key := range awkwardKeys() {
		t.Run(name, func(t *testing.T) {
			check := func(op, prefix string) {
				t.Helper()
				mu.Lock()
				defer mu.Unlock()
				if want := prefix + refEscape(key); seenPath != want {
					t.Errorf("%s: server saw path %q, want %q", op, seenPath, want)
				}
				if seenKey != string(key) {
					t.Errorf("%s: server decoded key %q, want %q", op, seenKey, key)
				}
			}
			res, err := c.Get(ctx, key, Options{})
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			check("GET", "/v1/kv/")
			if len(res.Values) != 1 || !bytes.Equal(res.Values[0], key) {
				t.Errorf("Get echoed %q, want %q", res.Values, key)
			}
			if _, err := c.Put(ctx, key, []byte("v"), Options{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			check("PUT", "/v1/kv/")
			if _, err := c.Delete(ctx, key, Options{}); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			check("DELETE", "/v1/kv/")
			ex, err := c.Explain(ctx, key)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			check("explain", "/v1/explain/")
			// wire.Explain.Key is a JSON string: encoding/json replaces
			// invalid UTF-8, so only valid keys survive the answer.
			if utf8.Valid(key) && ex.Key != string(key) {
				t.Errorf("Explain key %q, want %q", ex.Key, key)
			}
		})
	}
}

func TestEscapeKey(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"abc", "abc"},
		{"a/b", "a%2Fb"},
		{"a b", "a%20b"},
		{"%", "%25"},
		{"é", "%C3%A9"},
		{"\x00\xff", "%00%FF"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."},
		{"~-._", "~-._"},
	} {
		if got := EscapeKey([]byte(tc.key)); got != tc.want {
			t.Errorf("EscapeKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	for name, key := range awkwardKeys() {
		esc := EscapeKey(key)
		if esc != refEscape(key) {
			t.Errorf("%s: EscapeKey = %q, want %q", name, esc, refEscape(key))
		}
		back, err := url.PathUnescape(esc)
		if err != nil || back != string(key) {
			t.Errorf("%s: PathUnescape(EscapeKey) = %q, %v", name, back, err)
		}
	}
}

func TestBasePathKept(t *testing.T) {
	var got atomic.Value
	c, srv := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.EscapedPath())
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct{ base, key, want string }{
		{srv.URL + "/qkv/", "a/b", "/qkv/v1/kv/a%2Fb"},
		{srv.URL + "/q%20kv", "ab", "/q%20kv/v1/kv/ab"},
		{srv.URL + "/q%20kv", "a b", "/q%20kv/v1/kv/a%20b"},
	} {
		cc, err := New(Config{Endpoints: []string{tc.base}, HTTPClient: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cc.Put(context.Background(), []byte(tc.key), nil, Options{}); err != nil {
			t.Fatal(err)
		}
		if p := got.Load(); p != tc.want {
			t.Errorf("base %q key %q: path %q, want %q", tc.base, tc.key, p, tc.want)
		}
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := got.Load(); p != "/healthz" {
		t.Errorf("Health path %q", p)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New with no endpoints: no error")
	}
	_, err := New(Config{Endpoints: []string{"ftp://x", "http://", "http://u:p@h:1", "http://h:1/?q=1", "http://ok:1"}})
	if err == nil {
		t.Fatal("New with bad endpoints: no error")
	}
	for _, want := range []string{`endpoint 0 "ftp://x"`, `endpoint 1 "http://"`, `endpoint 2`, `endpoint 3`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "endpoint 4") {
		t.Errorf("error %q blames a good endpoint", err)
	}
	if err := (Config{Endpoints: []string{"%zz"}}).Validate(); err == nil {
		t.Error("Validate accepted an unparsable URL")
	}
	c, err := New(Config{Endpoints: []string{"127.0.0.1:7000", "https://h:7001/", " http://h:7002/p/ "}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:7000", "https://h:7001", "http://h:7002/p"}
	if got := c.Endpoints(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Endpoints() = %q, want %q", got, want)
	}
	d := DefaultConfig()
	if len(d.Endpoints) != 1 || d.Timeout != DefaultTimeout || d.Validate() != nil {
		t.Errorf("DefaultConfig() = %+v", d)
	}
}

func TestAtPicksEndpoints(t *testing.T) {
	var urls []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "node%d", i)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	c, err := New(Config{Endpoints: urls})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	node := func(cl *Client) string {
		t.Helper()
		res, err := cl.Get(context.Background(), []byte("k"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return string(res.Values[0])
	}
	for _, tc := range []struct {
		cl   *Client
		want int
	}{
		{c, 0}, {c.At(0), 0}, {c.At(1), 1}, {c.At(2), 2}, {c.At(3), 0}, {c.At(-1), 2}, {c.At(1).At(2), 2},
	} {
		if got := node(tc.cl); got != fmt.Sprintf("node%d", tc.want) {
			t.Errorf("got %s, want node%d", got, tc.want)
		}
		if tc.cl.Endpoint() != urls[tc.want] {
			t.Errorf("Endpoint() = %s, want %s", tc.cl.Endpoint(), urls[tc.want])
		}
	}
	if got := c.At(2).Endpoints(); len(got) != 3 {
		t.Errorf("a view's Endpoints() = %q", got)
	}
}

func setReceipt(h http.Header, replicas, acks, fallbacks, repair int) {
	h.Set(wire.HeaderReplicas, fmt.Sprint(replicas))
	h.Set(wire.HeaderAcks, fmt.Sprint(acks))
	h.Set(wire.HeaderFallbacks, fmt.Sprint(fallbacks))
	h.Set(wire.HeaderReadRepair, fmt.Sprint(repair))
}

func TestGetAnswers(t *testing.T) {
	ctx := context.Background()
	t.Run("200", func(t *testing.T) {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Accept") == "application/json" {
				t.Error("Get asked for JSON")
			}
			w.Header().Set(wire.HeaderContext, "ctx1")
			setReceipt(w.Header(), 3, 2, 1, 1)
			_, _ = w.Write([]byte("value\x00\xff"))
		}))
		res, err := c.Get(ctx, []byte("k"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := GetResult{Found: true, Values: [][]byte{[]byte("value\x00\xff")}, Context: "ctx1", Receipt: Receipt{3, 2, 1, 1}}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Errorf("got %+v, want %+v", res, want)
		}
	})
	t.Run("200 empty value", func(t *testing.T) {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		res, err := c.Get(ctx, []byte("k"), Options{})
		if err != nil || !res.Found || len(res.Values) != 1 || len(res.Values[0]) != 0 {
			t.Errorf("got %+v, %v", res, err)
		}
	})
	t.Run("200 chunked", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 1<<20)
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush() // no Content-Length: chunked
			_, _ = w.Write(big)
		}))
		res, err := c.Get(ctx, []byte("k"), Options{})
		if err != nil || !bytes.Equal(res.Values[0], big) {
			t.Errorf("got %d bytes, %v", len(res.Values[0]), err)
		}
	})
	t.Run("300 siblings", func(t *testing.T) {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(wire.HeaderContext, "ctx-header")
			setReceipt(w.Header(), 3, 3, 0, 2)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMultipleChoices)
			_ = json.NewEncoder(w).Encode(wire.SiblingsBody{Context: "ctx-body", Siblings: []wire.SiblingJSON{
				{Value: []byte("a")}, {Value: []byte{0, 0xff}}, {Value: []byte{}},
			}})
		}))
		res, err := c.Get(ctx, []byte("k"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := GetResult{Found: true, Values: [][]byte{[]byte("a"), {0, 0xff}, {}}, Context: "ctx-body", Receipt: Receipt{3, 3, 0, 2}}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Errorf("got %+v, want %+v", res, want)
		}
	})
	t.Run("300 bad json", func(t *testing.T) {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusMultipleChoices)
			_, _ = io.WriteString(w, "{nope")
		}))
		_, err := c.Get(ctx, []byte("k"), Options{})
		if !errors.Is(err, ErrServer) {
			t.Errorf("got %v, want ErrServer", err)
		}
	})
	t.Run("404 tombstone", func(t *testing.T) {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(wire.HeaderContext, "tomb")
			setReceipt(w.Header(), 3, 2, 0, 0)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(wire.ErrorBody{Error: "not found", Code: wire.CodeNotFound})
		}))
		res, err := c.Get(ctx, []byte("k"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := GetResult{Context: "tomb", Receipt: Receipt{3, 2, 0, 0}}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Errorf("got %+v, want %+v", res, want)
		}
	})
	t.Run("404 bare", func(t *testing.T) {
		c, _ := newTestClient(t, http.NotFoundHandler())
		res, err := c.Get(ctx, []byte("k"), Options{})
		if err != nil || res.Found || res.Values != nil || res.Context != "" {
			t.Errorf("got %+v, %v", res, err)
		}
	})
}

func TestWrites(t *testing.T) {
	type seen struct {
		method, query, xctx, ctype string
		body                       []byte
		length                     int64
	}
	var mu sync.Mutex
	var last seen
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.Method, r.URL.RawQuery, r.Header.Get(wire.HeaderContext), r.Header.Get("Content-Type"), b, r.ContentLength}
		mu.Unlock()
		w.Header().Set(wire.HeaderContext, "new-"+r.Method)
		setReceipt(w.Header(), 4, 3, 1, 0)
		w.WriteHeader(http.StatusNoContent)
	}))
	ctx := context.Background()
	res, err := c.Put(ctx, []byte("k"), []byte("v\x00"), Options{W: 2, Context: "old", R: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := (WriteResult{"new-PUT", Receipt{4, 3, 1, 0}}); res != want {
		t.Errorf("Put = %+v, want %+v", res, want)
	}
	if want := (seen{"PUT", "w=2", "old", "application/octet-stream", []byte("v\x00"), 2}); fmt.Sprint(last) != fmt.Sprint(want) {
		t.Errorf("server saw %+v, want %+v", last, want)
	}
	if _, err := c.Put(ctx, []byte("k"), nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if last.length != 0 || len(last.body) != 0 || last.xctx != "" || last.query != "" {
		t.Errorf("empty Put: server saw %+v", last)
	}
	res, err = c.Delete(ctx, []byte("k"), Options{Consistency: LevelAll, Context: "old2"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Context != "new-DELETE" {
		t.Errorf("Delete = %+v", res)
	}
	if want := (seen{"DELETE", "consistency=all", "old2", "", []byte{}, 0}); fmt.Sprint(last) != fmt.Sprint(want) {
		t.Errorf("server saw %+v, want %+v", last, want)
	}
}

func TestQuery(t *testing.T) {
	for _, tc := range []struct {
		o           Options
		read, write string
	}{
		{Options{}, "", ""},
		{Options{Consistency: "one"}, "consistency=one", "consistency=one"},
		{Options{Consistency: "strong", Context: "x"}, "consistency=strong", "consistency=strong"},
		{Options{R: 2}, "r=2", ""},
		{Options{W: 3}, "", "w=3"},
		{Options{R: 1, W: 3}, "r=1", "w=3"},
		{Options{Consistency: "quorum", R: 2, W: 2}, "consistency=quorum&r=2", "consistency=quorum&w=2"},
		{Options{Consistency: "a b&c"}, "consistency=a+b%26c", "consistency=a+b%26c"},
	} {
		if got := tc.o.query(true); got != tc.read {
			t.Errorf("%+v read query = %q, want %q", tc.o, got, tc.read)
		}
		if got := tc.o.query(false); got != tc.write {
			t.Errorf("%+v write query = %q, want %q", tc.o, got, tc.write)
		}
	}
}

func intp(n int) *int { return &n }

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		status        int
		body          any // wire.ErrorBody, string, or nil
		sentinel      error
		code          string
		needed, acked int
	}{
		{400, wire.ErrorBody{Error: "unknown level", Code: wire.CodeBadRequest}, ErrBadRequest, wire.CodeBadRequest, -1, -1},
		{413, wire.ErrorBody{Error: "too big", Code: wire.CodeTooLarge}, ErrTooLarge, wire.CodeTooLarge, -1, -1},
		{503, wire.ErrorBody{Error: "only 1 of 2", Code: wire.CodeUnavailable, Needed: intp(2), Acked: intp(1)}, ErrUnavailable, wire.CodeUnavailable, 2, 1},
		{503, wire.ErrorBody{Error: "none", Code: wire.CodeUnavailable, Needed: intp(3), Acked: intp(0)}, ErrUnavailable, wire.CodeUnavailable, 3, 0},
		{504, wire.ErrorBody{Error: "timed out", Code: wire.CodeTimeout, Needed: intp(2), Acked: intp(1)}, ErrTimeout, wire.CodeTimeout, 2, 1},
		{401, wire.ErrorBody{Error: "token", Code: wire.CodeUnauthorized}, ErrUnauthorized, wire.CodeUnauthorized, -1, -1},
		{409, wire.ErrorBody{Error: "leaving", Code: wire.CodeConflict}, ErrConflict, wire.CodeConflict, -1, -1},
		{500, wire.ErrorBody{Error: "boom", Code: wire.CodeInternal}, ErrServer, wire.CodeInternal, -1, -1},
		// The code wins over the status.
		{500, wire.ErrorBody{Error: "odd", Code: wire.CodeUnavailable}, ErrUnavailable, wire.CodeUnavailable, -1, -1},
		// No code: derived from the status.
		{503, "upstream down", ErrUnavailable, wire.CodeUnavailable, -1, -1},
		{401, nil, ErrUnauthorized, wire.CodeUnauthorized, -1, -1},
		{403, nil, ErrUnauthorized, wire.CodeUnauthorized, -1, -1},
		{405, "method not allowed", ErrBadRequest, wire.CodeBadRequest, -1, -1},
		{502, "<html>bad gateway</html>", ErrServer, wire.CodeInternal, -1, -1},
		{504, nil, ErrTimeout, wire.CodeTimeout, -1, -1},
		{413, nil, ErrTooLarge, wire.CodeTooLarge, -1, -1},
		// A code this client does not know: fall back on the status.
		{400, wire.ErrorBody{Error: "new", Code: "brand_new"}, ErrBadRequest, "brand_new", -1, -1},
	} {
		name := fmt.Sprintf("%d %v", tc.status, tc.body)
		c, srv := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setReceipt(w.Header(), 3, 1, 0, 0)
			w.WriteHeader(tc.status)
			switch b := tc.body.(type) {
			case wire.ErrorBody:
				_ = json.NewEncoder(w).Encode(b)
			case string:
				_, _ = io.WriteString(w, b)
			}
		}))
		ctx := context.Background()
		calls := map[string]func() error{
			"get":    func() error { _, err := c.Get(ctx, []byte("k"), Options{}); return err },
			"put":    func() error { _, err := c.Put(ctx, []byte("k"), []byte("v"), Options{}); return err },
			"delete": func() error { _, err := c.Delete(ctx, []byte("k"), Options{}); return err },
			"status": func() error { _, err := c.Status(ctx); return err },
			"leave":  func() error { return c.Leave(ctx) },
		}
		for op, call := range calls {
			err := call()
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%s %s: %v is not *Error", name, op, err)
				continue
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("%s %s: %v does not unwrap to %v", name, op, err, tc.sentinel)
			}
			if e.Status != tc.status || e.Code != tc.code || e.Needed != tc.needed || e.Acked != tc.acked || e.Endpoint != srv.URL {
				t.Errorf("%s %s: got %+v", name, op, e)
			}
			if e.Message == "" {
				t.Errorf("%s %s: empty message", name, op)
			}
			if s, ok := tc.body.(string); ok && e.Message != s {
				t.Errorf("%s %s: message %q, want %q", name, op, e.Message, s)
			}
			if e.Receipt != (Receipt{3, 1, 0, 0}) {
				t.Errorf("%s %s: receipt %+v", name, op, e.Receipt)
			}
		}
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Status: 503, Code: wire.CodeUnavailable, Message: "only 1 replica answered", Needed: 2, Acked: 1, Endpoint: "http://n1:7000"}
	want := "client: unavailable (503) from http://n1:7000: only 1 replica answered (needed 2, acked 1)"
	if e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
	e = &Error{Code: wire.CodeBadRequest, Message: "the key is empty", Needed: -1, Acked: -1}
	if want := "client: bad_request: the key is empty"; e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
	wrapped := fmt.Errorf("bench: %w", &Error{Status: 504, Code: wire.CodeTimeout, Needed: -1, Acked: -1})
	if !errors.Is(wrapped, ErrTimeout) || Rejected(wrapped) {
		t.Errorf("wrapped timeout: Is=%v Rejected=%v", errors.Is(wrapped, ErrTimeout), Rejected(wrapped))
	}
	for _, err := range []error{ErrBadRequest, ErrTooLarge, ErrUnauthorized} {
		if !Rejected(&Error{Code: codeOf(err), Needed: -1, Acked: -1}) {
			t.Errorf("%v not Rejected", err)
		}
	}
	for _, err := range []error{ErrUnavailable, ErrTimeout, ErrServer, context.DeadlineExceeded, nil} {
		if Rejected(err) {
			t.Errorf("%v Rejected", err)
		}
	}
}

func codeOf(sentinel error) string {
	for _, code := range []string{wire.CodeBadRequest, wire.CodeTooLarge, wire.CodeUnauthorized} {
		if (&Error{Code: code}).Unwrap() == sentinel {
			return code
		}
	}
	return ""
}

func TestKeyCheckedBeforeSending(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	ctx := context.Background()
	for _, key := range [][]byte{nil, {}, bytes.Repeat([]byte("k"), MaxKeyBytes+1)} {
		_, err1 := c.Get(ctx, key, Options{})
		_, err2 := c.Put(ctx, key, []byte("v"), Options{})
		_, err3 := c.Delete(ctx, key, Options{})
		_, err4 := c.Explain(ctx, key)
		for _, err := range []error{err1, err2, err3, err4} {
			var e *Error
			if !errors.As(err, &e) || e.Status != 0 || !errors.Is(err, ErrBadRequest) || !Rejected(err) {
				t.Errorf("key of %d bytes: %v", len(key), err)
			}
		}
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests sent for bad keys", hits.Load())
	}
	if _, err := c.Put(ctx, bytes.Repeat([]byte("k"), MaxKeyBytes), nil, Options{}); err != nil {
		t.Errorf("1024-byte key: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/status"), strings.HasPrefix(r.URL.Path, "/v1/explain/"):
			_, _ = io.WriteString(w, "{}")
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	run := func(c *Client) {
		ctx := context.Background()
		_, err1 := c.Get(ctx, []byte("k"), Options{})
		_, err2 := c.Put(ctx, []byte("k"), []byte("v"), Options{})
		_, err3 := c.Delete(ctx, []byte("k"), Options{})
		_, err4 := c.Status(ctx)
		_, err5 := c.Explain(ctx, []byte("k"))
		err6 := c.Health(ctx)
		err7 := c.Leave(ctx)
		if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := newTestClient(t, h, func(cfg *Config) { cfg.Token = "s3cret" })
	run(c)
	run(c.At(5))
	mu.Lock()
	if len(auths) != 14 {
		t.Errorf("%d requests, want 14", len(auths))
	}
	for i, a := range auths {
		if a != "Bearer s3cret" {
			t.Errorf("request %d: Authorization %q", i, a)
		}
	}
	auths = nil
	mu.Unlock()
	plain, _ := newTestClient(t, h)
	run(plain)
	mu.Lock()
	defer mu.Unlock()
	for i, a := range auths {
		if a != "" {
			t.Errorf("no token, request %d: Authorization %q", i, a)
		}
	}
}

func TestAdmin(t *testing.T) {
	status := wire.Status{ID: "n1", Replicas: 3, RingSize: 1024, Members: []wire.MemberStatus{{ID: "n1", State: "alive", Partitions: 512}}, HintsPending: 7}
	var leaveStatus atomic.Int32
	leaveStatus.Store(http.StatusAccepted)
	var leaveMethod atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(status)
	})
	mux.HandleFunc("GET /v1/explain/{key}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(wire.Explain{Key: r.PathValue("key"), Partition: 17,
			PreferenceList: []wire.ExplainNode{{Node: "n1", Role: "primary"}},
			Replicas:       []wire.ExplainReplica{{Node: "n1", Found: true, Siblings: 1}}})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/v1/admin/leave", func(w http.ResponseWriter, r *http.Request) {
		leaveMethod.Store(r.Method)
		w.WriteHeader(int(leaveStatus.Load()))
	})
	c, _ := newTestClient(t, mux)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || fmt.Sprint(st) != fmt.Sprint(status) {
		t.Errorf("Status = %+v, %v", st, err)
	}
	ex, err := c.Explain(ctx, []byte("a/b"))
	if err != nil || ex.Key != "a/b" || ex.Partition != 17 || len(ex.PreferenceList) != 1 || !ex.Replicas[0].Found {
		t.Errorf("Explain = %+v, %v", ex, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	for _, code := range []int{http.StatusAccepted, http.StatusOK} {
		leaveStatus.Store(int32(code))
		if err := c.Leave(ctx); err != nil {
			t.Errorf("Leave answered %d: %v", code, err)
		}
		if m := leaveMethod.Load(); m != http.MethodPost {
			t.Errorf("Leave sent %v", m)
		}
	}
	// A deadline on ctx lets Leave outlast Config.Timeout.
	slow, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}), func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if err := slow.Leave(lctx); err != nil {
		t.Errorf("slow Leave with a ctx deadline: %v", err)
	}
	assertTransportError(t, "slow Leave without a ctx deadline", slow.Leave(ctx))
	leaveStatus.Store(http.StatusConflict)
	if err := c.Leave(ctx); !errors.Is(err, ErrConflict) {
		t.Errorf("Leave answered 409: %v", err)
	}

	down, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	if err := down.Health(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Health of a node answering 503: %v", err)
	}
	garbage, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "not json")
	}))
	if _, err := garbage.Status(ctx); !errors.Is(err, ErrServer) {
		t.Errorf("Status with a non-JSON answer: %v", err)
	}
}

// assertTransportError checks that err is a failure with no answer: not an
// *Error, and not matching any sentinel.
func assertTransportError(t *testing.T, what string, err error) {
	t.Helper()
	var e *Error
	if err == nil || errors.As(err, &e) {
		t.Errorf("%s: got %v, want a transport error", what, err)
	}
	for _, s := range []error{ErrBadRequest, ErrTooLarge, ErrUnavailable, ErrTimeout, ErrUnauthorized, ErrServer, ErrNotFound, ErrConflict} {
		if errors.Is(err, s) {
			t.Errorf("%s: %v matches %v", what, err, s)
		}
	}
	if Rejected(err) {
		t.Errorf("%s: %v is Rejected", what, err)
	}
}

func TestDeadlinesAreTransportErrors(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	c, _ := newTestClient(t, h)
	short, _ := newTestClient(t, h, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	t.Cleanup(func() { close(release) }) // runs before the servers close
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, []byte("k"), Options{})
	assertTransportError(t, "ctx deadline", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx deadline: %v is not DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ctx deadline took %v", d)
	}

	_, err = short.Put(context.Background(), []byte("k"), []byte("v"), Options{})
	assertTransportError(t, "Config.Timeout", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Config.Timeout: %v is not DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = c.Delete(ctx, []byte("k"), Options{})
	assertTransportError(t, "canceled ctx", err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled ctx: %v is not Canceled", err)
	}
}

func TestConnectionFailuresAreTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c, err := New(Config{Endpoints: []string{"http://" + addr}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), []byte("k"), Options{})
	assertTransportError(t, "connection refused", err)
	assertTransportError(t, "connection refused", c.Health(context.Background()))

	// An answer cut short mid-body: the outcome is unknown too.
	cut, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "only ten b")
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	_, err = cut.Get(context.Background(), []byte("k"), Options{})
	assertTransportError(t, "truncated body", err)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v", err)
	}
}

// TestConnectionsReused checks that every kind of answer leaves the
// connection reusable, which the bench tool's throughput depends on.
func TestConnectionsReused(t *testing.T) {
	var n atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Query().Get("consistency") {
		case "200":
			_, _ = w.Write(bytes.Repeat([]byte("v"), 1000))
		case "300":
			w.WriteHeader(http.StatusMultipleChoices)
			_ = json.NewEncoder(w).Encode(wire.SiblingsBody{Context: "c", Siblings: []wire.SiblingJSON{{Value: []byte("a")}, {Value: []byte("b")}}})
		case "404":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"not found","code":"not_found"}`)
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"x","code":"unavailable","needed":2,"acked":1}`)
		default:
			w.Header().Set(wire.HeaderContext, "c")
			w.WriteHeader(http.StatusNoContent)
		}
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New(Config{Endpoints: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for range 20 {
		for _, level := range []string{"200", "300", "404", "503"} {
			_, _ = c.Get(ctx, []byte("k"), Options{Consistency: level})
		}
		_, _ = c.Put(ctx, []byte("k"), bytes.Repeat([]byte("v"), 4096), Options{})
		_, _ = c.Put(ctx, []byte("k"), []byte("v"), Options{Consistency: "503"})
		_, _ = c.Delete(ctx, []byte("k"), Options{})
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d connections opened for sequential requests, want 1", got)
	}
}

func TestWireHeadersCanonical(t *testing.T) {
	// headerInt and headerString index the header map directly.
	for _, h := range []string{wire.HeaderContext, wire.HeaderReplicas, wire.HeaderAcks, wire.HeaderFallbacks, wire.HeaderReadRepair} {
		if http.CanonicalHeaderKey(h) != h {
			t.Errorf("%q is not canonical", h)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(wire.HeaderContext, "ctx")
		setReceipt(w.Header(), 3, 2, 0, 0)
		_, _ = w.Write(value)
	}))
	defer srv.Close()
	c, err := New(Config{Endpoints: []string{srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, key := range []string{"user1234567", "user/1234 567"} {
		b.Run(EscapeKey([]byte(key)), func(b *testing.B) {
			k := []byte(key)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(ctx, k, Options{Consistency: LevelQuorum}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkEscapeKey(b *testing.B) {
	for _, key := range []string{"user1234567", "user/1234 567"} {
		k := []byte(key)
		b.Run("", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = EscapeKey(k)
			}
		})
	}
}
