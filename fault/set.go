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
)

// SetConfig configures the set workload: clients add unique elements to a
// few keys by read-modify-write with the read's context, merging siblings
// by union, as a Riak application must.
type SetConfig struct {
	// Level is the read and write level ("quorum").
	Level string
	// Keys hold one set each.
	Keys []string
	// ClientsPerNode is how many clients talk to each node.
	ClientsPerNode int
	// Think is the longest pause between two additions of a client.
	Think time.Duration
	// Seed seeds each client's choices.
	Seed int64
	// LWW resolves siblings by keeping one of them (the first) instead of
	// their union: the negative control, which must lose elements.
	LWW bool
}

// SetHistory is what the set workload recorded: per key, the elements
// whose addition was sent (attempted) and acknowledged (acked).
type SetHistory struct {
	mu        sync.Mutex
	attempted map[string]map[string]bool // guarded by mu
	acked     map[string]map[string]bool // guarded by mu
}

func newSetHistory() *SetHistory {
	return &SetHistory{attempted: map[string]map[string]bool{}, acked: map[string]map[string]bool{}}
}

func (h *SetHistory) note(key, elem string, outcome string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if outcome == OutcomeFail {
		return
	}
	add := func(m map[string]map[string]bool) {
		if m[key] == nil {
			m[key] = map[string]bool{}
		}
		m[key][elem] = true
	}
	add(h.attempted)
	if outcome == OutcomeOK {
		add(h.acked)
	}
}

// RunSet drives the set workload until ctx ends and returns what it
// attempted and what was acknowledged.
func RunSet(ctx context.Context, c *Cluster, cfg SetConfig, rec *Recorder) *SetHistory {
	h := newSetHistory()
	var wg sync.WaitGroup
	for id := 0; id < c.Size()*cfg.ClientsPerNode; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			setClient(ctx, c, cfg, rec, h, id)
		}()
	}
	wg.Wait()
	return h
}

// EncodeSet and DecodeSet are the value format: sorted elements, one per
// line.
func EncodeSet(elems map[string]bool) []byte {
	s := make([]string, 0, len(elems))
	for e := range elems {
		s = append(s, e)
	}
	slices.Sort(s)
	return []byte(strings.Join(s, "\n"))
}

// DecodeSet adds the elements of value to into.
func DecodeSet(value []byte, into map[string]bool) {
	for _, e := range strings.Split(string(value), "\n") {
		if e != "" {
			into[e] = true
		}
	}
}

func setClient(ctx context.Context, c *Cluster, cfg SetConfig, rec *Recorder, h *SetHistory, id int) {
	rnd := rand.New(rand.NewSource(cfg.Seed + int64(id)*104729))
	node := id % c.Size()
	cl := c.Client().At(node)
	nodeID := c.nodes[node].ID
	opts := client.Options{Consistency: cfg.Level}
	seq := 0
	for ctx.Err() == nil {
		key := cfg.Keys[rnd.Intn(len(cfg.Keys))]
		octx := context.WithoutCancel(ctx)
		rop := Op{Client: id, Node: nodeID, Kind: "read", Key: key, Call: rec.Now()}
		res, err := cl.Get(octx, []byte(key), opts)
		rop.Return = rec.Now()
		rop.Outcome = Classify(err)
		if err != nil {
			rop.Error = err.Error()
			rec.Add(rop)
			if sleepCtx(ctx, 100*time.Millisecond+time.Duration(rnd.Int63n(int64(cfg.Think)+1))) != nil {
				return
			}
			continue
		}
		rop.Values = []string{fmt.Sprintf("%d siblings", len(res.Values))}
		rec.Add(rop)
		elems := map[string]bool{}
		switch {
		case cfg.LWW && len(res.Values) > 0:
			DecodeSet(res.Values[0], elems)
		default:
			for _, v := range res.Values {
				DecodeSet(v, elems)
			}
		}
		seq++
		elem := fmt.Sprintf("c%d-%d", id, seq)
		elems[elem] = true
		opts.Context = res.Context
		wop := Op{Client: id, Node: nodeID, Kind: "add", Key: key, Value: elem, Call: rec.Now()}
		_, err = cl.Put(octx, []byte(key), EncodeSet(elems), opts)
		opts.Context = ""
		wop.Return = rec.Now()
		wop.Outcome = Classify(err)
		if err != nil {
			wop.Error = err.Error()
		}
		rec.Add(wop)
		h.note(key, elem, wop.Outcome)
		pause := time.Duration(rnd.Int63n(int64(cfg.Think) + 1))
		if err != nil {
			pause += 100 * time.Millisecond
		}
		if sleepCtx(ctx, pause) != nil {
			return
		}
	}
}

