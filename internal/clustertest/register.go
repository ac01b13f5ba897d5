package clustertest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/fault"
)

// RegisterWorkload drives a register workload for a linearizability check:
// clients read, write (unique values) and delete a few keys at one level,
// each client bound to one node, as a Jepsen client is. The history it
// records is the fault package's, so its checker (Porcupine with a register
// per key, unknown outcomes handled) judges it.
type RegisterWorkload struct {
	// Level is the consistency level of every operation.
	Level string
	// Keys are the registers.
	Keys []string
	// Clients is how many clients run; client i talks to node i % Nodes.
	Clients int
	// Nodes is the number of nodes; NodeName names node i in the history.
	Nodes    int
	NodeName func(i int) string
	// Client returns a client for node i. It is called for every operation,
	// since a restarted node may listen on a new address.
	Client func(i int) *client.Client
	// ReadShare and DeleteShare are the shares of reads and deletes; the
	// rest are writes. Defaults 0.5 and 0.05.
	ReadShare, DeleteShare float64
	// Think is the longest pause between two operations of a client.
	// Default 2ms.
	Think time.Duration
	// Seed seeds each client's choices.
	Seed int64
	// FirstClient numbers this workload's clients from FirstClient, so
	// several workloads can share one history.
	FirstClient int
	// RefreshAfterFailure: after a write of a key failed, the client's next
	// write of it first reads the key and writes with that read's context
	// (skipping the write while the read fails), so the failed write, if
	// it took effect, is superseded rather than left as a sibling. Writes
	// otherwise carry the context of the client's last answer for the key.
	RefreshAfterFailure bool
}

func (w RegisterWorkload) withDefaults() RegisterWorkload {
	if w.ReadShare == 0 {
		w.ReadShare = 0.5
	}
	if w.DeleteShare == 0 {
		w.DeleteShare = 0.05
	}
	if w.Think == 0 {
		w.Think = 2 * time.Millisecond
	}
	if w.NodeName == nil {
		w.NodeName = func(i int) string { return fmt.Sprint("n", i+1) }
	}
	return w
}

// Run runs the clients until ctx ends, then waits for the operations in
// flight (each bounded by its client's timeout, so none is cut short into
// an artificial unknown outcome).
func (w RegisterWorkload) Run(ctx context.Context, rec *fault.Recorder) {
	w = w.withDefaults()
	var wg sync.WaitGroup
	for id := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, rec, id)
		}()
	}
	wg.Wait()
}

func (w RegisterWorkload) client(ctx context.Context, rec *fault.Recorder, id int) {
	rnd := rand.New(rand.NewPCG(uint64(w.Seed), uint64(id)+1))
	node := id % w.Nodes
	id += w.FirstClient
	seq := 0
	// Non-strong writes carry the context of the client's last answer for
	// the key, as an application's would: blind writes would pile up
	// siblings, and the checks here are about staleness.
	lastCtx := map[string]string{}
	stale := map[string]bool{} // a write of the key failed since the last answer
	for ctx.Err() == nil {
		key := w.Keys[rnd.IntN(len(w.Keys))]
		opts := client.Options{Consistency: w.Level}
		if w.Level != client.LevelStrong {
			opts.Context = lastCtx[key]
		}
		op := fault.Op{Client: id, Node: w.NodeName(node), Key: key}
		octx := context.WithoutCancel(ctx)
		cl := w.Client(node)
		p := rnd.Float64()
		read := func(op *fault.Op) error {
			op.Kind = "read"
			res, err := cl.Get(octx, []byte(key), opts)
			if err == nil {
				lastCtx[key], stale[key] = res.Context, false
				for _, v := range res.Values {
					op.Values = append(op.Values, string(v))
				}
				slices.Sort(op.Values)
			}
			return err
		}
		if p >= w.ReadShare && w.RefreshAfterFailure && stale[key] {
			rop := op
			rop.Call = rec.Now()
			err := read(&rop)
			rop.Return, rop.Outcome = rec.Now(), fault.Classify(err)
			if err != nil {
				rop.Error = err.Error()
			}
			rec.Add(rop)
			if err != nil {
				w.pause(ctx, rnd, true)
				continue
			}
			opts.Context, stale[key] = lastCtx[key], false
		}
		op.Call = rec.Now()
		var err error
		switch {
		case p < w.ReadShare:
			err = read(&op)
		case p < 1-w.DeleteShare:
			seq++
			op.Kind = "write"
			op.Value = fmt.Sprintf("c%d-%d", id, seq)
			var res client.WriteResult
			if res, err = cl.Put(octx, []byte(key), []byte(op.Value), opts); err == nil {
				lastCtx[key] = res.Context
			}
		default:
			op.Kind = "delete"
			var res client.WriteResult
			if res, err = cl.Delete(octx, []byte(key), opts); err == nil {
				lastCtx[key] = res.Context
			}
		}
		op.Return = rec.Now()
		op.Outcome = fault.Classify(err)
		if err != nil {
			op.Error = err.Error()
			stale[key] = stale[key] || op.Kind != "read"
		}
		rec.Add(op)
		w.pause(ctx, rnd, err != nil)
	}
}

