package bench

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// hotShare returns the share of draws that went to the hottest frac of the
// n keys.
func hotShare(counts []int, frac float64) float64 {
	c := append([]int(nil), counts...)
	sort.Sort(sort.Reverse(sort.IntSlice(c)))
	top := int(math.Ceil(frac * float64(len(c))))
	hot, total := 0, 0
	for i, v := range c {
		if i < top {
			hot += v
		}
		total += v
	}
	return float64(hot) / float64(total)
}

func draw(t *testing.T, kc KeyChooser, n uint64, draws int, seed uint64) []int {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	counts := make([]int, n)
	for i := 0; i < draws; i++ {
		k := kc.Next(r, n)
		if k >= n {
			t.Fatalf("chooser returned %d, outside 0..%d", k, n-1)
		}
		counts[k]++
	}
	return counts
}

// theoreticalScrambledHotShare computes the expected share of the hottest
// frac of n keys under YCSB's scrambled zipfian: rank i has probability
// 1/((i+1)^theta * zetan) over 10^10 ranks and lands on key fnv64(i) % n.
// The first `exact` ranks are placed exactly; the remaining mass is spread
// evenly (those ranks are many and each tiny, and the hash scatters them).
func theoreticalScrambledHotShare(n uint64, frac float64) float64 {
	const exact = 2_000_000
	mass := make([]float64, n)
	placed := 0.0
	for i := uint64(0); i < exact; i++ {
		p := 1 / (math.Pow(float64(i+1), ZipfianConstant) * scrambledZetan)
		mass[fnv64(i)%n] += p
		placed += p
	}
	for k := range mass {
		mass[k] += (1 - placed) / float64(n)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(mass)))
	top := int(math.Ceil(frac * float64(n)))
	s := 0.0
	for _, m := range mass[:top] {
		s += m
	}
	return s
}

func TestScrambledZipfianSkew(t *testing.T) {
	const n, draws = 10000, 400_000
	want := theoreticalScrambledHotShare(n, 0.01)
	got := hotShare(draw(t, NewKeyChooser(Zipfian, n), n, draws, 7), 0.01)
	t.Logf("hottest 1%% of keys: %.4f of draws, theory %.4f", got, want)
	// The Gray et al. sampler approximates the zipfian for ranks >= 2, so
	// allow 8% relative; the sampling error at 400k draws is far smaller.
	if math.Abs(got-want) > 0.08*want {
		t.Fatalf("zipfian: hottest 1%% got %.4f of draws, want %.4f ± 8%%", got, want)
	}
	// Negative control: uniform keys must fail the same bound.
	uni := hotShare(draw(t, NewKeyChooser(Uniform, n), n, draws, 7), 0.01)
	if math.Abs(uni-want) <= 0.08*want {
		t.Fatalf("negative control: uniform draws (hot share %.4f) pass the zipfian bound", uni)
	}
}

func TestZipfianRankZero(t *testing.T) {
	// Rank 0 has probability 1/zeta(n) exactly (the sampler's first branch).
	const n, draws = 1000, 200_000
	z := newZipfian(n, ZipfianConstant)
	r := rand.New(rand.NewPCG(3, 3))
	zeros := 0
	for i := 0; i < draws; i++ {
		if z.next(r, n) == 0 {
			zeros++
		}
	}
	want := 1 / zeta(0, n, ZipfianConstant, 0)
	got := float64(zeros) / draws
	if math.Abs(got-want) > 4*math.Sqrt(want*(1-want)/draws) {
		t.Fatalf("rank 0: %.4f of draws, want %.4f", got, want)
	}
}

