// Package transfer moves data when ring ownership changes: a node joins, a
// node leaves, a dead node's partitions are reassigned.
//
// Two mechanisms, one on each side of a move:
//
// Handoff (the old owner). Every node keeps looking for partitions it holds
// data for but is not a primary of in its current view of the ring. For
// each, it streams the partition to the partition's current primaries in
// batches, throttled (keys/s, bytes/s) and several partitions at a time.
// A batch is sent to every primary, and only when every one of them has
// acknowledged it (merged it into its store) does the old owner purge those
// keys — each purge checks the key's version hash, so a write that landed
// in between is not lost and goes with a later batch. The old owner's store
// is therefore its own checkpoint: after a crash of either side the
// transfer resumes at the first key not yet handed off, never from the
// start. Receivers merge (a join), so a batch delivered twice is harmless.
// A primary that is down blocks the partition's handoff until it is back
// or leaves the ring: data is never dropped before every owner holds it.
//
// Fence (the new owner). A node that becomes a primary of a partition
// lacks its data until the old owners' handoff completes. Until then its
// replica reads of that partition also ask the old owners and merge their
// answers, so a read never misses an acknowledged write that only the old
// owners hold. An old owner is dropped from the fence when it answers that
// it holds nothing more of the partition (OpHolds), or when it is gone
// (dead past the ring's dead timeout, or left). The fence and the ring it
// was computed from are persisted, so a restart does not forget them.
//
// Writes during a move go to the partition's current primaries. Nothing
// else is needed for them: the old owner no longer takes part in the
// partition, anything it still receives (from a coordinator with a stale
// view) is handed off like the rest.
//
// Strong operations during a move: replicas answer strong-level requests
// only for partitions they are primaries of in their own view (see
// replication.ErrNotPrimary), and new owners fold in the old owners' data
// through the fence. While views disagree, a strong request may fail with
// 503 instead of risking a majority that does not intersect.
package transfer
