// Package wire defines what crosses the network: the msgpack messages nodes
// exchange over the RPC transport (this file's neighbour, rpc.go) and the
// JSON documents of the client HTTP API (api.go).
//
// Node-to-node messages use one envelope per direction, Request and
// Response, whose fields are filled according to Op. One envelope keeps the
// transport payload-agnostic and the codec in one place; unused fields are
// omitted on the wire. The envelopes are encoded by hand (codec.go) into
// exactly the bytes msgpack/v5 writes for their struct tags, because
// reflection cost a loaded node a fifth of its CPU.
package wire