// pause waits a random think time, longer after an error so a client does
// not spin on a node that is down.
func (w RegisterWorkload) pause(ctx context.Context, rnd *rand.Rand, failed bool) {
	d := time.Duration(rnd.Int64N(int64(w.Think) + 1))
	if failed {
		d += 20 * time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// FinalReads reads every key once more at the workload's level, trying the
// nodes in turn until one answers or bound passes; the reads join the
// history, so a final state that contradicts it is a violation like any
// other. It returns the keys it could not read.
func (w RegisterWorkload) FinalReads(rec *fault.Recorder, bound time.Duration) []string {
	w = w.withDefaults()
	var failed []string
	for k, key := range w.Keys {
		deadline := time.Now().Add(bound)
		for attempt := 0; ; attempt++ {
			node := (k + attempt) % w.Nodes
			op := fault.Op{Client: 100000 + k, Node: w.NodeName(node), Kind: "read", Key: key, Call: rec.Now()}
			res, err := w.Client(node).Get(context.Background(), []byte(key), client.Options{Consistency: w.Level})
			op.Return = rec.Now()
			op.Outcome = fault.Classify(err)
			if err == nil {
				for _, v := range res.Values {
					op.Values = append(op.Values, string(v))
				}
				slices.Sort(op.Values)
				rec.Add(op)
				break
			}
			op.Error = err.Error()
			rec.Add(op)
			if time.Now().After(deadline) {
				failed = append(failed, key)
				break
			}
			time.Sleep(50 * time.Millisecond) // pacing between retries, not a wait for a condition
		}
	}
	return failed
}

// Verdict is the linearizability verdict on a register history.
type Verdict struct {
	fault.RegisterCheck
	// Ops is the number of operations recorded (before the checker dropped
	// failed ones).
	Ops int
	// Key is the first key whose history is not linearizable ("" when all
	// are), Minimal a minimized history of it that is still not
	// linearizable, and HTML Porcupine's visualization of the whole check.
	Key     string
	Minimal []fault.Op
	HTML    string
}

// Illegal reports whether Porcupine found the history not linearizable.
func (v Verdict) Illegal() bool { return v.Result == porcupine.Illegal }

// StaleOnly reports whether the history is not linearizable even without
// the reads that returned siblings: stale reads alone break it.
func (v Verdict) StaleOnly() bool {
	return v.Illegal() && (v.SiblingReads == 0 || v.WithoutSiblings == porcupine.Illegal)
}

// CheckLinearizable checks ops with Porcupine (fault.CheckRegister). When
// the history is not linearizable it writes the visualization into dir and
// minimizes the history of the first failing key (delta debugging,
// bounded), so a report can show the few operations that matter.
func CheckLinearizable(ops []fault.Op, timeout time.Duration, dir string) Verdict {
	v := Verdict{RegisterCheck: fault.CheckRegister(ops, timeout), Ops: len(ops)}
	if v.Result != porcupine.Illegal {
		return v
	}
	if v.SiblingReads > 0 {
		// Judge the history without the sibling reads again from scratch,
		// so that unknown writes only those reads saw are pruned too.
		v.WithoutSiblings = fault.CheckRegister(withoutSiblingReads(ops), timeout).Result
	}
	v.HTML = filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(fault.RegisterModel(), v.Info, v.HTML); err != nil {
		v.HTML = "(visualization failed: " + err.Error() + ")"
	}
	byKey := map[string][]fault.Op{}
	var keys []string
	for _, op := range ops {
		if _, ok := byKey[op.Key]; !ok {
			keys = append(keys, op.Key)
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	slices.Sort(keys)
	illegal := func(h []fault.Op) bool {
		return fault.CheckRegister(h, time.Second).Result == porcupine.Illegal
	}
	for _, k := range keys {
		h := byKey[k]
		if !illegal(h) {
			continue
		}
		// Prefer a witness made of single-value reads: it shows staleness
		// rather than siblings.
		if single := withoutSiblingReads(h); illegal(single) {
			h = single
		}
		v.Key, v.Minimal = k, minimize(h, illegal, 5*time.Second)
		break
	}
	return v
}

func withoutSiblingReads(ops []fault.Op) []fault.Op {
	var out []fault.Op
	for _, op := range ops {
		if op.Kind != "read" || len(op.Values) <= 1 {
			out = append(out, op)
		}
	}
	return out
}

// minimize shrinks an illegal history h to a few operations that are still
// illegal. It first cuts h to the shortest window of operations (by
// invocation) that is illegal, then removes operations one chunk at a
// time (ddmin's complement step) until none can go or budget passes.
//
// It removes only what cannot make a legal history illegal by itself: a
// read, a write no remaining read returned, and a delete when no remaining
// read found the key absent. Adding operations to an illegal history never
// makes it legal, so "the window plus the writes its reads returned (and
// the deletes, if a read found nothing) is illegal" is monotone in the
// window's ends, and both ends are found by binary search.
func minimize(h []fault.Op, illegal func([]fault.Op) bool, budget time.Duration) []fault.Op {
	h = slices.Clone(h)
	slices.SortStableFunc(h, func(a, b fault.Op) int { return cmp.Compare(a.Call, b.Call) })
	// closure is h[lo:hi] plus the writes its reads returned and the
	// deletes that began before its last read that found the key absent
	// returned, in h's order.
	closure := func(lo, hi int) []fault.Op {
		need := map[string]bool{}
		lastAbsent := int64(-1)
		for _, op := range h[lo:hi] {
			if op.Kind == "read" && op.Outcome == fault.OutcomeOK {
				for _, v := range op.Values {
					need[v] = true
				}
				if len(op.Values) == 0 {
					lastAbsent = max(lastAbsent, op.Return)
				}
			}
		}
		var out []fault.Op
		for i, op := range h {
			if (i >= lo && i < hi) || (op.Kind == "write" && need[op.Value]) || (op.Kind == "delete" && op.Call < lastAbsent) {
				out = append(out, op)
			}
		}
		return out
	}
	// The shortest illegal prefix, then the latest start that keeps it
	// illegal.
	end := min(sort.Search(len(h), func(n int) bool { return illegal(closure(0, n+1)) })+1, len(h))
	begin := max(sort.Search(end, func(s int) bool { return !illegal(closure(s, end)) })-1, 0)
	h = closure(begin, end)

	// A candidate keeps the write of every value its reads returned, and
	// every delete that began before one of its reads found the key absent.
	wellFormed := func(cand []fault.Op) bool {
		lastAbsent := int64(-1)
		deletes := 0
		for _, op := range cand {
			switch op.Kind {
			case "delete":
				deletes++
			case "read":
				if op.Outcome != fault.OutcomeOK {
					continue
				}
				if len(op.Values) == 0 {
					lastAbsent = max(lastAbsent, op.Return)
				}
				for _, v := range op.Values {
					if !writtenIn(cand, v) {
						return false
					}
				}
			}
		}
		for _, op := range h {
			if op.Kind == "delete" && op.Call < lastAbsent && !slices.ContainsFunc(cand, func(c fault.Op) bool {
				return c.Kind == "delete" && c.Client == op.Client && c.Call == op.Call
			}) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(budget)
	n := 2
	for len(h) >= 2 && time.Now().Before(deadline) {
		chunk := (len(h) + n - 1) / n
		removed := false
		for start := 0; start < len(h) && time.Now().Before(deadline); start += chunk {
			cand := append(slices.Clone(h[:start]), h[min(start+chunk, len(h)):]...)
			if wellFormed(cand) && illegal(cand) {
				h, removed = cand, true
				n = max(n-1, 2)
				break
			}
		}
		if !removed {
			if n >= len(h) {
				break
			}
			n = min(2*n, len(h))
		}
	}
	return h
}

func writtenIn(ops []fault.Op, v string) bool {
	return slices.ContainsFunc(ops, func(op fault.Op) bool { return op.Kind == "write" && op.Value == v })
}

// FormatOps renders a history one operation per line, times in ms since
// the run started, for test logs and bug reports.
func FormatOps(ops []fault.Op) string {
	ops = slices.Clone(ops)
	slices.SortStableFunc(ops, func(a, b fault.Op) int { return int(min(max(a.Call-b.Call, -1), 1)) })
	var b strings.Builder
	for _, op := range ops {
		ret := fmt.Sprintf("%9.1f", float64(op.Return)/1e6)
		if op.Outcome == fault.OutcomeUnknown {
			ret = "        ∞"
		}
		var what string
		switch op.Kind {
		case "read":
			switch {
			case op.Outcome != fault.OutcomeOK:
				what = fmt.Sprintf("read(%s) failed", op.Key)
			case len(op.Values) == 0:
				what = fmt.Sprintf("read(%s) → absent", op.Key)
			default:
				what = fmt.Sprintf("read(%s) → %s", op.Key, strings.Join(op.Values, " | "))
			}
		case "write":
			what = fmt.Sprintf("write(%s, %s) %s", op.Key, op.Value, op.Outcome)
		default:
			what = fmt.Sprintf("%s(%s) %s", op.Kind, op.Key, op.Outcome)
		}
		if op.Error != "" && op.Outcome != fault.OutcomeOK {
			e := op.Error
			if len(e) > 120 {
				e = e[:120] + "…"
			}
			what += " [" + e + "]"
		}
		fmt.Fprintf(&b, "  [%9.1f, %s] client %-6d via %-3s %s\n", float64(op.Call)/1e6, ret, op.Client, op.Node, what)
	}
	return b.String()
}

// ReportVerdict logs v; when the history is not linearizable it also logs
// the minimized history and where the visualization is.
func ReportVerdict(t testing.TB, v Verdict) {
	t.Helper()
	t.Logf("porcupine: %s — %d ops recorded, %d reads and %d writes checked (%d unknown, %d unobserved unknowns pruned), %d sibling reads",
		v.Result, v.Ops, v.Reads, v.Writes, v.Unknown, v.Pruned, v.SiblingReads)
	if v.Illegal() {
		t.Logf("key %q is not linearizable; minimized history (%d ops):\n%s", v.Key, len(v.Minimal), FormatOps(v.Minimal))
		t.Logf("visualization: %s", v.HTML)
	}
}

// KeepFile copies path into the directory named by the environment
// variable QUORUMKV_KEEP (when set), so a visualization outlives
// t.TempDir; it returns the new path or path unchanged.
func KeepFile(t testing.TB, path string) string {
	dir := os.Getenv("QUORUMKV_KEEP")
	if dir == "" || path == "" {
		return path
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	dst := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".html")
	if os.WriteFile(dst, b, 0o644) != nil {
		return path
	}
	return dst
}
