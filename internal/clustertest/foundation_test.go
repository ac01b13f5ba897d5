package clustertest_test

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/clustertest"
	"github.com/quorumkv/quorumkv/node"
	"github.com/quorumkv/quorumkv/replication"
)

var (
	quorum = client.Options{Consistency: "quorum"}
	all    = client.Options{Consistency: "all"}
)

func TestQuorumSurvivesOneDownAndAllDoesNot(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 1})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)

	for i := 0; i < 20; i++ {
		if _, err := cl.At(i%3).Put(ctx, []byte(fmt.Sprint("k", i)), []byte(fmt.Sprint("v", i)), quorum); err != nil {
			t.Fatalf("put k%d: %v", i, err)
		}
	}
	c.Kill(2)
	for i := 0; i < 20; i++ {
		key := []byte(fmt.Sprint("k", i))
		res, err := cl.At(i%2).Get(ctx, key, quorum)
		if err != nil {
			t.Fatalf("quorum get %s with one node down: %v", key, err)
		}
		if !res.Found || string(res.Values[0]) != fmt.Sprint("v", i) {
			t.Fatalf("get %s = %q, want v%d", key, res.Values, i)
		}
		if _, err := cl.At(i%2).Put(ctx, key, []byte("w"), client.Options{Consistency: "quorum", Context: res.Context}); err != nil {
			t.Fatalf("quorum put %s with one node down: %v", key, err)
		}
	}
	_, err := cl.At(0).Get(ctx, []byte("k1"), all)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 503 || ce.Needed != 3 || ce.Acked != 2 {
		t.Fatalf("all read with one down: err=%v, want 503 needed=3 acked=2", err)
	}
	_, err = cl.At(1).Put(ctx, []byte("k1"), []byte("x"), all)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("all write with one down: err=%v, want unavailable", err)
	}
}

func TestTwoDownIsUnavailable(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 2})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	if _, err := cl.At(0).Put(ctx, []byte("a"), []byte("1"), quorum); err != nil {
		t.Fatal(err)
	}
	c.Kill(1)
	c.Kill(2)
	for _, op := range []func() error{
		func() error { _, err := cl.At(0).Get(ctx, []byte("a"), quorum); return err },
		func() error { _, err := cl.At(0).Put(ctx, []byte("a"), []byte("2"), quorum); return err },
	} {
		err := op()
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 503 || ce.Code != "unavailable" || ce.Needed != 2 || ce.Acked != 1 {
			t.Fatalf("err=%v, want 503 unavailable needed=2 acked=1", err)
		}
	}
	res, err := cl.At(0).Get(ctx, []byte("a"), client.Options{Consistency: "one"})
	if err != nil || string(res.Values[0]) != "1" {
		t.Fatalf("one read with two down: %v %q", err, res.Values)
	}
}

// TestClusterSmallerThanN: with fewer members than N every member holds
// every key. Named levels count the replicas there are (all is 2 of 2); a
// numeric r or w above them can never be met, so it is refused before it
// runs, with an error that says why, and writes nothing.
func TestClusterSmallerThanN(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 2, Replicas: 3, Seed: 9})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)

	put, err := cl.At(0).Put(ctx, []byte("a"), []byte("1"), all)
	if err != nil || put.Receipt.Replicas != 2 || put.Receipt.Acks != 2 {
		t.Fatalf("all write on two nodes: %+v %v, want 2 of 2", put, err)
	}
	for _, o := range []client.Options{{W: 2}, quorum} {
		if _, err := cl.At(1).Put(ctx, []byte("b"), []byte("1"), o); err != nil {
			t.Fatalf("write %+v on two nodes: %v", o, err)
		}
	}
	refused := func(what string, err error, op string) {
		t.Helper()
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 503 || ce.Needed != 3 || ce.Acked != 0 ||
			!strings.Contains(ce.Message, "a key has only 2 replicas while the cluster has fewer members than N=3") ||
			!strings.Contains(ce.Message, "the "+op+" was not run") || strings.Contains(ce.Message, "may still") {
			t.Fatalf("%s: err=%v, want 503 needed=3 acked=0 saying the %s was not run", what, err, op)
		}
	}
	_, err = cl.At(0).Put(ctx, []byte("a"), []byte("2"), client.Options{W: 3})
	refused("w=3", err, "write")
	_, err = cl.At(1).Delete(ctx, []byte("a"), client.Options{W: 3})
	refused("delete w=3", err, "write")
	_, err = cl.At(1).Get(ctx, []byte("a"), client.Options{R: 3})
	refused("r=3", err, "read")

	got, err := cl.At(1).Get(ctx, []byte("a"), all)
	if err != nil || len(got.Values) != 1 || string(got.Values[0]) != "1" {
		t.Fatalf("after refused writes: %q %v, want only the first value", got.Values, err)
	}
}

