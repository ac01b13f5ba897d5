package membership

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// waitFor polls cond every 5ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer collects a test's log lines; they are printed only if the
// test fails (t.Log from memberlist goroutines after the test would panic).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a logger whose output is dumped when t fails.
func testLogger(t *testing.T) *slog.Logger {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig is a fast config for node id with a small ring.
func testConfig(t *testing.T, id string, join ...string) Config {
	c := FastConfig()
	c.Meta.ID = id
	c.Meta.RPCAddr = "127.0.0.1:1"
	c.Meta.HTTPAddr = "127.0.0.1:2"
	c.Meta.Partitions = 64
	c.Join = join
	c.Logger = testLogger(t).With("test_node", id)
	return c
}

// start creates a Membership closed when the test ends.
func start(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Meta.ID, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// cluster starts n nodes n1..nN, each joining n1, with cfg adjusting each.
func cluster(t *testing.T, n int, adjust func(*Config)) []*Membership {
	t.Helper()
	var ms []*Membership
	for i := 1; i <= n; i++ {
		var join []string
		if i > 1 {
			join = []string{ms[0].GossipAddr()}
		}
		cfg := testConfig(t, fmt.Sprintf("n%d", i), join...)
		if adjust != nil {
			adjust(&cfg)
		}
		ms = append(ms, start(t, cfg))
	}
	return ms
}

// state returns id's state as m sees it, "" when absent.
func state(m *Membership, id string) State {
	mem, ok := m.Member(id)
	if !ok {
		return ""
	}
	return mem.State
}

func ringIDs(m *Membership) []string {
	var ids []string
	for _, rm := range m.Ring().Members() {
		ids = append(ids, rm.ID)
	}
	return ids
}

// converged reports whether every node sees ids alive and has the same ring
// over exactly ids.
func converged(ms []*Membership, ids ...string) bool {
	for _, m := range ms {
		for _, id := range ids {
			if state(m, id) != StateAlive {
				return false
			}
		}
		if !slices.Equal(ringIDs(m), ids) || !m.Ring().Equal(ms[0].Ring()) {
			return false
		}
	}
	return true
}

func TestThreeNodesJoin(t *testing.T) {
	ms := cluster(t, 3, nil)
	waitFor(t, 10*time.Second, "three nodes alive with equal rings", func() bool {
		return converged(ms, "n1", "n2", "n3")
	})
	for _, m := range ms {
		members := m.Members()
		if len(members) != 3 {
			t.Fatalf("%s sees %d members, want 3", m.Self().ID, len(members))
		}
		for i, mem := range members {
			if want := fmt.Sprintf("n%d", i+1); mem.ID != want {
				t.Errorf("members[%d] = %s, want %s (sorted by id)", i, mem.ID, want)
			}
			if mem.GossipAddr != ms[i].GossipAddr() {
				t.Errorf("%s: gossip addr of %s = %q, want %q", m.Self().ID, mem.ID, mem.GossipAddr, ms[i].GossipAddr())
			}
			if mem.Replicas != 3 || mem.Partitions != 64 || mem.RPCAddr != "127.0.0.1:1" || mem.Scheme != "http" {
				t.Errorf("meta of %s = %+v", mem.ID, mem.Meta)
			}
		}
		if !m.Alive("n2") || !m.Up("n3") || m.Alive("nope") {
			t.Errorf("Alive/Up wrong on %s", m.Self().ID)
		}
		if addr, ok := m.Addr("n3"); !ok || addr != "127.0.0.1:1" {
			t.Errorf("Addr(n3) = %q, %v", addr, ok)
		}
		if r := m.Ring(); r.PrimaryCount("n1")+r.PrimaryCount("n2")+r.PrimaryCount("n3") != 64*3 {
			t.Errorf("primaries do not add up to partitions*N")
		}
	}
	if strings.HasSuffix(ms[0].GossipAddr(), ":0") {
		t.Errorf("GossipAddr %q reports port 0", ms[0].GossipAddr())
	}
}

func TestUpdateMetaGossiped(t *testing.T) {
	ms := cluster(t, 2, nil)
	waitFor(t, 10*time.Second, "two nodes", func() bool { return converged(ms, "n1", "n2") })
	if err := ms[1].UpdateMeta(func(m *Meta) { m.Zone = "z2"; m.HTTPAddr = "127.0.0.1:3" }); err != nil {
		t.Fatal(err)
	}
	if got := ms[1].Self(); got.Zone != "z2" || got.HTTPAddr != "127.0.0.1:3" {
		t.Fatalf("Self after UpdateMeta = %+v", got.Meta)
	}
	waitFor(t, 5*time.Second, "n1 sees n2's new zone", func() bool {
		mem, _ := ms[0].Member("n2")
		return mem.Zone == "z2" && mem.HTTPAddr == "127.0.0.1:3" && ms[0].Ring().Equal(ms[1].Ring())
	})

	// Fields that are cluster-wide or identity cannot change, and bad
	// values are refused without being installed.
	for name, fn := range map[string]func(*Meta){
		"id":       func(m *Meta) { m.ID = "other" },
		"replicas": func(m *Meta) { m.Replicas = 5 },
		"rpc":      func(m *Meta) { m.RPCAddr = "nonsense" },
		"size":     func(m *Meta) { m.Zone = strings.Repeat("z", 600) },
	} {
		if err := ms[1].UpdateMeta(fn); err == nil {
			t.Errorf("UpdateMeta changing %s succeeded", name)
		}
	}
	if err := ms[1].UpdateMeta(func(m *Meta) { m.Zone = strings.Repeat("z", 600) }); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized meta: %v, want ErrMetaTooLarge", err)
	}
	if got := ms[1].Self(); got.Zone != "z2" || got.ID != "n2" {
		t.Errorf("refused update was installed: %+v", got.Meta)
	}
}

// recorder keeps the sequence of states one node saw for a peer, fed by
// OnChange.
type recorder struct {
	m    atomic.Pointer[Membership]
	peer string

	mu     sync.Mutex
	states []State
	calls  int
}

func (r *recorder) onChange() {
	m := r.m.Load()
	if m == nil {
		return
	}
	s := state(m, r.peer)
	if s == "" {
		return // not known yet, or forgotten
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if len(r.states) == 0 || r.states[len(r.states)-1] != s {
		r.states = append(r.states, s)
	}
}

func (r *recorder) seen() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

func TestCloseSuspectDeadThenOutOfRing(t *testing.T) {
	const deadTimeout = 1500 * time.Millisecond
	recs := map[string]*recorder{}
	ms := cluster(t, 3, func(c *Config) {
		c.DeadTimeout = deadTimeout
		r := &recorder{peer: "n3"}
		recs[c.Meta.ID] = r
		c.OnChange = r.onChange
	})
	for _, m := range ms {
		recs[m.Self().ID].m.Store(m)
		recs[m.Self().ID].onChange() // record the starting state
	}
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	full := ms[0].Ring()

	if err := ms[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	survivors := ms[:2]
	waitFor(t, 10*time.Second, "survivors see n3 dead", func() bool {
		return state(survivors[0], "n3") == StateDead && state(survivors[1], "n3") == StateDead
	})
	for _, m := range survivors {
		if !m.Ring().Equal(full) {
			t.Errorf("%s: ring changed as soon as n3 died", m.Self().ID)
		}
		if m.Alive("n3") {
			t.Errorf("%s: Alive(n3) on a dead node", m.Self().ID)
		}
	}
	waitFor(t, 10*time.Second, "n3 out of the ring", func() bool {
		return slices.Equal(ringIDs(survivors[0]), []string{"n1", "n2"}) &&
			slices.Equal(ringIDs(survivors[1]), []string{"n1", "n2"})
	})
	for _, m := range survivors {
		mem, ok := m.Member("n3")
		if !ok || mem.State != StateDead {
			t.Fatalf("%s: n3 = %+v, %v; want listed as dead", m.Self().ID, mem, ok)
		}
		if held := time.Since(mem.Since); held < deadTimeout-100*time.Millisecond {
			t.Errorf("%s: n3 left the ring %v after dying, before DeadTimeout %v", m.Self().ID, held, deadTimeout)
		}
	}
	if !survivors[0].Ring().Equal(survivors[1].Ring()) {
		t.Errorf("survivors' rings differ")
	}

	// Each survivor ends with dead, reached from suspect (its own probe
	// failed) or directly from alive (the death was gossiped before it
	// probed n3 itself). Suspicion is this node's own, so require it on at
	// least one survivor. Earlier alive/suspect flips are refuted false
	// suspicions, possible on a loaded machine.
	suspected := 0
	for _, m := range survivors {
		seen := recs[m.Self().ID].seen()
		if len(seen) < 2 || seen[0] != StateAlive || seen[len(seen)-1] != StateDead ||
			slices.ContainsFunc(seen[:len(seen)-1], func(s State) bool { return s != StateAlive && s != StateSuspect }) {
			t.Errorf("%s saw n3 go through %v", m.Self().ID, seen)
			continue
		}
		if seen[len(seen)-2] == StateSuspect {
			suspected++
		}
	}
	if suspected == 0 {
		t.Errorf("no survivor saw n3 suspect before dead")
	}
	t.Logf("survivors that saw suspect before dead: %d of 2", suspected)

	// Forgotten DeadTimeout after leaving the ring.
	waitFor(t, 10*time.Second, "n3 forgotten", func() bool {
		_, ok1 := survivors[0].Member("n3")
		_, ok2 := survivors[1].Member("n3")
		return !ok1 && !ok2
	})
}

func TestLeave(t *testing.T) {
	var changes atomic.Int64
	ms := cluster(t, 3, func(c *Config) {
		if c.Meta.ID == "n1" {
			c.OnChange = func() { changes.Add(1) }
		}
	})
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	before := changes.Load()
	if before == 0 {
		t.Errorf("OnChange never called while the cluster formed")
	}

	if err := ms[2].Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	survivors := ms[:2]
	waitFor(t, 5*time.Second, "survivors see n3 left and out of the ring", func() bool {
		for _, m := range survivors {
			if state(m, "n3") != StateLeft || !slices.Equal(ringIDs(m), []string{"n1", "n2"}) {
				return false
			}
		}
		return true
	})
	if changes.Load() == before {
		t.Errorf("OnChange not called after n3 left")
	}
	if err := ms[2].Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}
	if err := ms[2].Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Leave: %v, want ErrClosed", err)
	}
	if err := ms[2].UpdateMeta(func(*Meta) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Leave: %v, want ErrClosed", err)
	}
	if ms[2].Self().State != StateLeft {
		t.Errorf("leaver sees itself as %s", ms[2].Self().State)
	}
}

func TestLeavingLeavesRingButStaysMember(t *testing.T) {
	ms := cluster(t, 3, nil)
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	if err := ms[2].UpdateMeta(func(m *Meta) { m.Leaving = true }); err != nil {
		t.Fatal(err)
	}
	// The leaver's own ring reflects it as soon as UpdateMeta returns.
	if ids := ringIDs(ms[2]); !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Fatalf("leaver's ring = %v right after UpdateMeta", ids)
	}
	waitFor(t, 5*time.Second, "everyone excludes the leaving node", func() bool {
		for _, m := range ms {
			if !slices.Equal(ringIDs(m), []string{"n1", "n2"}) || state(m, "n3") != StateAlive || !m.Alive("n3") {
				return false
			}
		}
		return ms[0].Ring().Equal(ms[2].Ring())
	})
}

