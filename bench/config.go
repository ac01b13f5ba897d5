package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Distribution names a key chooser (--distribution).
type Distribution string

// The key distributions. The empty Distribution means "the workload's own
// default", as in YCSB: zipfian for A, B, C, E and F, latest for D.
const (
	// Uniform picks every loaded key with the same probability.
	Uniform Distribution = "uniform"
	// Zipfian is YCSB's scrambled zipfian (constant 0.99): a few keys are
	// very hot, and the hot keys are scattered over the key space by a hash.
	Zipfian Distribution = "zipfian"
	// Latest is YCSB's skewed-latest: zipfian over recency, so the most
	// recently inserted keys are the hottest.
	Latest Distribution = "latest"
)

// Levels the bench accepts in Config.Levels. Numeric r/w are left out on
// purpose: a level here names both the read and the write level.
var knownLevels = []string{"one", "quorum", "all", "strong"}

// Config is one `quorumkv bench` run. Run copies it; DefaultConfig gives
// sizes suited to a small (2-core) machine that also runs the cluster.
type Config struct {
	// Endpoints are the nodes' base URLs. Workers spread their requests over
	// all of them (round robin per request). Empty: Run starts its own
	// EmbeddedNodes-node cluster in a temporary directory and removes it
	// afterwards.
	Endpoints []string
	// EmbeddedNodes is the size of the embedded cluster. Default 3.
	EmbeddedNodes int
	// Token and TLS are passed to the client (clusters with
	// --auth-token-file or --tls-*). Both optional.
	Token string
	TLS   *tls.Config
	// RequestTimeout bounds each request. Default 10s (the client's).
	RequestTimeout time.Duration

	// Workload is the YCSB core workload, "a" to "f". Default "a". Workload
	// "e" scans runs of consecutive records with point reads (quorumkv has
	// no key order to scan; see worker.scan).
	Workload string
	// Distribution picks keys; "" means the workload's default.
	Distribution Distribution
	// Records is how many keys the load phase inserts before the levels
	// run. Default 10000.
	Records int
	// Duration is how long each level runs. Default 10s. Ignored when Ops
	// is set.
	Duration time.Duration
	// Ops, when positive, runs each level for exactly this many operations
	// (transactions: a read-modify-write counts once) instead of Duration.
	Ops int64
	// Concurrency is the number of workers, each with one request in
	// flight (a closed loop, as YCSB's client threads). Default 32.
	Concurrency int
	// ValueSize is the size of every value written, in bytes; at least 8
	// (the sequence number). Default 100.
	ValueSize int
	// Levels are run one after the other against the same loaded data,
	// each for Duration (or Ops). Default ["quorum"].
	Levels []string
	// Settle is the pause between the load phase and the first level and
	// between levels, so the background replication of one phase does not
	// count against the next. Default 500ms.
	Settle time.Duration
	// Seed seeds the key choosers and the operation mix; 0 picks one from
	// the clock (Result.Seed reports it so a run can be repeated).
	Seed int64

	// Staleness, when set, also measures t-visibility (as `bench
	// staleness`) on the same cluster after the levels; Endpoints, Token and
	// TLS are taken from this Config, and Levels too when it has none.
	Staleness *StalenessConfig

	// Progress receives the progress display; nil shows none.
	Progress io.Writer
	// ProgressBar draws a progress bar (Progress is a terminal) instead of
	// one plain line every ProgressEvery.
	ProgressBar bool
	// ProgressEvery is the interval of plain progress lines. Default 1s.
	ProgressEvery time.Duration
	// Log receives notes meant for a person (cluster started, level
	// skipped). Nil discards them.
	Log io.Writer
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		EmbeddedNodes:  3,
		RequestTimeout: 10 * time.Second,
		Workload:       "a",
		Records:        10000,
		Duration:       10 * time.Second,
		Concurrency:    32,
		ValueSize:      100,
		Levels:         []string{"quorum"},
		Settle:         500 * time.Millisecond,
		ProgressEvery:  time.Second,
	}
}

// Validate reports every problem with c at once, in terms of the command's
// flags.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, ok := workloads[c.Workload]; !ok {
		add("--workload %q: use one of a, b, c, d, e, f", c.Workload)
	}
	switch c.Distribution {
	case "", Uniform, Zipfian, Latest:
	default:
		add("--distribution %q: use uniform, zipfian or latest", c.Distribution)
	}
	if c.Records < 1 {
		add("--records %d: must be at least 1", c.Records)
	}
	if c.Ops < 0 {
		add("--ops %d: must not be negative", c.Ops)
	}
	if c.Ops == 0 && c.Duration <= 0 {
		add("--duration %s: must be positive (or give --ops)", c.Duration)
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		add("--concurrency %d: must be between 1 and 4096", c.Concurrency)
	}
	if c.ValueSize < seqBytes || c.ValueSize > 1<<20 {
		add("--value-size %d: must be between %d (the sequence number every value carries) and 1048576", c.ValueSize, seqBytes)
	}
	if len(c.Levels) == 0 {
		add("--consistency: give at least one level")
	}
	seen := map[string]bool{}
	for _, l := range c.Levels {
		if !isKnownLevel(l) {
			add("--consistency %q: use one, quorum, all or strong, or a comma list of them", l)
		} else if seen[l] {
			add("--consistency: %s is listed twice", l)
		}
		seen[l] = true
	}
	if len(c.Endpoints) == 0 && c.EmbeddedNodes < 1 {
		add("embedded cluster: EmbeddedNodes %d must be at least 1", c.EmbeddedNodes)
	}
	for i, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			add("--endpoints: entry %d is empty", i+1)
		}
	}
	if c.RequestTimeout < 0 {
		add("request timeout %s: must not be negative", c.RequestTimeout)
	}
	if c.Settle < 0 {
		add("settle pause %s: must not be negative", c.Settle)
	}
	return errors.Join(errs...)
}

// ParseLevels splits a --consistency value ("one,quorum,strong") into
// levels, trimming blanks and lower-casing; Validate checks them.
func ParseLevels(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isKnownLevel(l string) bool {
	for _, k := range knownLevels {
		if k == l {
			return true
		}
	}
	return false
}

// withDefaults fills the zero fields that have a default; it works on a
// copy.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Workload = strings.ToLower(c.Workload)
	if c.Workload == "" {
		c.Workload = d.Workload
	}
	if c.EmbeddedNodes == 0 {
		c.EmbeddedNodes = d.EmbeddedNodes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = d.ProgressEvery
	}
	if c.Distribution == "" {
		if w, ok := workloads[c.Workload]; ok {
			c.Distribution = w.Distribution
		}
	}
	c.Endpoints = append([]string(nil), c.Endpoints...)
	c.Levels = append([]string(nil), c.Levels...)
	return c
}