// FinalSetReads reads every key at level all, retrying until the read
// succeeds and holds every acknowledged element, or bound passes. It
// returns the last successful read of each key (keys never read are
// missing from the map).
func FinalSetReads(ctx context.Context, c *Cluster, keys []string, h *SetHistory, rec *Recorder, bound time.Duration) (map[string]map[string]bool, []string) {
	final := map[string]map[string]bool{}
	var problems []string
	deadline := time.Now().Add(bound)
	for k, key := range keys {
		for attempt := 0; ; attempt++ {
			node := (k + attempt) % c.Size()
			op := Op{Client: 100000 + k, Node: c.nodes[node].ID, Kind: "final-read", Key: key, Call: rec.Now()}
			res, err := c.Client().At(node).Get(ctx, []byte(key), client.Options{Consistency: client.LevelAll})
			op.Return = rec.Now()
			op.Outcome = Classify(err)
			if err == nil {
				elems := map[string]bool{}
				for _, v := range res.Values {
					DecodeSet(v, elems)
				}
				final[key] = elems
				op.Values = []string{fmt.Sprintf("%d siblings, %d elements", len(res.Values), len(elems))}
				rec.Add(op)
				if len(missing(h.ackedOf(key), elems)) == 0 {
					break
				}
			} else {
				op.Error = err.Error()
				rec.Add(op)
			}
			if time.Now().After(deadline) {
				if err != nil {
					problems = append(problems, fmt.Sprintf("final read of %s at all kept failing: %v", key, err))
				}
				break
			}
			if sleepCtx(ctx, time.Second) != nil {
				return final, problems
			}
		}
	}
	return final, problems
}

func (h *SetHistory) ackedOf(key string) map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]bool{}
	for e := range h.acked[key] {
		out[e] = true
	}
	return out
}

// missing returns the elements of want absent from have, sorted.
func missing(want, have map[string]bool) []string {
	var out []string
	for e := range want {
		if !have[e] {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

// SetCheck is the verdict of the set checker.
type SetCheck struct {
	Attempted, Acked int
	// Lost are acknowledged elements missing from the final read;
	// Unexpected are elements in it that were never attempted; Unread are
	// keys whose final read never succeeded.
	Lost, Unexpected []string
	Unread           []string
}

// OK reports whether nothing was lost, invented or left unread.
func (s SetCheck) OK() bool { return len(s.Lost) == 0 && len(s.Unexpected) == 0 && len(s.Unread) == 0 }

// Verdict is "ok" or what the checker found.
func (s SetCheck) Verdict() string {
	if s.OK() {
		return "ok"
	}
	var parts []string
	if len(s.Lost) > 0 {
		parts = append(parts, fmt.Sprintf("lost %d of %d acknowledged elements (e.g. %s)", len(s.Lost), s.Acked, strings.Join(first(s.Lost, 5), ", ")))
	}
	if len(s.Unexpected) > 0 {
		parts = append(parts, fmt.Sprintf("%d elements never attempted (e.g. %s)", len(s.Unexpected), strings.Join(first(s.Unexpected, 5), ", ")))
	}
	if len(s.Unread) > 0 {
		parts = append(parts, fmt.Sprintf("no final read of %s", strings.Join(s.Unread, ", ")))
	}
	return strings.Join(parts, "; ")
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CheckSet compares the final sets with what was attempted and acked.
// Elements are "key/elem" in Lost and Unexpected.
func CheckSet(keys []string, h *SetHistory, final map[string]map[string]bool) SetCheck {
	h.mu.Lock()
	defer h.mu.Unlock()
	var chk SetCheck
	for _, key := range keys {
		chk.Attempted += len(h.attempted[key])
		chk.Acked += len(h.acked[key])
		got, ok := final[key]
		if !ok {
			chk.Unread = append(chk.Unread, key)
			continue
		}
		for _, e := range missing(h.acked[key], got) {
			chk.Lost = append(chk.Lost, key+"/"+e)
		}
		for _, e := range missing(got, h.attempted[key]) {
			chk.Unexpected = append(chk.Unexpected, key+"/"+e)
		}
	}
	return chk
}
