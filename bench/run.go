package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// loadRetries is how often the load phase retries a failed insert.
const loadRetries = 3

// Run loads the cluster and runs cfg.Workload at each of cfg.Levels in
// turn. When ctx is cancelled (Ctrl-C) it stops early and returns what ran,
// with Result.Interrupted set and no error; errors are for runs that could
// not start (bad config, embedded cluster failed, nothing reachable).
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	wl := workloads[cfg.Workload]
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	res := Result{
		Workload:     wl.Name,
		Description:  wl.Description,
		Distribution: string(cfg.Distribution),
		Records:      cfg.Records,
		Concurrency:  cfg.Concurrency,
		ValueSize:    cfg.ValueSize,
		Seed:         seed,
		StartedAt:    time.Now().UTC().Truncate(time.Millisecond),
		Levels:       []LevelResult{},
		Endpoints:    cfg.Endpoints,
	}
	if cfg.Ops > 0 {
		res.OpsTarget = cfg.Ops
	} else {
		res.DurationS = cfg.Duration.Seconds()
	}
	if len(cfg.Endpoints) == 0 {
		logf(cfg.Log, "starting an embedded %d-node cluster", cfg.EmbeddedNodes)
		ec, err := StartEmbedded(ctx, cfg.EmbeddedNodes)
		if err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("interrupted while starting the embedded cluster: %w", err)
			}
			return res, err
		}
		defer ec.Close()
		res.Embedded = true
		res.Endpoints = ec.Endpoints()
		logf(cfg.Log, "embedded cluster up: %s (data in %s, removed afterwards)", strings.Join(res.Endpoints, " "), ec.Dir())
	}
	cl, err := dial(ctx, client.Config{Endpoints: res.Endpoints, Token: cfg.Token, TLS: cfg.TLS, Timeout: cfg.RequestTimeout})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	res.Endpoints = cl.Endpoints()

	r := newRunner(cfg, wl, cl, seed)
	load, err := r.load(ctx)
	res.Load = &load
	if err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, nil
	}
	for _, level := range cfg.Levels {
		if !sleepCtx(ctx, cfg.Settle) {
			break
		}
		lr := r.runLevel(ctx, level)
		res.Levels = append(res.Levels, lr)
		logf(cfg.Log, "%s: %d transactions in %.1fs (%.0f/s)%s", level, lr.Transactions, lr.ElapsedS, lr.OpsPerSec, levelNote(lr))
		if ctx.Err() != nil {
			break
		}
	}
	res.Interrupted = ctx.Err() != nil
	if cfg.Staleness != nil && !res.Interrupted {
		sc := *cfg.Staleness
		sc.Endpoints, sc.Token, sc.TLS = res.Endpoints, cfg.Token, cfg.TLS
		if len(sc.Levels) == 0 {
			sc.Levels = cfg.Levels
		}
		if sc.Progress == nil {
			sc.Progress, sc.ProgressBar = cfg.Progress, cfg.ProgressBar
		}
		if sc.Log == nil {
			sc.Log = cfg.Log
		}
		sr, err := RunStaleness(ctx, sc)
		if err != nil {
			logf(cfg.Log, "staleness measurement failed: %v", err)
		} else {
			res.Staleness = &sr
			res.Interrupted = sr.Interrupted
		}
	}
	return res, nil
}

// dialCheckTimeout bounds the status request dial sends to each endpoint.
const dialCheckTimeout = 5 * time.Second

// dial makes the bench's client and asks every endpoint for /v1/status
// before any load, so a wrong address, scheme or token fails at once with
// its reason instead of after a load phase of failed inserts.
func dial(ctx context.Context, cc client.Config) (*client.Client, error) {
	cl, err := client.New(cc)
	if err != nil {
		return nil, err
	}
	for i, ep := range cl.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, dialCheckTimeout)
		_, err := cl.At(i).Status(sctx)
		cancel()
		if err != nil {
			cl.Close()
			return nil, fmt.Errorf("endpoint %s does not answer as a quorumkv node: %w", ep, err)
		}
	}
	return cl, nil
}

