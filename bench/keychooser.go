package bench

import (
	"math"
	"math/rand/v2"
	"sync"
)

// KeyChooser picks the record number of an operation's key among the
// records that exist, 0..count-1 (count grows as workload D inserts). A
// chooser keeps per-worker state and is not safe for concurrent use: each
// worker has its own.
type KeyChooser interface {
	Next(r *rand.Rand, count uint64) uint64
}

// NewKeyChooser returns a chooser for d; records is the initial count
// (latest precomputes its zeta for it).
func NewKeyChooser(d Distribution, records uint64) KeyChooser {
	return chooserFactory(d, records)()
}

// chooserFactory returns a maker of per-worker choosers that share what can
// be computed once (the O(records) zeta of latest).
func chooserFactory(d Distribution, records uint64) func() KeyChooser {
	switch d {
	case Zipfian:
		return func() KeyChooser { return newScrambledZipfian() }
	case Latest:
		zetan := zeta(0, records, ZipfianConstant, 0)
		return func() KeyChooser {
			return &skewedLatest{z: newZipfianWithZeta(records, ZipfianConstant, zetan)}
		}
	}
	return func() KeyChooser { return uniformChooser{} }
}

type uniformChooser struct{}

func (uniformChooser) Next(r *rand.Rand, count uint64) uint64 { return r.Uint64N(count) }

// ZipfianConstant is YCSB's default skew (theta).
const ZipfianConstant = 0.99

// zipfian draws ranks 0..items-1 with P(rank i) proportional to
// 1/(i+1)^theta, by the method of Gray et al., "Quickly Generating
// Billion-Record Synthetic Databases" (SIGMOD 1994), as YCSB's
// ZipfianGenerator does. Rank 0 is the most popular. When items grows the
// normalising constant zeta is extended incrementally, so a growing key
// space (workload D) costs only the new terms.
type zipfian struct {
	items      uint64
	theta      float64
	alpha      float64
	zetan      float64
	zeta2theta float64
	eta        float64
}

func newZipfian(items uint64, theta float64) *zipfian {
	return newZipfianWithZeta(items, theta, zeta(0, items, theta, 0))
}

// newZipfianWithZeta builds a generator whose zeta is already known (YCSB's
// scrambled zipfian uses a precomputed one for 10^10 items).
func newZipfianWithZeta(items uint64, theta, zetan float64) *zipfian {
	z := &zipfian{theta: theta, alpha: 1 / (1 - theta), zeta2theta: zeta(0, 2, theta, 0)}
	z.resize(items, zetan)
	return z
}

func (z *zipfian) resize(items uint64, zetan float64) {
	z.items, z.zetan = items, zetan
	z.eta = (1 - math.Pow(2/float64(items), 1-z.theta)) / (1 - z.zeta2theta/zetan)
}

// next draws a rank in 0..items-1, first growing (or rebuilding) zeta when
// items differs from the generator's current size.
func (z *zipfian) next(r *rand.Rand, items uint64) uint64 {
	if items != z.items {
		if items > z.items {
			z.resize(items, zeta(z.items, items, z.theta, z.zetan))
		} else {
			z.resize(items, zeta(0, items, z.theta, 0))
		}
	}
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < 1+math.Pow(0.5, z.theta) {
		return min(1, z.items-1)
	}
	ret := uint64(float64(z.items) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(ret, z.items-1)
}

// zeta returns sum_{i=from+1..to} 1/i^theta added to initial: the zeta of
// `to` items, given the zeta of `from` items.
func zeta(from, to uint64, theta, initial float64) float64 {
	sum := initial
	for i := from + 1; i <= to; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// YCSB's scrambled zipfian draws a rank from a zipfian over 10^10 items
// (with its precomputed zeta) and hashes it onto the key space, so the hot
// keys are scattered rather than clustered at the low record numbers.
const (
	scrambledItems = 10_000_000_000
	scrambledZetan = 26.46902820178302
)

type scrambledZipfian struct{ z *zipfian }

func newScrambledZipfian() *scrambledZipfian {
	return &scrambledZipfian{z: newZipfianWithZeta(scrambledItems, ZipfianConstant, scrambledZetan)}
}

func (s *scrambledZipfian) Next(r *rand.Rand, count uint64) uint64 {
	return fnv64(s.z.next(r, scrambledItems)) % count
}

// fnv64 is YCSB's Utils.fnvhash64: FNV-1 over the 8 bytes of v, low byte
// first, made non-negative.
func fnv64(v uint64) uint64 {
	const (
		offset = 0xCBF29CE484222325
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < 8; i++ {
		octet := v & 0xff
		v >>= 8
		h ^= octet
		h *= prime
	}
	return h & math.MaxInt64
}

// skewedLatest is YCSB's SkewedLatestGenerator: the newest record is the
// most popular, then the one before it, following a zipfian over recency.
type skewedLatest struct{ z *zipfian }

func (s *skewedLatest) Next(r *rand.Rand, count uint64) uint64 {
	return count - 1 - s.z.next(r, count)
}

// insertCounter hands out the record numbers of inserts and tracks which
// are acknowledged: Limit is the count of records 0..Limit-1 that all
// completed, so readers never pick a key whose insert is still in flight
// (YCSB's AcknowledgedCounterGenerator). A failed insert completes too: its
// key may be missing, which a read reports as not found.
type insertCounter struct {
	mu      sync.Mutex
	next    uint64
	limit   uint64
	pending map[uint64]bool
}

func newInsertCounter(records uint64) *insertCounter {
	return &insertCounter{next: records, limit: records, pending: map[uint64]bool{}}
}

// Claim returns the next record number to insert.
func (c *insertCounter) Claim() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.next
	c.next++
	return n
}

// Done marks record n's insert as completed (acknowledged or failed).
func (c *insertCounter) Done(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[n] = true
	for c.pending[c.limit] {
		delete(c.pending, c.limit)
		c.limit++
	}
}

// Limit is the number of records readers may choose from.
func (c *insertCounter) Limit() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit
}
