package ring

import (
	"errors"
	"math"
)

// errNoPath means the balancer found no way to move a replica slot although
// a balanced assignment exists. It cannot happen unless this file has a bug;
// it is returned rather than panicking so that a bad ring is refused, not a
// crashed node.
var errNoPath = errors.New("ring: internal error: balancer found no augmenting path")

const noEdge = math.MaxInt64

// balancer solves one placement problem: choose demand[p] distinct items
// (nodes, or zones) for every partition p so that every item i holds between
// lo[i] and hi[i] slots, at the least total cost.
//
// It starts from the plain rendezvous choice (each partition takes its
// demand[p] cheapest items), which is the cheapest assignment of all but
// unbalanced, and then moves one slot at a time from an item above its
// bounds to one below, along the cheapest chain of hand-overs
// (successive shortest paths of min-cost flow). Each hand-over "a gives
// partition p to b" costs cost(b,p)-cost(a,p). Because every step is a
// shortest path, the result is the cheapest assignment with its loads, which
// is the same as: every partition takes its cheapest items after adding a
// per-item offset (the potential) to each cost. Offsets are weights in
// weighted rendezvous hashing, so the balanced ring stays a rendezvous ring,
// and a membership change perturbs it about as little as it perturbs plain
// rendezvous hashing.
//
// The flow graph is compressed to the items: the edge a→b carries the
// cheapest single hand-over from a to b over all partitions, so a shortest
// path search is a dense Dijkstra over k vertices.
type balancer struct {
	k, parts int
	cost     []uint64 // cost[p*k+i]
	in       []bool   // in[p*k+i]: item i holds a slot of partition p
	load     []int
	lo, hi   []int

	w   []int64 // w[a*k+b]: cheapest hand-over from a to b, or noEdge
	via []int32 // via[a*k+b]: the partition of that hand-over
	pot []int64 // potentials: keep reduced edge costs non-negative

	dist    []int64
	prev    []int32
	done    []bool
	touched []bool
}

// assign runs the balancer. It needs demand[p] <= k, lo[i] <= hi[i], and a
// fractional assignment within the bounds to exist (then an integral one
// exists, and the balancer finds it).
func assign(k, parts int, cost []uint64, demand []int, lo, hi []int) ([]bool, error) {
	b := &balancer{
		k:       k,
		parts:   parts,
		cost:    cost,
		in:      make([]bool, parts*k),
		load:    make([]int, k),
		lo:      lo,
		hi:      hi,
		w:       make([]int64, k*k),
		via:     make([]int32, k*k),
		pot:     make([]int64, k),
		dist:    make([]int64, k),
		prev:    make([]int32, k),
		done:    make([]bool, k),
		touched: make([]bool, k),
	}
	b.cheapest(demand)
	if b.balanced() {
		return b.in, nil
	}
	for a := 0; a < k; a++ {
		b.row(a)
	}
	// First drain every item above its ceiling, then fill every item below
	// its floor. Neither phase undoes the other.
	for {
		if !b.any(func(i int) bool { return b.load[i] > b.hi[i] }) {
			break
		}
		if !b.augment(
			func(i int) bool { return b.load[i] > b.hi[i] },
			func(i int) bool { return b.load[i] < b.hi[i] }) {
			return nil, errNoPath
		}
	}
	for {
		if !b.any(func(i int) bool { return b.load[i] < b.lo[i] }) {
			break
		}
		if !b.augment(
			func(i int) bool { return b.load[i] > b.lo[i] },
			func(i int) bool { return b.load[i] < b.lo[i] }) {
			return nil, errNoPath
		}
	}
	return b.in, nil
}

// cheapest gives every partition its demand[p] cheapest items, ties to the
// lower index.
func (b *balancer) cheapest(demand []int) {
	k := b.k
	sel := make([]int, 0, k)
	for p := 0; p < b.parts; p++ {
		d := demand[p]
		base := p * k
		if d >= k {
			for i := 0; i < k; i++ {
				b.in[base+i] = true
				b.load[i]++
			}
			continue
		}
		sel = sel[:0]
		for i := 0; i < k; i++ {
			c := b.cost[base+i]
			if len(sel) == d {
				if d == 0 || c >= b.cost[base+sel[d-1]] {
					continue
				}
				sel = sel[:d-1]
			}
			// Insert after every entry that is not more expensive, so equal
			// costs keep index order.
			j := len(sel)
			sel = append(sel, i)
			for j > 0 && b.cost[base+sel[j-1]] > c {
				sel[j] = sel[j-1]
				j--
			}
			sel[j] = i
		}
		for _, i := range sel {
			b.in[base+i] = true
			b.load[i]++
		}
	}
}

func (b *balancer) balanced() bool {
	return !b.any(func(i int) bool { return b.load[i] > b.hi[i] || b.load[i] < b.lo[i] })
}

func (b *balancer) any(f func(int) bool) bool {
	for i := 0; i < b.k; i++ {
		if f(i) {
			return true
		}
	}
	return false
}

