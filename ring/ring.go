package ring

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Member is one node as the ring sees it.
type Member struct {
	// ID names the node; unique in the cluster and never empty.
	ID string
	// Zone is the node's failure domain (rack, availability zone); "" when
	// the node has no zone label. "" is a zone like any other: unlabeled
	// nodes count as one zone together.
	Zone string
}

// DefaultPartitions is the ring size used unless configured otherwise: as in
// Riak, enough partitions that each of dozens of nodes holds many of them, few
// enough that per-partition work (a Merkle tree each) stays cheap.
const DefaultPartitions = 1024

// Limits on New's arguments. They keep the arithmetic far from overflow; real
// clusters are nowhere near them.
const (
	// MaxPartitions is the largest ring New builds.
	MaxPartitions = 1 << 20
	// MaxReplicas is the largest replication factor New accepts.
	MaxReplicas = 1 << 10
	// MaxMembers is the largest member set New accepts.
	MaxMembers = 1 << 16
)

// Errors from New and Diff. Match them with errors.Is.
var (
	// ErrInvalid: an argument to New is out of range or a member has an
	// empty ID.
	ErrInvalid = errors.New("ring: invalid argument")
	// ErrDuplicateMember: two members share an ID.
	ErrDuplicateMember = errors.New("ring: duplicate member ID")
	// ErrPartitionMismatch: Diff was given rings of different sizes, whose
	// partitions do not correspond.
	ErrPartitionMismatch = errors.New("ring: rings have different partition counts")
)

// Ring maps keys to partitions and partitions to replica nodes. It is
// immutable once built and safe for concurrent use; a membership change
// builds a new Ring rather than editing one in place.
type Ring struct {
	partitions int
	replicas   int // configured N
	width      int // replicas per partition: min(N, len(members))
	members    []Member
	index      map[string]int // ID -> position in members

	// prefs[p*n : (p+1)*n] is partition p's preference list (n members):
	// its width primaries, then the fallbacks. Built once so that the
	// request path neither sorts nor allocates.
	prefs []string
	owned [][]int // owned[i]: partitions where member i is a replica, ascending
}

// New builds the ring for members with the given number of partitions
// (>= 1) and replication factor replicas (>= 1). The result depends only on
// the set of members (IDs and zones), not on the order of the slice, so every
// node that sees the same members builds the same ring. With fewer members
// than replicas, each partition gets every member. Zero members give an empty
// ring: PartitionOf works and Primaries returns nil.
//
// Errors wrap ErrInvalid or ErrDuplicateMember.
func New(members []Member, partitions, replicas int) (*Ring, error) {
	if partitions < 1 || partitions > MaxPartitions {
		return nil, fmt.Errorf("%w: partitions must be between 1 and %d, got %d", ErrInvalid, MaxPartitions, partitions)
	}
	if replicas < 1 || replicas > MaxReplicas {
		return nil, fmt.Errorf("%w: replicas must be between 1 and %d, got %d", ErrInvalid, MaxReplicas, replicas)
	}
	if len(members) > MaxMembers {
		return nil, fmt.Errorf("%w: at most %d members, got %d", ErrInvalid, MaxMembers, len(members))
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for i, m := range ms {
		if m.ID == "" {
			return nil, fmt.Errorf("%w: member with empty ID", ErrInvalid)
		}
		if i > 0 && ms[i-1].ID == m.ID {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateMember, m.ID)
		}
	}

	n := len(ms)
	r := &Ring{
		partitions: partitions,
		replicas:   replicas,
		width:      min(replicas, n),
		members:    ms,
		index:      make(map[string]int, n),
		owned:      make([][]int, n),
	}
	if n == 0 {
		return r, nil
	}

	zoneIndex := map[string]int{}
	zones := make([]int, n)
	zoneNames := []string{}
	hashes := make([]uint64, n)
	for i, m := range ms {
		r.index[m.ID] = i
		hashes[i] = idHash(m.ID)
		if _, ok := zoneIndex[m.Zone]; !ok {
			zoneNames = append(zoneNames, m.Zone)
			zoneIndex[m.Zone] = 0
		}
	}
	// Number zones by name, not by first appearance, so zone order is a
	// function of the member set too.
	slices.Sort(zoneNames)
	for z, name := range zoneNames {
		zoneIndex[name] = z
	}
	for i, m := range ms {
		zones[i] = zoneIndex[m.Zone]
	}

	costs := make([]uint64, partitions*n)
	for p := 0; p < partitions; p++ {
		salt := partitionSalt(p)
		row := costs[p*n : p*n+n]
		for i, h := range hashes {
			row[i] = cost(score(h, salt))
		}
	}
	in, err := place(n, partitions, replicas, costs, zones, len(zoneNames))
	if err != nil {
		return nil, err
	}

	// Preference order within a partition: cheapest (highest score) first,
	// ties by ID; primaries first, then fallbacks. It is the plain
	// rendezvous order, independent of the balancing, so first replicas and
	// first fallbacks spread like rendezvous hashing. Sorting cost<<16|index
	// as one integer sorts by cost, then index (costs stay below 2^39).
	w := r.width
	r.prefs = make([]string, partitions*n)
	order := make([]uint64, n)
	for p := 0; p < partitions; p++ {
		for i, c := range costs[p*n : p*n+n] {
			order[i] = c<<16 | uint64(i)
		}
		slices.Sort(order)
		prim, fall := p*n, p*n+w
		for _, o := range order {
			i := int(o & 0xffff)
			if in[p*n+i] {
				r.prefs[prim] = ms[i].ID
				prim++
				r.owned[i] = append(r.owned[i], p)
			} else {
				r.prefs[fall] = ms[i].ID
				fall++
			}
		}
	}
	return r, nil
}

