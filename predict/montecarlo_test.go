package predict

import (
	"math"
	"strings"
	"testing"
)

func constant(ms float64) []float64 { return []float64{ms} }

// spread returns n delays evenly spread over [lo, hi].
func spread(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	return out
}

func predictT(t *testing.T, s Samples, n, r, w int, ts ...float64) Prediction {
	t.Helper()
	cfg := DefaultConfig()
	cfg.N, cfg.R, cfg.W, cfg.T = n, r, w, ts
	p, err := Predict(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPredictKnownAnswers(t *testing.T) {
	lumpyWrites := Samples{W: []float64{0, 100}, A: constant(0), R: constant(0), S: spread(0, 1, 1000)}
	for _, tc := range []struct {
		name    string
		s       Samples
		n, r, w int
		t       float64
		want    float64
	}{
		// No delay at all: the write is everywhere when it is acknowledged.
		{"zero delays, R=W=1", Samples{W: constant(0), A: constant(0), R: constant(0), S: constant(0)}, 3, 1, 1, 0, 1},
		// R+W>N: a responder is one of the acknowledgers, whatever the delays.
		{"R+W>N, wild delays", Samples{W: spread(0, 500, 50), A: spread(0, 3, 50), R: spread(0, 2, 50), S: spread(0, 400, 50)}, 3, 2, 2, 0, 1},
		{"R=1 W=N", Samples{W: spread(0, 500, 50), A: spread(0, 3, 50), R: spread(0, 2, 50), S: spread(0, 400, 50)}, 3, 1, 3, 0, 1},
		{"R=N W=1", Samples{W: spread(0, 500, 50), A: spread(0, 3, 50), R: spread(0, 2, 50), S: spread(0, 400, 50)}, 3, 3, 1, 0, 1},
		// N=3, W=R=1, each replica gets the write after 0 or 100ms (even
		// odds), acks, reads and answers instantly except for a random S
		// that makes the responder a uniformly random replica. The commit
		// is at 0 unless all three drew 100 (1/8: then everyone has it);
		// otherwise the read is fresh when its responder drew 0 (1/2).
		// Fresh before 100ms: 1/8 + 7/8 × 4/7 = 5/8.
		{"W=R=1, lumpy W, t=0", lumpyWrites, 3, 1, 1, 0, 5.0 / 8},
		{"W=R=1, lumpy W, t=50", lumpyWrites, 3, 1, 1, 50, 5.0 / 8},
		{"W=R=1, lumpy W, t=100", lumpyWrites, 3, 1, 1, 100, 1},
		// Same with W=2: the commit is at 100 when at most one replica
		// drew 0 (then every replica has the write at the commit), else at
		// 0, when the responder is stale if it drew 100: with exactly two
		// zeros (3/8) that is 1/3, with three (1/8) never. Fresh: 7/8.
		{"W=2 R=1, lumpy W, t=0", lumpyWrites, 3, 1, 2, 0, 7.0 / 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := predictT(t, tc.s, tc.n, tc.r, tc.w, tc.t)
			got := p.Points[0].Fresh
			// 100000 trials: the standard error is below 0.0016.
			if math.Abs(got-tc.want) > 0.008 {
				t.Fatalf("fresh at t=%v: %.4f, want %.4f", tc.t, got, tc.want)
			}
		})
	}
}

// TestPredictStaleAtZero: with W=R=1 and writes that take long to reach
// most replicas, a read right after the acknowledgement is mostly stale,
// and freshness grows with t until every replica has the write.
func TestPredictStaleAtZero(t *testing.T) {
	s := Samples{W: append(constant(1), spread(50, 100, 99)...), A: constant(0.1), R: constant(0.1), S: spread(0.1, 0.2, 100)}
	p := predictT(t, s, 3, 1, 1, 0, 10, 60, 75, 100, 200)
	if f := p.Points[0].Fresh; f > 0.5 {
		t.Fatalf("fresh at t=0 = %.3f, want mostly stale", f)
	}
	for i := 1; i < len(p.Points); i++ {
		if p.Points[i].Fresh < p.Points[i-1].Fresh {
			t.Fatalf("freshness fell from %v to %v between t=%v and t=%v", p.Points[i-1].Fresh, p.Points[i].Fresh, p.Points[i-1].T, p.Points[i].T)
		}
	}
	if last := p.Points[len(p.Points)-1]; last.Fresh != 1 {
		t.Fatalf("fresh at t=%v = %v, want 1 (every write has landed by then)", last.T, last.Fresh)
	}
	if p.T999 <= 10 || p.T999 > 100 {
		t.Fatalf("t(99.9%%) = %v ms, want within the spread of W (up to 100ms)", p.T999)
	}
}

func TestPredictLatencies(t *testing.T) {
	// Acks after exactly 1+2=3ms, reads answer after 4+5=9ms.
	s := Samples{W: constant(1), A: constant(2), R: constant(4), S: constant(5)}
	p := predictT(t, s, 3, 2, 2, 0)
	if p.WriteP50 != 3 || p.WriteP99 != 3 || p.ReadP50 != 9 || p.ReadP99 != 9 {
		t.Fatalf("latencies %+v, want write 3ms and read 9ms", p)
	}
	if p.T99 != 0 || p.T999 != 0 || p.Points[0].Fresh != 1 {
		t.Fatalf("constant delays, R+W>N: %+v, want always fresh", p)
	}
}

func TestPredictReplays(t *testing.T) {
	s := Samples{W: spread(0, 10, 30), A: spread(0, 1, 30), R: spread(0, 1, 30), S: spread(0, 5, 30)}
	a := predictT(t, s, 3, 1, 1, DefaultT...)
	b := predictT(t, s, 3, 1, 1, DefaultT...)
	for i := range a.Points {
		if a.Points[i] != b.Points[i] {
			t.Fatalf("same seed, different curves: %v vs %v", a.Points, b.Points)
		}
	}
}

func TestPredictValidate(t *testing.T) {
	cfg := Config{N: 3, R: 4, W: 0, Trials: 0, T: []float64{-1}}
	_, err := Predict(Samples{}, cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"R must be within", "W must be within", "trials", "-1 ms", "no W samples", "no S samples"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func BenchmarkPredict(b *testing.B) {
	s := Samples{W: spread(0, 10, 2048), A: spread(0, 1, 2048), R: spread(0, 1, 2048), S: spread(0, 5, 2048)}
	cfg := DefaultConfig()
	for b.Loop() {
		if _, err := Predict(s, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
