package transport

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// echo answers with the request itself.
func echo(_ context.Context, req []byte) ([]byte, error) { return req, nil }

// testConfig is a loopback config with short timers so tests finish fast.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.BackoffMin = 10 * time.Millisecond
	cfg.BackoffMax = 50 * time.Millisecond
	cfg.Seed = 1
	return cfg
}

// listen starts a TCP transport that the test closes at cleanup.
func listen(t testing.TB, cfg Config, h Handler) *TCP {
	t.Helper()
	tr, err := ListenTCP(cfg, h)
	if err != nil {
		t.Fatalf("ListenTCP: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkNoLeak records the goroutine count and returns a function that waits
// until the count is back to it, failing with a stack dump otherwise.
func checkNoLeak(t testing.TB) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				var ours []string
				for _, g := range strings.Split(string(buf), "\n\n") {
					if strings.Contains(g, "quorumkv/transport.") {
						ours = append(ours, g)
					}
				}
				t.Fatalf("goroutines: %d before, %d after; transport goroutines still running:\n%s",
					before, runtime.NumGoroutine(), strings.Join(ours, "\n\n"))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// ctxTimeout is a ctx with a timeout cancelled at test cleanup.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
