package resp

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// maxIdleWorkers bounds the goroutines the pool keeps between tasks.
const maxIdleWorkers = 256

// workerPool runs the concurrent parts of commands (the commands of a wave,
// the keys of an MGET) on goroutines that outlive one task. A fresh
// goroutine starts with a 2 KiB stack and copies it, twice or more, on its
// way down through a command into the KV; with a goroutine per command that
// stack growth cost more than the command itself. Pool goroutines keep the
// stack they grew.
//
// submit never blocks: when no pooled goroutine is idle it starts one (up to
// maxIdleWorkers of them live), or else a plain goroutine for that task.
type workerPool struct {
	tasks chan task
	live  atomic.Int64
	wg    sync.WaitGroup
	log   *slog.Logger
}

// task is a unit of work: fn when set, else command k of c's wave.
type task struct {
	c  *client
	k  int
	fn func()
}

func newWorkerPool(log *slog.Logger) *workerPool {
	return &workerPool{tasks: make(chan task), log: log}
}

func (p *workerPool) submit(t task) {
	select {
	case p.tasks <- t:
		return
	default:
	}
	p.wg.Add(1)
	if p.live.Add(1) <= maxIdleWorkers {
		go p.worker(t)
		return
	}
	p.live.Add(-1)
	go func() {
		defer p.wg.Done()
		p.run(t)
	}()
}

func (p *workerPool) worker(first task) {
	defer p.wg.Done()
	defer p.live.Add(-1)
	p.run(first)
	for t := range p.tasks {
		p.run(t)
	}
}

func (p *workerPool) run(t task) {
	defer func() {
		// Tasks recover their own panics and answer an error; this only
		// keeps a worker alive should one slip through.
		if r := recover(); r != nil {
			p.log.Error("resp: worker task panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if t.fn != nil {
		t.fn()
		return
	}
	t.c.runWaveTask(t.k)
}

// close stops the workers once no one submits any more, and waits for them.
func (p *workerPool) close() {
	close(p.tasks)
	p.wg.Wait()
}
