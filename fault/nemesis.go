package fault

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Nemesis injects one kind of fault. Inject picks its victims with rnd
// and returns a description of what it did; Recover undoes it.
type Nemesis interface {
	Name() string
	Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error)
	Recover(ctx context.Context, c *Cluster) error
}

// NemesisNames lists every nemesis, in the order the full suite runs them.
var NemesisNames = []string{"none", "isolate", "split", "bridge", "kill", "pause", "loss", "mix"}

// NewNemesis returns the nemesis called name. focus, when not negative, is
// the node the first fault window must hit (a workload may have chosen its
// keys around it).
func NewNemesis(name string, focus int) (Nemesis, error) {
	switch name {
	case "none":
		return noNemesis{}, nil
	case "isolate", "split", "bridge":
		return &partitionNemesis{name: name, focus: focus}, nil
	case "kill", "pause":
		return &processNemesis{name: name, focus: focus, victim: -1}, nil
	case "loss":
		return &lossNemesis{prob: 0.2, delayMS: 50}, nil
	case "mix":
		var all []Nemesis
		for _, n := range []string{"isolate", "split", "bridge", "kill", "pause", "loss"} {
			nem, _ := NewNemesis(n, focus)
			all = append(all, nem)
		}
		return &mixNemesis{all: all, cur: -1}, nil
	}
	return nil, fmt.Errorf("fault: unknown nemesis %q (known: %s)", name, strings.Join(NemesisNames, ", "))
}

type noNemesis struct{}

func (noNemesis) Name() string { return "none" }
func (noNemesis) Inject(context.Context, *Cluster, *rand.Rand) (string, error) {
	return "no fault", nil
}
func (noNemesis) Recover(context.Context, *Cluster) error { return nil }

// pickNode returns focus the first time it is asked (if set), then random
// nodes.
func pickNode(focus *int, n int, rnd *rand.Rand) int {
	if *focus >= 0 {
		v := *focus
		*focus = -1
		return v
	}
	return rnd.Intn(n)
}

// partitionNemesis cuts the network: isolate (one node from the rest),
// split (a minority of two from a majority of three), or bridge (two
// majorities that share one node, which alone sees everyone).
type partitionNemesis struct {
	name  string
	focus int
}

func (p *partitionNemesis) Name() string { return p.name }

func (p *partitionNemesis) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	n := c.Size()
	first := pickNode(&p.focus, n, rnd)
	// A random order of the other nodes after first.
	rest := rnd.Perm(n)
	order := []int{first}
	for _, v := range rest {
		if v != first {
			order = append(order, v)
		}
	}
	groups := partitionGroups(p.name, order)
	if err := c.Partition(ctx, groups); err != nil {
		return "", err
	}
	return "partition " + describeGroups(c, groups), nil
}

// partitionGroups splits nodes (in order; the first is the victim or the
// bridge) into the groups of the named partition.
func partitionGroups(kind string, order []int) [][]int {
	n := len(order)
	switch kind {
	case "isolate":
		return [][]int{{order[0]}, sorted(order[1:])}
	case "split":
		k := n / 2 // the minority: 2 of 5
		return [][]int{sorted(order[:k]), sorted(order[k:])}
	case "bridge":
		// order[0] is the bridge; the others are halved and each half joins
		// it: five nodes give {a,b,X} and {X,c,d}.
		half := (n - 1) / 2
		return [][]int{sorted(append([]int{order[0]}, order[1:1+half]...)), sorted(append([]int{order[0]}, order[1+half:]...))}
	}
	return [][]int{sorted(order)}
}

func (p *partitionNemesis) Recover(ctx context.Context, c *Cluster) error { return c.Heal(ctx) }

func describeGroups(c *Cluster, groups [][]int) string {
	var parts []string
	for _, g := range groups {
		var ids []string
		for _, i := range g {
			ids = append(ids, c.nodes[i].ID)
		}
		parts = append(parts, "{"+strings.Join(ids, ",")+"}")
	}
	return strings.Join(parts, " | ")
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// processNemesis kills (SIGKILL, then a restart on the same disk) or pauses
// (freezes, then thaws) one node.
type processNemesis struct {
	name   string
	focus  int
	mu     sync.Mutex
	victim int // guarded by mu; -1 when none
}

func (p *processNemesis) Name() string { return p.name }

func (p *processNemesis) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	v := pickNode(&p.focus, c.Size(), rnd)
	p.mu.Lock()
	p.victim = v
	p.mu.Unlock()
	id := c.nodes[v].ID
	if p.name == "kill" {
		return "kill -9 " + id, c.Kill(ctx, v)
	}
	return "pause " + id, c.Pause(ctx, v)
}

