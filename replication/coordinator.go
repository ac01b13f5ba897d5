package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/predict"
	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transport"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// Transport sends one request to the node at addr and returns its answer.
type Transport interface {
	Call(ctx context.Context, addr string, req []byte) ([]byte, error)
	// Go is Call without the wait: done gets the result exactly once and
	// must not block (transport.TCP.Go).
	Go(ctx context.Context, addr string, req []byte, done func([]byte, error))
}

// Cluster is what the coordinator needs to know about membership.
type Cluster interface {
	// Ring is the current ring; it is never nil.
	Ring() *ring.Ring
	// Addr returns the RPC address of a member.
	Addr(id string) (string, bool)
	// Up reports whether membership believes id can answer now.
	Up(id string) bool
}

// Store is the local storage the coordinator reads and writes.
type Store interface {
	Get(partition int, key []byte) (vclock.Object, bool, error)
	Update(partition int, key []byte, fn func(cur vclock.Object, found bool) (vclock.Object, bool, error)) (vclock.Object, error)
	UpdateStaged(partition int, key []byte, fn func(cur vclock.Object, found bool) (vclock.Object, bool, error)) (vclock.Object, func() error, error)
	Merge(partition int, key []byte, obj vclock.Object) (vclock.Object, bool, error)
	MergeMany(items []store.Item) (int, error)
	AddHint(h store.Hint, now time.Time) (uint64, error)
	Hints(target string, limit int, fn func(store.Hint) error) error
	DeleteHint(target string, seq uint64) error
	HintCounts() (map[string]int64, error)
	GetMeta(name string) ([]byte, bool, error)
	SetMeta(name string, value []byte) error
}

// Config configures a Coordinator.
type Config struct {
	// ID is this node's id.
	ID string
	// Actor is this node's actor id in version vectors: its id plus its
	// incarnation, so a node that lost its disk writes as a new actor.
	Actor string
	// RequestTimeout bounds every replica call and, when the caller's
	// context has no deadline, every request. Default 2s.
	RequestTimeout time.Duration
	// DisableReadRepair turns read repair off (a negative control for the
	// convergence checks; never in production).
	DisableReadRepair bool
	// DisableReadCoalescing makes every read ask the replicas itself, and
	// DisableWriteCombining every overwrite write its own value (see
	// coalesce.go); for measurements and tests.
	DisableReadCoalescing bool
	DisableWriteCombining bool
	// DisableWriteBack makes strong reads skip their write-back phase (a
	// negative control for the linearizability checker; never in production).
	DisableWriteBack bool
	// SpeculativeRead is how long a read waits for the replicas it asked
	// before it asks one more (see readFan). Zero asks more only when one
	// fails. Default 20ms.
	SpeculativeRead time.Duration
	// DisableSloppy makes writes use primaries only, without fallbacks.
	DisableSloppy bool
	// MaxSiblings refuses a write that would leave a key with more siblings.
	// Default 100 (Riak's guardrail).
	MaxSiblings int
	// WarnSiblings logs a warning when a key reaches this many siblings.
	// Default 25.
	WarnSiblings int
	// Now is the clock used for hint ages. Default time.Now.
	Now func() time.Time
	// Fence, when set, lets ownership transfer fold the data old owners
	// still hold into this node's answers for partitions it just gained.
	Fence Fence
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{RequestTimeout: 2 * time.Second, SpeculativeRead: 20 * time.Millisecond, MaxSiblings: 100, WarnSiblings: 25, Now: time.Now}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("replication: node id is required"))
	}
	if c.Actor == "" {
		errs = append(errs, errors.New("replication: actor id is required"))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("replication: request timeout must be positive"))
	}
	if c.MaxSiblings < 1 {
		errs = append(errs, errors.New("replication: max siblings must be at least 1"))
	}
	if c.Now == nil {
		errs = append(errs, errors.New("replication: a clock is required"))
	}
	return errors.Join(errs...)
}

// Fence folds in data that the previous owners of a partition still hold,
// while they hand it off to this node.
type Fence interface {
	// Fold returns local merged with what the old owners of partition hold
	// for key, or an error if an old owner could not be asked.
	Fold(ctx context.Context, partition int, key []byte, local vclock.Object) (vclock.Object, error)
}

// ErrNotPrimary is returned by a replica asked for a strong-level answer
// for a partition it is not a primary of in its own view of the ring.
var ErrNotPrimary = errors.New("replication: not a primary of this partition")

