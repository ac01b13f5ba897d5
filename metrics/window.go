package metrics

import (
	"math"
	"sort"
	"sync"
	"time"
)

// The request window behind /v1/stats: one slot per second for the last
// minute, each with a count, an error count and a coarse latency histogram
// per kind of request. Prometheus histograms are cumulative, so a rate or a
// recent percentile needs two scrapes and a subtraction; the dashboard (and
// curl) gets them from here in one request instead.

const (
	windowSlots = 60
	// Latency buckets grow by bucketGrowth from bucketBase: 64 buckets span
	// 50µs to about 30s, each about 25% wide, which is plenty for a
	// dashboard (the exact figures are in /metrics and the bench tool).
	latencyBuckets = 64
	bucketBase     = 50 * time.Microsecond
	bucketGrowth   = 1.25
)

var logGrowth = math.Log(bucketGrowth)

type kindKey struct{ api, op, level string }

type agg struct {
	count, errors uint64
	buckets       [latencyBuckets]uint32
}

func (a *agg) add(isErr bool, d time.Duration) {
	a.count++
	if isErr {
		a.errors++
	}
	a.buckets[bucketOf(d)]++
}

func (a *agg) merge(b *agg) {
	a.count += b.count
	a.errors += b.errors
	for i, v := range b.buckets {
		a.buckets[i] += v
	}
}

// quantileMs estimates the q-quantile in milliseconds: the geometric middle
// of the bucket that holds it.
func (a *agg) quantileMs(q float64) float64 {
	if a.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(a.count)))
	var seen uint64
	for i, v := range a.buckets {
		seen += uint64(v)
		if seen >= rank {
			upper := float64(bucketBase) * math.Pow(bucketGrowth, float64(i))
			mid := upper / math.Sqrt(bucketGrowth)
			if i == 0 {
				mid = upper / 2
			}
			return math.Round(mid/float64(time.Millisecond)*1000) / 1000
		}
	}
	return 0
}

func bucketOf(d time.Duration) int {
	if d <= bucketBase {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(bucketBase)) / logGrowth))
	return min(max(i, 0), latencyBuckets-1)
}

type slot struct {
	sec   int64
	kinds map[kindKey]*agg
}

// window is safe for concurrent use; its mutex is held for a map lookup and
// a few increments per request.
type window struct {
	mu    sync.Mutex
	slots [windowSlots]slot
}

func newWindow() *window {
	w := &window{}
	for i := range w.slots {
		w.slots[i].kinds = map[kindKey]*agg{}
	}
	return w
}

func (w *window) add(now time.Time, k kindKey, isErr bool, d time.Duration) {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.slots[int(sec%windowSlots)]
	if s.sec != sec {
		s.sec = sec
		clear(s.kinds)
	}
	a := s.kinds[k]
	if a == nil {
		a = &agg{}
		s.kinds[k] = a
	}
	a.add(isErr, d)
}

// snapshot summarises the last win complete seconds by kind, and the last
// minute second by second.
func (w *window) snapshot(now time.Time, win int) (rows []RequestStats, total RequestStats, series []SecondStats) {
	cur := now.Unix()
	byKind := map[kindKey]*agg{}
	var all agg
	series = make([]SecondStats, 0, windowSlots-1)
	w.mu.Lock()
	defer w.mu.Unlock()
	for sec := cur - windowSlots + 1; sec < cur; sec++ {
		var second agg
		if s := &w.slots[int(sec%windowSlots)]; s.sec == sec {
			for k, a := range s.kinds {
				second.merge(a)
				if sec >= cur-int64(win) {
					b := byKind[k]
					if b == nil {
						b = &agg{}
						byKind[k] = b
					}
					b.merge(a)
					all.merge(a)
				}
			}
		}
		series = append(series, SecondStats{Unix: sec, Count: second.count, Errors: second.errors, P50ms: second.quantileMs(0.5), P99ms: second.quantileMs(0.99)})
	}
	row := func(a *agg) RequestStats {
		return RequestStats{
			Count: a.count, Errors: a.errors,
			PerSec: float64(a.count) / float64(win), ErrorsPerSec: float64(a.errors) / float64(win),
			P50ms: a.quantileMs(0.5), P95ms: a.quantileMs(0.95), P99ms: a.quantileMs(0.99),
		}
	}
	rows = make([]RequestStats, 0, len(byKind))
	for k, a := range byKind {
		r := row(a)
		r.API, r.Op, r.Level = k.api, k.op, k.level
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Count != rows[j].Count {
			return rows[i].Count > rows[j].Count
		}
		a, b := rows[i], rows[j]
		return a.API+a.Op+a.Level < b.API+b.Op+b.Level
	})
	return rows, row(&all), series
}
