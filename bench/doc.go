// Package bench is the load generator behind `quorumkv bench`: the YCSB
// core workloads run at one or more consistency levels against the same
// data, with HDR latency histograms, per-second throughput, and a staleness
// check on every read.
//
// How a run proceeds (Run):
//
//  1. Without endpoints, an embedded cluster of real nodes (StartEmbedded)
//     is started on loopback in a temporary directory, and removed at the
//     end.
//  2. The load phase inserts Records keys (at quorum, or at strong when the
//     first level is strong), Concurrency workers at a time. Keys are
//     unique to the run, so earlier runs' data never mixes in.
//  3. Each level runs for Duration (or Ops transactions), one level after
//     the other, after a short Settle pause. Every worker is a closed loop
//     with one request in flight, rotating over the endpoints, drawing
//     transactions in the workload's proportions and keys from its own
//     chooser (uniform, YCSB's scrambled zipfian, or skewed latest) with
//     its own seeded random source.
//  4. Each worker keeps one HDR histogram per operation type; they are
//     merged at the end of the level, so the hot path takes no shared lock
//     except the staleness tracker's per-key shard.
//
// Staleness. Every value written starts with a per-key sequence number
// (8 bytes, big-endian) handed out when the write starts. The Tracker
// records when each write started and when its acknowledgement arrived. A
// read is stale when a write to its key acknowledged before the read started
// is newer (in real time: it started after the returned value's write was
// acknowledged) than every value, sibling or not, the read returned. Writes
// that overlapped are not ordered, so a linearizable store is never called
// stale; with sequential writes the rule is simply "an older sequence number
// than the newest acknowledged one". The rule is conservative: timestamps
// are taken on the bench's side of each request, so a read is only called
// stale when it certainly was.
//
// Writes and contexts. Updates send the newest causal context the bench
// has seen for the key (from any worker's read or write), as a client that
// keeps contexts does, so that updates supersede instead of piling up
// siblings; workload F's read-modify-write sends exactly the context of its
// own read. Strong writes send none: the strong level orders writes by tag.
//
// Workload E's short range scans read runs of 1 to 100 consecutive records
// (in record order) with one point read after another: quorumkv hashes keys
// onto its ring and has no key order to scan. A scan is recorded as one
// operation taking the reads' total time.
//
// RunStaleness measures t-visibility separately: each trial overwrites a key
// through one node, waits t after the acknowledgement, and reads it through
// another; it reports the share of fresh reads per level and t.
package bench
