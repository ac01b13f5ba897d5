package proctest_test

import (
	"bufio"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/proctest"
)

// gomaxprocs reads node i's GOMAXPROCS from its /metrics; -1 if unreadable.
func gomaxprocs(c *proctest.Cluster, i int) int {
	resp, err := http.Get(c.URL(i) + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_sched_gomaxprocs_threads "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// waitProcs waits until each of nodes reports GOMAXPROCS want.
func waitProcs(t *testing.T, c *proctest.Cluster, want int, nodes ...int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, i := range nodes {
		for {
			got := gomaxprocs(c, i)
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d runs with GOMAXPROCS %d, want %d\n%s", i, got, want, c.Logs(i))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// Nodes on one host split its cores between them and follow members as
// they come and go (cmd/quorumkv/procs.go). The nodes' default GOMAXPROCS
// is the test process's own: both come from the same machine and the same
// environment. On a one-core machine every share is 1, so the test cannot
// tell sharing from not sharing there.
func TestNodesOnOneHostShareItsCores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	cores := runtime.GOMAXPROCS(0)
	share := func(nodes int) int { return max(1, (cores+nodes/2)/nodes) }
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		// Set in the environment, which the nodes inherit: they keep it.
		share = func(int) int { n, _ := strconv.Atoi(v); return n }
	}
	c := proctest.Start(t, proctest.Options{Nodes: 1, Replicas: 1})
	waitProcs(t, c, share(1), 0)
	c.Add()
	c.Add()
	c.WaitMembers(3, 20*time.Second)
	waitProcs(t, c, share(3), 0, 1, 2)
	c.Kill(2)
	waitProcs(t, c, share(2), 0, 1)
	if log, err := os.ReadFile(c.Proc(0).Log); err != nil {
		t.Fatal(err)
	} else if os.Getenv("GOMAXPROCS") == "" && cores > 1 && !strings.Contains(string(log), "sharing this host's cores") {
		t.Errorf("node 1 did not log that it shares the host's cores")
	}
}
