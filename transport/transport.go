package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Handler answers one request. The request bytes belong to the handler (they
// are never reused by the transport); the answer is copied before the handler's
// call returns to the transport, so the handler may reuse it afterwards.
//
// ctx carries the caller's remaining deadline and is cancelled when the
// connection (TCP) or the endpoint (Mem) goes away; it is not cancelled when
// the caller merely stops waiting, so a replica finishes a write its
// coordinator no longer needs. CallerAddr(ctx) is the caller's address when
// known, "" otherwise. A returned error reaches the caller as a *RemoteError.
type Handler func(ctx context.Context, req []byte) ([]byte, error)

var (
	// ErrUnreachable means the request was not sent: the dial failed, the peer
	// is in reconnect backoff, or (Mem) the peer is killed, closed or on the
	// other side of a partition. The request certainly did not run.
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrClosed means the local transport or endpoint was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrTooLarge means a request or response exceeds the maximum frame size.
	ErrTooLarge = errors.New("transport: frame too large")
	// ErrConnLost means the connection broke while the call was in flight:
	// unlike ErrUnreachable, the request may or may not have run on the peer.
	ErrConnLost = errors.New("transport: connection lost")
)

// RemoteError carries the text of the error a remote Handler returned (or of
// its panic). It never wraps a local sentinel: the error crossed the wire as a
// string.
type RemoteError struct {
	// Msg is the handler's error text.
	Msg string
}

// Error implements error.
func (e *RemoteError) Error() string { return "transport: remote: " + e.Msg }

type callerKey struct{}

// CallerAddr returns the address of the node that sent the request a Handler
// is answering: the caller's advertised RPC address for TCP (sent once per
// connection in a hello frame), the caller endpoint's address for Mem. It is
// "" when unknown, e.g. for a ctx not made by this package.
func CallerAddr(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

func withCaller(ctx context.Context, addr string) context.Context {
	if addr == "" {
		return ctx
	}
	return context.WithValue(ctx, callerKey{}, addr)
}

// Config configures a TCP transport. A zero field means "use the default"
// from DefaultConfig (except ListenAddr, which is required); ListenTCP copies
// the Config and never writes back into it.
type Config struct {
	// ListenAddr is the address to listen on, e.g. "127.0.0.1:9090". Port 0
	// picks a free port; TCP.Addr reports the real one. Required.
	ListenAddr string
	// AdvertiseAddr is the address this node sends to peers as its own (see
	// CallerAddr). Default: the real listen address.
	AdvertiseAddr string
	// DefaultTimeout bounds a call whose ctx has no deadline. Default 2s.
	DefaultTimeout time.Duration
	// DialTimeout bounds connecting to a peer, TLS handshake included; it
	// also bounds the server side of a TLS handshake. Default 1s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write of a batch of frames. A peer that stops
	// reading for longer has its connection torn down (calls in flight fail
	// with ErrConnLost) and redialled. Default 5s.
	WriteTimeout time.Duration
	// ConnsPerPeer is the number of connections kept to each peer; calls are
	// spread over them round-robin. More connections let readers run in
	// parallel on more cores, at the price of smaller write batches (more
	// syscalls per call). On 2 cores one connection was at least as fast as
	// two and 2–3× as fast as four (BenchmarkTCPCallParallel). Default 1, at
	// most 64.
	ConnsPerPeer int
	// MaxFrameBytes is the largest payload accepted in one frame, in both
	// directions. A larger request fails with ErrTooLarge before it is sent;
	// a connection that announces a larger frame is closed. Default 16 MiB,
	// at most 1 GiB.
	MaxFrameBytes int
	// MaxInFlightPerConn bounds the requests from one connection being handled
	// at once; when reached, the server stops reading that connection (TCP
	// backpressure) until a handler returns. Default 256.
	MaxInFlightPerConn int
	// BackoffMin and BackoffMax bound the reconnect backoff: after the k-th
	// consecutive failed dial the peer is not dialled again for
	// min(BackoffMin·2^(k-1), BackoffMax), jittered to between half and all of
	// it; meanwhile calls to it fail at once with ErrUnreachable. Defaults
	// 50ms and 2s.
	BackoffMin, BackoffMax time.Duration
	// TLS, when set, is used for both sides: the listener runs tls.Server with
	// it and dials use tls.Dialer with it. For mutual TLS set Certificates,
	// RootCAs, ClientCAs and ClientAuth = tls.RequireAndVerifyClientCert. The
	// config is cloned once at ListenTCP; to reload certificates at run time
	// set GetCertificate (server side), GetClientCertificate (client side) and,
	// to swap CAs too, GetConfigForClient — they are consulted on every new
	// connection. Default nil: plain TCP.
	TLS *tls.Config
	// Logger receives connection-level events (bad frames, failed handshakes,
	// handler panics). Default nil: discard.
	Logger *slog.Logger
	// Seed seeds the jitter of reconnect backoff so a test can replay it.
	// Default 0: seeded from the clock.
	Seed int64
}

// Defaults used by DefaultConfig and for zero Config fields.
const (
	defaultTimeout      = 2 * time.Second
	defaultDialTimeout  = time.Second
	defaultWriteTimeout = 5 * time.Second
	defaultConnsPerPeer = 1
	defaultMaxFrame     = 16 << 20
	defaultMaxInFlight  = 256
	defaultBackoffMin   = 50 * time.Millisecond
	defaultBackoffMax   = 2 * time.Second

	maxConnsPerPeer = 64
	maxFrameLimit   = 1 << 30
)

// DefaultConfig returns a Config listening on 127.0.0.1:9090 with every other
// field at its documented default.
func DefaultConfig() Config {
	return Config{
		ListenAddr:         "127.0.0.1:9090",
		DefaultTimeout:     defaultTimeout,
		DialTimeout:        defaultDialTimeout,
		WriteTimeout:       defaultWriteTimeout,
		ConnsPerPeer:       defaultConnsPerPeer,
		MaxFrameBytes:      defaultMaxFrame,
		MaxInFlightPerConn: defaultMaxInFlight,
		BackoffMin:         defaultBackoffMin,
		BackoffMax:         defaultBackoffMax,
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.ConnsPerPeer == 0 {
		c.ConnsPerPeer = d.ConnsPerPeer
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.MaxInFlightPerConn == 0 {
		c.MaxInFlightPerConn = d.MaxInFlightPerConn
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(d.BackoffMax, c.BackoffMin)
	}
	return c
}

// Validate reports every problem with c at once (zero fields count as their
// defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("transport: config: "+format, args...))
	}
	if c.ListenAddr == "" {
		bad("ListenAddr is empty")
	}
	if c.DefaultTimeout < 0 {
		bad("DefaultTimeout %v is negative", c.DefaultTimeout)
	}
	if c.DialTimeout < 0 {
		bad("DialTimeout %v is negative", c.DialTimeout)
	}
	if c.WriteTimeout < 0 {
		bad("WriteTimeout %v is negative", c.WriteTimeout)
	}
	if c.ConnsPerPeer < 0 || c.ConnsPerPeer > maxConnsPerPeer {
		bad("ConnsPerPeer %d is outside 1..%d", c.ConnsPerPeer, maxConnsPerPeer)
	}
	if c.MaxFrameBytes < 0 || c.MaxFrameBytes > maxFrameLimit {
		bad("MaxFrameBytes %d is outside 1..%d", c.MaxFrameBytes, maxFrameLimit)
	}
	if c.MaxInFlightPerConn < 0 {
		bad("MaxInFlightPerConn %d is negative", c.MaxInFlightPerConn)
	}
	if c.BackoffMin < 0 {
		bad("BackoffMin %v is negative", c.BackoffMin)
	}
	if c.BackoffMax < c.BackoffMin {
		bad("BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	return errors.Join(errs...)
}

// ctxErr wraps the ctx error of an abandoned call so that errors.Is finds
// context.DeadlineExceeded or context.Canceled.
func ctxErr(addr string, err error) error {
	return fmt.Errorf("transport: call %s: %w", addr, err)
}
