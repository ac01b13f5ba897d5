package node

import (
	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/resp"
)

// startRESP serves the Redis protocol on --resp, over the same coordinator
// as the HTTP API, with the same token and TLS certificate.
func (n *Node) startRESP(authToken string) error {
	if n.cfg.RESPAddr == "" {
		return nil
	}
	rc := resp.DefaultConfig()
	rc.Addr = n.cfg.RESPAddr
	rc.Replicas = n.cfg.Replicas
	rc.MaxValueBytes = int(n.cfg.MaxValueBytes)
	rc.DefaultLevel = replication.Consistency{Level: replication.Quorum}
	rc.AuthToken = authToken
	rc.Logger = n.log
	if m := n.Metrics(); m != nil {
		rc.Observe = m.ObserveRESP
	}
	if n.ops.certs != nil {
		rc.TLS = n.ops.certs.httpConfig()
	}
	srv, err := resp.Listen(rc, n.coord)
	if err != nil {
		return err
	}
	n.resp = srv
	return nil
}

// RESPAddr is the Redis-protocol address, "" when off.
func (n *Node) RESPAddr() string {
	if n.resp == nil {
		return ""
	}
	return n.resp.Addr()
}
