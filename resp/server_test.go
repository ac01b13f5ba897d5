package resp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/redis/go-redis/v9"
)

// ---- harness ----

func startServer(t testing.TB, kv KV, mod func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Replicas = 3
	if mod != nil {
		mod(&cfg)
	}
	s, err := Listen(cfg, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newRedis(t testing.TB, s *Server, mod func(*redis.Options)) *redis.Client {
	t.Helper()
	opt := &redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}
	if mod != nil {
		mod(opt)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw is a bare TCP connection for frames no client library would send.
type raw struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &raw{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// reply reads one reply and renders it: "+OK", "-ERR ...", ":3", "$value",
// "$nil", or "[a b]" for arrays.
func (r *raw) reply() (string, error) {
	line, err := r.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty line")
	}
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "$nil", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return "", err
		}
		return "$" + string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = r.reply(); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return "", fmt.Errorf("bad reply line %q", line)
}

func (r *raw) mustReply() string {
	r.t.Helper()
	s, err := r.reply()
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// expectClosed checks the server closed the connection.
func (r *raw) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := r.br.ReadByte(); err != io.EOF {
		r.t.Fatalf("connection still open: read %q, %v", b, err)
	}
}

func wantErrPrefix(t testing.TB, err error, prefix string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error = %v, want prefix %q", err, prefix)
	}
}

// ---- tests ----

func TestBasicCommands(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)

	if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	if got, err := rdb.Echo(ctx, "hi there").Result(); err != nil || got != "hi there" {
		t.Fatalf("ECHO = %q, %v", got, err)
	}
	if _, err := rdb.Get(ctx, "nope").Result(); err != redis.Nil {
		t.Fatalf("GET of an absent key: %v, want nil", err)
	}
	if err := rdb.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "a", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "a").Result(); err != nil || got != "2" {
		t.Fatalf("GET after two SETs = %q, %v; want 2 (a plain SET must supersede)", got, err)
	}
	if err := rdb.Set(ctx, "empty", "", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "empty").Result(); err != nil || got != "" {
		t.Fatalf("GET empty = %q, %v", got, err)
	}
	if n, err := rdb.Exists(ctx, "a", "nope", "a", "empty").Result(); err != nil || n != 3 {
		t.Fatalf("EXISTS = %d, %v; want 3", n, err)
	}
	if err := rdb.MSet(ctx, "m1", "x", "m2", "y", "m1", "z").Err(); err != nil {
		t.Fatal(err)
	}
	vals, err := rdb.MGet(ctx, "m1", "nope", "m2", "a").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"z", nil, "y", "2"}; fmt.Sprint(vals) != fmt.Sprint(want) {
		t.Fatalf("MGET = %v, want %v", vals, want)
	}
	if n, err := rdb.Del(ctx, "a", "nope", "m1", "a").Result(); err != nil || n != 2 {
		t.Fatalf("DEL = %d, %v; want 2", n, err)
	}
	if _, err := rdb.Get(ctx, "a").Result(); err != redis.Nil {
		t.Fatalf("GET after DEL: %v, want nil", err)
	}
	if n, err := rdb.Exists(ctx, "a", "m1", "m2").Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS after DEL = %d, %v; want 1", n, err)
	}
	if n, err := rdb.Del(ctx, "a").Result(); err != nil || n != 0 {
		t.Fatalf("DEL of a deleted key = %d, %v; want 0", n, err)
	}
	// Writing again after a delete works and supersedes the tombstone.
	if err := rdb.Set(ctx, "a", "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := rdb.Get(ctx, "a").Result(); got != "3" {
		t.Fatalf("GET after re-SET = %q", got)
	}
	// Binary keys and values pass through unchanged.
	bin := "\x00\r\n\xff"
	if err := rdb.Set(ctx, bin, bin+bin, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := rdb.Get(ctx, bin).Result(); got != bin+bin {
		t.Fatalf("binary GET = %q", got)
	}
}

func TestSetOverwritesAndDelUsesContext(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)
	rdb.Set(ctx, "k", "1", 0)
	kv.resetLog()
	if err := rdb.Set(ctx, "k", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	calls := kv.callLog()
	if len(calls) != 1 || calls[0].op != "put" || !calls[0].overwrite || calls[0].level.Level != replication.Quorum {
		t.Fatalf("SET made calls %+v; want one overwrite at quorum, no read", calls)
	}
	kv.resetLog()
	rdb.Del(ctx, "k")
	calls = kv.callLog()
	if len(calls) != 2 || calls[0].op != "get" || calls[1].op != "put" || !calls[1].del || len(calls[1].ctx) == 0 || !calls[1].overwrite {
		t.Fatalf("DEL made calls %+v; want a get, then a tombstone with the context read", calls)
	}
	kv.resetLog()
	rdb.Del(ctx, "k")
	if calls := kv.callLog(); len(calls) != 1 {
		t.Fatalf("DEL of a deleted key made calls %+v; want only the read", calls)
	}
}

