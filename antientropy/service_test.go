package antientropy

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// fakeClock is a settable clock for grace periods.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type staticRing struct{ r *ring.Ring }

func (s staticRing) Ring() *ring.Ring { return s.r }

// testNode is one node's store and service.
type testNode struct {
	id  string
	st  *store.Store
	svc atomic.Pointer[Service]
}

// testCluster is a few services on real in-memory badger stores, calling
// each other directly through ServeRPC with wire encoding on both legs.
type testCluster struct {
	t     testing.TB
	ring  *ring.Ring
	clock *fakeClock
	nodes map[string]*testNode

	mu   sync.Mutex
	down map[string]bool
	// maxAnswer is the largest encoded answer seen.
	maxAnswer int
}

func newTestCluster(t testing.TB, ids []string, partitions, replicas int, tune func(*Config)) *testCluster {
	t.Helper()
	var members []ring.Member
	for _, id := range ids {
		members = append(members, ring.Member{ID: id})
	}
	r, err := ring.New(members, partitions, replicas)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, ring: r, clock: &fakeClock{now: time.Unix(1_700_000_000, 0)}, nodes: map[string]*testNode{}, down: map[string]bool{}}
	for _, id := range ids {
		n := &testNode{id: id}
		scfg := store.DefaultConfig()
		scfg.InMemory = true
		scfg.OnChange = func(p int, key []byte, o, nw uint64, had, has bool) {
			if s := n.svc.Load(); s != nil {
				s.OnChange(p, key, o, nw, had, has)
			}
		}
		if n.st, err = store.Open(scfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.st.Close() })
		cfg := DefaultConfig()
		cfg.ID, cfg.Partitions, cfg.Now = id, partitions, tc.clock.Now
		cfg.KeysPerSec, cfg.BytesPerSec, cfg.RequestsPerSec, cfg.ScanKeysPerSec = 0, 0, 0, 0
		cfg.TombstoneGrace = time.Hour
		if tune != nil {
			tune(&cfg)
		}
		svc, err := New(cfg, n.st, staticRing{r}, tc, func(peer string) bool { return tc.up(peer) })
		if err != nil {
			t.Fatal(err)
		}
		n.svc.Store(svc)
		tc.nodes[id] = n
	}
	return tc
}

func (tc *testCluster) up(id string) bool {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return !tc.down[id]
}

func (tc *testCluster) setDown(id string, down bool) {
	tc.mu.Lock()
	tc.down[id] = down
	tc.mu.Unlock()
}

// Call implements Transport.
func (tc *testCluster) Call(ctx context.Context, peer string, b []byte) ([]byte, error) {
	if !tc.up(peer) {
		return nil, errors.New("unreachable")
	}
	req, err := wire.DecodeRequest(b)
	if err != nil {
		return nil, err
	}
	out, err := tc.nodes[peer].svc.Load().ServeRPC(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("remote: %v", err) // errors cross the wire as text
	}
	tc.mu.Lock()
	tc.maxAnswer = max(tc.maxAnswer, len(out))
	tc.mu.Unlock()
	return out, nil
}

func (tc *testCluster) svc(id string) *Service { return tc.nodes[id].svc.Load() }

func (tc *testCluster) rebuildAll() {
	tc.t.Helper()
	for _, n := range tc.nodes {
		if err := n.svc.Load().Rebuild(context.Background()); err != nil {
			tc.t.Fatal(err)
		}
	}
}

// write stores a new version of key on node id, coordinated by actor.
func (tc *testCluster) write(id string, p int, key, actor, value string, tombstone bool) {
	tc.t.Helper()
	_, err := tc.nodes[id].st.Update(p, []byte(key), func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
		next, _ := cur.Update(actor, cur.Clock, []byte(value), tombstone)
		return next, true, nil
	})
	if err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testCluster) get(id string, p int, key string) (vclock.Object, bool) {
	tc.t.Helper()
	o, ok, err := tc.nodes[id].st.Get(p, []byte(key))
	if err != nil {
		tc.t.Fatal(err)
	}
	return o, ok
}