func TestIncompatibleReplicasRefused(t *testing.T) {
	n1 := start(t, testConfig(t, "n1"))
	cfg := testConfig(t, "n2", n1.GossipAddr())
	cfg.Meta.Replicas = 5
	before := runtime.NumGoroutine()
	_, err := New(cfg)
	if err == nil {
		t.Fatal("join with replicas=5 into a replicas=3 cluster succeeded")
	}
	want := `membership: refusing to join: cluster member "n1" has replicas=3 partitions=64, this node has replicas=5 partitions=64`
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	var ie *IncompatibleError
	if !errors.Is(err, ErrIncompatible) || !errors.As(err, &ie) || ie.Member != "n1" || !ie.Joining {
		t.Errorf("error %v does not unwrap to an IncompatibleError about n1", err)
	}
	waitFor(t, 5*time.Second, "the refused node's goroutines to stop", func() bool {
		return runtime.NumGoroutine() <= before
	})

	// The cluster side never adds it: bring in a compatible node and wait
	// until n1 has seen it (gossip has run), then n2 must still be absent.
	n3 := start(t, testConfig(t, "n3", n1.GossipAddr()))
	waitFor(t, 10*time.Second, "n3 joins", func() bool { return converged([]*Membership{n1, n3}, "n1", "n3") })
	if _, ok := n1.Member("n2"); ok {
		t.Errorf("cluster added the refused node")
	}
	if ids := ringIDs(n1); !slices.Equal(ids, []string{"n1", "n3"}) {
		t.Errorf("ring = %v", ids)
	}

	// The other way round: an existing replicas=5 cluster refuses us too.
	other := testConfig(t, "m1")
	other.Meta.Partitions = 128
	m1 := start(t, other)
	_, err = New(testConfig(t, "n4", m1.GossipAddr()))
	if !errors.As(err, &ie) || ie.Partitions != 128 || ie.LocalPartitions != 64 {
		t.Errorf("joining a partitions=128 cluster: %v", err)
	}
	if len(m1.Members()) != 1 {
		t.Errorf("m1 added the refused node: %v", m1.Members())
	}
}

