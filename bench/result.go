package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is a bench run, as written by --json. Field names follow the
// brief's shape: {"workload","levels":[{"consistency","ops_per_sec","ops":
// {"read":{"count","p50_ms",…,"errors","stale"},…}}]}; the rest is extra.
type Result struct {
	Workload     string   `json:"workload"`
	Description  string   `json:"description"`
	Distribution string   `json:"distribution"`
	Records      int      `json:"records"`
	Concurrency  int      `json:"concurrency"`
	ValueSize    int      `json:"value_size"`
	DurationS    float64  `json:"duration_s,omitempty"` // per level, when run by time
	OpsTarget    int64    `json:"ops_target,omitempty"` // per level, when run by count
	Endpoints    []string `json:"endpoints"`
	// Embedded: the bench started its own cluster.
	Embedded  bool      `json:"embedded"`
	Seed      int64     `json:"seed"`
	StartedAt time.Time `json:"started_at"`
	// Interrupted: the run was stopped early (Ctrl-C); what ran is kept.
	Interrupted bool          `json:"interrupted"`
	Load        *LoadResult   `json:"load,omitempty"`
	Levels      []LevelResult `json:"levels"`
	// Staleness is a t-visibility measurement shown with the run (from
	// `bench staleness`), if one was made or given.
	Staleness *StalenessResult `json:"staleness,omitempty"`
}

// LoadResult is the load phase.
type LoadResult struct {
	Consistency string   `json:"consistency"`
	Records     int      `json:"records"`
	ElapsedS    float64  `json:"elapsed_s"`
	OpsPerSec   float64  `json:"ops_per_sec"`
	Insert      OpResult `json:"insert"`
}

// LevelResult is one consistency level's part of the run.
type LevelResult struct {
	Consistency string `json:"consistency"`
	// OpsPerSec is successful transactions per second (a read-modify-write
	// counts once).
	OpsPerSec    float64 `json:"ops_per_sec"`
	Transactions int64   `json:"transactions"`
	ElapsedS     float64 `json:"elapsed_s"`
	// Ops has one entry per operation type that ran.
	Ops map[Op]OpResult `json:"ops"`
	// ThroughputPerSec counts successful transactions per 1 s bucket from
	// the level's start (the last bucket may be partial).
	ThroughputPerSec []int64 `json:"throughput_per_sec"`
	// StalenessByAge splits the reads by the time between the key's last
	// acknowledged write and the read's start: the workload's own staleness
	// curve.
	StalenessByAge []AgePoint `json:"staleness_by_age"`
	Interrupted    bool       `json:"interrupted,omitempty"`
}

// OpResult is one operation type at one level.
type OpResult struct {
	// Count is the number of successful operations (errors not included).
	Count     int64   `json:"count"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Latencies of successful operations, in milliseconds.
	P50Ms  float64 `json:"p50_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
	// Errors counts failed operations; ErrorsByKind splits them into
	// unavailable, timeout and other (all three keys always present).
	Errors       int64               `json:"errors"`
	ErrorsByKind map[ErrorKind]int64 `json:"errors_by_kind"`
	// Stale counts reads that were stale (see Tracker for the rule);
	// StaleShare is Stale/Count. Always 0 for writes.
	Stale      int64   `json:"stale"`
	StaleShare float64 `json:"stale_share"`
	// NotFound counts reads that found no value.
	NotFound int64 `json:"not_found"`
}

// AgePoint is one bucket of LevelResult.StalenessByAge.
type AgePoint struct {
	// TMs is the bucket's lower bound in ms (reads that started between TMs
	// and the next bucket's bound after the last acknowledged write).
	TMs   float64 `json:"t_ms"`
	Reads int64   `json:"reads"`
	Stale int64   `json:"stale"`
	// Fresh is the share of those reads that were not stale.
	Fresh float64 `json:"fresh"`
}

