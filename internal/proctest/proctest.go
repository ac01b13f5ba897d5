// Package proctest runs real `quorumkv server` processes on loopback for
// tests: it builds the binary once, starts nodes on free ports, and can
// kill -9, pause (SIGSTOP), resume, restart and wipe them.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// BuildVersion is the version Binary's build reports (quorumkv version,
// /v1/status, quorumkv_build_info).
const BuildVersion = "proctest-build"

// Binary builds the quorumkv binary once per test process and returns its
// path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "quorumkv-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "quorumkv")
		cmd := exec.Command("go", "build", "-ldflags", "-X github.com/quorumkv/quorumkv/node.version="+BuildVersion,
			"-o", binPath, "github.com/quorumkv/quorumkv/cmd/quorumkv")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Options configures a process cluster.
type Options struct {
	Nodes    int
	Replicas int
	// Args are extra flags for every node.
	Args []string
	// NodeArgs, when set, returns extra flags for node i.
	NodeArgs func(i int) []string
}

// Proc is one node process.
type Proc struct {
	ID     string
	HTTP   string
	RPC    string
	Gossip string
	Data   string
	Log    string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// join, when set, replaces the --join the cluster gives the node.
	join *[]string
}

// URL is the node's client API base URL.
func (p *Proc) URL() string { return "http://" + p.HTTP }

// Cluster is a set of node processes.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string
	opts Options

	mu    sync.Mutex
	procs []*Proc
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// memberlist also binds UDP on the gossip port; check it is free too.
	addr := l.Addr().String()
	if u, err := net.ListenPacket("udp", addr); err == nil {
		u.Close()
	}
	return addr
}

// Start starts opts.Nodes processes (default 3), node 1 first and the
// others joining it, and waits until every node sees every other alive.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	c := &Cluster{t: t, bin: Binary(t), dir: t.TempDir(), opts: opts}
	t.Cleanup(c.Close)
	for i := 0; i < opts.Nodes; i++ {
		p := &Proc{ID: "n" + strconv.Itoa(i+1), HTTP: FreePort(t), RPC: FreePort(t), Gossip: FreePort(t)}
		p.Data = filepath.Join(c.dir, p.ID)
		p.Log = filepath.Join(c.dir, p.ID+".log")
		c.procs = append(c.procs, p)
		c.launch(i)
		c.WaitHealthy(i)
	}
	c.WaitMembers(opts.Nodes, 20*time.Second)
	return c
}

func (c *Cluster) args(i int) []string {
	p := c.procs[i]
	args := []string{"server", "--id", p.ID, "--data", p.Data, "--http", p.HTTP, "--rpc", p.RPC, "--gossip", p.Gossip,
		"--replicas", strconv.Itoa(c.opts.Replicas), "--gossip-profile", "local", "--log-level", "debug"}
	if p.join != nil {
		if len(*p.join) > 0 {
			args = append(args, "--join", strings.Join(*p.join, ","))
		}
	} else if i > 0 {
		args = append(args, "--join", c.procs[0].Gossip)
	} else if len(c.procs) > 1 {
		// A restarted first node rejoins through the others.
		args = append(args, "--join", c.procs[1].Gossip)
	}
	args = append(args, c.opts.Args...)
	if c.opts.NodeArgs != nil {
		args = append(args, c.opts.NodeArgs(i)...)
	}
	return args
}

func (c *Cluster) launch(i int) {
	c.t.Helper()
	p := c.procs[i]
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, c.args(i)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
}

// Proc returns node i (0-based).
func (c *Cluster) Proc(i int) *Proc { return c.procs[i] }

// URL is node i's client API base URL.
func (c *Cluster) URL(i int) string { return c.procs[i].URL() }

