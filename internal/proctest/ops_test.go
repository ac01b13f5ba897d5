package proctest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/proctest"
	"github.com/quorumkv/quorumkv/internal/testpki"
)

// proc is one `quorumkv server` started by these tests with arguments of
// their own (proctest.Start assumes plain HTTP).
type proc struct {
	t    *testing.T
	id   string
	http string
	rpc  string
	gsp  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// launch starts `quorumkv server` with the usual addresses on free ports
// plus extra, logging to a file; it is killed at the end of the test.
func launch(t *testing.T, dir, id string, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, id: id, http: proctest.FreePort(t), rpc: proctest.FreePort(t), gsp: proctest.FreePort(t), log: filepath.Join(dir, id+".log"), done: make(chan struct{})}
	args := append([]string{"server", "--id", id, "--data", filepath.Join(dir, id), "--http", p.http, "--rpc", p.rpc, "--gossip", p.gsp,
		"--gossip-profile", "local", "--log-level", "debug"}, extra...)
	p.start(args)
	return p
}

func (p *proc) start(args []string) {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(proctest.Binary(p.t), args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	p.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if p.t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			p.t.Logf("--- log of %s (tail)\n%s", p.id, b)
		}
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitUntil polls cond every 50ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// aliveMembers is how many members cl's node sees alive, -1 on error.
func aliveMembers(cl *client.Client) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for _, m := range st.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// TestSIGTERMLosesNoAckedWrite writes at quorum from several goroutines
// through every node while one node gets SIGTERM: it must exit 0, every
// acknowledged write must stay readable, the others must keep the node's
// partitions (a restart moves no data), and it must come back with its data.
func TestSIGTERMLosesNoAckedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 4})
	cl := c.Client()
	defer cl.Close()
	const victim = 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	partitionsOf := func(from int, id string) int {
		st, err := cl.At(from).Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		for _, m := range st.Members {
			if m.ID == id {
				return m.Partitions
			}
		}
		return -1
	}
	// Let the joins' ownership transfers finish first: while a partition
	// is still arriving, its new owners' reads consult the old owner, so
	// stopping that one would make them unavailable (not lost) until it
	// returns — a transfer matter, not a shutdown one.
	waitUntil(t, 60*time.Second, "ownership transfers to settle", func() bool {
		for i := 0; i < 4; i++ {
			st, err := cl.At(i).Status(ctx)
			if err != nil || st.PartitionsArriving != 0 {
				return false
			}
			for _, tr := range st.Transfers {
				if !tr.Done {
					return false
				}
			}
		}
		return true
	})
	victimID := c.Proc(victim).ID
	before := partitionsOf(0, victimID)
	if before <= 0 {
		t.Fatalf("%s holds %d partitions before SIGTERM", victimID, before)
	}

	var (
		mu       sync.Mutex
		acked    = map[string]string{}
		attempts int
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				at := rng.IntN(4)
				if !c.Running(at) {
					at = (at + 1) % 4
				}
				_, err := cl.At(at).Put(ctx, []byte(key), []byte("v-"+key), client.Options{Consistency: "quorum"})
				mu.Lock()
				attempts++
				if err == nil {
					acked[key] = "v-" + key
				}
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(time.Second)
	start := time.Now()
	if err := c.Term(victim); err != nil {
		t.Fatalf("SIGTERM: %v, want exit status 0", err)
	}
	t.Logf("%s exited 0 %s after SIGTERM", victimID, time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d writes, %d acknowledged", attempts, len(acked))
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	logs := c.Logs(victim)
	if !strings.Contains(logs, "shutting down") {
		t.Errorf("no shutdown line in the log of %s", victimID)
	}

	// The others see the node as gone but keep its partitions.
	if got := partitionsOf(0, victimID); got != before {
		t.Errorf("after SIGTERM %s holds %d partitions in n1's ring, want %d still", victimID, got, before)
	}
	// missing returns the first acknowledged write that does not read back.
	missing := func(acked map[string]string, nodes []int) error {
		for key, want := range acked {
			at := nodes[len(key)%len(nodes)]
			res, err := cl.At(at).Get(ctx, []byte(key), client.Options{Consistency: "quorum"})
			if err != nil || !res.Found || len(res.Values) != 1 || string(res.Values[0]) != want {
				return fmt.Errorf("acknowledged write %s via node %d: %v found=%v %q", key, at, err, res.Found, res.Values)
			}
		}
		return nil
	}
	checkAll := func(nodes []int) {
		t.Helper()
		if err := missing(acked, nodes); err != nil {
			t.Fatal(err)
		}
	}
	// Negative control: the checker must notice a write that is not there.
	if missing(map[string]string{"never-written": "v"}, []int{0}) == nil {
		t.Fatal("the checker does not notice a missing write")
	}
	checkAll([]int{0, 1, 3})

	// Back on the same data: every acknowledged write is readable through
	// it, including with R=all.
	c.Restart(victim)
	c.WaitMembers(4, 30*time.Second)
	if got := partitionsOf(victim, victimID); got != before {
		t.Errorf("after the restart %s holds %d partitions, want %d", victimID, got, before)
	}
	checkAll([]int{victim})
}

// TestGossipKeyKeepsOthersOut: nodes with another gossip key, or none,
// cannot join a cluster that uses --gossip-key.
func TestGossipKeyKeepsOthersOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	c := proctest.Start(t, proctest.Options{Nodes: 2, Replicas: 2, Args: []string{"--gossip-key", key}})
	cl := c.Client()
	defer cl.Close()
	dir := t.TempDir()
	intruders := []*proc{
		launch(t, dir, "wrongkey", "--replicas", "2", "--gossip-key", other, "--join", c.Proc(0).Gossip),
		launch(t, dir, "nokey", "--replicas", "2", "--join", c.Proc(0).Gossip),
	}
	// Each intruder either fails to join and exits, or stays outside;
	// either way the cluster must not list it.
	waitUntil(t, 30*time.Second, "the intruders to exit", func() bool { return intruders[0].exited() && intruders[1].exited() })
	for _, p := range intruders {
		if p.err == nil {
			t.Errorf("%s exited 0; want a failed join", p.id)
		}
		b, _ := os.ReadFile(p.log)
		if !bytes.Contains(b, []byte("join")) {
			t.Errorf("%s's log does not explain the failed join:\n%s", p.id, b)
		}
	}
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cl.At(i).Status(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Members) != 2 {
			t.Errorf("node %d lists %d members, want the 2 with the key: %+v", i, len(st.Members), st.Members)
		}
	}
	// A node with the right key joins (the negative control of this test).
	good := launch(t, dir, "goodkey", "--replicas", "2", "--gossip-key", key, "--join", c.Proc(0).Gossip)
	waitUntil(t, 30*time.Second, "a node with the right key to join", func() bool { return aliveMembers(cl.At(0)) == 3 })
	_ = good
}

