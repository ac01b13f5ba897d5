package predict

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// DefaultT are the delays after a write's acknowledgement, in milliseconds,
// at which a prediction reports the chance of a fresh read.
var DefaultT = []float64{0, 1, 2, 5, 10, 20, 50, 100}

// Config is what Predict simulates.
type Config struct {
	// N is the replication factor, R and W the read and write quorums
	// (1..N each).
	N, R, W int
	// Trials is the number of simulated write-then-read pairs. Default
	// 100000: the curve is then within about ±0.3 percentage points.
	Trials int
	// T are the delays after the write's acknowledgement (ms) at which to
	// report freshness. Default DefaultT.
	T []float64
	// Seed seeds the simulation, so a prediction replays exactly.
	Seed uint64
}

// DefaultConfig returns a Config for N=3 at quorum (R=W=2), 100000 trials
// and the default delays.
func DefaultConfig() Config {
	return Config{N: 3, R: 2, W: 2, Trials: 100000, T: slices.Clone(DefaultT), Seed: 1}
}

// Validate reports every problem with c and s at once.
func (c Config) Validate(s Samples) error {
	var errs []error
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("predict: N must be at least 1, not %d", c.N))
	}
	if c.R < 1 || c.R > c.N {
		errs = append(errs, fmt.Errorf("predict: R must be within 1..N (%d), not %d", c.N, c.R))
	}
	if c.W < 1 || c.W > c.N {
		errs = append(errs, fmt.Errorf("predict: W must be within 1..N (%d), not %d", c.N, c.W))
	}
	if c.Trials < 1 {
		errs = append(errs, fmt.Errorf("predict: trials must be at least 1, not %d", c.Trials))
	}
	for _, t := range c.T {
		if t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
			errs = append(errs, fmt.Errorf("predict: delay %v ms is not a finite time ≥ 0", t))
		}
	}
	for _, k := range []struct {
		name string
		v    []float64
	}{{"W", s.W}, {"A", s.A}, {"R", s.R}, {"S", s.S}} {
		if len(k.v) == 0 {
			errs = append(errs, fmt.Errorf("predict: no %s samples (the nodes have not served replicated reads and writes yet)", k.name))
		}
	}
	return errors.Join(errs...)
}

// Point is the predicted chance that a read started T ms after a write was
// acknowledged returns that write (or a newer one).
type Point struct {
	T     float64 `json:"t_ms"`
	Fresh float64 `json:"fresh"`
}

// Prediction is the outcome of Predict.
type Prediction struct {
	N      int     `json:"n"`
	R      int     `json:"r"`
	W      int     `json:"w"`
	Trials int     `json:"trials"`
	Points []Point `json:"points"`
	// T99 and T999 are the delays after the acknowledgement (ms) from which
	// 99% and 99.9% of reads are fresh (0 when they are at once).
	T99  float64 `json:"t99_ms"`
	T999 float64 `json:"t999_ms"`
	// WriteP50/P99 and ReadP50/P99 are the predicted latencies (ms) of the
	// replica phase of a write (until W acks) and a read (until R
	// answers).
	WriteP50 float64 `json:"write_p50_ms"`
	WriteP99 float64 `json:"write_p99_ms"`
	ReadP50  float64 `json:"read_p50_ms"`
	ReadP99  float64 `json:"read_p99_ms"`
	// Samples counts the delays the simulation drew from, per WARS kind.
	Samples map[string]int `json:"samples"`
}

// Predict runs the WARS Monte Carlo simulation of Bailis et al. (PBS, VLDB
// 2012) over the sampled delays. Each trial draws, for each of the N
// replicas, a W, A, R and S delay independently from the samples; the
// write is sent to every replica at time 0, reaches replica i at W_i and
// is acknowledged when the W-th ack has arrived (the W-th smallest
// W_i+A_i: the commit). A read starts t ms after the commit, reaches
// replica i at commit+t+R_i and returns when the first R answers (smallest
// R_i+S_i) have arrived; it is fresh when one of those R replicas had
// applied the write when the read reached it: W_i ≤ commit+t+R_i.
//
// Which replicas answer first does not depend on t, so each trial has a
// threshold t* = min over the responders of W_i−commit−R_i, fresh exactly
// for t ≥ t*; the curve is the distribution of t*, exact at every t for
// the trials drawn. When R+W > N every read is fresh (a responder is one
// of the W that acknowledged, so it had the write at the commit).
func Predict(s Samples, cfg Config) (Prediction, error) {
	if cfg.T == nil {
		cfg.T = DefaultT
	}
	if err := cfg.Validate(s); err != nil {
		return Prediction{}, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5bd1e9955bd1e995))
	draw := func(v []float64) float64 { return v[rng.IntN(len(v))] }
	n := cfg.N
	w, a, r, sv := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	ack := make([]float64, n)
	order := make([]int, n)
	thresholds := make([]float64, cfg.Trials)
	writeLat := make([]float64, cfg.Trials)
	readLat := make([]float64, cfg.Trials)
	for trial := range cfg.Trials {
		for i := range n {
			w[i], a[i], r[i], sv[i] = draw(s.W), draw(s.A), draw(s.R), draw(s.S)
			ack[i] = w[i] + a[i]
			order[i] = i
		}
		commit := kthSmallest(ack, cfg.W)
		// The R replicas that answer first (insertion sort: N is a handful);
		// ties in arrival go to the lower index, as good as random since
		// the draws are independent.
		for x := 1; x < n; x++ {
			for y := x; y > 0 && r[order[y]]+sv[order[y]] < r[order[y-1]]+sv[order[y-1]]; y-- {
				order[y], order[y-1] = order[y-1], order[y]
			}
		}
		th := math.Inf(1)
		for _, i := range order[:cfg.R] {
			th = min(th, w[i]-commit-r[i])
		}
		thresholds[trial] = th
		writeLat[trial] = commit
		readLat[trial] = r[order[cfg.R-1]] + sv[order[cfg.R-1]]
	}
	slices.Sort(thresholds)
	slices.Sort(writeLat)
	slices.Sort(readLat)
	p := Prediction{N: cfg.N, R: cfg.R, W: cfg.W, Trials: cfg.Trials,
		T99: max(0, quantile(thresholds, 0.99)), T999: max(0, quantile(thresholds, 0.999)),
		WriteP50: quantile(writeLat, 0.5), WriteP99: quantile(writeLat, 0.99),
		ReadP50: quantile(readLat, 0.5), ReadP99: quantile(readLat, 0.99),
		Samples: map[string]int{"w": len(s.W), "a": len(s.A), "r": len(s.R), "s": len(s.S)},
	}
	for _, t := range cfg.T {
		// Fresh at t: the trials whose threshold is at most t.
		fresh := sort.Search(len(thresholds), func(i int) bool { return thresholds[i] > t })
		p.Points = append(p.Points, Point{T: t, Fresh: float64(fresh) / float64(cfg.Trials)})
	}
	return p, nil
}

// kthSmallest returns the k-th smallest (1-based) of v, sorting v in place.
// N is a handful of replicas, so an insertion sort is cheapest.
func kthSmallest(v []float64, k int) float64 {
	for x := 1; x < len(v); x++ {
		for y := x; y > 0 && v[y] < v[y-1]; y-- {
			v[y], v[y-1] = v[y-1], v[y]
		}
	}
	return v[k-1]
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
