package clustertest_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/clustertest"
	"github.com/quorumkv/quorumkv/node"
)

// BenchmarkAEForegroundP99 measures the p99 latency of quorum puts and gets
// of 100-byte values on an in-process 3-node cluster (ring of 1024
// partitions) while anti-entropy is
//
//	off        never compares anything (the baseline),
//	idle       runs a round every second over identical replicas,
//	repairing  refills a replica that missed AE_P99_MISSED writes (default
//	           20,000) while it was cut off, at the default throttle.
//
// The nodes and the load generator share the machine, as in the brief's
// reference figures. Each sub-benchmark loads for AE_P99_SECONDS (default
// 5) once, whatever b.N. AE_P99_KEYS_PER_SEC overrides the anti-entropy
// throttle (objects per second per node).
//
//	go test -run '^$' -bench BenchmarkAEForegroundP99 -benchtime 1x ./internal/clustertest/
func BenchmarkAEForegroundP99(b *testing.B) {
	missed := envInt("AE_P99_MISSED", 20000)
	keysPerSec := envInt("AE_P99_KEYS_PER_SEC", 0)
	window := time.Duration(envInt("AE_P99_SECONDS", 5)) * time.Second
	for _, mode := range []string{"off", "idle", "repairing"} {
		b.Run("ae="+mode, func(b *testing.B) {
			c := clustertest.New(b, clustertest.Options{Seed: 41, Partitions: 1024, RequestTimeout: 2 * time.Second,
				Configure: func(_ int, cfg *node.Config) {
					cfg.AntiEntropyInterval = time.Second
					cfg.DisableAntiEntropy = mode == "off"
					if keysPerSec > 0 {
						cfg.AntiEntropyKeysPerSec = keysPerSec
					}
				}})
			cl := c.Client()
			ctx := clustertest.Ctx(b, 10*time.Minute)
			// The divergence: writes node 2 does not see. In "idle" they
			// are repaired before the measurement starts.
			c.Partition([]int{0, 1}, []int{2})
			var next atomic.Int64
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v := make([]byte, 100)
					for {
						i := int(next.Add(1))
						if i > missed {
							return
						}
						if _, err := cl.At(w%2).Put(ctx, fmt.Appendf(nil, "pre%07d", i), v, client.Options{Consistency: "quorum"}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			c.Heal()
			if mode == "idle" {
				if err := c.WaitConverged(5 * time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			repairedBefore := c.Node(2).AntiEntropy().Stats.KeysRepaired.Load()

			b.ResetTimer()
			puts := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
			gets := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
			var mu sync.Mutex
			stop := time.Now().Add(window)
			var ops atomic.Int64
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v := make([]byte, 100)
					for i := 0; time.Now().Before(stop); i++ {
						key := fmt.Appendf(nil, "fg-%d-%d", w, i%500)
						t0 := time.Now()
						var err error
						if i%2 == 0 {
							_, err = cl.At(w%3).Put(ctx, key, v, client.Options{Consistency: "quorum"})
						} else {
							_, err = cl.At(w%3).Get(ctx, key, client.Options{Consistency: "quorum"})
						}
						us := time.Since(t0).Microseconds()
						if err != nil {
							b.Error(err)
							return
						}
						ops.Add(1)
						mu.Lock()
						if i%2 == 0 {
							puts.RecordValue(us)
						} else {
							gets.RecordValue(us)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(puts.ValueAtQuantile(99))/1000, "put-p99-ms")
			b.ReportMetric(float64(gets.ValueAtQuantile(99))/1000, "get-p99-ms")
			b.ReportMetric(float64(puts.ValueAtQuantile(50))/1000, "put-p50-ms")
			b.ReportMetric(float64(ops.Load())/window.Seconds(), "ops/s")
			b.ReportMetric(float64(c.Node(2).AntiEntropy().Stats.KeysRepaired.Load()-repairedBefore), "keys-repaired-during")
		})
	}
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
