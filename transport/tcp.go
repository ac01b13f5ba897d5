package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/internal/rawio"
)

// TCP is the production transport: persistent, multiplexed connections to
// each peer, and a listener that serves the local Handler. It is safe for
// concurrent use.
type TCP struct {
	cfg     Config
	handler Handler
	tlsConf *tls.Config
	log     *slog.Logger
	ln      net.Listener
	addr    string // real listen address
	self    string // address sent to peers in the hello frame

	ctx    context.Context // cancelled by Close; parent of every handler ctx
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine this TCP started
	closed atomic.Bool    // fast-path copy of closing

	// draining is set by Drain: new requests are refused, running ones
	// finish. inflight counts requests whose answer is not queued yet.
	draining atomic.Bool
	inflight atomic.Int64

	peers sync.Map // addr -> *peer; read on every call, written once per peer

	// jobs hands a request to an idle handler goroutine (workers.go).
	jobs chan serverJob

	// mu guards closing and conns; a goroutine is only started (wg.Add) under
	// mu while !closing, so Close's wg.Wait cannot race with a late Add.
	mu      sync.Mutex
	closing bool
	conns   map[conn]struct{}

	// rngMu guards rng, the backoff jitter source.
	rngMu sync.Mutex
	rng   *rand.Rand
}

// conn is either side of a live connection, as tracked for Close.
type conn interface{ shutdown(err error) }

