package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/wire"
)

const namespace = "quorumkv"

// Config says where the metrics of one node come from. Every source is
// read at scrape time; none is written by this package.
type Config struct {
	// Coordinator is the replication coordinator's counters. Nil: not
	// exported.
	Coordinator *replication.Stats
	// Status returns the node's /v1/status, called once per scrape for the
	// gauges of members, partitions, pending hints, transfers and
	// anti-entropy progress. It should not take long (it runs under the
	// scrape's deadline). Nil: not exported.
	Status func(ctx context.Context) wire.Status
	// StoreSize returns badger's LSM and value-log sizes in bytes. Nil: not
	// exported.
	StoreSize func() (lsm, vlog int64)
	// Window is how far back /v1/stats looks for request rates and
	// latencies. Default 10s.
	Window time.Duration
	// Now is the clock of the request window (tests). Default time.Now.
	Now func() time.Time
	// GoRuntime also exports the Go runtime and process collectors.
	GoRuntime bool
}

// DefaultConfig returns a Config with the default window and the Go
// runtime collectors on.
func DefaultConfig() Config {
	return Config{Window: 10 * time.Second, Now: time.Now, GoRuntime: true}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Window < time.Second || c.Window > time.Duration(windowSlots-1)*time.Second {
		errs = append(errs, errors.New("metrics: window must be between 1s and 59s"))
	}
	if c.Now == nil {
		errs = append(errs, errors.New("metrics: a clock (Now) is required"))
	}
	return errors.Join(errs...)
}

// Metrics is one node's Prometheus registry plus the short request window
// behind /v1/stats. Nothing is registered globally, so many nodes can run in
// one process, each with its own /metrics.
type Metrics struct {
	cfg      Config
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	window   *window
	started  time.Time

	// series caches the counter and histogram of each label set seen, so
	// a request skips the vectors' label hashing (a few percent of a node's
	// CPU under load). Label values are cleaned first, so it stays small.
	series sync.Map // seriesKey → *series
}

type seriesKey struct{ api, op, level, outcome string }

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// New builds a node's registry.
func New(cfg Config) (*Metrics, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Metrics{
		cfg: cfg,
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Key-value requests served, by front door (http, resp), operation, consistency level and outcome (ok, not_found, siblings, or an error code).",
		}, []string{"api", "op", "level", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time to answer a key-value request, by front door, operation and consistency level.",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 10, 21),
		}, []string{"api", "op", "level"}),
		window:  newWindow(),
		started: cfg.Now(),
	}
	m.reg.MustRegister(m.requests, m.latency)
	if cfg.GoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if s := cfg.Coordinator; s != nil {
		for _, c := range []struct {
			name, help string
			v          interface{ Load() int64 }
		}{
			{"read_repairs_total", "Stale replicas repaired by reads.", &s.ReadRepairs},
			{"coalesced_reads_total", "Reads answered by a read of the same key that started after them on behalf of several requests.", &s.CoalescedReads},
			{"combined_writes_total", "Overwrites (RESP SET) answered by one write of the same key that carried a later concurrent request's value.", &s.CombinedWrites},
			{"quorum_failures_total", "Requests that failed because fewer than R or W replicas answered (503).", &s.QuorumFailures},
			{"request_timeouts_total", "Requests whose outcome is unknown because the deadline passed (504).", &s.Timeouts},
			{"hints_stored_total", "Hints this node stored for unreachable primaries (sloppy quorum).", &s.HintsStored},
			{"hints_delivered_total", "Hints handed back to their primaries.", &s.HintsDelivered},
			{"hints_expired_total", "Hints dropped after the hint window (anti-entropy repairs those keys).", &s.HintsExpired},
			{"strong_write_backs_total", "Write-back phases of strong reads.", &s.StrongWriteBacks},
			{"forwarded_total", "Requests forwarded to a node of the key's preference list.", &s.Forwarded},
			{"replica_batches_total", "Messages that carried replica writes to a peer (one or more writes each).", &s.ReplicaBatches},
			{"replica_batch_writes_total", "Replica writes sent in those messages; divided by replica_batches_total, the mean batch size.", &s.ReplicaBatchWrites},
		} {
			m.CounterFunc(c.name, c.help, func() float64 { return float64(c.v.Load()) })
		}
	}
	if cfg.StoreSize != nil {
		m.GaugeFunc("store_lsm_bytes", "Size of badger's LSM tree on disk.", func() float64 { lsm, _ := cfg.StoreSize(); return float64(lsm) })
		m.GaugeFunc("store_vlog_bytes", "Size of badger's value log on disk.", func() float64 { _, vlog := cfg.StoreSize(); return float64(vlog) })
	}
	if cfg.Status != nil {
		m.reg.MustRegister(statusCollector{status: cfg.Status})
	}
	return m, nil
}