func TestSiblingsAndResolution(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 3})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	key := []byte("cart")
	if _, err := cl.At(0).Put(ctx, key, []byte("apple"), quorum); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.At(1).Put(ctx, key, []byte("pear"), quorum); err != nil {
		t.Fatal(err)
	}
	res, err := cl.At(2).Get(ctx, key, quorum)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, v := range res.Values {
		got = append(got, string(v))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"apple", "pear"}) {
		t.Fatalf("siblings = %q, want apple and pear", got)
	}
	if _, err := cl.At(2).Put(ctx, key, []byte("apple+pear"), client.Options{Context: res.Context}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		res, err := cl.At(i).Get(ctx, key, all)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Values) != 1 || string(res.Values[0]) != "apple+pear" {
			t.Fatalf("node %d after resolution: %q", i, res.Values)
		}
	}
	// A write carrying an old context (from before the resolution) stays
	// concurrent with what it did not see: a sibling, not a lost update.
	if _, err := cl.At(0).Put(ctx, key, []byte("stale"), client.Options{Context: res.Context}); err != nil {
		t.Fatal(err)
	}
	res2, err := cl.At(1).Get(ctx, key, all)
	got = got[:0]
	for _, v := range res2.Values {
		got = append(got, string(v))
	}
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"apple+pear", "stale"}) {
		t.Fatalf("write with an old context: %v %q, want siblings apple+pear and stale", err, got)
	}
}

func TestRestartKeepsData(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 4})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	for i := 0; i < 50; i++ {
		if _, err := cl.At(i%3).Put(ctx, []byte(fmt.Sprint("k", i)), []byte(fmt.Sprint("v", i)), all); err != nil {
			t.Fatal(err)
		}
	}
	c.Kill(0)
	c.Kill(1)
	c.Kill(2)
	c.Restart(0)
	c.Restart(1)
	c.Restart(2)
	cl = c.Client()
	for i := 0; i < 50; i++ {
		res, err := cl.At(2).Get(ctx, []byte(fmt.Sprint("k", i)), client.Options{Consistency: "one"})
		if err != nil || !res.Found || string(res.Values[0]) != fmt.Sprint("v", i) {
			t.Fatalf("after restart k%d: %v %q", i, err, res.Values)
		}
	}
}

