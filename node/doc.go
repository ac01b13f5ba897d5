// Package node wires one quorumkv daemon together: the badger store, the RPC
// transport, the replication coordinator, gossip membership, the client HTTP
// API and the background loops (hint replay, anti-entropy).
//
// Start order matters: the store and RPC listener come first so that the
// node can answer replica requests as soon as gossip announces it; the HTTP
// API comes last, when the node can coordinate requests.
package node
