// Package metrics is one node's Prometheus registry and the short request
// window behind GET /v1/stats.
//
// Every node owns a prometheus.NewRegistry; nothing is registered in the
// global default registry, so several nodes (quorumkv dev, the cluster
// tests) run in one process, each serving its own /metrics. The registry
// holds:
//
//   - quorumkv_requests_total{api,op,level,outcome} and
//     quorumkv_request_duration_seconds{api,op,level}: fed by the HTTP API's
//     Observe hook (ObserveHTTP) and the Redis front door's (ObserveRESP).
//     Label values come from requests, so each is folded into a fixed set
//     (unknown methods become op="other", r=999 becomes level="invalid"):
//     hostile input cannot create series.
//   - counters read at scrape time from the components that own them
//     (replication.Stats, anti-entropy, store sizes) through CounterFunc and
//     GaugeFunc, which is also the hook for any component added later;
//   - gauges taken from one /v1/status snapshot per scrape (members by state,
//     partitions per member, pending hints, transfers, anti-entropy
//     progress), so /metrics and /v1/status never disagree;
//   - the Go runtime and process collectors.
//
// The window keeps one slot per second for the last minute, with a count,
// an error count and a coarse log-bucketed latency histogram per (api, op,
// level). Stats turns the last Config.Window of it into rates and p50, p95
// and p99 estimates (within a bucket width, about 25%), which is what the
// dashboard draws.
package metrics