// A node joins only a cluster of its own name: another name, or none where
// the cluster has one, is refused by both sides, and nodes of one name still
// form their cluster.
func TestOtherClusterNameRefused(t *testing.T) {
	named := func(id, cluster string, join ...string) Config {
		c := testConfig(t, id, join...)
		c.Meta.Cluster = cluster
		return c
	}
	a1 := start(t, named("a1", "alpha"))
	_, err := New(named("b1", "beta", a1.GossipAddr()))
	want := `membership: refusing to join: cluster member "a1" is in the cluster named "alpha" and this node in the cluster named "beta" (--cluster-name); does --join name a node of this node's cluster?`
	if err == nil || err.Error() != want {
		t.Fatalf("joining another cluster's node: %v\nwant %s", err, want)
	}
	var ie *IncompatibleError
	if !errors.As(err, &ie) || ie.Cluster != "alpha" || ie.LocalCluster != "beta" {
		t.Errorf("error %v does not carry both names", err)
	}
	waitFor(t, 5*time.Second, "a1 to list b1 as refused for its cluster name", func() bool {
		return strings.Contains(a1.Refused()["b1"], `it is in the cluster named "beta"`)
	})
	if _, err := New(testConfig(t, "u1", a1.GossipAddr())); !errors.Is(err, ErrIncompatible) {
		t.Errorf("a node without a name joined the cluster named alpha: %v", err)
	}
	a2 := start(t, named("a2", "alpha", a1.GossipAddr()))
	waitFor(t, 10*time.Second, "a2 joins", func() bool { return converged([]*Membership{a1, a2}, "a1", "a2") })
	for _, m := range []*Membership{a1, a2} {
		if ids := ringIDs(m); !slices.Equal(ids, []string{"a1", "a2"}) {
			t.Errorf("%s's ring = %v, want only the nodes named alpha", m.cfg.Meta.ID, ids)
		}
	}
	if err := a1.UpdateMeta(func(m *Meta) { m.Cluster = "gamma" }); err == nil {
		t.Error("UpdateMeta changed the cluster name")
	}
}