// Registry is the node's registry; other components register their own
// collectors here.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// CounterFunc exports fn, which must only grow, as quorumkv_<name>. It is
// the hook for components that keep their own atomic counters (anti-entropy,
// ownership transfer). It panics on a duplicate name, as registration of a
// fixed set at start-up should.
func (m *Metrics) CounterFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, fn))
}

// GaugeFunc exports fn as the gauge quorumkv_<name>.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, fn))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Timeout: 10 * time.Second, MaxRequestsInFlight: 4})
}

// ObserveHTTP records one key-value request of the HTTP API; it has the
// shape of server.Observer. The status code becomes the outcome.
func (m *Metrics) ObserveHTTP(op, level string, code int, elapsed time.Duration) {
	m.observe("http", op, level, outcomeOf(code), elapsed)
}

// ObserveRESP records one key-value command of the Redis protocol; it has
// the shape of resp.Config.Observe.
func (m *Metrics) ObserveRESP(op, level, outcome string, elapsed time.Duration) {
	m.observe("resp", op, level, outcome, elapsed)
}

func (m *Metrics) observe(api, op, level, outcome string, elapsed time.Duration) {
	// Labels come from requests, so hostile input must not be able to mint
	// new series: anything outside the known sets is folded into one value.
	op, level, outcome = cleanOp(op), cleanLevel(level), cleanOutcome(outcome)
	k := seriesKey{api, op, level, outcome}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(api, op, level, outcome),
			latency:  m.latency.WithLabelValues(api, op, level),
		})
	}
	sr := v.(*series)
	sr.requests.Inc()
	sr.latency.Observe(elapsed.Seconds())
	m.window.add(m.cfg.Now(), kindKey{api, op, level}, isError(outcome), elapsed)
}

// Outcomes that are not errors. "siblings" is a 300 answer.
const (
	outcomeOK       = "ok"
	outcomeSiblings = "siblings"
	outcomeOther    = "other"
)

func isError(outcome string) bool {
	return outcome != outcomeOK && outcome != wire.CodeNotFound && outcome != outcomeSiblings
}

// outcomeOf maps an HTTP status to the outcome label.
func outcomeOf(code int) string {
	switch {
	case code == http.StatusMultipleChoices:
		return outcomeSiblings
	case code >= 200 && code < 300:
		return outcomeOK
	case code == http.StatusNotFound:
		return wire.CodeNotFound
	case code == http.StatusBadRequest, code == http.StatusMethodNotAllowed:
		return wire.CodeBadRequest
	case code == http.StatusRequestEntityTooLarge:
		return wire.CodeTooLarge
	case code == http.StatusConflict:
		return wire.CodeConflict
	case code == http.StatusUnauthorized:
		return wire.CodeUnauthorized
	case code == http.StatusServiceUnavailable:
		return wire.CodeUnavailable
	case code == http.StatusGatewayTimeout:
		return wire.CodeTimeout
	case code >= 500:
		return wire.CodeInternal
	}
	return outcomeOther
}

