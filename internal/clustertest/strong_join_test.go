package clustertest_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/fault"
	"github.com/quorumkv/quorumkv/internal/clustertest"
	"github.com/quorumkv/quorumkv/node"
	"github.com/quorumkv/quorumkv/ring"
)

// TestStrongLinearizableDuringJoin: strong reads and writes stay
// linearizable while two nodes join and partitions change owners (new
// owners fold in the old owners' data until the handoff is done; replicas
// refuse strong requests for partitions they do not own).
func TestStrongLinearizableDuringJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of load during ownership changes")
	}
	v := joinRun(t, 21, false)
	if v.Result != "Ok" {
		t.Fatalf("strong history during joins is %s, want linearizable", v.Result)
	}
	if v.Reads < 40 || v.Writes < 40 {
		t.Errorf("only %d reads and %d writes were checked", v.Reads, v.Writes)
	}
	t.Logf("%d reads, %d writes checked across two joins", v.Reads, v.Writes)
}

// TestFenceCoversEmptyNewOwner scripts the case the fence exists for: a
// strong write reaches a majority that includes n1, a join takes n1 out of
// the key's replica set, and a strong read then hits a majority made of a
// replica that missed the write and the new, still empty owner. With the
// fence the new owner folds in n1's copy and the read sees the write;
// without it (the negative control) the read misses it.
func TestFenceCoversEmptyNewOwner(t *testing.T) {
	for _, noFence := range []bool{false, true} {
		t.Run(fmt.Sprintf("fence=%v", !noFence), func(t *testing.T) {
			c := clustertest.New(t, clustertest.Options{Seed: 31, Configure: func(i int, cfg *node.Config) {
				cfg.TransferInterval = time.Hour
				cfg.AntiEntropyInterval = time.Hour
				cfg.DisableReadRepair = true
				cfg.DisableFence = noFence
			}})
			ctx := clustertest.Ctx(t, 30*time.Second)
			after, err := ring.New([]ring.Member{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "n4"}}, c.Ring().Partitions(), 3)
			if err != nil {
				t.Fatal(err)
			}
			var key []byte
			for i := 0; key == nil; i++ {
				k := []byte(fmt.Sprint("fence-", i))
				if !after.IsPrimary("n1", after.PartitionOf(k)) {
					key = k
				}
			}
			cl := c.Client()
			c.Net.Block("n1", "n3")
			if _, err := cl.At(0).Put(ctx, key, []byte("v1"), client.Options{Consistency: "strong"}); err != nil {
				t.Fatal(err)
			}
			// n1 → n3 stays cut until after the read: the write's call to
			// n3 may still be in flight after the client's answer, and
			// lifting the cut now could let it through, putting the write
			// on n3 and leaving nothing for the fence to do.
			c.AddNode()
			c.Net.Block("n3", "n2")
			res, err := cl.At(2).Get(ctx, key, client.Options{Consistency: "strong"})
			if err != nil {
				t.Fatal(err)
			}
			c.Net.Unblock("n1", "n3")
			sawWrite := res.Found && string(res.Values[0]) == "v1"
			if !noFence && !sawWrite {
				t.Fatalf("strong read after the join missed the acknowledged write: %q", res.Values)
			}
			if noFence && sawWrite {
				t.Fatal("negative control: without the fence the read still saw the write, so this scenario does not exercise the fence")
			}
		})
	}
}

func joinRun(t *testing.T, seed int64, noFence bool) clustertest.Verdict {
	c := clustertest.New(t, clustertest.Options{Seed: seed, RequestTimeout: 2 * time.Second, Configure: func(i int, cfg *node.Config) {
		cfg.TransferInterval = 50 * time.Millisecond
		cfg.DisableFence = noFence
	}})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(hc.CloseIdleConnections)
	urls := []string{c.URL(0), c.URL(1), c.URL(2)}
	clientAt := func(i int) *client.Client {
		cl, err := client.New(client.Config{Endpoints: []string{urls[i]}, HTTPClient: hc, Timeout: 3 * time.Second})
		if err != nil {
			panic(err)
		}
		return cl
	}
	// Preload some data so the joins have partitions to move.
	pre := clientAt(0)
	ctx := clustertest.Ctx(t, 60*time.Second)
	for i := 0; i < 300; i++ {
		if _, err := pre.Put(ctx, []byte(fmt.Sprintf("fill-%d", i)), []byte("x"), client.Options{Consistency: "strong"}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for k := 0; k < 6; k++ {
		keys = append(keys, fmt.Sprintf("join-lin-%d", k))
	}
	w := clustertest.RegisterWorkload{
		Level: client.LevelStrong, Keys: keys, Clients: 6, Nodes: 3, Client: clientAt, Seed: seed,
		NodeName: func(i int) string { return fmt.Sprintf("n%d", i+1) },
	}
	rec := fault.NewRecorder()
	run, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(run, rec) }()
	time.Sleep(time.Second)
	c.AddNode()
	time.Sleep(1500 * time.Millisecond)
	c.AddNode()
	wg.Wait()
	if failed := w.FinalReads(rec, 5*time.Second); len(failed) > 0 {
		t.Errorf("final reads failed for %v", failed)
	}
	v := clustertest.CheckLinearizable(rec.Ops(), 20*time.Second, t.TempDir())
	v.HTML = clustertest.KeepFile(t, v.HTML)
	clustertest.ReportVerdict(t, v)
	return v
}
