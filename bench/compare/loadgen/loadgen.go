// Package loadgen is the closed-loop driver shared by the comparison's load
// programs (httpload, etcdgrpc): a fixed number of workers, each with one
// request in flight, for a fixed time, then one line: label, op, ops/s,
// p50/p99 in ms, errors. One driver, so two systems' rows differ by what
// is driven, not by how.
package loadgen

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"
)

// Config is the load's shape; Flags fills it from the command line.
type Config struct {
	Op          string
	Workers     int
	Duration    time.Duration
	ValueSize   int
	Keys        int
	KeyPrefix   string
	Label       string
	Endpoints   string
	Consistency string
}

// Flags registers the shared flags on the default flag set; call
// flag.Parse after it.
func Flags(defaultEndpoints string) *Config {
	c := &Config{}
	flag.StringVar(&c.Op, "op", "put", "put or get")
	flag.StringVar(&c.Endpoints, "endpoints", defaultEndpoints, "comma-separated endpoints")
	flag.IntVar(&c.Workers, "c", 64, "workers, each with one request in flight")
	flag.DurationVar(&c.Duration, "d", 10*time.Second, "how long to run")
	flag.IntVar(&c.ValueSize, "size", 100, "value bytes")
	flag.IntVar(&c.Keys, "keys", 100000, "key space (uniform)")
	flag.StringVar(&c.KeyPrefix, "prefix", "k", "key prefix: keys are PREFIX0..PREFIX(keys-1)")
	flag.StringVar(&c.Label, "label", "", "label printed in the first column")
	flag.StringVar(&c.Consistency, "consistency", "quorum", "quorumkv consistency level")
	return c
}

// Run drives do from c.Workers goroutines until c.Duration has passed and
// prints the result line (and the last error, on stderr). do gets the
// worker's number and a key drawn uniformly from the key space; an error
// counts the request as failed.
func Run(c *Config, do func(worker int, key string) error) {
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		last string
	)
	deadline := time.Now().Add(c.Duration)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var mine []time.Duration
			bad := 0
			var lastErr string
			for time.Now().Before(deadline) {
				key := fmt.Sprintf("%s%d", c.KeyPrefix, rng.IntN(c.Keys))
				t0 := time.Now()
				if err := do(w, key); err != nil {
					bad++
					lastErr = err.Error()
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			errs += bad
			if lastErr != "" {
				last = lastErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(p*float64(len(lats)-1))].Microseconds()) / 1000
	}
	fmt.Printf("%-24s %-4s %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d\n",
		c.Label, c.Op, float64(len(lats))/elapsed.Seconds(), pct(0.50), pct(0.99), errs)
	if last != "" {
		fmt.Fprintf(os.Stderr, "%s: last error: %s\n", c.Label, last)
	}
}
