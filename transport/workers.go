package transport

import (
	"context"
	"time"
)

// Requests run on reused goroutines. A fresh goroutine per request starts
// with a small stack that the handler (decoding, a badger transaction)
// grows every time; under load, growing and copying stacks and creating
// goroutines was a measurable share of a replica's CPU. A handler
// goroutine that finishes a request waits up to workerIdle for the next
// one; a request that finds no goroutine waiting starts one, so there are
// as many as there are requests running at once, and no request ever
// waits for a busy one.
const workerIdle = 5 * time.Second

// serverJob is one request to run: handle's arguments.
type serverJob struct {
	s      *serverConn
	ctx    context.Context
	id     uint64
	budget uint32
	req    []byte
}

// dispatch runs j on an idle handler goroutine, or on a new one. The caller
// is counted in t.wg (a connection's read loop), so the counter is positive
// and the Add cannot race with Close's Wait; no t.mu needed.
func (t *TCP) dispatch(j serverJob) {
	select {
	case t.jobs <- j:
	default:
		t.wg.Go(func() { t.work(j) })
	}
}

// work runs j, then whatever dispatch hands it, until it has been idle for
// workerIdle or the transport closes.
func (t *TCP) work(j serverJob) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		j.s.handle(j.ctx, j.id, j.budget, j.req)
		j = serverJob{} // keep nothing of the last request alive
		idle.Reset(workerIdle)
		select {
		case j = <-t.jobs:
		case <-idle.C:
			return
		case <-t.ctx.Done():
			return
		}
	}
}
