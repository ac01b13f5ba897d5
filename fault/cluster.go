package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/wire"
)

// ClusterConfig describes the containerised cluster.
type ClusterConfig struct {
	// Image is the node image (FROM scratch around quorumkv). Default
	// "quorumkv-fault:latest", what `make image` builds.
	Image string
	// Nodes is how many containers run. Default 5.
	Nodes int
	// Replicas is the replication factor N. Default 3.
	Replicas int
	// Name prefixes the network, containers and volumes. Default "qkvf".
	Name string
	// Subnets are the /24 networks tried in order for the bridge, so that
	// one already used on the host does not stop the suite. Node i (from 0)
	// gets host address 11+i. Default: 172.30.57.0/24, 172.31.157.0/24,
	// 10.213.57.0/24.
	Subnets []string
	// AntiEntropyInterval is passed to every node. Default 15s: short enough
	// that the converge checker's bound covers a few rounds.
	AntiEntropyInterval time.Duration
	// ExtraArgs are appended to every node's `quorumkv server` command line.
	ExtraArgs []string
	// Logf receives progress lines. Nil: none.
	Logf func(format string, args ...any)
}

// DefaultClusterConfig returns the defaults described on ClusterConfig.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		Image:               "quorumkv-fault:latest",
		Nodes:               5,
		Replicas:            3,
		Name:                "qkvf",
		Subnets:             []string{"172.30.57.0/24", "172.31.157.0/24", "10.213.57.0/24"},
		AntiEntropyInterval: 15 * time.Second,
	}
}

// Node is one container of the cluster.
type Node struct {
	ID        string // quorumkv node id, "n1"…
	Container string
	Volume    string // the badger directory lives here, so it survives restarts
	IP        string
	URL       string // client HTTP API base URL
}

// Cluster is a running set of containers. Its fault methods may be called
// from one goroutine at a time (the nemesis); the read-only accessors from
// any.
type Cluster struct {
	cfg     ClusterConfig
	network string
	gateway string
	nodes   []Node
	client  *client.Client

	mu sync.Mutex
	// down holds the indexes of nodes that were killed and not restarted;
	// paused those that are frozen. Guarded by mu.
	down   map[int]bool
	paused map[int]bool
}

