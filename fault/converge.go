package fault

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/wire"
)

// ConvergeConfig configures the converge workload: clients overwrite many
// keys at levels one and quorum, some with the read's context and some
// blind (making siblings), while a subset of keys is written and then
// deleted. After healing, every key's primaries must come to hold identical
// versions, and the deleted keys must stay deleted.
type ConvergeConfig struct {
	// Prefix starts every key.
	Prefix string
	// Live keys are overwritten throughout; Deleted keys are each written
	// twice and then deleted by one client.
	Live, Deleted int
	// Think is the longest pause between two operations of a client.
	Think time.Duration
	// Seed seeds each client's choices.
	Seed int64
}

// ConvergeHistory is what the converge workload leaves for its checker.
type ConvergeHistory struct {
	Keys []string
	// Deleted holds the keys whose delete was acknowledged with a context
	// covering every write ever attempted on them, so nothing may bring
	// them back; Uncertain those where some step's outcome was unknown.
	Deleted, Uncertain map[string]bool
}

func (cfg ConvergeConfig) liveKey(i int) string    { return fmt.Sprintf("%s-live-%d", cfg.Prefix, i) }
func (cfg ConvergeConfig) deletedKey(i int) string { return fmt.Sprintf("%s-del-%d", cfg.Prefix, i) }

// RunConverge drives the converge workload until ctx ends.
func RunConverge(ctx context.Context, c *Cluster, cfg ConvergeConfig, rec *Recorder) *ConvergeHistory {
	h := &ConvergeHistory{Deleted: map[string]bool{}, Uncertain: map[string]bool{}}
	for i := 0; i < cfg.Live; i++ {
		h.Keys = append(h.Keys, cfg.liveKey(i))
	}
	for i := 0; i < cfg.Deleted; i++ {
		h.Keys = append(h.Keys, cfg.deletedKey(i))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := c.Size()
	for id := 0; id < n; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string // deleted keys this client owns
			for i := id; i < cfg.Deleted; i += n {
				mine = append(mine, cfg.deletedKey(i))
			}
			deleted, uncertain := convergeClient(ctx, c, cfg, rec, id, mine)
			mu.Lock()
			defer mu.Unlock()
			for _, k := range deleted {
				h.Deleted[k] = true
			}
			for _, k := range uncertain {
				h.Uncertain[k] = true
			}
		}()
	}
	wg.Wait()
	return h
}

// convergeClient returns the owned keys it deleted for certain, and those
// where an unknown outcome leaves the end state open.
func convergeClient(ctx context.Context, c *Cluster, cfg ConvergeConfig, rec *Recorder, id int, mine []string) (deleted, uncertain []string) {
	rnd := rand.New(rand.NewSource(cfg.Seed + int64(id)*15485863))
	node := id % c.Size()
	cl := c.Client().At(node)
	nodeID := c.nodes[node].ID
	step := map[string]int{}     // owned key → steps done: 0, 1, 2 puts, 3 deleted
	ctxOf := map[string]string{} // owned key → context of its last write
	bad := map[string]bool{}     // owned key → a step's outcome was unknown
	levels := []string{client.LevelOne, client.LevelQuorum}
	seq := 0
	do := func(kind, key, value string, opts client.Options) (client.WriteResult, error) {
		op := Op{Client: id, Node: nodeID, Kind: kind, Key: key, Value: value, Call: rec.Now()}
		octx := context.WithoutCancel(ctx)
		var res client.WriteResult
		var err error
		if kind == "delete" {
			res, err = cl.Delete(octx, []byte(key), opts)
		} else {
			res, err = cl.Put(octx, []byte(key), []byte(value), opts)
		}
		op.Return = rec.Now()
		op.Outcome = Classify(err)
		if err != nil {
			op.Error = err.Error()
		}
		rec.Add(op)
		return res, err
	}
	for ctx.Err() == nil {
		var err error
		seq++
		value := fmt.Sprintf("c%d-%d", id, seq)
		var pending []string
		for _, k := range mine {
			if step[k] < 3 && !bad[k] {
				pending = append(pending, k)
			}
		}
		if len(pending) > 0 && rnd.Float64() < 0.2 {
			// The next step of an owned key: put, put, delete, each with the
			// previous write's context, at quorum.
			k := pending[rnd.Intn(len(pending))]
			opts := client.Options{Consistency: client.LevelQuorum, Context: ctxOf[k]}
			kind := "write"
			if step[k] == 2 {
				kind = "delete"
			}
			var res client.WriteResult
			res, err = do(kind, k, value, opts)
			switch Classify(err) {
			case OutcomeOK:
				step[k]++
				ctxOf[k] = res.Context
			case OutcomeUnknown:
				bad[k] = true
			}
		} else {
			k := cfg.liveKey(rnd.Intn(cfg.Live))
			opts := client.Options{Consistency: levels[rnd.Intn(len(levels))]}
			if rnd.Float64() < 0.7 {
				// Read first and supersede what was read; otherwise write
				// blind, which leaves a sibling.
				op := Op{Client: id, Node: nodeID, Kind: "read", Key: k, Call: rec.Now()}
				var res client.GetResult
				res, err = cl.Get(context.WithoutCancel(ctx), []byte(k), client.Options{Consistency: client.LevelOne})
				op.Return = rec.Now()
				op.Outcome = Classify(err)
				if err != nil {
					op.Error = err.Error()
				} else {
					op.Values = []string{fmt.Sprintf("%d siblings", len(res.Values))}
				}
				rec.Add(op)
				opts.Context = res.Context
			}
			if err == nil {
				_, err = do("write", k, value, opts)
			}
		}
		pause := time.Duration(rnd.Int63n(int64(cfg.Think) + 1))
		if err != nil {
			pause += 100 * time.Millisecond
		}
		if sleepCtx(ctx, pause) != nil {
			break
		}
	}
	for _, k := range mine {
		switch {
		case bad[k]:
			uncertain = append(uncertain, k)
		case step[k] == 3:
			deleted = append(deleted, k)
		}
	}
	return deleted, uncertain
}

