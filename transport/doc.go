// Package transport moves opaque request/response payloads between nodes.
//
// Callers pass []byte (msgpack messages built by package wire) and get
// []byte back; the transport never looks inside. There are two
// implementations with the same method set — Call(ctx, addr, req), Addr(),
// Close() — so a consumer declares the interface it needs and takes either:
// TCP for production, Mem for in-process tests with fault injection.
//
// # Frames
//
// Every message on a TCP connection is one frame: a 17-byte big-endian header
// followed by the payload.
//
//	offset size field
//	0      4    payload length (at most Config.MaxFrameBytes, default 16 MiB)
//	4      8    request id (chosen by the caller, unique per connection)
//	12     1    kind: 1 request, 2 response, 3 error (payload = text),
//	            4 hello (payload = sender's address), 5 response too large
//	13     4    requests: the caller's remaining time in µs (0 = none)
//
// The receiver checks the length before reading the payload; a frame over the
// limit, an unknown kind, or a hello that is not the first frame closes that
// connection (the stream cannot be resynchronised) and nothing else.
//
// # Connections and multiplexing
//
// A dial sends a hello and waits for the peer's hello before the connection
// is used, so a peer that refuses us after the TCP or TLS handshake (TLS 1.3
// rejects a client certificate only then) counts as a failed dial. Each node
// keeps Config.ConnsPerPeer (default 1) persistent connections to each peer
// and spreads calls over them round-robin. Many calls are in flight on a
// connection at once: each gets the next request id, waits in the
// connection's pending map, and the connection's reader goroutine hands it
// the answer with that id, in whatever order answers come. A call whose ctx
// ends removes itself from the map and returns; a late answer is dropped and
// the connection is unaffected. The caller spends no goroutine of its own.
//
// # Write batching
//
// Senders (callers, handlers) append encoded frames to the connection's
// queue buffer under a mutex. One writer goroutine per connection swaps that
// buffer out and writes it with a single Write, then takes whatever piled up
// meanwhile; it only sleeps when the queue is empty, and yields once before
// each batch so that goroutines about to send can join it. Under load dozens
// of frames share one syscall; two buffers alternate, so steady state
// allocates nothing (payloads read off the wire are the only per-frame
// allocations: they are handed to handlers and callers to own). A write that
// stalls for Config.WriteTimeout tears the connection down.
//
// # Deadlines
//
// Every call has a deadline: the ctx's, or Config.DefaultTimeout (2s). The
// remaining time travels in the request header and becomes the handler's ctx
// deadline, so a replica stops work nobody waits for. Cancelling the caller's
// ctx does not cancel the handler: a write the coordinator stopped waiting
// for (it already had W acks) still completes on the replica. A timeout is an
// error wrapping context.DeadlineExceeded.
//
// # Failures and backoff
//
// A failed dial puts the peer in backoff: min(BackoffMin·2^(k-1), BackoffMax)
// after the k-th consecutive failure, jittered to between half and all of it
// from a seeded generator (Config.Seed). During backoff calls fail at once
// with ErrUnreachable rather than each waiting for a dial; the first call
// after it dials again (in a goroutine bounded by DialTimeout, so one caller's
// short deadline neither aborts the dial for the others nor counts as a
// failure). TCP.ResetBackoff lets membership cut the wait when it learns the
// peer is back. A connection that breaks fails its pending calls with
// ErrConnLost (the request may have run) and is redialled by the next call.
//
// # Server side
//
// Each request runs its handler in its own goroutine; at most
// Config.MaxInFlightPerConn (256) per connection, after which the connection
// is not read until one finishes, so a flood pushes back through TCP instead
// of exhausting memory. A handler error reaches the caller as *RemoteError; a
// handler panic is recovered, logged, and answered the same way.
//
// # TLS
//
// With Config.TLS set both sides use it (tls.Server on accepted connections,
// tls.Dialer for dials). Mutual TLS is the caller's configuration:
// Certificates, RootCAs, ClientCAs, ClientAuth = RequireAndVerifyClientCert.
// The config is cloned at ListenTCP; certificate reload works through its
// callbacks (GetCertificate, GetClientCertificate, GetConfigForClient), which
// run for every new connection — existing connections keep their session.
//
// # Mem: the in-memory twin
//
// NewNetwork(seed) makes a Network; Listen(addr, h) gives each node a Mem
// endpoint. A call copies the request, runs the handler in a goroutine with
// the caller's deadline, and copies the answer back, so no bytes are shared
// between caller and handler. Faults, all applied at call time:
//
//   - Partition(groups...): listed addresses in different groups cannot
//     reach each other (fail fast, ErrUnreachable); unlisted addresses reach
//     everyone. An answer crossing a new boundary is lost. Heal undoes it.
//   - Block(from, to) / Unblock: a one-way cut. from→to calls fail fast;
//     to→from calls run but their answers are lost (caller times out).
//   - SetDrop(p): each request and each answer is lost with probability p;
//     the caller sees a timeout at its deadline.
//   - SetDelay(min, max): each request and each answer waits uniformly in
//     [min, max].
//   - Kill(addr): calls to and from addr fail fast with ErrUnreachable; its
//     running handlers see ctx cancelled and their answers are discarded.
//     Revive(addr) and Restart(addr, h) bring it back; Listen on a taken
//     address replaces the endpoint (a node restarted with fresh state).
//
// Every random choice comes from the Network's seeded generator, drawn inside
// Call under the Network's mutex with the same number of draws per call, so
// a sequential workload replays exactly from its seed (a concurrent one
// replays as far as the scheduler's interleaving does).
package transport