// StartCluster creates the network, the volumes and the containers and
// waits until every node serves and sees every other node alive. On error
// it removes what it created.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	def := DefaultClusterConfig()
	if cfg.Image == "" {
		cfg.Image = def.Image
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = def.Nodes
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = def.Replicas
	}
	if cfg.Name == "" {
		cfg.Name = def.Name
	}
	if len(cfg.Subnets) == 0 {
		cfg.Subnets = def.Subnets
	}
	if cfg.AntiEntropyInterval == 0 {
		cfg.AntiEntropyInterval = def.AntiEntropyInterval
	}
	cfg.ExtraArgs = slices.Clone(cfg.ExtraArgs)
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	c := &Cluster{cfg: cfg, network: cfg.Name + "-net", down: map[int]bool{}, paused: map[int]bool{}}
	if err := c.start(ctx); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	var prefix string
	var tried []string
	for _, sn := range c.cfg.Subnets {
		_, ipnet, err := net.ParseCIDR(sn)
		if err != nil {
			return fmt.Errorf("fault: subnet %q: %w", sn, err)
		}
		ip4 := ipnet.IP.To4()
		gw := fmt.Sprintf("%d.%d.%d.1", ip4[0], ip4[1], ip4[2])
		_, err = docker(ctx, "network", "create", "--driver", "bridge", "--subnet", sn, "--gateway", gw,
			"--label", LabelKey+"=1", c.network)
		if err == nil {
			prefix = fmt.Sprintf("%d.%d.%d.", ip4[0], ip4[1], ip4[2])
			c.gateway = gw
			break
		}
		tried = append(tried, err.Error())
	}
	if prefix == "" {
		return fmt.Errorf("fault: could not create network %s: %s", c.network, strings.Join(tried, "; "))
	}
	c.cfg.Logf("network %s on %s0/24", c.network, prefix)
	urls := make([]string, c.cfg.Nodes)
	for i := 0; i < c.cfg.Nodes; i++ {
		id := "n" + strconv.Itoa(i+1)
		ip := prefix + strconv.Itoa(11+i)
		c.nodes = append(c.nodes, Node{
			ID:        id,
			Container: c.cfg.Name + "-" + id,
			Volume:    c.cfg.Name + "-" + id + "-data",
			IP:        ip,
			URL:       "http://" + ip + ":8080",
		})
		urls[i] = c.nodes[i].URL
		if _, err := docker(ctx, "volume", "create", "--label", LabelKey+"=1", c.nodes[i].Volume); err != nil {
			return err
		}
	}
	cl, err := client.New(client.Config{Endpoints: urls, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	c.client = cl
	// The first node starts a new cluster; the others join it. A restarted
	// node joins every other (see runNode).
	if err := c.runNode(ctx, 0, false); err != nil {
		return err
	}
	if err := c.waitServing(ctx, 0, 30*time.Second); err != nil {
		return err
	}
	for i := 1; i < c.cfg.Nodes; i++ {
		if err := c.runNode(ctx, i, true); err != nil {
			return err
		}
	}
	return c.WaitReady(ctx, 60*time.Second)
}

// runNode starts node i's container. With join it joins every other node
// (memberlist needs only one of them to answer).
func (c *Cluster) runNode(ctx context.Context, i int, join bool) error {
	n := c.nodes[i]
	args := []string{"run", "-d", "--name", n.Container, "--hostname", n.ID,
		"--label", LabelKey + "=1", "--network", c.network, "--ip", n.IP,
		"-v", n.Volume + ":/data", c.cfg.Image,
		"server", "--id", n.ID, "--data", "/data",
		"--http", n.IP + ":8080", "--rpc", n.IP + ":9090", "--gossip", n.IP + ":7946",
		"--replicas", strconv.Itoa(c.cfg.Replicas),
		"--anti-entropy-interval", c.cfg.AntiEntropyInterval.String(),
	}
	if join {
		var peers []string
		for j, p := range c.nodes {
			if j != i {
				peers = append(peers, p.IP+":7946")
			}
		}
		args = append(args, "--join", strings.Join(peers, ","))
	}
	args = append(args, c.cfg.ExtraArgs...)
	_, err := docker(ctx, args...)
	return err
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []Node { return slices.Clone(c.nodes) }

// Client returns a client with every node as an endpoint; At(i) talks to
// node i.
func (c *Cluster) Client() *client.Client { return c.client }

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.nodes) }

// Index returns the index of the node with the given id, or -1.
func (c *Cluster) Index(id string) int {
	for i, n := range c.nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

// Close removes the containers, volumes and network. It is idempotent.
func (c *Cluster) Close(ctx context.Context) error {
	if c.client != nil {
		_ = c.client.Close()
	}
	return Cleanup(ctx)
}

// waitServing waits until node i answers /healthz.
func (c *Cluster) waitServing(ctx context.Context, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = c.client.At(i).Health(hctx)
		cancel()
		if last == nil {
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("fault: node %s not serving after %s: %v", c.nodes[i].ID, timeout, last)
}

// WaitReady waits until every node serves, reports every node alive, and
// has no partition transfer in progress.
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		last = c.ready(ctx)
		if last == nil {
			return nil
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("fault: cluster not whole after %s: %v", timeout, last)
}

func (c *Cluster) ready(ctx context.Context) error {
	for i, n := range c.nodes {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.client.At(i).Status(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", n.ID, err)
		}
		alive := 0
		for _, m := range st.Members {
			if m.State == "alive" {
				alive++
			}
		}
		if alive != len(c.nodes) {
			return fmt.Errorf("%s sees %d of %d members alive (%s)", n.ID, alive, len(c.nodes), memberStates(st))
		}
		// Partitions move while nodes join; a run starts on a settled ring.
		moving := 0
		for _, t := range st.Transfers {
			if !t.Done {
				moving++
			}
		}
		if moving > 0 {
			return fmt.Errorf("%s has %d partition transfers in progress", n.ID, moving)
		}
	}
	return nil
}

func memberStates(st wire.Status) string {
	var b []string
	for _, m := range st.Members {
		b = append(b, m.ID+"="+m.State)
	}
	return strings.Join(b, " ")
}

// Statuses returns every reachable node's status, by node index.
func (c *Cluster) Statuses(ctx context.Context) map[int]wire.Status {
	out := map[int]wire.Status{}
	for i := range c.nodes {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.client.At(i).Status(sctx)
		cancel()
		if err == nil {
			out[i] = st
		}
	}
	return out
}

// WaitHintsDrained waits until no node holds hints, and returns how long
// that took; on timeout it returns the error and the hint counts left.
func (c *Cluster) WaitHintsDrained(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		sts := c.Statuses(ctx)
		var pending []string
		for i, st := range sts {
			if st.HintsPending > 0 {
				pending = append(pending, fmt.Sprintf("%s:%d", c.nodes[i].ID, st.HintsPending))
			}
		}
		if len(sts) == len(c.nodes) && len(pending) == 0 {
			return time.Since(start), nil
		}
		slices.Sort(pending)
		last = strings.Join(pending, " ")
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return time.Since(start), err
		}
	}
	return time.Since(start), fmt.Errorf("hints still pending after %s: %s", timeout, last)
}

