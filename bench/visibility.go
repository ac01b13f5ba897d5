package bench

import (
	"context"
	"crypto/tls"
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

// StalenessConfig is one `quorumkv bench staleness` run: t-visibility, the
// chance that a read started t after a write was acknowledged sees it
// (Bailis et al., "Probabilistically Bounded Staleness"). Each trial
// overwrites a key through one node, waits t after the acknowledgement,
// and reads the key through another node.
type StalenessConfig struct {
	// Endpoints are the nodes' base URLs; empty starts an embedded cluster
	// (EmbeddedNodes nodes) for the measurement. With two or more, every
	// read goes to a different node than its write.
	Endpoints     []string
	EmbeddedNodes int
	// Token and TLS are passed to the client.
	Token string
	TLS   *tls.Config
	// RequestTimeout bounds each request. Default 10s.
	RequestTimeout time.Duration

	// Levels are measured one after the other. Default one, quorum, strong.
	Levels []string
	// WriteLevel is the level of the writes; "" (the default) writes at
	// the level under test, so "one" means W=1 and R=1. Whatever it says, a
	// strong level is written at strong: linearizability only holds when
	// every write is strong.
	WriteLevel string
	// Delays are the t values. Default 0,1,2,5,10,20,50,100ms.
	Delays []time.Duration
	// Trials is the number of reads per level and delay. Default 200.
	Trials int
	// Concurrency is the number of trials in flight, each on its own key.
	// Default 8.
	Concurrency int
	// ValueSize is the size of the values written. Default 100.
	ValueSize int
	// Seed seeds the trial order and the choice of nodes; 0: the clock.
	Seed int64

	// Progress, ProgressBar, ProgressEvery and Log work as in Config.
	Progress      io.Writer
	ProgressBar   bool
	ProgressEvery time.Duration
	Log           io.Writer
}

// DefaultStalenessConfig returns the defaults documented on StalenessConfig.
func DefaultStalenessConfig() StalenessConfig {
	return StalenessConfig{
		EmbeddedNodes:  3,
		RequestTimeout: 10 * time.Second,
		Levels:         []string{"one", "quorum", "strong"},
		Delays:         []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		Trials:         200,
		Concurrency:    8,
		ValueSize:      100,
		ProgressEvery:  time.Second,
	}
}

// Validate reports every problem with c at once.
func (c StalenessConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Levels) == 0 {
		add("--consistency: give at least one level")
	}
	for _, l := range c.Levels {
		if !isKnownLevel(l) {
			add("--consistency %q: use one, quorum, all or strong, or a comma list of them", l)
		}
	}
	if c.WriteLevel != "" && !isKnownLevel(c.WriteLevel) {
		add("--write-consistency %q: use one, quorum, all or strong", c.WriteLevel)
	}
	if len(c.Delays) == 0 {
		add("--delays: give at least one delay")
	}
	for _, d := range c.Delays {
		if d < 0 || d > time.Minute {
			add("--delays: %s must be between 0 and 1m", d)
		}
	}
	if c.Trials < 1 {
		add("--trials %d: must be at least 1", c.Trials)
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		add("--concurrency %d: must be between 1 and 1024", c.Concurrency)
	}
	if c.ValueSize < seqBytes || c.ValueSize > 1<<20 {
		add("--value-size %d: must be between %d and 1048576", c.ValueSize, seqBytes)
	}
	if len(c.Endpoints) == 0 && c.EmbeddedNodes < 1 {
		add("embedded cluster: EmbeddedNodes %d must be at least 1", c.EmbeddedNodes)
	}
	return errors.Join(errs...)
}

// StalenessResult is what `bench staleness --json` writes:
// {"levels":[{"consistency":"one","points":[{"t_ms":0,"fresh":0.97,"reads":…}…]}…]}.
type StalenessResult struct {
	Levels    []StalenessLevel `json:"levels"`
	Trials    int              `json:"trials"`
	Endpoints []string         `json:"endpoints"`
	Embedded  bool             `json:"embedded"`
	Seed      int64            `json:"seed"`
	StartedAt time.Time        `json:"started_at"`
	// Interrupted: stopped early; the points hold the reads made so far.
	Interrupted bool `json:"interrupted"`
}