func TestWrongSecretKeyCannotJoin(t *testing.T) {
	keyA := bytes.Repeat([]byte{1}, 32)
	keyB := bytes.Repeat([]byte{2}, 32)
	cfg := testConfig(t, "n1")
	cfg.SecretKey = keyA
	n1 := start(t, cfg)

	for name, key := range map[string][]byte{"other key": keyB, "no key": nil} {
		cfg := testConfig(t, "n2", n1.GossipAddr())
		cfg.SecretKey = key
		cfg.TCPTimeout = 500 * time.Millisecond
		_, err := New(cfg)
		if !errors.Is(err, ErrJoin) {
			t.Errorf("%s: join error = %v, want ErrJoin", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if len(n1.Members()) != 1 {
		t.Errorf("n1 let a node with the wrong key in: %v", n1.Members())
	}

	// The right key works.
	cfg = testConfig(t, "n3", n1.GossipAddr())
	cfg.SecretKey = keyA
	n3 := start(t, cfg)
	waitFor(t, 10*time.Second, "n3 joins with the right key", func() bool {
		return converged([]*Membership{n1, n3}, "n1", "n3")
	})
}

func TestJoinNobodyFails(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t, "n1", "127.0.0.1:1")
	cfg.TCPTimeout = 300 * time.Millisecond
	_, err := New(cfg)
	if !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("join to a closed port: %v", err)
	}
	waitFor(t, 5*time.Second, "nothing left running", func() bool { return runtime.NumGoroutine() <= before })
}

// TestRememberedMembers: members of an earlier run come back as dead and
// in the ring (so N replicas are still counted), except this node, those
// that left or were leaving, those of another ring shape and those last
// known longer than DeadTimeout ago; and with members remembered, a join
// that reaches nobody is not fatal.
func TestRememberedMembers(t *testing.T) {
	now := time.Now()
	meta := func(id string) Meta {
		m := peerMeta(id, 7)
		m.Partitions = 64
		return m
	}
	leaving := meta("leaving")
	leaving.Leaving = true
	otherN := meta("other-n")
	otherN.Replicas = 5
	mem := func(m Meta, st State, since time.Time) Member {
		return Member{Meta: m, State: st, Since: since, GossipAddr: "127.0.0.1:9"}
	}
	cfg := testConfig(t, "n1", "127.0.0.1:1")
	cfg.TCPTimeout = 300 * time.Millisecond
	cfg.Remembered = []Member{
		mem(meta("n1"), StateAlive, now),
		mem(meta("up"), StateAlive, now.Add(-10*time.Second)),
		mem(meta("dying"), StateDead, now.Add(-20*time.Second)),
		mem(meta("gone"), StateLeft, now),
		mem(leaving, StateAlive, now),
		mem(otherN, StateAlive, now),
		mem(meta("old"), StateDead, now.Add(-cfg.DeadTimeout-time.Second)),
	}
	m := start(t, cfg)
	var got []string
	for _, mb := range m.Members() {
		if mb.ID == "n1" {
			continue
		}
		got = append(got, mb.ID)
		if mb.State != StateDead {
			t.Errorf("remembered %s is %s, want dead", mb.ID, mb.State)
		}
	}
	if want := []string{"dying", "up"}; !slices.Equal(got, want) {
		t.Fatalf("remembered members %v, want %v", got, want)
	}
	r := m.Ring()
	if r.PrimaryCount("up") == 0 || r.PrimaryCount("dying") == 0 || len(r.Primaries(0)) != 3 {
		t.Errorf("ring does not hold the remembered members: up %d, dying %d partitions, %d primaries of partition 0",
			r.PrimaryCount("up"), r.PrimaryCount("dying"), len(r.Primaries(0)))
	}

	// Nothing usable remembered: the failed join is fatal, as for a new node.
	cfg = testConfig(t, "n9", "127.0.0.1:1")
	cfg.TCPTimeout = 300 * time.Millisecond
	cfg.Remembered = []Member{mem(meta("gone"), StateLeft, now)}
	if _, err := New(cfg); !errors.Is(err, ErrJoin) {
		t.Fatalf("join to a closed port with only a left member remembered: %v, want ErrJoin", err)
	}
}

func TestRestartSameIDNewPort(t *testing.T) {
	ms := cluster(t, 3, nil)
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	full := ms[0].Ring()
	oldAddr, oldStarted := ms[2].GossipAddr(), ms[2].Self().Started
	if err := ms[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n3 dead", func() bool {
		return state(ms[0], "n3") == StateDead && state(ms[1], "n3") == StateDead
	})

	cfg := testConfig(t, "n3", ms[1].GossipAddr())
	cfg.Meta.Incarnation = 7 // as after a disk loss
	n3 := start(t, cfg)
	if n3.GossipAddr() == oldAddr {
		t.Fatalf("restart got the same address %s; the test needs a new port", oldAddr)
	}
	all := []*Membership{ms[0], ms[1], n3}
	waitFor(t, 10*time.Second, "restarted n3 alive everywhere", func() bool {
		for _, m := range all {
			mem, ok := m.Member("n3")
			if !ok || mem.State != StateAlive || mem.GossipAddr != n3.GossipAddr() || mem.Incarnation != 7 {
				return false
			}
		}
		return converged(all, "n1", "n2", "n3")
	})
	if n3.Self().Started == oldStarted {
		t.Errorf("restart kept Started")
	}
	if !ms[0].Ring().Equal(full) {
		t.Errorf("ring changed across a restart within DeadTimeout")
	}
}

