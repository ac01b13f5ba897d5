// Package wire defines what crosses the network: the msgpack messages nodes
// exchange over the RPC transport (this file's neighbour, rpc.go) and the
// JSON documents of the client HTTP API (api.go).
//
// Node-to-node messages use one envelope per direction, Request and
// Response, whose fields are filled according to Op. One envelope keeps the
// transport payload-agnostic and the codec a single msgpack call; unused
// fields are omitted on the wire.
package wire
