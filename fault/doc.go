// Package fault is quorumkv's multi-host fault suite: it runs a cluster of
// real `quorumkv server` processes, one per Docker container on a private
// bridge network, injects faults between them (partitions, kill -9 and
// restart, pause, packet loss), drives workloads from the host, and checks
// the recorded histories.
//
// How a run proceeds:
//
//  1. The cluster is up and every node sees every other as alive.
//  2. A workload's clients (each bound to one node, as a Jepsen client is)
//     issue operations and record each one with its invocation and
//     completion time and its outcome: ok, fail (certainly not applied) or
//     unknown (timeout, 503, a broken connection: it may have been applied).
//  3. Meanwhile the nemesis alternates healthy and faulty windows; every
//     window is logged with its start and end.
//  4. The nemesis heals everything, the suite waits for the cluster to be
//     whole again, and the workload's final phase reads what survived.
//  5. The checker turns the history into a verdict: "ok" or what it found.
//
// Checkers: register (Porcupine, linearizability of strong single-key
// operations), set (no acknowledged element lost, none appears that was
// never attempted) and converge (after healing, every key's primaries hold
// identical versions within a bound, and deleted keys stay deleted). Each
// has a negative control, an unsafe setting the checker must catch.
//
// Faults are injected from the host: iptables and tc run inside a
// container's network namespace through nsenter (the node image is FROM
// scratch and holds no tools), and kill and pause go through the docker CLI.
// Client traffic comes from the host (the bridge's gateway address) and is
// never filtered, so clients can always reach every node that is running.
package fault
