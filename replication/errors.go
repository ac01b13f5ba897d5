package replication

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors; the HTTP layer maps them to status codes.
var (
	// ErrUnavailable: fewer replicas than needed could answer.
	ErrUnavailable = errors.New("replication: not enough replicas answered")
	// ErrTimeout: the deadline passed before enough replicas answered; the
	// outcome is unknown.
	ErrTimeout = errors.New("replication: timed out, outcome unknown")
	// ErrBadRequest: the request itself is invalid.
	ErrBadRequest = errors.New("replication: bad request")
	// ErrTooManySiblings: a write would take a key past the sibling limit.
	ErrTooManySiblings = errors.New("replication: too many siblings")
	// ErrClosed: the coordinator is shut down.
	ErrClosed = errors.New("replication: closed")
)

// QuorumError says how a request fell short of its quorum. It unwraps to
// ErrTimeout when the outcome is unknown (the deadline passed with answers
// still pending, or the connection to a forwarded write's coordinator broke
// after the request went out), else to ErrUnavailable.
type QuorumError struct {
	Op      string
	Needed  int
	Acked   int
	Timeout bool
	// Unknown: the request may have run, but its answer was lost.
	Unknown bool
	Receipt Receipt
	// Replicas, when not 0, is how many replicas the key has: fewer than
	// Needed, because the cluster has fewer members than N, so the request
	// was refused before it ran.
	Replicas, N int
	// Causes holds the failure of each replica that failed, by node id.
	Causes map[string]error
}

func (e *QuorumError) Error() string {
	var b strings.Builder
	if e.Timeout {
		fmt.Fprintf(&b, "%s timed out with %d of %d needed replica answers; the outcome is unknown", e.Op, e.Acked, e.Needed)
	} else if e.Refused() {
		noun := "replicas"
		if e.Replicas == 1 {
			noun = "replica"
		}
		fmt.Fprintf(&b, "%s needs %d replica answers but a key has only %d %s while the cluster has fewer members than N=%d; ask for %d or fewer, or add nodes (the %s was not run)",
			e.Op, e.Needed, e.Replicas, noun, e.N, e.Replicas, e.Op)
	} else if e.Unknown {
		fmt.Fprintf(&b, "%s lost the answer of its coordinator after sending it the request; the outcome is unknown", e.Op)
	} else {
		fmt.Fprintf(&b, "%s needs %d replica answers but only %d replicas answered", e.Op, e.Needed, e.Acked)
	}
	if len(e.Causes) > 0 {
		nodes := make([]string, 0, len(e.Causes))
		for n := range e.Causes {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		b.WriteString(" (")
		for i, n := range nodes {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %v", n, e.Causes[n])
		}
		b.WriteString(")")
	}
	return b.String()
}

// Refused reports whether the request was turned away before it ran, so
// nothing of it can show up later.
func (e *QuorumError) Refused() bool { return e.Replicas > 0 }

// Unwrap returns the sentinel this error stands for.
func (e *QuorumError) Unwrap() error {
	if e.Timeout || e.Unknown {
		return ErrTimeout
	}
	return ErrUnavailable
}