func TestRestartSameIDImmediately(t *testing.T) {
	// A crash and restart on a new port before anyone noticed: memberlist
	// refuses the new address while the old life looks alive, then takes
	// it once the old life is declared dead for ReclaimTime.
	ms := cluster(t, 3, nil)
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	if err := ms[2].Close(); err != nil {
		t.Fatal(err)
	}
	n3 := start(t, testConfig(t, "n3", ms[0].GossipAddr()))
	all := []*Membership{ms[0], ms[1], n3}
	waitFor(t, 10*time.Second, "the new life alive everywhere", func() bool {
		for _, m := range all {
			if mem, _ := m.Member("n3"); mem.GossipAddr != n3.GossipAddr() {
				return false
			}
		}
		return converged(all, "n1", "n2", "n3")
	})
}

func TestDuplicateIDRefused(t *testing.T) {
	// A second running process with an ID already in the cluster must not
	// join: unlike a restart (above), the first life answers for the ID.
	ms := cluster(t, 2, nil)
	waitFor(t, 10*time.Second, "two nodes", func() bool { return converged(ms, "n1", "n2") })
	before := runtime.NumGoroutine()
	_, err := New(testConfig(t, "n2", ms[0].GossipAddr()))
	var de *DuplicateIDError
	if !errors.Is(err, ErrDuplicateID) || !errors.As(err, &de) || de.ID != "n2" || de.Addr != ms[1].GossipAddr() {
		t.Fatalf("second n2 joined or failed otherwise: %v", err)
	}
	want := `membership: refusing to join: node id "n2" is in use by a live member at gossip address ` + ms[1].GossipAddr() +
		"; give every node its own --id (or stop that one first)"
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	waitFor(t, 5*time.Second, "the refused node's goroutines to stop", func() bool {
		return runtime.NumGoroutine() <= before
	})
	// The cluster keeps the first n2.
	time.Sleep(200 * time.Millisecond)
	for _, m := range ms {
		if mem, _ := m.Member("n2"); mem.State != StateAlive || mem.GossipAddr != ms[1].GossipAddr() {
			t.Errorf("%s sees n2 as %+v after the refused join", m.Self().ID, mem)
		}
	}
}