// Receipt says what a request did: how many replicas were asked, how many
// answered in time, how many of those were fallbacks, and how many replicas
// a read repaired.
type Receipt struct {
	Replicas   int
	Acks       int
	Fallbacks  int
	ReadRepair int
}

// Result is the outcome of a read or write: the key's versions after the
// operation (for a read, the merge of what the replicas returned) and the
// receipt.
type Result struct {
	Object vclock.Object
	// Context is what the client should carry to its next write: for a read
	// the merged clock, for a write the client's context plus the new
	// version's dot (never versions the writer did not see).
	Context vclock.VV
	Receipt Receipt
}

// Write is a client write or delete.
type Write struct {
	Value  []byte
	Delete bool
	// Context is the version vector from an earlier read; the write
	// supersedes exactly the versions it covers.
	Context     vclock.VV
	Consistency Consistency
	// Overwrite makes the write supersede every version the coordinating
	// replica holds, as if the client had sent that replica's context (the
	// Redis SET semantics). Writes to one key on one coordinator are
	// serialised, so they replace each other in order (overlapping ones
	// may be combined into one write of the last value, coalesce.go);
	// writes coordinated concurrently elsewhere still become siblings.
	// Ignored at strong.
	Overwrite bool
}

// Stats are counters a metrics layer can export.
type Stats struct {
	ReadRepairs      atomic.Int64
	QuorumFailures   atomic.Int64
	Timeouts         atomic.Int64
	HintsStored      atomic.Int64
	HintsDelivered   atomic.Int64
	HintsExpired     atomic.Int64
	StrongWriteBacks atomic.Int64
	Forwarded        atomic.Int64
	// ReplicaBatches counts messages that carried replica writes to a
	// peer, ReplicaBatchWrites the writes they carried: the ratio is the
	// mean batch size (see pipe.go).
	ReplicaBatches     atomic.Int64
	ReplicaBatchWrites atomic.Int64
	// CoalescedReads counts reads answered by a read of the same key that
	// another request started, CombinedWrites overwrites answered by a
	// write of the same key that carried another request's value (see
	// coalesce.go).
	CoalescedReads atomic.Int64
	CombinedWrites atomic.Int64
}

// Coordinator runs client operations over the replicas of a key and serves
// the replica side of those operations.
type Coordinator struct {
	cfg Config
	st  Store
	cl  Cluster
	tr  Transport
	log *slog.Logger

	// Stats counts what the coordinator did.
	Stats Stats
	// Latency samples the WARS delays of replica messages for PBS.
	Latency *predict.Recorder

	// reads coalesces concurrent reads of one key, writes combines
	// concurrent overwrites of one key (coalesce.go).
	reads, writes callGroups

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	// tagMu guards the strong-tag counter and its persisted lease.
	tagMu    sync.Mutex
	tagLast  uint64
	tagLease uint64

	// dotFloor is the highest counter this node's actor used for any key:
	// new dots go above it, so a key whose object was purged never reuses
	// a counter. dotMu guards its persisted lease, which a restart starts
	// above.
	dotFloor atomic.Uint64
	dotMu    sync.Mutex
	dotLease uint64

	// pipes holds a *pipe per peer (see pipe.go).
	pipes sync.Map

	closeOnce sync.Once
}

const (
	metaTagLease = "strong-tag-lease"
	tagLeaseStep = 1 << 16
	metaDotLease = "dot-floor-lease"
	dotLeaseStep = 1 << 20
)

// New returns a coordinator. It copies cfg.
func New(cfg Config, st Store, cl Cluster, tr Transport) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{cfg: cfg, st: st, cl: cl, tr: tr, log: log.With("node", cfg.ID), Latency: predict.NewRecorder(uint64(len(cfg.ID)) + uint64(cfg.Now().UnixNano()))}
	onPanic := func(r any) {
		c.log.Error("replication: a shared read or write panicked", "panic", r, "stack", string(debug.Stack()))
	}
	c.reads.onPanic, c.writes.onPanic = onPanic, onPanic
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	b, ok, err := st.GetMeta(metaTagLease)
	if err != nil {
		return nil, fmt.Errorf("replication: read tag lease: %w", err)
	}
	if ok && len(b) == 8 {
		// Tags up to the lease may have been issued before a crash; start
		// above it.
		c.tagLast = binary.BigEndian.Uint64(b)
		c.tagLease = c.tagLast
	}
	b, ok, err = st.GetMeta(metaDotLease)
	if err != nil {
		return nil, fmt.Errorf("replication: read dot lease: %w", err)
	}
	if ok && len(b) == 8 {
		c.dotLease = binary.BigEndian.Uint64(b)
		c.dotFloor.Store(c.dotLease)
	}
	return c, nil
}