// StalenessLevel is one level's curve.
type StalenessLevel struct {
	Consistency      string           `json:"consistency"`
	WriteConsistency string           `json:"write_consistency"`
	Points           []StalenessPoint `json:"points"`
}

// StalenessPoint is one delay.
type StalenessPoint struct {
	TMs float64 `json:"t_ms"`
	// Fresh is the share of reads that saw the acknowledged write or a
	// newer one (reads that failed are not counted).
	Fresh float64 `json:"fresh"`
	Reads int64   `json:"reads"`
	Stale int64   `json:"stale"`
	// Errors counts trials whose write or read failed.
	Errors int64 `json:"errors"`
}

// RunStaleness measures t-visibility for every level in turn. Cancelling
// ctx stops early and returns what was measured with Interrupted set.
func RunStaleness(ctx context.Context, cfg StalenessConfig) (StalenessResult, error) {
	d := DefaultStalenessConfig()
	if cfg.EmbeddedNodes == 0 {
		cfg.EmbeddedNodes = d.EmbeddedNodes
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = d.RequestTimeout
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = d.ProgressEvery
	}
	cfg.Levels = append([]string(nil), cfg.Levels...)
	cfg.Delays = append([]time.Duration(nil), cfg.Delays...)
	if err := cfg.Validate(); err != nil {
		return StalenessResult{}, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	res := StalenessResult{Levels: []StalenessLevel{}, Trials: cfg.Trials, Endpoints: cfg.Endpoints, Seed: seed,
		StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if len(cfg.Endpoints) == 0 {
		logf(cfg.Log, "starting an embedded %d-node cluster", cfg.EmbeddedNodes)
		ec, err := StartEmbedded(ctx, cfg.EmbeddedNodes)
		if err != nil {
			return res, err
		}
		defer ec.Close()
		res.Embedded, res.Endpoints = true, ec.Endpoints()
	}
	cl, err := dial(ctx, client.Config{Endpoints: res.Endpoints, Token: cfg.Token, TLS: cfg.TLS, Timeout: cfg.RequestTimeout})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	res.Endpoints = cl.Endpoints()
	if len(res.Endpoints) < 2 {
		logf(cfg.Log, "only one endpoint: reads go to the node that took the write, which hides most staleness")
	}
	prefix := "bench-staleness-" + strconv.FormatUint(uint64(time.Now().UnixNano()), 36) + "/"
	for li, level := range cfg.Levels {
		wl := cfg.WriteLevel
		if wl == "" || level == client.LevelStrong {
			wl = level
		}
		sl := measureLevel(ctx, cfg, cl, level, wl, prefix+level+"/", seed+int64(li))
		res.Levels = append(res.Levels, sl)
		if ctx.Err() != nil {
			break
		}
		logf(cfg.Log, "staleness %s: %s", level, describePoints(sl.Points))
	}
	res.Interrupted = ctx.Err() != nil
	return res, nil
}

func describePoints(ps []StalenessPoint) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("t=%gms %.3f", p.TMs, p.Fresh))
	}
	return strings.Join(parts, ", ")
}

type pointCount struct{ reads, stale, errors atomic.Int64 }

