package transport

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"
)

// benchPair starts an echo server and a client on loopback.
func benchPair(b *testing.B, conns int) (cli *TCP, addr string) {
	cfg := testConfig()
	if conns > 0 {
		cfg.ConnsPerPeer = conns
	}
	srv := listen(b, cfg, echo)
	cli = listen(b, cfg, nil)
	if _, err := cli.Call(context.Background(), srv.Addr(), []byte("warm")); err != nil {
		b.Fatal(err)
	}
	return cli, srv.Addr()
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkTCPCall is one caller making sequential calls: loopback latency.
func BenchmarkTCPCall(b *testing.B) {
	cli, addr := benchPair(b, 0)
	req := bytes.Repeat([]byte("x"), 100)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if _, err := cli.Call(ctx, addr, req); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	reportRate(b)
}

// BenchmarkTCPCallParallel is 64 concurrent callers to one peer: throughput
// with many calls in flight on each connection.
func BenchmarkTCPCallParallel(b *testing.B) {
	for _, conns := range []int{1, 2, 4} {
		b.Run(map[int]string{1: "conns=1", 2: "conns=2", 4: "conns=4"}[conns], func(b *testing.B) {
			cli, addr := benchPair(b, conns)
			req := bytes.Repeat([]byte("x"), 100)
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					if _, err := cli.Call(ctx, addr, req); err != nil {
						b.Error(err)
						cancel()
						return
					}
					cancel()
				}
			})
			reportRate(b)
		})
	}
}

// BenchmarkMemCall measures the in-memory twin's overhead.
func BenchmarkMemCall(b *testing.B) {
	n := NewNetwork(1)
	n.Listen("srv", echo)
	cli := n.Listen("cli", nil)
	req := bytes.Repeat([]byte("x"), 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Call(context.Background(), "srv", req); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