// raiseDotFloor records that counter was used, persisting a new lease
// before the floor can pass the old one.
func (c *Coordinator) raiseDotFloor(counter uint64) error {
	for {
		cur := c.dotFloor.Load()
		if counter <= cur || c.dotFloor.CompareAndSwap(cur, counter) {
			break
		}
	}
	c.dotMu.Lock()
	defer c.dotMu.Unlock()
	if counter < c.dotLease {
		return nil
	}
	lease := counter + dotLeaseStep
	if err := c.st.SetMeta(metaDotLease, binary.BigEndian.AppendUint64(nil, lease)); err != nil {
		return fmt.Errorf("replication: persist dot lease: %w", err)
	}
	c.dotLease = lease
	return nil
}

// Close stops background work (read repairs, replica sends still under way)
// and waits for it. It is idempotent.
func (c *Coordinator) Close() error {
	c.closeOnce.Do(func() {
		c.bgCancel()
		c.bg.Wait()
	})
	return nil
}

// Config returns the coordinator's configuration.
func (c *Coordinator) Config() Config { return c.cfg }

func (c *Coordinator) goBackground(fn func(ctx context.Context)) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn(c.bgCtx)
	}()
}

// replicaCtx bounds one replica call. Replica calls outlive the client's
// request on purpose: the client may be answered after W acks while the
// remaining replicas still get the write.
func (c *Coordinator) replicaCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.bgCtx, c.cfg.RequestTimeout)
}

func (c *Coordinator) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// call sends req to node, handling it in-process when node is this one.
func (c *Coordinator) call(ctx context.Context, node string, req wire.Request) (wire.Response, error) {
	if node == c.cfg.ID {
		return c.HandleRequest(ctx, req)
	}
	addr, b, err := c.encodeCall(node, &req)
	if err != nil {
		return wire.Response{}, err
	}
	out, err := c.tr.Call(ctx, addr, b)
	return c.answer(&req, out, err)
}

// goCall is call without the wait: done gets the answer (on a transport
// goroutine; it must not block). A call to this node runs before goCall
// returns.
func (c *Coordinator) goCall(ctx context.Context, node string, req wire.Request, done func(wire.Response, error)) {
	if node == c.cfg.ID {
		done(c.HandleRequest(ctx, req))
		return
	}
	addr, b, err := c.encodeCall(node, &req)
	if err != nil {
		done(wire.Response{}, err)
		return
	}
	c.tr.Go(ctx, addr, b, func(out []byte, err error) { done(c.answer(&req, out, err)) })
}

// encodeCall stamps and encodes req for node and looks up its address.
func (c *Coordinator) encodeCall(node string, req *wire.Request) (string, []byte, error) {
	addr, ok := c.cl.Addr(node)
	if !ok {
		return "", nil, fmt.Errorf("%w: no address known for %s", transport.ErrUnreachable, node)
	}
	req.From = c.cfg.ID
	if timed(req.Op) && req.SentAt == 0 {
		req.SentAt = c.cfg.Now().UnixNano()
	}
	b, err := wire.Encode(req)
	return addr, b, err
}

func timed(op wire.Op) bool {
	return op == wire.OpRead || op == wire.OpWrite || op == wire.OpStrongWrite || op == wire.OpWriteBatch
}

// answer decodes the answer to req and feeds its timing to the latency
// model.
func (c *Coordinator) answer(req *wire.Request, out []byte, err error) (wire.Response, error) {
	if err != nil {
		return wire.Response{}, err
	}
	resp, err := wire.DecodeResponse(out)
	if err == nil && timed(req.Op) && resp.SentAt != 0 {
		back := time.Duration(c.cfg.Now().UnixNano() - resp.SentAt)
		switch req.Op {
		case wire.OpRead:
			c.Latency.Observe(predict.S, back)
		case wire.OpWriteBatch:
			// One acknowledgement per write in the batch, as if each had
			// gone alone, so the model weighs writes, not messages.
			for range req.Items {
				c.Latency.Observe(predict.A, back)
			}
		default:
			c.Latency.Observe(predict.A, back)
		}
	}
	return resp, err
}

