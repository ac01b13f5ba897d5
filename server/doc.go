// Package server is quorumkv's client HTTP API (v1): key-value reads and
// writes at a consistency level chosen per request, status, explain, health.
//
// Every error is JSON {"error", "code", ...} and the mapping from the
// replication package's errors to status codes lives in one place
// (writeError). Every answer to a key-value request carries the consistency
// receipt headers (X-Replicas, X-Acks, X-Fallbacks, X-Read-Repair).
package server
