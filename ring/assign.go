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
// weighted rendezvous hashing, so the balanced ring stays a rendezvous ring
// and a membership change perturbs it little (doc.go has the figures).
//
// The flow graph is compressed to the items: the edge a→b carries the
// cheapest single hand-over from a to b over all partitions, so a shortest
// path search is a dense Dijkstra over k vertices.
type balancer struct {
	k, parts int
	cost     []uint64 // cost[p*k+i]
	in       []bool   // in[p*k+i]: item i holds a slot of partition p
	held     []bool   // held[i*parts+p] == in[p*k+i], laid out for scanning an item's row
	load     []int
	lo, hi   []int

	w   []int64 // w[a*k+b]: cheapest hand-over from a to b, or noEdge
	via []int32 // via[a*k+b]: the partition of that hand-over
	pot []int64 // potentials: keep reduced edge costs non-negative
	// graph is set once w and via are built; the cheapest assignment is
	// often balanced already and never needs them.
	graph bool

	dist    []int64
	prev    []int32
	done    []bool
	touched []bool
}

// assign runs the balancer. It needs demand[p] <= k, lo[i] <= hi[i], and a
// fractional assignment within the bounds to exist (then an integral one
// exists, and the balancer finds it).
func assign(k, parts int, cost []uint64, demand []int, lo, hi []int) ([]bool, error) {
	b := newBalancer(k, parts, cost, lo, hi)
	if err := b.run(demand); err != nil {
		return nil, err
	}
	return b.in, nil
}

func newBalancer(k, parts int, cost []uint64, lo, hi []int) *balancer {
	return &balancer{
		k:       k,
		parts:   parts,
		cost:    cost,
		in:      make([]bool, parts*k),
		held:    make([]bool, parts*k),
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
}

func (b *balancer) run(demand []int) error {
	b.cheapest(demand)
	if b.balanced() {
		return nil
	}
	k := b.k
	for a := 0; a < k; a++ {
		b.row(a)
	}
	b.graph = true
	// First drain every item above its ceiling, then fill every item below
	// its floor. Neither phase undoes the other.
	above := func(i int) bool { return b.load[i] > b.hi[i] }
	for b.any(above) {
		if !b.augment(above, func(i int) bool { return b.load[i] < b.hi[i] }) {
			return errNoPath
		}
	}
	below := func(i int) bool { return b.load[i] < b.lo[i] }
	for b.any(below) {
		if !b.augment(func(i int) bool { return b.load[i] > b.lo[i] }, below) {
			return errNoPath
		}
	}
	return nil
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
				b.set(p, i, true)
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
			b.set(p, i, true)
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
	for p, h := range b.held[a*b.parts : (a+1)*b.parts] {
		if !h {
			continue
		}
		base := p * k
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
	dist, done, pot, prev := b.dist[:k], b.done[:k], b.pot[:k], b.prev[:k]
	for {
		v, dv := -1, int64(noEdge)
		for i, d := range dist {
			if d < dv && !done[i] {
				v, dv = i, d
			}
		}
		if v < 0 {
			break
		}
		done[v] = true
		base := dv + pot[v]
		row := b.w[v*k : v*k+k]
		for u, wu := range row {
			if wu == noEdge || done[u] {
				continue
			}
			if nd := base + wu - pot[u]; nd < dist[u] {
				dist[u] = nd
				prev[u] = int32(v)
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
	// Apply the chain. A simple path never hands a partition to an item
	// that already holds it: a hands p over only if it holds p, and v
	// receives p only if it does not, so the same p can appear twice only
	// between four distinct items.
	for i := range b.touched {
		b.touched[i] = false
	}
	type handover struct{ from, to, p int }
	var chain []handover
	for v := t; b.prev[v] >= 0; v = int(b.prev[v]) {
		a := int(b.prev[v])
		p := int(b.via[a*k+v])
		chain = append(chain, handover{a, v, p})
	}
	for _, h := range chain {
		b.set(h.p, h.from, false)
		b.set(h.p, h.to, true)
		b.load[h.from]--
		b.load[h.to]++
		b.touched[h.from], b.touched[h.to] = true, true
	}
	// Items on the chain get their rows recomputed. Another item c holding
	// a changed partition p gains p as a way to reach the item that left it,
	// and loses p as a way to reach the item that joined it; no other edge
	// changes.
	for _, h := range chain {
		for c := 0; c < k; c++ {
			if b.touched[c] || !b.in[h.p*k+c] {
				continue
			}
			d := int64(b.cost[h.p*k+h.from]) - int64(b.cost[h.p*k+c])
			e := c*k + h.from
			if d < b.w[e] || d == b.w[e] && int32(h.p) < b.via[e] {
				b.w[e], b.via[e] = d, int32(h.p)
			}
			if b.via[c*k+h.to] == int32(h.p) {
				b.pair(c, h.to)
			}
		}
	}
	for i, hit := range b.touched {
		if hit {
			b.row(i)
		}
	}
	return true
}

func (b *balancer) set(p, i int, v bool) {
	b.in[p*b.k+i] = v
	b.held[i*b.parts+p] = v
}

// pair recomputes the cheapest hand-over from a to j.
func (b *balancer) pair(a, j int) {
	k := b.k
	best, via := int64(noEdge), int32(-1)
	for p, h := range b.held[a*b.parts : (a+1)*b.parts] {
		if !h || b.in[p*k+j] {
			continue
		}
		if d := int64(b.cost[p*k+j]) - int64(b.cost[p*k+a]); d < best {
			best, via = d, int32(p)
		}
	}
	b.w[a*k+j], b.via[a*k+j] = best, via
}

// shareBounds splits total slots over groups in proportion to weight, each
// group's share clamped to [minv, maxv] (water-filling), and returns integer
// bounds lo <= share <= hi with lo and hi at most about one slot apart. It
// requires sum(minv) <= total <= sum(maxv), positive weights, and
// sum(weight) < 2^20 (weights are member counts). Integer arithmetic only,
// so every node computes the same bounds.
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
	// Shares at lowA sum to total plus less than sum(weight) units of
	// 2^-shift, which is under one slot, so their floors sum to at most
	// total and their ceilings to at least total.
	lo, hi = make([]int, n), make([]int, n)
	const unit = int64(1) << shift
	for j := 0; j < n; j++ {
		s := share(lowA, j)
		lo[j] = int(s / unit)
		hi[j] = int((s + unit - 1) / unit)
	}
	return lo, hi
}
