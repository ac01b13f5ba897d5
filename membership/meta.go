package membership

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/wire"
)

// MetaMaxSize is the most bytes encoded Meta may take: memberlist's limit
// on node metadata.
const MetaMaxSize = memberlist.MetaMaxSize

// Meta is what every node gossips about itself. It travels msgpack-encoded
// as memberlist node metadata, so it must stay under MetaMaxSize bytes;
// Config.Validate and UpdateMeta check that. Unknown fields are ignored on
// decoding, so fields can be added without breaking older peers.
type Meta struct {
	// ID is the node's unique name, also its memberlist name. It never
	// changes for the life of a Membership.
	ID string `msgpack:"id" json:"id"`
	// RPCAddr is the node-to-node RPC address, host:port.
	RPCAddr string `msgpack:"rpc" json:"rpc_addr"`
	// HTTPAddr is the client HTTP API address, host:port (no scheme).
	HTTPAddr string `msgpack:"http" json:"http_addr,omitempty"`
	// Scheme is "http" or "https": how to reach HTTPAddr.
	Scheme string `msgpack:"scheme" json:"scheme,omitempty"`
	// Zone is the failure-domain label the ring spreads replicas over;
	// empty means no zone.
	Zone string `msgpack:"zone" json:"zone,omitempty"`
	// Incarnation is chosen when the node's data directory is created and
	// changes after a disk loss, so version-vector actors of a wiped node
	// are distinguishable from its earlier life.
	Incarnation uint64 `msgpack:"inc" json:"incarnation"`
	// Replicas is the cluster's replication factor N. Cluster-wide: a node
	// with another value is refused.
	Replicas int `msgpack:"n" json:"replicas"`
	// Partitions is the cluster's ring size. Cluster-wide like Replicas.
	Partitions int `msgpack:"parts" json:"partitions"`
	// Leaving is set while the node hands its data off before leaving. A
	// leaving node is kept out of the ring, so everyone computes the new
	// owners, and when it then disappears it is taken to have left rather
	// than died.
	Leaving bool `msgpack:"leaving" json:"leaving,omitempty"`
	// Started is set by New: the Unix time in nanoseconds when this
	// process's Membership was created. It tells the lives of one ID
	// apart, so that a report "n3 left" about an earlier life is never
	// applied to a later one. Any value in Config.Meta is overwritten.
	Started int64 `msgpack:"started" json:"started"`
	// Version is the build the node runs (node.Version); empty from nodes
	// built before it was gossiped.
	Version string `msgpack:"ver,omitempty" json:"version,omitempty"`
	// Cluster is the cluster's name (--cluster-name). Cluster-wide like
	// Replicas: a node with another name, or none where the cluster has
	// one, is refused. Empty (no name) from nodes built before it was
	// gossiped, which is what a cluster without a name has too.
	Cluster string `msgpack:"cluster,omitempty" json:"cluster,omitempty"`
}

// encodeMeta encodes m for gossip and checks its size.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := msgpack.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("membership: encoding metadata: %w", err)
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, memberlist allows %d; shorten the node id, addresses or zone",
			ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	return b, nil
}

// decodeMeta decodes gossiped metadata.
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, fmt.Errorf("no metadata")
	}
	if err := wire.CheckMsgpack(b); err != nil {
		return m, err
	}
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return m, err
	}
	if m.ID == "" || m.Replicas < 1 || m.Partitions < 1 {
		return m, fmt.Errorf("metadata lacks id, replicas or partitions")
	}
	return m, nil
}

// State is a member's liveness as this node sees it.
type State string

// Member states. Suspect members are still routed to (memberlist has not
// given up on them and most suspicions are refuted within a probe or two);
// dead members keep their partitions until Config.DeadTimeout; left members
// announced their departure and are out of the ring at once.
const (
	// StateAlive: the member answers probes.
	StateAlive State = "alive"
	// StateSuspect: this node's own probe of the member failed; memberlist
	// declares it dead unless it refutes the suspicion in time.
	StateSuspect State = "suspect"
	// StateDead: the failure detector gave up on the member.
	StateDead State = "dead"
	// StateLeft: the member left gracefully (Leave, or it disappeared while
	// its Meta said Leaving).
	StateLeft State = "left"
)

// Member is one node as this node sees it.
type Member struct {
	Meta
	// State is the member's liveness in this node's view.
	State State `json:"state"`
	// Since is when the member entered State, in this node's view. For a
	// dead member learned from a peer it is the peer's time of death,
	// shifted to this node's clock.
	Since time.Time `json:"since"`
	// GossipAddr is the member's memberlist address, host:port.
	GossipAddr string `json:"gossip_addr"`
}

// Up reports whether requests should still be sent to the member: alive
// or suspect.
func (m Member) Up() bool { return m.State == StateAlive || m.State == StateSuspect }