// Partitions returns the number of partitions.
func (r *Ring) Partitions() int { return r.partitions }

// Replicas returns the configured replication factor N. Primaries returns
// fewer than N nodes when the ring has fewer than N members.
func (r *Ring) Replicas() int { return r.replicas }

// Members returns a copy of the members, sorted by ID.
func (r *Ring) Members() []Member { return slices.Clone(r.members) }

// Contains reports whether id is a member of the ring.
func (r *Ring) Contains(id string) bool {
	_, ok := r.index[id]
	return ok
}

// PartitionOf returns the partition that holds key: the 64-bit FNV-1a hash of
// the key, passed through the murmur3 fmix64 finalizer, scaled to
// [0, Partitions()) by taking the high word of hash × Partitions (no modulo,
// so no bias toward low partitions). The mapping is fixed forever: stored
// data depends on it.
func (r *Ring) PartitionOf(key []byte) int {
	hi, _ := bits.Mul64(keyHash(key), uint64(r.partitions))
	return int(hi)
}

// Primaries returns the replica node IDs of partition p in preference order:
// N of them, or every member when there are fewer. It returns nil for an
// empty ring and panics if p is out of range.
//
// The slice is the ring's own (this is called on every request) and must
// not be modified; its capacity is clipped, so appending to it copies.
func (r *Ring) Primaries(p int) []string {
	if r.width == 0 {
		return nil
	}
	r.checkPartition(p)
	n := len(r.members)
	return r.prefs[p*n : p*n+r.width : p*n+r.width]
}

// PreferenceList returns the primaries of partition p followed by every other
// member as a fallback, fallbacks ordered by their rendezvous score for p.
// The order differs from partition to partition, so when a node fails its
// partitions' writes spread over many fallbacks instead of piling onto one.
//
// Like Primaries, the slice is the ring's own and must not be modified; its
// capacity is clipped, so appending to it copies.
func (r *Ring) PreferenceList(p int) []string {
	if r.width == 0 {
		return nil
	}
	r.checkPartition(p)
	n := len(r.members)
	return r.prefs[p*n : p*n+n : p*n+n]
}

// IsPrimary reports whether id is one of partition p's primaries.
func (r *Ring) IsPrimary(id string, p int) bool {
	return slices.Contains(r.Primaries(p), id)
}

// PartitionsOf returns, ascending, the partitions for which id is a primary;
// nil when id is not a member. The slice is a copy.
func (r *Ring) PartitionsOf(id string) []int {
	i, ok := r.index[id]
	if !ok {
		return nil
	}
	return slices.Clone(r.owned[i])
}

// PrimaryCount returns len(PartitionsOf(id)) without copying.
func (r *Ring) PrimaryCount(id string) int {
	i, ok := r.index[id]
	if !ok {
		return 0
	}
	return len(r.owned[i])
}

// Equal reports whether r and o have the same partition count, replication
// factor, members (IDs and zones) and assignment, so that publishing o in
// place of r would change nothing. Members are compared too because they
// decide fallbacks even where the primaries agree. Two nil rings are equal.
func (r *Ring) Equal(o *Ring) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.partitions == o.partitions &&
		r.replicas == o.replicas &&
		slices.Equal(r.members, o.members) &&
		slices.Equal(r.prefs, o.prefs)
}

func (r *Ring) checkPartition(p int) {
	if p < 0 || p >= r.partitions {
		panic(fmt.Sprintf("ring: partition %d out of range [0,%d)", p, r.partitions))
	}
}

// Move says how one partition's replica set changes between two rings.
type Move struct {
	// Partition is the partition whose replica set changes.
	Partition int
	// Added are the nodes that become replicas, in the new ring's
	// preference order: they must receive the partition's data.
	Added []string
	// Removed are the nodes that stop being replicas, in the old ring's
	// preference order: they may drop the data once the new owners have it.
	Removed []string
}

// Diff lists, by ascending partition, the partitions whose replica sets differ
// between a (old) and b (new). A change of preference order alone is not a
// move: no data has to travel. The rings must have the same partition count
// (ErrPartitionMismatch otherwise); nil rings are rejected with ErrInvalid.
func Diff(a, b *Ring) ([]Move, error) {
	if a == nil || b == nil {
		return nil, fmt.Errorf("%w: Diff of a nil ring", ErrInvalid)
	}
	if a.partitions != b.partitions {
		return nil, fmt.Errorf("%w: %d and %d", ErrPartitionMismatch, a.partitions, b.partitions)
	}
	var moves []Move
	for p := 0; p < a.partitions; p++ {
		old, cur := a.Primaries(p), b.Primaries(p)
		var mv Move
		for _, id := range cur {
			if !slices.Contains(old, id) {
				mv.Added = append(mv.Added, id)
			}
		}
		for _, id := range old {
			if !slices.Contains(cur, id) {
				mv.Removed = append(mv.Removed, id)
			}
		}
		if mv.Added != nil || mv.Removed != nil {
			mv.Partition = p
			moves = append(moves, mv)
		}
	}
	return moves, nil
}
