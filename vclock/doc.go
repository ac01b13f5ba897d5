// Package vclock holds the versions quorumkv keeps for every key.
//
// A stored key is an Object: a causal context (Clock, a version vector) and
// the set of Siblings that are still live, each named by a Dot — the actor
// that created it and that actor's counter for the key.
//
// How versions move:
//
//   - A coordinating replica creates a version with Object.Update. The new dot
//     is the actor's next counter for this key on that replica; the siblings the
//     client's context covers are dropped, the others stay as concurrent
//     siblings. The coordinator then ships the whole resulting Object (not just
//     the new sibling) to the other replicas, so a replica that holds dot
//     (a, n) always knows every earlier dot of actor a for that key. That is
//     what lets a plain version vector stand for "everything seen".
//   - Replicas combine what they receive with Merge, a join: commutative,
//     associative and idempotent, so read repair, hints and anti-entropy can
//     apply objects in any order, any number of times.
//   - Actors are a node id plus an incarnation chosen when the node's data
//     directory is created. A node that lost its disk comes back as a new
//     actor, so its fresh counters can never be mistaken for dots the cluster
//     has already seen (Riak's kv679).
//   - Writes at the strong level carry a Tag (logical counter, writer). A
//     strong write replaces every sibling its replica holds, and among strong
//     siblings only the highest tag survives a merge, so strong writes never
//     create siblings.
//
// The package is pure: no I/O, no clock, no randomness.
package vclock
