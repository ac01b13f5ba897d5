package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomProblem builds a balancer problem with random costs and the
// floor/ceil bounds placeInZone uses.
func randomProblem(rng *rand.Rand, k, parts, d int) (*balancer, []int) {
	costs := make([]uint64, parts*k)
	for i := range costs {
		costs[i] = cost(rng.Uint64())
	}
	demand := uniform(parts, d)
	total := parts * d
	lo, hi := make([]int, k), make([]int, k)
	for i := range lo {
		lo[i], hi[i] = total/k, (total+k-1)/k
	}
	return newBalancer(k, parts, costs, lo, hi), demand
}

// certify checks that b's assignment is the cheapest one with its loads. The
// certificate: with b's potentials, no hand-over of a partition from a holder
// to a non-holder has negative reduced cost (so there is no cheaper
// rearrangement). It also checks demands and bounds.
func certify(b *balancer, demand []int) error {
	k, parts := b.k, b.parts
	for i := 0; i < k; i++ {
		if b.load[i] < b.lo[i] || b.load[i] > b.hi[i] {
			return fmt.Errorf("item %d load %d outside [%d,%d]", i, b.load[i], b.lo[i], b.hi[i])
		}
	}
	for p := 0; p < parts; p++ {
		held := 0
		for a := 0; a < k; a++ {
			if b.in[p*k+a] != b.held[a*parts+p] {
				return fmt.Errorf("in and held disagree at partition %d item %d", p, a)
			}
			if !b.in[p*k+a] {
				continue
			}
			held++
			for j := 0; j < k; j++ {
				if b.in[p*k+j] {
					continue
				}
				if rc := int64(b.cost[p*k+j]) - int64(b.cost[p*k+a]) + b.pot[a] - b.pot[j]; rc < 0 {
					return fmt.Errorf("handing partition %d from %d to %d has reduced cost %d < 0", p, a, j, rc)
				}
			}
		}
		if held != demand[p] {
			return fmt.Errorf("partition %d holds %d items, want %d", p, held, demand[p])
		}
	}
	return nil
}

// The balancer's answer must be the cheapest assignment with its loads, and
// its incrementally kept edge table must equal a fresh computation.
func TestBalancerOptimalAndConsistent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	augmented := 0
	for trial := 0; trial < 40; trial++ {
		k := 2 + rng.IntN(30)
		d := 1 + rng.IntN(min(k-1, 4))
		parts := 1 + rng.IntN(300)
		b, demand := randomProblem(rng, k, parts, d)
		if err := b.run(demand); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if err := certify(b, demand); err != nil {
			t.Fatalf("trial %d (k=%d, d=%d, parts=%d): %v", trial, k, d, parts, err)
		}
		if !b.graph {
			continue
		}
		augmented++
		gotW, gotVia := slices.Clone(b.w), slices.Clone(b.via)
		for a := 0; a < k; a++ {
			b.row(a)
		}
		if !slices.Equal(gotW, b.w) || !slices.Equal(gotVia, b.via) {
			t.Fatalf("trial %d: incremental edge table differs from a fresh one", trial)
		}
	}
	if augmented < 30 {
		t.Fatalf("only %d of 40 trials needed balancing; the test exercises too little", augmented)
	}
}

// Negative control for the certificate: swapping two items between two
// partitions keeps every load but makes the assignment costlier, and certify
// must notice.
func TestCertificateBites(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	k, parts, d := 10, 200, 3
	b, demand := randomProblem(rng, k, parts, d)
	if err := b.run(demand); err != nil {
		t.Fatal(err)
	}
	// Find a, j and partitions p, q with a in p only and j in q only, then
	// swap them.
	for p := 0; p < parts; p++ {
		for q := 0; q < parts; q++ {
			for a := 0; a < k; a++ {
				for j := 0; j < k; j++ {
					if b.in[p*k+a] && !b.in[p*k+j] && b.in[q*k+j] && !b.in[q*k+a] {
						b.set(p, a, false)
						b.set(p, j, true)
						b.set(q, j, false)
						b.set(q, a, true)
						if err := certify(b, demand); err == nil {
							t.Fatalf("certify accepted a swap of %d and %d between partitions %d and %d", a, j, p, q)
						}
						return
					}
				}
			}
		}
	}
	t.Fatal("no swap found")
}

func TestShareBounds(t *testing.T) {
	tests := []struct {
		name        string
		total       int
		weight      []int
		minv, maxv  []int
		wantLo, wHi []int
	}{
		{"equal", 3072, []int{2, 2, 2}, []int{0, 0, 0}, []int{1024, 1024, 1024}, []int{1024, 1024, 1024}, []int{1024, 1024, 1024}},
		{"proportional", 3000, []int{1, 2, 3}, []int{0, 0, 0}, []int{5000, 5000, 5000}, []int{500, 1000, 1500}, []int{500, 1000, 1500}},
		{"clamped high", 3072, []int{4, 1, 1}, []int{0, 0, 0}, []int{1024, 1024, 1024}, []int{1024, 1024, 1024}, []int{1024, 1024, 1024}},
		{"clamped low", 3072, []int{4, 1}, []int{1024, 1024}, []int{2048, 1024}, []int{2048, 1024}, []int{2048, 1024}},
		{"fractional", 10, []int{1, 1, 1}, []int{0, 0, 0}, []int{10, 10, 10}, []int{3, 3, 3}, []int{4, 4, 4}},
	}
	for _, tt := range tests {
		lo, hi := shareBounds(tt.total, tt.weight, tt.minv, tt.maxv)
		if !slices.Equal(lo, tt.wantLo) || !slices.Equal(hi, tt.wHi) {
			t.Errorf("%s: shareBounds = %v, %v; want %v, %v", tt.name, lo, hi, tt.wantLo, tt.wHi)
		}
		sumLo, sumHi := 0, 0
		for j := range lo {
			sumLo += lo[j]
			sumHi += hi[j]
		}
		if sumLo > tt.total || sumHi < tt.total {
			t.Errorf("%s: bounds %v..%v do not bracket %d", tt.name, lo, hi, tt.total)
		}
	}
}
