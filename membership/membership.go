package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/quorumkv/quorumkv/ring"
)

// Membership is one node's gossip membership: memberlist underneath, a
// member table that remembers dead and left members, and the ring computed
// from it. Read methods (Ring, Members, Member, Alive, Addr, Up, Self) take
// no lock: they load immutable snapshots. It is safe for concurrent use.
type Membership struct {
	cfg        Config       // copied, defaulted and validated; cfg.Meta is the initial Meta
	log        *slog.Logger // never nil
	ml         *memberlist.Memberlist
	gossipAddr string

	ring atomic.Pointer[ring.Ring]
	view atomic.Pointer[view]

	joining atomic.Bool        // true while New runs memberlist's Join
	changes atomic.Uint64      // bumped by every table change and ring publish
	kick    chan struct{}      // wakes run; capacity 1, sends never block
	stop    context.CancelFunc // called by Close; stops run and reconnect
	wg      sync.WaitGroup

	// lifeMu orders UpdateMeta (read side) against Leave and Close (write
	// side), so memberlist is never called after its shutdown.
	lifeMu sync.RWMutex
	closed bool // guarded by lifeMu

	// metaMu serialises UpdateMeta so concurrent updates do not lose each
	// other's changes.
	metaMu sync.Mutex

	// rebuildMu serialises ring rebuilds, so an older member set is never
	// published after a newer one.
	rebuildMu  sync.Mutex
	ringErrLog string // guarded by rebuildMu: last ring.New error logged

	// mu guards the fields below. memberlist calls the delegates with its
	// own locks held and they take mu, so memberlist must never be called
	// while mu is held.
	mu        sync.Mutex
	self      Meta
	members   map[string]*entry
	refusal   error              // first refusal seen by NotifyMerge while joining
	refused   map[string]refusal // peers refused lately, by ID
	conflicts map[string]string  // peer -> address whose ID conflict was logged
	// selfElsewhere: while joining, the cluster reported this node's ID
	// alive at this other gossip address.
	selfElsewhere string
}

// entry is a member table row.
type entry struct {
	Member
	// leftReported: a peer reported that this life of the member (same
	// Meta.Started) left, so its disappearance means left, not dead.
	leftReported bool
}

// view is an immutable snapshot of the member table.
type view struct {
	sorted []Member
	byID   map[string]int
}