func TestJoinerLearnsDeadMembers(t *testing.T) {
	// memberlist forgets dead nodes after GossipToTheDeadTime; a node that
	// joins after that must still put the dead node in its ring, or its
	// ring would differ from everyone else's.
	ms := cluster(t, 3, func(c *Config) { c.GossipToTheDeadTime = 200 * time.Millisecond })
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	if err := ms[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n3 dead", func() bool { return state(ms[0], "n3") == StateDead })
	// memberlist never tells a newcomer about a node it did not see alive,
	// reaped or not: only this package's push/pull records can.
	cfg := testConfig(t, "n4", ms[0].GossipAddr())
	n4 := start(t, cfg)
	waitFor(t, 10*time.Second, "n4's ring matches", func() bool {
		return state(n4, "n3") == StateDead && n4.Ring().Equal(ms[0].Ring()) &&
			slices.Equal(ringIDs(n4), []string{"n1", "n2", "n3", "n4"})
	})
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	var calls atomic.Int64
	var ms []*Membership
	for i := 1; i <= 2; i++ {
		var join []string
		if i > 1 {
			join = []string{ms[0].GossipAddr()}
		}
		cfg := testConfig(t, fmt.Sprintf("n%d", i), join...)
		cfg.OnChange = func() { calls.Add(1) }
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	waitFor(t, 10*time.Second, "two nodes", func() bool { return converged(ms, "n1", "n2") })
	waitFor(t, 5*time.Second, "OnChange called", func() bool { return calls.Load() > 0 })
	for _, m := range ms {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	n := calls.Load()
	waitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= before
	})
	if calls.Load() != n {
		t.Errorf("OnChange called after Close")
	}
}

// faultyTransport is memberlist's network transport with outgoing traffic
// to chosen addresses dropped: blocking each side from the other is a
// network partition.
type faultyTransport struct {
	*memberlist.NetTransport
	mu      sync.Mutex
	blocked map[string]bool
}

func newFaultyTransport(t *testing.T) *faultyTransport {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &faultyTransport{NetTransport: nt, blocked: map[string]bool{}}
}

func (f *faultyTransport) block(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		f.blocked[a] = true
	}
}