var (
	knownOps = []string{"get", "head", "put", "delete", // HTTP
		"set", "del", "exists", "mget", "mset", "qget", "qset", "qdel"} // RESP
	knownOutcomes = []string{outcomeOK, outcomeSiblings, wire.CodeNotFound, wire.CodeBadRequest, wire.CodeTooLarge,
		wire.CodeConflict, wire.CodeUnauthorized, wire.CodeUnavailable, wire.CodeTimeout, wire.CodeInternal}
)

func cleanOp(op string) string {
	if slices.Contains(knownOps, op) {
		return op
	}
	return outcomeOther
}

func cleanLevel(level string) string {
	switch level {
	case "one", "quorum", "all", "strong":
		return level
	}
	// A replica count; N is at most 16 (node.Config.Validate).
	if n, err := strconv.Atoi(level); err == nil && n >= 1 && n <= 16 && strconv.Itoa(n) == level {
		return level
	}
	return "invalid"
}

func cleanOutcome(o string) string {
	if slices.Contains(knownOutcomes, o) {
		return o
	}
	return outcomeOther
}

// Stats is the answer of GET /v1/stats: this node's request rates and
// latencies over the last Window, one point per second for the last minute,
// and the node's cumulative counters. The dashboard polls it.
type Stats struct {
	// Time is when the stats were taken (RFC 3339, UTC).
	Time          string  `json:"time"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	WindowSeconds int     `json:"window_seconds"`
	// Requests has one row per front door, operation and level seen in the
	// window, busiest first.
	Requests []RequestStats `json:"requests"`
	// Total sums every row of Requests.
	Total RequestStats `json:"total"`
	// Series is the last minute, oldest first, one point per second.
	Series []SecondStats `json:"series"`
	// Counters are cumulative: coordinator, anti-entropy, store sizes and
	// whatever else registered a CounterFunc or GaugeFunc, by metric name
	// without the quorumkv_ prefix.
	Counters map[string]float64 `json:"counters"`
}

// RequestStats are the rates and latency percentiles of one kind of request
// over the window.
type RequestStats struct {
	API          string  `json:"api,omitempty"`
	Op           string  `json:"op,omitempty"`
	Level        string  `json:"level,omitempty"`
	Count        uint64  `json:"count"`
	Errors       uint64  `json:"errors"`
	PerSec       float64 `json:"per_sec"`
	ErrorsPerSec float64 `json:"errors_per_sec"`
	P50ms        float64 `json:"p50_ms"`
	P95ms        float64 `json:"p95_ms"`
	P99ms        float64 `json:"p99_ms"`
}

// SecondStats is one second of requests.
type SecondStats struct {
	Unix   int64   `json:"t"`
	Count  uint64  `json:"count"`
	Errors uint64  `json:"errors"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
}

// Stats takes a snapshot for /v1/stats.
func (m *Metrics) Stats() Stats {
	now := m.cfg.Now()
	win := int(m.cfg.Window / time.Second)
	st := Stats{
		Time:          now.UTC().Format(time.RFC3339),
		UptimeSeconds: now.Sub(m.started).Seconds(),
		WindowSeconds: win,
		Counters:      map[string]float64{},
	}
	st.Requests, st.Total, st.Series = m.window.snapshot(now, win)
	if mfs, err := m.reg.Gather(); err == nil {
		for _, mf := range mfs {
			name := mf.GetName()
			short, ok := cutNamespace(name)
			if !ok || len(mf.GetMetric()) != 1 || len(mf.GetMetric()[0].GetLabel()) != 0 {
				continue // labelled families are in /v1/status or /metrics
			}
			mt := mf.GetMetric()[0]
			switch {
			case mt.Counter != nil:
				st.Counters[short] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				st.Counters[short] = mt.Gauge.GetValue()
			}
		}
	}
	return st
}

func cutNamespace(name string) (string, bool) {
	const p = namespace + "_"
	if len(name) > len(p) && name[:len(p)] == p {
		return name[len(p):], true
	}
	return "", false
}

// StatsHandler serves Stats as JSON at exactly path.
func (m *Metrics) StatsHandler(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(m.Stats())
	})
}
