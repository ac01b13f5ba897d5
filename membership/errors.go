package membership

import (
	"errors"
	"fmt"
)

// Sentinel errors of this package; match them with errors.Is.
var (
	// ErrIncompatible means a node and a cluster disagree on the replication
	// factor, the ring size, TLS or the cluster name (an *IncompatibleError
	// carrying both sides' settings), or the other side is not a quorumkv
	// node at all (a *ForeignNodeError), so one of them refused the other.
	ErrIncompatible = errors.New("membership: incompatible cluster settings")

	// ErrDuplicateID means another live process already uses this node's
	// ID in the cluster (a *DuplicateIDError), so New refused to join.
	ErrDuplicateID = errors.New("membership: node id in use")

	// ErrJoin means New could not join any of the given gossip addresses.
	ErrJoin = errors.New("membership: could not join the cluster")

	// ErrMetaTooLarge means the encoded Meta does not fit memberlist's
	// 512-byte limit on node metadata.
	ErrMetaTooLarge = errors.New("membership: metadata too large")

	// ErrClosed is returned by calls on a Membership after Close or Leave.
	ErrClosed = errors.New("membership: closed")
)

// IncompatibleError reports a refused node: its replication factor, ring
// size, TLS or cluster name differs from this node's. It unwraps to
// ErrIncompatible.
type IncompatibleError struct {
	// Joining is true on the node that tried to join (it refused the
	// cluster), false on a cluster member that refused the newcomer.
	Joining bool
	// Member is the other node's ID.
	Member string
	// Replicas and Partitions are the other node's settings.
	Replicas, Partitions int
	// LocalReplicas and LocalPartitions are this node's settings.
	LocalReplicas, LocalPartitions int
	// Scheme and LocalScheme are the other node's and this node's client
	// API scheme: "https" with TLS, "http" without. A cluster uses TLS on
	// every node or on none, since nodes of one kind cannot call the other.
	Scheme, LocalScheme string
	// Cluster and LocalCluster are the other node's and this node's
	// cluster name ("" when none was given).
	Cluster, LocalCluster string
}

// clusterName names a cluster in an error, and says so when it has no name.
func clusterName(name string) string {
	if name == "" {
		return "a cluster without a name"
	}
	return fmt.Sprintf("the cluster named %q", name)
}

// Error says who refused whom and both sides' settings.
func (e *IncompatibleError) Error() string {
	if e.Scheme != e.LocalScheme {
		tls := map[string]string{"https": "with TLS", "http": "without TLS"}
		if e.Joining {
			return fmt.Sprintf("membership: refusing to join: cluster member %q runs %s and this node %s; every node of a cluster uses TLS (--tls-cert, --tls-key, --tls-ca) or none does",
				e.Member, tls[e.Scheme], tls[e.LocalScheme])
		}
		return fmt.Sprintf("membership: refusing node %q: it runs %s and this cluster %s; every node of a cluster uses TLS (--tls-cert, --tls-key, --tls-ca) or none does",
			e.Member, tls[e.Scheme], tls[e.LocalScheme])
	}
	if e.Cluster != e.LocalCluster {
		if e.Joining {
			return fmt.Sprintf("membership: refusing to join: cluster member %q is in %s and this node in %s (--cluster-name); does --join name a node of this node's cluster?",
				e.Member, clusterName(e.Cluster), clusterName(e.LocalCluster))
		}
		return fmt.Sprintf("membership: refusing node %q: it is in %s and this node in %s (--cluster-name); every node of a cluster has the same name",
			e.Member, clusterName(e.Cluster), clusterName(e.LocalCluster))
	}
	if e.Joining {
		return fmt.Sprintf("membership: refusing to join: cluster member %q has replicas=%d partitions=%d, this node has replicas=%d partitions=%d",
			e.Member, e.Replicas, e.Partitions, e.LocalReplicas, e.LocalPartitions)
	}
	return fmt.Sprintf("membership: refusing node %q: it has replicas=%d partitions=%d, this cluster has replicas=%d partitions=%d",
		e.Member, e.Replicas, e.Partitions, e.LocalReplicas, e.LocalPartitions)
}

// Unwrap returns ErrIncompatible.
func (e *IncompatibleError) Unwrap() error { return ErrIncompatible }

// ForeignNodeError reports a gossip peer whose metadata is not quorumkv's:
// another memberlist-based program, or a quorumkv of an incompatible
// version. It unwraps to ErrIncompatible.
type ForeignNodeError struct {
	// Joining is true on the node that tried to join.
	Joining bool
	// Member is the other node's memberlist name.
	Member string
	// Err is why its metadata did not decode.
	Err error
}

// Error names the peer and why its metadata did not decode.
func (e *ForeignNodeError) Error() string {
	if e.Joining {
		return fmt.Sprintf("membership: refusing to join: cluster member %q does not carry quorumkv metadata (is that a quorumkv gossip address?): %v", e.Member, e.Err)
	}
	return fmt.Sprintf("membership: refusing node %q: it does not carry quorumkv metadata: %v", e.Member, e.Err)
}

// Unwrap returns ErrIncompatible and the decoding error.
func (e *ForeignNodeError) Unwrap() []error { return []error{ErrIncompatible, e.Err} }

// DuplicateIDError reports that the cluster already has a live member with
// this node's ID, at another gossip address that answers pings for it. It
// unwraps to ErrDuplicateID.
type DuplicateIDError struct {
	// ID is the contested node ID.
	ID string
	// Addr is the gossip address of the process that holds it.
	Addr string
}

// Error names the ID, who holds it and what to do.
func (e *DuplicateIDError) Error() string {
	return fmt.Sprintf("membership: refusing to join: node id %q is in use by a live member at gossip address %s; give every node its own --id (or stop that one first)", e.ID, e.Addr)
}

// Unwrap returns ErrDuplicateID.
func (e *DuplicateIDError) Unwrap() error { return ErrDuplicateID }