type placement struct {
	ring      *ring.Ring
	partition int
	primaries []string
	pref      []string
}

func (c *Coordinator) place(key []byte) placement {
	r := c.cl.Ring()
	p := r.PartitionOf(key)
	return placement{ring: r, partition: p, primaries: r.Primaries(p), pref: r.PreferenceList(p)}
}

func (c *Coordinator) isPrimary(pl placement) bool { return slices.Contains(pl.primaries, c.cfg.ID) }

type reply struct {
	node     string
	fallback bool
	resp     wire.Response
	err      error
}

// Get reads key at the given consistency.
func (c *Coordinator) Get(ctx context.Context, key []byte, cons Consistency) (Result, error) {
	pl := c.place(key)
	if err := cons.Validate(pl.ring.Replicas()); err != nil {
		return Result{}, err
	}
	if cons.Level == Strong {
		return c.strongRead(ctx, key, pl)
	}
	need := cons.Needed(len(pl.primaries))
	if res, err := c.reachable(pl, need, "read"); err != nil {
		return res, err
	}
	return c.read(ctx, key, pl, need)
}

// reachable refuses, before anything is sent or written, a request whose
// replica count no answer can meet: a numeric r or w above the replicas a
// key has, which only happens while the cluster has fewer members than N
// (every member then holds every key, and no fallback is left to count).
// Levels by name scale with the replicas there are (all is 2 of 2).
func (c *Coordinator) reachable(pl placement, need int, op string) (Result, error) {
	if need <= len(pl.primaries) {
		return Result{}, nil
	}
	rc := Receipt{Replicas: len(pl.primaries)}
	return Result{Receipt: rc}, c.failed(&QuorumError{Op: op, Needed: need, Replicas: len(pl.primaries), N: pl.ring.Replicas()}, rc)
}

func objectOf(r wire.Response) vclock.Object {
	if r.Object == nil {
		return vclock.Object{}
	}
	return *r.Object
}

// failFastGrace is how long a request that can no longer reach its quorum
// waits for replies already in flight, to report an accurate count.
const failFastGrace = 20 * time.Millisecond

// outcome is one replica's answer as gather sees it: which node, and
// whether it failed.
type outcome interface {
	peer() string
	failure() error
}

func (r reply) peer() string      { return r.node }
func (r reply) failure() error    { return r.err }
func (a writeAck) peer() string   { return a.node }
func (a writeAck) failure() error { return a.err }

// gather waits on ch until need successful replies arrived, until need can
// no longer be reached, until ctx ends, or until expired fires (nil: never).
func gather[R outcome](ctx context.Context, ch <-chan R, total, need int, op string, expired <-chan time.Time) ([]R, map[string]error, error) {
	var ok []R
	causes := map[string]error{}
	failed := 0
	for len(ok) < need {
		if total-failed < need {
			// The quorum is out of reach: answer now, but first collect
			// the replies already on their way (briefly), so the error
			// reports how many replicas really answered.
			waitInFlight(ctx, ch, total-failed-len(ok), &ok, causes)
			return ok, causes, &QuorumError{Op: op, Needed: need, Acked: len(ok), Causes: causes}
		}
		select {
		case r := <-ch:
			if err := r.failure(); err != nil {
				failed++
				causes[r.peer()] = err
				continue
			}
			ok = append(ok, r)
		case <-ctx.Done():
			return ok, causes, &QuorumError{Op: op, Needed: need, Acked: len(ok), Timeout: true, Causes: causes}
		case <-expired:
			return ok, causes, &QuorumError{Op: op, Needed: need, Acked: len(ok), Timeout: true, Causes: causes}
		}
	}
	return ok, causes, nil
}

func (c *Coordinator) failed(err error, rc Receipt) error {
	var qe *QuorumError
	if errors.As(err, &qe) {
		qe.Receipt = rc
		if qe.Timeout {
			c.Stats.Timeouts.Add(1)
		} else {
			c.Stats.QuorumFailures.Add(1)
		}
	}
	return err
}

