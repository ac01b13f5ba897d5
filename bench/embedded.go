package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/node"
)

// EmbeddedCluster is a local cluster of real nodes (badger on disk, TCP
// RPC, gossip, HTTP), all in this process, on loopback ports the kernel
// picks, with data in a temporary directory that Close removes. It is what
// the bench runs against when no endpoints are given, like `quorumkv dev`.
type EmbeddedCluster struct {
	dir   string
	nodes []*node.Node
}

// embeddedReadyTimeout bounds the wait for every node to see every other.
const embeddedReadyTimeout = time.Minute

// StartEmbedded starts n nodes and waits until every node sees all n alive
// and holding partitions.
func StartEmbedded(ctx context.Context, n int) (_ *EmbeddedCluster, err error) {
	dir, err := os.MkdirTemp("", "quorumkv-bench-")
	if err != nil {
		return nil, err
	}
	c := &EmbeddedCluster{dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	seed := ""
	for i := 0; i < n; i++ {
		cfg := node.DefaultConfig()
		cfg.ID = "n" + strconv.Itoa(i+1)
		cfg.DataDir = filepath.Join(dir, cfg.ID)
		cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.FastGossip = true
		cfg.Replicas = min(cfg.Replicas, n)
		cfg.Logger = nil
		if seed != "" {
			cfg.Join = []string{seed}
		}
		nd, err := node.New(cfg, node.Deps{})
		if err != nil {
			return nil, fmt.Errorf("embedded cluster: node %s: %w", cfg.ID, err)
		}
		c.nodes = append(c.nodes, nd)
		if seed == "" {
			seed = nd.GossipAddr()
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Endpoints are the nodes' HTTP base URLs.
func (c *EmbeddedCluster) Endpoints() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = "http://" + n.HTTPAddr()
	}
	return out
}

// Dir is the temporary data directory.
func (c *EmbeddedCluster) Dir() string { return c.dir }

// waitReady polls every node's status until each lists all nodes alive
// with partitions.
func (c *EmbeddedCluster) waitReady(ctx context.Context) error {
	cl, err := client.New(client.Config{Endpoints: c.Endpoints(), Timeout: time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, embeddedReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = c.ready(ctx, cl)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedded cluster not ready after %s: %w", embeddedReadyTimeout, last)
		case <-tick.C:
		}
	}
}

func (c *EmbeddedCluster) ready(ctx context.Context, cl *client.Client) error {
	for i := range c.nodes {
		st, err := cl.At(i).Status(ctx)
		if err != nil {
			return err
		}
		alive := 0
		for _, m := range st.Members {
			if m.State == "alive" && m.Partitions > 0 {
				alive++
			}
		}
		if alive != len(c.nodes) {
			return fmt.Errorf("node %s sees %d of %d members alive with partitions", st.ID, alive, len(c.nodes))
		}
	}
	return nil
}

// Close stops every node and removes the data directory. It is idempotent.
func (c *EmbeddedCluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	c.nodes = nil
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
		c.dir = ""
	}
	return errors.Join(errs...)
}
