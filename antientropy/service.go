package antientropy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// ErrNotReady: the node's trees are still being rebuilt after a start, so it
// neither answers tree requests nor starts exchanges. A peer that gets it
// skips the partition this round.
var ErrNotReady = errors.New("antientropy: trees are still being built")

// Store is the local storage the Service reads, repairs and purges;
// *store.Store implements it.
type Store interface {
	Get(partition int, key []byte) (vclock.Object, bool, error)
	Merge(partition int, key []byte, obj vclock.Object) (vclock.Object, bool, error)
	Purge(partition int, key []byte, expectHash uint64) (bool, error)
	ScanHashes(partition int, from []byte, keep func(key []byte) bool, fn func(key []byte, hash uint64) (bool, error)) error
	SnapshotHashes(begin func(), fn func(partition int, key []byte, hash uint64) error) error
	Tombstones(partition int, fn func(key []byte, obj vclock.Object, mark store.TombstoneMark, marked bool) (store.TombstoneMark, bool, bool, error)) error
}

// RingSource gives the current ring (never nil). Membership publishes a new
// ring on every change; the Service reads it afresh for every round and
// every request.
type RingSource interface {
	Ring() *ring.Ring
}

// Transport carries one encoded wire.Request to the node named peer and
// returns its encoded wire.Response. The Service encodes and decodes itself,
// so it can count the bytes it moves.
type Transport interface {
	Call(ctx context.Context, peer string, req []byte) ([]byte, error)
}