func TestSiblings(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)

	// A key never written: QGET answers just an empty context.
	got, err := rdb.Do(ctx, "QGET", "k").StringSlice()
	if err != nil || len(got) != 1 || got[0] != "" {
		t.Fatalf("QGET of a new key = %q, %v", got, err)
	}
	// Two blind QSETs make siblings.
	c1, err := rdb.Do(ctx, "QSET", "k", "v1").Text()
	if err != nil || c1 == "" {
		t.Fatalf("QSET = %q, %v", c1, err)
	}
	if _, err := rdb.Do(ctx, "QSET", "k", "v2").Text(); err != nil {
		t.Fatal(err)
	}
	_, err = rdb.Get(ctx, "k").Result()
	wantErrPrefix(t, err, "SIBLINGS ")
	if !strings.Contains(err.Error(), "QGET") {
		t.Fatalf("siblings error %q does not say to use QGET", err)
	}
	_, err = rdb.MGet(ctx, "k").Result()
	wantErrPrefix(t, err, "SIBLINGS ")
	if n, _ := rdb.Exists(ctx, "k").Result(); n != 1 {
		t.Fatalf("EXISTS of a key with siblings = %d", n)
	}

	got, err = rdb.Do(ctx, "QGET", "k", "CONSISTENCY", "all").StringSlice()
	if err != nil || len(got) != 3 || got[1] != "v1" || got[2] != "v2" {
		t.Fatalf("QGET = %q, %v; want [context v1 v2]", got, err)
	}
	// Resolve with the context.
	if _, err := rdb.Do(ctx, "QSET", "k", "merged", "CONTEXT", got[0]).Text(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "merged" {
		t.Fatalf("GET after resolving = %q, %v", v, err)
	}
	// A QSET with an old context (v1's) is concurrent with "merged"... no:
	// c1 covers v1 only, so the write supersedes nothing that is left.
	if _, err := rdb.Do(ctx, "QSET", "k", "late", "CONTEXT", c1).Text(); err != nil {
		t.Fatal(err)
	}
	got, _ = rdb.Do(ctx, "QGET", "k").StringSlice()
	if len(got) != 3 {
		t.Fatalf("QGET after a stale-context QSET = %q; want two siblings", got)
	}
	// A plain SET resolves siblings: it writes with the context it reads.
	if err := rdb.Set(ctx, "k", "plain", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "plain" {
		t.Fatalf("GET after SET over siblings = %q, %v", v, err)
	}
	// QDEL with the context deletes.
	got, _ = rdb.Do(ctx, "QGET", "k").StringSlice()
	if _, err := rdb.Do(ctx, "QDEL", "k", "CONTEXT", got[0]).Text(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Get(ctx, "k").Result(); err != redis.Nil {
		t.Fatalf("GET after QDEL: %v", err)
	}
	got, _ = rdb.Do(ctx, "QGET", "k").StringSlice()
	if len(got) != 1 || got[0] == "" {
		t.Fatalf("QGET of a deleted key = %q; want [tombstone context]", got)
	}
	// QDEL without a context removes siblings too, as HTTP's DELETE does.
	for _, v := range []string{"s1", "s2"} {
		if err := rdb.Do(ctx, "QSET", "q", v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rdb.Do(ctx, "QDEL", "q").Text(); err != nil {
		t.Fatal(err)
	}
	if qg, _ := rdb.Do(ctx, "QGET", "q").StringSlice(); len(qg) != 1 || qg[0] == "" {
		t.Fatalf("QGET after QDEL without context = %q; want [tombstone context]", qg)
	}
	// Bad options and contexts.
	wantErrPrefix(t, rdb.Do(ctx, "QSET", "k", "v", "CONTEXT", "!!!").Err(), "ERR the CONTEXT does not decode")
	wantErrPrefix(t, rdb.Do(ctx, "QSET", "k", "v", "CONTEXT").Err(), "ERR syntax error")
	wantErrPrefix(t, rdb.Do(ctx, "QSET", "k", "v", "BOGUS", "x").Err(), "ERR syntax error")
	wantErrPrefix(t, rdb.Do(ctx, "QGET", "k", "CONTEXT", got[0]).Err(), "ERR syntax error")
	wantErrPrefix(t, rdb.Do(ctx, "QGET", "k", "CONSISTENCY", "most").Err(), "ERR unknown consistency level")
	wantErrPrefix(t, rdb.Do(ctx, "QGET", "k", "CONSISTENCY", "one", "CONSISTENCY", "all").Err(), "ERR syntax error")
}

func TestTooManySiblings(t *testing.T) {
	kv := newFakeKV()
	kv.maxSiblings = 2
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)
	rdb.Do(ctx, "QSET", "k", "1")
	rdb.Do(ctx, "QSET", "k", "2")
	wantErrPrefix(t, rdb.Do(ctx, "QSET", "k", "3").Err(), "TOOMANYSIBLINGS ")
}

func TestConsistencyLevels(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, func(o *redis.Options) { o.PoolSize = 1 })
	ctx := ctxT(t)
	lastLevel := func() replication.Consistency {
		calls := kv.callLog()
		return calls[len(calls)-1].level
	}
	if got, _ := rdb.Do(ctx, "CONSISTENCY").Text(); got != "quorum" {
		t.Fatalf("default level = %q", got)
	}
	rdb.Get(ctx, "k")
	if l := lastLevel(); l.Level != replication.Quorum {
		t.Fatalf("GET ran at %v", l)
	}
	for _, tc := range []struct {
		arg  string
		want replication.Consistency
		name string
	}{
		{"one", replication.Consistency{Level: replication.One}, "one"},
		{"ALL", replication.Consistency{Level: replication.All}, "all"},
		{"Strong", replication.Consistency{Level: replication.Strong}, "strong"},
		{"2", replication.Consistency{Level: replication.Count, Count: 2}, "2"},
		{"quorum", replication.Consistency{Level: replication.Quorum}, "quorum"},
	} {
		if err := rdb.Do(ctx, "CONSISTENCY", tc.arg).Err(); err != nil {
			t.Fatalf("CONSISTENCY %s: %v", tc.arg, err)
		}
		if got, _ := rdb.Do(ctx, "CONSISTENCY").Text(); got != tc.name {
			t.Fatalf("CONSISTENCY after %s = %q", tc.arg, got)
		}
		for _, run := range []func(){
			func() { rdb.Get(ctx, "k") },
			func() { rdb.Set(ctx, "k", "v", 0) },
			func() { rdb.MGet(ctx, "k", "j") },
			func() { rdb.Exists(ctx, "k") },
			func() { rdb.Del(ctx, "k") },
		} {
			run()
			if l := lastLevel(); l != tc.want {
				t.Fatalf("at CONSISTENCY %s a command ran at %+v", tc.arg, l)
			}
		}
		// A level given to QGET is for that command only.
		rdb.Do(ctx, "QGET", "k", "CONSISTENCY", "one")
		if l := lastLevel(); l.Level != replication.One {
			t.Fatalf("QGET CONSISTENCY one ran at %+v", l)
		}
		rdb.Get(ctx, "k")
		if l := lastLevel(); l != tc.want {
			t.Fatalf("the QGET option changed the connection's level to %+v", l)
		}
	}
	wantErrPrefix(t, rdb.Do(ctx, "CONSISTENCY", "4").Err(), "ERR replica count 4 is outside 1..3")
	wantErrPrefix(t, rdb.Do(ctx, "CONSISTENCY", "0").Err(), "ERR replica count 0")
	wantErrPrefix(t, rdb.Do(ctx, "CONSISTENCY", "eventual").Err(), "ERR unknown consistency level 'eventual'")
	wantErrPrefix(t, rdb.Do(ctx, "CONSISTENCY", "one", "two").Err(), "ERR wrong number of arguments")

	// Levels are per connection.
	rdb.Do(ctx, "CONSISTENCY", "one")
	other := newRedis(t, s, nil)
	if got, _ := other.Do(ctx, "CONSISTENCY").Text(); got != "quorum" {
		t.Fatalf("another connection's level = %q", got)
	}
	// RESET goes back to the default.
	if got, _ := rdb.Do(ctx, "RESET").Text(); got != "RESET" {
		t.Fatalf("RESET = %q", got)
	}
	if got, _ := rdb.Do(ctx, "CONSISTENCY").Text(); got != "quorum" {
		t.Fatalf("level after RESET = %q", got)
	}

	// The default level is configurable.
	s2 := startServer(t, kv, func(c *Config) { c.DefaultLevel = replication.Consistency{Level: replication.One} })
	if got, _ := newRedis(t, s2, nil).Do(ctx, "CONSISTENCY").Text(); got != "one" {
		t.Fatalf("configured default level = %q", got)
	}
}

func TestPipelineKeepsOrder(t *testing.T) {
	kv := newFakeKV()
	kv.delay = 2 * time.Millisecond
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)

	type check func(c redis.Cmder) error
	var checks []check
	pipe := rdb.Pipeline()
	want := func(cmd redis.Cmder, s string) {
		checks = append(checks, func(c redis.Cmder) error {
			var got string
			switch c := c.(type) {
			case *redis.StringCmd:
				got, _ = c.Result()
				if c.Err() == redis.Nil {
					got = "<nil>"
				}
			case *redis.StatusCmd:
				got = c.Val()
			case *redis.IntCmd:
				got = strconv.FormatInt(c.Val(), 10)
			case *redis.Cmd:
				got = fmt.Sprint(c.Val())
			case *redis.SliceCmd:
				got = fmt.Sprint(c.Val())
			}
			if c.Err() != nil && c.Err() != redis.Nil {
				got = "error: " + c.Err().Error()
			}
			if got != s {
				return fmt.Errorf("%v = %q, want %q", c.Args(), got, s)
			}
			return nil
		})
	}
	// Same-key chains must see each other in order.
	for i := range 20 {
		k := "chain" + strconv.Itoa(i%4)
		want(pipe.Set(ctx, k, "a"+strconv.Itoa(i), 0), "OK")
		want(pipe.Get(ctx, k), "a"+strconv.Itoa(i))
	}
	want(pipe.Del(ctx, "chain0"), "1")
	want(pipe.Get(ctx, "chain0"), "<nil>")
	want(pipe.Exists(ctx, "chain0", "chain1"), "1")
	want(pipe.MSet(ctx, "m1", "1", "m2", "2"), "OK")
	want(pipe.MGet(ctx, "m1", "m2", "m3"), "[1 2 <nil>]")
	// Many independent keys, interleaved with a level change.
	for i := range 100 {
		want(pipe.Set(ctx, "ind"+strconv.Itoa(i), strconv.Itoa(i), 0), "OK")
	}
	want(pipe.Do(ctx, "CONSISTENCY", "one"), "OK")
	for i := range 100 {
		want(pipe.Get(ctx, "ind"+strconv.Itoa(i)), strconv.Itoa(i))
	}
	want(pipe.Do(ctx, "CONSISTENCY"), "one")
	want(pipe.Do(ctx, "NOSUCH"), "error: ERR unknown command 'NOSUCH', with args beginning with: ")
	want(pipe.Get(ctx, "ind5"), "5")
	cmds, _ := pipe.Exec(ctx)
	if len(cmds) != len(checks) {
		t.Fatalf("%d replies for %d commands", len(cmds), len(checks))
	}
	for i, c := range cmds {
		if err := checks[i](c); err != nil {
			t.Error(err)
		}
	}
	if kv.maxSeen.Load() < 2 {
		t.Errorf("the fake never saw two calls at once: pipelined commands did not overlap")
	}
	// The GETs after CONSISTENCY one ran at one.
	for _, c := range kv.callLog() {
		if strings.HasPrefix(c.key, "ind") && c.op == "get" && c.level.Level == replication.One {
			return
		}
	}
	t.Errorf("no pipelined GET ran at the level set inside the pipeline")
}

func TestPipelinedCommandsOverlap(t *testing.T) {
	kv := newFakeKV()
	kv.delay = 20 * time.Millisecond
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)
	pipe := rdb.Pipeline()
	for i := range 64 {
		pipe.Get(ctx, "k"+strconv.Itoa(i))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	// In waves of Concurrency (32) the KV sees many calls at once; one
	// at a time it would see one.
	if n := kv.maxSeen.Load(); n < 16 {
		t.Errorf("64 pipelined GETs: at most %d KV calls at once, want ≥ 16", n)
	}
	// With Concurrency 1 they run one by one (the control).
	kv2 := newFakeKV()
	kv2.delay = time.Millisecond
	s2 := startServer(t, kv2, func(c *Config) { c.Concurrency = 1 })
	pipe = newRedis(t, s2, nil).Pipeline()
	for i := range 16 {
		pipe.Get(ctx, "k"+strconv.Itoa(i))
	}
	pipe.Exec(ctx)
	if n := kv2.maxSeen.Load(); n != 1 {
		t.Errorf("with Concurrency 1, %d KV calls at once", n)
	}
}

func TestErrors(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, func(c *Config) { c.MaxValueBytes = 100; c.MaxKeyBytes = 10 })
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)

	wantErrPrefix(t, rdb.Do(ctx, "FROB", "a", "b").Err(), "ERR unknown command 'FROB', with args beginning with: 'a' 'b' ")
	wantErrPrefix(t, rdb.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	wantErrPrefix(t, rdb.Do(ctx, "GET", "a", "b").Err(), "ERR wrong number of arguments for 'get' command")
	wantErrPrefix(t, rdb.Do(ctx, "SET", "a").Err(), "ERR wrong number of arguments for 'set' command")
	wantErrPrefix(t, rdb.Do(ctx, "MSET", "a", "1", "b").Err(), "ERR wrong number of arguments for 'mset' command")
	wantErrPrefix(t, rdb.Do(ctx, "DEL").Err(), "ERR wrong number of arguments for 'del' command")
	wantErrPrefix(t, rdb.Set(ctx, "a", "1", time.Minute).Err(), "ERR syntax error: SET takes no options")
	wantErrPrefix(t, rdb.Set(ctx, "", "1", 0).Err(), "ERR keys must be 1 to 10 bytes")
	wantErrPrefix(t, rdb.Get(ctx, "12345678901").Err(), "ERR keys must be 1 to 10 bytes")
	wantErrPrefix(t, rdb.Set(ctx, "a", strings.Repeat("x", 101), 0).Err(), "ERR the value is 101 bytes; the limit is 100 bytes")
	wantErrPrefix(t, rdb.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range")
	wantErrPrefix(t, rdb.Do(ctx, "SELECT", "x").Err(), "ERR value is not an integer")

	kv.setFail("down", &replication.QuorumError{Op: "read", Needed: 2, Acked: 1})
	wantErrPrefix(t, rdb.Get(ctx, "down").Err(), "UNAVAILABLE needed 2 replicas, 1 answered")
	wantErrPrefix(t, rdb.Set(ctx, "down", "x", 0).Err(), "UNAVAILABLE needed 2 replicas, 1 answered")
	kv.setFail("down", &replication.QuorumError{Op: "write", Needed: 2, Acked: 1})
	err := rdb.Do(ctx, "QSET", "down", "x").Err()
	wantErrPrefix(t, err, "UNAVAILABLE needed 2 replicas, 1 answered")
	if !strings.Contains(err.Error(), "may still have reached some replicas") {
		t.Errorf("write unavailability %q does not warn that the write may appear later", err)
	}
	kv.setFail("small", &replication.QuorumError{Op: "write", Needed: 3, Replicas: 2, N: 3})
	err = rdb.Set(ctx, "small", "x", 0).Err()
	wantErrPrefix(t, err, "UNAVAILABLE write needs 3 replica answers but a key has only 2 replicas")
	if strings.Contains(err.Error(), "may still") {
		t.Errorf("a write refused before it ran %q says it may appear later", err)
	}
	kv.setFail("slow", &replication.QuorumError{Op: "write", Needed: 2, Acked: 1, Timeout: true})
	wantErrPrefix(t, rdb.Do(ctx, "QSET", "slow", "x").Err(), "TIMEOUT outcome unknown")
	kv.setFail("bad", fmt.Errorf("%w: replica count 7 is outside 1..3 (N)", replication.ErrBadRequest))
	wantErrPrefix(t, rdb.Get(ctx, "bad").Err(), "ERR replica count 7 is outside 1..3 (N)")
	kv.setFail("weird", errors.New("disk on fire"))
	wantErrPrefix(t, rdb.Get(ctx, "weird").Err(), "ERR internal error: disk on fire")

	// A failed key fails MGET and EXISTS as a whole; MSET says how much
	// it wrote.
	wantErrPrefix(t, rdb.MGet(ctx, "ok", "down").Err(), "UNAVAILABLE")
	wantErrPrefix(t, rdb.Exists(ctx, "ok", "slow").Err(), "TIMEOUT")
	err = rdb.MSet(ctx, "ok1", "1", "down", "2", "ok2", "3").Err()
	wantErrPrefix(t, err, "UNAVAILABLE")
	if !strings.Contains(err.Error(), "MSET is not atomic: 2 of 3 keys were written") {
		t.Errorf("MSET partial failure = %q", err)
	}
	if v, _ := rdb.Get(ctx, "ok2").Result(); v != "3" {
		t.Errorf("MSET did not write the keys that could be written")
	}

	// The connection is still fine after all that.
	if err := rdb.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRequestTimeout(t *testing.T) {
	kv := newFakeKV()
	kv.delay = time.Second
	s := startServer(t, kv, func(c *Config) { c.RequestTimeout = 20 * time.Millisecond })
	rdb := newRedis(t, s, nil)
	wantErrPrefix(t, rdb.Get(ctxT(t), "k").Err(), "TIMEOUT outcome unknown")
}

func TestConnectHandshakeAndAdminCommands(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, nil)
	// Protocol 3 (go-redis's default) sends HELLO 3 first and must fall
	// back to RESP2; a client name and DB 0 add CLIENT SETNAME and SELECT.
	rdb := newRedis(t, s, func(o *redis.Options) { o.ClientName = "tester"; o.Protocol = 3; o.DB = 0 })
	ctx := ctxT(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.ClientGetName(ctx).Result(); err != nil || got != "tester" {
		t.Fatalf("CLIENT GETNAME = %q, %v", got, err)
	}
	if id, err := rdb.ClientID(ctx).Result(); err != nil || id < 1 {
		t.Fatalf("CLIENT ID = %d, %v", id, err)
	}
	wantErrPrefix(t, rdb.Do(ctx, "HELLO", "3").Err(), "NOPROTO")
	wantErrPrefix(t, rdb.Do(ctx, "CLIENT", "KILL", "x").Err(), "ERR unknown subcommand 'KILL'")
	wantErrPrefix(t, rdb.Do(ctx, "CLIENT", "SETNAME", "a b").Err(), "ERR Client names cannot contain spaces")

	cfg, err := rdb.ConfigGet(ctx, "save").Result()
	if err != nil || len(cfg) != 1 || cfg["save"] != "" {
		t.Fatalf("CONFIG GET save = %v, %v", cfg, err)
	}
	cfg, err = rdb.ConfigGet(ctx, "append*").Result()
	if err != nil || cfg["appendonly"] != "no" {
		t.Fatalf("CONFIG GET append* = %v, %v", cfg, err)
	}
	if cfg, _ := rdb.ConfigGet(ctx, "nosuch").Result(); len(cfg) != 0 {
		t.Fatalf("CONFIG GET nosuch = %v", cfg)
	}
	wantErrPrefix(t, rdb.ConfigSet(ctx, "save", "").Err(), "ERR CONFIG SET is not supported")

	infos, err := rdb.Command(ctx).Result()
	if err != nil {
		t.Fatalf("COMMAND: %v", err)
	}
	if g := infos["get"]; g == nil || g.Arity != 2 || !g.ReadOnly || g.FirstKeyPos != 1 {
		t.Fatalf("COMMAND get = %+v", g)
	}
	if m := infos["mset"]; m == nil || m.StepCount != 2 || m.LastKeyPos != -1 {
		t.Fatalf("COMMAND mset = %+v", m)
	}
	if n, err := rdb.Do(ctx, "COMMAND", "COUNT").Int(); err != nil || n != len(infos) {
		t.Fatalf("COMMAND COUNT = %d, %v (COMMAND listed %d)", n, err, len(infos))
	}
	if v, err := rdb.Do(ctx, "COMMAND", "DOCS").Slice(); err != nil || len(v) != 0 {
		t.Fatalf("COMMAND DOCS = %v, %v", v, err)
	}
	if v, err := rdb.Do(ctx, "COMMAND", "INFO", "get", "nosuch").Slice(); err != nil || len(v) != 2 || v[1] != nil {
		t.Fatalf("COMMAND INFO = %v, %v", v, err)
	}
	info, err := rdb.Info(ctx).Result()
	if err != nil || !strings.Contains(info, "redis_version:") || !strings.Contains(info, "connected_clients:") || !strings.Contains(info, "loading:0") {
		t.Fatalf("INFO = %q, %v", info, err)
	}
	if info, _ := rdb.Info(ctx, "quorumkv").Result(); !strings.Contains(info, "connection_consistency:quorum") || strings.Contains(info, "redis_version") {
		t.Fatalf("INFO quorumkv = %q", info)
	}

	// QUIT answers OK and closes.
	r := dialRaw(t, s.Addr())
	r.send("QUIT\r\nPING\r\n")
	if got := r.mustReply(); got != "+OK" {
		t.Fatalf("QUIT = %q", got)
	}
	r.expectClosed()
}

func TestInlineCommands(t *testing.T) {
	s := startServer(t, newFakeKV(), nil)
	r := dialRaw(t, s.Addr())
	r.send("PING\r\n\r\nset \"a b\" 'c d'\nGET \"a b\"\r\nget \"\\x41\\n\"\r\necho  x\t y\r\n")
	for _, want := range []string{"+PONG", "+OK", "$c d", "$nil", "-ERR wrong number of arguments for 'echo' command"} {
		if got := r.mustReply(); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	r.send("GET \"unbalanced\r\n")
	if got := r.mustReply(); !strings.HasPrefix(got, "-ERR Protocol error: unbalanced quotes") {
		t.Fatalf("unbalanced quotes: %q", got)
	}
	r.expectClosed()
}

func TestMalformedFramesDoNotCrash(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, func(c *Config) { c.MaxValueBytes = 1000; c.MaxCommandBytes = 4096 })
	ctx := ctxT(t)
	good := newRedis(t, s, func(o *redis.Options) { o.PoolSize = 1 })
	if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ frame, want string }{
		{"*9223372036854775807\r\n$1\r\na\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1\r\n$9223372036854775807\r\nabc\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$999999999999999999\r\nabc\r\n", "-ERR Protocol error: command larger than 4096 bytes"},
		{"*1\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$5000\r\n", "-ERR Protocol error: command larger than 4096 bytes"},
		{"*2\r\n+foo\r\n", "-ERR Protocol error: expected '$', got '+'"},
		{"*1\r\n$3\r\nabcde\r\n", "-ERR Protocol error: bulk not followed by CRLF"},
		{"*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1\n", "-ERR Protocol error: invalid multibulk length"},
		{"*" + strings.Repeat("1", 30), "-ERR Protocol error: invalid multibulk length"},
		{"*1\r\n$" + strings.Repeat("1", 30), "-ERR Protocol error: invalid bulk length"},
		{"*2000000\r\n", "-ERR Protocol error: invalid multibulk length"},
		{strings.Repeat("x", 70<<10), "-ERR Protocol error: too big inline request"},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000\r\n" + strings.Repeat("v", 3000) + "\r\n*1\r\n$4\r\nPING\r\n", ""},
	} {
		r := dialRaw(t, s.Addr())
		r.send(tc.frame)
		if tc.want == "" {
			// A well-formed large frame is fine.
			if got := r.mustReply(); got != "-ERR the value is 3000 bytes; the limit is 1000 bytes (--max-value-bytes)" {
				t.Errorf("large value: %q", got)
			}
			if got := r.mustReply(); got != "+PONG" {
				t.Errorf("after large value: %q", got)
			}
			continue
		}
		got, err := r.reply()
		if err != nil || !strings.HasPrefix(got, tc.want) {
			t.Errorf("frame %.40q: reply %q, %v; want %q", tc.frame, got, err, tc.want)
			continue
		}
		r.expectClosed()
	}
	// Half a frame, then the client goes away.
	r := dialRaw(t, s.Addr())
	r.send("*3\r\n$3\r\nSET\r\n$1\r\nk")
	r.c.Close()
	// *0 and *-1 are empty commands, skipped as Redis does.
	r = dialRaw(t, s.Addr())
	r.send("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n")
	if got := r.mustReply(); got != "+PONG" {
		t.Errorf("after empty arrays: %q", got)
	}
	// The server and the other connection are unharmed.
	if got, err := good.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("the good connection after garbage: %q, %v", got, err)
	}
}

