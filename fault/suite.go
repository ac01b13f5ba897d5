package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/client"
)

// Spec is one run: a workload (and its variant) under a nemesis.
type Spec struct {
	Workload string // register, set, converge
	// Variant: register "strong" or "one"; set "union" or "lww"; converge
	// "repair".
	Variant  string
	Nemesis  string
	Control  bool
	Duration time.Duration
	Schedule Schedule
	// ClusterArgs are extra `quorumkv server` flags for this run's cluster
	// (the converge control turns repair off with them).
	ClusterArgs []string
	// CheckBound bounds the wait for convergence after healing (converge).
	CheckBound time.Duration
	// Linger is how long the converge checker waits after convergence
	// before it looks at the deleted keys again, so that anti-entropy
	// rounds (and tombstone collection) have run.
	Linger time.Duration
}

// Name is a file-system friendly name of the run.
func (s Spec) Name() string { return s.Workload + "-" + s.Variant + "-" + s.Nemesis }

// QuickPlan is the short suite CI runs (FAULT_QUICK=1): one run per
// checker plus both negative controls, a few minutes in all.
func QuickPlan() []Spec {
	// One fault window of 12 s after 3 s of health, then 5 s healed.
	one := Schedule{Lead: 3 * time.Second, Fault: 12 * time.Second, Span: 12 * time.Second}
	return []Spec{
		{Workload: "register", Variant: "strong", Nemesis: "isolate", Duration: 20 * time.Second, Schedule: one},
		{Workload: "register", Variant: "one", Nemesis: "isolate", Control: true, Duration: 15 * time.Second,
			Schedule: Schedule{Lead: 3 * time.Second, Fault: 10 * time.Second, Span: 10 * time.Second}},
		{Workload: "set", Variant: "union", Nemesis: "kill", Duration: 20 * time.Second, Schedule: one},
		{Workload: "set", Variant: "lww", Nemesis: "kill", Control: true, Duration: 12 * time.Second,
			Schedule: Schedule{Lead: 2 * time.Second, Fault: 7 * time.Second, Span: 7 * time.Second}},
		// Peers declare a paused node dead 5–9 s after it froze (seen in the
		// nodes' logs); 14 s leaves a margin on a loaded machine.
		{Workload: "converge", Variant: "repair", Nemesis: "pause", Duration: 22 * time.Second,
			Schedule: Schedule{Lead: 3 * time.Second, Fault: 14 * time.Second, Span: 14 * time.Second}, CheckBound: time.Minute},
		convergeControl(),
	}
}

// convergeControl is the converge checker's negative control: hints expire
// at once and anti-entropy waits an hour, so what a paused node missed is
// never repaired (the fault lasts to the end of the run, so no read after
// healing repairs it either). The checker must report divergence.
func convergeControl() Spec {
	return Spec{Workload: "converge", Variant: "no-repair", Nemesis: "pause", Control: true, Duration: 15 * time.Second,
		Schedule:    Schedule{Lead: 3 * time.Second, Fault: 12 * time.Second, Span: 12 * time.Second},
		ClusterArgs: []string{"--hint-window", "1ms", "--anti-entropy-interval", "1h"},
		CheckBound:  15 * time.Second}
}

// FullPlan runs every workload under every nemesis, longer and with
// repeated fault windows, then the negative controls.
func FullPlan() []Spec {
	cycles := Schedule{Lead: 5 * time.Second, Fault: 15 * time.Second, Gap: 10 * time.Second, Span: 75 * time.Second}
	var out []Spec
	for _, w := range []struct{ workload, variant string }{{"register", "strong"}, {"set", "union"}, {"converge", "repair"}} {
		for _, n := range NemesisNames {
			spec := Spec{Workload: w.workload, Variant: w.variant, Nemesis: n, Duration: 90 * time.Second, Schedule: cycles}
			if w.workload == "converge" {
				spec.CheckBound = 2 * time.Minute
				spec.Linger = 35 * time.Second
			}
			out = append(out, spec)
		}
	}
	out = append(out,
		Spec{Workload: "register", Variant: "one", Nemesis: "isolate", Control: true, Duration: 40 * time.Second,
			Schedule: Schedule{Lead: 5 * time.Second, Fault: 15 * time.Second, Gap: 5 * time.Second, Span: 30 * time.Second}},
		Spec{Workload: "register", Variant: "one", Nemesis: "pause", Control: true, Duration: 40 * time.Second,
			Schedule: Schedule{Lead: 5 * time.Second, Fault: 15 * time.Second, Gap: 5 * time.Second, Span: 30 * time.Second}},
		Spec{Workload: "set", Variant: "lww", Nemesis: "none", Control: true, Duration: 30 * time.Second},
		Spec{Workload: "set", Variant: "lww", Nemesis: "split", Control: true, Duration: 40 * time.Second,
			Schedule: Schedule{Lead: 5 * time.Second, Fault: 15 * time.Second, Gap: 5 * time.Second, Span: 30 * time.Second}},
		convergeControl(),
	)
	return out
}

