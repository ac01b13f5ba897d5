package transfer

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// memStore is a Store in memory.
type memStore struct {
	mu   sync.Mutex
	objs map[int]map[string]vclock.Object
	meta map[string][]byte
}

func newMemStore() *memStore {
	return &memStore{objs: map[int]map[string]vclock.Object{}, meta: map[string][]byte{}}
}

func (m *memStore) ScanFrom(p int, from []byte, fn func([]byte, vclock.Object) (bool, error)) error {
	m.mu.Lock()
	var keys []string
	for k := range m.objs[p] {
		if bytes.Compare([]byte(k), from) >= 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	objs := make([]vclock.Object, len(keys))
	for i, k := range keys {
		objs[i] = m.objs[p][k]
	}
	m.mu.Unlock()
	for i, k := range keys {
		if more, err := fn([]byte(k), objs[i]); err != nil || !more {
			return err
		}
	}
	return nil
}

func (m *memStore) Merge(p int, key []byte, obj vclock.Object) (vclock.Object, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objs[p] == nil {
		m.objs[p] = map[string]vclock.Object{}
	}
	cur, ok := m.objs[p][string(key)]
	next := obj
	if ok {
		next = vclock.Merge(cur, obj)
	}
	m.objs[p][string(key)] = next
	return next, !ok || !next.Equal(cur), nil
}

func (m *memStore) Purge(p int, key []byte, hash uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[p][string(key)]
	if !ok || cur.Hash() != hash {
		return false, nil
	}
	delete(m.objs[p], string(key))
	return true, nil
}

func (m *memStore) GetMeta(name string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.meta[name]
	return b, ok, nil
}

func (m *memStore) SetMeta(name string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meta[name] = slices.Clone(v)
	return nil
}

func (m *memStore) count(p int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objs[p])
}

// testCluster is a ring every node sees at once, with every member up.
type testCluster struct{ r atomic.Pointer[ring.Ring] }

func (c *testCluster) Ring() *ring.Ring { return c.r.Load() }
func (c *testCluster) Up(string) bool   { return true }
func (c *testCluster) Gone(id string) bool {
	return !c.Ring().Contains(id)
}

// testNet delivers requests to the nodes' services; afterCall, when set,
// runs after each delivery.
type testNet struct {
	nodes     map[string]*Service
	afterCall func(to string, req wire.Request)
}

func (n *testNet) Call(ctx context.Context, to string, req wire.Request) (wire.Response, error) {
	s, ok := n.nodes[to]
	if !ok {
		return wire.Response{}, fmt.Errorf("no node %s", to)
	}
	resp, err := s.HandleRequest(ctx, req)
	if err == nil && n.afterCall != nil {
		n.afterCall(to, req)
	}
	return resp, err
}

type testNodes struct {
	cl     *testCluster
	net    *testNet
	stores map[string]*memStore
	svcs   map[string]*Service
}

func newTestNodes(t *testing.T, ids []string, r *ring.Ring) *testNodes {
	t.Helper()
	tn := &testNodes{cl: &testCluster{}, net: &testNet{nodes: map[string]*Service{}}, stores: map[string]*memStore{}, svcs: map[string]*Service{}}
	tn.cl.r.Store(r)
	for _, id := range ids {
		cfg := DefaultConfig()
		cfg.ID = id
		st := newMemStore()
		svc, err := New(cfg, st, tn.cl, tn.net)
		if err != nil {
			t.Fatal(err)
		}
		tn.stores[id], tn.svcs[id], tn.net.nodes[id] = st, svc, svc
	}
	return tn
}

