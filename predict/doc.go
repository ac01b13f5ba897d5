// Package predict estimates how stale eventually consistent reads are, from
// latencies the cluster measured: Probabilistically Bounded Staleness
// (PBS, Bailis et al., VLDB 2012).
//
// Every node records, per replica message, the four delays of the WARS
// model in a Recorder: W (a write reaching a replica), A (its ack coming
// back), R (a read reaching a replica) and S (its response coming back).
// One-way delays are measured with the sender's and receiver's wall clocks,
// so they are only as good as the hosts' clock agreement; on one machine
// they are exact. The Monte Carlo simulation replays writes and reads drawn
// from those distributions and reports, for each delay t after a write was
// acknowledged, the chance that a read started then returns it.
//
// The package is pure: no I/O, randomness from a seed.
package predict