// secureCluster starts n nodes with HTTPS, mutual TLS, a token and a gossip
// key; it returns them, the files, and a client that has the CA and token.
type secureCluster struct {
	procs []*proc
	ca    *testpki.CA
	files []testpki.Files
	token string
	dir   string
}

func startSecure(t *testing.T, n int) *secureCluster {
	t.Helper()
	s := &secureCluster{ca: testpki.NewCA(t, "quorumkv test CA"), token: "tok-" + fmt.Sprint(rand.Int64()), dir: t.TempDir()}
	tokenFile := filepath.Join(s.dir, "token")
	os.WriteFile(tokenFile, []byte(s.token+"\n"), 0o600)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 16))
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s%d", i+1)
		f := s.ca.Write(t, s.dir, id, s.ca.Issue(t, id))
		s.files = append(s.files, f)
		args := []string{"--replicas", fmt.Sprint(n), "--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA,
			"--auth-token-file", tokenFile, "--gossip-key", key}
		if i > 0 {
			args = append(args, "--join", s.procs[0].gsp)
		}
		p := launch(t, s.dir, id, args...)
		s.procs = append(s.procs, p)
		cl := s.client(t, i)
		waitUntil(t, 30*time.Second, id+" to answer /healthz over HTTPS", func() bool {
			if p.exited() {
				t.Fatalf("%s exited: %v", id, p.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return cl.Health(ctx) == nil
		})
	}
	for i := range s.procs {
		waitUntil(t, 30*time.Second, "every node to see the others", func() bool { return aliveMembers(s.client(t, i)) == n })
	}
	return s
}