// ListenTCP starts a TCP transport listening on cfg.ListenAddr and serving h
// (nil h answers every request with an error). Zero Config fields take their
// defaults; an invalid Config is reported whole.
func ListenTCP(cfg Config, h Handler) (*TCP, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t := &TCP{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger,
		ln:      ln,
		addr:    ln.Addr().String(),
		conns:   make(map[conn]struct{}),
		rng:     rand.New(rand.NewPCG(seed, 0x71c0)),
	}
	if cfg.TLS != nil {
		t.tlsConf = cfg.TLS.Clone()
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.self = cfg.AdvertiseAddr
	if t.self == "" {
		t.self = t.addr
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.jobs = make(chan serverJob)
	t.wg.Go(t.acceptLoop)
	return t, nil
}

// Addr returns the address the transport listens on (the real port when
// ListenAddr asked for port 0).
func (t *TCP) Addr() string { return t.addr }

// errDraining is what a request that arrives during Drain is answered. It
// reaches the caller as a *RemoteError: the request did not run.
const errDraining = "transport: node is shutting down"

// Drain prepares a graceful Close: from now on requests that arrive are
// refused (answered with an error, so callers can go elsewhere at once),
// while the ones already running finish and their answers are sent. It
// returns when they are, or after timeout. Calls this transport makes keep
// working, so running handlers can still reach their peers.
func (t *TCP) Drain(timeout time.Duration) {
	t.draining.Store(true)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if t.inflight.Load() == 0 && !t.unsent() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// unsent reports whether an incoming connection still has answers to write.
func (t *TCP) unsent() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if s, ok := c.(*serverConn); ok && s.q.busy() {
			return true
		}
	}
	return false
}

// Close stops the listener, closes every connection, fails calls in flight
// with ErrClosed, and waits for every goroutine the transport started,
// including running handlers (whose ctx is cancelled). It is idempotent and
// always returns nil.
func (t *TCP) Close() error {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.closing = true
	t.closed.Store(true)
	conns := make([]conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()

	_ = t.ln.Close() // the accept loop sees the error and returns
	// Connections first, so that handlers seeing their ctx cancelled below
	// cannot get a "context canceled" answer out to the caller.
	for _, c := range conns {
		c.shutdown(ErrClosed)
	}
	t.cancel()
	t.wg.Wait()
	return nil
}

// track registers c and starts its goroutines, unless the transport is
// closing, in which case it reports false and starts nothing.
func (t *TCP) track(c conn, goroutines ...func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[c] = struct{}{}
	for _, g := range goroutines {
		t.wg.Go(g)
	}
	return true
}

func (t *TCP) untrack(c conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// spawn starts g as an owned goroutine unless the transport is closing.
func (t *TCP) spawn(g func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.wg.Go(g)
	return true
}

// ResetBackoff forgets failed dials to addr so the next call dials at once;
// useful when membership learns the peer is alive again.
func (t *TCP) ResetBackoff(addr string) {
	if v, ok := t.peers.Load(addr); ok {
		p := v.(*peer)
		p.mu.Lock()
		p.failures, p.retryAt = 0, time.Time{}
		p.mu.Unlock()
	}
}

// Call sends req to the node at addr and waits for its answer, until ctx is
// done or, when ctx has no deadline, for Config.DefaultTimeout. Errors:
// ErrUnreachable (not sent), ErrConnLost (sent, outcome unknown), ErrClosed,
// ErrTooLarge, *RemoteError (the handler failed), or an error wrapping
// ctx.Err() — context.DeadlineExceeded on timeout. Abandoning a call (ctx
// done) leaves the connection intact; a late answer is dropped.
func (t *TCP) Call(ctx context.Context, addr string, req []byte) ([]byte, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.DefaultTimeout)
		defer cancel()
		deadline, _ = ctx.Deadline()
	}
	cl := callPool.Get().(*call)
	c, id, err := t.send(ctx, addr, req, deadline, cl)
	if err != nil {
		callPool.Put(cl)
		return nil, err
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		if c.unregister(id) {
			callPool.Put(cl)
			return nil, ctxErr(addr, ctx.Err())
		}
		<-cl.done // the answer won the race; take it
	}
	resp, err := cl.resp, cl.err
	cl.resp, cl.err = nil, nil
	callPool.Put(cl)
	return resp, blameDeadline(ctx, addr, deadline, err)
}

// Go is Call without the wait: it sends req and returns, and done gets the
// answer or the error (as Call would return them) exactly once, later on a
// transport goroutine, or before Go returns when the request could not be
// sent. done must not block: it runs on the connection's reader. ctx must
// have a deadline; its end abandons the call as it does Call's.
//
// Go exists so a coordinator can ask several replicas at once without a
// goroutine per request: the profile of a node serving 33k quorum reads
// per second showed a tenth of its CPU in starting those goroutines and
// growing their stacks.
func (t *TCP) Go(ctx context.Context, addr string, req []byte, done func([]byte, error)) {
	deadline, ok := ctx.Deadline()
	if !ok {
		done(nil, fmt.Errorf("transport: call %s: Go needs a ctx with a deadline", addr))
		return
	}
	cl := &call{}
	cl.fn = func(resp []byte, err error) {
		cl.finished.Store(true)
		if stop := cl.stop.Load(); stop != nil {
			(*stop)()
		}
		done(resp, blameDeadline(ctx, addr, deadline, err))
	}
	c, id, err := t.send(ctx, addr, req, deadline, cl)
	if err != nil {
		done(nil, err)
		return
	}
	stop := context.AfterFunc(ctx, func() {
		if c.unregister(id) {
			done(nil, ctxErr(addr, ctx.Err()))
		}
	})
	cl.stop.Store(&stop)
	if cl.finished.Load() {
		stop() // the answer came first: cl.fn may have missed stop
	}
}

// send registers cl on a connection to addr and queues req; it returns the
// connection and request id, or the error that kept req from being sent
// (cl is then not registered).
func (t *TCP) send(ctx context.Context, addr string, req []byte, deadline time.Time, cl *call) (*clientConn, uint64, error) {
	if t.closed.Load() {
		return nil, 0, ErrClosed
	}
	if len(req) > t.cfg.MaxFrameBytes {
		return nil, 0, fmt.Errorf("transport: call %s: request of %d bytes: %w", addr, len(req), ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, ctxErr(addr, err)
	}
	p := t.peer(addr)
	var (
		c  *clientConn
		id uint64
	)
	for attempt := 0; ; attempt++ {
		var err error
		if c, err = p.conn(ctx); err != nil {
			return nil, 0, err
		}
		if id, err = c.register(cl); err == nil {
			break
		}
		// The connection broke before we sent anything: one fresh try.
		if attempt == 1 {
			return nil, 0, err
		}
	}
	if !c.q.push(id, flagRequest, budgetMicros(time.Until(deadline)), req) {
		if c.unregister(id) {
			return nil, 0, c.failure()
		}
		// fail() took the call and is delivering its error.
	}
	return c, id, nil
}

// blameDeadline turns a remote error that the deadline likely caused into
// the timeout: the handler's ctx carries the caller's deadline, so report
// the timeout, not its echo. (The ctx timer may not have fired yet, hence
// the clock check.)
func blameDeadline(ctx context.Context, addr string, deadline time.Time, err error) error {
	if re := (*RemoteError)(nil); errors.As(err, &re) {
		if cerr := ctx.Err(); cerr != nil {
			return ctxErr(addr, cerr)
		}
		if !time.Now().Before(deadline) {
			return ctxErr(addr, context.DeadlineExceeded)
		}
	}
	return err
}

// peer returns the peer record for addr, creating it on first use.
func (t *TCP) peer(addr string) *peer {
	if v, ok := t.peers.Load(addr); ok {
		return v.(*peer)
	}
	n := t.cfg.ConnsPerPeer
	p := &peer{
		t:       t,
		addr:    addr,
		slots:   make([]atomic.Pointer[clientConn], n),
		dialing: make([]chan struct{}, n),
	}
	v, _ := t.peers.LoadOrStore(addr, p)
	return v.(*peer)
}

// backoff returns the jittered pause after the given number of consecutive
// failed dials.
func (t *TCP) backoff(failures int) time.Duration {
	d := t.cfg.BackoffMin
	for i := 1; i < failures && d < t.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, t.cfg.BackoffMax)
	t.rngMu.Lock()
	j := time.Duration(t.rng.Int64N(int64(d)/2 + 1))
	t.rngMu.Unlock()
	return d/2 + j
}

// call is one pending request. Whoever removes it from its connection's
// pending map (the reader delivering an answer, fail(), or the caller giving
// up) owns it: only the first two send on done, exactly once.
type call struct {
	done chan struct{} // capacity 1
	resp []byte
	err  error

	// Set for a call made with Go: fn gets the result instead of done,
	// and stop (once the caller stored it) ends the ctx watch.
	fn       func([]byte, error)
	stop     atomic.Pointer[func() bool]
	finished atomic.Bool
}

// deliver hands the call its result; the deliverer owns the call.
func (cl *call) deliver(resp []byte, err error) {
	if cl.fn != nil {
		cl.fn(resp, err)
		return
	}
	cl.resp, cl.err = resp, err
	cl.done <- struct{}{}
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// peer holds the connections to one address and its dial backoff state.
type peer struct {
	t    *TCP
	addr string
	next atomic.Uint32

	slots []atomic.Pointer[clientConn] // nil: not connected

	// mu guards dialing, failures, retryAt and lastErr.
	mu       sync.Mutex
	dialing  []chan struct{} // per slot; non-nil while a dial is in progress, closed when it ends
	failures int             // consecutive failed dials
	retryAt  time.Time       // no dial before this
	lastErr  error           // why the last dial failed
}

// conn returns a live connection, dialling one if needed.
func (p *peer) conn(ctx context.Context) (*clientConn, error) {
	i := 0
	if n := len(p.slots); n > 1 {
		i = int(p.next.Add(1) % uint32(n))
	}
	if c := p.slots[i].Load(); c != nil && !c.broken.Load() {
		return c, nil
	}
	return p.connSlow(ctx, i)
}

func (p *peer) connSlow(ctx context.Context, i int) (*clientConn, error) {
	p.mu.Lock()
	for {
		if c := p.slots[i].Load(); c != nil && !c.broken.Load() {
			p.mu.Unlock()
			return c, nil
		}
		if ch := p.dialing[i]; ch != nil {
			p.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctxErr(p.addr, ctx.Err())
			}
			p.mu.Lock()
			continue
		}
		if wait := time.Until(p.retryAt); wait > 0 {
			// In backoff: use any other live connection, else fail fast.
			for j := range p.slots {
				if c := p.slots[j].Load(); c != nil && !c.broken.Load() {
					p.mu.Unlock()
					return c, nil
				}
			}
			failures, last := p.failures, p.lastErr
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: %s: in backoff for %v after %d failed dials (last: %v)",
				ErrUnreachable, p.addr, wait.Round(time.Millisecond), failures, last)
		}
		// Dial in an owned goroutine bounded by DialTimeout rather than by
		// this caller's deadline: a caller with a short deadline must not
		// abort a dial that other calls will use, nor put a healthy peer
		// into backoff.
		ch := make(chan struct{})
		p.dialing[i] = ch
		if !p.t.spawn(func() { p.dial(i, ch) }) {
			p.dialing[i] = nil
			close(ch)
			p.mu.Unlock()
			return nil, ErrClosed
		}
	}
}

