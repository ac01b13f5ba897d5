package membership

import (
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/wire"
)

// delegate implements memberlist's delegate interfaces for a Membership.
// memberlist calls most of these with its node lock held: they only touch
// the member table (under mu) and never call back into memberlist.
type delegate struct {
	m *Membership
}

// NodeMeta returns this node's encoded Meta. UpdateMeta and Validate have
// checked its size, so the limit is never exceeded.
func (d *delegate) NodeMeta(limit int) []byte {
	m := d.m
	m.mu.Lock()
	meta := m.self
	m.mu.Unlock()
	b, err := encodeMeta(meta)
	if err != nil || len(b) > limit {
		m.log.Error("cannot encode own metadata", "err", err)
		return nil
	}
	return b
}

// NotifyMsg ignores user messages: this package sends none.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to add to gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// goneRecord is a dead or left member in push/pull state.
type goneRecord struct {
	Meta       Meta   `msgpack:"meta"`
	GossipAddr string `msgpack:"addr"`
	Left       bool   `msgpack:"left"`
	AgeMillis  int64  `msgpack:"age"` // time since it died or left, sender's clock
}

// pushState is this package's part of a memberlist push/pull exchange.
type pushState struct {
	Gone []goneRecord `msgpack:"gone"`
}

// LocalState sends the dead and left members this node remembers, so that
// a joining node learns dead members that still hold partitions (memberlist
// forgets them after GossipToTheDeadTime) and a node that missed a leave
// learns it was one.
func (d *delegate) LocalState(join bool) []byte {
	m := d.m
	now := time.Now()
	var st pushState
	m.mu.Lock()
	for _, e := range m.members {
		if e.State == StateDead || e.State == StateLeft {
			st.Gone = append(st.Gone, goneRecord{
				Meta:       e.Meta,
				GossipAddr: e.GossipAddr,
				Left:       e.State == StateLeft,
				AgeMillis:  now.Sub(e.Since).Milliseconds(),
			})
		}
	}
	m.mu.Unlock()
	b, err := msgpack.Marshal(&st)
	if err != nil {
		m.log.Error("cannot encode push/pull state", "err", err)
		return nil
	}
	return b
}

// MergeRemoteState applies a peer's dead and left members. memberlist stays
// the authority on liveness: a report never touches a member this node
// sees alive, except to note that it is leaving.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	m := d.m
	var st pushState
	if err := wire.CheckMsgpack(buf); err != nil {
		m.log.Debug("ignoring malformed push/pull state", "err", err)
		return
	}
	if err := msgpack.Unmarshal(buf, &st); err != nil {
		m.log.Debug("ignoring undecodable push/pull state", "err", err)
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, g := range st.Gone {
		id := g.Meta.ID
		if id == "" || id == m.self.ID || g.Meta.Replicas != m.self.Replicas || g.Meta.Partitions != m.self.Partitions {
			continue
		}
		since := now.Add(-time.Duration(max(g.AgeMillis, 0)) * time.Millisecond)
		e := m.members[id]
		switch {
		case e == nil:
			// A member this node never saw. Only a dead one still holding
			// partitions matters: without it this node's ring would differ.
			if g.Left || now.Sub(since) >= m.cfg.DeadTimeout {
				continue
			}
			m.members[id] = &entry{Member: Member{Meta: g.Meta, State: StateDead, Since: since, GossipAddr: g.GossipAddr}}
			m.log.Info("learned of dead member from a peer", "peer", id, "dead_for", now.Sub(since).Round(time.Millisecond))
			changed = true
		case e.Started != g.Meta.Started:
			// Another life of that ID: the report is about the past.
		case g.Left && e.State == StateDead:
			m.setState(e, StateLeft, now)
			changed = true
		case g.Left && e.State != StateLeft:
			e.leftReported = true
		case !g.Left && e.State == StateDead && since.Before(e.Since):
			// Converge on the earliest time of death, so every node takes
			// the member out of the ring at about the same moment.
			e.Since = since
			changed = true
		}
	}
	if changed {
		m.tableChanged()
	}
}

// NotifyJoin records a member that is (again) alive.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.m.onAlive(n) }

// NotifyUpdate records a member's new metadata; memberlist only reports
// updates of alive members.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.m.onAlive(n) }