func (c *Coordinator) read(ctx context.Context, key []byte, pl placement, need int) (Result, error) {
	if c.cfg.DisableReadCoalescing || need < 2 {
		return c.readReplicas(ctx, key, pl, need)
	}
	return c.grouped(ctx, &c.reads, &c.Stats.CoalescedReads, key, need, len(pl.primaries), "read", nil, func(ctx context.Context, _ any) (Result, error) {
		return c.readReplicas(ctx, key, pl, need)
	})
}

// grouped runs op through g (coalesce.go) for the requests of key at need
// and returns this request's share of the result; shared counts the
// requests answered by a call another request made. The call may answer
// other requests too, so this request's cancellation does not end it. Run
// inline it keeps the request's deadline; run for the requests that queued
// behind another call, it starts later and gets a request timeout of its
// own. Every request still waits only as long as its own context lets it.
func (c *Coordinator) grouped(ctx context.Context, g *callGroups, shared *atomic.Int64, key []byte, need, replicas int, name string, arg any, op func(context.Context, any) (Result, error)) (Result, error) {
	run := func(inline bool, arg any) (Result, error) {
		rctx := context.WithoutCancel(ctx)
		var cancel context.CancelFunc
		if dl, ok := ctx.Deadline(); ok && inline {
			rctx, cancel = context.WithDeadline(rctx, dl)
		} else {
			rctx, cancel = context.WithTimeout(rctx, c.cfg.RequestTimeout)
		}
		defer cancel()
		return op(rctx, arg)
	}
	res, err, wasShared := g.do(ctx, groupKey{key: string(key), need: need}, arg, run)
	if !wasShared {
		return res, err
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// This request's context ended while it waited.
		rc := Receipt{Replicas: replicas}
		return Result{Receipt: rc}, c.failed(&QuorumError{Op: name, Needed: need, Timeout: true}, rc)
	}
	shared.Add(1)
	if err != nil {
		return Result{Receipt: res.Receipt}, err
	}
	return shareResult(res), nil
}

// readReplicas reads key from need of its replicas and merges what they hold.
func (c *Coordinator) readReplicas(ctx context.Context, key []byte, pl placement, need int) (Result, error) {
	ctx, cancel := c.requestCtx(ctx)
	defer cancel()
	rc := Receipt{Replicas: len(pl.primaries)}
	if len(pl.primaries) == 0 {
		return Result{Receipt: rc}, c.failed(&QuorumError{Op: "read", Needed: need}, rc)
	}
	f := c.newReadFan(ctx, key, pl, false)
	ok, err := f.gather(ctx, need, "read")
	rc.Replicas, rc.Acks = f.sent, len(ok)
	if err != nil {
		return Result{Receipt: rc}, c.failed(err, rc)
	}
	merged := vclock.Object{}
	for _, r := range ok {
		merged = vclock.Merge(merged, objectOf(r.resp))
	}
	if !c.cfg.DisableReadRepair {
		for _, r := range ok {
			if !objectOf(r.resp).Descends(merged) {
				rc.ReadRepair++
			}
		}
		c.repairInBackground(key, pl, f.ch, f.sent, ok, merged)
	}
	return Result{Object: merged, Context: merged.Clock, Receipt: rc}, nil
}

// repairInBackground waits for the replicas that had not answered yet, then
// sends the merged object to every primary that holds less than it.
func (c *Coordinator) repairInBackground(key []byte, pl placement, ch <-chan reply, total int, got []reply, merged vclock.Object) {
	if len(got) == total {
		// Every replica asked has answered: repair now, in the background
		// only if one of them lacks something (the common case, replicas
		// that agree, costs no goroutine).
		stale := false
		for _, r := range got {
			if !objectOf(r.resp).Descends(merged) {
				stale = true
				break
			}
		}
		if !stale {
			return
		}
	}
	c.goBackground(func(bg context.Context) {
		all := slices.Clone(got)
		wait, cancel := c.replicaCtx()
		defer cancel()
		for len(all) < total {
			select {
			case r := <-ch:
				all = append(all, r)
			case <-wait.Done():
				total = len(all)
			}
		}
		for _, r := range all {
			if r.err == nil {
				merged = vclock.Merge(merged, objectOf(r.resp))
			}
		}
		if merged.IsEmpty() {
			return
		}
		for _, r := range all {
			if r.err != nil || objectOf(r.resp).Descends(merged) {
				continue
			}
			c.Stats.ReadRepairs.Add(1)
			rctx, cancel := c.replicaCtx()
			_, err := c.call(rctx, r.node, wire.Request{Op: wire.OpWrite, Partition: pl.partition, Key: key, Object: &merged})
			cancel()
			if err != nil {
				c.log.Debug("read repair failed", "peer", r.node, "key", string(key), "err", err)
			}
		}
	})
}

