package resp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/quorumkv/quorumkv/replication"
)

// Config configures the Redis-protocol listener. Listen copies it; the
// server never writes back into it.
type Config struct {
	// Addr is the TCP address to listen on, for example "127.0.0.1:6379"
	// (port 0 picks a free port; Server.Addr tells which). Default
	// "127.0.0.1:6379".
	Addr string

	// DefaultLevel is the consistency level a new connection starts with,
	// until it sends CONSISTENCY. Default quorum (the zero value).
	DefaultLevel replication.Consistency

	// Replicas is the replication factor N. When set, CONSISTENCY rejects a
	// replica count above N at once; when 0 the count is accepted and the
	// first request at that level answers the KV's error instead.
	// Default 0.
	Replicas int

	// MaxConns caps the number of open client connections; a connection
	// over the cap is answered "-ERR max number of clients reached" and
	// closed, as Redis does. 0 means no cap. Default 10000 (Redis's
	// maxclients).
	MaxConns int

	// MaxKeyBytes is the longest key accepted; keys are 1..MaxKeyBytes
	// bytes, as on the HTTP API. Default 1024.
	MaxKeyBytes int

	// MaxValueBytes is the largest value SET, MSET and QSET accept, as on
	// the HTTP API (--max-value-bytes). Default 1 MiB.
	MaxValueBytes int

	// MaxCommandBytes bounds one request frame (a whole MSET, say). A frame
	// that declares more is refused with a protocol error before it is
	// buffered, so a client cannot make the node hold more than about this
	// much memory per connection. It must be at least MaxKeyBytes +
	// MaxValueBytes + 1 KiB. Default 64 MiB.
	MaxCommandBytes int

	// RequestTimeout bounds each call to the KV (a DEL makes two: the read,
	// then the tombstone). 0 adds no deadline of its own and
	// leaves the bound to the KV (the replication coordinator applies its
	// own RequestTimeout, 2s by default); a positive value costs a timer per
	// call. Default 0.
	RequestTimeout time.Duration

	// Concurrency is how many commands of one pipelined batch, or keys of
	// one MGET, MSET, DEL or EXISTS, a connection runs against the KV at
	// once. Replies always keep the order of the requests. 1 runs every
	// command strictly one after another; higher values hide replica
	// round trips behind each other, which is what makes pipelined clients
	// (redis-benchmark -P 16) fast. Default 32.
	Concurrency int

	// AuthToken, when set, must be given with AUTH (AUTH token, or AUTH
	// user token with any user name) before any other command; the node
	// wires the same token as the HTTP API's --auth-token-file so the Redis
	// door is not a way around it. Default "" (no authentication).
	AuthToken string

	// TLS, when set, makes the listener speak TLS (redis-cli --tls).
	// Default nil (plain TCP).
	TLS *tls.Config

	// Observe, when set, is called after every key-value command with the
	// command name (lower case), the consistency level it ran at, its
	// outcome ("ok", "not_found", or one of the wire.Code* strings) and how
	// long it took. It must be safe for concurrent use. Default nil.
	Observe func(op, level, outcome string, elapsed time.Duration)

	// Logger receives connection-level problems (recovered panics, accept
	// errors). Default nil, which discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default described on Config.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:6379",
		DefaultLevel:    replication.Consistency{Level: replication.Quorum},
		MaxConns:        10000,
		MaxKeyBytes:     1024,
		MaxValueBytes:   1 << 20,
		MaxCommandBytes: 64 << 20,
		Concurrency:     32,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("resp: listen address is required"))
	}
	if err := checkLevel(c.DefaultLevel, c.Replicas); err != nil {
		errs = append(errs, fmt.Errorf("resp: default level: %w", err))
	}
	if c.Replicas < 0 {
		errs = append(errs, errors.New("resp: replicas must not be negative"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, errors.New("resp: max conns must not be negative (0 means no cap)"))
	}
	if c.MaxKeyBytes < 1 {
		errs = append(errs, errors.New("resp: max key bytes must be at least 1"))
	}
	if c.MaxValueBytes < 0 {
		errs = append(errs, errors.New("resp: max value bytes must not be negative"))
	}
	if min := c.MaxKeyBytes + c.MaxValueBytes + 1024; c.MaxCommandBytes < min {
		errs = append(errs, fmt.Errorf("resp: max command bytes must be at least max key bytes + max value bytes + 1 KiB (%d)", min))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, errors.New("resp: request timeout must not be negative"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("resp: concurrency must be at least 1"))
	}
	return errors.Join(errs...)
}

// checkLevel checks a consistency level; n is the replication factor, or 0
// when unknown.
func checkLevel(c replication.Consistency, n int) error {
	switch c.Level {
	case replication.One, replication.Quorum, replication.All, replication.Strong:
		return nil
	case replication.Count:
		if c.Count < 1 || (n > 0 && c.Count > n) {
			if n > 0 {
				return fmt.Errorf("replica count %d is outside 1..%d (N)", c.Count, n)
			}
			return fmt.Errorf("replica count %d must be at least 1", c.Count)
		}
		return nil
	}
	return fmt.Errorf("unknown consistency level %d", int(c.Level))
}