// dial opens connection number i and records the outcome.
func (p *peer) dial(i int, ch chan struct{}) {
	c, err := p.t.dial(p, i)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing[i] = nil
	close(ch)
	switch {
	case err == nil:
		p.failures, p.retryAt, p.lastErr = 0, time.Time{}, nil
		p.slots[i].Store(c)
	case errors.Is(err, ErrClosed):
		// Shutting down; waiters see ErrClosed on their next look.
	default:
		p.failures++
		p.retryAt = time.Now().Add(p.t.backoff(p.failures))
		p.lastErr = err
		p.t.log.Debug("transport: dial failed", "peer", p.addr, "failures", p.failures, "err", err)
	}
}

// drop clears c's slot if c still holds it.
func (p *peer) drop(c *clientConn) {
	p.slots[c.slot].CompareAndSwap(c, nil)
}

// dial opens connection number slot to p.
func (t *TCP) dial(p *peer, slot int) (*clientConn, error) {
	dctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	var (
		nc  net.Conn
		err error
		d   net.Dialer
	)
	if t.tlsConf != nil {
		td := tls.Dialer{NetDialer: &d, Config: t.tlsConf}
		nc, err = td.DialContext(dctx, "tcp", p.addr)
	} else {
		nc, err = d.DialContext(dctx, "tcp", p.addr)
		if err == nil {
			nc = rawio.Wrap(nc) // (the TLS dialer's connection is its own)
		}
	}
	if err == nil {
		err = t.greet(dctx, nc)
		if err != nil {
			nc.Close()
		}
	}
	if err != nil {
		if t.closed.Load() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, p.addr, err)
	}
	c := &clientConn{
		t:       t,
		p:       p,
		slot:    slot,
		nc:      nc,
		q:       newFrameQueue(),
		done:    make(chan struct{}),
		pending: make(map[uint64]*call),
	}
	if !t.track(c, c.readLoop, c.writeLoop) {
		nc.Close()
		return nil, ErrClosed
	}
	return c, nil
}

