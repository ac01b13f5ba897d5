package proctest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/proctest"
	"github.com/quorumkv/quorumkv/wire"
)

// startThree starts three real nodes (skipped under -short) and returns
// them, a client of all three, and a context that ends with the test or
// after 90 s.
func startThree(t *testing.T) (*proctest.Cluster, *client.Client, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return c, c.Client(), ctx
}

// TestRealProcessesKillAndRestart runs three real `quorumkv server`
// processes: they join by gossip, serve quorum writes, keep serving them
// with one node killed by SIGKILL, refuse `all`, and the killed node has its
// data after a restart.
func TestRealProcessesKillAndRestart(t *testing.T) {
	c, cl, ctx := startThree(t)
	q := client.Options{Consistency: "quorum"}
	st, err := cl.At(0).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.State != "alive" || m.Partitions != 1024 {
			t.Fatalf("member %+v: want alive with 1024 partitions (3 nodes, N=3)", m)
		}
	}
	for i := 0; i < 30; i++ {
		if _, err := cl.At(i%3).Put(ctx, []byte(fmt.Sprint("k", i)), []byte(fmt.Sprint("v", i)), client.Options{Consistency: "all"}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	cliRoundTrip(t, "http://"+c.Proc(1).HTTP)
	c.Kill(2)
	for i := 0; i < 30; i++ {
		key := []byte(fmt.Sprint("k", i))
		res, err := cl.At(i%2).Get(ctx, key, q)
		if err != nil || !res.Found || string(res.Values[0]) != fmt.Sprint("v", i) {
			t.Fatalf("quorum get %s with n3 killed: %v %q", key, err, res.Values)
		}
		if _, err := cl.At(i%2).Put(ctx, []byte(fmt.Sprint("new", i)), []byte("x"), q); err != nil {
			t.Fatalf("quorum put with n3 killed: %v", err)
		}
	}
	_, err = cl.At(0).Get(ctx, []byte("k1"), client.Options{Consistency: "all"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 503 || ce.Needed != 3 || ce.Acked != 2 {
		t.Fatalf("all with one killed: %v, want 503 needed=3 acked=2", err)
	}
	c.Restart(2)
	c.WaitMembers(3, 20*time.Second)
	for i := 0; i < 30; i++ {
		key := []byte(fmt.Sprint("k", i))
		res, err := cl.At(2).Get(ctx, key, client.Options{Consistency: "one"})
		// n3 coordinates a read at one: it answers from the first replica,
		// which may be itself; either way the value must be there.
		if err != nil || !res.Found || string(res.Values[0]) != fmt.Sprint("v", i) {
			t.Fatalf("after restart %s: %v %q", key, err, res.Values)
		}
	}
	if err := c.Term(0); err != nil {
		t.Fatalf("SIGTERM: node did not exit cleanly: %v", err)
	}
}

// TestMisconfiguredNodeRefusedToJoin: a node with another N, another
// cluster name, or the --id of a running member, must not join.
func TestMisconfiguredNodeRefusedToJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 1, Args: []string{"--cluster-name", "alpha"}})
	// joining runs a node that joins the first with extra flags; it must
	// exit, saying why.
	joining := func(args ...string) string {
		t.Helper()
		out, err := proctest.RunOnce(t, 10*time.Second, append([]string{"server", "--data", t.TempDir(),
			"--http", proctest.FreePort(t), "--rpc", proctest.FreePort(t), "--gossip", proctest.FreePort(t),
			"--join", c.Proc(0).Gossip, "--gossip-profile", "local"}, args...)...)
		if err == nil {
			t.Fatalf("a node with %q joined:\n%s", args, out)
		}
		return out
	}
	if out := joining("--id", "bad", "--cluster-name", "alpha", "--replicas", "5"); !containsAll(out, "refusing to join", "replicas=5") {
		t.Fatalf("--replicas 5: the error does not say why:\n%s", out)
	}
	if out := joining("--id", "other", "--cluster-name", "beta"); !containsAll(out,
		"refusing to join: cluster member \""+c.Proc(0).ID+`" is in the cluster named "alpha" and this node in the cluster named "beta" (--cluster-name)`) {
		t.Fatalf("--cluster-name beta: the error does not say why:\n%s", out)
	}
	if out := joining("--id", "unnamed"); !containsAll(out, `is in the cluster named "alpha" and this node in a cluster without a name`) {
		t.Fatalf("no --cluster-name: the error does not say why:\n%s", out)
	}
	if out := joining("--id", "spaced", "--cluster-name", "al pha"); !containsAll(out,
		`--cluster-name: cluster name "al pha": only letters, digits, '.', '_' and '-' are allowed`) {
		t.Fatalf("--cluster-name with a space: %s", out)
	}
	// A second process with the first one's --id must exit too, and the
	// first keeps serving.
	if out := joining("--id", c.Proc(0).ID, "--cluster-name", "alpha"); !containsAll(out,
		"refusing to join", "node id \""+c.Proc(0).ID+"\" is in use", c.Proc(0).Gossip) {
		t.Fatalf("a second --id %s: the error does not say why:\n%s", c.Proc(0).ID, out)
	}
	c.WaitMembers(1, 5*time.Second)

	// The lone node keeps every key's only replica: all is 1 of 1, and a
	// count above that is refused before it runs.
	run := func(args ...string) (string, error) {
		return proctest.RunOnce(t, 20*time.Second, append(args, "--endpoint", c.URL(0))...)
	}
	if out, err := run("put", "-v", "--consistency", "all", "lone", "v"); err != nil || !containsAll(out, "replicas=1 acks=1") {
		t.Fatalf("put at all on one node: %v\n%s", err, out)
	}
	if out, err := run("put", "--w", "2", "lone", "w"); err == nil ||
		!containsAll(out, "a key has only 1 replica while the cluster has fewer members than N=3", "the write was not run") {
		t.Fatalf("put --w 2 on one node: %v\n%s", err, out)
	}
	if out, err := run("get", "lone"); err != nil || !strings.HasPrefix(out, "v\ncontext: ") {
		t.Fatalf("get after the refused write: %v\n%q", err, out)
	}
	// status names the cluster and the nodes it refused, with why.
	if out, err := run("status"); err != nil || !strings.HasPrefix(out, "cluster alpha  node "+c.Proc(0).ID+"  N=3") ||
		!containsAll(out, "refused (running, but not let into the cluster):\n",
			`  other: membership: refusing node "other": it is in the cluster named "beta" and this node in the cluster named "alpha"`,
			`  bad: membership: refusing node "bad": it has replicas=5`) {
		t.Fatalf("status of the cluster named alpha: %v\n%s", err, out)
	}
	// The CLI says what to check when no node answers, and how a command
	// is used when its arguments are wrong.
	closed := proctest.FreePort(t)
	if out, err := proctest.RunOnce(t, 20*time.Second, "get", "lone", "--endpoint", "http://"+closed); err == nil ||
		!containsAll(out, "no node answers at http://"+closed+" (connect: connection refused); is it running, and does --endpoint name it?") {
		t.Fatalf("get from a closed port: %v\n%s", err, out)
	}
	if out, err := run("put", "lone"); err == nil || !containsAll(out, "usage: quorumkv put KEY VALUE") {
		t.Fatalf("put with one argument: %v\n%s", err, out)
	}
}

