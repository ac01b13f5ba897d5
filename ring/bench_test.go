package ring

import (
	"fmt"
	"testing"
)

func benchMembers(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("node-%03d.example.internal", i)}
	}
	return ms
}

// BenchmarkNew measures a full ring build, which membership does on every
// change.
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{3, 16, 100} {
		ms := benchMembers(n)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(ms, DefaultPartitions, 3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPartitionOf measures key placement, done on every request.
func BenchmarkPartitionOf(b *testing.B) {
	r, err := New(benchMembers(16), DefaultPartitions, 3)
	if err != nil {
		b.Fatal(err)
	}
	key := []byte("user:0000012345:profile")
	b.ReportAllocs()
	for b.Loop() {
		_ = r.PartitionOf(key)
	}
}

// BenchmarkPreferenceList measures the full preference list, which the
// coordinator asks for on every request.
func BenchmarkPreferenceList(b *testing.B) {
	for _, n := range []int{5, 16, 100} {
		r, err := New(benchMembers(n), DefaultPartitions, 3)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			p := 0
			for b.Loop() {
				_ = r.PreferenceList(p)
				p = (p + 1) % DefaultPartitions
			}
		})
	}
}
