package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// Store is the local storage a transfer reads, purges and fills.
type Store interface {
	ScanFrom(partition int, from []byte, fn func(key []byte, obj vclock.Object) (bool, error)) error
	Merge(partition int, key []byte, obj vclock.Object) (vclock.Object, bool, error)
	Purge(partition int, key []byte, expectHash uint64) (bool, error)
	GetMeta(name string) ([]byte, bool, error)
	SetMeta(name string, value []byte) error
}

// Caller sends one request to a node.
type Caller interface {
	Call(ctx context.Context, node string, req wire.Request) (wire.Response, error)
}

// Cluster is what a transfer needs to know about membership.
type Cluster interface {
	Ring() *ring.Ring
	// Up reports whether the node can answer now.
	Up(id string) bool
	// Gone reports whether the node left or is no longer known at all.
	Gone(id string) bool
}

// Config configures a Service.
type Config struct {
	// ID is this node's id.
	ID string
	// Interval between scans for partitions to hand off. Default 1s.
	Interval time.Duration
	// BatchKeys and BatchBytes bound one handoff batch. Defaults 256 keys,
	// 1 MiB.
	BatchKeys  int
	BatchBytes int
	// KeysPerSec and BytesPerSec throttle handoff over all partitions, so
	// a move does not starve foreground requests. Defaults 20000 keys/s,
	// 32 MiB/s.
	KeysPerSec  int
	BytesPerSec int
	// Parallel is how many partitions are handed off at once. Default 4.
	Parallel int
	// Timeout bounds each transfer call. Default 5s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{Interval: time.Second, BatchKeys: 256, BatchBytes: 1 << 20, KeysPerSec: 20000, BytesPerSec: 32 << 20, Parallel: 4, Timeout: 5 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("transfer: node id is required"))
	}
	if c.Interval <= 0 || c.Timeout <= 0 {
		errs = append(errs, errors.New("transfer: interval and timeout must be positive"))
	}
	if c.BatchKeys < 1 || c.BatchBytes < 1 || c.KeysPerSec < 1 || c.BytesPerSec < 1 || c.Parallel < 1 {
		errs = append(errs, errors.New("transfer: batch sizes, rates and parallelism must be positive"))
	}
	return errors.Join(errs...)
}

// Progress describes one partition being handed off.
type Progress struct {
	Partition int
	To        []string
	Keys      int64
	Bytes     int64
	Remaining int64
	Started   time.Time
}

// Stats are counters a metrics layer can export.
type Stats struct {
	KeysSent   atomic.Int64
	BytesSent  atomic.Int64
	KeysPurged atomic.Int64
	Batches    atomic.Int64
	Failures   atomic.Int64
	Completed  atomic.Int64
	KeysMerged atomic.Int64
	FenceReads atomic.Int64
}

// Service runs handoff and the fence for one node.
type Service struct {
	cfg Config
	st  Store
	cl  Cluster
	rpc Caller
	log *slog.Logger

	// Stats counts what the service did.
	Stats Stats

	limiter *limiter

	// mu guards active.
	mu     sync.Mutex
	active map[int]*Progress

	// fenceMu guards the fence and the ring it was computed against.
	fenceMu   sync.Mutex
	fenceRing *ring.Ring
	fence     map[int][]string // partition -> old owners still to hand off
}

const (
	metaRing  = "transfer-ring"
	metaFence = "transfer-fence"
)

// New returns a service. It loads the persisted fence.
func New(cfg Config, st Store, cl Cluster, rpc Caller) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, st: st, cl: cl, rpc: rpc, log: log, active: map[int]*Progress{}, fence: map[int][]string{},
		limiter: newLimiter(cfg.KeysPerSec, cfg.BytesPerSec)}
	if b, ok, err := st.GetMeta(metaFence); err != nil {
		return nil, err
	} else if ok {
		if err := json.Unmarshal(b, &s.fence); err != nil {
			return nil, fmt.Errorf("transfer: corrupt fence: %w", err)
		}
	}
	return s, nil
}

// ringMembers is the persisted form of a ring's member set.
type ringMembers struct {
	Members    []ring.Member
	Partitions int
	Replicas   int
}

// syncFence brings the fence up to date with the current ring: partitions
// this node newly became a primary of get fenced on their previous
// primaries. It runs on the read path, so the common case (ring unchanged)
// is one pointer comparison under a lock.
func (s *Service) syncFence() {
	r := s.cl.Ring()
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if r == s.fenceRing {
		return
	}
	prior := s.priorRing(r)
	s.fenceRing = r
	if prior == nil || prior.Partitions() != r.Partitions() {
		return
	}
	changed := false
	for _, p := range r.PartitionsOf(s.cfg.ID) {
		if prior.IsPrimary(s.cfg.ID, p) {
			continue
		}
		for _, old := range prior.Primaries(p) {
			if !r.IsPrimary(old, p) && old != s.cfg.ID && !slices.Contains(s.fence[p], old) {
				s.fence[p] = append(s.fence[p], old)
				changed = true
			}
		}
	}
	if changed {
		s.persistFenceLocked()
	}
	rm := ringMembers{Members: r.Members(), Partitions: r.Partitions(), Replicas: r.Replicas()}
	if b, err := json.Marshal(rm); err == nil {
		if err := s.st.SetMeta(metaRing, b); err != nil {
			s.log.Warn("persist ring members", "err", err)
		}
	}
}