func msOf(us int64) float64 { return round3(float64(us) / 1000) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func summarizeOp(s *opStats, elapsed time.Duration) OpResult {
	h := s.hist
	r := OpResult{
		Count:        h.TotalCount(),
		ErrorsByKind: map[ErrorKind]int64{ErrorUnavailable: 0, ErrorTimeout: 0, ErrorOther: 0},
		Stale:        s.stale,
		NotFound:     s.notFound,
	}
	if r.Count > 0 {
		r.P50Ms = msOf(h.ValueAtQuantile(50))
		r.P95Ms = msOf(h.ValueAtQuantile(95))
		r.P99Ms = msOf(h.ValueAtQuantile(99))
		r.P999Ms = msOf(h.ValueAtQuantile(99.9))
		r.MaxMs = msOf(h.Max())
		r.MeanMs = round3(h.Mean() / 1000)
		r.StaleShare = float64(s.stale) / float64(r.Count)
	}
	if elapsed > 0 {
		r.OpsPerSec = round3(float64(r.Count) / elapsed.Seconds())
	}
	for k, v := range s.errors {
		r.ErrorsByKind[k] += v
		r.Errors += v
	}
	return r
}

func summarizeLevel(level string, ls *levelStats, elapsed time.Duration, interrupted bool) LevelResult {
	lr := LevelResult{
		Consistency:      level,
		Transactions:     ls.transactions,
		ElapsedS:         round3(elapsed.Seconds()),
		Ops:              map[Op]OpResult{},
		ThroughputPerSec: append([]int64{}, ls.perSecond...),
		StalenessByAge:   []AgePoint{},
		Interrupted:      interrupted,
	}
	if elapsed > 0 {
		lr.OpsPerSec = round3(float64(ls.transactions) / elapsed.Seconds())
	}
	for op, s := range ls.ops {
		lr.Ops[op] = summarizeOp(s, elapsed)
	}
	if rd := ls.ops[OpRead]; rd != nil {
		for i, a := range rd.ages {
			if a.reads == 0 {
				continue
			}
			lr.StalenessByAge = append(lr.StalenessByAge, AgePoint{
				TMs: ageBucketsMs[i], Reads: a.reads, Stale: a.stale,
				Fresh: round3(1 - float64(a.stale)/float64(a.reads)),
			})
		}
	}
	return lr
}

// WriteJSON writes r, indented, to path.
func (r Result) WriteJSON(path string) error {
	return writeJSONFile(path, r)
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// opOrder is the order ops are listed in tables and charts.
var opOrder = []Op{OpRead, OpUpdate, OpInsert, OpReadModifyWrite, OpScan}

// sortedOps lists the ops of m in opOrder.
func sortedOps[V any](m map[Op]V) []Op {
	var out []Op
	for _, op := range opOrder {
		if _, ok := m[op]; ok {
			out = append(out, op)
		}
	}
	var extra []Op
	for op := range m {
		known := false
		for _, k := range opOrder {
			known = known || k == op
		}
		if !known {
			extra = append(extra, op)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	return append(out, extra...)
}

// WriteSummary prints the summary table: one row per level and operation.
func (r Result) WriteSummary(w io.Writer) error {
	var b strings.Builder
	where := fmt.Sprintf("embedded %d-node cluster", len(r.Endpoints))
	if !r.Embedded {
		where = strings.Join(r.Endpoints, ",")
	}
	fmt.Fprintf(&b, "workload %s (%s), %s keys, %d records, concurrency %d, %d-byte values, %s\n",
		r.Workload, r.Description, r.Distribution, r.Records, r.Concurrency, r.ValueSize, where)
	if r.Load != nil {
		fmt.Fprintf(&b, "load: %d records at %s in %.1fs (%.0f inserts/s, %d errors)\n",
			r.Load.Records, r.Load.Consistency, r.Load.ElapsedS, r.Load.OpsPerSec, r.Load.Insert.Errors)
	}
	if r.Interrupted {
		b.WriteString("interrupted: the figures cover what ran before the stop\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "level\top\tcount\tops/s\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tstale\t")
	for _, lv := range r.Levels {
		for _, op := range sortedOps(lv.Ops) {
			o := lv.Ops[op]
			stale := "-"
			if op == OpRead || op == OpReadModifyWrite {
				stale = fmt.Sprintf("%d (%.2f%%)", o.Stale, 100*o.StaleShare)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n",
				lv.Consistency, op, o.Count, o.OpsPerSec, o.P50Ms, o.P95Ms, o.P99Ms, o.P999Ms, o.MaxMs,
				errorsCell(o), stale)
		}
		fmt.Fprintf(tw, "%s\tall\t%d\t%.0f\t\t\t\t\t\t\t\t\n", lv.Consistency, lv.Transactions, lv.OpsPerSec)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func errorsCell(o OpResult) string {
	if o.Errors == 0 {
		return "0"
	}
	var parts []string
	for _, k := range []ErrorKind{ErrorUnavailable, ErrorTimeout, ErrorOther} {
		if v := o.ErrorsByKind[k]; v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	return fmt.Sprintf("%d (%s)", o.Errors, strings.Join(parts, ", "))
}