// greet exchanges hello frames on a fresh connection. Waiting for the
// peer's hello means a connection that the peer refuses after the handshake
// (TLS 1.3 servers reject a client certificate only after the client
// believes the handshake done) counts as a failed dial, with backoff, rather
// than as a connection lost under every call.
func (t *TCP) greet(ctx context.Context, nc net.Conn) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := nc.SetDeadline(dl); err != nil {
			return err
		}
	}
	if _, err := nc.Write(appendFrame(nil, 0, flagHello, 0, []byte(t.self))); err != nil {
		return err
	}
	var hb [headerSize]byte
	h, _, err := readFrame(nc, &hb, 4<<10)
	if err != nil {
		return err
	}
	if h.flags != flagHello {
		return fmt.Errorf("peer answered hello with frame kind %d", h.flags)
	}
	return nc.SetDeadline(time.Time{})
}

// clientConn is one outgoing connection with its pending calls.
type clientConn struct {
	t    *TCP
	p    *peer
	slot int
	nc   net.Conn
	q    *frameQueue
	done chan struct{} // closed by fail

	broken atomic.Bool // set by fail; checked lock-free on the call path

	// mu guards nextID, pending and err.
	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*call
	err     error // why the connection failed; nil while live
}

// register assigns cl a request id and records it as pending.
func (c *clientConn) register(cl *call) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.nextID++
	c.pending[c.nextID] = cl
	return c.nextID, nil
}