// NotifyLeave records a member memberlist gave up on. memberlist v0.7.0
// calls this for dead and left nodes alike and does not fill n.State
// (hashicorp/memberlist#293), so the member counts as left when its last
// Meta said Leaving or a peer reported that it left, dead otherwise.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	m := d.m
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[n.Name]
	if e == nil {
		meta, err := decodeMeta(n.Meta)
		if err != nil {
			return
		}
		e = &entry{Member: Member{Meta: meta, GossipAddr: n.Address()}}
		m.members[n.Name] = e
	}
	state := StateDead
	if e.Leaving || e.leftReported {
		state = StateLeft
	}
	m.setState(e, state, now)
	m.tableChanged()
}

// onAlive records n as alive with its current metadata.
func (m *Membership) onAlive(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	if err != nil || meta.ID != n.Name {
		return // NotifyAlive refused it already; nothing to record
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[n.Name]
	if e == nil {
		e = &entry{}
		m.members[n.Name] = e
	}
	if e.Started != meta.Started {
		e.leftReported = false
	}
	if n.Name == m.self.ID {
		meta = m.self // the local copy is authoritative and may be newer
	}
	e.Meta = meta
	e.GossipAddr = n.Address()
	m.setState(e, StateAlive, now)
	m.tableChanged()
}

// onSuspect marks an alive member suspect after this node's probe of it
// failed.
func (m *Membership) onSuspect(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.members[id]; e != nil && e.State == StateAlive && id != m.self.ID {
		m.setState(e, StateSuspect, time.Now())
		m.tableChanged()
	}
}

// onReachable clears a suspicion after this node's probe of it succeeded.
func (m *Membership) onReachable(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.members[id]; e != nil && e.State == StateSuspect {
		m.setState(e, StateAlive, time.Now())
		m.tableChanged()
	}
}

// NotifyMerge vets the members of the other side of a join (both the
// joining node and the member it contacts call it). Any alive member with
// another Replicas or Partitions cancels the join.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	m := d.m
	joining := m.joining.Load()
	for _, p := range peers {
		if p.State == memberlist.StateDead || p.State == memberlist.StateLeft {
			continue
		}
		if p.Name == m.cfg.Meta.ID {
			if joining && p.Address() != m.gossipAddr {
				// A restart on a new address before the crash was noticed
				// resolves itself; two live processes with one ID do not,
				// and New refuses the join if the other one answers pings.
				m.log.Warn("the cluster sees this node's id alive at another address; checking whether a process still answers there",
					"other_addr", p.Address())
				m.mu.Lock()
				m.selfElsewhere = p.Address()
				m.mu.Unlock()
			}
			continue
		}
		if meta, err := m.compatible(p, joining); err != nil {
			if joining {
				m.mu.Lock()
				if m.refusal == nil {
					m.refusal = err
				}
				m.mu.Unlock()
			} else {
				m.logRefusal(p.Name, meta.Started, err)
			}
			return err
		}
	}
	return nil
}

// NotifyAlive keeps incompatible nodes out of the member list however they
// are heard of (gossip, push/pull), not only through joins.
func (d *delegate) NotifyAlive(p *memberlist.Node) error {
	m := d.m
	if p.Name == m.cfg.Meta.ID {
		return nil
	}
	meta, err := m.compatible(p, false)
	if err != nil {
		m.logRefusal(p.Name, meta.Started, err)
		return err
	}
	m.accepted(p.Name, meta.Started)
	return nil
}

// compatible checks a peer's metadata against this node's settings and
// returns it (as far as it decoded).
func (m *Membership) compatible(p *memberlist.Node, joining bool) (Meta, error) {
	meta, err := decodeMeta(p.Meta)
	if err == nil && meta.ID != p.Name {
		err = errNameMismatch{meta: meta.ID}
	}
	if err != nil {
		return meta, &ForeignNodeError{Joining: joining, Member: p.Name, Err: err}
	}
	// An empty scheme (nodes built without a client API, in tests) is not
	// compared.
	tlsDiffers := meta.Scheme != "" && m.cfg.Meta.Scheme != "" && meta.Scheme != m.cfg.Meta.Scheme
	if meta.Replicas != m.cfg.Meta.Replicas || meta.Partitions != m.cfg.Meta.Partitions || tlsDiffers || meta.Cluster != m.cfg.Meta.Cluster {
		e := &IncompatibleError{
			Joining: joining, Member: p.Name,
			Replicas: meta.Replicas, Partitions: meta.Partitions,
			LocalReplicas: m.cfg.Meta.Replicas, LocalPartitions: m.cfg.Meta.Partitions,
			Cluster: meta.Cluster, LocalCluster: m.cfg.Meta.Cluster,
		}
		if tlsDiffers {
			e.Scheme, e.LocalScheme = meta.Scheme, m.cfg.Meta.Scheme
		}
		return meta, e
	}
	return meta, nil
}

