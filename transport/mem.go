package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Network is an in-memory network of Mem endpoints with fault injection, for
// tests. Every random choice (drops, delays) comes from one seeded generator
// and is drawn synchronously inside Call, a fixed number of draws per call, so
// a sequential workload replays exactly under the same seed. It is safe for
// concurrent use.
type Network struct {
	// mu guards every field below, rng included.
	mu             sync.Mutex
	rng            *rand.Rand
	endpoints      map[string]*Mem
	group          map[string]int // partition group per listed address, from 1
	blocked        map[link]bool  // one-way blocks
	drop           float64
	delayMin       time.Duration
	delayMax       time.Duration
	defaultTimeout time.Duration
	maxFrame       int
}

// link is a direction between two addresses.
type link struct{ from, to string }

// NewNetwork returns an empty network whose randomness is seeded with seed.
// Calls without a ctx deadline time out after 2s (see SetDefaultTimeout);
// payloads over 16 MiB fail with ErrTooLarge, as on TCP.
func NewNetwork(seed int64) *Network {
	return &Network{
		rng:            rand.New(rand.NewPCG(uint64(seed), 0x9e3779b9)),
		endpoints:      make(map[string]*Mem),
		group:          make(map[string]int),
		blocked:        make(map[link]bool),
		defaultTimeout: defaultTimeout,
		maxFrame:       defaultMaxFrame,
	}
}

// SetDefaultTimeout sets the timeout of calls whose ctx has no deadline.
func (n *Network) SetDefaultTimeout(d time.Duration) {
	n.mu.Lock()
	n.defaultTimeout = d
	n.mu.Unlock()
}

// Listen returns the endpoint for addr, serving h (nil h answers every request
// with an error). If addr already has an endpoint, that one is closed and
// replaced: this is how a test restarts a node with fresh state.
func (n *Network) Listen(addr string, h Handler) *Mem {
	m := &Mem{net: n, addr: addr, handler: h, alive: true}
	m.life, m.stop = context.WithCancel(context.Background())
	n.mu.Lock()
	old := n.endpoints[addr]
	n.endpoints[addr] = m
	if old != nil {
		old.closeLocked()
	}
	n.mu.Unlock()
	return m
}

// Partition splits the listed addresses into groups that cannot reach each
// other: a call between two addresses listed in different groups fails at
// once with ErrUnreachable, and an answer already on its way across the new
// boundary is lost (the caller times out). Addresses not listed in any group
// are unaffected and reach everyone. Each call replaces the previous
// partition; one-way blocks stay.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = make(map[string]int)
	for i, g := range groups {
		for _, a := range g {
			n.group[a] = i + 1
		}
	}
}

// Heal removes the partition and every one-way block. Drop and delay settings
// stay (SetDrop(0), SetDelay(0, 0) clear them).
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = make(map[string]int)
	n.blocked = make(map[link]bool)
}

// Block cuts the direction from → to only: calls from from to to fail at once
// with ErrUnreachable; calls from to to from run on from, but their answers
// are lost, so the caller times out.
func (n *Network) Block(from, to string) {
	n.mu.Lock()
	n.blocked[link{from, to}] = true
	n.mu.Unlock()
}

// Unblock undoes Block(from, to).
func (n *Network) Unblock(from, to string) {
	n.mu.Lock()
	delete(n.blocked, link{from, to})
	n.mu.Unlock()
}

// SetDrop makes each request and each answer independently lost with
// probability p (0 ≤ p ≤ 1); a caller whose request or answer is lost sees a
// timeout at its deadline. A lost answer means the handler did run.
func (n *Network) SetDrop(p float64) {
	n.mu.Lock()
	n.drop = min(max(p, 0), 1)
	n.mu.Unlock()
}

