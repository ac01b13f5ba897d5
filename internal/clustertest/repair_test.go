package clustertest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/antientropy"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/clustertest"
	"github.com/quorumkv/quorumkv/node"
)

// slowMachine is the request timeout of the repair tests: they check
// convergence, not failure timing, and must not fail with 504s when the
// machine is busy.
const slowMachine = 3 * time.Second

// fastRepair runs anti-entropy every 100ms, unthrottled, and turns read
// repair off so that what heals the replicas is anti-entropy alone.
func fastRepair(extra func(i int, cfg *node.Config)) func(int, *node.Config) {
	return func(i int, cfg *node.Config) {
		cfg.AntiEntropyInterval = 100 * time.Millisecond
		cfg.AntiEntropyKeysPerSec, cfg.AntiEntropyBytesPerSec = 0, 0
		cfg.DisableReadRepair = true
		if extra != nil {
			extra(i, cfg)
		}
		tune := cfg.AntiEntropyTune
		cfg.AntiEntropyTune = func(ac *antientropy.Config) {
			ac.RequestsPerSec = 0
			if tune != nil {
				tune(ac)
			}
		}
	}
}

// parallel runs fn(0..n-1) on 8 goroutines and fails on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// rewrite reads key at level through cl and writes value (or deletes, when
// value is nil) with the context it read, so the write supersedes what the
// read saw.
func rewrite(ctx context.Context, cl *client.Client, key string, value []byte, level string) error {
	res, err := cl.Get(ctx, []byte(key), client.Options{Consistency: level})
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	o := client.Options{Consistency: level, Context: res.Context}
	if value == nil {
		_, err = cl.Delete(ctx, []byte(key), o)
	} else {
		_, err = cl.Put(ctx, []byte(key), value, o)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// scenario is what the replicas must agree on after repair.
type scenario struct {
	live     map[string]string
	deleted  []string
	siblings map[string][]string
}

// divergeDuringPartition writes 200 keys everywhere, cuts node 2 off, makes
// 1,000 quorum writes (800 new keys, 200 updates) and 100 deletes (50 of
// keys node 2 holds an old value of, 50 of keys it never saw) on the other
// side, plus 10 writes on node 2 alone that are concurrent with the
// majority's updates, then heals the partition.
func divergeDuringPartition(t *testing.T, c *clustertest.Cluster) scenario {
	t.Helper()
	cl := c.Client()
	ctx := clustertest.Ctx(t, time.Minute)
	s := scenario{live: map[string]string{}, siblings: map[string][]string{}}
	all := client.Options{Consistency: "all"}
	parallel(t, 200, func(i int) error {
		_, err := cl.At(i%3).Put(ctx, fmt.Appendf(nil, "old-%03d", i), fmt.Appendf(nil, "v0-%d", i), all)
		return err
	})

	c.Partition([]int{0, 1}, []int{2})
	parallel(t, 1000, func(i int) error {
		at := cl.At(i % 2)
		if i < 800 {
			_, err := at.Put(ctx, fmt.Appendf(nil, "new-%03d", i), fmt.Appendf(nil, "v1-%d", i), client.Options{Consistency: "quorum"})
			return err
		}
		return rewrite(ctx, at, fmt.Sprintf("old-%03d", i-800), fmt.Appendf(nil, "v1-%d", i-800), "quorum")
	})
	parallel(t, 100, func(i int) error {
		key := fmt.Sprintf("old-%03d", i)
		if i >= 50 {
			key = fmt.Sprintf("new-%03d", i)
		}
		return rewrite(ctx, cl.At(i%2), key, nil, "quorum")
	})
	// Node 2 alone supersedes its own old version of ten keys: concurrent
	// with the majority's updates, so both must survive as siblings.
	parallel(t, 10, func(i int) error {
		return rewrite(ctx, cl.At(2), fmt.Sprintf("old-%03d", 100+i), fmt.Appendf(nil, "v2-%d", 100+i), "one")
	})
	c.Heal()

	for i := range 200 {
		key := fmt.Sprintf("old-%03d", i)
		switch {
		case i < 50:
			s.deleted = append(s.deleted, key)
		case i >= 100 && i < 110:
			s.siblings[key] = []string{fmt.Sprintf("v1-%d", i), fmt.Sprintf("v2-%d", i)}
		default:
			s.live[key] = fmt.Sprintf("v1-%d", i)
		}
	}
	for i := range 800 {
		key := fmt.Sprintf("new-%03d", i)
		if i >= 50 && i < 100 {
			s.deleted = append(s.deleted, key)
		} else {
			s.live[key] = fmt.Sprintf("v1-%d", i)
		}
	}
	return s
}

// check reads every key of s from every node at level all and compares.
func (s scenario) check(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	cl := c.Client()
	ctx := clustertest.Ctx(t, time.Minute)
	all := client.Options{Consistency: "all"}
	for _, key := range s.deleted {
		res, err := cl.At(0).Get(ctx, []byte(key), all)
		if err != nil || res.Found {
			t.Fatalf("deleted key %s: found=%v values=%q err=%v (resurrected)", key, res.Found, res.Values, err)
		}
	}
	for key, want := range s.live {
		res, err := cl.At(1).Get(ctx, []byte(key), all)
		if err != nil || len(res.Values) != 1 || string(res.Values[0]) != want {
			t.Fatalf("key %s = %q (err %v), want [%s]", key, res.Values, err, want)
		}
	}
	for key, want := range s.siblings {
		res, err := cl.At(2).Get(ctx, []byte(key), all)
		var got []string
		for _, v := range res.Values {
			got = append(got, string(v))
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("key %s = %q (err %v), want siblings %q: a concurrent version was overwritten", key, got, err, want)
		}
	}
}

func TestRepairHealsPartitionedReplica(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{RequestTimeout: slowMachine, Seed: 31, Configure: fastRepair(nil)})
	s := divergeDuringPartition(t, c)
	if ok, why := c.Converged(); ok {
		t.Fatal("replicas agree right after the partition healed; the scenario did not diverge them")
	} else {
		t.Logf("diverged: %s", why)
	}
	if err := c.WaitConverged(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.check(t, c)
	var repaired int64
	for i := range 3 {
		repaired += c.Node(i).AntiEntropy().Stats.KeysRepaired.Load()
	}
	// Node 2 missed 1,000 writes and 100 deletes; the majority misses the
	// ten concurrent versions.
	if repaired < 1000 {
		t.Fatalf("anti-entropy repaired %d keys, want at least 1000", repaired)
	}
}

// The negative control: with anti-entropy and read repair off, the same
// scenario must leave the replicas apart, or the convergence check above
// proves nothing.
func TestRepairNegativeControlDoesNotConverge(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{RequestTimeout: slowMachine, Seed: 31, Configure: fastRepair(func(_ int, cfg *node.Config) {
		cfg.DisableAntiEntropy = true
	})})
	divergeDuringPartition(t, c)
	if err := c.WaitConverged(2 * time.Second); err == nil {
		t.Fatal("replicas converged with anti-entropy and read repair off: the convergence check cannot fail")
	} else {
		t.Logf("as expected: %v", err)
	}
}

func TestRepairRefillsWipedReplica(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{RequestTimeout: slowMachine, Seed: 32, Configure: fastRepair(nil)})
	cl := c.Client()
	ctx := clustertest.Ctx(t, time.Minute)
	all := client.Options{Consistency: "all"}
	parallel(t, 1000, func(i int) error {
		_, err := cl.At(i%3).Put(ctx, fmt.Appendf(nil, "k%04d", i), fmt.Appendf(nil, "v%d", i), all)
		return err
	})
	parallel(t, 50, func(i int) error { return rewrite(ctx, cl.At(i%3), fmt.Sprintf("k%04d", i), nil, "all") })
	// Node 2 coordinates several versions of one key, so its actor's
	// counter for the key is well above 1.
	for i := range 5 {
		if err := rewrite(ctx, cl.At(2), "kv679", fmt.Appendf(nil, "before-%d", i), "all"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitConverged(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	want, _ := c.MerkleRoots(0)
	oldActor := c.Node(2).Actor()

	c.Kill(2)
	c.Wipe(2)
	c.Restart(2)
	cl = c.Client() // the restarted node serves on a new port
	if c.Node(2).Actor() == oldActor {
		t.Fatalf("wiped node restarted with its old actor id %s", oldActor)
	}
	// Riak's kv679: a write coordinated by the wiped node, without context,
	// must not be taken for one of its old versions and dropped.
	if _, err := cl.At(2).Put(ctx, []byte("kv679"), []byte("after-wipe"), client.Options{Consistency: "all"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConverged(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := cl.At(0).Get(ctx, []byte("kv679"), all)
	if err != nil || !slices.ContainsFunc(res.Values, func(v []byte) bool { return string(v) == "after-wipe" }) {
		t.Fatalf("kv679 = %q (err %v): the wiped node's new write was lost", res.Values, err)
	}
	got, _ := c.MerkleRoots(2)
	refilled := 0
	for p, root := range got {
		if root == want[p] {
			refilled++
		}
	}
	// Every partition but kv679's is back to exactly its old content.
	if refilled < len(got)-1 {
		t.Fatalf("only %d of %d partitions refilled to their old content", refilled, len(got))
	}
	for i := 50; i < 1000; i += 97 {
		key := fmt.Sprintf("k%04d", i)
		res, err := cl.At(2).Get(ctx, []byte(key), client.Options{Consistency: "all"})
		if err != nil || len(res.Values) != 1 || string(res.Values[0]) != fmt.Sprintf("v%d", i) {
			t.Fatalf("%s after refill = %q, err %v", key, res.Values, err)
		}
	}
	if n := c.Node(2).AntiEntropy().Stats.KeysRepaired.Load(); n < 1000 {
		t.Fatalf("wiped node repaired %d keys, want at least 1000 (every key and tombstone)", n)
	}
}

func TestHintsDeliveredExactlyOnce(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{RequestTimeout: slowMachine, Nodes: 5, Seed: 33, Configure: fastRepair(nil)})
	cl := c.Client()
	ctx := clustertest.Ctx(t, time.Minute)
	c.Kill(4)
	parallel(t, 300, func(i int) error {
		_, err := cl.At(i%4).Put(ctx, fmt.Appendf(nil, "h%03d", i), fmt.Appendf(nil, "v%d", i), client.Options{Consistency: "quorum"})
		return err
	})
	stats := func() (stored, delivered, expired, pending int64) {
		for i := range 5 {
			co := c.Node(i).Coordinator()
			stored += co.Stats.HintsStored.Load()
			delivered += co.Stats.HintsDelivered.Load()
			expired += co.Stats.HintsExpired.Load()
			if h, err := co.PendingHints(); err == nil {
				for _, n := range h {
					pending += n
				}
			}
		}
		return
	}
	// A quorum write is acknowledged after W replies; the hint for the dead
	// node is stored in the background, so wait for all of them: one per
	// key that has the dead node among its primaries.
	dead, want := c.Node(4).ID(), int64(0)
	for i := range 300 {
		if slices.Contains(c.Ring().Primaries(c.Ring().PartitionOf(fmt.Appendf(nil, "h%03d", i))), dead) {
			want++
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "every hint stored", func() bool {
		stored, _, _, pending := stats()
		return stored >= want && pending == stored
	})
	stored, _, _, pending := stats()
	if stored != want || pending != stored {
		t.Fatalf("hints stored %d, pending %d: want %d, all pending, while %s is down", stored, pending, want, dead)
	}
	c.Restart(4)
	restarted := time.Now()
	clustertest.WaitFor(t, 20*time.Second, "every hint delivered", func() bool {
		_, delivered, _, pending := stats()
		return pending == 0 && delivered >= stored
	})
	t.Logf("%d hints delivered %v after the restart", stored, time.Since(restarted))
	if err := c.WaitConverged(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("converged %v after the restart", time.Since(restarted))
	s2, delivered, expired, pending := stats()
	if s2 != stored || delivered != stored || expired != 0 || pending != 0 {
		t.Fatalf("hints stored %d (then %d), delivered %d, expired %d, pending %d: want each delivered exactly once", stored, s2, delivered, expired, pending)
	}
}

// A tombstone is purged only once every primary holds it and the grace
// period has passed; the replica that was down comes back with the old
// value and is overruled by the tombstone; after the purge nothing comes
// back, and the purge does not ping-pong between replicas.
func TestTombstonesPurgedOnlyWhenOnEveryReplica(t *testing.T) {
	const grace = 300 * time.Millisecond
	c := clustertest.New(t, clustertest.Options{RequestTimeout: slowMachine, Seed: 34, Configure: fastRepair(func(_ int, cfg *node.Config) {
		cfg.HintWindow = 100 * time.Millisecond
		cfg.TombstoneGrace = grace
		cfg.AntiEntropyTune = func(ac *antientropy.Config) { ac.SweepEvery = 1 }
	})})
	cl := c.Client()
	ctx := clustertest.Ctx(t, time.Minute)
	const keys = 50
	parallel(t, keys, func(i int) error {
		_, err := cl.At(i%3).Put(ctx, fmt.Appendf(nil, "d%02d", i), []byte("doomed"), client.Options{Consistency: "all"})
		return err
	})
	c.Kill(2)
	parallel(t, keys, func(i int) error { return rewrite(ctx, cl.At(i%2), fmt.Sprintf("d%02d", i), nil, "quorum") })

	ae := func(i int) *antientropy.Stats { return &c.Node(i).AntiEntropy().Stats }
	r0, r1 := ae(0).Rounds.Load(), ae(1).Rounds.Load()
	start := time.Now()
	clustertest.WaitFor(t, 20*time.Second, "ten sweeps past the grace period", func() bool {
		return ae(0).Rounds.Load() >= r0+10 && ae(1).Rounds.Load() >= r1+10 && time.Since(start) > 3*grace
	})
	for i := range 2 {
		if n, m := ae(i).TombstonesConfirmed.Load(), ae(i).TombstonesPurged.Load(); n != 0 || m != 0 {
			t.Fatalf("%s confirmed %d and purged %d tombstones while a primary was down", c.IDs()[i], n, m)
		}
	}

	c.Restart(2)
	cl = c.Client() // the restarted node serves on a new port
	totalKeys := func(i int) (n int) {
		for _, p := range c.Ring().PartitionsOf(c.IDs()[i]) {
			n += c.Node(i).AntiEntropy().Keys(p)
		}
		return n
	}
	restarted := time.Now()
	clustertest.WaitFor(t, 30*time.Second, "every tombstone purged on every replica", func() bool {
		return totalKeys(0) == 0 && totalKeys(1) == 0 && totalKeys(2) == 0
	})
	t.Logf("every tombstone purged %v after the restart", time.Since(restarted))
	purged := func() (n int64) {
		for i := range 3 {
			n += ae(i).TombstonesPurged.Load()
		}
		return n
	}
	if n := purged(); n != 3*keys {
		t.Fatalf("%d purges, want %d (each replica purges each tombstone once)", n, 3*keys)
	}
	for i := range keys {
		key := []byte(fmt.Sprintf("d%02d", i))
		res, err := cl.At(i%3).Get(ctx, key, client.Options{Consistency: "all"})
		if err != nil || res.Found {
			t.Fatalf("%s after purge: found=%v %q err=%v", key, res.Found, res.Values, err)
		}
	}
	// Nothing comes back in the rounds that follow, and nothing is purged
	// twice.
	r := [3]int64{ae(0).Rounds.Load(), ae(1).Rounds.Load(), ae(2).Rounds.Load()}
	clustertest.WaitFor(t, 20*time.Second, "ten more rounds everywhere", func() bool {
		return ae(0).Rounds.Load() >= r[0]+10 && ae(1).Rounds.Load() >= r[1]+10 && ae(2).Rounds.Load() >= r[2]+10
	})
	for i := range 3 {
		if n := totalKeys(i); n != 0 {
			t.Fatalf("%s holds %d keys again after the purge", c.IDs()[i], n)
		}
	}
	if n := purged(); n != 3*keys {
		t.Fatalf("%d purges after settling, want %d: tombstones ping-ponged", n, 3*keys)
	}
}

func TestRepairStatus(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{RequestTimeout: slowMachine, Seed: 35, Configure: fastRepair(nil)})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	if _, err := cl.At(0).Put(ctx, []byte("a"), []byte("1"), client.Options{Consistency: "all"}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "a round covering every partition", func() bool {
		st, err := cl.At(1).Status(ctx)
		return err == nil && st.AntiEntropy.Rounds > 0 && st.AntiEntropy.PartitionsCovered == st.AntiEntropy.PartitionsHeld
	})
	st, err := cl.At(1).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ae := st.AntiEntropy
	if ae.Interval != "100ms" || ae.PartitionsHeld != 64 || ae.Exchanges == 0 || ae.BytesSent == 0 || ae.LastRoundFinished == "" {
		t.Fatalf("anti-entropy status %+v", ae)
	}
	// One key written at all: every node of the three stores it.
	if st.Keys != 1 {
		t.Fatalf("status says the node stores %d keys, want 1", st.Keys)
	}
}