type errNameMismatch struct{ meta string }

func (e errNameMismatch) Error() string {
	return "its metadata names node " + e.meta
}

// refusalMemory is how long Refused lists a peer after its last refusal.
// A later life of the peer that passes the checks is forgotten at once.
const refusalMemory = 10 * time.Minute

// refusal is a refused peer: why, when it was last refused, and which life
// of it (Meta.Started; 0 when its metadata did not decode).
type refusal struct {
	reason  string
	last    time.Time
	started int64
}

// logRefusal records a refused peer and logs it: once, not on every gossip
// message, and again when the reason changes or after refusalMemory.
func (m *Membership) logRefusal(peer string, started int64, err error) {
	now := time.Now()
	m.mu.Lock()
	r, seen := m.refused[peer]
	m.refused[peer] = refusal{reason: err.Error(), last: now, started: started}
	for p, old := range m.refused {
		if now.Sub(old.last) > refusalMemory {
			delete(m.refused, p)
		}
	}
	m.mu.Unlock()
	if !seen || r.reason != err.Error() || now.Sub(r.last) > refusalMemory {
		m.log.Warn("refusing node", "peer", peer, "err", err)
	}
}

// accepted forgets an earlier refusal of peer once a later life of it
// (started after the refused one) passed the checks. Gossip keeps
// repeating what it knew of an earlier life, which passes them too when a
// node restarted with other settings: that does not make the refusal
// stale.
func (m *Membership) accepted(peer string, started int64) {
	m.mu.Lock()
	if r, ok := m.refused[peer]; ok && started > r.started {
		delete(m.refused, peer)
	}
	m.mu.Unlock()
}

// Refused returns the peers this node refused in the last 10 minutes and
// not accepted since (another N, ring size, TLS or cluster name, or not a
// quorumkv node), each with the reason. They are not members: an operator
// finds here why a node that runs does not appear in the cluster.
func (m *Membership) Refused() map[string]string {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out map[string]string
	for p, r := range m.refused {
		if now.Sub(r.last) <= refusalMemory {
			if out == nil {
				out = make(map[string]string)
			}
			out[p] = r.reason
		}
	}
	return out
}

// AckPayload adds nothing to probe acks.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete: a probe by this node got its ack, so the member is
// reachable from here.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	d.m.onReachable(other.Name)
}

// NotifyConflict reports two processes claiming one node ID from different
// addresses; memberlist keeps the first until it is declared dead for
// ReclaimTime.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m
	addr := other.Address()
	m.mu.Lock()
	first := m.conflicts[other.Name] != addr
	m.conflicts[other.Name] = addr
	m.mu.Unlock()
	if first {
		m.log.Warn("two nodes claim one id; ignoring the newcomer until the other is declared dead",
			"peer", other.Name, "existing_addr", existing.Address(), "new_addr", addr)
	}
}

// logBridge feeds memberlist's log lines to slog at debug level, and turns
// the line memberlist writes when this node's probe of a member fails into
// a suspicion: memberlist keeps its suspect state private (it has no event
// for it and v0.7.0 does not fill Node.State), and this is the one signal
// it gives.
type logBridge struct {
	m *Membership
}

// Suspicion line, from memberlist state.go probeNode.
const (
	suspectPrefix = "Suspect "
	suspectSuffix = " has failed, no acks received"
)

func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	level, msg := "", line
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if l, m, ok := strings.Cut(rest, "] "); ok {
			level, msg = l, m
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if rest, ok := strings.CutPrefix(msg, suspectPrefix); ok {
		if id, ok := strings.CutSuffix(rest, suspectSuffix); ok {
			b.m.onSuspect(id)
		}
	}
	b.m.log.Debug(msg, "memberlist_level", level)
	return len(p), nil
}
