package replication

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/wire"
)

// HandoffConfig configures hint replay.
type HandoffConfig struct {
	// Interval between replay passes. Default 1s.
	Interval time.Duration
	// Window is how long a hint is kept; older hints are dropped and left to
	// anti-entropy. Default 3h.
	Window time.Duration
	// Rate is the most hints replayed per second, over all targets.
	// Default 2000.
	Rate int
	// Batch is how many hints are read from the store at a time. Default 128.
	Batch int
}

// DefaultHandoffConfig returns the defaults described on HandoffConfig.
func DefaultHandoffConfig() HandoffConfig {
	return HandoffConfig{Interval: time.Second, Window: 3 * time.Hour, Rate: 2000, Batch: 128}
}

// Validate reports every problem at once.
func (h HandoffConfig) Validate() error {
	var errs []error
	if h.Interval <= 0 {
		errs = append(errs, errors.New("handoff: interval must be positive"))
	}
	if h.Window <= 0 {
		errs = append(errs, errors.New("handoff: hint window must be positive"))
	}
	if h.Rate <= 0 {
		errs = append(errs, errors.New("handoff: rate must be positive"))
	}
	if h.Batch <= 0 {
		errs = append(errs, errors.New("handoff: batch must be positive"))
	}
	return errors.Join(errs...)
}

// RunHandoff replays hints to their targets until ctx ends. A hint is
// deleted only after its target acknowledged it, so a crash in between
// replays it again; replay is a merge, so a second delivery changes nothing.
func (c *Coordinator) RunHandoff(ctx context.Context, hc HandoffConfig) error {
	if err := hc.Validate(); err != nil {
		return err
	}
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	gap := time.Second / time.Duration(hc.Rate)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		counts, err := c.st.HintCounts()
		if err != nil {
			c.log.Warn("hint scan failed", "err", err)
			continue
		}
		targets := make([]string, 0, len(counts))
		for t := range counts {
			targets = append(targets, t)
		}
		sort.Strings(targets)
		for _, target := range targets {
			if ctx.Err() != nil {
				return nil
			}
			c.replayTo(ctx, target, hc, gap)
		}
	}
}

func (c *Coordinator) replayTo(ctx context.Context, target string, hc HandoffConfig, gap time.Duration) {
	now := c.cfg.Now()
	up := c.cl.Up(target)
	var stop = errors.New("stop")
	for ctx.Err() == nil {
		n := 0
		err := c.st.Hints(target, hc.Batch, func(h store.Hint) error {
			n++
			if now.Sub(time.Unix(0, h.Created)) > hc.Window {
				if err := c.st.DeleteHint(target, h.Seq); err != nil {
					return err
				}
				c.Stats.HintsExpired.Add(1)
				return nil
			}
			if !up {
				return stop
			}
			obj := h.Object
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			_, err := c.call(rctx, target, wire.Request{Op: wire.OpWrite, Partition: h.Partition, Key: h.Key, Object: &obj})
			cancel()
			if err != nil {
				c.log.Debug("hint replay failed", "peer", target, "err", err)
				return stop
			}
			if err := c.st.DeleteHint(target, h.Seq); err != nil {
				return err
			}
			c.Stats.HintsDelivered.Add(1)
			select {
			case <-ctx.Done():
				return stop
			case <-time.After(gap):
			}
			return nil
		})
		if err != nil || n < hc.Batch {
			return
		}
	}
}

// PendingHints returns how many hints this node holds, per target.
func (c *Coordinator) PendingHints() (map[string]int64, error) { return c.st.HintCounts() }