func TestZipfianGrowsIncrementally(t *testing.T) {
	z := newZipfian(100, ZipfianConstant)
	r := rand.New(rand.NewPCG(1, 2))
	z.next(r, 5000)
	want := zeta(0, 5000, ZipfianConstant, 0)
	if math.Abs(z.zetan-want) > 1e-9 {
		t.Fatalf("zeta after growing to 5000 = %v, want %v", z.zetan, want)
	}
	z.next(r, 10)
	if want := zeta(0, 10, ZipfianConstant, 0); math.Abs(z.zetan-want) > 1e-9 {
		t.Fatalf("zeta after shrinking to 10 = %v, want %v", z.zetan, want)
	}
}

func TestLatestFavoursNewestKeys(t *testing.T) {
	const n, draws = 10000, 200_000
	counts := draw(t, NewKeyChooser(Latest, n), n, draws, 11)
	newest := 0
	for k := n - n/100; k < n; k++ {
		newest += counts[k]
	}
	got := float64(newest) / draws
	want := zeta(0, n/100, ZipfianConstant, 0) / zeta(0, n, ZipfianConstant, 0)
	t.Logf("newest 1%% of keys: %.4f of draws, theory %.4f", got, want)
	if math.Abs(got-want) > 0.08*want {
		t.Fatalf("latest: newest 1%% got %.4f of draws, want %.4f ± 8%%", got, want)
	}
	if counts[n-1] < counts[n-2] || counts[n-2] < counts[n/2] {
		t.Fatalf("latest: the newest key is not the hottest (%d, %d, middle %d)", counts[n-1], counts[n-2], counts[n/2])
	}
	// As the key space grows, the hot spot follows the newest key.
	kc := NewKeyChooser(Latest, n)
	r := rand.New(rand.NewPCG(5, 5))
	hits := 0
	for i := 0; i < 20000; i++ {
		k := kc.Next(r, 2*n)
		if k >= 2*n {
			t.Fatalf("latest returned %d of %d", k, 2*n)
		}
		if k >= 2*n-100 {
			hits++
		}
	}
	if hits < 20000/3 {
		t.Fatalf("after growing to %d keys only %d of 20000 draws hit the newest 100", 2*n, hits)
	}
}

func TestUniformIsFlat(t *testing.T) {
	const n, draws = 100, 200_000
	counts := draw(t, NewKeyChooser(Uniform, n), n, draws, 13)
	// Chi-square with 99 degrees of freedom: the 99.9% quantile is ~148.
	exp := float64(draws) / n
	chi := 0.0
	for _, c := range counts {
		chi += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	if chi > 148 {
		t.Fatalf("uniform: chi-square %.1f over 99 dof, want < 148", chi)
	}
	// Negative control: zipfian draws fail the same test.
	zc := draw(t, NewKeyChooser(Zipfian, n), n, draws, 13)
	chi = 0
	for _, c := range zc {
		chi += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	if chi <= 148 {
		t.Fatalf("negative control: zipfian draws pass the uniform chi-square (%.1f)", chi)
	}
}

func TestInsertCounterLimitWaitsForGaps(t *testing.T) {
	c := newInsertCounter(10)
	a, b, d := c.Claim(), c.Claim(), c.Claim()
	if a != 10 || b != 11 || d != 12 {
		t.Fatalf("claims %d %d %d, want 10 11 12", a, b, d)
	}
	c.Done(b)
	c.Done(d)
	if got := c.Limit(); got != 10 {
		t.Fatalf("limit %d while 10 is in flight, want 10", got)
	}
	c.Done(a)
	if got := c.Limit(); got != 13 {
		t.Fatalf("limit %d after all done, want 13", got)
	}
}

func TestOpChooserFollowsMix(t *testing.T) {
	oc := newOpChooser(workloads["b"].Mix)
	r := rand.New(rand.NewPCG(1, 1))
	reads := 0
	const n = 100000
	for i := 0; i < n; i++ {
		if oc.next(r) == OpRead {
			reads++
		}
	}
	if got := float64(reads) / n; math.Abs(got-0.95) > 0.005 {
		t.Fatalf("workload b: %.4f reads, want 0.95", got)
	}
}
