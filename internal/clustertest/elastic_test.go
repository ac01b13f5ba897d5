package clustertest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/clustertest"
	"github.com/quorumkv/quorumkv/node"
)

// noRepair turns off every repair path except ownership transfer, so the
// transfers alone must move the data.
func noRepair(i int, cfg *node.Config) {
	cfg.AntiEntropyInterval = time.Hour
	cfg.DisableReadRepair = true
	cfg.TransferInterval = 50 * time.Millisecond
}

// settled reports whether no node has data to hand off or partitions still
// arriving.
func settled(c *clustertest.Cluster, live []int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, i := range live {
		st := c.Node(i).Status(ctx)
		if len(st.Transfers) > 0 || st.PartitionsArriving > 0 {
			return false
		}
		if p, err := c.Node(i).PendingHandoff(); err != nil || len(p) > 0 {
			return false
		}
	}
	return true
}

// TestJoinAndLeaveUnderLoad: nodes 4 and 5 join and node 1 leaves while a
// writer keeps writing at quorum. With anti-entropy and read repair off,
// every acknowledged write must end up readable and on every one of its
// key's current primaries.
func TestJoinAndLeaveUnderLoad(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 7, Configure: noRepair})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 120*time.Second)

	var (
		mu    sync.Mutex
		acked = map[string]string{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	write := func(w int) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key, val := fmt.Sprintf("w%d-k%05d", w, i), fmt.Sprintf("v%d", i)
			mu.Lock()
			ep := len(acked) % 3
			mu.Unlock()
			// Endpoints 1 and 2 (n2, n3) stay up for the whole test.
			if _, err := cl.At(1+ep%2).Put(ctx, []byte(key), []byte(val), client.Options{Consistency: "quorum"}); err == nil {
				mu.Lock()
				acked[key] = val
				mu.Unlock()
			}
		}
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go write(w)
	}
	waitAcked := func(n int) {
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d acknowledged writes", n), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= n
		})
	}
	waitAcked(300)
	n4 := c.AddNode()
	waitAcked(600)
	n5 := c.AddNode()
	waitAcked(900)
	c.Leave(0, 60*time.Second)
	waitAcked(1200)
	close(stop)
	wg.Wait()
	live := []int{1, 2, n4, n5}
	clustertest.WaitFor(t, 60*time.Second, "transfers to settle", func() bool { return settled(c, live) })

	r := c.Ring()
	for _, id := range []string{"n2", "n3", "n4", "n5"} {
		if r.PrimaryCount(id) == 0 {
			t.Fatalf("%s owns nothing after the moves", id)
		}
	}
	if r.Contains("n1") {
		t.Fatal("n1 is still in the ring after leaving")
	}
	missing := 0
	for key, val := range acked {
		ex, err := cl.At(1).Explain(ctx, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		for _, rep := range ex.Replicas {
			if rep.Role == "primary" && !rep.Found {
				missing++
				if missing < 5 {
					t.Errorf("%s missing on primary %s (%s)", key, rep.Node, rep.Error)
				}
			}
		}
		res, err := cl.At(2).Get(ctx, []byte(key), client.Options{Consistency: "quorum"})
		if err != nil || !res.Found || string(res.Values[len(res.Values)-1]) != val {
			t.Fatalf("acknowledged %s=%s read back as %q (%v)", key, val, res.Values, err)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged keys missing on some current primary", missing, len(acked))
	}
	t.Logf("%d acknowledged writes, all on every current primary", len(acked))
}

// TestHandoffResumesAfterReceiverCrash: the receiver of a partition
// transfer crashes halfway; when it is back the transfer goes on from
// where it stopped and finishes.
func TestHandoffResumesAfterReceiverCrash(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Seed: 8, Configure: func(i int, cfg *node.Config) {
		noRepair(i, cfg)
	}})
	cl := c.Client()
	ctx := clustertest.Ctx(t, 180*time.Second)
	const keys = 1200
	for i := 0; i < keys; i++ {
		if _, err := cl.At(i%3).Put(ctx, []byte(fmt.Sprintf("k%05d", i)), []byte("v"), client.Options{Consistency: "all"}); err != nil {
			t.Fatal(err)
		}
	}
	n4 := c.AddNode()
	// Kill the receiver as soon as some keys have arrived.
	clustertest.WaitFor(t, 30*time.Second, "the transfer to start", func() bool {
		return c.Node(n4).TransferStats().KeysMerged.Load() >= 200
	})
	received := c.Node(n4).TransferStats().KeysMerged.Load()
	c.Kill(n4)
	sentBefore := int64(0)
	for _, i := range []int{0, 1, 2} {
		sentBefore += c.Node(i).TransferStats().KeysSent.Load()
	}
	c.Restart(n4)
	clustertest.WaitFor(t, 60*time.Second, "transfers to settle", func() bool { return settled(c, []int{0, 1, 2, n4}) })
	sentTotal := int64(0)
	for _, i := range []int{0, 1, 2} {
		sentTotal += c.Node(i).TransferStats().KeysSent.Load()
	}
	share := int64(c.Ring().PrimaryCount("n4")) * keys / int64(c.Ring().Partitions())
	t.Logf("receiver had %d keys when killed; senders sent %d before and %d in all; n4's share is about %d keys", received, sentBefore, sentTotal, share)
	// Resumed, not restarted: the senders did not send everything again.
	if sentTotal > sentBefore+share*3/2+300 {
		t.Fatalf("senders sent %d keys after the crash, more than a restart from zero would", sentTotal-sentBefore)
	}
	for i := 0; i < keys; i++ {
		key := []byte(fmt.Sprintf("k%05d", i))
		ex, err := cl.At(0).Explain(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, rep := range ex.Replicas {
			if rep.Role == "primary" && !rep.Found {
				t.Fatalf("%s missing on primary %s after the resumed transfer", key, rep.Node)
			}
		}
	}
}
