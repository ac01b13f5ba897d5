package proctest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/proctest"
	"github.com/redis/go-redis/v9"
)

// devBase finds a base port whose 3-node dev ports (HTTP, RPC, gossip over
// TCP and UDP, RESP) are all free now.
func devBase(t *testing.T) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(30000)
		free := true
		for _, off := range []int{0, 100, 200, 300} {
			for i := range 3 {
				addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(base+off+i))
				l, err := net.Listen("tcp", addr)
				if err != nil {
					free = false
					continue
				}
				l.Close()
				if off == 200 {
					u, err := net.ListenPacket("udp", addr)
					if err != nil {
						free = false
						continue
					}
					u.Close()
				}
			}
		}
		if free {
			return base
		}
	}
	t.Fatal("no free range of ports for a dev cluster")
	return 0
}

// TestDevClusterServesHTTPAndRESP runs `quorumkv dev` as the README's quick
// start does: three nodes answer HTTP on base+i and the Redis protocol on
// base+300+i, a write through one protocol reads back through the other,
// and Ctrl-C stops it with status 0.
func TestDevClusterServesHTTPAndRESP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// Node counts whose derived ports would overlap are refused up front.
	for _, n := range []string{"0", "101"} {
		out, err := proctest.RunOnce(t, 10*time.Second, "dev", "--nodes", n)
		if err == nil || !strings.Contains(out, "--nodes "+n+": between 1 and 100") {
			t.Errorf("dev --nodes %s: %v\n%s", n, err, out)
		}
	}
	base := devBase(t)
	var out bytes.Buffer
	cmd := exec.Command(proctest.Binary(t), "dev", "--base-port", strconv.Itoa(base))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("output of quorumkv dev:\n%s", out.String())
		}
	}()

	urls := make([]string, 3)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://127.0.0.1:%d", base+i)
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = urls
	cl, _ := client.New(cfg)
	defer cl.Close()
	waitUntil(t, 60*time.Second, "every dev node to see three alive members", func() bool {
		for i := range urls {
			if aliveMembers(cl.At(i)) != 3 {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkVersions(ctx, t, cl, urls)
	if _, err := cl.At(0).Put(ctx, []byte("greeting"), []byte("hello"), client.Options{}); err != nil {
		t.Fatalf("HTTP PUT on node 0: %v", err)
	}
	for i := range 3 {
		rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", base+300+i)})
		if v, err := rdb.Get(ctx, "greeting").Result(); err != nil || v != "hello" {
			t.Errorf("RESP GET greeting on node %d: %q, %v; want hello", i, v, err)
		}
		if err := rdb.Set(ctx, "from-resp-"+strconv.Itoa(i), "v"+strconv.Itoa(i), 0).Err(); err != nil {
			t.Errorf("RESP SET on node %d: %v", i, err)
		}
		rdb.Close()
	}
	for i := range 3 {
		r, err := cl.At((i+1)%3).Get(ctx, []byte("from-resp-"+strconv.Itoa(i)), client.Options{})
		if err != nil || len(r.Values) != 1 || string(r.Values[0]) != "v"+strconv.Itoa(i) {
			t.Errorf("HTTP GET of the key node %d set over RESP: %+v, %v", i, r, err)
		}
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		done <- err // for the deferred cleanup
		if err != nil {
			t.Errorf("dev exited with %v after Ctrl-C, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev still running 30s after Ctrl-C")
	}
}

// checkVersions: `quorumkv version`, every node's /v1/status (its own
// version and each member's, as gossiped) and /metrics name the build.
func checkVersions(ctx context.Context, t *testing.T, cl *client.Client, urls []string) {
	t.Helper()
	want := proctest.BuildVersion
	if out, err := proctest.RunOnce(t, 10*time.Second, "version"); err != nil || !strings.HasPrefix(out, "quorumkv "+want+" (go") {
		t.Errorf("quorumkv version: %v %q, want it to start with %q", err, out, "quorumkv "+want+" (go")
	}
	for i, u := range urls {
		st, err := cl.At(i).Status(ctx)
		if err != nil {
			t.Fatalf("status of node %d: %v", i, err)
		}
		if st.Version != want {
			t.Errorf("node %d reports version %q, want %q", i, st.Version, want)
		}
		for _, m := range st.Members {
			if m.Version != want {
				t.Errorf("node %d sees member %s at version %q, want %q", i, m.ID, m.Version, want)
			}
		}
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if line := fmt.Sprintf(`quorumkv_build_info{goversion="%s",version="%s"} 1`, runtime.Version(), want); !strings.Contains(string(body), line) {
			t.Errorf("node %d /metrics lacks %s", i, line)
		}
	}
}
