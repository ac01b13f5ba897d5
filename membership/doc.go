// Package membership tells each quorumkv node who is in the cluster and
// publishes the ring computed from that. Gossip and failure detection are
// hashicorp/memberlist (SWIM: random probes, indirect probes through other
// members, suspicion that the suspect can refute, epidemic broadcast, and a
// periodic full-state push/pull over TCP).
//
// # What is gossiped
//
// Every node's memberlist name is its node ID, and its memberlist metadata
// is Meta, msgpack-encoded (at most 512 bytes): RPC and HTTP addresses,
// zone, cluster name, disk incarnation, N and ring size, the Leaving flag,
// the build's version, and Started, which tells successive processes with
// one ID apart. UpdateMeta re-gossips
// it with a higher memberlist incarnation. On top of memberlist's own state,
// each push/pull exchange carries the dead and left members the sender
// remembers (see below).
//
// Nodes must agree on N (Meta.Replicas), the ring size (Meta.Partitions),
// TLS (Meta.Scheme) and the cluster name (Meta.Cluster, empty for none). A
// joining node with other values is refused by both sides: its own merge check fails the join with an *IncompatibleError,
// and the members' merge and alive checks never let it into their tables.
//
// # States
//
// memberlist tracks alive, suspect, dead and left, but only reports joins,
// metadata updates and departures, so the table here maps its signals:
//
//   - alive: memberlist reported the node (joined, rejoined or updated its
//     metadata), or this node's probe of a suspect got an ack.
//   - suspect: this node's own probe got no ack (direct, indirect and TCP
//     fallback). memberlist exposes no suspect event, so the signal is its
//     log line for exactly that moment; suspicions raised by other members
//     are not visible here until this node probes the member itself.
//     Alive(id) is true for suspect members: most suspicions are refuted
//     within a probe or two, and the request path has timeouts and
//     fallbacks of its own.
//   - dead: memberlist declared the node failed (suspicion timed out).
//   - left: memberlist reported the node gone and the node had announced
//     its departure: its last Meta said Leaving, or a peer reported in
//     push/pull that this life of it (same Meta.Started) left. memberlist
//     v0.7.0 cannot tell us itself (Node.State is not filled in,
//     hashicorp/memberlist#293), so Leave sets Leaving first and waits for
//     that to be gossiped before it broadcasts the leave.
//
// A node that restarts with the same ID is taken back as alive: on the same
// address at once, on a new address once its old life has been dead for
// Config.ReclaimTime (memberlist refuses a live ID from a second address,
// so a restart on a new port before anyone noticed the crash waits for
// failure detection). To tell such a restart from a second process started
// with a running node's ID, New pings the other address for the ID; if it
// answers, New refuses the join with a *DuplicateIDError.
//
// memberlist stops talking to a dead node after GossipToTheDeadTime, so
// the two sides of a longer network partition would never find each other
// again. As Serf does, every ReconnectInterval this node tries to join one
// random dead member it remembers; once the partition heals, that
// push/pull merges the sides.
//
// # Across restarts
//
// The node saves what Members returns in its store and hands it back as
// Config.Remembered when it starts again; New adds those members (not
// left, not leaving, known within DeadTimeout) as dead. The restarted
// node's first ring is then the ring it had, not a ring of itself alone,
// so it never answers a quorum or strong request as a cluster of one
// before gossip has found the others, and a Join that reaches nobody is
// not fatal: the reconnect loop below finds them.
//
// # When the ring changes
//
// The ring is ring.New over every member that is alive, suspect, or dead
// for less than DeadTimeout, and whose Meta does not say Leaving. It is
// rebuilt after every table change and when a dead member's DeadTimeout
// passes, and published (an atomic pointer swap) only when ring.Equal says
// it differs, so the request path loads it without locks. So the ring
// changes when a node joins, when one starts leaving (Leaving: the new
// owners are computed while it hands its data off), when one leaves, and
// DeadTimeout after one dies — not when one is merely suspected or dead
// for a short while.
//
// # Why dead nodes keep their partitions
//
// Most failures are transient: a restart, a deploy, a reboot, a network
// blip. Reassigning a dead node's partitions moves about 1/n of the data
// to new owners and moves it back when the node returns, which costs more
// than the failure. While it is dead, sloppy quorums write to fallback
// nodes with hints, and the hints are replayed when it returns. Only after
// DeadTimeout (default one hour) is the failure treated as permanent: the
// node leaves the ring and anti-entropy brings the new owners to full
// replication.
//
// Every node must take dead members out of the ring at about the same time,
// or their rings disagree. memberlist forgets dead nodes after
// GossipToTheDeadTime (30s), so a node joining later would not know them;
// therefore push/pull also carries each node's dead and left members with
// their age. A joining node adds the dead ones that still hold partitions,
// nodes converge on the earliest time of death, and a node that missed a
// leave learns it. Dead and left members are forgotten DeadTimeout after
// they left the ring.
package membership
