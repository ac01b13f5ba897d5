package clustertest_test

// Benchmarks of anti-entropy on its own: three stores on disk, three
// antientropy.Services talking over the real TCP transport on loopback, a
// 3-node ring of 1024 partitions with N=3 (so every node holds every
// partition). They give the figures of docs/repair.md:
//
//	go test -run '^$' -bench BenchmarkAE -benchtime 3x ./internal/clustertest/
//
// The data set is AE_BENCH_KEYS keys (default 100,000; set 1000000 for the
// 1M figures) of 100-byte values. It is built once and kept in
// $TMPDIR/quorumkv-ae-bench-<keys> (delete it to rebuild); each benchmark
// copies it for its three replicas.

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/antientropy"
	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transport"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

const aeValueBytes = 100

func aeBenchKeys() int {
	if n, err := strconv.Atoi(os.Getenv("AE_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func aeKey(i int) []byte { return fmt.Appendf(nil, "user%09d", i) }

// aeObject is the object a write of value coordinated by actor leaves on
// every replica.
func aeObject(actor string, value []byte) vclock.Object {
	o, _ := vclock.Object{}.Update(actor, nil, value, false)
	return o
}

var aeRing = func() *ring.Ring {
	r, err := ring.New([]ring.Member{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}, ring.DefaultPartitions, 3)
	if err != nil {
		panic(err)
	}
	return r
}()

func openBenchStore(tb testing.TB, dir string, onChange func(int, []byte, uint64, uint64, bool, bool)) *store.Store {
	tb.Helper()
	cfg := store.DefaultConfig()
	cfg.Dir, cfg.OnChange = dir, onChange
	st, err := store.Open(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// load writes keys [from, to) with fresh values coordinated by actor, on 32
// goroutines (badger groups concurrent commits).
func load(tb testing.TB, st *store.Store, from, to int, actor string, seed int64) {
	tb.Helper()
	const writers = 32
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(w)))
			v := make([]byte, aeValueBytes)
			for i := from + w; i < to; i += writers {
				rng.Read(v)
				k := aeKey(i)
				if _, _, err := st.Merge(aeRing.PartitionOf(k), k, aeObject(actor, v)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}

var baseOnce sync.Map // keys -> *sync.Once

// baseData returns the directory of a store holding the benchmark's keys,
// building it on first use.
func baseData(tb testing.TB, keys int) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("quorumkv-ae-bench-%d", keys))
	once, _ := baseOnce.LoadOrStore(keys, &sync.Once{})
	once.(*sync.Once).Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
			return
		}
		os.RemoveAll(dir)
		start := time.Now()
		st := openBenchStore(tb, dir, nil)
		load(tb, st, 0, keys, "n1.1", 1)
		if err := st.Close(); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("built %d keys in %s (%.0f keys/s)", keys, time.Since(start).Round(time.Millisecond), float64(keys)/time.Since(start).Seconds())
	})
	return dir
}

func copyDir(tb testing.TB, from, to string) {
	tb.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		tb.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" || e.Name() == "complete" {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			tb.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			tb.Fatal(err)
		}
	}
}

// aeCluster is three stores and services on loopback TCP.
type aeCluster struct {
	tb     testing.TB
	ids    []string
	stores []*store.Store
	svcs   []*antientropy.Service
	tcps   []*transport.TCP
	addrs  map[string]string
	keys   int
}

type aeTCP struct {
	t     *transport.TCP
	addrs map[string]string
}

func (a aeTCP) Call(ctx context.Context, peer string, req []byte) ([]byte, error) {
	return a.t.Call(ctx, a.addrs[peer], req)
}

type fixedRing struct{}

func (fixedRing) Ring() *ring.Ring { return aeRing }