// New starts gossip on cfg.BindAddr and, if cfg.Join is not empty, joins the
// cluster through those addresses. A join that reaches nobody, or is
// refused (different Replicas, Partitions, TLS or cluster name, foreign
// metadata), returns an error — an *IncompatibleError for refusals,
// ErrJoin otherwise — and leaves nothing running.
func New(cfg Config) (*Membership, error) {
	cfg = cfg.WithDefaults()
	cfg.Join = slices.Clone(cfg.Join)
	cfg.SecretKey = slices.Clone(cfg.SecretKey)
	cfg.Meta.Started = time.Now().UnixNano()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Membership{
		cfg:       cfg,
		log:       logger.With("node", cfg.Meta.ID),
		kick:      make(chan struct{}, 1),
		self:      cfg.Meta,
		members:   make(map[string]*entry),
		refused:   make(map[string]refusal),
		conflicts: make(map[string]string),
	}
	r, err := ring.New([]ring.Member{{ID: cfg.Meta.ID, Zone: cfg.Meta.Zone}}, cfg.Meta.Partitions, cfg.Meta.Replicas)
	if err != nil {
		return nil, fmt.Errorf("membership: building the initial ring: %w", err)
	}
	m.ring.Store(r)
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.mu.Lock()
	m.members[cfg.Meta.ID] = &entry{Member: Member{Meta: cfg.Meta, State: StateAlive, Since: time.Now()}}
	remembered := m.rememberLocked(cfg.Remembered, time.Now())
	m.tableChanged()
	m.mu.Unlock()

	ml, err := memberlist.Create(m.memberlistConfig())
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("membership: starting gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	m.gossipAddr = ml.LocalNode().Address()
	m.wg.Add(2)
	go m.run(ctx)
	go m.reconnect(ctx)

	if len(cfg.Join) > 0 {
		m.joining.Store(true)
		_, err := ml.Join(cfg.Join)
		m.joining.Store(false)
		m.mu.Lock()
		refusal, elsewhere := m.refusal, m.selfElsewhere
		m.mu.Unlock()
		if refusal == nil && err == nil && elsewhere != "" && m.answersAs(elsewhere) {
			refusal = &DuplicateIDError{ID: cfg.Meta.ID, Addr: elsewhere}
		}
		if refusal == nil && err != nil && remembered > 0 {
			m.log.Warn("could not join the cluster; starting with the members remembered from the last run and reconnecting to them",
				"join", strings.Join(cfg.Join, ","), "remembered", remembered, "err", flatten(err))
			err = nil
		}
		if refusal != nil || err != nil {
			_ = m.Close() // memberlist's shutdown error adds nothing to the join error
			if refusal != nil {
				return nil, refusal
			}
			return nil, fmt.Errorf("%w via %s: %s; check that a member runs there and that the gossip key matches",
				ErrJoin, strings.Join(cfg.Join, ","), flatten(err))
		}
	}
	m.rebuild(time.Now())
	return m, nil
}

// rememberLocked adds the members of an earlier run (Config.Remembered) to
// the table as dead and returns how many it added; m.mu is held. The
// cluster name is not compared: a cluster renamed by restarting every node
// with the new name finds its members again, and a node renamed alone keeps
// them in its ring, refused when they answer, so it fails quorum requests
// rather than serving them as a cluster of one.
func (m *Membership) rememberLocked(mems []Member, now time.Time) int {
	n := 0
	for _, r := range mems {
		if r.ID == "" || r.ID == m.self.ID || m.members[r.ID] != nil || r.State == StateLeft || r.Leaving ||
			r.Replicas != m.self.Replicas || r.Partitions != m.self.Partitions {
			continue
		}
		since := r.Since
		if since.IsZero() || since.After(now) {
			since = now
		}
		if now.Sub(since) >= m.cfg.DeadTimeout {
			continue
		}
		m.members[r.ID] = &entry{Member: Member{Meta: r.Meta, State: StateDead, Since: since, GossipAddr: r.GossipAddr}}
		n++
	}
	if n > 0 {
		m.log.Info("remembered members from the last run, dead until heard from", "members", n)
	}
	return n
}

// idCheckTime bounds how long answersAs pings: long enough that a lost UDP
// datagram or a busy peer does not let a second live process take an ID.
const idCheckTime = time.Second

// answersAs reports whether a live process at gossip address addr answers
// pings addressed to this node's ID. The cluster reports this node's ID
// alive at addr either because an earlier life of this node crashed there
// and is not yet declared dead (it stays silent, and memberlist hands the
// ID over once the failure detector gives up on it), or because another
// running process was started with the same --id (it answers; this node
// must not join).
func (m *Membership) answersAs(addr string) bool {
	deadline := time.Now().Add(idCheckTime)
	for tries := 0; tries < 3 || time.Now().Before(deadline); tries++ {
		start := time.Now()
		if _, err := m.ml.Ping(m.cfg.Meta.ID, gossipAddr(addr)); err == nil {
			return true
		}
		// A send that failed at once (no route) must not spin.
		if d := m.cfg.ProbeTimeout - time.Since(start); d > 0 {
			time.Sleep(d)
		}
	}
	return false
}

// gossipAddr is a host:port as the net.Addr memberlist's Ping takes; it
// only uses the address's String.
type gossipAddr string

func (a gossipAddr) Network() string { return "udp" }
func (a gossipAddr) String() string  { return string(a) }

// flatten renders memberlist's multierror on one line.
func flatten(err error) string {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) {
		var parts []string
		for _, e := range multi.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// memberlistConfig translates cfg; delegates and logger point at m.
func (m *Membership) memberlistConfig() *memberlist.Config {
	c := m.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Meta.ID
	mc.BindAddr, mc.BindPort = splitHostPort(c.BindAddr)
	mc.AdvertiseAddr, mc.AdvertisePort = "", mc.BindPort
	if c.AdvertiseAddr != "" {
		host, port := splitHostPort(c.AdvertiseAddr)
		mc.AdvertiseAddr = host
		if port != 0 {
			mc.AdvertisePort = port
		}
	}
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.IndirectChecks = c.IndirectChecks
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult
	mc.GossipInterval = c.GossipInterval
	mc.GossipNodes = c.GossipNodes
	mc.RetransmitMult = c.RetransmitMult
	mc.PushPullInterval = c.PushPullInterval
	mc.GossipToTheDeadTime = c.GossipToTheDeadTime
	mc.TCPTimeout = c.TCPTimeout
	mc.DeadNodeReclaimTime = c.ReclaimTime
	// Gossip messages are a few hundred bytes, and memberlist's LZW writer
	// allocates 72 KiB for each one it compresses: under load that was 2%
	// of a node's allocations for nothing. Members decode compressed and
	// plain messages alike, so mixed versions still talk.
	mc.EnableCompression = false
	if c.Transport != nil {
		mc.Transport = c.Transport
	}
	if len(c.SecretKey) > 0 {
		mc.SecretKey = c.SecretKey
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	d := &delegate{m: m}
	mc.Delegate = d
	mc.Events = d
	mc.Merge = d
	mc.Alive = d
	mc.Ping = d
	mc.Conflict = d
	mc.Logger = log.New(&logBridge{m: m}, "", 0)
	return mc
}

// Self returns this node as a member: its current Meta, alive (left after
// Leave).
func (m *Membership) Self() Member {
	mem, _ := m.Member(m.cfg.Meta.ID)
	return mem
}

// Members returns every member seen and not yet forgotten, this node
// included, dead and left ones too, sorted by ID.
func (m *Membership) Members() []Member {
	return slices.Clone(m.view.Load().sorted)
}

// Member returns the member with this ID, if it is in the table.
func (m *Membership) Member(id string) (Member, bool) {
	v := m.view.Load()
	i, ok := v.byID[id]
	if !ok {
		return Member{}, false
	}
	return v.sorted[i], true
}

// Alive reports whether id is alive or suspect. Suspect counts: memberlist
// has not given up on it, most suspicions are refuted within a probe or
// two, and the request path has its own timeouts and fallbacks.
func (m *Membership) Alive(id string) bool {
	mem, ok := m.Member(id)
	return ok && mem.Up()
}

// Up is Alive under the name replication.Cluster uses.
func (m *Membership) Up(id string) bool { return m.Alive(id) }

// Addr returns the RPC address of a member in the table, whatever its state.
func (m *Membership) Addr(id string) (string, bool) {
	mem, ok := m.Member(id)
	return mem.RPCAddr, ok
}

// Ring returns the current ring. It is never nil, and the ring is immutable:
// a membership change publishes a new one.
func (m *Membership) Ring() *ring.Ring { return m.ring.Load() }

// GossipAddr returns the address other nodes reach this node's memberlist
// at, host:port, with the real port when BindAddr asked for port 0.
func (m *Membership) GossipAddr() string { return m.gossipAddr }

// UpdateMeta applies fn to a copy of this node's Meta, checks the result,
// installs it, rebuilds the ring (so Ring reflects, say, Leaving when
// UpdateMeta returns) and gossips it, waiting up to Config.BroadcastTimeout
// for the broadcast. ID, Replicas, Partitions and Started cannot change. An
// error after installing says so: the change stands and keeps spreading.
// fn must not call UpdateMeta.
func (m *Membership) UpdateMeta(fn func(*Meta)) error {
	m.lifeMu.RLock()
	defer m.lifeMu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return m.updateMeta(fn, m.cfg.BroadcastTimeout)
}

// updateMeta is UpdateMeta; the caller holds lifeMu and checked closed.
func (m *Membership) updateMeta(fn func(*Meta), timeout time.Duration) error {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	m.mu.Lock()
	cur := m.self
	m.mu.Unlock()
	next := cur
	fn(&next)
	if next.ID != cur.ID || next.Replicas != cur.Replicas || next.Partitions != cur.Partitions || next.Started != cur.Started || next.Cluster != cur.Cluster {
		return fmt.Errorf("membership: UpdateMeta cannot change ID, Replicas, Partitions, Started or Cluster")
	}
	if errs := metaProblems(next); len(errs) > 0 {
		return errors.Join(errs...)
	}
	now := time.Now()
	m.mu.Lock()
	m.self = next
	if e := m.members[next.ID]; e != nil {
		e.Meta = next
	}
	m.tableChanged()
	m.mu.Unlock()
	m.rebuild(now)

	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: metadata updated here, but its broadcast was not confirmed within %v (gossip keeps spreading it): %w", timeout, err)
	}
	return nil
}

// Leave leaves the cluster gracefully: it sets Meta.Leaving (so the ring
// everywhere excludes this node even if the leave message is lost), tells
// the cluster it leaves (others then see StateLeft), and shuts down. A
// timeout <= 0 means Config.BroadcastTimeout; it bounds each of the two
// broadcasts. Errors are returned, but shutdown happens regardless.
func (m *Membership) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = m.cfg.BroadcastTimeout
	}
	m.lifeMu.Lock()
	if m.closed {
		m.lifeMu.Unlock()
		return ErrClosed
	}
	errMeta := m.updateMeta(func(mt *Meta) { mt.Leaving = true }, timeout)
	errLeave := m.ml.Leave(timeout)
	if errLeave != nil {
		errLeave = fmt.Errorf("membership: leave broadcast not confirmed within %v (the cluster will notice by probing): %w", timeout, errLeave)
	}
	errStop := m.shutdownLocked()
	m.lifeMu.Unlock()
	m.stopRun()
	return errors.Join(errMeta, errLeave, errStop)
}