// measureLevel runs Trials trials per delay at one level. Trials of all
// delays are shuffled together, so slow drift in the machine's load spreads
// evenly over the delays.
func measureLevel(ctx context.Context, cfg StalenessConfig, cl *client.Client, level, writeLevel, prefix string, seed int64) StalenessLevel {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	jobs := make([]int, 0, len(cfg.Delays)*cfg.Trials)
	for di := range cfg.Delays {
		for t := 0; t < cfg.Trials; t++ {
			jobs = append(jobs, di)
		}
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	counts := make([]pointCount, len(cfg.Delays))
	live := &liveCounters{}
	prog := startProgress(cfg.Progress, cfg.ProgressBar, cfg.ProgressEvery, "t-vis "+level, 0, int64(len(jobs)), live)
	var next atomic.Int64
	n := len(cl.Endpoints())
	var wg sync.WaitGroup
	for wi := 0; wi < cfg.Concurrency; wi++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(uint64(seed), uint64(wi)+1))
			key := []byte(prefix + strconv.Itoa(wi))
			value := make([]byte, cfg.ValueSize)
			var seq uint64
			ctxStr := ""
			for ctx.Err() == nil {
				j := next.Add(1) - 1
				if j >= int64(len(jobs)) {
					return
				}
				di := jobs[j]
				pc := &counts[di]
				from := wr.IntN(n)
				to := from
				if n > 1 {
					to = (from + 1 + wr.IntN(n-1)) % n
				}
				seq++
				opt := client.Options{Consistency: writeLevel}
				if writeLevel != client.LevelStrong {
					opt.Context = ctxStr // we are the key's only writer: supersede it all
				}
				wres, err := cl.At(from).Put(ctx, key, encodeValue(value, seq, nil), opt)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					pc.errors.Add(1)
					live.errors.Add(1)
					continue
				}
				acked := time.Now()
				ctxStr = wres.Context
				if wait := cfg.Delays[di] - time.Since(acked); wait > 0 {
					if !sleepCtx(ctx, wait) {
						return
					}
				}
				rres, err := cl.At(to).Get(ctx, key, client.Options{Consistency: level})
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					pc.errors.Add(1)
					live.errors.Add(1)
					continue
				}
				fresh := false
				for _, v := range rres.Values {
					if s, ok := decodeSeq(v); ok && s >= seq {
						fresh = true
					}
				}
				pc.reads.Add(1)
				live.ops.Add(1)
				if !fresh {
					pc.stale.Add(1)
					live.stale.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	prog.stop()
	sl := StalenessLevel{Consistency: level, WriteConsistency: writeLevel, Points: []StalenessPoint{}}
	for di, d := range cfg.Delays {
		pc := &counts[di]
		p := StalenessPoint{TMs: float64(d) / float64(time.Millisecond), Reads: pc.reads.Load(), Stale: pc.stale.Load(), Errors: pc.errors.Load()}
		if p.Reads > 0 {
			p.Fresh = round3(1 - float64(p.Stale)/float64(p.Reads))
		}
		sl.Points = append(sl.Points, p)
	}
	return sl
}

// WriteJSON writes r, indented, to path.
func (r StalenessResult) WriteJSON(path string) error { return writeJSONFile(path, r) }

// WriteSummary prints one row per level and delay.
func (r StalenessResult) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "t-visibility: share of reads, started t ms after a write's acknowledgement on another node, that saw it (%d trials per point)\n", r.Trials)
	if r.Interrupted {
		b.WriteString("interrupted: the figures cover what ran before the stop\n")
	}
	header := "level (write)"
	var rows []string
	width := len(header)
	for _, l := range r.Levels {
		name := l.Consistency
		if l.WriteConsistency != l.Consistency {
			name += " (w=" + l.WriteConsistency + ")"
		}
		width = max(width, len(name))
		rows = append(rows, name)
	}
	fmt.Fprintf(&b, "%-*s", width, header)
	if len(r.Levels) > 0 {
		for _, p := range r.Levels[0].Points {
			fmt.Fprintf(&b, " %8s", fmt.Sprintf("%gms", p.TMs))
		}
	}
	b.WriteString("\n")
	for i, l := range r.Levels {
		fmt.Fprintf(&b, "%-*s", width, rows[i])
		for _, p := range l.Points {
			fmt.Fprintf(&b, " %8.3f", p.Fresh)
		}
		errs := int64(0)
		for _, p := range l.Points {
			errs += p.Errors
		}
		if errs > 0 {
			fmt.Fprintf(&b, "  (%d failed trials)", errs)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