// cliRoundTrip runs the CLI's put, get and delete against endpoint, each
// with -v (the consistency receipt on stderr).
func cliRoundTrip(t *testing.T, endpoint string) {
	t.Helper()
	run := func(args ...string) (string, error) {
		return proctest.RunOnce(t, 20*time.Second, append(args, "--endpoint", endpoint)...)
	}
	if out, err := run("put", "-v", "--consistency", "all", "cli-key", "cli value"); err != nil ||
		!containsAll(out, "context: ", "replicas=3 acks=3 fallbacks=0\n") {
		t.Fatalf("put -v: %v\n%s", err, out)
	}
	if out, err := run("get", "-v", "cli-key"); err != nil ||
		!containsAll(out, "cli value\n", "context: ", "acks=2 fallbacks=0 read-repair=0\n") {
		t.Fatalf("get -v: %v\n%s", err, out)
	}
	if out, err := run("delete", "-v", "--w", "3", "cli-key"); err != nil || !containsAll(out, "replicas=3 acks=3 fallbacks=0\n") {
		t.Fatalf("delete -v: %v\n%s", err, out)
	}
	if out, err := run("get", "cli-key"); err == nil || !containsAll(out, `key "cli-key" not found`) {
		t.Fatalf("get after delete: %v\n%s", err, out)
	}
	if out, err := run("put", "--w", "0", "cli-key", "x"); err == nil || !containsAll(out, "--w 0: must be a number of replicas from 1 to N") {
		t.Fatalf("put --w 0: %v\n%s", err, out)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestRestartRemembersMembers: a node keeps its member table across
// restarts, so it never serves quorum or strong requests as a cluster of
// one before gossip has found the others. Restarted without --join (as
// the first node of a cluster is), its first strong write already counts
// three replicas; with every other node down and its --join reaching
// nobody, it starts anyway, refuses strong writes (1 of the 2 needed), and
// serves again once the others are back.
func TestRestartRemembersMembers(t *testing.T) {
	c, cl, ctx := startThree(t)
	strong := client.Options{Consistency: "strong"}
	if _, err := cl.At(1).Put(ctx, []byte("reg"), []byte("v1"), strong); err != nil {
		t.Fatal(err)
	}

	c.Kill(0)
	c.RestartJoining(0)
	res, err := cl.At(0).Put(ctx, []byte("reg"), []byte("v2"), strong)
	if err != nil || res.Receipt.Replicas != 3 || res.Receipt.Acks < 2 {
		t.Fatalf("first strong write after a restart without --join: %+v %v, want 3 replicas and 2 or more acks", res.Receipt, err)
	}

	for i := range 3 {
		c.Kill(i)
	}
	c.RestartJoining(1, proctest.FreePort(t))
	st, err := cl.At(1).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, m := range st.Members {
		if m.ID != st.ID && m.State == "dead" {
			dead++
		}
	}
	if dead != 2 {
		t.Fatalf("status after a cold start alone: %+v, want the two other members remembered as dead", st.Members)
	}
	_, err = cl.At(1).Put(ctx, []byte("reg"), []byte("alone"), strong)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 503 || ce.Needed != 2 || ce.Acked != 1 {
		t.Fatalf("strong write on a lone restarted node: %v, want 503 needed=2 acked=1", err)
	}
	c.Restart(0)
	c.Restart(2)
	c.WaitMembers(3, 30*time.Second)
	got, err := cl.At(2).Get(ctx, []byte("reg"), strong)
	if err != nil || len(got.Values) != 1 || string(got.Values[0]) != "v2" {
		t.Fatalf("strong read after the cold start: %q %v, want v2", got.Values, err)
	}
}

// TestRememberedAddressOfAnotherCluster: a node restarted without --join
// reconnects to the gossip addresses its members had. When one of them now
// belongs to a node of another cluster (a reused address), the cluster
// names keep the two apart: each refuses the other and says why in its
// status, and neither takes the other into its member table.
func TestRememberedAddressOfAnotherCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	alpha := proctest.Start(t, proctest.Options{Nodes: 2, Args: []string{"--cluster-name", "alpha"}})
	for i := range 2 {
		if err := alpha.Term(i); err != nil {
			t.Fatal(err)
		}
	}
	// A node of another cluster takes the gossip address alpha's second
	// node had (the later --id and --gossip win).
	beta := proctest.Start(t, proctest.Options{Nodes: 1,
		Args: []string{"--cluster-name", "beta", "--id", "b1", "--gossip", alpha.Proc(1).Gossip}})
	alpha.RestartJoining(0)
	a1 := alpha.Proc(0).ID
	acl, bcl := alpha.Client().At(0), beta.Client().At(0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var ast, bst wire.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		var aerr, berr error
		ast, aerr = acl.Status(ctx)
		bst, berr = bcl.Status(ctx)
		if aerr == nil && berr == nil && strings.Contains(bst.Refused[a1], `it is in the cluster named "alpha"`) &&
			strings.Contains(ast.Refused["b1"], `it is in the cluster named "beta"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the nodes do not list each other as refused: %s sees %v (%v), b1 sees %v (%v)", a1, ast.Refused, aerr, bst.Refused, berr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	members := func(st wire.Status) map[string]string {
		m := map[string]string{}
		for _, ms := range st.Members {
			m[ms.ID] = ms.State
		}
		return m
	}
	if got, want := members(ast), map[string]string{a1: "alive", alpha.Proc(1).ID: "dead"}; !maps.Equal(got, want) {
		t.Errorf("%s's members: %v, want %v", a1, got, want)
	}
	if got, want := members(bst), map[string]string{"b1": "alive"}; !maps.Equal(got, want) {
		t.Errorf("b1's members: %v, want %v", got, want)
	}
}