// Close shuts down without announcing a leave: the cluster sees this node
// fail. It is idempotent.
func (m *Membership) Close() error {
	m.lifeMu.Lock()
	if m.closed {
		m.lifeMu.Unlock()
		return nil
	}
	err := m.shutdownLocked()
	m.lifeMu.Unlock()
	m.stopRun()
	return err
}

// shutdownLocked stops memberlist; the caller holds lifeMu.
func (m *Membership) shutdownLocked() error {
	m.closed = true
	if err := m.ml.Shutdown(); err != nil {
		return fmt.Errorf("membership: shutting down gossip: %w", err)
	}
	return nil
}

// stopRun stops the run and reconnect goroutines and waits for them; safe
// to call twice.
func (m *Membership) stopRun() {
	m.stop()
	m.wg.Wait()
}

// run owns the time-driven work — taking dead members out of the ring after
// DeadTimeout, forgetting old members — plus ring rebuilds after table
// changes and the OnChange calls.
func (m *Membership) run(ctx context.Context) {
	defer m.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var notified uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-timer.C:
		}
		now := time.Now()
		next := m.expire(now)
		m.rebuild(now)
		if v := m.changes.Load(); v != notified {
			notified = v
			if m.cfg.OnChange != nil {
				m.cfg.OnChange()
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(time.Now()), time.Millisecond)
		}
		timer.Reset(wait)
	}
}

