package bench

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Parse(reportTemplate))

// reportRow is one line of the HTML summary table.
type reportRow struct {
	Level, Op                string
	Color                    string
	Count                    int64
	OpsPerSec                string
	P50, P95, P99, P999, Max string
	Errors                   string
	Stale                    string
	First                    bool
	Span                     int
	LevelOpsPerSec           string
}

type reportFact struct{ Name, Value string }

type reportData struct {
	Title       string
	Subtitle    string
	Facts       []reportFact
	Interrupted bool
	Rows        []reportRow
	Latency     []template.HTML
	Throughput  template.HTML
	Visibility  template.HTML
	VisNote     string
	AgeCurve    template.HTML
	Generated   string
}

// WriteHTML writes a self-contained report of res to path: a summary table
// and inline SVG charts (latency percentiles per level and operation,
// throughput over time, staleness against time since the write). It needs
// nothing but a browser to open: no script, font or network.
func WriteHTML(path string, res Result) error {
	var buf bytes.Buffer
	if err := RenderHTML(&buf, res); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// RenderHTML writes the report of WriteHTML to buf.
func RenderHTML(buf *bytes.Buffer, res Result) error {
	return reportTmpl.Execute(buf, buildReport(res))
}

func buildReport(res Result) reportData {
	d := reportData{Interrupted: res.Interrupted,
		Generated: time.Now().UTC().Format("2006-01-02 15:04:05 UTC")}
	if res.Workload != "" {
		d.Title = "quorumkv bench — workload " + strings.ToUpper(res.Workload)
		d.Subtitle = res.Description
		where := strings.Join(res.Endpoints, ", ")
		if res.Embedded {
			where = fmt.Sprintf("embedded %d-node cluster (%s)", len(res.Endpoints), where)
		}
		run := fmt.Sprintf("%gs per level", res.DurationS)
		if res.OpsTarget > 0 {
			run = fmt.Sprintf("%d operations per level", res.OpsTarget)
		}
		d.Facts = []reportFact{
			{"key distribution", res.Distribution},
			{"records", fmt.Sprint(res.Records)},
			{"concurrency", fmt.Sprintf("%d workers, one request in flight each", res.Concurrency)},
			{"value size", fmt.Sprintf("%d bytes", res.ValueSize)},
			{"run", run},
			{"cluster", where},
			{"started", res.StartedAt.Format("2006-01-02 15:04:05 UTC")},
			{"seed", fmt.Sprint(res.Seed)},
		}
		if res.Load != nil {
			d.Facts = append(d.Facts, reportFact{"load phase", fmt.Sprintf("%d records at %s in %.1fs (%.0f inserts/s, %d failed attempts)",
				res.Load.Records, res.Load.Consistency, res.Load.ElapsedS, res.Load.OpsPerSec, res.Load.Insert.Errors)})
		}
	} else {
		d.Title = "quorumkv bench staleness"
		d.Subtitle = "t-visibility: the chance that a read started t ms after a write was acknowledged sees it"
	}

	// Summary rows.
	for li, lv := range res.Levels {
		ops := sortedOps(lv.Ops)
		for oi, op := range ops {
			o := lv.Ops[op]
			stale := "–"
			if op == OpRead || op == OpReadModifyWrite {
				stale = fmt.Sprintf("%d (%.2f%%)", o.Stale, 100*o.StaleShare)
			}
			d.Rows = append(d.Rows, reportRow{
				Level: lv.Consistency, Op: string(op), Color: levelColor(lv.Consistency, li),
				Count: o.Count, OpsPerSec: fmt.Sprintf("%.0f", o.OpsPerSec),
				P50: fmtMs(o.P50Ms), P95: fmtMs(o.P95Ms), P99: fmtMs(o.P99Ms), P999: fmtMs(o.P999Ms), Max: fmtMs(o.MaxMs),
				Errors: errorsCell(o), Stale: stale, First: oi == 0, Span: len(ops),
				LevelOpsPerSec: fmt.Sprintf("%.0f", lv.OpsPerSec),
			})
		}
	}

	// Latency: one chart per operation type, levels side by side.
	var allOps []Op
	seen := map[Op]bool{}
	for _, lv := range res.Levels {
		for _, op := range sortedOps(lv.Ops) {
			if !seen[op] {
				seen[op] = true
				allOps = append(allOps, op)
			}
		}
	}
	groups := []string{"p50", "p95", "p99", "p99.9", "max"}
	for _, op := range sortedOps(seen) {
		var ss []series
		for li, lv := range res.Levels {
			o, ok := lv.Ops[op]
			if !ok || o.Count == 0 {
				continue
			}
			ss = append(ss, series{name: lv.Consistency, color: levelColor(lv.Consistency, li),
				values: []float64{o.P50Ms, o.P95Ms, o.P99Ms, o.P999Ms, o.MaxMs}})
		}
		if len(ss) == 0 {
			continue
		}
		d.Latency = append(d.Latency, template.HTML(logBarChart(
			fmt.Sprintf("%s latency by level (ms, log scale)", opTitle(op)), groups, ss, "latency (ms)")))
	}
	_ = allOps

	// Throughput over time, every level from its own start.
	if len(res.Levels) > 0 {
		n := 0
		for _, lv := range res.Levels {
			n = max(n, len(lv.ThroughputPerSec))
		}
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(i + 1)
		}
		var ss []series
		for li, lv := range res.Levels {
			vals := make([]float64, n)
			for i := range vals {
				vals[i] = math.NaN()
			}
			for i, v := range lv.ThroughputPerSec {
				vals[i] = float64(v)
			}
			ss = append(ss, series{name: lv.Consistency, color: levelColor(lv.Consistency, li), values: vals})
		}
		d.Throughput = template.HTML(lineChart("Throughput over time (transactions per second, 1 s buckets)", xs,
			func(x float64) string { return fmt.Sprintf("%gs", x) }, false, ss,
			"second of the level (each level from its own start; the last bucket may be partial)", "transactions/s", 0, 0,
			func(v float64) string { return fmtNum(v) }))
	}

	// t-visibility from `bench staleness`.
	if sr := res.Staleness; sr != nil && len(sr.Levels) > 0 {
		var xs []float64
		for _, p := range sr.Levels[0].Points {
			xs = append(xs, p.TMs)
		}
		var ss []series
		var vals []float64
		for li, l := range sr.Levels {
			s := series{name: l.Consistency, color: levelColor(l.Consistency, li)}
			if l.WriteConsistency != "" && l.WriteConsistency != l.Consistency {
				s.name += " (w=" + l.WriteConsistency + ")"
			}
			for _, p := range l.Points {
				v := math.NaN()
				if p.Reads > 0 {
					v = p.Fresh
				}
				s.values = append(s.values, v)
				vals = append(vals, v)
			}
			ss = append(ss, s)
		}
		lo := freshAxisMin(vals)
		widenEarlier(ss)
		d.Visibility = template.HTML(lineChart("t-visibility: fresh reads against time since the write was acknowledged", xs,
			func(x float64) string { return fmtNum(x) + " ms" }, true, ss,
			"t: delay between the write's acknowledgement and the read (read through another node)", "fresh reads", lo, 1,
			fmtPercent))
		d.VisNote = fmt.Sprintf("Measured as quorumkv bench staleness does: %d trials per point; each trial overwrites a key through one node, waits t after the acknowledgement and reads it through another.", sr.Trials)
	}

	// The workload's own staleness by age.
	if len(res.Levels) > 0 {
		xs := make([]float64, len(ageBucketsMs))
		copy(xs, ageBucketsMs[:])
		var ss []series
		var vals []float64
		any := false
		for li, lv := range res.Levels {
			s := series{name: lv.Consistency, color: levelColor(lv.Consistency, li), values: make([]float64, len(xs))}
			for i := range s.values {
				s.values[i] = math.NaN()
			}
			for _, p := range lv.StalenessByAge {
				for i, x := range xs {
					if x == p.TMs && p.Reads >= minAgeReads {
						s.values[i] = p.Fresh
						vals = append(vals, p.Fresh)
						any = true
					}
				}
			}
			ss = append(ss, s)
		}
		if any {
			lo := freshAxisMin(vals)
			widenEarlier(ss)
			d.AgeCurve = template.HTML(lineChart("Staleness during the workload: fresh reads by time since the key's last acknowledged write", xs,
				ageLabel, true, ss, "time between the key's last acknowledged write and the read's start (ms, bucket)", "fresh reads", lo, 1, fmtPercent))
		}
	}
	return d
}

