package predict

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Kind is one of the four delays of the WARS model (Bailis et al., "Probabilistically
// Bounded Staleness", VLDB 2012).
type Kind int

// The WARS delays, each measured per replica message.
const (
	// W: from the coordinator sending a write to the replica applying it.
	W Kind = iota
	// A: from the replica applying a write to the coordinator receiving its ack.
	A
	// R: from the coordinator sending a read to the replica reading.
	R
	// S: from the replica reading to the coordinator receiving the response.
	S
	kinds
)

func (k Kind) String() string { return [...]string{"W", "A", "R", "S"}[k] }

// reservoirSize bounds the samples kept per kind: enough for a stable
// distribution, small enough to ship in one status answer.
const reservoirSize = 2048

// Recorder keeps a uniform random sample (reservoir sampling) of each WARS
// delay observed on a node. It is safe for concurrent use and cheap enough
// for the request path: one lock and one random draw per observation.
type Recorder struct {
	mu   sync.Mutex
	rng  *rand.Rand
	seen [kinds]int64
	res  [kinds][]float64
}

// NewRecorder returns an empty recorder whose sampling is seeded by seed.
func NewRecorder(seed uint64) *Recorder {
	return &Recorder{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Observe records one delay of the given kind. Negative delays (clock skew
// between hosts) are recorded as zero.
func (r *Recorder) Observe(k Kind, d time.Duration) {
	if r == nil || k < 0 || k >= kinds {
		return
	}
	ms := float64(d) / float64(time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[k]++
	if len(r.res[k]) < reservoirSize {
		r.res[k] = append(r.res[k], ms)
		return
	}
	if j := r.rng.Int64N(r.seen[k]); j < reservoirSize {
		r.res[k][j] = ms
	}
}

// Samples are delays in milliseconds, per WARS kind.
type Samples struct {
	W []float64 `json:"w_ms"`
	A []float64 `json:"a_ms"`
	R []float64 `json:"r_ms"`
	S []float64 `json:"s_ms"`
}

// Snapshot copies the current samples.
func (r *Recorder) Snapshot() Samples {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := func(k Kind) []float64 { return append([]float64(nil), r.res[k]...) }
	return Samples{W: cp(W), A: cp(A), R: cp(R), S: cp(S)}
}

// Merge appends o's samples to s (to pool the samples of several nodes).
func (s Samples) Merge(o Samples) Samples {
	return Samples{W: append(s.W, o.W...), A: append(s.A, o.A...), R: append(s.R, o.R...), S: append(s.S, o.S...)}
}
