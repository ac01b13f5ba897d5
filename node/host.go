package node

import (
	"net"
)

// HostPeers counts the up members, this node included, that run on this
// node's host: those whose gossip address has the same IP as this node's,
// with every loopback address taken for one host. It is 1 when the node
// does not gossip or knows no such peer.
func (n *Node) HostPeers() int {
	self := n.GossipAddr()
	if self == "" {
		return 1
	}
	peers := 0
	for _, m := range n.view.Members() {
		if m.Up() && sameHost(self, m.GossipAddr) {
			peers++
		}
	}
	return max(peers, 1)
}

// CoreShare is one node's share of a host's cores when nodes nodes run on
// it: cores divided by nodes, rounded, at least 1.
func CoreShare(cores, nodes int) int {
	return max(1, (cores+nodes/2)/max(nodes, 1))
}

// sameHost reports whether two host:port addresses name one host.
func sameHost(a, b string) bool {
	ha, _, errA := net.SplitHostPort(a)
	hb, _, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return false
	}
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	if ia == nil || ib == nil {
		return ha == hb
	}
	return ia.Equal(ib) || ia.IsLoopback() && ib.IsLoopback()
}