// Put writes (or, with w.Delete, deletes) key.
func (c *Coordinator) Put(ctx context.Context, key []byte, w Write) (Result, error) {
	pl := c.place(key)
	if err := w.Consistency.Validate(pl.ring.Replicas()); err != nil {
		return Result{}, err
	}
	if w.Consistency.Level == Strong {
		return c.strongWrite(ctx, key, pl, w)
	}
	need := w.Consistency.Needed(len(pl.primaries))
	if res, err := c.reachable(pl, need, "write"); err != nil {
		return res, err
	}
	if c.isPrimary(pl) {
		if w.Overwrite && !w.Delete && !c.cfg.DisableWriteCombining {
			// Concurrent overwrites of one key combine: the requests that
			// queue while one is replicated are answered by one write of
			// the last value queued (coalesce.go, writes).
			return c.grouped(ctx, &c.writes, &c.Stats.CombinedWrites, key, need, len(pl.primaries), "write", w, func(ctx context.Context, arg any) (Result, error) {
				return c.coordinateWrite(ctx, key, pl, arg.(Write), need)
			})
		}
		return c.coordinateWrite(ctx, key, pl, w, need)
	}
	return c.forwardWrite(ctx, key, pl, w, need)
}

// forwardWrite hands a write to the first primary that is up.
func (c *Coordinator) forwardWrite(ctx context.Context, key []byte, pl placement, w Write, need int) (Result, error) {
	ctx, cancel := c.requestCtx(ctx)
	defer cancel()
	rc := Receipt{Replicas: len(pl.primaries)}
	order := make([]string, 0, len(pl.primaries))
	for _, n := range pl.primaries {
		if c.cl.Up(n) {
			order = append(order, n)
		}
	}
	for _, n := range pl.primaries {
		if !c.cl.Up(n) {
			order = append(order, n)
		}
	}
	causes := map[string]error{}
	for _, node := range order {
		dl, _ := ctx.Deadline()
		req := wire.Request{Op: wire.OpCoordinate, Partition: pl.partition, Key: key, Client: &wire.ClientOp{
			Delete: w.Delete, Value: w.Value, Context: w.Context, Overwrite: w.Overwrite, W: need, TimeoutMs: time.Until(dl).Milliseconds(),
		}}
		resp, err := c.call(ctx, node, req)
		if err != nil {
			if ctx.Err() != nil {
				return Result{Receipt: rc}, c.failed(&QuorumError{Op: "write", Needed: need, Timeout: true, Causes: causes}, rc)
			}
			causes[node] = err
			if !notRun(err) {
				// The write may have run there with its own dot; running it
				// again elsewhere would store the value twice, as siblings.
				return Result{Receipt: rc}, c.failed(&QuorumError{Op: "write", Needed: need, Unknown: true, Causes: causes}, rc)
			}
			continue
		}
		c.Stats.Forwarded.Add(1)
		cr := resp.Client
		if cr == nil {
			return Result{Receipt: rc}, fmt.Errorf("replication: %s answered a forwarded write without a result", node)
		}
		rc = Receipt{Replicas: cr.Replicas, Acks: cr.Acks, Fallbacks: cr.Fallbacks}
		switch cr.Code {
		case "":
			return Result{Object: cr.Object, Context: cr.Context, Receipt: rc}, nil
		case wire.CodeUnavailable, wire.CodeTimeout:
			return Result{Receipt: rc}, c.failed(&QuorumError{Op: "write", Needed: cr.Needed, Acked: cr.Acks, Timeout: cr.Code == wire.CodeTimeout,
				Causes: map[string]error{node: errors.New(cr.Message)}}, rc)
		case wire.CodeConflict:
			return Result{Receipt: rc}, fmt.Errorf("%w: %s", ErrTooManySiblings, cr.Message)
		case wire.CodeBadRequest:
			return Result{Receipt: rc}, fmt.Errorf("%w: %s", ErrBadRequest, cr.Message)
		default:
			return Result{Receipt: rc}, fmt.Errorf("replication: coordinator %s: %s", node, cr.Message)
		}
	}
	return Result{Receipt: rc}, c.failed(&QuorumError{Op: "write", Needed: need, Causes: causes}, rc)
}

