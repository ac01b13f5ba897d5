package antientropy

import (
	"context"
	"sync"
	"time"
)

// limiter paces work to a rate: a token bucket that may go into debt, so a
// cost known only afterwards (the size of an answer) can be charged too.
// Each wait charges n and sleeps until the bucket is out of debt; concurrent
// callers queue up behind the shared debt, so together they keep the rate.
// The burst is a tenth of a second's worth: short enough that repair comes
// in small, even slices between foreground requests.
type limiter struct {
	rate  float64 // units per second; 0 means unlimited
	burst float64
	now   func() time.Time

	// mu guards the fields below.
	mu    sync.Mutex
	avail float64
	last  time.Time
}

func newLimiter(rate float64, now func() time.Time) *limiter {
	if rate <= 0 {
		return &limiter{}
	}
	return &limiter{rate: rate, burst: max(rate/10, 1), now: now, avail: max(rate/10, 1), last: now()}
}

// reserve charges n units and returns how long the caller must wait before
// using them.
func (l *limiter) reserve(n int) time.Duration {
	if l.rate <= 0 || n <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if el := now.Sub(l.last).Seconds(); el > 0 {
		l.avail = min(l.burst, l.avail+el*l.rate)
	}
	l.last = now
	l.avail -= float64(n)
	if l.avail >= 0 {
		return 0
	}
	return time.Duration(-l.avail / l.rate * float64(time.Second))
}

// wait charges n units and waits until the rate allows them, or ctx ends.
func (l *limiter) wait(ctx context.Context, n int) error {
	d := l.reserve(n)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
