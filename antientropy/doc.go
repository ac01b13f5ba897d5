// Package antientropy finds the keys on which two replicas of a partition
// disagree, by comparing Merkle trees, so that only those keys move.
//
// # The tree
//
// Each node keeps one Tree per partition it holds, over the pairs (key,
// vclock.Object.Hash of the key's stored object). Tombstones are objects too,
// so deletes take part like writes. The shape is fixed and cluster-wide
// (Shape, DefaultShape): every key falls into one of 1024 segments chosen by a
// hash of the key (SegmentOf), the segments are the leaves, and internal nodes
// have 32 children, giving levels of 1, 32 and 1024 nodes. A node's hash is
// the sum modulo 2^64 of a 64-bit mix of (key, version hash) over every key
// below it.
//
// Why this shape. A partition of a 1M-key, 3-node cluster holds about 1,000
// keys, one or two per segment; one of a 100M-key cluster holds ~100,000,
// about 100 per segment — both cheap to list when a segment differs. Levels
// are round trips and fanout is hashes per differing node, so the shape
// trades one for the other. Fanout 32 over 1024 segments: one differing key
// costs 1+32+32 = 65 hashes (520 bytes) each way over three round trips, plus
// one to list the segment. Fanout 16 does not divide 1024 into whole levels
// (16³ = 4096 segments would quadruple memory for segments that 1,000-key
// partitions leave empty); fanout 4 would save 44 hashes per key but double
// the round trips; a flat tree (fanout 1024, Riak's choice for much larger
// partitions) would send 1,025 hashes to find one key. The whole tree is
// 1,057 nodes, about 8 KiB; a node holding 700 partitions spends about
// 6 MiB. The node array is allocated on the first write, so a partition that
// holds nothing costs only the 64-byte struct.
//
// # Incremental maintenance
//
// The write path calls Tree.Update with the key's old and new version hashes
// after every change the store makes (insert, new version, merge, tombstone
// reaped). Because hashes combine by addition, the update is a subtraction
// and an addition at one leaf and each of its two ancestors: a key hash and
// three additions under a mutex, some tens of nanoseconds. Updates commute, so
// concurrent writers may report their transitions in any order.
//
// The alternative, rebuilding each tree from a scan before every exchange
// (or periodically, as Riak does), reads every key of every partition each
// round. At the brief's default interval of one minute that is a full scan of
// the node's data per minute, whatever the write rate; incremental updates
// cost work in proportion to writes and leave each round to cost in
// proportion to the differences. Trees live in memory only: after a restart
// the node rebuilds them with one scan of its store (Reset, then Insert for
// every key) before it takes part in exchanges again.
//
// # An exchange
//
// Compare runs one exchange for one partition between a local and a remote
// Replica (the same interface on both sides; TreeReplica implements it over a
// node's trees and store):
//
//  1. Both sides send their root hash. Equal roots mean equal (key, hash)
//     sets, up to 64-bit collisions, and the round ends.
//  2. Otherwise, level by level, both sides send the hashes of the children of
//     the nodes that differed one level up, in one request per side per level.
//  3. At the leaf level, both sides list the (key, hash) pairs of the differing
//     segments, in one request each, and Compare returns the keys whose hash
//     differs or that one side lacks (Diff.Keys), with the side that holds
//     each (Diff.Presence).
//
// The driver (below) then moves those objects both ways and merges them;
// merge is a join, so repeating or reordering transfers is harmless, and a
// write landing mid-exchange at worst costs one extra or one missed key,
// settled next round.
//
// # What a round costs
//
// When the replicas agree, one round of one partition is one hash each way:
// 8 bytes of payload, whatever the partition's size — far below 1% of the data.
// With d differing keys spread over a partition of n keys, a round sends at
// most 1 + 32·(1 + min(d,32)) hashes each way over three round trips, and
// lists about d·n/1024 keys each way in a fourth. For the brief's 1%
// divergence of 1M keys on 3 nodes (about 10 differing keys per 1,000-key
// partition) that is about 350 hashes (2.8 KiB) and 10 segments of one or two
// keys per partition. Diff counts what each
// exchange cost (LevelsWalked, HashesCompared, SegmentsFetched, KeysCompared,
// RemoteBytes).
//
// # The driver
//
// Tree, Compare and TreeReplica are pure: no network, storage, goroutines or
// clock. Service is the shell around them that a node runs (service.go and
// the files next to it):
//
//   - Trees. One per partition, fed by the store's change hook (OnChange).
//     At start the trees are rebuilt from one snapshot scan of the store
//     while writes continue (build.go says why nothing is lost or counted
//     twice); until then the node answers tree requests with ErrNotReady and
//     its peers skip it for the round.
//   - Rounds. Run rebuilds, then loops: a round visits every partition this
//     node is a primary of, Parallel at a time, in a seeded shuffled order,
//     and exchanges it with each other primary that membership says is up;
//     then it pauses Interval (±10%). Both nodes of a pair start exchanges,
//     so every pair is compared twice a round: the second comparison is
//     normally one equal root hash, and each node gets first-hand evidence
//     for its own tombstone purges.
//   - An exchange. Compare over a remote Replica that speaks OpTreeLevel and
//     OpSegment (the segment listing comes in pages of SegmentPageKeys, so a
//     wiped replica's whole partition is never one message), then OpFetch of
//     the keys that differ or that only the peer has, merged here with the
//     store's Merge (vclock.Merge, a join: a newer or concurrent version is
//     never overwritten), then OpMergeBatch of the keys that differ (now
//     merged) or that only this node has. One exchange leaves both sides
//     equal. Fetches and pushes come in batches of BatchKeys keys and
//     BatchBytes bytes.
//   - Throttle. Objects moved per second (KeysPerSec) and bytes per second
//     (BytesPerSec) are paced by token buckets that may run into debt, so
//     answers are charged after they arrive; the tombstone sweep's scan has
//     its own pace (ScanKeysPerSec).
//   - Deletes. Every SweepEvery rounds a sweep walks the tombstones, notes
//     new ones, confirms those this node's exchanges showed on every primary,
//     and purges those confirmed TombstoneGrace ago (tombstones.go has the
//     argument; docs/repair.md the operator's view).
//   - Progress. Stats holds counters for a metrics layer; Status fills
//     wire.AntiEntropyStatus for /v1/status; Partitions gives the last
//     exchange of every partition.
package antientropy