// notRun reports whether a failed call to a write's coordinator certainly
// did not run the write: the request was never sent, or the node refused it
// with an error before coordinating (handleCoordinate reports every outcome
// of a write it ran in the response, never as an error).
func notRun(err error) bool {
	var re *transport.RemoteError
	return errors.Is(err, transport.ErrUnreachable) || errors.As(err, &re)
}

// coordinateWrite applies a write locally, as one of the key's primaries,
// and replicates the result.
func (c *Coordinator) coordinateWrite(ctx context.Context, key []byte, pl placement, w Write, need int) (Result, error) {
	total := len(pl.primaries)
	rc := Receipt{Replicas: total}
	var dot vclock.Dot
	vctx := w.Context
	// The local copy commits while the write travels to the other
	// replicas: with --sync always the local and remote fsyncs overlap
	// instead of running one after the other.
	obj, committed, err := c.st.UpdateStaged(pl.partition, key, func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
		if w.Overwrite {
			vctx = cur.Clock.Join(w.Context)
		}
		var next vclock.Object
		next, dot = cur.UpdateAbove(c.cfg.Actor, c.dotFloor.Load(), vctx, w.Value, w.Delete)
		if n := len(next.Siblings); n > c.cfg.MaxSiblings {
			return cur, false, fmt.Errorf("%w: key would have %d siblings, the limit is %d; read the key and write with its context to resolve them", ErrTooManySiblings, n, c.cfg.MaxSiblings)
		} else if n >= c.cfg.WarnSiblings {
			c.log.Warn("key has many siblings", "key", string(key), "siblings", n)
		}
		return next, true, nil
	})
	if err != nil {
		if errors.Is(err, ErrTooManySiblings) {
			return Result{Receipt: rc}, err
		}
		return Result{Receipt: rc}, c.failed(&QuorumError{Op: "write", Needed: need, Causes: map[string]error{c.cfg.ID: err}}, rc)
	}
	localFailed := func(err error, sent bool) (Result, error) {
		return Result{Receipt: rc}, c.failed(&QuorumError{Op: "write", Needed: need, Unknown: sent, Causes: map[string]error{c.cfg.ID: err}}, rc)
	}
	// The lease covers the new dot before any replica sees it.
	if err := c.raiseDotFloor(dot.Counter); err != nil {
		if cerr := committed(); cerr != nil {
			return localFailed(cerr, false)
		}
		return Result{Receipt: rc}, err
	}
	newCtx := vctx.With(dot)
	if need <= 1 && total == 1 {
		if err := committed(); err != nil {
			return localFailed(err, false)
		}
		rc.Acks = 1
		return Result{Object: obj, Context: newCtx, Receipt: rc}, nil
	}
	fan := c.newWriteFan(key, pl, obj)
	for _, node := range pl.primaries {
		if node != c.cfg.ID {
			fan.send(node)
		}
	}
	if err := committed(); err != nil {
		// The replicas may still take the write: its outcome is unknown.
		return localFailed(err, true)
	}
	acked, fallbacks, err := fan.wait(ctx, total-1, need-1)
	rc.Acks = 1 + acked
	rc.Fallbacks = fallbacks
	if err != nil {
		var qe *QuorumError
		if errors.As(err, &qe) {
			qe.Needed, qe.Acked = need, rc.Acks
		}
		return Result{Object: obj, Context: newCtx, Receipt: rc}, c.failed(err, rc)
	}
	return Result{Object: obj, Context: newCtx, Receipt: rc}, nil
}

// HandleRequest serves the replica side of the coordinator's protocol.
func (c *Coordinator) HandleRequest(ctx context.Context, req wire.Request) (wire.Response, error) {
	if req.SentAt == 0 {
		return c.handle(ctx, req)
	}
	// A timed replica message: record how long it took to get here (W or R)
	// and stamp the answer so the coordinator can time the way back. Each
	// write of a batch carries the time it was queued, so its delay includes
	// its wait in the pipe.
	now := c.cfg.Now().UnixNano()
	switch req.Op {
	case wire.OpRead:
		c.Latency.Observe(predict.R, time.Duration(now-req.SentAt))
	case wire.OpWriteBatch:
		for _, it := range req.Items {
			if it.SentAt != 0 {
				c.Latency.Observe(predict.W, time.Duration(now-it.SentAt))
			}
		}
	default:
		c.Latency.Observe(predict.W, time.Duration(now-req.SentAt))
	}
	resp, err := c.handle(ctx, req)
	resp.SentAt = c.cfg.Now().UnixNano()
	return resp, err
}