func TestDeleteHidesAndKeepsContext(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 5})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	key := []byte("gone")
	w, err := cl.At(0).Put(ctx, key, []byte("x"), quorum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.At(1).Delete(ctx, key, client.Options{Context: w.Context}); err != nil {
		t.Fatal(err)
	}
	res, err := cl.At(2).Get(ctx, key, quorum)
	if err != nil || res.Found || res.Context == "" {
		t.Fatalf("after delete: err=%v found=%v context=%q", err, res.Found, res.Context)
	}

	// Without a context a delete removes what is stored too, whichever node
	// coordinates it, at every level but strong (which has its own test).
	for i, level := range []string{"one", "quorum", "all"} {
		o := client.Options{Consistency: level}
		key := []byte("blind-" + level)
		if _, err := cl.At(i).Put(ctx, key, []byte("v1"), all); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.At((i+1)%3).Put(ctx, key, []byte("v2"), all); err != nil { // a sibling of v1
			t.Fatal(err)
		}
		if _, err := cl.At((i+2)%3).Delete(ctx, key, o); err != nil {
			t.Fatalf("%s: delete without context: %v", level, err)
		}
		res, err := cl.At(i).Get(ctx, key, all)
		if err != nil || res.Found || len(res.Values) != 0 {
			t.Fatalf("%s: after a delete without context: err=%v found=%v values=%q", level, err, res.Found, res.Values)
		}
	}
	// A put without a context still makes a sibling (the brief's rule).
	key = []byte("blind-put")
	for _, v := range []string{"a", "b"} {
		if _, err := cl.At(0).Put(ctx, key, []byte(v), all); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := cl.At(1).Get(ctx, key, all); err != nil || len(res.Values) != 2 {
		t.Fatalf("two puts without context: %v %q, want two siblings", err, res.Values)
	}
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	before := runtime.NumGoroutine()
	c := clustertest.New(t, clustertest.Options{Seed: 6})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	for i := 0; i < 20; i++ {
		cl.At(i%3).Put(ctx, []byte(fmt.Sprint("k", i)), []byte("v"), quorum)
		cl.At(i%3).Get(ctx, []byte(fmt.Sprint("k", i)), quorum)
	}
	cl.Close()
	c.Close()
	clustertest.WaitFor(t, 10*time.Second, "goroutines to drain", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

// TestOverwriteSerialisesOnOneCoordinator: Overwrite writes (Redis SET)
// coordinated by one node replace each other in order, leaving no
// siblings, while a plain write without context still makes one.
func TestOverwriteSerialisesOnOneCoordinator(t *testing.T) {
	// A generous timeout: this test is about ordering, not speed, and a
	// loaded machine must not turn slow replicas into failures.
	c := clustertest.New(t, clustertest.Options{Seed: 9, RequestTimeout: 10 * time.Second})
	ctx := clustertest.Ctx(t, 60*time.Second)
	coord := c.Node(0).Coordinator()
	key := []byte("hot")
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := coord.Put(ctx, key, replication.Write{Value: []byte(fmt.Sprint(w, "-", i)), Overwrite: true}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	res, err := coord.Get(ctx, key, replication.Consistency{Level: replication.All})
	if err != nil || len(res.Object.Live()) != 1 {
		t.Fatalf("after 320 overwrites: %v, %d live versions, want 1", err, len(res.Object.Live()))
	}
	if _, err := coord.Put(ctx, key, replication.Write{Value: []byte("blind")}); err != nil {
		t.Fatal(err)
	}
	res, _ = coord.Get(ctx, key, replication.Consistency{Level: replication.All})
	if len(res.Object.Live()) != 2 {
		t.Fatalf("a write without context must be a sibling, got %d versions", len(res.Object.Live()))
	}
}

// TestHotKeyRequestsShare: concurrent overwrites of one key combine and
// concurrent reads of it coalesce (replication/coalesce.go), and what they
// answer is still right: every read returns one of the values written, the
// key ends with one version on every replica, and a read that starts after
// the last acknowledged write returns that write.
func TestHotKeyRequestsShare(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 11, RequestTimeout: 10 * time.Second, Configure: func(i int, cfg *node.Config) {
		cfg.DisableReadRepair = true
		cfg.AntiEntropyInterval = time.Hour
	}})
	c.Net.SetDelay(time.Millisecond, 3*time.Millisecond)
	ctx := clustertest.Ctx(t, 60*time.Second)
	coord := c.Node(0).Coordinator()
	key := []byte("hot")
	written := sync.Map{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				v := fmt.Sprint(w, "-", i)
				written.Store(v, true)
				if _, err := coord.Put(ctx, key, replication.Write{Value: []byte(v), Overwrite: true}); err != nil {
					t.Error(err)
					return
				}
				res, err := coord.Get(ctx, key, replication.Consistency{Level: replication.Quorum})
				if err != nil {
					t.Error(err)
					return
				}
				live := res.Object.Live()
				if len(live) != 1 {
					t.Errorf("read %d versions", len(live))
					return
				}
				if _, ok := written.Load(string(live[0].Value)); !ok {
					t.Errorf("read %q, never written", live[0].Value)
					return
				}
			}
		})
	}
	wg.Wait()
	st := &coord.Stats
	t.Logf("combined writes %d, coalesced reads %d of 320 each", st.CombinedWrites.Load(), st.CoalescedReads.Load())
	if st.CombinedWrites.Load() == 0 || st.CoalescedReads.Load() == 0 {
		t.Fatalf("no request shared: combined writes %d, coalesced reads %d", st.CombinedWrites.Load(), st.CoalescedReads.Load())
	}
	if _, err := coord.Put(ctx, key, replication.Write{Value: []byte("last"), Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		res, err := c.Node(i).Coordinator().Get(ctx, key, replication.Consistency{Level: replication.All})
		if err != nil || len(res.Object.Live()) != 1 || string(res.Object.Live()[0].Value) != "last" {
			t.Fatalf("via node %d after the last write: %v %v", i, err, res.Object.Live())
		}
	}
}

