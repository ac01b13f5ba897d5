package ring

import (
	"fmt"
	"math/rand"
	"testing"
)

func TestMeasureScratch(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	worstAdd, worstRem, worstBal := 0.0, 0.0, 0.0
	for n := 3; n <= 16; n++ {
		for trial := 0; trial < 5; trial++ {
			ms := make([]Member, n+1)
			for i := range ms {
				ms[i] = Member{ID: fmt.Sprintf("node-%d-%x", i, rng.Int63())}
			}
			a, err := New(ms[:n], 1024, 3)
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(ms, 1024, 3)
			if err != nil {
				t.Fatal(err)
			}
			mv := moved(a, b)
			ratioAdd := mv * float64(n+1)
			mn, mx := 1<<30, 0
			for _, m := range a.Members() {
				c := a.PrimaryCount(m.ID)
				mn, mx = min(mn, c), max(mx, c)
			}
			bal := float64(mx) / float64(mn)
			// remove a random one from b
			k := rng.Intn(n + 1)
			rest := append(append([]Member{}, ms[:k]...), ms[k+1:]...)
			c, _ := New(rest, 1024, 3)
			ratioRem := moved(b, c) * float64(n+1)
			worstAdd = max(worstAdd, ratioAdd)
			worstRem = max(worstRem, ratioRem)
			worstBal = max(worstBal, bal)
			t.Logf("n=%d add=%.3f rem=%.3f bal=%d/%d", n, ratioAdd, ratioRem, mx, mn)
		}
	}
	t.Logf("worst add %.3f rem %.3f bal %.3f", worstAdd, worstRem, worstBal)
}

func moved(a, b *Ring) float64 {
	ch := 0
	for p := 0; p < a.Partitions(); p++ {
		for _, id := range b.Primaries(p) {
			if !a.IsPrimary(id, p) {
				ch++
			}
		}
	}
	return float64(ch) / float64(a.Partitions()*a.Replicas())
}