// minAgeReads is the fewest reads an age bucket needs to be drawn: a share
// of three reads says nothing.
const minAgeReads = 10

func ageLabel(x float64) string {
	for i, b := range ageBucketsMs {
		if b == x {
			if i == len(ageBucketsMs)-1 {
				return "≥" + fmtNum(b) + " ms"
			}
			return fmtNum(b) + "–" + fmtNum(ageBucketsMs[i+1])
		}
	}
	return fmtNum(x)
}

// freshAxisMin picks the bottom of a fresh-share axis: 0 when some share
// is low, else a round value just under the lowest, so small differences
// near 100% stay visible.
func freshAxisMin(vals []float64) float64 {
	lo := 1.0
	for _, v := range vals {
		if !math.IsNaN(v) {
			lo = math.Min(lo, v)
		}
	}
	if lo < 0.5 {
		return 0
	}
	return math.Min(0.9, math.Floor((lo-0.01)*20)/20)
}

func fmtPercent(v float64) string {
	s := fmt.Sprintf("%.1f", 100*v)
	s = strings.TrimSuffix(s, ".0")
	return s + "%"
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func opTitle(op Op) string {
	switch op {
	case OpRead:
		return "Read"
	case OpUpdate:
		return "Update"
	case OpInsert:
		return "Insert"
	case OpReadModifyWrite:
		return "Read-modify-write"
	}
	return string(op)
}
