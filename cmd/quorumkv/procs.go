package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/quorumkv/quorumkv/node"
)

// Nodes that run on one host share its cores. A Go runtime sizes itself to
// every core it may use (GOMAXPROCS), so k nodes on one host run k
// schedulers that each expect all of them: a goroutine made runnable wakes
// an idle processor's thread, which spins for work that another node's
// thread is already doing, and the host spends its time in futex and
// context switches. With three nodes and redis-benchmark on two cores,
// giving each node its share cut the cluster's CPU per one-key request by
// a fifth and raised one-key SETs by 13% and GETs by 20%; with random keys
// GETs gained 4% and SETs lost 6%, within the spread between runs
// (docs/benchmarks.md, sixth round).
//
// So the server counts the up members that gossip shows on its own host
// (node.HostPeers) and sets GOMAXPROCS to its share of the cores it started
// with, at least one, and follows members as they come and go. One node per
// host, the usual deployment, keeps every core. GOMAXPROCS set in the
// environment turns this off.

// hostShareEvery is how often the server recounts the nodes on its host.
const hostShareEvery = time.Second

// shareHostCores keeps GOMAXPROCS at this node's share of the host's cores
// until ctx ends. peers reports how many nodes run on the host.
func shareHostCores(ctx context.Context, peers func() int, log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		log.Info("GOMAXPROCS is set: not sharing cores with other nodes on this host", "gomaxprocs", runtime.GOMAXPROCS(0))
		return
	}
	cores := runtime.GOMAXPROCS(0)
	t := time.NewTicker(hostShareEvery)
	defer t.Stop()
	for {
		k := peers()
		if want := node.CoreShare(cores, k); want != runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(want)
			log.Info("sharing this host's cores with the other nodes on it", "nodes_on_host", k, "cores", cores, "gomaxprocs", want)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
