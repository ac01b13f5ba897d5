package fault

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/client"
)

// RegisterConfig configures the register workload: clients read, write
// (unique values) and delete a handful of keys at one consistency level,
// each client bound to one node.
type RegisterConfig struct {
	// Level is "strong" for the real run, "one" for the negative control.
	Level string
	// Keys are the registers.
	Keys []string
	// ClientsPerNode is how many clients talk to each node.
	ClientsPerNode int
	// Think is the longest pause between two operations of a client.
	Think time.Duration
	// Seed seeds each client's choices.
	Seed int64
}

// RunRegister drives the register workload until ctx ends, then waits for
// the operations in flight (each bounded by the client's timeout).
func RunRegister(ctx context.Context, c *Cluster, cfg RegisterConfig, rec *Recorder) {
	var wg sync.WaitGroup
	nclients := c.Size() * cfg.ClientsPerNode
	for id := 0; id < nclients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			registerClient(ctx, c, cfg, rec, id)
		}()
	}
	wg.Wait()
}

func registerClient(ctx context.Context, c *Cluster, cfg RegisterConfig, rec *Recorder, id int) {
	rnd := rand.New(rand.NewSource(cfg.Seed + int64(id)*7919))
	node := id % c.Size()
	cl := c.Client().At(node)
	nodeID := c.nodes[node].ID
	seq := 0
	// lastCtx holds the context of this client's last read of each key; a
	// write supersedes what that read saw, as an application's would (blind
	// writes at level one would pile up siblings until the node refuses).
	lastCtx := map[string]string{}
	for ctx.Err() == nil {
		key := cfg.Keys[rnd.Intn(len(cfg.Keys))]
		opts := client.Options{Consistency: cfg.Level, Context: lastCtx[key]}
		op := Op{Client: id, Node: nodeID, Key: key}
		// Operations in flight finish on their own deadline (the client's
		// timeout) even when the run ends, so none is cut short into an
		// artificial unknown.
		octx := context.WithoutCancel(ctx)
		p := rnd.Float64()
		op.Call = rec.Now()
		var err error
		switch {
		case p < 0.5:
			op.Kind = "read"
			var res client.GetResult
			res, err = cl.Get(octx, []byte(key), opts)
			if err == nil {
				lastCtx[key] = res.Context
				for _, v := range res.Values {
					op.Values = append(op.Values, string(v))
				}
				slices.Sort(op.Values)
			}
		case p < 0.95:
			seq++
			op.Kind = "write"
			op.Value = fmt.Sprintf("c%d-%d", id, seq)
			_, err = cl.Put(octx, []byte(key), []byte(op.Value), opts)
		default:
			op.Kind = "delete"
			_, err = cl.Delete(octx, []byte(key), opts)
		}
		op.Return = rec.Now()
		op.Outcome = Classify(err)
		if err != nil {
			op.Error = err.Error()
		}
		rec.Add(op)
		pause := time.Duration(rnd.Int63n(int64(cfg.Think) + 1))
		if err != nil {
			pause += 100 * time.Millisecond // do not spin on a node that is down
		}
		if sleepCtx(ctx, pause) != nil {
			return
		}
	}
}

// FinalRegisterReads reads every key once more after healing, at the run's
// level, retrying each for up to bound; the reads join the history (a final
// state that contradicts it is a violation like any other).
func FinalRegisterReads(ctx context.Context, c *Cluster, cfg RegisterConfig, rec *Recorder, bound time.Duration) []string {
	var problems []string
	opts := client.Options{Consistency: cfg.Level}
	for k, key := range cfg.Keys {
		deadline := time.Now().Add(bound)
		for attempt := 0; ; attempt++ {
			node := (k + attempt) % c.Size()
			op := Op{Client: 100000 + k, Node: c.nodes[node].ID, Kind: "read", Key: key, Call: rec.Now()}
			res, err := c.Client().At(node).Get(ctx, []byte(key), opts)
			op.Return = rec.Now()
			op.Outcome = Classify(err)
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
				problems = append(problems, fmt.Sprintf("final read of %s failed for %s: %v", key, bound, err))
				break
			}
			if sleepCtx(ctx, 500*time.Millisecond) != nil {
				return problems
			}
		}
	}
	return problems
}

// regInput and regOutput are the porcupine input and output of one
// register operation.
type regInput struct {
	Key   string
	Kind  string // read, write, delete
	Value string
}

type regOutput struct {
	Values  []string // a read's answer: none (absent), one, or siblings
	Unknown bool     // a write whose outcome is unknown
}

