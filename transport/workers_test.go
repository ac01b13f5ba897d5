package transport

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// goroutineID parses the running goroutine's number from its stack header
// ("goroutine 123 [running]:"); tests only.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// Requests one after the other run on the same handler goroutine: it waits
// for the next request instead of exiting. (Before, every request started
// a goroutine of its own: 20 requests, 20 goroutines.)
func TestTCPHandlersReuseGoroutines(t *testing.T) {
	var mu sync.Mutex
	ids := map[uint64]bool{}
	srv := listen(t, testConfig(), func(_ context.Context, req []byte) ([]byte, error) {
		mu.Lock()
		ids[goroutineID()] = true
		mu.Unlock()
		return req, nil
	})
	cli := listen(t, testConfig(), nil)
	const calls = 20
	for range calls {
		if _, err := cli.Call(ctxTimeout(t, time.Second), srv.Addr(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The handler goroutine frees itself just after queueing its answer,
	// so a request can now and then arrive before it waits again and
	// start another; most must reuse one.
	if len(ids) > calls/2 {
		t.Fatalf("%d requests ran on %d goroutines; want them reused", calls, len(ids))
	}
}