// Config configures a Service. New copies it; zero fields are not defaulted,
// start from DefaultConfig.
type Config struct {
	// ID is this node's id in the ring. Required.
	ID string
	// Partitions is the ring size: the Service keeps one tree per
	// partition. Required.
	Partitions int
	// Shape is the tree shape, cluster-wide. Default DefaultShape().
	Shape Shape
	// Interval is the pause before the first round and between the end of
	// one round and the start of the next (jittered by ±10% so nodes drift
	// apart). Default 1m.
	Interval time.Duration
	// Disabled keeps the trees current and answers peers, but never starts
	// an exchange or a tombstone sweep (a negative control for the
	// convergence checks; never in production).
	Disabled bool
	// Parallel is how many partitions are exchanged at once. An exchange is
	// a chain of round trips, so more hides more latency and finishes a
	// round sooner; the work itself stays bounded by KeysPerSec and
	// BytesPerSec. Default 4.
	Parallel int
	// KeysPerSec bounds the objects this node moves (fetched plus pushed)
	// per second, over all exchanges. Default 2000: a node that missed
	// 300,000 writes is refilled by its two peers and its own pulls (6,000
	// objects/s together) in about a minute, while repair takes a few
	// percent of a 2-core machine. 0 means unlimited.
	KeysPerSec int
	// BytesPerSec bounds the bytes of this node's exchanges (requests sent
	// and answers received) per second. Default 8 MiB. 0 means unlimited.
	BytesPerSec int64
	// RequestsPerSec bounds the requests this node's exchanges send per
	// second. Every request costs both sides a fixed amount of CPU whatever
	// it carries, and a round over many slightly different partitions is
	// mostly small requests (six per differing partition and peer), which
	// the key and byte budgets hardly see. Default 500: a round over 2,048
	// identical partition replicas (1024 partitions, two peers) takes about
	// 4 s. 0 means unlimited.
	RequestsPerSec int
	// BatchKeys is the most keys per fetch or merge request. Smaller
	// batches spread repair writes more evenly between client writes.
	// Default 64.
	BatchKeys int
	// BatchBytes bounds the objects per fetch answer or merge request, so
	// large values do not make one giant message. Default 512 KiB.
	BatchBytes int
	// SegmentPageKeys is the most (key, hash) pairs per segment listing;
	// a wiped replica's whole partition arrives in pages of this size.
	// Default 4096.
	SegmentPageKeys int
	// RequestTimeout bounds each request of an exchange. Default 10s.
	RequestTimeout time.Duration
	// TombstoneGrace is how long a tombstone is kept after this node first
	// saw it on every primary of its partition, before it is purged. It must
	// be longer than the hint window: a hint replayed after the purge would
	// bring the deleted value back. Default 24h.
	TombstoneGrace time.Duration
	// SweepEvery runs the tombstone sweep (one scan of the held partitions,
	// confirming and purging tombstones) after every this many rounds.
	// Default 10: every ten minutes at the default interval.
	SweepEvery int
	// ScanKeysPerSec paces the tombstone sweep's scan. Default 50,000.
	// 0 means unlimited.
	ScanKeysPerSec int
	// Seed seeds the order in which partitions are visited and the pause
	// jitter, so a test can replay a run.
	Seed int64
	// Now is the clock for grace periods and status. Default time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults described on Config (ID and Partitions
// must still be set).
func DefaultConfig() Config {
	return Config{
		Shape:           DefaultShape(),
		Interval:        time.Minute,
		Parallel:        4,
		KeysPerSec:      2000,
		BytesPerSec:     8 << 20,
		RequestsPerSec:  500,
		BatchKeys:       64,
		BatchBytes:      512 << 10,
		SegmentPageKeys: 4096,
		RequestTimeout:  10 * time.Second,
		TombstoneGrace:  24 * time.Hour,
		SweepEvery:      10,
		ScanKeysPerSec:  50000,
		Now:             time.Now,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("antientropy: "+format, a...)) }
	if c.ID == "" {
		add("a node id is required")
	}
	if c.Partitions < 1 || c.Partitions > 1<<16 {
		add("partitions %d: must be between 1 and 65536", c.Partitions)
	}
	if err := c.Shape.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Interval <= 0 {
		add("interval %s: must be positive", c.Interval)
	}
	if c.Parallel < 1 {
		add("parallel %d: must be at least 1", c.Parallel)
	}
	if c.KeysPerSec < 0 {
		add("keys per second %d: must not be negative", c.KeysPerSec)
	}
	if c.BytesPerSec < 0 {
		add("bytes per second %d: must not be negative", c.BytesPerSec)
	}
	if c.RequestsPerSec < 0 {
		add("requests per second %d: must not be negative", c.RequestsPerSec)
	}
	if c.BatchKeys < 1 {
		add("batch keys %d: must be at least 1", c.BatchKeys)
	}
	if c.BatchBytes < 1 {
		add("batch bytes %d: must be at least 1", c.BatchBytes)
	}
	if c.SegmentPageKeys < 1 {
		add("segment page keys %d: must be at least 1", c.SegmentPageKeys)
	}
	if c.RequestTimeout <= 0 {
		add("request timeout %s: must be positive", c.RequestTimeout)
	}
	if c.TombstoneGrace <= 0 {
		add("tombstone grace %s: must be positive", c.TombstoneGrace)
	}
	if c.SweepEvery < 1 {
		add("sweep every %d rounds: must be at least 1", c.SweepEvery)
	}
	if c.ScanKeysPerSec < 0 {
		add("scan keys per second %d: must not be negative", c.ScanKeysPerSec)
	}
	if c.Now == nil {
		add("a clock is required")
	}
	return errors.Join(errs...)
}

// Stats are counters a metrics layer can export. All only grow.
type Stats struct {
	// Rounds is the number of finished rounds.
	Rounds atomic.Int64
	// Exchanges counts exchanges (one partition with one peer) whose
	// comparison finished; ExchangeErrors those that failed (peer not
	// ready, timeout, ...) and were left to the next round; PeersSkipped
	// the peers not compared because membership said they were down.
	Exchanges      atomic.Int64
	ExchangeErrors atomic.Int64
	PeersSkipped   atomic.Int64
	// HashesCompared and KeysCompared are the tree nodes and listed
	// (key, hash) pairs compared; KeysDiffering the keys found different.
	HashesCompared atomic.Int64
	KeysCompared   atomic.Int64
	KeysDiffering  atomic.Int64
	// KeysFetched and KeysPushed are the objects this node pulled from and
	// sent to its peers.
	KeysFetched atomic.Int64
	KeysPushed  atomic.Int64
	// KeysRepaired counts local objects that anti-entropy changed (pulled
	// here, or pushed here by a peer).
	KeysRepaired atomic.Int64
	// Requests counts the requests this node's exchanges sent.
	Requests atomic.Int64
	// BytesSent is every byte this node put on the wire for anti-entropy:
	// its requests and its answers to peers. BytesReceived is the answers
	// it received to its own requests.
	BytesSent     atomic.Int64
	BytesReceived atomic.Int64
	// TombstonesConfirmed counts tombstones first seen on every primary;
	// TombstonesPurged those removed after the grace period;
	// TombstonesRefused purged tombstones offered again by a peer that had
	// not purged yet, and dropped.
	TombstonesConfirmed atomic.Int64
	TombstonesPurged    atomic.Int64
	TombstonesRefused   atomic.Int64
}