func mustRing(t *testing.T, ids ...string) *ring.Ring {
	t.Helper()
	var ms []ring.Member
	for _, id := range ids {
		ms = append(ms, ring.Member{ID: id})
	}
	r, err := ring.New(ms, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fill writes keys into partition p of st.
func fill(t *testing.T, st *memStore, p, keys int) {
	t.Helper()
	for i := 0; i < keys; i++ {
		obj, _ := vclock.Object{}.Update("w", nil, []byte("v"), false)
		if _, _, err := st.Merge(p, []byte(fmt.Sprintf("k%04d", i)), obj); err != nil {
			t.Fatal(err)
		}
	}
}

// rejoinSetup returns a four-node ring, the ring once d has left (where a,
// with two others, is a primary of every partition), and a partition that a
// is not a primary of in the first.
func rejoinSetup(t *testing.T) (before, after *ring.Ring, p int) {
	t.Helper()
	before, after = mustRing(t, "a", "b", "c", "d"), mustRing(t, "a", "b", "c")
	for p = 0; p < before.Partitions(); p++ {
		if !before.IsPrimary("a", p) {
			return before, after, p
		}
	}
	t.Fatal("a is a primary of every partition")
	return nil, nil, 0
}

// TestHandoffStopsWhenNodeIsPrimaryAgain: Pending saw a partition this node
// is not a primary of, and before its handoff started the ring changed (a
// node left) so that it is a primary again. The handoff must not send the
// partition to its primaries (itself among them) and purge it.
func TestHandoffStopsWhenNodeIsPrimaryAgain(t *testing.T) {
	before, after, p := rejoinSetup(t)
	tn := newTestNodes(t, []string{"a", "b", "c", "d"}, before)
	fill(t, tn.stores["a"], p, 50)
	pending, err := tn.svcs["a"].Pending()
	if err != nil || !slices.Contains(pending, p) {
		t.Fatalf("partition %d not pending on a: %v %v", p, pending, err)
	}
	tn.cl.r.Store(after)
	if err := tn.svcs["a"].handOff(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if n := tn.stores["a"].count(p); n != 50 {
		t.Fatalf("a, a primary of partition %d again, kept %d of its 50 keys", p, n)
	}
}

// TestHandoffKeepsDataWhenRingChangesMidway: the ring changes while a batch
// is on its way, making this node a primary again. The targets hold the
// batch, but this node must keep its copy.
func TestHandoffKeepsDataWhenRingChangesMidway(t *testing.T) {
	before, after, p := rejoinSetup(t)
	tn := newTestNodes(t, []string{"a", "b", "c", "d"}, before)
	fill(t, tn.stores["a"], p, 50)
	var delivered atomic.Int32
	tn.net.afterCall = func(string, wire.Request) {
		if delivered.Add(1) == int32(before.Replicas()) {
			tn.cl.r.Store(after)
		}
	}
	if err := tn.svcs["a"].handOff(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if n := tn.stores["a"].count(p); n != 50 {
		t.Fatalf("a, a primary of partition %d again, kept %d of its 50 keys", p, n)
	}
	for _, id := range before.Primaries(p) {
		if n := tn.stores[id].count(p); n != 50 {
			t.Fatalf("target %s holds %d of the 50 keys sent", id, n)
		}
	}
}

// TestHandoffMovesPartition: with a stable ring the handoff moves every
// key to the primaries and purges it here.
func TestHandoffMovesPartition(t *testing.T) {
	before, _, p := rejoinSetup(t)
	tn := newTestNodes(t, []string{"a", "b", "c", "d"}, before)
	fill(t, tn.stores["a"], p, 600) // more than one batch
	tn.svcs["a"].handoffRound(context.Background())
	if n := tn.stores["a"].count(p); n != 0 {
		t.Fatalf("a still holds %d keys of partition %d after handing it off", n, p)
	}
	for _, id := range before.Primaries(p) {
		if n := tn.stores[id].count(p); n != 600 {
			t.Fatalf("primary %s holds %d of 600 keys", id, n)
		}
	}
	if got := tn.svcs["a"].Stats.Completed.Load(); got != 1 {
		t.Fatalf("%d handoffs completed, want 1", got)
	}
}

// TestTransferRefusedByNonPrimary: a batch for a partition the receiver is
// not a primary of (in its view) is refused and changes nothing, so the
// sender keeps its copy.
func TestTransferRefusedByNonPrimary(t *testing.T) {
	before, _, p := rejoinSetup(t)
	tn := newTestNodes(t, []string{"a", "b", "c", "d"}, before)
	obj, _ := vclock.Object{}.Update("w", nil, []byte("v"), false)
	_, err := tn.svcs["a"].HandleRequest(context.Background(), wire.Request{Op: wire.OpTransfer, Partition: p,
		Objects: []wire.KeyObject{{Key: []byte("k"), Object: obj}}})
	if err == nil {
		t.Fatal("a took a batch of a partition it is not a primary of")
	}
	if n := tn.stores["a"].count(p); n != 0 {
		t.Fatalf("refused batch left %d keys", n)
	}
}