// reconnect tries, every ReconnectInterval, to join one random dead member
// it remembers, so that the two sides of a healed partition merge again
// even after memberlist stopped gossiping to the dead.
func (m *Membership) reconnect(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ReconnectInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var dead []Member
		for _, mem := range m.view.Load().sorted {
			if mem.State == StateDead && mem.GossipAddr != "" {
				dead = append(dead, mem)
			}
		}
		if len(dead) == 0 {
			continue
		}
		target := dead[rand.IntN(len(dead))]
		if m.cfg.Transport == nil {
			// A cancellable probe first: memberlist's Join cannot be
			// interrupted, and Close should not wait out a TCP timeout
			// on a black-holed address.
			dctx, cancel := context.WithTimeout(ctx, m.cfg.TCPTimeout)
			conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", target.GossipAddr)
			cancel()
			if err != nil {
				continue
			}
			_ = conn.Close()
		}
		if _, err := m.ml.Join([]string{target.GossipAddr}); err != nil {
			m.log.Debug("reconnect to dead member failed", "peer", target.ID, "addr", target.GossipAddr, "err", flatten(err))
			continue
		}
		m.log.Info("reconnected to a member thought dead", "peer", target.ID, "addr", target.GossipAddr)
	}
}

// outOfRingAt is when a dead or left member stops holding partitions.
func (m *Membership) outOfRingAt(e *entry) time.Time {
	if e.State == StateDead {
		return e.Since.Add(m.cfg.DeadTimeout)
	}
	return e.Since
}

