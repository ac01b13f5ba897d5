package ring

import "math/bits"

// The hashes below are part of the on-disk and on-wire contract: every node
// must place a key in the same partition and compute the same scores, on any
// CPU, in any release. They use integer arithmetic only (no floating point,
// whose fused multiply-add differs between architectures). Golden tests pin
// them; changing them moves data.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// keyHash is FNV-1a 64 followed by the murmur3 fmix64 finalizer. FNV-1a alone
// mixes its last bytes poorly into the high bits, and PartitionOf reads the
// high bits: sequential keys ("user1", "user2", ...) would crowd into a few
// partitions without the finalizer.
func keyHash(key []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range key {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// idHash hashes a member ID the same way as keyHash.
func idHash(id string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is the murmur3 fmix64 finalizer: a bijection in which every input bit
// affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// partitionSalt is the per-partition input to score. The constant keeps
// partition 0 from hashing to mix64(0) == 0.
func partitionSalt(p int) uint64 {
	return mix64(uint64(p) + 0x9e3779b97f4a7c15)
}

// score is the rendezvous hash of a member for a partition: higher is
// preferred.
func score(member, salt uint64) uint64 {
	return mix64(member ^ salt)
}

// cost turns a score into an approximation of -log2(score/2^64) in 32.32
// fixed point: lower is preferred. Scores are uniform, so costs are close to
// exponentially distributed, and for exponential costs adding a per-member
// offset is the same as giving that member a weight in weighted rendezvous
// hashing. That is what lets the balancer (assign.go) even out loads with
// offsets that barely disturb the placement. log2(1+f) is approximated by f,
// which is monotone and exact at the ends: good enough, and integer-only.
func cost(score uint64) uint64 {
	if score == 0 {
		score = 1
	}
	lz := bits.LeadingZeros64(score)
	frac := (score << uint(lz) << 1) >> 32 // the 32 bits after the leading one
	return uint64(lz+1)<<32 - frac
}