func levelNote(lr LevelResult) string {
	var errs, stale int64
	for _, o := range lr.Ops {
		errs += o.Errors
	}
	if o, ok := lr.Ops[OpRead]; ok {
		stale = o.Stale
	}
	return fmt.Sprintf(", %d errors, %d stale reads", errs, stale)
}

func logf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, "bench: "+format+"\n", a...)
	}
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runner holds what the phases of one run share.
type runner struct {
	cfg     Config
	wl      Workload
	views   []*client.Client // one per endpoint
	tracker *Tracker
	inserts *insertCounter
	prefix  string
	origin  time.Time
	workers []*worker
}

func newRunner(cfg Config, wl Workload, cl *client.Client, seed int64) *runner {
	r := &runner{
		cfg:     cfg,
		wl:      wl,
		tracker: NewTracker(),
		inserts: newInsertCounter(uint64(cfg.Records)),
		// Keys are unique to the run, so that a cluster that ran the bench
		// before holds nothing that could become a sibling of this run's
		// values.
		prefix: "bench-" + strconv.FormatUint(uint64(time.Now().UnixNano()), 36) + "/user",
		origin: time.Now(),
	}
	for i := range cl.Endpoints() {
		r.views = append(r.views, cl.At(i))
	}
	makeChooser := chooserFactory(cfg.Distribution, uint64(cfg.Records))
	for i := 0; i < cfg.Concurrency; i++ {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		pad := make([]byte, cfg.ValueSize-seqBytes)
		for j := range pad {
			pad[j] = 'a' + byte(rng.IntN(26))
		}
		r.workers = append(r.workers, &worker{
			r: r, rng: rng, keys: makeChooser(), pad: pad,
			value: make([]byte, cfg.ValueSize), ops: newOpChooser(wl.Mix),
			rot: i % len(r.views),
		})
	}
	return r
}

// now is the tracker's clock: nanoseconds since the run began, monotonic.
func (r *runner) now() int64 { return int64(time.Since(r.origin)) }

func (r *runner) key(buf []byte, n uint64) []byte {
	return strconv.AppendUint(append(buf[:0], r.prefix...), n, 10)
}

// loadLevel is the level the load phase writes at: strong when the first
// level is strong (so a strong-only run reads only strong writes), quorum
// otherwise (so the data is on a majority before the first level).
func (r *runner) loadLevel() string {
	if r.cfg.Levels[0] == client.LevelStrong {
		return client.LevelStrong
	}
	return client.LevelQuorum
}