// priorRing is the ring this node last worked with: the persisted one, or,
// for a node that never saw a ring with others in it (a fresh join), the
// ring of the current members without this node.
func (s *Service) priorRing(cur *ring.Ring) *ring.Ring {
	if s.fenceRing != nil && len(s.fenceRing.Members()) > 1 {
		return s.fenceRing
	}
	if b, ok, err := s.st.GetMeta(metaRing); err == nil && ok {
		var rm ringMembers
		if json.Unmarshal(b, &rm) == nil && len(rm.Members) > 1 {
			if r, err := ring.New(rm.Members, rm.Partitions, rm.Replicas); err == nil {
				return r
			}
		}
	}
	if len(cur.Members()) <= 1 {
		return nil
	}
	var others []ring.Member
	for _, m := range cur.Members() {
		if m.ID != s.cfg.ID {
			others = append(others, m)
		}
	}
	r, err := ring.New(others, cur.Partitions(), cur.Replicas())
	if err != nil {
		return nil
	}
	return r
}

func (s *Service) persistFenceLocked() {
	b, _ := json.Marshal(s.fence)
	if err := s.st.SetMeta(metaFence, b); err != nil {
		s.log.Warn("persist fence", "err", err)
	}
}

// Fold merges into local what the old owners of partition still hold for
// key, while the partition is fenced (replication.Fence).
func (s *Service) Fold(ctx context.Context, partition int, key []byte, local vclock.Object) (vclock.Object, error) {
	s.syncFence()
	s.fenceMu.Lock()
	owners := slices.Clone(s.fence[partition])
	s.fenceMu.Unlock()
	if len(owners) == 0 {
		return local, nil
	}
	s.Stats.FenceReads.Add(1)
	for _, old := range owners {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		resp, err := s.rpc.Call(cctx, old, wire.Request{Op: wire.OpRead, Partition: partition, Key: key})
		cancel()
		if err != nil {
			if s.cl.Gone(old) {
				continue
			}
			return local, fmt.Errorf("transfer: partition %d is still arriving from %s, which did not answer: %w", partition, old, err)
		}
		if resp.Object != nil {
			local = vclock.Merge(local, *resp.Object)
		}
	}
	return local, nil
}

// Fenced returns the partitions still waiting for old owners, with them.
func (s *Service) Fenced() map[int][]string {
	s.syncFence()
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	out := make(map[int][]string, len(s.fence))
	for p, o := range s.fence {
		out[p] = slices.Clone(o)
	}
	return out
}

// HandleRequest serves OpTransfer (merge a batch) and OpHolds.
func (s *Service) HandleRequest(ctx context.Context, req wire.Request) (wire.Response, error) {
	switch req.Op {
	case wire.OpTransfer:
		// Only a primary takes a batch: the sender purges its copy once
		// every target has it, so a target that is not a primary (its view
		// is ahead of the sender's, or it is leaving) must refuse, or the
		// data would end up only on nodes that do not own it.
		if !s.cl.Ring().IsPrimary(s.cfg.ID, req.Partition) {
			return wire.Response{}, fmt.Errorf("transfer: %s is not a primary of partition %d in its view of the ring", s.cfg.ID, req.Partition)
		}
		for _, ko := range req.Objects {
			if _, _, err := s.st.Merge(req.Partition, ko.Key, ko.Object); err != nil {
				return wire.Response{}, err
			}
		}
		s.Stats.KeysMerged.Add(int64(len(req.Objects)))
		return wire.Response{Count: len(req.Objects)}, nil
	case wire.OpHolds:
		holds, err := s.holds(req.Partition)
		return wire.Response{Found: holds}, err
	}
	return wire.Response{}, fmt.Errorf("transfer: op %d is not served here", req.Op)
}

// holds reports whether this node has data of partition that it must still
// hand off: any key, while it is not a primary of the partition.
func (s *Service) holds(p int) (bool, error) {
	if s.cl.Ring().IsPrimary(s.cfg.ID, p) {
		return false, nil
	}
	return s.hasData(p)
}

func (s *Service) hasData(p int) (bool, error) {
	any := false
	err := s.st.ScanFrom(p, nil, func([]byte, vclock.Object) (bool, error) {
		any = true
		return false, nil
	})
	return any, err
}