// Service is a node's anti-entropy: its Merkle trees, kept current by
// OnChange; the server side of exchanges (HandleRequest); and the rounds that
// compare each held partition with its other primaries and repair both sides
// (Run).
type Service struct {
	cfg   Config
	st    Store
	rings RingSource
	tr    Transport
	up    func(id string) bool
	log   *slog.Logger

	// Stats counts what the service did.
	Stats Stats

	trees []*Tree

	// applying is set when the rebuild's snapshot opens: from then on
	// OnChange updates the trees. ready is set when the rebuild finished.
	applying atomic.Bool
	ready    atomic.Bool

	keys  *limiter
	bytes *limiter
	reqs  *limiter
	scan  *limiter

	// rngMu guards rng.
	rngMu sync.Mutex
	rng   *rand.Rand

	// mu guards the fields below.
	mu        sync.Mutex
	progress  map[int]*partProgress
	evidence  map[peerKey]*evidence
	memo      map[int]map[string]*memoEntry
	memoSize  int
	roundFrom time.Time // start of the last finished round
	roundEnd  time.Time // end of the last finished round
}

type peerKey struct {
	p    int
	peer string
}

// partProgress is what status reports about one partition.
type partProgress struct {
	lastExchange time.Time // last exchange with any peer that compared
	lastFull     time.Time // last visit that compared with every primary
	repaired     int64
}

// New returns a Service. Its trees start empty and not ready: call Run
// (which rebuilds them with one scan of the store first) or Rebuild. Route
// every store change to OnChange from before Rebuild starts.
func New(cfg Config, st Store, rings RingSource, tr Transport, up func(id string) bool) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || rings == nil || tr == nil || up == nil {
		return nil, errors.New("antientropy: store, ring source, transport and up are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, st: st, rings: rings, tr: tr, up: up,
		log:      log.With("component", "antientropy"),
		trees:    make([]*Tree, cfg.Partitions),
		keys:     newLimiter(float64(cfg.KeysPerSec), cfg.Now),
		bytes:    newLimiter(float64(cfg.BytesPerSec), cfg.Now),
		reqs:     newLimiter(float64(cfg.RequestsPerSec), cfg.Now),
		scan:     newLimiter(float64(cfg.ScanKeysPerSec), cfg.Now),
		rng:      rand.New(rand.NewSource(cfg.Seed)),
		progress: map[int]*partProgress{},
		evidence: map[peerKey]*evidence{},
		memo:     map[int]map[string]*memoEntry{},
	}
	for p := range s.trees {
		t, err := NewTreeWithShape(cfg.Shape)
		if err != nil {
			return nil, err
		}
		s.trees[p] = t
	}
	return s, nil
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Ready reports whether the trees are built, so the node takes part in
// exchanges.
func (s *Service) Ready() bool { return s.ready.Load() }

// Root returns the root hash of partition p's tree and whether the trees are
// built. Two replicas of p hold the same versions exactly when their roots
// match (up to 64-bit collisions).
func (s *Service) Root(p int) (uint64, bool) {
	if p < 0 || p >= len(s.trees) {
		return 0, false
	}
	return s.trees[p].Root(), s.Ready()
}

// Keys returns the number of keys in partition p's tree.
func (s *Service) Keys(p int) int {
	if p < 0 || p >= len(s.trees) {
		return 0
	}
	return s.trees[p].Len()
}

// Run rebuilds the trees, then runs rounds until ctx ends: each round
// exchanges every partition this node is a primary of with each other
// primary that is up, and every SweepEvery rounds the tombstone sweep
// confirms and purges tombstones. It returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	for {
		err := s.Rebuild(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("tree rebuild failed; retrying", "err", err)
		if !s.pause(ctx, s.cfg.Interval) {
			return nil
		}
	}
	if s.cfg.Disabled {
		<-ctx.Done()
		return nil
	}
	// The first round, too, waits an interval: `--anti-entropy-interval 1h`
	// then means no exchange for an hour, restarts included, and nodes
	// started together drift apart.
	for round := 1; ; round++ {
		if !s.pause(ctx, s.jitter(s.cfg.Interval)) {
			return nil
		}
		s.Round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if round%s.cfg.SweepEvery == 0 {
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("tombstone sweep failed", "err", err)
			}
		}
	}
}