// load inserts records 0..Records-1.
func (r *runner) load(ctx context.Context) (LoadResult, error) {
	level := r.loadLevel()
	logf(r.cfg.Log, "loading %d records at %s", r.cfg.Records, level)
	var next atomic.Int64
	live := &liveCounters{}
	prog := startProgress(r.cfg.Progress, r.cfg.ProgressBar, r.cfg.ProgressEvery, "load", 0, int64(r.cfg.Records), live)
	start := time.Now()
	stats := make([]*levelStats, len(r.workers))
	var wg sync.WaitGroup
	for i, w := range r.workers {
		stats[i] = newLevelStats()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if n >= int64(r.cfg.Records) {
					return
				}
				for try := 0; try <= loadRetries; try++ {
					if w.write(ctx, stats[i], OpInsert, level, uint64(n), "", live) == nil || ctx.Err() != nil {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	prog.stop()
	merged := newLevelStats()
	for _, s := range stats {
		merged.merge(s)
	}
	ins := summarizeOp(merged.op(OpInsert), elapsed)
	lr := LoadResult{Consistency: level, Records: r.cfg.Records, ElapsedS: round3(elapsed.Seconds()), OpsPerSec: ins.OpsPerSec, Insert: ins}
	logf(r.cfg.Log, "loaded %d records in %.1fs (%.0f inserts/s, %d failed attempts)", ins.Count, elapsed.Seconds(), ins.OpsPerSec, ins.Errors)
	if ctx.Err() == nil && ins.Count == 0 {
		return lr, fmt.Errorf("load failed: no insert succeeded (%s)", errorsCell(ins))
	}
	return lr, nil
}

// runLevel runs the workload at level for Duration or Ops.
func (r *runner) runLevel(ctx context.Context, level string) LevelResult {
	lctx := ctx
	if r.cfg.Ops == 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, r.cfg.Duration)
		defer cancel()
	}
	var remaining atomic.Int64
	remaining.Store(r.cfg.Ops)
	live := &liveCounters{}
	prog := startProgress(r.cfg.Progress, r.cfg.ProgressBar, r.cfg.ProgressEvery, level, r.cfg.Duration, r.cfg.Ops, live)
	start := time.Now()
	stats := make([]*levelStats, len(r.workers))
	var wg sync.WaitGroup
	for i, w := range r.workers {
		stats[i] = newLevelStats()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				if r.cfg.Ops > 0 && remaining.Add(-1) < 0 {
					return
				}
				w.transaction(lctx, stats[i], level, start, live)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if r.cfg.Ops == 0 {
		elapsed = min(elapsed, r.cfg.Duration)
	}
	prog.stop()
	merged := newLevelStats()
	for _, s := range stats {
		merged.merge(s)
	}
	return summarizeLevel(level, merged, elapsed, ctx.Err() != nil)
}

// worker is one closed-loop client: one request in flight at a time. Its
// random source, key chooser and buffers are its own.
type worker struct {
	r     *runner
	rng   *rand.Rand
	keys  KeyChooser
	ops   opChooser
	pad   []byte
	value []byte
	kbuf  []byte
	rot   int
}

// view returns the client for the next endpoint: requests rotate over all
// of them.
func (w *worker) view() *client.Client {
	v := w.r.views[w.rot%len(w.r.views)]
	w.rot++
	return v
}

// records is how many records exist: those loaded, plus the inserts that
// completed (with every earlier one).
func (w *worker) records() uint64 {
	if _, inserts := w.r.wl.Mix[OpInsert]; inserts {
		return w.r.inserts.Limit()
	}
	return uint64(w.r.cfg.Records)
}

// chooseKey picks an existing record.
func (w *worker) chooseKey() uint64 {
	return w.keys.Next(w.rng, w.records())
}

// errAborted marks an operation cut short by the end of the phase; it is
// not counted.
var errAborted = errors.New("bench: operation aborted by the end of the phase")

// transaction runs one operation of the workload's mix.
func (w *worker) transaction(ctx context.Context, ls *levelStats, level string, start time.Time, live *liveCounters) {
	var err error
	switch op := w.ops.next(w.rng); op {
	case OpRead:
		_, err = w.read(ctx, ls, OpRead, level, w.chooseKey(), live)
	case OpUpdate:
		n := w.chooseKey()
		ctxStr := ""
		if level != client.LevelStrong {
			// An update overwrites: it sends the newest context the bench has
			// seen for the key, as a client that keeps contexts would, so
			// updates supersede rather than pile up siblings.
			ctxStr = w.r.tracker.Context(n)
		}
		err = w.write(ctx, ls, OpUpdate, level, n, ctxStr, nil)
	case OpInsert:
		n := w.r.inserts.Claim()
		err = w.write(ctx, ls, OpInsert, level, n, "", nil)
		w.r.inserts.Done(n)
	case OpReadModifyWrite:
		err = w.readModifyWrite(ctx, ls, level)
	case OpScan:
		err = w.scan(ctx, ls, level)
	}
	if errors.Is(err, errAborted) {
		return
	}
	if err != nil {
		live.errors.Add(1)
		return
	}
	live.ops.Add(1)
	sec := int(time.Since(start) / time.Second)
	if w.r.cfg.Ops == 0 {
		// An operation that completes just after the level's end belongs
		// to its last second, not to a bucket of its own.
		sec = min(sec, int((w.r.cfg.Duration-1)/time.Second))
	}
	ls.tick(sec)
}

// readResult is what a read saw, for a read-modify-write.
type readResult struct {
	context string
	stale   bool
}

// read reads record n at level and judges its staleness; the operation is
// recorded under op.
func (w *worker) read(ctx context.Context, ls *levelStats, op Op, level string, n uint64, live *liveCounters) (readResult, error) {
	tr := w.r.tracker
	w.kbuf = w.r.key(w.kbuf, n)
	snap := tr.BeginRead(n, w.r.now())
	t0 := time.Now()
	res, err := w.view().Get(ctx, w.kbuf, client.Options{Consistency: level})
	d := time.Since(t0)
	if ctx.Err() != nil {
		return readResult{}, errAborted
	}
	st := ls.op(op)
	if err != nil {
		st.errors[Classify(err)]++
		return readResult{}, err
	}
	st.record(d)
	seqs := make([]uint64, 0, len(res.Values))
	for _, v := range res.Values {
		s, _ := decodeSeq(v) // 0 (not ours) is never judged stale
		seqs = append(seqs, s)
	}
	if !res.Found {
		st.notFound++
	}
	stale := tr.Stale(n, snap, seqs)
	if stale {
		st.stale++
		if live != nil {
			live.stale.Add(1)
		}
	}
	if snap.Acked {
		b := ageBucket(float64(snap.Start-snap.LastAck) / 1e6)
		st.ages[b].reads++
		if stale {
			st.ages[b].stale++
		}
	}
	tr.SetContext(n, res.Context)
	return readResult{context: res.Context, stale: stale}, nil
}

// write writes a new value of record n at level with the given context;
// recorded under op.
func (w *worker) write(ctx context.Context, ls *levelStats, op Op, level string, n uint64, ctxStr string, live *liveCounters) error {
	tr := w.r.tracker
	w.kbuf = w.r.key(w.kbuf, n)
	seq := tr.BeginWrite(n, w.r.now())
	val := encodeValue(w.value, seq, w.pad)
	t0 := time.Now()
	res, err := w.view().Put(ctx, w.kbuf, val, client.Options{Consistency: level, Context: ctxStr})
	d := time.Since(t0)
	if ctx.Err() != nil {
		tr.FailWrite(n, seq) // outcome unknown
		return errAborted
	}
	st := ls.op(op)
	if err != nil {
		tr.FailWrite(n, seq)
		st.errors[Classify(err)]++
		if live != nil {
			live.errors.Add(1)
		}
		return err
	}
	tr.AckWrite(n, seq, w.r.now())
	tr.SetContext(n, res.Context)
	st.record(d)
	if live != nil {
		live.ops.Add(1)
	}
	return nil
}

// maxScanLength is the longest scan of workload E (YCSB's maxscanlength
// for it); lengths are uniform from 1 to it, as there.
const maxScanLength = 100

// scan reads up to maxScanLength records in record order, from a chosen
// one on: quorumkv hashes keys onto its ring, so it has no key order to
// scan, and a client that wants a range of records reads their keys. The
// reads go one after another, and the scan is recorded as one operation
// taking their total time (not judged for staleness). Records past the
// last that exists are not read, as a range scan stops at the end.
func (w *worker) scan(ctx context.Context, ls *levelStats, level string) error {
	first := w.chooseKey()
	last := min(first+1+uint64(w.rng.IntN(maxScanLength)), w.records())
	t0 := time.Now()
	for n := first; n < last; n++ {
		w.kbuf = w.r.key(w.kbuf, n)
		_, err := w.view().Get(ctx, w.kbuf, client.Options{Consistency: level})
		if ctx.Err() != nil {
			return errAborted
		}
		if err != nil {
			ls.op(OpScan).errors[Classify(err)]++
			return err
		}
	}
	ls.op(OpScan).record(time.Since(t0))
	return nil
}

// readModifyWrite reads a record and writes a new value with the read's
// context, so the write supersedes exactly what the read saw (workload F).
// The read and the write are recorded under read and update too.
func (w *worker) readModifyWrite(ctx context.Context, ls *levelStats, level string) error {
	n := w.chooseKey()
	t0 := time.Now()
	rr, err := w.read(ctx, ls, OpRead, level, n, nil)
	if err == nil {
		ctxStr := rr.context
		if level == client.LevelStrong {
			ctxStr = ""
		}
		err = w.write(ctx, ls, OpUpdate, level, n, ctxStr, nil)
	}
	if errors.Is(err, errAborted) {
		return err
	}
	st := ls.op(OpReadModifyWrite)
	if err != nil {
		st.errors[Classify(err)]++
		return err
	}
	st.record(time.Since(t0))
	if rr.stale {
		st.stale++
	}
	return nil
}