// newAECluster opens the stores in dirs (n1, n2, n3) and rebuilds their
// trees. tune adjusts each service's config.
func newAECluster(tb testing.TB, dirs []string, keys int, tune func(*antientropy.Config)) *aeCluster {
	tb.Helper()
	c := &aeCluster{tb: tb, ids: []string{"n1", "n2", "n3"}, addrs: map[string]string{}, keys: keys}
	c.svcs = make([]*antientropy.Service, 3)
	for i, id := range c.ids {
		i := i
		var svc *antientropy.Service
		var mu sync.Mutex
		st := openBenchStore(tb, dirs[i], func(p int, k []byte, o, n uint64, had, has bool) {
			mu.Lock()
			s := svc
			mu.Unlock()
			if s != nil {
				s.OnChange(p, k, o, n, had, has)
			}
		})
		tcfg := transport.DefaultConfig()
		tcfg.ListenAddr = "127.0.0.1:0"
		tcp, err := transport.ListenTCP(tcfg, func(ctx context.Context, b []byte) ([]byte, error) {
			req, err := wire.DecodeRequest(b)
			if err != nil {
				return nil, err
			}
			return c.svcs[i].ServeRPC(ctx, req)
		})
		if err != nil {
			tb.Fatal(err)
		}
		c.addrs[id] = tcp.Addr()
		cfg := antientropy.DefaultConfig()
		cfg.ID, cfg.Partitions, cfg.Seed = id, aeRing.Partitions(), int64(i)
		if tune != nil {
			tune(&cfg)
		}
		s, err := antientropy.New(cfg, st, fixedRing{}, aeTCP{tcp, c.addrs}, func(string) bool { return true })
		if err != nil {
			tb.Fatal(err)
		}
		mu.Lock()
		svc = s
		mu.Unlock()
		c.stores = append(c.stores, st)
		c.svcs[i] = s
		c.tcps = append(c.tcps, tcp)
	}
	tb.Cleanup(c.close)
	start := time.Now()
	for _, s := range c.svcs {
		if err := s.Rebuild(context.Background()); err != nil {
			tb.Fatal(err)
		}
	}
	if keys > 0 {
		tb.Logf("rebuilt the trees of %d keys in %s per node", keys, (time.Since(start) / 3).Round(time.Millisecond))
	}
	return c
}

func (c *aeCluster) close() {
	for _, t := range c.tcps {
		t.Close()
	}
	for _, s := range c.stores {
		s.Close()
	}
}

// bytes is every anti-entropy byte put on the wire so far.
func (c *aeCluster) bytes() int64 {
	var n int64
	for _, s := range c.svcs {
		n += s.Stats.BytesSent.Load()
	}
	return n
}

// requests is every anti-entropy request sent so far.
func (c *aeCluster) requests() int64 {
	var n int64
	for _, s := range c.svcs {
		n += s.Stats.Requests.Load()
	}
	return n
}

// cpuTime is the CPU time this process used so far. Unlike wall time it
// hardly depends on what else runs on the machine, so it gives the cost of
// anti-entropy even on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// round runs one round on every node at once.
func (c *aeCluster) round() {
	var wg sync.WaitGroup
	for _, s := range c.svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Round(context.Background())
		}()
	}
	wg.Wait()
}

func (c *aeCluster) converged() bool {
	for p := range aeRing.Partitions() {
		r0, _ := c.svcs[0].Root(p)
		for _, s := range c.svcs[1:] {
			if r, _ := s.Root(p); r != r0 {
				return false
			}
		}
	}
	return true
}

// untilConverged runs rounds on every node, back to back, until the roots
// agree, and returns the rounds it took.
func (c *aeCluster) untilConverged(limit time.Duration) int {
	c.tb.Helper()
	start := time.Now()
	for n := 1; ; n++ {
		c.round()
		if c.converged() {
			return n
		}
		if time.Since(start) > limit {
			c.tb.Fatalf("not converged after %s", limit)
		}
	}
}

// dataBytes is the logical size of one replica: keys and values.
func dataBytes(keys int) float64 { return float64(keys) * float64(len(aeKey(0))+aeValueBytes) }

func threeCopies(b *testing.B, base string) []string {
	b.Helper()
	dirs := make([]string, 3)
	tmp := b.TempDir()
	for i := range dirs {
		dirs[i] = filepath.Join(tmp, fmt.Sprintf("n%d", i+1))
		copyDir(b, base, dirs[i])
	}
	return dirs
}

// One round on every node of a cluster whose replicas are identical: one
// root hash each way per partition and peer.
func BenchmarkAERoundIdentical(b *testing.B) {
	keys := aeBenchKeys()
	c := newAECluster(b, threeCopies(b, baseData(b, keys)), keys, nil)
	before, reqs, cpu := c.bytes(), c.requests(), cpuTime()
	b.ResetTimer()
	for range b.N {
		c.round()
	}
	b.StopTimer()
	per := float64(c.bytes()-before) / float64(b.N)
	b.ReportMetric(per, "bytes/round")
	b.ReportMetric(100*per/dataBytes(keys), "%data/round")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(c.requests()-reqs), "cpu-µs/request")
}