// copyKey copies node from's object of key to node to.
func (tc *testCluster) copyKey(from, to string, p int, key string) {
	tc.t.Helper()
	o, ok := tc.get(from, p, key)
	if !ok {
		tc.t.Fatalf("%s has no %s", from, key)
	}
	if _, _, err := tc.nodes[to].st.Merge(p, []byte(key), o); err != nil {
		tc.t.Fatal(err)
	}
}

// contents returns every (key, object) of partition p on node id.
func (tc *testCluster) contents(id string, p int) map[string]vclock.Object {
	out := map[string]vclock.Object{}
	if err := tc.nodes[id].st.Scan(p, func(k []byte, o vclock.Object) (bool, error) {
		out[string(k)] = o
		return true, nil
	}); err != nil {
		tc.t.Fatal(err)
	}
	return out
}

// scanRoot builds a fresh tree of partition p from a scan of node id's store.
func (tc *testCluster) scanRoot(id string, p int) uint64 {
	tr := NewTree()
	if err := tc.nodes[id].st.ScanHashes(p, nil, nil, func(k []byte, h uint64) (bool, error) {
		tr.Insert(k, h)
		return true, nil
	}); err != nil {
		tc.t.Fatal(err)
	}
	return tr.Root()
}

func sameContents(a, b map[string]vclock.Object) error {
	for k, o := range a {
		p, ok := b[k]
		if !ok {
			return fmt.Errorf("key %q only on one side", k)
		}
		if !o.Equal(p) {
			return fmt.Errorf("key %q differs", k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return fmt.Errorf("key %q only on the other side", k)
		}
	}
	return nil
}

func TestConfigValidateReportsEverything(t *testing.T) {
	if err := (Config{}).Validate(); err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) < 10 {
		t.Fatalf("Validate of a zero config = %v, want every problem", err)
	}
	cfg := DefaultConfig()
	cfg.ID, cfg.Partitions = "n1", 64
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

// One exchange, started by either side, repairs both: keys only one side
// holds, keys where one side is newer, and concurrent versions, which end
// as siblings on both. Small pages and batches exercise the paging.
func TestExchangeRepairsBothSides(t *testing.T) {
	for _, starter := range []string{"a", "b"} {
		t.Run("started by "+starter, func(t *testing.T) {
			tc := newTestCluster(t, []string{"a", "b"}, 4, 2, func(c *Config) {
				c.SegmentPageKeys, c.BatchKeys, c.BatchBytes = 7, 5, 300
			})
			const p = 2
			for i := range 300 {
				k := fmt.Sprintf("common-%d", i)
				tc.write("a", p, k, "a.1", "v", false)
				tc.copyKey("a", "b", p, k)
			}
			for i := range 50 {
				tc.write("a", p, fmt.Sprintf("a-only-%d", i), "a.1", "x", false)
				tc.write("b", p, fmt.Sprintf("b-only-%d", i), "b.1", "y", false)
			}
			for i := range 20 {
				k := fmt.Sprintf("newer-on-a-%d", i)
				tc.write("b", p, k, "b.1", "old", false)
				tc.copyKey("b", "a", p, k)
				tc.write("a", p, k, "a.1", "new", false)
				k = fmt.Sprintf("concurrent-%d", i)
				tc.write("a", p, k, "a.1", "from-a", false)
				tc.write("b", p, k, "b.1", "from-b", false)
			}
			tc.rebuildAll()
			if err := tc.svc(starter).ExchangePartition(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			a, b := tc.contents("a", p), tc.contents("b", p)
			if err := sameContents(a, b); err != nil {
				t.Fatalf("after one exchange: %v", err)
			}
			if len(a) != 300+100+40 {
				t.Fatalf("%d keys, want 440", len(a))
			}
			for i := range 20 {
				if o := a[fmt.Sprintf("concurrent-%d", i)]; len(o.Live()) != 2 {
					t.Fatalf("concurrent key has %d siblings, want 2", len(o.Live()))
				}
				if o := b[fmt.Sprintf("newer-on-a-%d", i)]; len(o.Live()) != 1 || string(o.Live()[0].Value) != "new" {
					t.Fatalf("newer key on b = %+v, want the newer version only", o.Live())
				}
			}
			ra, _ := tc.svc("a").Root(p)
			rb, _ := tc.svc("b").Root(p)
			if ra != rb || ra != tc.scanRoot("a", p) {
				t.Fatalf("roots %x and %x (scan %x) after repair", ra, rb, tc.scanRoot("a", p))
			}
			repaired := tc.svc("a").Stats.KeysRepaired.Load() + tc.svc("b").Stats.KeysRepaired.Load()
			if repaired != 50+50+20+20+20 {
				t.Fatalf("%d keys repaired, want 160", repaired)
			}
		})
	}
}

// A wiped replica holds nothing: every key is RemoteOnly. It refills in
// pages and batches, never one giant message.
func TestEmptyReplicaRefillsInSmallMessages(t *testing.T) {
	tc := newTestCluster(t, []string{"a", "b"}, 2, 2, func(c *Config) {
		c.SegmentPageKeys, c.BatchKeys, c.BatchBytes = 128, 64, 16<<10
	})
	const p = 1
	value := string(make([]byte, 100))
	for i := range 5000 {
		tc.write("a", p, fmt.Sprintf("key-%05d", i), "a.1", value, false)
	}
	tc.rebuildAll()
	if err := tc.svc("b").ExchangePartition(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if err := sameContents(tc.contents("a", p), tc.contents("b", p)); err != nil {
		t.Fatal(err)
	}
	if tc.maxAnswer > 64<<10 {
		t.Fatalf("largest answer %d bytes: the partition was not paged", tc.maxAnswer)
	}
	st := &tc.svc("b").Stats
	if st.KeysFetched.Load() != 5000 || st.KeysPushed.Load() != 0 {
		t.Fatalf("fetched %d, pushed %d; want 5000, 0", st.KeysFetched.Load(), st.KeysPushed.Load())
	}
	// All 5,000 keys' objects crossed the wire once, and not much else.
	if got, data := st.BytesReceived.Load(), int64(5000*(100+9)); got < data || got > 2*data {
		t.Fatalf("received %d bytes for %d bytes of keys and values", got, data)
	}
}

// Identical replicas exchange one hash each way per partition.
func TestIdenticalReplicasExchangeAlmostNothing(t *testing.T) {
	tc := newTestCluster(t, []string{"a", "b"}, 8, 2, nil)
	for p := range 8 {
		for i := range 50 {
			k := fmt.Sprintf("k%d-%d", p, i)
			tc.write("a", p, k, "a.1", "0123456789", false)
			tc.copyKey("a", "b", p, k)
		}
	}
	tc.rebuildAll()
	tc.svc("a").Round(context.Background())
	st := &tc.svc("a").Stats
	if st.Exchanges.Load() != 8 || st.KeysDiffering.Load() != 0 || st.HashesCompared.Load() != 8 {
		t.Fatalf("exchanges %d, differing %d, hashes %d; want 8, 0, 8", st.Exchanges.Load(), st.KeysDiffering.Load(), st.HashesCompared.Load())
	}
	sent := st.BytesSent.Load() + st.BytesReceived.Load()
	if per := sent / 8; per > 64 {
		t.Fatalf("%d bytes per identical partition, want a few dozen", per)
	}
	if tc.svc("a").Status().PartitionsCovered != 8 {
		t.Fatalf("status %+v: want all 8 partitions covered", tc.svc("a").Status())
	}
}

// A peer still building its trees answers ErrNotReady; the exchange is
// skipped for the round and works once the peer is ready.
func TestNotReadyPeerIsSkipped(t *testing.T) {
	tc := newTestCluster(t, []string{"a", "b"}, 2, 2, nil)
	tc.write("a", 0, "k", "a.1", "v", false)
	if err := tc.svc("a").ExchangePartition(context.Background(), 0); !errors.Is(err, ErrNotReady) {
		t.Fatalf("exchange before own rebuild: %v, want ErrNotReady", err)
	}
	if err := tc.svc("a").Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.svc("b").HandleRequest(context.Background(), wire.Request{Op: wire.OpTreeLevel, Partition: 0, Indices: []int{0}}); !errors.Is(err, ErrNotReady) {
		t.Fatalf("tree request before rebuild: %v, want ErrNotReady", err)
	}
	if err := tc.svc("a").ExchangePartition(context.Background(), 0); err == nil {
		t.Fatal("exchange with a peer that is still building succeeded")
	}
	if n := tc.svc("a").Stats.ExchangeErrors.Load(); n != 1 {
		t.Fatalf("exchange errors %d, want 1", n)
	}
	if err := tc.svc("b").Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tc.svc("a").ExchangePartition(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := tc.get("b", 0, "k"); !ok {
		t.Fatal("b did not get the key")
	}
}

// A node refuses every exchange request for a partition it is not a
// primary of, so no stray data lands there.
func TestRequestsForPartitionsNotHeldAreRefused(t *testing.T) {
	tc := newTestCluster(t, []string{"a", "b", "c"}, 16, 1, nil)
	tc.rebuildAll()
	var notHeld int
	for p := range 16 {
		if tc.ring.IsPrimary("a", p) {
			continue
		}
		notHeld = p
		break
	}
	for _, op := range []wire.Op{wire.OpTreeLevel, wire.OpSegment, wire.OpFetch, wire.OpMergeBatch} {
		_, err := tc.svc("a").HandleRequest(context.Background(), wire.Request{Op: op, Partition: notHeld, Indices: []int{0}, Keys: [][]byte{[]byte("k")},
			Objects: []wire.KeyObject{{Key: []byte("k"), Object: vclock.Object{}}}})
		if !errors.Is(err, ErrNotHeld) {
			t.Fatalf("op %d on partition %d: %v, want ErrNotHeld", op, notHeld, err)
		}
	}
	if _, err := tc.svc("a").HandleRequest(context.Background(), wire.Request{Op: wire.OpTreeLevel, Partition: tc.ring.PartitionsOf("a")[0], Level: 7}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("bad level: %v, want ErrInvalidRequest", err)
	}
}

// The rebuild races with writes (merges and purges) and must end with trees
// equal to a fresh scan of the store, whatever the interleaving.
func TestRebuildUnderConcurrentWrites(t *testing.T) {
	var during atomic.Int64 // writes that landed while the trees were building
	for iter := range 3 {
		tc := newTestCluster(t, []string{"a"}, 4, 1, nil)
		svc := tc.svc("a")
		st := tc.nodes["a"].st
		rng := rand.New(rand.NewSource(int64(iter)))
		for i := range 2000 {
			tc.write("a", i%4, fmt.Sprintf("k%d", rng.Intn(3000)), "a.1", "v", false)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewSource(int64(iter*10 + w)))
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					p, key := r.Intn(4), []byte(fmt.Sprintf("k%d", r.Intn(3000)))
					if r.Intn(5) == 0 {
						if o, ok, _ := st.Get(p, key); ok {
							st.Purge(p, key, o.Hash())
						}
						continue
					}
					st.Update(p, key, func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
						next, _ := cur.Update(fmt.Sprintf("w%d", w), cur.Clock, []byte("x"), r.Intn(3) == 0)
						return next, true, nil
					})
					if !svc.Ready() {
						during.Add(1)
					}
				}
			}()
		}
		if err := svc.Rebuild(context.Background()); err != nil {
			t.Fatal(err)
		}
		// A few more writes after the switch to direct updates.
		time.Sleep(time.Millisecond)
		close(stop)
		wg.Wait()
		for p := range 4 {
			if got, want := svc.trees[p].Root(), tc.scanRoot("a", p); got != want {
				t.Fatalf("iteration %d partition %d: tree root %x after rebuild, scan says %x", iter, p, got, want)
			}
		}
	}
	if during.Load() == 0 {
		t.Fatal("no write landed during a rebuild: the test did not test the race")
	}
	t.Logf("%d writes landed during rebuilds", during.Load())
}

