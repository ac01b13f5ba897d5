package fault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Network faults run inside each container's network namespace: the host
// enters it with nsenter and runs its own iptables and tc there, because the
// node image has no tools. A rule set is loaded with iptables-restore, which
// replaces the whole filter table at once, so healing is one call per node
// and never leaves half a partition behind. Only traffic from the other
// nodes is filtered; the clients (the host, via the bridge's gateway) always
// get through.

// pid returns the host PID of node i's init process, needed by nsenter.
func (c *Cluster) pid(ctx context.Context, i int) (int, error) {
	out, err := docker(ctx, "inspect", "-f", "{{.State.Pid}}", c.nodes[i].Container)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(out)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("fault: node %s is not running (pid %q)", c.nodes[i].ID, out)
	}
	return p, nil
}

// loadRules replaces node i's filter table with one whose INPUT chain holds
// rules (iptables-save syntax, without the -A INPUT prefix).
func (c *Cluster) loadRules(ctx context.Context, i int, rules []string) error {
	p, err := c.pid(ctx, i)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, r := range rules {
		b.WriteString("-A INPUT " + r + "\n")
	}
	b.WriteString("COMMIT\n")
	_, err = run(ctx, b.String(), "nsenter", "-t", strconv.Itoa(p), "-n", "iptables-restore")
	return err
}

// Partition cuts the network so that two nodes can talk only if some group
// holds both. Groups may overlap (a bridge); a node in no group is cut off
// from everyone.
func (c *Cluster) Partition(ctx context.Context, groups [][]int) error {
	var errs []error
	for i := range c.nodes {
		if c.isDown(i) {
			continue
		}
		var rules []string
		for _, j := range blockedFrom(groups, len(c.nodes), i) {
			rules = append(rules, "-s "+c.nodes[j].IP+"/32 -j DROP")
		}
		if err := c.loadRules(ctx, i, rules); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// blockedFrom returns the nodes whose packets node i must drop: those that
// share no group with it.
func blockedFrom(groups [][]int, n, i int) []int {
	var out []int
	for j := 0; j < n; j++ {
		if j == i {
			continue
		}
		connected := false
		for _, g := range groups {
			if contains(g, i) && contains(g, j) {
				connected = true
				break
			}
		}
		if !connected {
			out = append(out, j)
		}
	}
	return out
}

// Lossy drops each packet between nodes with the given probability (in both
// directions, since every node filters its input), and, when withDelay and
// netem is available, delays every packet a node sends by delayMS ± a
// quarter.
func (c *Cluster) Lossy(ctx context.Context, prob float64, delayMS int) error {
	var errs []error
	for i := range c.nodes {
		if c.isDown(i) {
			continue
		}
		var rules []string
		for j, peer := range c.nodes {
			if j != i {
				rules = append(rules, fmt.Sprintf("-s %s/32 -m statistic --mode random --probability %.3f -j DROP", peer.IP, prob))
			}
		}
		if err := c.loadRules(ctx, i, rules); err != nil {
			errs = append(errs, err)
		}
		if delayMS > 0 {
			p, err := c.pid(ctx, i)
			if err == nil {
				_, err = run(ctx, "", "nsenter", "-t", strconv.Itoa(p), "-n", "tc", "qdisc", "replace", "dev", "eth0", "root",
					"netem", "delay", fmt.Sprintf("%dms", delayMS), fmt.Sprintf("%dms", delayMS/4))
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// NetemAvailable reports whether tc's netem qdisc works here (the kernel
// module may be missing); it probes node 0 and leaves it as it was.
func (c *Cluster) NetemAvailable(ctx context.Context) bool {
	p, err := c.pid(ctx, 0)
	if err != nil {
		return false
	}
	ns := []string{"-t", strconv.Itoa(p), "-n", "tc", "qdisc"}
	if _, err := run(ctx, "", "nsenter", append(ns, "add", "dev", "eth0", "root", "netem", "delay", "1ms")...); err != nil {
		return false
	}
	_, _ = run(ctx, "", "nsenter", append(ns, "del", "dev", "eth0", "root")...)
	return true
}

// Heal removes every network fault on every running node.
func (c *Cluster) Heal(ctx context.Context) error {
	var errs []error
	for i := range c.nodes {
		if c.isDown(i) {
			continue
		}
		if err := c.loadRules(ctx, i, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := c.pid(ctx, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Deleting a root qdisc that is the default fails; that is fine.
		_, _ = run(ctx, "", "nsenter", "-t", strconv.Itoa(p), "-n", "tc", "qdisc", "del", "dev", "eth0", "root")
	}
	return errors.Join(errs...)
}

func (c *Cluster) isDown(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[i]
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