// Run hands off data and lifts fences until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.syncFence()
		s.liftFences(ctx)
		s.handoffRound(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// liftFences asks each fenced old owner whether it still holds data.
func (s *Service) liftFences(ctx context.Context) {
	for p, owners := range s.Fenced() {
		for _, old := range owners {
			done := s.cl.Gone(old)
			if !done && s.cl.Up(old) {
				cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
				resp, err := s.rpc.Call(cctx, old, wire.Request{Op: wire.OpHolds, Partition: p})
				cancel()
				done = err == nil && !resp.Found
			}
			if done {
				s.fenceMu.Lock()
				s.fence[p] = slices.DeleteFunc(s.fence[p], func(o string) bool { return o == old })
				if len(s.fence[p]) == 0 {
					delete(s.fence, p)
				}
				s.persistFenceLocked()
				s.fenceMu.Unlock()
				s.log.Info("partition fully received", "partition", p, "from", old)
			}
		}
	}
}

// Pending lists the partitions this node holds but must hand off.
func (s *Service) Pending() ([]int, error) {
	r := s.cl.Ring()
	var out []int
	for p := 0; p < r.Partitions(); p++ {
		if r.IsPrimary(s.cfg.ID, p) {
			continue
		}
		has, err := s.hasData(p)
		if err != nil {
			return nil, err
		}
		if has {
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *Service) handoffRound(ctx context.Context) {
	pending, err := s.Pending()
	if err != nil {
		s.log.Warn("scan for handoff", "err", err)
		return
	}
	sem := make(chan struct{}, s.cfg.Parallel)
	var wg sync.WaitGroup
	for _, p := range pending {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.handOff(ctx, p); err != nil && ctx.Err() == nil {
				s.Stats.Failures.Add(1)
				s.log.Info("handoff paused", "partition", p, "err", err)
			}
		}()
	}
	wg.Wait()
}

// handOff streams partition p to its current primaries, purging each batch
// once every primary acknowledged it.
func (s *Service) handOff(ctx context.Context, p int) error {
	r := s.cl.Ring()
	if r.IsPrimary(s.cfg.ID, p) {
		// The ring changed since Pending: this node is a primary of p
		// again, and its data stays.
		return nil
	}
	targets := slices.Clone(r.Primaries(p))
	if len(targets) == 0 {
		return errors.New("no primaries")
	}
	for _, t := range targets {
		if !s.cl.Up(t) {
			return fmt.Errorf("primary %s is down", t)
		}
	}
	prog := &Progress{Partition: p, To: targets, Started: time.Now()}
	s.ScanCount(p, &prog.Remaining)
	s.mu.Lock()
	s.active[p] = prog
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, p)
		s.mu.Unlock()
	}()
	var cursor []byte
	for {
		batch, size, err := s.readBatch(p, cursor)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			s.Stats.Completed.Add(1)
			s.log.Info("partition handed off", "partition", p, "to", targets, "keys", prog.Keys)
			return nil
		}
		if err := s.limiter.wait(ctx, len(batch), size); err != nil {
			return err
		}
		req := wire.Request{Op: wire.OpTransfer, Partition: p, Objects: batch}
		if err := s.sendAll(ctx, targets, req); err != nil {
			return err
		}
		s.Stats.Batches.Add(1)
		s.Stats.KeysSent.Add(int64(len(batch)))
		s.Stats.BytesSent.Add(int64(size))
		if !s.cl.Ring().Equal(r) {
			// The targets were chosen from a ring that is gone. They hold
			// the batch, but this node may be a primary of p again, so it
			// keeps its copy; the next round starts over from the new ring.
			s.log.Debug("ring changed during handoff; not purging", "partition", p)
			return nil
		}
		for _, ko := range batch {
			purged, err := s.st.Purge(p, ko.Key, ko.Object.Hash())
			if err != nil {
				return err
			}
			if purged {
				s.Stats.KeysPurged.Add(1)
			}
		}
		s.mu.Lock()
		prog.Keys += int64(len(batch))
		prog.Bytes += int64(size)
		prog.Remaining = max(0, prog.Remaining-int64(len(batch)))
		s.mu.Unlock()
		// Keys not purged (written meanwhile) are after the cursor; the
		// next round picks them up.
		cursor = append(slices.Clip(batch[len(batch)-1].Key), 0)
	}
}

// ScanCount counts the keys of partition p into *n.
func (s *Service) ScanCount(p int, n *int64) {
	s.st.ScanFrom(p, nil, func([]byte, vclock.Object) (bool, error) {
		*n++
		return true, nil
	})
}

func (s *Service) readBatch(p int, from []byte) ([]wire.KeyObject, int, error) {
	var batch []wire.KeyObject
	size := 0
	err := s.st.ScanFrom(p, from, func(key []byte, obj vclock.Object) (bool, error) {
		batch = append(batch, wire.KeyObject{Key: append([]byte(nil), key...), Object: obj})
		for _, sb := range obj.Siblings {
			size += len(sb.Value)
		}
		size += len(key) + 32*len(obj.Clock)
		return len(batch) < s.cfg.BatchKeys && size < s.cfg.BatchBytes, nil
	})
	return batch, size, err
}

func (s *Service) sendAll(ctx context.Context, targets []string, req wire.Request) error {
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			defer cancel()
			_, errs[i] = s.rpc.Call(cctx, t, req)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", t, errs[i])
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Active returns the handoffs in progress, by partition.
func (s *Service) Active() []Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Progress, 0, len(s.active))
	for _, p := range s.active {
		cp := *p
		cp.To = slices.Clone(p.To)
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}