// ConvergeCheck is the verdict of the converge checker.
type ConvergeCheck struct {
	Keys int
	// Converged reports that every key's primaries agreed, and After how
	// long after healing they did (or the bound, when they did not).
	Converged bool
	After     time.Duration
	// Diverged lists keys whose primaries still disagree, with why.
	Diverged []string
	// Resurrected lists deleted keys that a primary holds a live value of.
	Resurrected []string
	// Deleted counts keys deleted for certain.
	Deleted int
}

// Verdict is "ok" or what the checker found.
func (cc ConvergeCheck) Verdict() string {
	var parts []string
	if !cc.Converged {
		parts = append(parts, fmt.Sprintf("%d of %d keys not converged after %s (e.g. %s)", len(cc.Diverged), cc.Keys, cc.After.Round(time.Second), strings.Join(first(cc.Diverged, 3), "; ")))
	}
	if len(cc.Resurrected) > 0 {
		parts = append(parts, fmt.Sprintf("%d deleted keys came back (e.g. %s)", len(cc.Resurrected), strings.Join(first(cc.Resurrected, 3), ", ")))
	}
	if len(parts) == 0 {
		return "ok"
	}
	return strings.Join(parts, "; ")
}

// KeyAgreement judges one key's explain answer: it returns "" when its
// primaries agree (identical version hashes, or, for a key deleted for
// certain, none holding a live value) and otherwise why not; resurrected
// reports a deleted key that some primary holds alive.
func KeyAgreement(ex wire.Explain, replicas int, deleted bool) (why string, resurrected bool) {
	var prim []wire.ExplainReplica
	for _, r := range ex.Replicas {
		if r.Role == "primary" {
			prim = append(prim, r)
		}
	}
	if len(prim) != replicas {
		return fmt.Sprintf("%d primaries answered in explain, want %d", len(prim), replicas), false
	}
	var hashes []string
	for _, r := range prim {
		if r.Error != "" {
			return fmt.Sprintf("%s: %s", r.Node, r.Error), false
		}
		if deleted && r.Found {
			resurrected = true
		}
		hashes = append(hashes, r.Node+"="+shortHash(r.Hash, r.Found, r.Tombstone))
	}
	if deleted {
		if resurrected {
			return "deleted but live on " + strings.Join(hashes, " "), true
		}
		// Absent and tombstone both read as deleted; tombstones are removed
		// once every replica holds one, so both may be seen for a while.
		return "", false
	}
	for _, r := range prim[1:] {
		if r.Hash != prim[0].Hash || r.Found != prim[0].Found || r.Tombstone != prim[0].Tombstone {
			return "primaries differ: " + strings.Join(hashes, " "), false
		}
	}
	return "", false
}

func shortHash(h string, found, tomb bool) string {
	switch {
	case tomb:
		h = "tombstone:" + h
	case !found && h == "":
		return "absent"
	}
	if len(h) > 16 {
		h = h[:16]
	}
	return h
}

// CheckConverge polls explain for every key until every key's primaries
// agree or bound passes, then reports what it saw last. After linger more
// it looks at every deleted key once more: it must still be deleted on
// every primary and read as not found.
func CheckConverge(ctx context.Context, c *Cluster, h *ConvergeHistory, bound, linger time.Duration, replicas int) ConvergeCheck {
	cc := ConvergeCheck{Keys: len(h.Keys), Deleted: len(h.Deleted)}
	start := time.Now()
	todo := slices.Clone(h.Keys)
	why := map[string]string{}
	for round := 0; ; round++ {
		var next []string
		for k, key := range todo {
			node := (round + k) % c.Size()
			ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ex, err := c.Client().At(node).Explain(ectx, []byte(key))
			cancel()
			if err != nil {
				why[key] = "explain: " + err.Error()
				next = append(next, key)
				continue
			}
			w, _ := KeyAgreement(ex, replicas, h.Deleted[key])
			if w != "" {
				why[key] = w
				next = append(next, key)
			}
		}
		todo = next
		if len(todo) == 0 {
			cc.Converged = true
			cc.After = time.Since(start)
			break
		}
		if time.Since(start) > bound || sleepCtx(ctx, time.Second) != nil {
			cc.After = time.Since(start)
			for _, k := range todo {
				cc.Diverged = append(cc.Diverged, k+": "+why[k])
			}
			break
		}
	}
	// Deleted keys stay deleted: look at every one once more, converged or
	// not, at the end.
	_ = sleepCtx(ctx, linger)
	var dels []string
	for k := range h.Deleted {
		dels = append(dels, k)
	}
	slices.Sort(dels)
	for i, key := range dels {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ex, err := c.Client().At(i%c.Size()).Explain(ectx, []byte(key))
		cancel()
		if err != nil {
			continue
		}
		if _, res := KeyAgreement(ex, replicas, true); res {
			cc.Resurrected = append(cc.Resurrected, key)
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := c.Client().At(i%c.Size()).Get(gctx, []byte(key), client.Options{Consistency: client.LevelQuorum})
		cancel()
		if err == nil && got.Found {
			cc.Resurrected = append(cc.Resurrected, key)
		}
	}
	return cc
}