func (c *Coordinator) handle(ctx context.Context, req wire.Request) (wire.Response, error) {
	if req.Primary && !c.cl.Ring().IsPrimary(c.cfg.ID, req.Partition) {
		// Strong operations count primaries only. A node whose view of the
		// ring says otherwise must not answer for the partition: during an
		// ownership change the two views may disagree, and an answer from
		// the wrong replica set could break the majority intersection.
		return wire.Response{}, fmt.Errorf("%w: partition %d (%s)", ErrNotPrimary, req.Partition, c.cfg.ID)
	}
	switch req.Op {
	case wire.OpPing:
		return wire.Response{}, nil
	case wire.OpRead:
		obj, found, err := c.st.Get(req.Partition, req.Key)
		if err != nil {
			return wire.Response{}, err
		}
		if c.cfg.Fence != nil {
			folded, err := c.cfg.Fence.Fold(ctx, req.Partition, req.Key, obj)
			if err != nil {
				return wire.Response{}, err
			}
			found = found || !folded.IsEmpty()
			obj = folded
		}
		if !found {
			return wire.Response{}, nil
		}
		return wire.Response{Found: true, Object: &obj}, nil
	case wire.OpWrite:
		if req.Object == nil {
			return wire.Response{}, errors.New("write without an object")
		}
		if req.HintFor != "" && req.HintFor != c.cfg.ID {
			if _, err := c.st.AddHint(store.Hint{Target: req.HintFor, Partition: req.Partition, Key: req.Key, Object: *req.Object}, c.cfg.Now()); err != nil {
				return wire.Response{}, err
			}
			c.Stats.HintsStored.Add(1)
			return wire.Response{}, nil
		}
		_, _, err := c.st.Merge(req.Partition, req.Key, *req.Object)
		return wire.Response{}, err
	case wire.OpWriteBatch:
		items := make([]store.Item, len(req.Items))
		for i, it := range req.Items {
			items[i] = store.Item{Partition: it.Partition, Key: it.Key, Object: it.Object}
		}
		_, err := c.st.MergeMany(items)
		return wire.Response{}, err
	case wire.OpStrongWrite:
		if req.Strong == nil {
			return wire.Response{}, errors.New("strong write without a body")
		}
		_, err := c.st.Update(req.Partition, req.Key, func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
			next := cur.ApplyStrong(*req.Strong)
			return next, !next.Equal(cur), nil
		})
		return wire.Response{}, err
	case wire.OpCoordinate:
		return c.handleCoordinate(ctx, req)
	}
	return wire.Response{}, fmt.Errorf("replication: op %d is not served here", req.Op)
}

func (c *Coordinator) handleCoordinate(ctx context.Context, req wire.Request) (wire.Response, error) {
	op := req.Client
	if op == nil {
		return wire.Response{}, errors.New("coordinate without a client op")
	}
	if op.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(op.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	pl := c.place(req.Key)
	pl.partition = req.Partition
	res, err := c.coordinateWrite(ctx, req.Key, pl, Write{Value: op.Value, Delete: op.Delete, Context: op.Context, Overwrite: op.Overwrite}, op.W)
	cr := &wire.ClientResult{Object: res.Object, Context: res.Context, Replicas: res.Receipt.Replicas, Acks: res.Receipt.Acks, Fallbacks: res.Receipt.Fallbacks}
	if err != nil {
		cr.Message = err.Error()
		var qe *QuorumError
		switch {
		case errors.As(err, &qe):
			cr.Code, cr.Needed = wire.CodeUnavailable, qe.Needed
			if qe.Timeout || qe.Unknown {
				cr.Code = wire.CodeTimeout
			}
		case errors.Is(err, ErrTooManySiblings):
			cr.Code = wire.CodeConflict
		case errors.Is(err, ErrBadRequest):
			cr.Code = wire.CodeBadRequest
		default:
			cr.Code = wire.CodeInternal
		}
	}
	return wire.Response{Client: cr}, nil
}