// inRing reports whether the member holds partitions at now.
func (m *Membership) inRing(e *entry, now time.Time) bool {
	if e.Leaving {
		return false
	}
	switch e.State {
	case StateAlive, StateSuspect:
		return true
	case StateDead:
		return now.Before(m.outOfRingAt(e))
	}
	return false
}

// expire forgets members that have been out of the ring for DeadTimeout and
// returns the next instant something is due (zero: nothing).
func (m *Membership) expire(now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	due := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	changed := false
	for id, e := range m.members {
		if e.State != StateDead && e.State != StateLeft || id == m.self.ID {
			continue
		}
		out := m.outOfRingAt(e)
		forget := out.Add(m.cfg.DeadTimeout)
		switch {
		case !now.Before(forget):
			delete(m.members, id)
			changed = true
			m.log.Info("forgetting member", "peer", id, "state", e.State, "since", e.Since)
		case now.Before(out):
			due(out)
		default:
			due(forget)
		}
	}
	if changed {
		m.tableChanged()
	}
	return next
}

// rebuild computes the ring from the table and publishes it if it differs.
func (m *Membership) rebuild(now time.Time) {
	m.rebuildMu.Lock()
	defer m.rebuildMu.Unlock()
	m.mu.Lock()
	var members []ring.Member
	for _, e := range m.members {
		if m.inRing(e, now) {
			members = append(members, ring.Member{ID: e.ID, Zone: e.Zone})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(members, func(a, b ring.Member) int { return strings.Compare(a.ID, b.ID) })

	r, err := ring.New(members, m.cfg.Meta.Partitions, m.cfg.Meta.Replicas)
	if err != nil {
		// Keep serving the last good ring; log each distinct failure once.
		if msg := err.Error(); msg != m.ringErrLog {
			m.ringErrLog = msg
			m.log.Warn("cannot build ring; keeping the previous one", "members", len(members), "err", err)
		}
		return
	}
	m.ringErrLog = ""
	if old := m.ring.Load(); old != nil && old.Equal(r) {
		return
	}
	m.ring.Store(r)
	m.changes.Add(1)
	ids := make([]string, len(members))
	for i, rm := range members {
		ids[i] = rm.ID
	}
	m.log.Info("ring changed", "members", ids)
}

// tableChanged publishes a new view and wakes run; the caller holds mu.
func (m *Membership) tableChanged() {
	v := &view{sorted: make([]Member, 0, len(m.members)), byID: make(map[string]int, len(m.members))}
	for _, e := range m.members {
		v.sorted = append(v.sorted, e.Member)
	}
	slices.SortFunc(v.sorted, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	for i, mem := range v.sorted {
		v.byID[mem.ID] = i
	}
	m.view.Store(v)
	m.changes.Add(1)
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// setState moves e to state at now, logging the transition; the caller
// holds mu and calls tableChanged.
func (m *Membership) setState(e *entry, state State, now time.Time) {
	if e.State == state {
		return
	}
	m.log.Info("member state changed", "peer", e.ID, "from", e.State, "to", state)
	e.State = state
	e.Since = now
}