// One key differs on one replica; one round on every node finds and fixes it.
func BenchmarkAERoundOneDiff(b *testing.B) {
	keys := aeBenchKeys()
	c := newAECluster(b, threeCopies(b, baseData(b, keys)), keys, nil)
	rng := rand.New(rand.NewSource(2))
	var total int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		k := aeKey(rng.Intn(keys))
		if _, _, err := c.stores[2].Merge(aeRing.PartitionOf(k), k, aeObject("n3.1", []byte("changed"))); err != nil {
			b.Fatal(err)
		}
		before := c.bytes()
		b.StartTimer()
		c.round()
		b.StopTimer()
		total += c.bytes() - before
		if !c.converged() {
			b.Fatal("one round did not repair one key")
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/float64(b.N), "bytes/round")
	b.ReportMetric(100*float64(total)/float64(b.N)/dataBytes(keys), "%data/round")
}

// 1% of the keys get a new version on one replica; rounds run back to back
// on every node, with the default throttle, until every replica agrees.
func BenchmarkAEOnePercent(b *testing.B) {
	keys := aeBenchKeys()
	c := newAECluster(b, threeCopies(b, baseData(b, keys)), keys, nil)
	rng := rand.New(rand.NewSource(3))
	var total, reqs int64
	var rounds int
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range keys / 100 {
			k := aeKey(rng.Intn(keys))
			if _, _, err := c.stores[2].Merge(aeRing.PartitionOf(k), k, aeObject("n3.1", []byte("changed-"+strconv.Itoa(rng.Int())))); err != nil {
				b.Fatal(err)
			}
		}
		before, r0, cpu0 := c.bytes(), c.requests(), cpuTime()
		b.StartTimer()
		rounds += c.untilConverged(10 * time.Minute)
		b.StopTimer()
		total += c.bytes() - before
		reqs += c.requests() - r0
		cpu += cpuTime() - cpu0
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/float64(b.N), "bytes/repair")
	b.ReportMetric(float64(rounds)/float64(b.N), "rounds")
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/repair")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/repair")
}

// A node was down for 60 s while the others took 5,000 writes/s: 300,000
// new keys on n1 and n2 that n3 lacks. Rounds run back to back on every
// node, with the default throttle, until n3 has caught up.
func BenchmarkAECatchUp60s(b *testing.B) {
	const missed = 60 * 5000
	keys := aeBenchKeys()
	base := baseData(b, keys)
	for range b.N {
		b.StopTimer()
		tmp := b.TempDir()
		dirs := []string{filepath.Join(tmp, "n1"), filepath.Join(tmp, "n2"), filepath.Join(tmp, "n3")}
		copyDir(b, base, dirs[0])
		st := openBenchStore(b, dirs[0], nil)
		load(b, st, keys, keys+missed, "n1.1", 4)
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		copyDir(b, dirs[0], dirs[1])
		copyDir(b, base, dirs[2])
		c := newAECluster(b, dirs, keys+missed, nil)
		before, r0, cpu0 := c.bytes(), c.requests(), cpuTime()
		b.StartTimer()
		start := time.Now()
		rounds := c.untilConverged(30 * time.Minute)
		b.ReportMetric(time.Since(start).Seconds(), "s-to-converge")
		b.ReportMetric(float64(rounds), "rounds")
		b.ReportMetric(float64(c.bytes()-before), "bytes")
		b.ReportMetric(float64(c.requests()-r0), "requests")
		b.ReportMetric(float64(c.svcs[2].Stats.KeysRepaired.Load()), "keys-repaired")
		b.ReportMetric((cpuTime() - cpu0).Seconds(), "cpu-s")
	}
}

// The rebuild of every tree from one scan of the store, as after a start.
func BenchmarkAERebuild(b *testing.B) {
	keys := aeBenchKeys()
	dirs := threeCopies(b, baseData(b, keys))
	st := openBenchStore(b, dirs[0], nil)
	defer st.Close()
	b.ResetTimer()
	for range b.N {
		cfg := antientropy.DefaultConfig()
		cfg.ID, cfg.Partitions = "n1", aeRing.Partitions()
		svc, err := antientropy.New(cfg, st, fixedRing{}, aeTCP{}, func(string) bool { return true })
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.Rebuild(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

func getenv(name string) string { return os.Getenv(name) }
