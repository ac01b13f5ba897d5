package resp

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRedisBenchmark serves the in-memory fake KV to redis-benchmark, to
// check compatibility and measure the protocol layer alone. It is skipped
// unless RESP_BENCH is set:
//
//	RESP_BENCH=run go test -run TestRedisBenchmark -v ./resp/
//	    runs redis-benchmark (from PATH) against the fake with
//	    RESP_BENCH_ARGS (default "-t set,get -n 100000 -c 64 -d 100 -q -r 100000")
//	RESP_BENCH=serve RESP_BENCH_ADDR=127.0.0.1:6380 RESP_BENCH_SECONDS=60 go test -run TestRedisBenchmark -v -timeout 0 ./resp/
//	    serves for that long (at most 600s) for a redis-benchmark run by hand
//
// RESP_BENCH_DELAY (a Go duration, e.g. 150us) delays every KV call, a
// stand-in for replica round trips; RESP_BENCH_CONCURRENCY sets
// Config.Concurrency.
func TestRedisBenchmark(t *testing.T) {
	mode := os.Getenv("RESP_BENCH")
	if mode == "" {
		t.Skip("set RESP_BENCH=run or RESP_BENCH=serve")
	}
	kv := newFakeKV()
	kv.record = false
	if d := os.Getenv("RESP_BENCH_DELAY"); d != "" {
		var err error
		if kv.delay, err = time.ParseDuration(d); err != nil {
			t.Fatal(err)
		}
	}
	addr := os.Getenv("RESP_BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := startServer(t, kv, func(c *Config) {
		c.Addr = addr
		if n, err := strconv.Atoi(os.Getenv("RESP_BENCH_CONCURRENCY")); err == nil {
			c.Concurrency = n
		}
	})
	_, port, _ := net.SplitHostPort(s.Addr())
	switch mode {
	case "serve":
		secs, _ := strconv.Atoi(os.Getenv("RESP_BENCH_SECONDS"))
		secs = min(max(secs, 1), 600)
		t.Logf("serving the fake KV on %s for %ds", s.Addr(), secs)
		time.Sleep(time.Duration(secs) * time.Second)
	case "run":
		bin, err := exec.LookPath("redis-benchmark")
		if err != nil {
			t.Skip("redis-benchmark is not installed (apt-get install redis-tools)")
		}
		args := os.Getenv("RESP_BENCH_ARGS")
		if args == "" {
			args = "-t set,get -n 100000 -c 64 -d 100 -q -r 100000"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-p", port}, strings.Fields(args)...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("redis-benchmark -p %s %s\n%s", port, args, out)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "ERR") {
			t.Fatal("redis-benchmark saw errors")
		}
		t.Logf("KV calls: %d gets, %d puts, at most %d at once", kv.gets.Load(), kv.puts.Load(), kv.maxSeen.Load())
	default:
		t.Fatalf("RESP_BENCH=%q; use run or serve", mode)
	}
}

// benchPipeline sends b.N commands in pipelined batches over one
// connection and waits for every reply. A batch is frame repeated depth
// times; frame holds perFrame commands whose replies have replyLines lines
// each.
func benchPipeline(b *testing.B, kv *fakeKV, frame string, perFrame, replyLines, depth int) {
	s := startServer(b, kv, nil)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	batch := []byte(strings.Repeat(frame, depth))
	br := bufio.NewReaderSize(c, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += depth * perFrame {
		if _, err := c.Write(batch); err != nil {
			b.Fatal(err)
		}
		for range depth * perFrame * replyLines {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if line[0] == '-' {
				b.Fatalf("error reply %q", line)
			}
		}
	}
}

var (
	benchValue = strings.Repeat("v", 100)
	getFrame   = "*2\r\n$3\r\nGET\r\n$8\r\nkey:0001\r\n"
	setFrame   = "*3\r\n$3\r\nSET\r\n$8\r\nkey:0001\r\n$100\r\n" + benchValue + "\r\n"
)

func benchKV(b *testing.B) *fakeKV {
	kv := newFakeKV()
	kv.record = false
	kv.Put(context.Background(), []byte("key:0001"), writeOf(benchValue))
	return kv
}

func BenchmarkGet(b *testing.B)    { benchPipeline(b, benchKV(b), getFrame, 1, 2, 1) }
func BenchmarkGetP16(b *testing.B) { benchPipeline(b, benchKV(b), getFrame, 1, 2, 16) }
func BenchmarkSet(b *testing.B)    { benchPipeline(b, benchKV(b), setFrame, 1, 1, 1) }
func BenchmarkSetP16(b *testing.B) { benchPipeline(b, benchKV(b), setFrame, 1, 1, 16) }

// BenchmarkGetP16Distinct pipelines GETs of 16 different keys, so each batch
// runs as one concurrent wave.
func BenchmarkGetP16Distinct(b *testing.B) {
	var frame strings.Builder
	for i := range 16 {
		k := "key:" + strconv.Itoa(1000+i)
		frame.WriteString("*2\r\n$3\r\nGET\r\n$" + strconv.Itoa(len(k)) + "\r\n" + k + "\r\n")
	}
	// Absent keys answer "$-1": one line each.
	benchPipeline(b, benchKV(b), frame.String(), 16, 1, 1)
}

func BenchmarkLookup(b *testing.B) {
	name := []byte("GET")
	b.ReportAllocs()
	for b.Loop() {
		if lookup(name) == nil {
			b.Fatal("no GET")
		}
	}
}