// Client returns a client for every node, in order.
func (c *Cluster) Client() *client.Client {
	cfg := client.DefaultConfig()
	cfg.Endpoints = nil
	for _, p := range c.procs {
		cfg.Endpoints = append(cfg.Endpoints, p.URL())
	}
	cfg.Timeout = 5 * time.Second
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// WaitHealthy waits until node i answers /healthz.
func (c *Cluster) WaitHealthy(i int) {
	c.t.Helper()
	p := c.procs[i]
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.URL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			c.t.Fatalf("%s exited: %v\n%s", p.ID, p.err, c.Logs(i))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not healthy after 20s\n%s", p.ID, c.Logs(i))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitMembers waits until every running node sees want members alive.
func (c *Cluster) WaitMembers(want int, timeout time.Duration) {
	c.t.Helper()
	cl := c.Client()
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	for i := range c.procs {
		if !c.Running(i) {
			continue
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cl.At(i).Status(ctx)
			cancel()
			alive := 0
			if err == nil {
				for _, m := range st.Members {
					if m.State == "alive" {
						alive++
					}
				}
			}
			if alive == want {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s sees %d alive members, want %d (err %v)", c.procs[i].ID, alive, want, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Running reports whether node i's process is running (paused counts).
func (c *Cluster) Running(i int) bool {
	p := c.procs[i]
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to node i and waits for it to die.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	p := c.procs[i]
	if !c.Running(i) {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Kill()
	<-p.done
}

// Term sends SIGTERM to node i and waits for it to exit, returning its
// exit error (nil for exit status 0).
func (c *Cluster) Term(i int) error {
	p := c.procs[i]
	if !c.Running(i) {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within 30s of SIGTERM", p.ID)
	}
	return p.err
}

// Wait waits for node i to exit by itself, returning its exit error.
func (c *Cluster) Wait(i int, timeout time.Duration) error {
	p := c.procs[i]
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.ID, timeout)
	}
}

// Pause stops node i with SIGSTOP.
func (c *Cluster) Pause(i int) { c.procs[i].cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues node i with SIGCONT.
func (c *Cluster) Resume(i int) { c.procs[i].cmd.Process.Signal(syscall.SIGCONT) }

// Restart starts a stopped node again on the same ports and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("restart %s: still running", c.procs[i].ID)
	}
	c.launch(i)
	c.WaitHealthy(i)
}

// RestartJoining is Restart with --join set to join from now on (no
// --join at all when join is empty) instead of another node of the cluster.
func (c *Cluster) RestartJoining(i int, join ...string) {
	c.t.Helper()
	c.procs[i].join = &join
	c.Restart(i)
}

// Wipe deletes node i's data directory (the node must be stopped).
func (c *Cluster) Wipe(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("wipe %s: still running", c.procs[i].ID)
	}
	if err := os.RemoveAll(c.procs[i].Data); err != nil {
		c.t.Fatal(err)
	}
}

// Logs returns the tail of node i's log.
func (c *Cluster) Logs(i int) string {
	b, _ := os.ReadFile(c.procs[i].Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// Close kills every node.
func (c *Cluster) Close() {
	for i := range c.procs {
		c.Kill(i)
	}
	if c.t.Failed() {
		for i, p := range c.procs {
			c.t.Logf("--- log of %s (tail)\n%s", p.ID, c.Logs(i))
		}
	}
}

// RunOnce runs the quorumkv binary with args until it exits or timeout
// passes (then it is killed), returning its combined output.
func RunOnce(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, Binary(t), args...).CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("still running after %s", timeout)
	}
	return string(out), err
}

// Add starts one more node that joins the cluster, and returns its index.
func (c *Cluster) Add() int {
	c.t.Helper()
	i := len(c.procs)
	p := &Proc{ID: "n" + strconv.Itoa(i+1), HTTP: FreePort(c.t), RPC: FreePort(c.t), Gossip: FreePort(c.t)}
	p.Data = filepath.Join(c.dir, p.ID)
	p.Log = filepath.Join(c.dir, p.ID+".log")
	c.procs = append(c.procs, p)
	c.launch(i)
	c.WaitHealthy(i)
	return i
}