func (f *faultyTransport) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.blocked)
}

func (f *faultyTransport) isBlocked(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[addr]
}

func (f *faultyTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if f.isBlocked(addr) {
		return time.Now(), nil
	}
	return f.NetTransport.WriteTo(b, addr)
}

func (f *faultyTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return f.WriteTo(b, a.Addr)
}

func (f *faultyTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if f.isBlocked(addr) {
		return nil, fmt.Errorf("partitioned from %s", addr)
	}
	return f.NetTransport.DialTimeout(addr, timeout)
}

func (f *faultyTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return f.DialTimeout(a.Addr, timeout)
}

func TestPartitionHealsAfterMemberlistForgets(t *testing.T) {
	// A partition longer than suspicion + GossipToTheDeadTime: memberlist
	// alone would never reconnect the two sides.
	trs := []*faultyTransport{newFaultyTransport(t), newFaultyTransport(t), newFaultyTransport(t)}
	ms := cluster(t, 3, func(c *Config) {
		i := c.Meta.ID[1] - '1'
		c.Transport = trs[i]
		c.GossipToTheDeadTime = 200 * time.Millisecond
	})
	waitFor(t, 10*time.Second, "three nodes", func() bool { return converged(ms, "n1", "n2", "n3") })
	full := ms[0].Ring()

	// n3 | n1 n2
	trs[0].block(ms[2].GossipAddr())
	trs[1].block(ms[2].GossipAddr())
	trs[2].block(ms[0].GossipAddr(), ms[1].GossipAddr())
	waitFor(t, 10*time.Second, "both sides see the other dead", func() bool {
		return state(ms[0], "n3") == StateDead && state(ms[1], "n3") == StateDead &&
			state(ms[2], "n1") == StateDead && state(ms[2], "n2") == StateDead
	})
	// memberlist drops dead nodes from its list, and stops gossiping to
	// them, GossipToTheDeadTime after their death, at the end of a probe
	// round; nothing observable says when, so this waits on the clock.
	died := time.Now()
	waitFor(t, 10*time.Second, "memberlist to forget the other side", func() bool {
		return time.Since(died) > 200*time.Millisecond+5*100*time.Millisecond
	})
	if !ms[0].Ring().Equal(full) || !ms[2].Ring().Equal(full) {
		t.Errorf("rings changed within DeadTimeout")
	}
	for _, tr := range trs {
		tr.heal()
	}
	waitFor(t, 10*time.Second, "the cluster merges again", func() bool { return converged(ms, "n1", "n2", "n3") })
}
