package replication

import (
	"context"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/transport"
)

// TestNotRun: a forwarded write moves on to the next primary only when the
// failed call certainly did not run it; otherwise a second coordinator would
// store the value again under its own dot, as a sibling of the first.
func TestNotRun(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: 127.0.0.1:1: dial tcp: connection refused", transport.ErrUnreachable), true},
		{fmt.Errorf("transport: call x: %w", &transport.RemoteError{Msg: "node is starting"}), true},
		{fmt.Errorf("%w: 127.0.0.1:1: EOF", transport.ErrConnLost), false},
		{fmt.Errorf("transport: call x: %w", context.DeadlineExceeded), false},
		{transport.ErrClosed, false},
	} {
		if got := notRun(tc.err); got != tc.want {
			t.Errorf("notRun(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