// SetDelay delays each request and each answer by a uniform random duration
// in [min, max], so a round trip takes two draws. SetDelay(0, 0) turns delays
// off.
func (n *Network) SetDelay(min, max time.Duration) {
	if max < min {
		max = min
	}
	n.mu.Lock()
	n.delayMin, n.delayMax = min, max
	n.mu.Unlock()
}

// Kill makes addr a dead node: calls to it and from it fail at once with
// ErrUnreachable, the ctx of its running handlers is cancelled, and their
// answers are discarded. Its handler is kept for Revive.
func (n *Network) Kill(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.endpoints[addr]; m != nil && m.alive {
		m.alive = false
		m.stop()
	}
}

// Revive brings a killed addr back with the same handler.
func (n *Network) Revive(addr string) { n.Restart(addr, nil) }

// Restart brings a killed addr back serving h (nil: keep the old handler).
// Restarting a live address is the same as killing it first: in-flight
// answers are discarded.
func (n *Network) Restart(addr string, h Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.endpoints[addr]
	if m == nil || m.closed {
		return
	}
	if m.alive {
		m.stop()
	}
	if h != nil {
		m.handler = h
	}
	m.alive = true
	m.life, m.stop = context.WithCancel(context.Background())
}

// Close closes every endpoint on the network (see Mem.Close), which also
// ends every request still travelling towards one of them.
func (n *Network) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for addr, m := range n.endpoints {
		m.closeLocked()
		delete(n.endpoints, addr)
	}
}

// reachableLocked reports whether a message from → to gets through now.
func (n *Network) reachableLocked(from, to string) bool {
	gf, gt := n.group[from], n.group[to]
	if gf != 0 && gt != 0 && gf != gt {
		return false
	}
	return !n.blocked[link{from, to}]
}

func (n *Network) delayLocked() time.Duration {
	d := n.delayMin
	if span := n.delayMax - n.delayMin; span > 0 {
		d += time.Duration(n.rng.Int64N(int64(span) + 1))
	}
	return d
}

// Mem is one node's endpoint on a Network. It has the same call API as TCP.
type Mem struct {
	net  *Network
	addr string

	// Guarded by net.mu.
	handler Handler
	alive   bool // false while killed
	closed  bool
	life    context.Context // the current incarnation; cancelled by Kill, Restart, Close
	stop    context.CancelFunc

	// running counts handler invocations in progress; Close waits for them,
	// as TCP.Close does, so a node may close its store right after.
	// Add happens under net.mu while !closed, so it never races with Wait.
	running sync.WaitGroup
}

// Addr returns the endpoint's address.
func (m *Mem) Addr() string { return m.addr }

// Close removes the endpoint from the network: calls to it fail with
// ErrUnreachable, its own calls with ErrClosed, its running handlers see ctx
// cancelled and their answers are discarded. Idempotent.
func (m *Mem) Close() error {
	m.net.mu.Lock()
	m.closeLocked()
	if m.net.endpoints[m.addr] == m {
		delete(m.net.endpoints, m.addr)
	}
	m.net.mu.Unlock()
	m.running.Wait()
	return nil
}

func (m *Mem) closeLocked() {
	if !m.closed {
		m.closed = true
		m.alive = false
		m.stop()
	}
}

type memResult struct {
	resp []byte
	err  error
}

// Go runs Call on a goroutine of its own and hands its result to done (see
// TCP.Go).
func (m *Mem) Go(ctx context.Context, addr string, req []byte, done func([]byte, error)) {
	go func() { done(m.Call(ctx, addr, req)) }()
}