// unregister removes a pending call; it reports whether the caller now owns it
// (false: an answer or failure is already being delivered).
func (c *clientConn) unregister(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; !ok {
		return false
	}
	delete(c.pending, id)
	return true
}

func (c *clientConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrConnLost
}

func (c *clientConn) shutdown(err error) { c.fail(err) }

// fail closes the connection and fails every pending call with err.
func (c *clientConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	c.broken.Store(true)
	c.p.drop(c)
	c.q.close()
	close(c.done)
	_ = c.nc.Close()
	c.t.untrack(c)
	for _, cl := range pending {
		cl.deliver(nil, err)
	}
}

// lost turns a connection-level error into what pending calls see.
func (c *clientConn) lost(cause error) error {
	if c.t.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("%w: %s: %w", ErrConnLost, c.p.addr, cause)
}

func (c *clientConn) writeLoop() {
	if err := writeLoop(c.nc, c.q, c.done, c.t.cfg.WriteTimeout); err != nil {
		c.fail(c.lost(err))
	}
}

func (c *clientConn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 32<<10)
	var hb [headerSize]byte
	for {
		h, payload, err := readFrame(br, &hb, c.t.cfg.MaxFrameBytes)
		if err != nil {
			if !isClosedErr(err) && !c.broken.Load() {
				c.t.log.Debug("transport: connection lost", "peer", c.p.addr, "err", err)
			}
			c.fail(c.lost(err))
			return
		}
		var resp []byte
		var rerr error
		switch h.flags {
		case flagResponse:
			resp = payload
		case flagError:
			rerr = &RemoteError{Msg: string(payload)}
		case flagTooLarge:
			rerr = fmt.Errorf("transport: call %s: response: %w", c.p.addr, ErrTooLarge)
		default:
			c.t.log.Warn("transport: bad frame from peer", "peer", c.p.addr, "flags", h.flags)
			c.fail(c.lost(fmt.Errorf("unexpected frame kind %d", h.flags)))
			return
		}
		c.mu.Lock()
		cl, ok := c.pending[h.id]
		if ok {
			delete(c.pending, h.id)
		}
		c.mu.Unlock()
		if ok {
			cl.deliver(resp, rerr)
		}
	}
}

// isClosedErr reports errors that just mean "the connection ended".
func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// acceptLoop accepts connections until the listener is closed.
func (t *TCP) acceptLoop() {
	var pause time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Likely out of file descriptors: pause instead of spinning, as
			// net/http does.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			t.log.Warn("transport: accept failed", "err", err, "retry_in", pause)
			timer := time.NewTimer(pause)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		pause = 0
		nc = rawio.Wrap(nc) // under TLS too: its records are read and written through it
		if !t.spawn(func() { t.serve(nc) }) {
			nc.Close()
			return
		}
	}
}

// serverConn is one incoming connection.
type serverConn struct {
	t      *TCP
	nc     net.Conn
	remote string
	q      *frameQueue
	done   chan struct{}      // closed by shutdown
	ctx    context.Context    // parent of handler ctxs; cancelled by shutdown
	cancel context.CancelFunc //
	sem    chan struct{}      // bounds handlers in flight
	once   sync.Once
}