// pause waits d, reporting false when ctx ended first.
func (s *Service) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Service) jitter(d time.Duration) time.Duration {
	s.rngMu.Lock()
	f := 0.9 + 0.2*s.rng.Float64()
	s.rngMu.Unlock()
	return time.Duration(float64(d) * f)
}

// Round runs one round: every partition this node is a primary of, Parallel
// at a time in a shuffled order, is exchanged with each other primary that
// is up. Errors are counted and logged; the next round retries.
//
// Both primaries of a pair start exchanges with each other, so a pair is
// compared twice per round. The second comparison usually finds equal
// roots (one exchange repairs both sides), costing one hash each way; in
// return each node holds first-hand evidence of what its peers store, which
// is what its tombstone purges rest on (see Sweep).
func (s *Service) Round(ctx context.Context) {
	start := s.cfg.Now()
	parts := s.rings.Ring().PartitionsOf(s.cfg.ID)
	s.rngMu.Lock()
	s.rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	s.rngMu.Unlock()

	work := make(chan int)
	var wg sync.WaitGroup
	for range min(s.cfg.Parallel, max(len(parts), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := s.ExchangePartition(ctx, p); err != nil && ctx.Err() == nil {
					s.log.Debug("exchange incomplete", "partition", p, "err", err)
				}
			}
		}()
	}
feed:
	for _, p := range parts {
		select {
		case work <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.Stats.Rounds.Add(1)
	s.mu.Lock()
	s.roundFrom, s.roundEnd = start, s.cfg.Now()
	s.mu.Unlock()
}

// PartitionStatus is anti-entropy's progress on one partition.
type PartitionStatus struct {
	Partition int
	// LastExchange is when the partition was last compared with a peer.
	LastExchange time.Time
	// LastFull is when it was last compared with every other primary in
	// one visit.
	LastFull time.Time
	// KeysRepaired counts objects changed here by this partition's exchanges.
	KeysRepaired int64
}

// Partitions returns the progress of every partition this node has
// exchanged, in partition order.
func (s *Service) Partitions() []PartitionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PartitionStatus, 0, len(s.progress))
	for p := range s.cfg.Partitions {
		if pp, ok := s.progress[p]; ok {
			out = append(out, PartitionStatus{Partition: p, LastExchange: pp.lastExchange, LastFull: pp.lastFull, KeysRepaired: pp.repaired})
		}
	}
	return out
}

// Status summarises anti-entropy for /v1/status. PartitionsCovered counts
// the held partitions compared with every other primary during the last
// finished round.
func (s *Service) Status() wire.AntiEntropyStatus {
	r := s.rings.Ring()
	held := r.PartitionsOf(s.cfg.ID)
	st := wire.AntiEntropyStatus{
		Interval:       s.cfg.Interval.String(),
		Rounds:         s.Stats.Rounds.Load(),
		Exchanges:      s.Stats.Exchanges.Load(),
		KeysCompared:   s.Stats.KeysCompared.Load(),
		KeysRepaired:   s.Stats.KeysRepaired.Load(),
		BytesSent:      s.Stats.BytesSent.Load(),
		PartitionsHeld: len(held),
	}
	if s.cfg.Disabled {
		st.Interval = "disabled"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.roundEnd.IsZero() {
		st.LastRoundFinished = s.roundEnd.UTC().Format(time.RFC3339)
		for _, p := range held {
			if pp, ok := s.progress[p]; ok && !pp.lastFull.Before(s.roundFrom) {
				st.PartitionsCovered++
			}
		}
	}
	return st
}

// TotalKeys is how many keys this node stores (tombstones included), as its
// trees count them: every partition, held or still being handed off.
func (s *Service) TotalKeys() int64 {
	var n int64
	for _, t := range s.trees {
		n += int64(t.Len())
	}
	return n
}

// held reports whether this node is a primary of p in the current ring.
func (s *Service) held(p int) bool {
	r := s.rings.Ring()
	return p >= 0 && p < r.Partitions() && p < len(s.trees) && r.IsPrimary(s.cfg.ID, p)
}
