package proctest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/proctest"
)

// settled reports whether every listed node has no transfer running and no
// partition still arriving.
func settled(cl *client.Client, nodes []int) bool {
	for _, i := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cl.At(i).Status(ctx)
		cancel()
		if err != nil || len(st.Transfers) > 0 || st.PartitionsArriving > 0 {
			return false
		}
	}
	return true
}

func onEveryPrimary(t *testing.T, cl *client.Client, at int, keys int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < keys; i++ {
		key := []byte(fmt.Sprintf("k%04d", i))
		ex, err := cl.At(at).Explain(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, rep := range ex.Replicas {
			if rep.Role == "primary" && !rep.Found {
				t.Fatalf("%s missing on primary %s (%s)", key, rep.Node, rep.Error)
			}
		}
	}
}

// TestRealJoinAndLeave: with anti-entropy effectively off, a fourth
// process joins and takes its share by transfer, then `leave` makes the
// first node hand everything off and exit 0; every key is on all of its
// current primaries after each move.
func TestRealJoinAndLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 3, Args: []string{"--anti-entropy-interval", "1h"}})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const keys = 600
	for i := 0; i < keys; i++ {
		if _, err := cl.At(i%3).Put(ctx, []byte(fmt.Sprintf("k%04d", i)), []byte("v"), client.Options{Consistency: "quorum"}); err != nil {
			t.Fatal(err)
		}
	}
	n4 := c.Add()
	c.WaitMembers(4, 20*time.Second)
	cl = c.Client()
	deadline := time.Now().Add(60 * time.Second)
	for !settled(cl, []int{0, 1, 2, n4}) {
		if time.Now().After(deadline) {
			t.Fatal("transfers did not settle after the join")
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := cl.At(n4).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Partitions < 700 || m.Partitions > 840 {
			t.Fatalf("unbalanced after join: %s holds %d partitions (4 nodes, N=3: about 768)", m.ID, m.Partitions)
		}
	}
	onEveryPrimary(t, cl, n4, keys)

	if err := cl.At(0).Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(0, 90*time.Second); err != nil {
		t.Fatalf("leaving node did not exit 0: %v\n%s", err, c.Logs(0))
	}
	deadline = time.Now().Add(60 * time.Second)
	for !settled(cl, []int{1, 2, n4}) {
		if time.Now().After(deadline) {
			t.Fatal("transfers did not settle after the leave")
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err = cl.At(1).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.ID == "n1" && m.State != "left" {
			t.Fatalf("n1 state %q after leave, want left", m.State)
		}
		if m.ID != "n1" && m.Partitions != 1024 {
			t.Fatalf("%s holds %d partitions with 3 nodes left, want 1024", m.ID, m.Partitions)
		}
	}
	onEveryPrimary(t, cl, 1, keys)

	// A node that left forgets its cluster: started again on its data
	// without --join it is a cluster of its own, remembering nobody.
	c.RestartJoining(0)
	st, err = cl.At(0).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 1 || st.Members[0].ID != "n1" {
		t.Fatalf("n1 restarted after leaving sees %+v, want only itself", st.Members)
	}
}
