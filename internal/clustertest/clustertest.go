// Package clustertest runs several real quorumkv nodes in one test process,
// connected by the in-memory transport, with a membership view the test
// controls: Partition, Heal, Kill, Restart. Each node keeps real badger
// files in a temporary directory, so a restarted node has its data back.
//
// Membership here is static: every node is on the ring from the start
// (as in a cluster where gossip has settled), and a node considers a peer
// up exactly when the peer is running and on its side of the partition —
// what gossip would conclude after its suspicion timeout.
package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/node"
	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/transport"
)

// Options configures a test cluster.
type Options struct {
	Nodes      int
	Replicas   int
	Partitions int
	Seed       int64
	// RequestTimeout of every node. Default 500ms, so tests of failures
	// are quick.
	RequestTimeout time.Duration
	// Configure, when set, adjusts each node's config before it starts.
	Configure func(i int, cfg *node.Config)
}

// Cluster is a running test cluster.
type Cluster struct {
	t    testing.TB
	opts Options
	dir  string
	Net  *transport.Network

	ring atomic.Pointer[ring.Ring]

	// mu guards the fields below.
	mu      sync.Mutex
	ids     []string
	nodes   []*node.Node
	running []bool
	group   map[string]int
	// leaving marks nodes that announced their departure (out of the
	// ring); left marks those that finished leaving.
	leaving map[string]bool
	left    map[string]bool
}

// New starts a cluster and registers its Close with t.Cleanup.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	if opts.Partitions == 0 {
		opts.Partitions = 64
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 500 * time.Millisecond
	}
	c := &Cluster{t: t, opts: opts, dir: t.TempDir(), Net: transport.NewNetwork(opts.Seed), group: map[string]int{},
		leaving: map[string]bool{}, left: map[string]bool{}}
	c.Net.SetDefaultTimeout(opts.RequestTimeout)
	for i := 0; i < opts.Nodes; i++ {
		c.ids = append(c.ids, "n"+strconv.Itoa(i+1))
	}
	c.rebuildLocked()
	c.nodes = make([]*node.Node, opts.Nodes)
	c.running = make([]bool, opts.Nodes)
	t.Cleanup(c.Close)
	for i := range c.ids {
		c.start(i)
	}
	return c
}

// IDs returns the node ids, n1..nN.
func (c *Cluster) IDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// Ring is the cluster's current ring.
func (c *Cluster) Ring() *ring.Ring { return c.ring.Load() }

// rebuildLocked recomputes the ring from the members that are neither
// leaving nor left. Every node sees the new ring at once.
func (c *Cluster) rebuildLocked() {
	var members []ring.Member
	for _, id := range c.ids {
		if !c.leaving[id] && !c.left[id] {
			members = append(members, ring.Member{ID: id})
		}
	}
	r, err := ring.New(members, c.opts.Partitions, c.opts.Replicas)
	if err != nil {
		c.t.Fatal(err)
	}
	c.ring.Store(r)
}

// AddNode starts one more node, which joins the ring at once, and returns
// its index.
func (c *Cluster) AddNode() int {
	c.t.Helper()
	c.mu.Lock()
	i := len(c.ids)
	c.ids = append(c.ids, "n"+strconv.Itoa(i+1))
	c.nodes = append(c.nodes, nil)
	c.running = append(c.running, false)
	c.rebuildLocked()
	c.mu.Unlock()
	c.start(i)
	return i
}