// Call sends a copy of req to the endpoint at addr and waits for a copy of its
// answer, with the same errors as TCP.Call.
func (m *Mem) Call(ctx context.Context, addr string, req []byte) ([]byte, error) {
	n := m.net
	n.mu.Lock()
	timeout := n.defaultTimeout
	// Draw before any early return: a fixed number of draws per call keeps the
	// random sequence aligned across runs of the same workload.
	dropReq := n.drop > 0 && n.rng.Float64() < n.drop
	dropResp := n.drop > 0 && n.rng.Float64() < n.drop
	delayReq, delayResp := n.delayLocked(), n.delayLocked()
	var fail error
	dst := n.endpoints[addr]
	switch {
	case m.closed:
		fail = ErrClosed
	case len(req) > n.maxFrame:
		fail = fmt.Errorf("transport: call %s: request of %d bytes: %w", addr, len(req), ErrTooLarge)
	case !m.alive:
		fail = fmt.Errorf("%w: %s: caller %s is killed", ErrUnreachable, addr, m.addr)
	case dst == nil || !dst.alive:
		fail = fmt.Errorf("%w: %s: no live endpoint", ErrUnreachable, addr)
	case !n.reachableLocked(m.addr, addr):
		fail = fmt.Errorf("%w: %s: partitioned from %s", ErrUnreachable, addr, m.addr)
	}
	var (
		h    Handler
		life context.Context
	)
	if fail == nil {
		h, life = dst.handler, dst.life
	}
	n.mu.Unlock()
	if fail != nil {
		return nil, fail
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(addr, err)
	}
	if dropReq {
		<-ctx.Done()
		return nil, ctxErr(addr, ctx.Err())
	}
	deadline, _ := ctx.Deadline()
	out := make(chan memResult, 1)
	d := delivery{
		net: n, from: m.addr, to: addr, caller: m, target: dst, h: h, life: life,
		req: bytes.Clone(req), deadline: deadline, delayReq: delayReq, delayResp: delayResp,
		dropResp: dropResp, out: out, callDone: ctx.Done(),
	}
	go d.run()
	select {
	case r := <-out:
		if _, remote := r.err.(*RemoteError); remote { // as TCP.Call
			if cerr := ctx.Err(); cerr != nil {
				return nil, ctxErr(addr, cerr)
			}
			if !time.Now().Before(deadline) {
				return nil, ctxErr(addr, context.DeadlineExceeded)
			}
		}
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctxErr(addr, ctx.Err())
	}
}

// delivery is one request in flight on a Network; run is its goroutine, which
// ends when the handler returns (or at once if the target dies first).
type delivery struct {
	net                 *Network
	from, to            string
	caller, target      *Mem
	h                   Handler
	life                context.Context // target's incarnation at send time
	req                 []byte
	deadline            time.Time
	delayReq, delayResp time.Duration
	dropResp            bool
	out                 chan<- memResult // capacity 1; never blocks
	callDone            <-chan struct{}  // caller stopped waiting
}

func (d *delivery) run() {
	if !sleep(d.delayReq, d.life.Done()) {
		return // target died while the request travelled
	}
	d.net.mu.Lock()
	if d.target.closed {
		d.net.mu.Unlock()
		return
	}
	d.target.running.Add(1)
	d.net.mu.Unlock()
	ctx, cancel := context.WithDeadline(withCaller(d.life, d.from), d.deadline)
	resp, err := invoke(ctx, d.h, d.req, slog.New(slog.DiscardHandler))
	cancel()
	d.target.running.Done()
	if d.life.Err() != nil || d.dropResp {
		return
	}
	if !sleep(d.delayResp, d.callDone) {
		return
	}
	n := d.net
	n.mu.Lock()
	ok := d.life.Err() == nil && !d.caller.closed && d.caller.alive && n.reachableLocked(d.to, d.from)
	limit := n.maxFrame
	n.mu.Unlock()
	if !ok {
		return
	}
	var r memResult
	switch {
	case err != nil:
		r.err = &RemoteError{Msg: err.Error()}
	case len(resp) > limit:
		r.err = fmt.Errorf("transport: call %s: response: %w", d.to, ErrTooLarge)
	default:
		r.resp = bytes.Clone(resp)
		if r.resp == nil {
			r.resp = []byte{}
		}
	}
	d.out <- r
}

// sleep waits d, reporting false if stop closes first.
func sleep(d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