// Kill sends SIGKILL to node i's process (kill -9).
func (c *Cluster) Kill(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := docker(ctx, "kill", "-s", "KILL", c.nodes[i].Container); err != nil {
		return err
	}
	c.down[i] = true
	return nil
}

// Restart starts node i again on the same data volume after Kill, with the
// command line it first had (the seed node, 0, without --join: it finds
// its cluster from the member table it saved), and waits until it serves.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restartLocked(ctx, i)
}

func (c *Cluster) restartLocked(ctx context.Context, i int) error {
	if _, err := docker(ctx, "rm", "-f", c.nodes[i].Container); err != nil {
		return err
	}
	if err := c.runNode(ctx, i, i != 0); err != nil {
		return err
	}
	delete(c.down, i)
	return c.waitServing(ctx, i, 30*time.Second)
}

// Pause freezes node i's processes (docker pause: the cgroup freezer, like
// SIGSTOP but for the whole container).
func (c *Cluster) Pause(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The freezer can fail to freeze a busy container ("unable to freeze"),
	// and runc then thaws it again; trying again a moment later works.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = docker(ctx, "pause", c.nodes[i].Container); err == nil {
			c.paused[i] = true
			return nil
		}
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			break
		}
	}
	return err
}

// Unpause thaws node i.
func (c *Cluster) Unpause(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused[i] {
		return nil // the pause never took
	}
	if _, err := docker(ctx, "unpause", c.nodes[i].Container); err != nil {
		return err
	}
	delete(c.paused, i)
	return nil
}

// HealAll undoes every fault: network rules flushed, paused nodes thawed,
// killed nodes restarted. It reports every problem at once.
func (c *Cluster) HealAll(ctx context.Context) error {
	var errs []error
	c.mu.Lock()
	for i := range c.paused {
		if _, err := docker(ctx, "unpause", c.nodes[i].Container); err != nil {
			errs = append(errs, err)
		} else {
			delete(c.paused, i)
		}
	}
	for i := range c.down {
		if err := c.restartLocked(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Unlock()
	if err := c.Heal(ctx); err != nil {
		errs = append(errs, err)
	}
	// A container that died on its own (a crash) is restarted too.
	for i, n := range c.nodes {
		state, err := docker(ctx, "inspect", "-f", "{{.State.Status}}", n.Container)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if state == "exited" || state == "dead" {
			c.cfg.Logf("node %s had exited on its own; restarting it", n.ID)
			c.mu.Lock()
			err := c.restartLocked(ctx, i)
			c.mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Crashed returns the nodes whose container exited without the nemesis
// killing it, with the tail of their logs.
func (c *Cluster) Crashed(ctx context.Context) map[string]string {
	out := map[string]string{}
	c.mu.Lock()
	down := cloneSet(c.down)
	c.mu.Unlock()
	for i, n := range c.nodes {
		if down[i] {
			continue
		}
		state, err := docker(ctx, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n.Container)
		if err != nil || strings.HasPrefix(state, "running") || strings.HasPrefix(state, "paused") {
			continue
		}
		logs, _ := run(ctx, "", "sh", "-c", "docker logs --tail 30 "+n.Container+" 2>&1")
		out[n.ID] = state + "\n" + logs
	}
	return out
}

func cloneSet(m map[int]bool) map[int]bool {
	out := make(map[int]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SaveLogs writes every node's container log to dir/<id>.log.
func (c *Cluster) SaveLogs(ctx context.Context, dir string) error {
	var errs []error
	for _, n := range c.nodes {
		if _, err := run(ctx, "", "sh", "-c", "docker logs --timestamps "+n.Container+" > "+shellQuote(dir+"/"+n.ID+".log")+" 2>&1"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