// TestConcurrentWritesBatchAndReachEveryReplica: many writers at once make
// each coordinator's pipes send several writes per message, and still every
// write reaches every replica (read repair and anti-entropy off, so only
// the writes themselves can have put the data there).
func TestConcurrentWritesBatchAndReachEveryReplica(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 7, Configure: func(i int, cfg *node.Config) {
		cfg.DisableReadRepair = true
		cfg.AntiEntropyInterval = time.Hour
	}})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 60*time.Second)
	const writers, each = 48, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Appendf(nil, "b%d-%d", w, i)
				opts := quorum
				if i%2 == 1 {
					opts = client.Options{Consistency: "one"}
				}
				if _, err := cl.At(w%3).Put(ctx, key, key, opts); err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var batches, writes int64
	for i := range 3 {
		st := &c.Node(i).Coordinator().Stats
		batches += st.ReplicaBatches.Load()
		writes += st.ReplicaBatchWrites.Load()
	}
	// Each write goes to two other replicas; writes at `one` may still be
	// on their way, so wait for every one of them to have been sent.
	deadline := time.Now().Add(10 * time.Second)
	for writes < 2*writers*each && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		batches, writes = 0, 0
		for i := range 3 {
			st := &c.Node(i).Coordinator().Stats
			batches += st.ReplicaBatches.Load()
			writes += st.ReplicaBatchWrites.Load()
		}
	}
	if writes != 2*writers*each {
		t.Fatalf("%d replica writes sent, want %d", writes, 2*writers*each)
	}
	if batches >= writes {
		t.Errorf("%d messages for %d replica writes: nothing was batched", batches, writes)
	}
	t.Logf("%d replica writes in %d messages (%.1f per message)", writes, batches, float64(writes)/float64(batches))
	for w := range writers {
		for i := range each {
			key := fmt.Appendf(nil, "b%d-%d", w, i)
			ex, err := cl.At(i%3).Explain(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			held := 0
			for _, r := range ex.Replicas {
				if r.Role == "primary" && r.Found && r.Siblings == 1 {
					held++
				}
			}
			if held != 3 {
				t.Fatalf("%s is held by %d of 3 primaries: %+v", key, held, ex.Replicas)
			}
		}
	}
}

// TestSlowReplicaIsSkippedBySpeculativeReads: a read asks R replicas; when
// one of them never answers (its answers to n1 are lost), the read asks the
// next replica after the speculation delay instead of waiting out its
// deadline. Every read succeeds well within the request timeout, and some
// report three replicas asked (the speculative one among them).
func TestSlowReplicaIsSkippedBySpeculativeReads(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 11, RequestTimeout: 2 * time.Second})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 60*time.Second)
	for i := range 20 {
		if _, err := cl.At(0).Put(ctx, fmt.Appendf(nil, "s%d", i), []byte("v"), all); err != nil {
			t.Fatal(err)
		}
	}
	// n2 still runs what n1 asks of it, but n1 never hears back.
	c.Net.Block("n2", "n1")
	defer c.Net.Unblock("n2", "n1")
	speculated := 0
	for i := range 20 {
		start := time.Now()
		res, err := cl.At(0).Get(ctx, fmt.Appendf(nil, "s%d", i), quorum)
		if err != nil || !res.Found {
			t.Fatalf("read s%d with n2's answers lost: %v", i, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("read s%d took %v: it waited for the silent replica", i, took)
		}
		if res.Receipt.Replicas == 3 {
			speculated++
		}
	}
	// n2 is one of the two remote primaries each read may pick first, at
	// random: with 20 reads, picking n3 every time has odds of 1 in 10^6.
	if speculated == 0 {
		t.Error("no read asked a third replica, so none met the silent one")
	}
	t.Logf("%d of 20 reads asked a third replica", speculated)
}

// TestExplainNamesKeysThatAreNotUTF8: explain's "key" is a JSON string,
// which cannot hold arbitrary bytes, so a key that is not UTF-8 also comes
// back whole in "key_base64" (and only such a key).
func TestExplainNamesKeysThatAreNotUTF8(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 10})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 30*time.Second)
	for _, key := range [][]byte{[]byte("\xff\xfe-raw"), []byte("plain")} {
		if _, err := cl.At(0).Put(ctx, key, []byte("v"), all); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		ex, err := cl.At(1).Explain(ctx, key)
		if err != nil {
			t.Fatalf("explain %q: %v", key, err)
		}
		want := []byte(nil)
		if string(key) != "plain" {
			want = key
		}
		if !slices.Equal(ex.KeyBase64, want) {
			t.Errorf("explain %q: key_base64 %q, want %q", key, ex.KeyBase64, want)
		}
		for _, r := range ex.Replicas {
			if !r.Found {
				t.Errorf("explain %q: replica %s did not find the key", key, r.Node)
			}
		}
	}
}