func TestAuth(t *testing.T) {
	s := startServer(t, newFakeKV(), func(c *Config) { c.AuthToken = "s3cret" })
	ctx := ctxT(t)
	anon := newRedis(t, s, nil)
	wantErrPrefix(t, anon.Get(ctx, "k").Err(), "NOAUTH")
	wantErrPrefix(t, anon.Do(ctx, "CONSISTENCY", "one").Err(), "NOAUTH")
	wrong := newRedis(t, s, func(o *redis.Options) { o.Password = "nope" })
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("a wrong password: %v", err)
	}
	ok := newRedis(t, s, func(o *redis.Options) { o.Password = "s3cret" })
	if err := ok.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Pipelined commands of an unauthenticated connection are refused too.
	r := dialRaw(t, s.Addr())
	r.send("GET a\r\nGET b\r\nAUTH someone s3cret\r\nGET k\r\n")
	for _, want := range []string{"-NOAUTH Authentication required.", "-NOAUTH Authentication required.", "+OK", "$v"} {
		if got := r.mustReply(); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	// Without a token configured, AUTH is an error as in Redis.
	s2 := startServer(t, newFakeKV(), nil)
	wantErrPrefix(t, newRedis(t, s2, nil).Do(ctx, "AUTH", "x").Err(), "ERR AUTH <password> called without any password configured")
}

