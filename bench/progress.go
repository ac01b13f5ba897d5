package bench

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// liveCounters are what the progress display shows while a phase runs;
// workers bump them as operations finish.
type liveCounters struct {
	ops    atomic.Int64 // successful transactions
	errors atomic.Int64
	stale  atomic.Int64
}

// progressDisplay shows one phase's progress: a bar on a terminal, a plain
// line every interval otherwise. It runs in its own goroutine until stop.
type progressDisplay struct {
	w        io.Writer
	bar      bool
	every    time.Duration
	phase    string
	planned  time.Duration // run by time: the phase's length
	plannedN int64         // run by count: the phase's operations
	c        *liveCounters
	start    time.Time

	stopOnce sync.Once
	done     chan struct{}
	finished chan struct{}
}

// startProgress begins showing a phase. A nil w shows nothing.
func startProgress(w io.Writer, bar bool, every time.Duration, phase string, planned time.Duration, plannedN int64, c *liveCounters) *progressDisplay {
	p := &progressDisplay{
		w: w, bar: bar, every: every, phase: phase, planned: planned, plannedN: plannedN, c: c,
		start: time.Now(), done: make(chan struct{}), finished: make(chan struct{}),
	}
	if w == nil {
		close(p.finished)
		return p
	}
	go p.run()
	return p
}

func (p *progressDisplay) run() {
	defer close(p.finished)
	if p.bar {
		p.runBar()
		return
	}
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	lastOps, lastT := int64(0), p.start
	for {
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			ops := p.c.ops.Load()
			rate := float64(ops-lastOps) / now.Sub(lastT).Seconds()
			lastOps, lastT = ops, now
			fmt.Fprintf(p.w, "bench: %-8s %6.1fs %10d ops %9.0f ops/s %7d errors %7d stale\n",
				p.phase, now.Sub(p.start).Seconds(), ops, rate, p.c.errors.Load(), p.c.stale.Load())
		}
	}
}

func (p *progressDisplay) runBar() {
	max := p.plannedN
	if max <= 0 {
		max = p.planned.Milliseconds()
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetDescription(p.describe(time.Now())),
	}
	bar := progressbar.NewOptions64(max, opts...)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	update := func(now time.Time) {
		bar.Describe(p.describe(now))
		if p.plannedN > 0 {
			_ = bar.Set64(min(p.c.ops.Load()+p.c.errors.Load(), max))
		} else {
			_ = bar.Set64(min(now.Sub(p.start).Milliseconds(), max))
		}
	}
	for {
		select {
		case <-p.done:
			_ = bar.Clear()
			_ = bar.Exit()
			return
		case now := <-tick.C:
			update(now)
		}
	}
}

func (p *progressDisplay) describe(now time.Time) string {
	el := now.Sub(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(p.c.ops.Load()) / el.Seconds()
	}
	return fmt.Sprintf("%-8s %5.1fs %8.0f ops/s %6d err %6d stale", p.phase, el.Seconds(), rate, p.c.errors.Load(), p.c.stale.Load())
}

// stop ends the display and waits for it to let go of the writer.
func (p *progressDisplay) stop() {
	p.stopOnce.Do(func() { close(p.done) })
	<-p.finished
}
