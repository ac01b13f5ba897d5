// Package client is the Go client of quorumkv's HTTP API (v1).
//
// A Client sends each request to one node — Endpoints[0] by default, or the
// node a view made with At picks. Any node can coordinate any request, so
// callers that want to spread load (the bench tool) or aim at one node (the
// fault-test harness) take one view per node; views share connections.
//
//	c, err := client.New(client.Config{Endpoints: []string{"http://127.0.0.1:7000"}})
//	res, err := c.Get(ctx, []byte("user/42"), client.Options{Consistency: "strong"})
//	_, err = c.Put(ctx, []byte("user/42"), v, client.Options{Context: res.Context})
//
// Outcomes. A request either succeeds, or the server answers with an error
// (an *Error that unwraps to one of the sentinels ErrBadRequest,
// ErrUnavailable, …), or no answer arrives (connection refused, reset, or the
// context's deadline passed): that last kind is returned as the transport's
// own error, never as *Error, because the outcome of a write is then
// unknown. A write that failed with ErrUnavailable or ErrTimeout may also
// still become visible later, on the replicas that took it (as in Dynamo and
// Riak); only Rejected errors are known to have changed nothing.
//
// Keys are arbitrary bytes (1..1024) sent as one percent-encoded path
// segment; every byte outside A-Z a-z 0-9 - . _ ~ is escaped (and the keys
// "." and ".." wholly, see EscapeKey), so '/' and non-UTF-8 bytes round-trip
// exactly.
package client
