// Package replication coordinates client reads and writes over a key's
// replicas: quorum waits, sloppy quorum with hinted handoff, read repair and
// the linearizable strong level.
//
// How an ordinary write runs (levels one, quorum, all, numeric w):
//
//  1. The node that received the request looks up the key's partition and its
//     N primaries on the current ring. If it is not one of them it forwards
//     the write to the first primary that membership says is up; only
//     primaries coordinate, because a new version's dot is the coordinator's
//     next counter for that key, and only a replica knows that counter.
//     It moves on to the next primary only when the forward certainly did
//     not run (never sent, or refused): a forward whose answer was lost may
//     have run, and running it again would store the value twice, as two
//     siblings, so the client gets an unknown outcome (timeout) instead.
//  2. The coordinator applies the write to its own store (vclock
//     Object.Update: the siblings the client's context covers are replaced,
//     the rest stay as concurrent siblings) and sends the whole resulting
//     object to the other primaries, which merge it. Its own copy commits
//     while the others travel (store.Store.UpdateStaged) and counts as an
//     acknowledgement once committed.
//  3. A primary that is down, or that fails to answer, is replaced by the next
//     unused fallback of the preference list (a sloppy quorum, Dynamo §4.6):
//     the fallback stores the object durably as a hint for that primary and
//     its acknowledgement counts toward W. The Handoff loop on the fallback
//     replays the hint when the primary is up again and deletes it once the
//     primary acknowledged.
//  4. The coordinator answers as soon as W replicas acknowledged, answers
//     unavailable as soon as W can no longer be reached, and answers timeout
//     when the deadline passes first. Replica sends already under way go on
//     in the background, so every reachable replica gets the write.
//
// Replica writes to one peer go through that peer's pipe (pipe.go), which
// batches the writes that queue while earlier ones are on the wire.
//
// An ordinary read asks R primaries (this node first), and one more when one
// fails or the answers are slow (read.go); it answers with the merge of the
// first R answers (every version no other version dominates: siblings), and
// sends the merged object to every replica it asked that answered with less
// (read repair). Primaries a read did not ask are caught up by hinted
// handoff and anti-entropy.
//
// The strong level is multi-writer ABD over the N primaries only (fallbacks
// never count), with majority quorums:
//
//   - write: read the objects of a majority, take the highest tag and the
//     join of their clocks, then store the value under a higher tag (a
//     logical counter plus the writer's actor id) on a majority. A replica
//     applies a strong write only if its tag is above the one it holds, and
//     then replaces every sibling it holds, so strong writes never create
//     siblings;
//   - read: read a majority, merge their objects (the highest tag wins), and
//     if any of them lacks the result write it back to a majority before
//     answering.
//
// Tags never come from wall-clock time. Each node keeps a monotonic tag
// counter that it persists in leases, so it never issues the same tag twice,
// even across restarts.
package replication
