package bench

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/quorumkv/quorumkv/client"
)

// Latencies are recorded in microseconds, from 1µs to 100s, to three
// significant digits (0.1% resolution at every magnitude).
const (
	histMinMicros = 1
	histMaxMicros = 100_000_000
	histSigFigs   = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
}

// ErrorKind classifies a failed operation.
type ErrorKind string

// The error kinds reported in OpResult.ErrorsByKind.
const (
	// ErrorUnavailable: fewer replicas than the level needs answered (503).
	ErrorUnavailable ErrorKind = "unavailable"
	// ErrorTimeout: the server (504) or the client gave up waiting; the
	// outcome is unknown.
	ErrorTimeout ErrorKind = "timeout"
	// ErrorOther: anything else (transport errors, 5xx, bad requests).
	ErrorOther ErrorKind = "other"
)

// Classify returns the kind of err.
func Classify(err error) ErrorKind {
	switch {
	case errors.Is(err, client.ErrUnavailable):
		return ErrorUnavailable
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ErrorTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrorTimeout
	}
	return ErrorOther
}

// opStats collects one operation type at one level for one worker; the
// workers' are merged at the end of the level, so the hot path takes no
// lock.
type opStats struct {
	hist     *hdrhistogram.Histogram // successful operations, µs
	errors   map[ErrorKind]int64
	stale    int64
	notFound int64
	// ages counts reads by the time since the key's last acknowledged write
	// (ageBuckets), fresh and stale.
	ages [len(ageBucketsMs)]ageCount
}

type ageCount struct{ reads, stale int64 }

func newOpStats() *opStats {
	return &opStats{hist: newHistogram(), errors: map[ErrorKind]int64{}}
}

// record adds one successful operation of latency d.
func (s *opStats) record(d time.Duration) {
	us := d.Microseconds()
	if us < histMinMicros {
		us = histMinMicros
	}
	if us > histMaxMicros {
		us = histMaxMicros
	}
	_ = s.hist.RecordValue(us) // in range by construction
}

// merge adds o into s.
func (s *opStats) merge(o *opStats) {
	s.hist.Merge(o.hist)
	for k, v := range o.errors {
		s.errors[k] += v
	}
	s.stale += o.stale
	s.notFound += o.notFound
	for i := range s.ages {
		s.ages[i].reads += o.ages[i].reads
		s.ages[i].stale += o.ages[i].stale
	}
}

// ageBucketsMs are the lower bounds of the staleness-by-age buckets: a read
// that started t ms after its key's last acknowledged write counts in the
// last bucket whose bound is <= t.
var ageBucketsMs = [...]float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}

func ageBucket(ms float64) int {
	b := 0
	for i, lo := range ageBucketsMs {
		if ms >= lo {
			b = i
		}
	}
	return b
}

// levelStats is one worker's (or, merged, everyone's) figures for a level.
type levelStats struct {
	ops map[Op]*opStats
	// perSecond[i] counts the transactions that completed successfully in
	// second i of the level.
	perSecond []int64
	// transactions counts successful top-level operations.
	transactions int64
}

func newLevelStats() *levelStats { return &levelStats{ops: map[Op]*opStats{}} }

func (l *levelStats) op(op Op) *opStats {
	s := l.ops[op]
	if s == nil {
		s = newOpStats()
		l.ops[op] = s
	}
	return s
}

func (l *levelStats) tick(sec int) {
	for len(l.perSecond) <= sec {
		l.perSecond = append(l.perSecond, 0)
	}
	l.perSecond[sec]++
	l.transactions++
}

func (l *levelStats) merge(o *levelStats) {
	for op, s := range o.ops {
		l.op(op).merge(s)
	}
	for len(l.perSecond) < len(o.perSecond) {
		l.perSecond = append(l.perSecond, 0)
	}
	for i, v := range o.perSecond {
		l.perSecond[i] += v
	}
	l.transactions += o.transactions
}