func (s *serverConn) shutdown(error) {
	s.once.Do(func() {
		s.q.close() // before cancel: answers to a cancelled ctx are not sent
		s.cancel()
		close(s.done)
		_ = s.nc.Close()
		s.t.untrack(s)
	})
}

// serve runs one incoming connection: TLS handshake, then the read loop.
func (t *TCP) serve(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	if t.tlsConf != nil {
		tc := tls.Server(nc, t.tlsConf)
		hctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			t.log.Info("transport: TLS handshake failed", "remote", remote, "err", err)
			nc.Close()
			return
		}
		nc = tc
	}
	s := &serverConn{
		t:      t,
		nc:     nc,
		remote: remote,
		q:      newFrameQueue(),
		done:   make(chan struct{}),
		sem:    make(chan struct{}, t.cfg.MaxInFlightPerConn),
	}
	s.ctx, s.cancel = context.WithCancel(t.ctx)
	if !t.track(s, s.writeLoop) {
		s.cancel()
		nc.Close()
		return
	}
	s.readLoop()
}

func (s *serverConn) writeLoop() {
	if err := writeLoop(s.nc, s.q, s.done, s.t.cfg.WriteTimeout); err != nil {
		s.t.log.Debug("transport: write failed", "remote", s.remote, "err", err)
		s.shutdown(err)
	}
}

func (s *serverConn) readLoop() {
	defer s.shutdown(nil)
	br := bufio.NewReaderSize(s.nc, 32<<10)
	var hb [headerSize]byte
	base := s.ctx
	for first := true; ; first = false {
		h, payload, err := readFrame(br, &hb, s.t.cfg.MaxFrameBytes)
		if err != nil {
			if !isClosedErr(err) && !s.t.closed.Load() {
				s.t.log.Warn("transport: closing connection after bad read", "remote", s.remote, "err", err)
			}
			return
		}
		switch h.flags {
		case flagHello:
			if !first {
				s.t.log.Warn("transport: hello frame mid-stream", "remote", s.remote)
				return
			}
			base = withCaller(s.ctx, string(payload))
			s.q.push(0, flagHello, 0, []byte(s.t.self))
		case flagRequest:
			select {
			case s.sem <- struct{}{}:
			case <-s.done:
				return
			}
			if s.t.draining.Load() {
				s.q.push(h.id, flagError, 0, []byte(errDraining))
				<-s.sem
				continue
			}
			s.t.inflight.Add(1)
			s.t.dispatch(serverJob{s: s, ctx: base, id: h.id, budget: h.budget, req: payload})
		default:
			s.t.log.Warn("transport: bad frame kind", "remote", s.remote, "flags", h.flags)
			return
		}
	}
}

// handle runs the handler for one request and queues its answer.
func (s *serverConn) handle(ctx context.Context, id uint64, budget uint32, req []byte) {
	defer func() {
		s.t.inflight.Add(-1) // after the answer is queued (below)
		<-s.sem
	}()
	if budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(budget)*time.Microsecond)
		defer cancel()
	}
	resp, err := invoke(ctx, s.t.handler, req, s.t.log)
	limit := s.t.cfg.MaxFrameBytes
	switch {
	case err != nil:
		msg := err.Error()
		if len(msg) > limit {
			msg = msg[:limit]
		}
		s.q.push(id, flagError, 0, []byte(msg))
	case len(resp) > limit:
		s.q.push(id, flagTooLarge, 0, nil)
	default:
		s.q.push(id, flagResponse, 0, resp)
	}
}

// invoke calls h, turning a panic into an error so one bad request cannot
// take the node down.
func invoke(ctx context.Context, h Handler, req []byte, log *slog.Logger) (resp []byte, err error) {
	if h == nil {
		return nil, errors.New("no handler")
	}
	defer func() {
		if r := recover(); r != nil {
			log.Error("transport: handler panicked", "caller", CallerAddr(ctx), "panic", r)
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, req)
}
