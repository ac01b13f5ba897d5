package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/internal/rawio"
	"github.com/quorumkv/quorumkv/replication"
	"github.com/tidwall/redcon"
)

// KV is the key-value service the Redis door fronts; the replication
// coordinator satisfies it. Both calls may block on replica round trips and
// must honour ctx. The key and value slices the server passes are private
// copies it never touches again, so the KV may keep them after the call
// returns (for read repair or hints).
type KV interface {
	Get(ctx context.Context, key []byte, c replication.Consistency) (replication.Result, error)
	Put(ctx context.Context, key []byte, w replication.Write) (replication.Result, error)
}

// Server serves the Redis protocol (RESP2) on one listener. Create it with
// Listen; stop it with Shutdown (graceful) or Close.
type Server struct {
	cfg   Config
	kv    KV
	log   *slog.Logger
	ln    net.Listener
	start time.Time
	seed  maphash.Seed
	// workers runs the concurrent parts of commands; it stops after every
	// connection has.
	workers *workerPool

	// ctx is the parent of every KV call; Close cancels it so that calls
	// under way return and their connections can finish.
	ctx    context.Context
	cancel context.CancelFunc

	// wg counts the accept loop and every connection goroutine. A
	// connection waits for the work it handed to the pool before it ends.
	wg sync.WaitGroup

	// mu guards conns and closed.
	mu     sync.Mutex
	conns  map[*client]struct{}
	closed bool
	// draining is set by Shutdown: a connection ends after the batch it is
	// running instead of reading another.
	draining atomic.Bool

	stopOnce  sync.Once
	lnErr     error
	closeOnce sync.Once
	closeErr  error

	nextID      atomic.Int64
	open        atomic.Int64
	accepted    atomic.Int64
	rejected    atomic.Int64
	commandsRun atomic.Int64
}

// Listen validates cfg, listens on cfg.Addr and starts serving kv. It
// returns once the listener is bound, so Addr is valid.
func Listen(cfg Config, kv KV) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, errors.New("resp: a KV is required")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		kv:    kv,
		log:   log,
		ln:    ln,
		start: time.Now(),
		seed:  maphash.MakeSeed(),
		conns: make(map[*client]struct{}),
	}
	s.workers = newWorkerPool(log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the address the server listens on (with the port chosen when
// Config.Addr asked for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// stopAccepting closes the listener, once.
func (s *Server) stopAccepting() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.lnErr = s.ln.Close()
		s.mu.Unlock()
	})
}

// Shutdown stops the server gracefully, as net/http's Shutdown does: it
// stops accepting, closes every connection that is waiting for its client,
// and lets every other connection finish the batch of commands it is
// running and send the replies before closing it. Commands a client sends
// after that do not run; the client sees the connection close. If ctx ends
// first, Shutdown cancels what still runs (Close) and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, s.Close())
}

// Close stops accepting, cancels commands under way, closes every client
// connection and waits until every goroutine of the server has returned. It
// is idempotent; later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopAccepting()
		s.mu.Lock()
		s.cancel()
		for c := range s.conns {
			c.conn.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.workers.close()
		s.closeErr = s.lnErr
	})
	return s.closeErr
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little, as
			// net/http does, instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("resp: accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		nc = rawio.Wrap(nc) // reads and writes skip the scheduler's bookkeeping
		s.accepted.Add(1)
		if s.cfg.MaxConns > 0 && s.open.Load() >= int64(s.cfg.MaxConns) {
			s.rejected.Add(1)
			s.wg.Add(1)
			go func() {
				// Answer off the accept loop: the write (or a TLS
				// handshake) must not stall other clients.
				defer s.wg.Done()
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				nc.Write(redcon.AppendError(nil, "ERR max number of clients reached"))
				nc.Close()
			}()
			continue
		}
		c := s.newClient(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.open.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) forget(c *client) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.open.Add(-1)
}