func TestMaxConns(t *testing.T) {
	s := startServer(t, newFakeKV(), func(c *Config) { c.MaxConns = 1 })
	first := dialRaw(t, s.Addr())
	first.send("PING\r\n")
	first.mustReply()
	second := dialRaw(t, s.Addr())
	if got := second.mustReply(); got != "-ERR max number of clients reached" {
		t.Fatalf("over the cap: %q", got)
	}
	second.expectClosed()
	first.c.Close()
	// Once the first is gone there is room again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := dialRaw(t, s.Addr())
		r.send("PING\r\n")
		if got, _ := r.reply(); got == "+PONG" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no room after the first connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestObserve(t *testing.T) {
	kv := newFakeKV()
	kv.setFail("down", &replication.QuorumError{Op: "read", Needed: 2, Acked: 1})
	var mu sync.Mutex
	var seen []string
	s := startServer(t, kv, func(c *Config) {
		c.Observe = func(op, level, outcome string, _ time.Duration) {
			mu.Lock()
			seen = append(seen, op+"/"+level+"/"+outcome)
			mu.Unlock()
		}
	})
	rdb := newRedis(t, s, func(o *redis.Options) { o.PoolSize = 1 })
	ctx := ctxT(t)
	rdb.Set(ctx, "k", "v", 0)
	rdb.Get(ctx, "k")
	rdb.Get(ctx, "nope")
	rdb.Do(ctx, "CONSISTENCY", "2")
	rdb.Get(ctx, "down")
	mu.Lock()
	defer mu.Unlock()
	want := "[set/quorum/ok get/quorum/ok get/quorum/not_found get/2/unavailable]"
	if fmt.Sprint(seen) != want {
		t.Fatalf("observed %v, want %v", seen, want)
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	waitNoServerGoroutines(t, 5*time.Second) // earlier tests' servers are closed
	kv := newFakeKV()
	kv.delay = time.Hour // commands under way at Close must be cancelled
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	s, err := Listen(cfg, kv)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := range 5 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			// A pipelined batch stuck in the KV, and an MGET fanning out.
			io.WriteString(c, "GET a\r\nGET b\r\nMGET x y z\r\n")
		} else {
			io.WriteString(c, "*3\r\n$3\r\nSET\r\n") // half a frame
		}
	}
	// Two SETs stuck in the KV.
	for range 2 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "SET hot v\r\n")
	}
	kv.waitInflight(t, 3*5+2)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Close has waited for every goroutine of the server (they may still
	// be returning from their last deferred call), even before the
	// clients hang up.
	waitNoServerGoroutines(t, time.Second)
	for _, c := range conns {
		c.Close()
	}
}

