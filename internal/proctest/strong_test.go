package proctest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/fault"
	"github.com/quorumkv/quorumkv/internal/clustertest"
	"github.com/quorumkv/quorumkv/internal/proctest"
)

// procRun runs a register workload on three real `quorumkv server`
// processes while a nemesis pauses (SIGSTOP, longer than failure detection
// with --gossip-profile local) or kills (SIGKILL, then restart on the same
// data) one node at a time, then resumes everything, reads every key once
// more and checks the history with Porcupine.
// procWorkload is a register workload whose clients talk to the nodes
// from, from+1, … (in turn, wrapping around the cluster's 3).
type procWorkload struct {
	clustertest.RegisterWorkload
	from, nodes int
}

func procRun(t *testing.T, ws []procWorkload, nem procFaults, seed int64, dur time.Duration, args ...string) clustertest.Verdict {
	t.Helper()
	c := proctest.Start(t, proctest.Options{Nodes: 3, Args: args})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	clients := make([]*client.Client, 3)
	for i := range clients {
		cl, err := client.New(client.Config{Endpoints: []string{c.URL(i)}, HTTPClient: hc, Timeout: 4 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
	}
	rec := fault.NewRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var keys []string
	for k, pw := range ws {
		w, from := pw.RegisterWorkload, pw.from
		w.Nodes = pw.nodes
		w.NodeName = func(i int) string { return c.Proc((from + i) % 3).ID }
		w.Client = func(i int) *client.Client { return clients[(from+i)%3] }
		w.Seed = seed + int64(k)*7919
		keys = append(keys, w.Keys...)
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx, rec) }()
	}
	log := procNemesis(ctx, t, c, seed, nem)
	wg.Wait()
	final := ws[0].RegisterWorkload
	final.Nodes, final.Keys = 3, keys
	final.Keys = slices.Compact(slices.Sorted(slices.Values(final.Keys)))
	final.NodeName = func(i int) string { return c.Proc(i).ID }
	final.Client = func(i int) *client.Client { return clients[i] }
	if failed := final.FinalReads(rec, 10*time.Second); len(failed) > 0 {
		t.Errorf("final reads failed for %v", failed)
	}
	t.Logf("nemesis: %s", strings.Join(log, "; "))
	v := clustertest.CheckLinearizable(rec.Ops(), 30*time.Second, t.TempDir())
	v.HTML = clustertest.KeepFile(t, v.HTML)
	clustertest.ReportVerdict(t, v)
	return v
}

// procFaults says which faults the nemesis injects, on which nodes.
type procFaults struct {
	kill    bool  // kill -9 and restart, besides pauses
	targets []int // nodes to fault; nil: any
}

// procNemesis alternates calm spells of 0.5–1.5s with a fault on one
// random node: a pause of 1.5–2.5s (the others declare it dead after about
// a second) or, when nem.kill, a kill -9 followed 0.3–1s later by a
// restart. It runs on the test goroutine until ctx ends, and leaves every
// node running.
func procNemesis(ctx context.Context, t *testing.T, c *proctest.Cluster, seed int64, nem procFaults) []string {
	t.Helper()
	rnd := rand.New(rand.NewPCG(uint64(seed), 0x70726f63))
	start := time.Now()
	var log []string
	stamp := func(s string) { log = append(log, fmt.Sprintf("%.1fs %s", time.Since(start).Seconds(), s)) }
	wait := func(lo, hi time.Duration) bool {
		tm := time.NewTimer(lo + time.Duration(rnd.Int64N(int64(hi-lo)+1)))
		defer tm.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-tm.C:
			return true
		}
	}
	for {
		if !wait(500*time.Millisecond, 1500*time.Millisecond) {
			return log
		}
		i := rnd.IntN(3)
		if nem.targets != nil {
			i = nem.targets[rnd.IntN(len(nem.targets))]
		}
		id := c.Proc(i).ID
		if !nem.kill || rnd.IntN(2) == 0 {
			c.Pause(i)
			stamp("SIGSTOP " + id)
			held := wait(1500*time.Millisecond, 2500*time.Millisecond)
			c.Resume(i)
			stamp("SIGCONT " + id)
			if !held {
				return log
			}
			continue
		}
		c.Kill(i)
		stamp("SIGKILL " + id)
		held := wait(300*time.Millisecond, time.Second)
		c.Restart(i)
		stamp("restarted " + id)
		if !held {
			return log
		}
	}
}

// TestRealProcessesStrongIsLinearizable: strong reads, writes and deletes
// by 6 clients on 3 keys, over HTTP to three real processes, stay
// linearizable while nodes are paused past failure detection and killed
// with SIGKILL and restarted.
func TestRealProcessesStrongIsLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	w := clustertest.RegisterWorkload{Level: client.LevelStrong, Keys: []string{"preal-0", "preal-1", "preal-2"}, Clients: 6}
	v := procRun(t, []procWorkload{{w, 0, 3}}, procFaults{kill: true}, 1, 15*time.Second)
	if v.Result != "Ok" {
		t.Fatalf("strong history over real processes is %s, want linearizable (see the minimized history above)", v.Result)
	}
	if v.SiblingReads > 0 {
		t.Errorf("%d strong reads returned siblings", v.SiblingReads)
	}
	if v.Reads < 100 || v.Writes < 100 {
		t.Errorf("only %d reads and %d writes were checked: the run proves little", v.Reads, v.Writes)
	}
}

// TestRealProcessesOneIsNotLinearizable is the negative control over real
// processes: each key's writer works through n1 at level one, readers
// through n2 and n3, and the nemesis pauses n2 or n3. n1 acknowledges each
// write alone; when the paused node resumes, the readers' first reads
// through it can answer from its replica before the writes sent to it
// while it was stopped are applied.
func TestRealProcessesOneIsNotLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	var ws []procWorkload
	for k := range 2 {
		ws = append(ws, procWorkload{clustertest.RegisterWorkload{Level: client.LevelOne, Keys: []string{fmt.Sprint("pone-", k)}, Clients: 1,
			ReadShare: 1e-9, DeleteShare: 1e-9, RefreshAfterFailure: true, FirstClient: 1000 + k}, 0, 1})
	}
	ws = append(ws, procWorkload{clustertest.RegisterWorkload{Level: client.LevelOne, Keys: []string{"pone-0", "pone-1"}, Clients: 4, ReadShare: 1}, 1, 2})
	v := procRun(t, ws, procFaults{targets: []int{1, 2}}, 1, 10*time.Second)
	if !v.StaleOnly() {
		t.Fatalf("level one with paused readers' nodes: porcupine says %s (without sibling reads: %s), want Illegal for stale reads", v.Result, v.WithoutSiblings)
	}
}
