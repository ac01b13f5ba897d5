package transfer

import (
	"context"
	"sync"
	"time"
)

// limiter paces handoff by keys and bytes per second (a token bucket with
// a one-second burst), shared by every partition being handed off.
type limiter struct {
	mu            sync.Mutex
	keyRate, byte float64
	keys, bytes   float64
	last          time.Time
}

func newLimiter(keysPerSec, bytesPerSec int) *limiter {
	return &limiter{keyRate: float64(keysPerSec), byte: float64(bytesPerSec), keys: float64(keysPerSec), bytes: float64(bytesPerSec), last: time.Now()}
}

// wait blocks until n keys of size bytes may be sent.
func (l *limiter) wait(ctx context.Context, n, size int) error {
	for {
		l.mu.Lock()
		now := time.Now()
		el := now.Sub(l.last).Seconds()
		l.last = now
		l.keys = min(l.keyRate, l.keys+el*l.keyRate)
		l.bytes = min(l.byte, l.bytes+el*l.byte)
		var need time.Duration
		if l.keys >= float64(n) || l.keys >= l.keyRate {
			if l.bytes >= float64(size) || l.bytes >= l.byte {
				l.keys -= float64(n)
				l.bytes -= float64(size)
				l.mu.Unlock()
				return nil
			}
			need = time.Duration((float64(size) - l.bytes) / l.byte * float64(time.Second))
		} else {
			need = time.Duration((float64(n) - l.keys) / l.keyRate * float64(time.Second))
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(need, time.Millisecond)):
		}
	}
}