// row recomputes the cheapest hand-over from a to every other item.
func (b *balancer) row(a int) {
	k := b.k
	w := b.w[a*k : a*k+k]
	via := b.via[a*k : a*k+k]
	for j := range w {
		w[j] = noEdge
		via[j] = -1
	}
	for p := 0; p < b.parts; p++ {
		base := p * k
		if !b.in[base+a] {
			continue
		}
		ca := int64(b.cost[base+a])
		in := b.in[base : base+k]
		cost := b.cost[base : base+k]
		for j, held := range in {
			if held {
				continue
			}
			// Strict < keeps the lowest partition on ties: deterministic.
			if d := int64(cost[j]) - ca; d < w[j] {
				w[j] = d
				via[j] = int32(p)
			}
		}
	}
}

// augment moves one slot from some item with src true to some item with dst
// true along the cheapest chain of hand-overs. It reports false when no
// chain exists.
func (b *balancer) augment(src, dst func(int) bool) bool {
	k := b.k
	// A virtual source with an edge of cost 0 to every src item; its
	// potential is the largest among them so reduced costs stay >= 0.
	top := int64(math.MinInt64)
	for i := 0; i < k; i++ {
		if src(i) && b.pot[i] > top {
			top = b.pot[i]
		}
	}
	for i := 0; i < k; i++ {
		b.dist[i] = noEdge
		b.prev[i] = -1
		b.done[i] = false
		if src(i) {
			b.dist[i] = top - b.pot[i]
		}
	}
	// Dense Dijkstra on reduced costs; ties go to the lower index.
	for {
		v := -1
		for i := 0; i < k; i++ {
			if !b.done[i] && b.dist[i] != noEdge && (v < 0 || b.dist[i] < b.dist[v]) {
				v = i
			}
		}
		if v < 0 {
			break
		}
		b.done[v] = true
		row := b.w[v*k : v*k+k]
		for u, wu := range row {
			if wu == noEdge || b.done[u] {
				continue
			}
			if nd := b.dist[v] + wu + b.pot[v] - b.pot[u]; nd < b.dist[u] {
				b.dist[u] = nd
				b.prev[u] = int32(v)
			}
		}
	}
	// The cheapest destination by true path cost, which is the reduced
	// distance plus the destination's potential (up to a constant).
	t := -1
	for i := 0; i < k; i++ {
		if dst(i) && b.done[i] && (t < 0 || b.dist[i]+b.pot[i] < b.dist[t]+b.pot[t]) {
			t = i
		}
	}
	if t < 0 {
		return false
	}
	// New potentials: shortest distances, and the largest distance for
	// items out of reach, which keeps every reduced cost non-negative.
	far, low := int64(0), int64(math.MaxInt64)
	for i := 0; i < k; i++ {
		if b.done[i] && b.dist[i] > far {
			far = b.dist[i]
		}
	}
	for i := 0; i < k; i++ {
		if b.done[i] {
			b.pot[i] += b.dist[i]
		} else {
			b.pot[i] += far
		}
		low = min(low, b.pot[i])
	}
	for i := range b.pot {
		b.pot[i] -= low // only differences matter; keep them small
	}
	// Apply the chain. A simple path never hands the same partition to an
	// item that already holds it: see the package tests.
	for i := range b.touched {
		b.touched[i] = false
	}
	for v := t; b.prev[v] >= 0; v = int(b.prev[v]) {
		a := int(b.prev[v])
		p := int(b.via[a*k+v])
		b.in[p*k+a] = false
		b.in[p*k+v] = true
		b.load[a]--
		b.load[v]++
		b.touched[a], b.touched[v] = true, true
		for i := 0; i < k; i++ {
			if b.in[p*k+i] {
				b.touched[i] = true
			}
		}
	}
	// Only rows of items on the path or sharing a changed partition can
	// change.
	for i, t := range b.touched {
		if t {
			b.row(i)
		}
	}
	return true
}

// shareBounds splits total slots over groups in proportion to weight, each
// group's share clamped to [minv, maxv] (water-filling), and returns integer
// bounds lo <= share <= hi with lo and hi at most about one slot apart. It
// requires sum(minv) <= total <= sum(maxv) and positive weights. Integer
// arithmetic only, so every node computes the same bounds.
func shareBounds(total int, weight, minv, maxv []int) (lo, hi []int) {
	const shift = 20 // fixed-point fraction bits
	n := len(weight)
	// share(a)[j] = clamp(a*weight[j], minv[j], maxv[j]) in units of 2^-shift.
	share := func(a int64, j int) int64 {
		w := int64(weight[j])
		lo, hi := int64(minv[j])<<shift, int64(maxv[j])<<shift
		if a > hi/w {
			return hi
		}
		return max(lo, min(hi, a*w))
	}
	sum := func(a int64) int64 {
		s := int64(0)
		for j := 0; j < n; j++ {
			s += share(a, j)
		}
		return s
	}
	// The smallest a whose shares reach total.
	want := int64(total) << shift
	lowA, highA := int64(0), int64(0)
	for j := 0; j < n; j++ {
		highA = max(highA, (int64(maxv[j])<<shift)/int64(weight[j])+1)
	}
	for lowA < highA {
		mid := lowA + (highA-lowA)/2
		if sum(mid) >= want {
			highA = mid
		} else {
			lowA = mid + 1
		}
	}
	lo, hi = make([]int, n), make([]int, n)
	const unit = int64(1) << shift
	for j := 0; j < n; j++ {
		below := share(max(lowA-1, 0), j)
		above := share(lowA, j)
		lo[j] = int(below / unit)
		hi[j] = int((above + unit - 1) / unit)
	}
	return lo, hi
}