// RegisterModel is a register per key whose initial state is absent ("").
// A read must return exactly the current value, or nothing when absent: a
// read that returns siblings is never linearizable.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range history {
				k := op.Input.(regInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			slices.Sort(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			st := state.(string)
			in := input.(regInput)
			switch in.Kind {
			case "write":
				return true, in.Value
			case "delete":
				return true, ""
			}
			got := output.(regOutput).Values
			if st == "" {
				return len(got) == 0, st
			}
			return len(got) == 1 && got[0] == st, st
		},
		DescribeOperation: func(input, output any) string {
			in := input.(regInput)
			out := output.(regOutput)
			suffix := ""
			if out.Unknown {
				suffix = " (outcome unknown)"
			}
			switch in.Kind {
			case "write":
				return fmt.Sprintf("write(%s, %s)%s", in.Key, in.Value, suffix)
			case "delete":
				return fmt.Sprintf("delete(%s)%s", in.Key, suffix)
			}
			switch len(out.Values) {
			case 0:
				return fmt.Sprintf("read(%s) → absent", in.Key)
			case 1:
				return fmt.Sprintf("read(%s) → %s", in.Key, out.Values[0])
			}
			return fmt.Sprintf("read(%s) → siblings {%s}", in.Key, strings.Join(out.Values, ", "))
		},
		DescribeState: func(state any) string {
			if state.(string) == "" {
				return "absent"
			}
			return state.(string)
		},
	}
}

// RegisterCheck is the verdict of the register checker.
type RegisterCheck struct {
	Result porcupine.CheckResult
	Info   porcupine.LinearizationInfo
	// Reads, Writes: operations that went into the check; Unknown of the
	// writes had an unknown outcome; Pruned unknown writes were left out
	// because no read ever returned their value.
	Reads, Writes, Unknown, Pruned int
	// SiblingReads counts reads that returned more than one value.
	SiblingReads int
	// WithoutSiblings is the verdict on the history without the reads that
	// returned siblings, computed only when those made it illegal: it tells
	// whether stale reads alone break linearizability too.
	WithoutSiblings porcupine.CheckResult
}

// CheckRegister checks ops for linearizability with Porcupine. Failed
// operations are dropped (they did not happen); failed or unknown reads are
// dropped (they returned nothing); a write or delete with an unknown
// outcome may take effect at any time after its call, so its return is put
// after the end of the history. An unknown write whose unique value no read
// returned is dropped: whether it happened cannot change what any read saw,
// so the history is linearizable with it exactly when it is without it.
func CheckRegister(ops []Op, timeout time.Duration) RegisterCheck {
	var chk RegisterCheck
	var end int64
	seen := map[string]bool{}
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
		if op.Kind == "read" && op.Outcome == OutcomeOK {
			for _, v := range op.Values {
				seen[op.Key+"\x00"+v] = true
			}
		}
	}
	end++
	var hist []porcupine.Operation
	for _, op := range ops {
		in := regInput{Key: op.Key, Kind: op.Kind, Value: op.Value}
		switch {
		case op.Outcome == OutcomeFail:
			continue
		case op.Kind == "read":
			if op.Outcome != OutcomeOK {
				continue
			}
			chk.Reads++
			if len(op.Values) > 1 {
				chk.SiblingReads++
			}
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: in, Call: op.Call, Output: regOutput{Values: op.Values}, Return: op.Return})
		case op.Outcome == OutcomeOK:
			chk.Writes++
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: in, Call: op.Call, Output: regOutput{}, Return: op.Return})
		default: // unknown write or delete
			if op.Kind == "write" && !seen[op.Key+"\x00"+op.Value] {
				chk.Pruned++
				continue
			}
			chk.Writes++
			chk.Unknown++
			// As in Jepsen, a client whose operation never completed is
			// gone; the rest of its history is a new client's, so every
			// client's operations stay sequential in the visualization.
			hist = append(hist, porcupine.Operation{ClientId: 1_000_000 + chk.Unknown, Input: in, Call: op.Call, Output: regOutput{Unknown: true}, Return: end})
		}
	}
	chk.Result, chk.Info = porcupine.CheckOperationsVerbose(RegisterModel(), renumberClients(hist), timeout)
	if chk.Result == porcupine.Illegal && chk.SiblingReads > 0 {
		var single []porcupine.Operation
		for _, op := range hist {
			if out, ok := op.Output.(regOutput); ok && len(out.Values) > 1 {
				continue
			}
			single = append(single, op)
		}
		chk.WithoutSiblings = porcupine.CheckOperationsTimeout(RegisterModel(), single, timeout)
	}
	return chk
}

// renumberClients maps client ids onto 0..n-1, which porcupine's
// visualization expects.
func renumberClients(hist []porcupine.Operation) []porcupine.Operation {
	ids := map[int]int{}
	var order []int
	for _, op := range hist {
		if _, ok := ids[op.ClientId]; !ok {
			ids[op.ClientId] = 0
			order = append(order, op.ClientId)
		}
	}
	slices.Sort(order)
	for i, id := range order {
		ids[id] = i
	}
	out := make([]porcupine.Operation, len(hist))
	for i, op := range hist {
		op.ClientId = ids[op.ClientId]
		out[i] = op
	}
	return out
}