// serverGoroutines returns the stacks of goroutines running this package's
// server code.
func serverGoroutines() []string {
	buf := make([]byte, 8<<20)
	var found []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "quorumkv/resp.(*Server)") || strings.Contains(g, "quorumkv/resp.(*client)") || strings.Contains(g, "quorumkv/resp.(*workerPool)") {
			found = append(found, g)
		}
	}
	return found
}

// waitNoServerGoroutines fails unless every server goroutine ends in time.
func waitNoServerGoroutines(t *testing.T, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		left := serverGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d server goroutines left:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLeakCheckControl is the negative control of the leak check: a server
// that is not closed must be seen.
func TestLeakCheckControl(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	s, err := Listen(cfg, newFakeKV())
	if err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, s.Addr())
	r.send("PING\r\n")
	r.mustReply()
	if n := len(serverGoroutines()); n < 2 {
		t.Errorf("the leak check sees %d goroutines of a running server with a client, want ≥ 2", n)
	}
	s.Close()
	waitNoServerGoroutines(t, 5*time.Second)
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := Config{Addr: "", MaxConns: -1, MaxKeyBytes: 0, MaxValueBytes: -1, MaxCommandBytes: 10, RequestTimeout: -1, Concurrency: 0,
		DefaultLevel: replication.Consistency{Level: replication.Count, Count: 5}, Replicas: 3}
	err := bad.Validate()
	for _, want := range []string{"listen address", "default level", "max conns", "max key bytes", "max value bytes", "max command bytes", "request timeout", "concurrency"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of a bad config does not mention %q: %v", want, err)
		}
	}
	if _, err := Listen(bad, newFakeKV()); err == nil {
		t.Fatal("Listen accepted a bad config")
	}
}