// Store-backed replicas: the Merkle diff over real stores and real version
// vectors equals the set of keys whose objects differ, and the roots are
// equal exactly when every object is.
func TestStoreBackedDiffIsExact(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for iter := range 24 {
		tc := newTestCluster(t, []string{"a", "b"}, 1, 2, nil)
		n := 1 + rng.Intn(400)
		for i := range n {
			k := fmt.Sprintf("k%d", i)
			tc.write("a", 0, k, "a.1", "v", rng.Intn(10) == 0)
			tc.copyKey("a", "b", 0, k)
		}
		// Diverge a random number of keys (none, in some iterations). Each
		// write has its own actor: a dot names one value, and a purged key
		// must not make an actor reuse one.
		if iter%4 != 0 {
			for w := range rng.Intn(20) {
				k := fmt.Sprintf("k%d", rng.Intn(n+20))
				side := []string{"a", "b"}[rng.Intn(2)]
				actor := fmt.Sprintf("%s.w%d", side, w)
				switch rng.Intn(3) {
				case 0:
					tc.write(side, 0, k, actor, "new", false)
				case 1:
					tc.write(side, 0, k, actor, "", true)
				default:
					if o, ok := tc.get(side, 0, k); ok {
						tc.nodes[side].st.Purge(0, []byte(k), o.Hash())
					}
				}
			}
		}
		tc.rebuildAll()
		a, b := tc.contents("a", 0), tc.contents("b", 0)
		var want []string
		for k, o := range a {
			if p, ok := b[k]; !ok || !o.Equal(p) {
				want = append(want, k)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		diff, err := Compare(context.Background(), 0, tc.svc("a").local(), remote{tc.svc("a"), "b"}, DefaultShape())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range diff.Keys {
			got = append(got, string(k))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("iteration %d: diff %q, true difference %q", iter, got, want)
		}
		ra, _ := tc.svc("a").Root(0)
		rb, _ := tc.svc("b").Root(0)
		if (ra == rb) != (len(want) == 0) {
			t.Fatalf("iteration %d: roots equal=%v with %d differing keys", iter, ra == rb, len(want))
		}
	}
}

// The whole life of a tombstone: not purged while a primary is down, given
// to the primary that comes back with the old value, confirmed, purged after
// the grace period on every primary, and not handed back by the slower ones.
func TestTombstoneLifecycle(t *testing.T) {
	tc := newTestCluster(t, []string{"a", "b", "c"}, 2, 3, nil)
	ctx := context.Background()
	const p = 1
	tc.write("a", p, "k", "a.1", "v", false)
	tc.copyKey("a", "b", p, "k")
	tc.copyKey("a", "c", p, "k")
	tc.write("a", p, "k", "a.1", "", true) // the delete; c is down
	tc.copyKey("a", "b", p, "k")
	tc.rebuildAll()
	tc.setDown("c", true)
	a, b, c := tc.svc("a"), tc.svc("b"), tc.svc("c")
	step := func(svcs ...*Service) {
		t.Helper()
		for _, s := range svcs {
			s.ExchangePartition(ctx, p)
			if err := s.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		step(a, b)
		tc.clock.Advance(2 * time.Hour)
	}
	if n := a.Stats.TombstonesConfirmed.Load() + b.Stats.TombstonesConfirmed.Load(); n != 0 {
		t.Fatalf("%d tombstones confirmed while c was down", n)
	}

	tc.setDown("c", false)
	if err := a.ExchangePartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	if o, _ := tc.get("c", p, "k"); !o.Deleted() {
		t.Fatalf("c came back with the old value and kept it: %+v", o)
	}
	// Two steps: c notes the tombstone, then every node confirms it.
	step(a, b, c)
	step(a, b, c)
	if n := a.Stats.TombstonesConfirmed.Load(); n != 1 {
		t.Fatalf("a confirmed %d tombstones, want 1", n)
	}
	if n := a.Stats.TombstonesPurged.Load(); n != 0 {
		t.Fatal("a purged before the grace period")
	}
	tc.clock.Advance(30 * time.Minute)
	step(a, b, c)
	if n := a.Stats.TombstonesPurged.Load(); n != 0 {
		t.Fatal("a purged before the grace period")
	}
	// a alone passes its grace period (b and c confirmed later, say).
	tc.clock.Advance(time.Hour)
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := tc.get("a", p, "k"); ok || a.Stats.TombstonesPurged.Load() != 1 {
		t.Fatal("a did not purge after the grace period")
	}
	// b and c still hold the tombstone and offer it back, both ways.
	b.ExchangePartition(ctx, p)
	a.ExchangePartition(ctx, p)
	if _, ok := tc.get("a", p, "k"); ok {
		t.Fatal("the purged tombstone came back to a")
	}
	if a.Stats.TombstonesRefused.Load() < 2 {
		t.Fatalf("a refused %d offers, want the push and the pull", a.Stats.TombstonesRefused.Load())
	}
	step(b, c)
	for _, id := range []string{"a", "b", "c"} {
		if _, ok := tc.get(id, p, "k"); ok {
			t.Fatalf("%s still holds the tombstone", id)
		}
	}
	// Once every peer shows it lacks the key too, a forgets it.
	tc.clock.Advance(time.Minute)
	step(a)
	if a.Memo() != 0 {
		t.Fatalf("a still remembers %d purged tombstones", a.Memo())
	}
	if n := a.Stats.TombstonesPurged.Load() + b.Stats.TombstonesPurged.Load() + c.Stats.TombstonesPurged.Load(); n != 3 {
		t.Fatalf("%d purges, want 3", n)
	}
}

// The grace clock and the confirmation survive a restart: marks are in the
// store.
func TestTombstoneMarksSurviveRestart(t *testing.T) {
	tc := newTestCluster(t, []string{"a"}, 1, 1, nil)
	ctx := context.Background()
	tc.write("a", 0, "k", "a.1", "", true)
	tc.rebuildAll()
	a := tc.svc("a")
	a.Sweep(ctx) // noted
	a.Sweep(ctx) // confirmed: no other primary
	if a.Stats.TombstonesConfirmed.Load() != 1 {
		t.Fatal("a single-replica tombstone was not confirmed")
	}
	tc.clock.Advance(59 * time.Minute)
	// A new service on the same store, as after a restart.
	cfg := a.Config()
	b, err := New(cfg, tc.nodes["a"].st, staticRing{tc.ring}, tc, tc.up)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes["a"].svc.Store(b)
	if err := b.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	tc.clock.Advance(2 * time.Minute)
	if err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Stats.TombstonesPurged.Load() != 1 {
		t.Fatal("the restarted node did not purge when the grace period (started before the restart) ended")
	}
}

func TestLimiterPaces(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	l := newLimiter(1000, clk.Now) // burst 100
	if d := l.reserve(100); d != 0 {
		t.Fatalf("within the burst: wait %v", d)
	}
	if d := l.reserve(500); d != 500*time.Millisecond {
		t.Fatalf("500 over: wait %v, want 500ms", d)
	}
	// A second caller queues behind the debt.
	if d := l.reserve(100); d != 600*time.Millisecond {
		t.Fatalf("queued: wait %v, want 600ms", d)
	}
	clk.Advance(600 * time.Millisecond)
	if d := l.reserve(50); d != 50*time.Millisecond {
		t.Fatalf("after paying the debt: wait %v, want 50ms", d)
	}
	if d := newLimiter(0, clk.Now).reserve(1 << 30); d != 0 {
		t.Fatalf("unlimited: wait %v", d)
	}
}