func (s *secureCluster) client(t *testing.T, i int) *client.Client {
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"https://" + s.procs[i].http}
	cfg.TLS = &tls.Config{RootCAs: s.ca.Pool}
	cfg.Token = s.token
	cfg.Timeout = 5 * time.Second
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestSecureClusterRealProcesses: a TLS + token + gossip-key cluster of
// real processes serves quorum writes and reads over HTTPS, refuses plain
// HTTP and requests without the token, and reloads its certificate on
// SIGHUP.
func TestSecureClusterRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	s := startSecure(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 20; i++ {
		key := []byte(fmt.Sprint("secure-", i))
		if _, err := s.client(t, i%3).Put(ctx, key, []byte("v"), client.Options{Consistency: "quorum"}); err != nil {
			t.Fatalf("quorum put over HTTPS: %v", err)
		}
		res, err := s.client(t, (i+1)%3).Get(ctx, key, client.Options{Consistency: "all"})
		if err != nil || !res.Found || string(res.Values[0]) != "v" {
			t.Fatalf("read-all over HTTPS (every replica reached by mutual TLS): %v %q", err, res.Values)
		}
	}
	u := "https://" + s.procs[0].http
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool}}}
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/metrics", "/v1/kv/secure-1", "/", "/v1/status"} {
		if code, _ := get(u+path, ""); code != 401 {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code, _ := get(u+path, s.token); code != 200 {
			t.Errorf("GET %s with the token: %d, want 200", path, code)
		}
	}
	if _, body := get(u+"/metrics", s.token); !strings.Contains(body, `quorumkv_requests_total{api="http",level="quorum",op="put",outcome="ok"}`) {
		t.Errorf("/metrics over HTTPS lacks the put counter")
	}
	if code, body := get("http://"+s.procs[0].http+"/v1/kv/secure-1", s.token); code != 400 || !strings.Contains(body, "HTTPS") {
		t.Errorf("plain HTTP: %d %q, want 400 refused", code, body)
	}
	// A node without TLS (but with the gossip key, so gossip lets it in)
	// must not join: it could not call the others, nor they it.
	out, err := proctest.RunOnce(t, 30*time.Second, "server", "--id", "plain", "--data", filepath.Join(s.dir, "plain"),
		"--http", proctest.FreePort(t), "--rpc", proctest.FreePort(t), "--gossip", proctest.FreePort(t),
		"--replicas", "3", "--gossip-key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 16)), "--join", s.procs[0].gsp)
	if err == nil || !strings.Contains(out, "without TLS") {
		t.Errorf("a node without TLS joining a TLS cluster: %v\n%s", err, out)
	}

	// SIGHUP: a new certificate is served to new connections.
	serial := func() int64 {
		conn, err := tls.Dial("tcp", s.procs[0].http, &tls.Config{RootCAs: s.ca.Pool})
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	old := serial()
	fresh := s.ca.Issue(t, "s1")
	s.ca.Write(t, s.dir, "s1", fresh)
	if err := s.procs[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the new certificate after SIGHUP", func() bool { return serial() == fresh.Serial })
	if old == fresh.Serial {
		t.Fatal("test bug: same serial")
	}
	if s.procs[0].exited() {
		t.Fatalf("SIGHUP stopped the node: %v", s.procs[0].err)
	}
	// And the node still talks to its peers over mutual TLS.
	if _, err := s.client(t, 0).Put(ctx, []byte("after-hup"), []byte("v"), client.Options{Consistency: "all"}); err != nil {
		t.Fatalf("write-all after SIGHUP: %v", err)
	}
	// SIGTERM exits 0 with TLS on too.
	s.procs[2].cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.procs[2].done:
		if s.procs[2].err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", s.procs[2].err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("no exit within 30s of SIGTERM")
	}
}

// TestConfigFile: every flag can come from --config, flags win, and an
// invalid file reports all of its problems at once.
func TestConfigFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	fileHTTP, flagHTTP := proctest.FreePort(t), proctest.FreePort(t)
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte(fmt.Sprintf(`
id = "fromfile"
data = %q
http = %q
rpc = %q
gossip = %q
replicas = 1
partitions = 128
anti-entropy-interval = "1h"
max-value-bytes = 100
cache-bytes = 33554432
pprof = true
gossip-profile = "local"
log-format = "json"
log-level = "debug"
`, filepath.Join(dir, "data"), fileHTTP, proctest.FreePort(t), proctest.FreePort(t))), 0o600)
	p := &proc{t: t, id: "fromfile", http: flagHTTP, log: filepath.Join(dir, "good.log"), done: make(chan struct{})}
	p.start([]string{"server", "--config", good, "--http", flagHTTP})
	hc := &http.Client{Timeout: 2 * time.Second}
	waitUntil(t, 30*time.Second, "the node configured by file to serve on the flag's address", func() bool {
		if p.exited() {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("exited: %v\n%s", p.err, b)
		}
		resp, err := hc.Get("http://" + flagHTTP + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"http://" + flagHTTP}
	cl, _ := client.New(cfg)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil || st.ID != "fromfile" || st.Replicas != 1 || st.RingSize != 128 || st.AntiEntropy.Interval != "1h0m0s" {
		t.Errorf("status %+v %v: want id, N, ring size and interval from the file", st, err)
	}
	if _, err := hc.Get("http://" + fileHTTP + "/healthz"); err == nil {
		t.Errorf("the node also listens on the file's http address; the flag should have won")
	}
	_, err = cl.Put(ctx, []byte("big"), bytes.Repeat([]byte("x"), 101), client.Options{})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 413 {
		t.Errorf("101-byte value with max-value-bytes = 100 in the file: %v, want 413", err)
	}
	if resp, err := hc.Get("http://" + flagHTTP + "/debug/pprof/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof = true in the file: %v", err)
	} else {
		resp.Body.Close()
	}
	// cache-bytes sizes the object cache, and the heap's soft limit grows
	// by what it adds over the default 16 MiB: 160 + 16 MiB.
	if resp, err := hc.Get("http://" + flagHTTP + "/metrics"); err != nil {
		t.Errorf("metrics: %v", err)
	} else {
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"\nquorumkv_store_object_cache_capacity_bytes 3.3554432e+07\n", "\ngo_gc_gomemlimit_bytes 1.84549376e+08\n"} {
			if !bytes.Contains(m, []byte(want)) {
				t.Errorf("cache-bytes = 33554432 in the file: /metrics lacks %q", strings.TrimSpace(want))
			}
		}
	}
	b, _ := os.ReadFile(p.log)
	if lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2); !strings.HasPrefix(lines[0], "{") {
		t.Errorf("log-format = \"json\" in the file, but the log starts %q", lines[0])
	}

	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte(`
data = "/tmp/x"
replicas = 0
partitions = -4
anti-entropy-interval = "-1s"
gossip-key = "not base64!"
max-connections = -1
cache-bytes = -1
tls-cert = "only-the-cert.pem"
log-level = "loud"
sync = "sometimes"
`), 0o600)
	out, err := proctest.RunOnce(t, 20*time.Second, "server", "--config", bad, "--http", "not-an-address")
	if err == nil {
		t.Fatalf("an invalid file was accepted:\n%s", out)
	}
	for _, want := range []string{"--replicas 0", "--partitions -4", "--anti-entropy-interval -1s", "--gossip-key", "--max-connections -1", "--cache-bytes -1",
		"go together", "--log-level \"loud\"", "--sync \"sometimes\"", "--http \"not-an-address\""} {
		if !strings.Contains(out, want) {
			t.Errorf("the report of the invalid file lacks %q:\n%s", want, out)
		}
	}
	out, err = proctest.RunOnce(t, 20*time.Second, "server", "--config", filepath.Join(dir, "good.toml"), "--replicas", "0", "--data", dir)
	if err == nil || !strings.Contains(out, "--replicas 0") {
		t.Errorf("a bad flag over a good file: %v\n%s", err, out)
	}
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("replicas = 3\nreplicaz = 3\n"), 0o600)
	if out, err := proctest.RunOnce(t, 20*time.Second, "server", "--config", unknown); err == nil || !strings.Contains(out, "replicaz") {
		t.Errorf("an unknown key: %v\n%s", err, out)
	}
}

// TestSecondSignalEndsAStuckShutdown gets a node's shutdown stuck — its data
// directory is deleted under it, so badger's final memtable flush fails and
// retries forever — and checks that a second SIGTERM ends the process at
// once, as a first one cannot.
func TestSecondSignalEndsAStuckShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	p := launch(t, dir, "stuck", "--replicas", "1", "--partitions", "64")
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"http://" + p.http}
	cl, _ := client.New(cfg)
	defer cl.Close()
	waitUntil(t, 30*time.Second, "the node to serve", func() bool {
		if p.exited() {
			t.Fatalf("exited: %v", p.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cl.Put(ctx, []byte("k"), []byte("v"), client.Options{})
		return err == nil
	})
	if err := os.RemoveAll(filepath.Join(dir, "stuck")); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		t.Fatalf("the shutdown finished by itself (%v): the test no longer gets it stuck", p.err)
	case <-time.After(3 * time.Second):
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after a second SIGTERM")
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("exit %v, want death by the second SIGTERM", p.err)
	}
}