func TestPanicInKVIsContained(t *testing.T) {
	kv := newFakeKV()
	kv.setFail("boom", errPanic)
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)
	rdb.Set(ctx, "ok", "v", 0)
	wantErrPrefix(t, rdb.Get(ctx, "boom").Err(), "ERR internal error")
	wantErrPrefix(t, rdb.MGet(ctx, "a", "b", "boom", "c").Err(), "ERR internal error")
	pipe := rdb.Pipeline()
	g1 := pipe.Get(ctx, "ok")
	g2 := pipe.Get(ctx, "boom")
	g3 := pipe.Get(ctx, "ok")
	pipe.Exec(ctx)
	if g1.Val() != "v" || g3.Val() != "v" || g2.Err() == nil {
		t.Fatalf("pipelined around a panic: %v %v %v", g1, g2, g3)
	}
	// Concurrent SETs of a key whose writes panic: every one answers an
	// error (none waits forever on a round that died).
	kv.delay = time.Millisecond
	var wg sync.WaitGroup
	for range 4 {
		c := newRedis(t, s, func(o *redis.Options) { o.PoolSize = 1 })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if err := c.Set(ctx, "boom", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR internal error") {
					t.Errorf("SET of a panicking key: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if v, err := rdb.Get(ctx, "ok").Result(); err != nil || v != "v" {
		t.Fatalf("after panics: %q, %v", v, err)
	}
}

func TestTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quorumkv test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	s := startServer(t, newFakeKV(), func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	})
	rdb := newRedis(t, s, func(o *redis.Options) { o.TLSConfig = &tls.Config{RootCAs: pool} })
	ctx := ctxT(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET over TLS = %q, %v", v, err)
	}
	// A plain-text client gets nowhere, and the server goes on.
	r := dialRaw(t, s.Addr())
	r.send("PING\r\n")
	if got, err := r.reply(); err == nil && got == "+PONG" {
		t.Fatal("a plain-text PING was answered on a TLS listener")
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

// hammerOneKey writes one key from many connections at once, with
// "SET key value" or, for the control, another command of the same shape,
// and answers the most values the key ever held.
func hammerOneKey(t *testing.T, kv *fakeKV, s *Server, cmd string) int {
	ctx := ctxT(t)
	const clients, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for i := range clients {
		rdb := newRedis(t, s, func(o *redis.Options) { o.PoolSize = 1 })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := rdb.Do(ctx, cmd, "hot", fmt.Sprintf("c%d-%d", i, j)).Err(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("%s: %v", cmd, err)
	}
	return int(kv.mostSiblings.Load())
}

func TestConcurrentSetsOfOneKeyDoNotMakeSiblings(t *testing.T) {
	kv := newFakeKV()
	kv.delay = time.Millisecond
	s := startServer(t, kv, nil)
	if n := hammerOneKey(t, kv, s, "SET"); n != 1 {
		t.Fatalf("concurrent SETs left the key with %d values at once, want 1", n)
	}
	if v, err := newRedis(t, s, nil).Get(ctxT(t), "hot").Result(); err != nil || !strings.HasPrefix(v, "c") {
		t.Fatalf("GET = %q, %v", v, err)
	}
	// Negative control: blind QSETs are concurrent writes, and the same
	// check finds siblings.
	kv2 := newFakeKV()
	kv2.delay = time.Millisecond
	kv2.maxSiblings = 1000
	if n := hammerOneKey(t, kv2, startServer(t, kv2, nil), "QSET"); n < 2 {
		t.Fatalf("control: concurrent blind QSETs never left more than %d value; the check cannot see siblings", n)
	}
}

func TestLargeRepliesAreWrittenAsTheyCome(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, kv, nil)
	rdb := newRedis(t, s, nil)
	ctx := ctxT(t)
	big := strings.Repeat("x", 100<<10)
	rdb.Set(ctx, "big", big, 0)
	// 40 GETs of 100 KiB in one batch: 4 MB of replies, in order.
	r := dialRaw(t, s.Addr())
	r.send(strings.Repeat("GET big\r\n", 40) + "PING\r\n")
	for i := range 40 {
		if got := r.mustReply(); got != "$"+big {
			t.Fatalf("reply %d: %d bytes", i, len(got))
		}
	}
	if got := r.mustReply(); got != "+PONG" {
		t.Fatalf("last reply %q", got)
	}
}

// Shutdown closes idle connections at once, lets a pipelined batch under
// way finish and answer, then closes its connection; it refuses new ones.
// (Close instead cancels the batch: its SET would answer an error.)
func TestShutdownFinishesBatchesUnderWay(t *testing.T) {
	kv := newFakeKV()
	kv.delay = 300 * time.Millisecond
	s := startServer(t, kv, nil)
	idle := dialRaw(t, s.Addr())
	idle.send("PING\r\n")
	if got := idle.mustReply(); got != "+PONG" {
		t.Fatalf("PING: %s", got)
	}
	busy := dialRaw(t, s.Addr())
	busy.send("SET a 1\r\nGET a\r\n")
	kv.waitInflight(t, 1)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	idle.expectClosed()
	if got := busy.mustReply(); got != "+OK" {
		t.Fatalf("SET under way at Shutdown answered %s", got)
	}
	if got := busy.mustReply(); got != "$1" {
		t.Fatalf("GET in the same batch answered %s", got)
	}
	busy.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("Shutdown left the port accepting")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
}

// A batch that does not finish before Shutdown's context ends is cancelled,
// and Shutdown says so.
func TestShutdownGivesUpAtItsDeadline(t *testing.T) {
	kv := newFakeKV()
	kv.delay = time.Hour
	s := startServer(t, kv, nil)
	stuck := dialRaw(t, s.Addr())
	stuck.send("SET a 1\r\n")
	kv.waitInflight(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	waitNoServerGoroutines(t, time.Second)
}