// Leave makes node i hand off its data and leave (as `quorumkv leave`
// does), waits until it is done, and stops it.
func (c *Cluster) Leave(i int, timeout time.Duration) {
	c.t.Helper()
	n := c.Node(i)
	if err := n.Leave(); err != nil {
		c.t.Fatalf("leave %s: %v", c.ids[i], err)
	}
	select {
	case <-n.Done():
	case <-time.After(timeout):
		c.t.Fatalf("%s did not finish leaving within %s", c.ids[i], timeout)
	}
	c.Kill(i)
}
func (c *Cluster) start(i int) {
	c.t.Helper()
	id := c.ids[i]
	cfg := node.DefaultConfig()
	cfg.ID = id
	cfg.DataDir = filepath.Join(c.dir, id)
	cfg.Replicas = c.opts.Replicas
	cfg.Partitions = c.opts.Partitions
	cfg.RequestTimeout = c.opts.RequestTimeout
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := node.New(cfg, node.Deps{
		Listen: func(h transport.Handler) (node.RPC, error) { return c.Net.Listen(id, h), nil },
		Cluster: func(self membership.Meta) (node.ClusterView, error) {
			return &view{c: c, self: id}, nil
		},
		HTTPListener: l,
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[i], c.running[i] = n, true
	c.mu.Unlock()
}

// Node returns node i (0-based).
func (c *Cluster) Node(i int) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// URL is node i's client API base URL.
func (c *Cluster) URL(i int) string { return "http://" + c.Node(i).HTTPAddr() }

// Client returns a client whose endpoints are every node, in order; use
// At(i) to talk to node i.
func (c *Cluster) Client() *client.Client {
	c.t.Helper()
	cfg := client.DefaultConfig()
	cfg.Endpoints = nil
	for i := range c.ids {
		cfg.Endpoints = append(cfg.Endpoints, c.URL(i))
	}
	cfg.Timeout = 5 * time.Second
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// Kill stops node i abruptly: it drops off the network at once, then its
// process-level resources are released. Its data stays on disk.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	n, ok := c.nodes[i], c.running[i]
	c.running[i] = false
	c.mu.Unlock()
	if !ok {
		return
	}
	c.Net.Kill(c.ids[i])
	if err := n.Close(); err != nil {
		c.t.Logf("close %s: %v", c.ids[i], err)
	}
}

// Restart starts a killed node again on its old data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	running := c.running[i]
	c.mu.Unlock()
	if running {
		c.t.Fatalf("restart %s: still running", c.ids[i])
	}
	c.start(i)
}

// Partition splits the nodes into groups (by index) that cannot reach each
// other. Nodes not listed form one more group together.
func (c *Cluster) Partition(groups ...[]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.group = map[string]int{}
	var addrs [][]string
	listed := map[int]bool{}
	for g, members := range groups {
		var a []string
		for _, i := range members {
			c.group[c.ids[i]] = g + 1
			listed[i] = true
			a = append(a, c.ids[i])
		}
		addrs = append(addrs, a)
	}
	var rest []string
	for i, id := range c.ids {
		if !listed[i] {
			rest = append(rest, id)
			c.group[id] = len(groups) + 1
		}
	}
	if len(rest) > 0 {
		addrs = append(addrs, rest)
	}
	c.Net.Partition(addrs...)
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.group = map[string]int{}
	c.Net.Heal()
}

// Close stops every node. It is idempotent.
func (c *Cluster) Close() {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	running := slices.Clone(c.running)
	for i := range c.running {
		c.running[i] = false
	}
	c.mu.Unlock()
	for i, n := range nodes {
		if running[i] && n != nil {
			n.Close()
		}
	}
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ctx returns a context that ends after d, cancelled at test cleanup.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// view is one node's membership view.
type view struct {
	c    *Cluster
	self string
}

func (v *view) Ring() *ring.Ring { return v.c.Ring() }

func (v *view) Addr(id string) (string, bool) {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return id, slices.Contains(v.c.ids, id)
}

// UpdateMeta applies fn to this node's meta; only Leaving matters here.
func (v *view) UpdateMeta(fn func(*membership.Meta)) error {
	m := membership.Meta{ID: v.self}
	fn(&m)
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	v.c.leaving[v.self] = m.Leaving
	v.c.rebuildLocked()
	return nil
}

// Leave records that this node left.
func (v *view) Leave(time.Duration) error {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	v.c.left[v.self] = true
	v.c.rebuildLocked()
	return nil
}

func (v *view) Up(id string) bool {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	i := slices.Index(v.c.ids, id)
	if i < 0 || !v.c.running[i] {
		return false
	}
	return v.c.group[id] == v.c.group[v.self]
}

func (v *view) Members() []membership.Member {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	var out []membership.Member
	for i, id := range v.c.ids {
		st := membership.StateAlive
		switch {
		case v.c.left[id]:
			st = membership.StateLeft
		case !v.c.running[i] || v.c.group[id] != v.c.group[v.self]:
			st = membership.StateDead
		}
		out = append(out, membership.Member{Meta: membership.Meta{ID: id, RPCAddr: id}, State: st})
	}
	return out
}

func (v *view) Close() error { return nil }

// String describes the cluster for test logs.
func (c *Cluster) String() string { return fmt.Sprintf("cluster%v", c.ids) }

// Wipe deletes node i's data directory, as a lost disk would. The node must
// be killed first; Restart then starts it empty, with a new incarnation.
func (c *Cluster) Wipe(i int) {
	c.t.Helper()
	c.mu.Lock()
	running := c.running[i]
	c.mu.Unlock()
	if running {
		c.t.Fatalf("wipe %s: still running", c.ids[i])
	}
	if err := os.RemoveAll(filepath.Join(c.dir, c.ids[i])); err != nil {
		c.t.Fatal(err)
	}
}

// MerkleRoots returns the anti-entropy root hash of every partition node i
// is a primary of, and whether its trees are built.
func (c *Cluster) MerkleRoots(i int) (map[int]uint64, bool) {
	n := c.Node(i)
	ae := n.AntiEntropy()
	if ae == nil {
		return nil, false
	}
	out := map[int]uint64{}
	ready := true
	for _, p := range c.Ring().PartitionsOf(c.ids[i]) {
		root, ok := ae.Root(p)
		out[p] = root
		ready = ready && ok
	}
	return out, ready
}

// Converged reports whether every primary of every partition is running,
// has built its trees and has the same Merkle root as the partition's other
// primaries — that is, holds the same versions of every key. When not, the
// string says where it first differs.
func (c *Cluster) Converged() (bool, string) {
	roots := make([]map[int]uint64, len(c.ids))
	for i := range c.ids {
		c.mu.Lock()
		running := c.running[i]
		c.mu.Unlock()
		if !running {
			return false, c.ids[i] + " is not running"
		}
		r, ok := c.MerkleRoots(i)
		if !ok {
			return false, c.ids[i] + " has not built its trees"
		}
		roots[i] = r
	}
	for p := range c.Ring().Partitions() {
		prim := c.Ring().Primaries(p)
		first := slices.Index(c.ids, prim[0])
		for _, id := range prim[1:] {
			i := slices.Index(c.ids, id)
			if roots[i][p] != roots[first][p] {
				return false, fmt.Sprintf("partition %d: %s has root %x, %s has %x", p, prim[0], roots[first][p], id, roots[i][p])
			}
		}
	}
	return true, ""
}

// WaitConverged polls Converged until it holds, or returns an error saying
// where the replicas still differed when timeout passed.
func (c *Cluster) WaitConverged(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := c.Converged()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas not converged after %s: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
