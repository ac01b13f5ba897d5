package proctest_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/proctest"
	"github.com/quorumkv/quorumkv/node"
)

// waitProcs waits until each of nodes reports GOMAXPROCS want in /metrics.
func waitProcs(t *testing.T, c *proctest.Cluster, want int, nodes ...int) {
	t.Helper()
	for _, i := range nodes {
		waitUntil(t, 15*time.Second, fmt.Sprintf("node %d to run with GOMAXPROCS %d", i, want), func() bool {
			got, err := metric(c, i, "go_sched_gomaxprocs_threads")
			return err == nil && int(got) == want
		})
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
	share := func(nodes int) int { return node.CoreShare(cores, nodes) }
	fixed := os.Getenv("GOMAXPROCS")
	if fixed != "" {
		// Set in the environment, which the nodes inherit: they keep it.
		share = func(int) int { n, _ := strconv.Atoi(fixed); return n }
	}
	c := proctest.Start(t, proctest.Options{Nodes: 1, Replicas: 1})
	waitProcs(t, c, share(1), 0)
	c.Add()
	c.Add()
	c.WaitMembers(3, 20*time.Second)
	waitProcs(t, c, share(3), 0, 1, 2)
	c.Kill(2)
	waitProcs(t, c, share(2), 0, 1)
	log, err := os.ReadFile(c.Proc(0).Log)
	if err != nil {
		t.Fatal(err)
	}
	if fixed == "" && cores > 1 && !strings.Contains(string(log), "sharing this host's cores") {
		t.Errorf("node 1 did not log that it shares the host's cores")
	}
}