func (p *processNemesis) Recover(ctx context.Context, c *Cluster) error {
	p.mu.Lock()
	v := p.victim
	p.victim = -1
	p.mu.Unlock()
	if v < 0 {
		return nil
	}
	if p.name == "kill" {
		return c.Restart(ctx, v)
	}
	return c.Unpause(ctx, v)
}

// lossNemesis drops a share of the packets between every pair of nodes and,
// where tc's netem works, delays them.
type lossNemesis struct {
	prob    float64
	delayMS int
	netem   *bool
}

func (l *lossNemesis) Name() string { return "loss" }

func (l *lossNemesis) Inject(ctx context.Context, c *Cluster, _ *rand.Rand) (string, error) {
	if l.netem == nil {
		ok := c.NetemAvailable(ctx)
		l.netem = &ok
	}
	delay := 0
	desc := fmt.Sprintf("drop %.0f%% of packets between nodes", l.prob*100)
	if *l.netem {
		delay = l.delayMS
		desc += fmt.Sprintf(", delay %dms±%dms", delay, delay/4)
	} else {
		desc += " (no delay: tc netem is not available in this kernel)"
	}
	return desc, c.Lossy(ctx, l.prob, delay)
}

func (l *lossNemesis) Recover(ctx context.Context, c *Cluster) error { return c.Heal(ctx) }

// mixNemesis picks one of the other nemeses at random for each window, as
// Jepsen's composed nemeses do, so faults of different kinds follow each
// other within one run.
type mixNemesis struct {
	all []Nemesis
	cur int // the nemesis of the open window; -1 when none
}

func (m *mixNemesis) Name() string { return "mix" }

func (m *mixNemesis) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	m.cur = rnd.Intn(len(m.all))
	d, err := m.all[m.cur].Inject(ctx, c, rnd)
	return m.all[m.cur].Name() + ": " + d, err
}

func (m *mixNemesis) Recover(ctx context.Context, c *Cluster) error {
	if m.cur < 0 {
		return nil
	}
	err := m.all[m.cur].Recover(ctx, c)
	m.cur = -1
	return err
}

// Window is one fault window: when the fault was injected and healed,
// relative to the run's start and as wall-clock times.
type Window struct {
	Nemesis   string    `json:"nemesis"`
	Detail    string    `json:"detail"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	Start     float64   `json:"start_s"`
	End       float64   `json:"end_s"`
	Error     string    `json:"error,omitempty"`
}

// Schedule is when faults happen in a run: after Lead of health, Fault of
// fault alternates with Gap of health until Lead+Span has passed; the run
// then goes on healed until its end.
type Schedule struct {
	Lead  time.Duration
	Fault time.Duration
	Gap   time.Duration
	Span  time.Duration
}

// WindowStarts returns when each fault window opens, relative to the run's
// start: window k at Lead + k*(Fault+Gap), as many as fit in Span.
func (s Schedule) WindowStarts() []time.Duration {
	if s.Fault <= 0 {
		return nil
	}
	var out []time.Duration
	for at := time.Duration(0); at+s.Fault <= s.Span; at += s.Fault + s.Gap {
		out = append(out, s.Lead+at)
	}
	return out
}

// runNemesis drives nem over sched from start until ctx ends or the span
// is over, logging each window, and always recovers before it returns.
func runNemesis(ctx context.Context, c *Cluster, nem Nemesis, sched Schedule, rnd *rand.Rand, start time.Time, logf func(string, ...any)) []Window {
	var windows []Window
	if nem.Name() == "none" {
		return nil
	}
	rel := func(t time.Time) float64 { return t.Sub(start).Seconds() }
	for _, at := range sched.WindowStarts() {
		if sleepCtx(ctx, time.Until(start.Add(at))) != nil {
			break
		}
		w := Window{Nemesis: nem.Name(), StartedAt: time.Now()}
		w.Start = rel(w.StartedAt)
		detail, err := nem.Inject(context.WithoutCancel(ctx), c, rnd)
		w.Detail = detail
		if err != nil {
			w.Error = err.Error()
		}
		logf("  fault window opens at +%.1fs: %s%s", w.Start, detail, errSuffix(w.Error))
		_ = sleepCtx(ctx, time.Until(w.StartedAt.Add(sched.Fault)))
		// Recovery must happen even when the run is being cancelled.
		if err := nem.Recover(context.WithoutCancel(ctx), c); err != nil {
			w.Error = strings.TrimSpace(w.Error + "; recover: " + err.Error())
		}
		w.EndedAt = time.Now()
		w.End = rel(w.EndedAt)
		logf("  fault window closes at +%.1fs (%.1fs)%s", w.End, w.End-w.Start, errSuffix(w.Error))
		windows = append(windows, w)
	}
	return windows
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