// Result is one run's line in fault-results.json. The first seven fields
// are the contract of the brief; the rest explain them.
type Result struct {
	Workload string `json:"workload"`
	Nemesis  string `json:"nemesis"`
	Ops      int    `json:"ops"`
	Acked    int    `json:"acked"`
	Lost     int    `json:"lost"`
	Verdict  string `json:"verdict"`
	Control  bool   `json:"control"`

	Variant string `json:"variant"`
	// Unknown counts writes whose outcome is unknown; Failed operations
	// that certainly did not happen.
	Unknown int `json:"unknown"`
	Failed  int `json:"failed"`
	// Expected reports whether the verdict is what the run should give:
	// "ok" for a real run, anything else for a negative control.
	Expected  bool     `json:"expected"`
	DurationS float64  `json:"duration_s"`
	CheckS    float64  `json:"check_s"`
	Windows   []Window `json:"windows"`
	Notes     []string `json:"notes,omitempty"`
	// Artifacts is the directory holding the history (and Porcupine's
	// visualization) when the check failed.
	Artifacts string `json:"artifacts,omitempty"`
}

// Results is the whole of fault-results.json.
type Results struct {
	Quick    bool      `json:"quick"`
	Seed     int64     `json:"seed"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Runs     []Result  `json:"runs"`
}

// SuiteConfig configures RunSuite.
type SuiteConfig struct {
	Cluster ClusterConfig
	// OutDir receives histories, visualizations and node logs of failed
	// checks ("fault-out").
	OutDir string
	// ResultsPath is where fault-results.json goes; it is rewritten after
	// every run, so an interrupted suite leaves what it did.
	ResultsPath string
	Quick       bool
	Seed        int64
	// CheckTimeout bounds Porcupine. Default 2m.
	CheckTimeout time.Duration
	// Out receives the progress log and the final table.
	Out io.Writer
}

// Suite runs specs on one cluster, restarting it between runs only when it
// cannot be made whole again.
type Suite struct {
	cfg     SuiteConfig
	cluster *Cluster
	rnd     *rand.Rand
	results Results
}

// NewSuite returns a suite; Run starts the cluster.
func NewSuite(cfg SuiteConfig) *Suite {
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Minute
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	s := &Suite{cfg: cfg, rnd: rand.New(rand.NewSource(cfg.Seed))}
	s.cfg.Cluster.Logf = s.logf
	s.results = Results{Quick: cfg.Quick, Seed: cfg.Seed, Started: time.Now().UTC()}
	return s
}

func (s *Suite) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Out, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Run runs every spec and returns the results; an error means the suite
// could not run at all (no Docker, no cluster), not that a check failed.
// The cluster is removed before Run returns.
func (s *Suite) Run(ctx context.Context, specs []Spec) (Results, error) {
	defer func() {
		if s.cluster != nil {
			s.logf("removing the cluster")
			if err := s.cluster.Close(context.WithoutCancel(ctx)); err != nil {
				s.logf("cleanup: %v", err)
			}
		}
	}()
	if err := os.MkdirAll(s.cfg.OutDir, 0o755); err != nil {
		return s.results, err
	}
	if err := Cleanup(ctx); err != nil {
		return s.results, err
	}
	for i, spec := range specs {
		if ctx.Err() != nil {
			break
		}
		if err := s.freshCluster(ctx, spec); err != nil {
			return s.finish(), err
		}
		s.logf("run %d/%d: %s under %s%s for %s", i+1, len(specs), spec.Workload+"/"+spec.Variant, spec.Nemesis, controlTag(spec.Control), spec.Duration)
		res := s.runOne(ctx, i, spec)
		s.logf("run %d/%d: %s — %s (%s)", i+1, len(specs), spec.Name(), res.Verdict, expectation(res))
		s.results.Runs = append(s.results.Runs, res)
		if err := s.write(); err != nil {
			return s.finish(), err
		}
	}
	return s.finish(), ctx.Err()
}

func (s *Suite) finish() Results {
	s.results.Finished = time.Now().UTC()
	_ = s.write()
	return s.results
}

func (s *Suite) write() error {
	b, err := json.MarshalIndent(s.results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(s.cfg.ResultsPath, append(b, '\n'), 0o644)
}

func controlTag(c bool) string {
	if c {
		return " (negative control)"
	}
	return ""
}

func expectation(r Result) string {
	switch {
	case r.Expected && r.Control:
		return "caught, as a control must be"
	case r.Expected:
		return "as expected"
	case r.Control:
		return "CONTROL NOT CAUGHT: the checker is blind"
	}
	return "FAILED"
}

// freshCluster replaces the cluster with a new one (new containers, empty
// volumes) for spec, so that no run inherits another's hints, repairs or
// faults. Starting five containers takes a few seconds.
func (s *Suite) freshCluster(ctx context.Context, spec Spec) error {
	if s.cluster != nil {
		if err := s.cluster.Close(ctx); err != nil {
			return err
		}
		s.cluster = nil
	}
	cfg := s.cfg.Cluster
	cfg.ExtraArgs = append(slices.Clone(cfg.ExtraArgs), spec.ClusterArgs...)
	start := time.Now()
	c, err := StartCluster(ctx, cfg)
	if err != nil {
		return err
	}
	s.cluster = c
	s.logf("cluster of %d nodes ready in %.1fs%s", c.Size(), time.Since(start).Seconds(), argsSuffix(spec.ClusterArgs))
	return nil
}

func argsSuffix(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return " (with " + strings.Join(args, " ") + ")"
}

// runOne runs one spec and checks it. The cluster is healthy on entry.
func (s *Suite) runOne(ctx context.Context, idx int, spec Spec) Result {
	c := s.cluster
	res := Result{Workload: spec.Workload, Nemesis: spec.Nemesis, Control: spec.Control, Variant: spec.Variant, Windows: []Window{}}
	seed := s.rnd.Int63()
	focus := s.rnd.Intn(c.Size())
	prefix := fmt.Sprintf("r%d-%x", idx, seed&0xffff)
	nem, err := NewNemesis(spec.Nemesis, focus)
	if err != nil {
		res.Verdict = err.Error()
		return res
	}
	rec := NewRecorder()
	runCtx, cancel := context.WithDeadline(ctx, rec.Start().Add(spec.Duration))
	defer cancel()
	windowsCh := make(chan []Window, 1)
	startNemesis := func() {
		go func() {
			windowsCh <- runNemesis(runCtx, c, nem, spec.Schedule, rand.New(rand.NewSource(seed)), rec.Start(), s.logf)
		}()
	}
	var check func() (verdict string, ok bool)
	var artifacts func(dir string)
	switch spec.Workload {
	case "register":
		level := client.LevelStrong
		if spec.Variant == "one" {
			level = client.LevelOne
		}
		keys, err := s.keysAround(ctx, prefix+"-reg", 4, focus)
		if err != nil {
			res.Verdict = err.Error()
			return res
		}
		cfg := RegisterConfig{Level: level, Keys: keys, ClientsPerNode: 2, Think: 30 * time.Millisecond, Seed: seed}
		startNemesis()
		RunRegister(runCtx, c, cfg, rec)
		res.Windows = <-windowsCh
		s.heal(ctx, &res)
		checkStart := time.Now()
		res.Notes = append(res.Notes, FinalRegisterReads(ctx, c, cfg, rec, 30*time.Second)...)
		ops := rec.Ops()
		chk := CheckRegister(ops, s.cfg.CheckTimeout)
		res.CheckS = time.Since(checkStart).Seconds()
		countOps(&res, ops)
		res.Notes = append(res.Notes, fmt.Sprintf("porcupine: %s over %d reads and %d writes/deletes (%d with unknown outcome; %d more unknown writes never read, left out); %d reads returned siblings",
			chk.Result, chk.Reads, chk.Writes, chk.Unknown, chk.Pruned, chk.SiblingReads))
		check = func() (string, bool) {
			switch chk.Result {
			case porcupine.Ok:
				return "ok", true
			case porcupine.Illegal:
				v := "not linearizable"
				switch {
				case chk.SiblingReads > 0 && chk.WithoutSiblings == porcupine.Illegal:
					v += fmt.Sprintf(" (%d reads returned siblings; stale reads alone break it too)", chk.SiblingReads)
				case chk.SiblingReads > 0:
					v += fmt.Sprintf(" (%d reads returned siblings)", chk.SiblingReads)
				}
				return v, false
			}
			return fmt.Sprintf("unknown: porcupine gave up after %s", s.cfg.CheckTimeout), false
		}
		artifacts = func(dir string) {
			info := chk.Info
			info.AddAnnotations(windowAnnotations(res.Windows, rec.Start()))
			if err := porcupine.VisualizePath(RegisterModel(), info, filepath.Join(dir, "visualization.html")); err != nil {
				res.Notes = append(res.Notes, "visualization: "+err.Error())
			}
		}
	case "set":
		keys := []string{prefix + "-set-a", prefix + "-set-b", prefix + "-set-c"}
		cfg := SetConfig{Level: client.LevelQuorum, Keys: keys, ClientsPerNode: 2, Think: 60 * time.Millisecond, Seed: seed, LWW: spec.Variant == "lww"}
		startNemesis()
		h := RunSet(runCtx, c, cfg, rec)
		res.Windows = <-windowsCh
		s.heal(ctx, &res)
		checkStart := time.Now()
		s.drainHints(ctx, &res)
		final, problems := FinalSetReads(ctx, c, keys, h, rec, 10*time.Second)
		res.Notes = append(res.Notes, problems...)
		chk := CheckSet(keys, h, final)
		res.CheckS = time.Since(checkStart).Seconds()
		countOps(&res, rec.Ops())
		res.Acked = chk.Acked
		res.Lost = len(chk.Lost)
		res.Notes = append(res.Notes, fmt.Sprintf("%d elements attempted, %d acknowledged, %d lost, %d never attempted",
			chk.Attempted, chk.Acked, len(chk.Lost), len(chk.Unexpected)))
		check = func() (string, bool) { return chk.Verdict(), chk.OK() }
		artifacts = func(dir string) {
			b, _ := json.MarshalIndent(map[string]any{"lost": chk.Lost, "unexpected": chk.Unexpected, "unread": chk.Unread}, "", "  ")
			_ = os.WriteFile(filepath.Join(dir, "set-check.json"), b, 0o644)
		}
	case "converge":
		cfg := ConvergeConfig{Prefix: prefix + "-cv", Live: 80, Deleted: 20, Think: 40 * time.Millisecond, Seed: seed}
		startNemesis()
		h := RunConverge(runCtx, c, cfg, rec)
		res.Windows = <-windowsCh
		s.heal(ctx, &res)
		checkStart := time.Now()
		bound := spec.CheckBound
		chk := CheckConverge(ctx, c, h, bound, spec.Linger, c.cfg.Replicas)
		res.CheckS = time.Since(checkStart).Seconds()
		countOps(&res, rec.Ops())
		res.Lost = len(chk.Resurrected)
		state := "converged"
		if !chk.Converged {
			state = "not converged"
		}
		res.Notes = append(res.Notes, fmt.Sprintf("%d keys, %s %.1fs after healing (bound %s); %d deleted for certain, %d left uncertain by unknown outcomes, %d came back",
			chk.Keys, state, chk.After.Seconds(), bound, chk.Deleted, len(h.Uncertain), len(chk.Resurrected)))
		check = func() (string, bool) { v := chk.Verdict(); return v, v == "ok" }
	default:
		res.Verdict = "unknown workload " + spec.Workload
		return res
	}
	res.DurationS = spec.Duration.Seconds()
	if res.Windows == nil {
		res.Windows = []Window{}
	}
	verdict, ok := check()
	for _, w := range res.Windows {
		if w.Error != "" {
			// The run did not test what it claims to.
			ok = false
			verdict = strings.TrimPrefix(verdict+"; nemesis failed at +"+fmt.Sprintf("%.0fs", w.Start)+": "+w.Error, "ok; ")
			break
		}
	}
	if crashed := c.Crashed(ctx); len(crashed) > 0 {
		ok = false
		ids := slices.Sorted(maps.Keys(crashed))
		verdict = strings.TrimPrefix(verdict+"; node crashed: "+strings.Join(ids, ", "), "ok; ")
		for _, id := range ids {
			res.Notes = append(res.Notes, "crash of "+id+": "+crashed[id])
		}
	}
	res.Verdict = verdict
	res.Expected = ok != spec.Control
	if !ok {
		dir := filepath.Join(s.cfg.OutDir, fmt.Sprintf("%02d-%s", idx+1, spec.Name()))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			res.Artifacts = dir
			if err := WriteHistory(filepath.Join(dir, "history.jsonl"), rec.Ops()); err != nil {
				res.Notes = append(res.Notes, "history: "+err.Error())
			}
			b, _ := json.MarshalIndent(res.Windows, "", "  ")
			_ = os.WriteFile(filepath.Join(dir, "windows.json"), b, 0o644)
			if artifacts != nil {
				artifacts(dir)
			}
			if err := c.SaveLogs(ctx, dir); err != nil {
				res.Notes = append(res.Notes, "logs: "+err.Error())
			}
		}
	}
	return res
}

// heal undoes any fault left and waits for the cluster to be whole; a
// failure is noted but the check still runs.
func (s *Suite) heal(ctx context.Context, res *Result) {
	start := time.Now()
	if err := s.cluster.HealAll(ctx); err != nil {
		res.Notes = append(res.Notes, "heal: "+err.Error())
	}
	if err := s.cluster.WaitReady(ctx, 60*time.Second); err != nil {
		res.Notes = append(res.Notes, err.Error())
	} else {
		s.logf("  cluster whole again %.1fs after the run", time.Since(start).Seconds())
	}
}

func (s *Suite) drainHints(ctx context.Context, res *Result) {
	took, err := s.cluster.WaitHintsDrained(ctx, 30*time.Second)
	if err != nil {
		res.Notes = append(res.Notes, err.Error())
		return
	}
	res.Notes = append(res.Notes, fmt.Sprintf("hints drained %.1fs after healing", took.Seconds()))
}

func countOps(res *Result, ops []Op) {
	for _, op := range ops {
		if op.Kind == "final-read" {
			continue
		}
		res.Ops++
		switch op.Outcome {
		case OutcomeFail:
			res.Failed++
		case OutcomeUnknown:
			if op.Kind != "read" {
				res.Unknown++
			}
		case OutcomeOK:
			if op.Kind != "read" {
				res.Acked++
			}
		}
	}
}

// keysAround returns n keys whose primaries include node focus, so that
// the first fault window hits every one of them.
func (s *Suite) keysAround(ctx context.Context, prefix string, n, focus int) ([]string, error) {
	c := s.cluster
	want := c.nodes[focus].ID
	var keys []string
	for i := 0; i < 500 && len(keys) < n; i++ {
		key := fmt.Sprintf("%s-%d", prefix, i)
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ex, err := c.Client().At(0).Explain(ectx, []byte(key))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", key, err)
		}
		for _, p := range ex.PreferenceList {
			if p.Role == "primary" && p.Node == want {
				keys = append(keys, key)
				break
			}
		}
	}
	if len(keys) < n {
		return nil, fmt.Errorf("found only %d keys with %s as a primary", len(keys), want)
	}
	return keys, nil
}

func windowAnnotations(ws []Window, start time.Time) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, w := range ws {
		out = append(out, porcupine.Annotation{
			Tag:             "nemesis",
			Start:           int64(w.StartedAt.Sub(start)),
			End:             int64(w.EndedAt.Sub(start)),
			Description:     w.Detail,
			BackgroundColor: "#f8d7da",
		})
	}
	return out
}

// PrintTable writes the results as a table.
func PrintTable(w io.Writer, r Results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tvariant\tnemesis\tcontrol\tops\tacked\tunknown\tlost\tverdict\tas expected")
	for _, x := range r.Runs {
		ctl := ""
		if x.Control {
			ctl = "yes"
		}
		exp := "yes"
		if !x.Expected {
			exp = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", x.Workload, x.Variant, x.Nemesis, ctl, x.Ops, x.Acked, x.Unknown, x.Lost, Abbrev(x.Verdict, 90), exp)
	}
	_ = tw.Flush()
}

// AllExpected reports whether every run gave its expected verdict.
func (r Results) AllExpected() bool {
	for _, x := range r.Runs {
		if !x.Expected {
			return false
		}
	}
	return len(r.Runs) > 0
}

// Abbrev shortens s to at most n runes, marking the cut with "…".
func Abbrev(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// PrintMarkdown writes the results as the Markdown table docs/reliability.md
// carries.
func PrintMarkdown(w io.Writer, r Results) {
	fmt.Fprintln(w, "| workload | variant | nemesis | control | ops | acked | unknown | lost | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
	for _, x := range r.Runs {
		ctl := ""
		if x.Control {
			ctl = "yes"
		}
		v := strings.ReplaceAll(Abbrev(x.Verdict, 120), "|", "\\|")
		if !x.Expected {
			v = "**" + v + "** (unexpected)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %d | %d | %d | %s |\n", x.Workload, x.Variant, x.Nemesis, ctl, x.Ops, x.Acked, x.Unknown, x.Lost, v)
	}
}
