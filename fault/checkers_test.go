package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/wire"
)

// These tests need no Docker: they check the checkers on hand-made
// histories, each with a history that must pass and one that must not.

func w(client int, key, value string, call, ret int64, outcome string) Op {
	return Op{Client: client, Kind: "write", Key: key, Value: value, Call: call, Return: ret, Outcome: outcome}
}

func r(client int, key string, call, ret int64, values ...string) Op {
	return Op{Client: client, Kind: "read", Key: key, Values: values, Call: call, Return: ret, Outcome: OutcomeOK}
}

func del(client int, key string, call, ret int64, outcome string) Op {
	return Op{Client: client, Kind: "delete", Key: key, Call: call, Return: ret, Outcome: outcome}
}

func TestCheckRegister(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"empty read", []Op{r(0, "k", 0, 1)}, porcupine.Ok},
		{"read own write", []Op{w(0, "k", "a", 0, 1, OutcomeOK), r(0, "k", 2, 3, "a")}, porcupine.Ok},
		{"stale read after write", []Op{w(0, "k", "a", 0, 1, OutcomeOK), r(1, "k", 2, 3)}, porcupine.Illegal},
		{"stale read of older value", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), w(0, "k", "b", 2, 3, OutcomeOK), r(1, "k", 4, 5, "a"),
		}, porcupine.Illegal},
		{"concurrent read may see either", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), w(0, "k", "b", 2, 6, OutcomeOK), r(1, "k", 3, 4, "a"), r(2, "k", 3, 5, "b"),
		}, porcupine.Ok},
		{"new then old (no write-back)", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), w(0, "k", "b", 2, 10, OutcomeOK), r(1, "k", 3, 4, "b"), r(2, "k", 5, 6, "a"),
		}, porcupine.Illegal},
		{"unknown write seen later", []Op{
			w(0, "k", "a", 0, 1, OutcomeUnknown), r(1, "k", 5, 6, "a"),
		}, porcupine.Ok},
		{"unknown write, never seen", []Op{
			w(0, "k", "a", 0, 1, OutcomeUnknown), r(1, "k", 5, 6),
		}, porcupine.Ok},
		{"failed write seen", []Op{
			w(0, "k", "a", 0, 1, OutcomeFail), r(1, "k", 5, 6, "a"),
		}, porcupine.Illegal},
		{"value never written", []Op{r(1, "k", 5, 6, "ghost")}, porcupine.Illegal},
		{"siblings are never linearizable", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), w(1, "k", "b", 0, 1, OutcomeOK), r(2, "k", 2, 3, "a", "b"),
		}, porcupine.Illegal},
		{"delete", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), del(0, "k", 2, 3, OutcomeOK), r(1, "k", 4, 5),
		}, porcupine.Ok},
		{"read after delete sees old value", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), del(0, "k", 2, 3, OutcomeOK), r(1, "k", 4, 5, "a"),
		}, porcupine.Illegal},
		{"keys are independent", []Op{
			w(0, "k", "a", 0, 1, OutcomeOK), r(1, "j", 2, 3), w(0, "j", "b", 4, 5, OutcomeOK), r(1, "k", 6, 7, "a"),
		}, porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckRegister(tt.ops, 10*time.Second)
			if got.Result != tt.want {
				t.Fatalf("CheckRegister = %s, want %s", got.Result, tt.want)
			}
		})
	}
}

func TestCheckRegisterPrunesUnobservedUnknownWrites(t *testing.T) {
	ops := []Op{w(0, "k", "a", 0, 1, OutcomeOK)}
	for i := 0; i < 40; i++ {
		ops = append(ops, w(1+i, "k", fmt.Sprintf("u%d", i), int64(2+i), int64(3+i), OutcomeUnknown))
	}
	ops = append(ops, r(99, "k", 100, 101, "u7"))
	got := CheckRegister(ops, 10*time.Second)
	if got.Result != porcupine.Ok || got.Pruned != 39 || got.Unknown != 1 {
		t.Fatalf("got %s, pruned %d, unknown %d; want Ok, 39, 1", got.Result, got.Pruned, got.Unknown)
	}
}

func TestCheckRegisterWithoutSiblings(t *testing.T) {
	// Siblings alone: without them the history is fine.
	sib := []Op{w(0, "k", "a", 0, 1, OutcomeOK), w(1, "k", "b", 0, 1, OutcomeOK), r(2, "k", 2, 3, "a", "b")}
	if got := CheckRegister(sib, 10*time.Second); got.WithoutSiblings != porcupine.Ok {
		t.Fatalf("WithoutSiblings = %s, want Ok", got.WithoutSiblings)
	}
	// Siblings and a stale read.
	stale := append(sib, r(2, "k", 4, 5))
	if got := CheckRegister(stale, 10*time.Second); got.WithoutSiblings != porcupine.Illegal {
		t.Fatalf("WithoutSiblings = %s, want Illegal", got.WithoutSiblings)
	}
}

func setHistory(acked, attemptedOnly map[string][]string) *SetHistory {
	h := newSetHistory()
	for k, es := range acked {
		for _, e := range es {
			h.note(k, e, OutcomeOK)
		}
	}
	for k, es := range attemptedOnly {
		for _, e := range es {
			h.note(k, e, OutcomeUnknown)
		}
	}
	return h
}

func set(es ...string) map[string]bool {
	m := map[string]bool{}
	for _, e := range es {
		m[e] = true
	}
	return m
}

func TestCheckSet(t *testing.T) {
	h := setHistory(map[string][]string{"a": {"1", "2"}, "b": {"3"}}, map[string][]string{"a": {"4"}})
	h.note("a", "5", OutcomeFail) // never sent
	tests := []struct {
		name       string
		final      map[string]map[string]bool
		lost, unex int
		unread     int
	}{
		{"all there", map[string]map[string]bool{"a": set("1", "2"), "b": set("3")}, 0, 0, 0},
		{"unknown may be there", map[string]map[string]bool{"a": set("1", "2", "4"), "b": set("3")}, 0, 0, 0},
		{"lost one", map[string]map[string]bool{"a": set("1"), "b": set("3")}, 1, 0, 0},
		{"in the wrong key", map[string]map[string]bool{"a": set("1", "2", "3"), "b": set()}, 1, 1, 0},
		{"never attempted", map[string]map[string]bool{"a": set("1", "2", "5"), "b": set("3")}, 0, 1, 0},
		{"unread key", map[string]map[string]bool{"a": set("1", "2")}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckSet([]string{"a", "b"}, h, tt.final)
			if len(got.Lost) != tt.lost || len(got.Unexpected) != tt.unex || len(got.Unread) != tt.unread {
				t.Fatalf("got lost %v unexpected %v unread %v", got.Lost, got.Unexpected, got.Unread)
			}
			if got.OK() != (tt.lost+tt.unex+tt.unread == 0) || (got.Verdict() == "ok") != got.OK() {
				t.Fatalf("OK() = %v, verdict %q", got.OK(), got.Verdict())
			}
			if got.Acked != 3 || got.Attempted != 4 {
				t.Fatalf("acked %d attempted %d, want 3 and 4", got.Acked, got.Attempted)
			}
		})
	}
}

func TestSetEncoding(t *testing.T) {
	got := map[string]bool{}
	DecodeSet(EncodeSet(set("c1-2", "c0-1", "c3-9")), got)
	DecodeSet([]byte(""), got)
	DecodeSet([]byte("c9-9\n"), got)
	if len(got) != 4 || !got["c9-9"] || !got["c0-1"] {
		t.Fatalf("decoded %v", got)
	}
	if s := string(EncodeSet(set("b", "a"))); s != "a\nb" {
		t.Fatalf("EncodeSet = %q", s)
	}
}

func explain(reps ...wire.ExplainReplica) wire.Explain { return wire.Explain{Replicas: reps} }

func prim(node, hash string, found, tomb bool) wire.ExplainReplica {
	return wire.ExplainReplica{Node: node, Role: "primary", Hash: hash, Found: found, Tombstone: tomb}
}

func TestKeyAgreement(t *testing.T) {
	fb := wire.ExplainReplica{Node: "n9", Role: "fallback", Hash: "zzz", Found: true}
	tests := []struct {
		name        string
		ex          wire.Explain
		deleted     bool
		agree, back bool
	}{
		{"identical", explain(prim("n1", "h", true, false), prim("n2", "h", true, false), prim("n3", "h", true, false)), false, true, false},
		{"fallback ignored", explain(prim("n1", "h", true, false), fb, prim("n2", "h", true, false), prim("n3", "h", true, false)), false, true, false},
		{"one differs", explain(prim("n1", "h", true, false), prim("n2", "h", true, false), prim("n3", "g", true, false)), false, false, false},
		{"one lacks it", explain(prim("n1", "h", true, false), prim("n2", "h", true, false), prim("n3", "", false, false)), false, false, false},
		{"too few primaries", explain(prim("n1", "h", true, false), prim("n2", "h", true, false)), false, false, false},
		{"unreachable", explain(prim("n1", "h", true, false), prim("n2", "h", true, false), wire.ExplainReplica{Node: "n3", Role: "primary", Error: "timeout"}), false, false, false},
		{"deleted everywhere", explain(prim("n1", "t", false, true), prim("n2", "", false, false), prim("n3", "t", false, true)), true, true, false},
		{"deleted but back", explain(prim("n1", "t", false, true), prim("n2", "h", true, false), prim("n3", "t", false, true)), true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, back := KeyAgreement(tt.ex, 3, tt.deleted)
			if (why == "") != tt.agree || back != tt.back {
				t.Fatalf("KeyAgreement = %q, %v; want agree=%v resurrected=%v", why, back, tt.agree, tt.back)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	dial := &url.Error{Op: "Put", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	reset := &url.Error{Op: "Put", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}}
	tests := []struct {
		err  error
		want string
	}{
		{nil, OutcomeOK},
		{&client.Error{Status: 503, Code: wire.CodeUnavailable}, OutcomeUnknown},
		{&client.Error{Status: 504, Code: wire.CodeTimeout}, OutcomeUnknown},
		{&client.Error{Status: 500, Code: wire.CodeInternal}, OutcomeUnknown},
		{&client.Error{Status: 400, Code: wire.CodeBadRequest}, OutcomeFail},
		{&client.Error{Status: 409, Code: wire.CodeConflict}, OutcomeFail},
		{dial, OutcomeFail},
		{reset, OutcomeUnknown},
		{context.DeadlineExceeded, OutcomeUnknown},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestScheduleWindows(t *testing.T) {
	tests := []struct {
		s    Schedule
		want []time.Duration
	}{
		{Schedule{Lead: 4 * time.Second, Fault: 14 * time.Second, Span: 14 * time.Second}, []time.Duration{4 * time.Second}},
		{Schedule{Lead: 5 * time.Second, Fault: 15 * time.Second, Gap: 10 * time.Second, Span: 75 * time.Second},
			[]time.Duration{5 * time.Second, 30 * time.Second, 55 * time.Second}},
		{Schedule{Lead: time.Second, Fault: 10 * time.Second, Span: 5 * time.Second}, nil},
	}
	for _, tt := range tests {
		got := tt.s.WindowStarts()
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%+v: WindowStarts = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestPlansAreWellFormed(t *testing.T) {
	for name, plan := range map[string][]Spec{"quick": QuickPlan(), "full": FullPlan()} {
		controls := map[string]bool{}
		for _, s := range plan {
			if _, err := NewNemesis(s.Nemesis, 0); err != nil {
				t.Errorf("%s: %s: %v", name, s.Name(), err)
			}
			if s.Nemesis != "none" && len(s.Schedule.WindowStarts()) == 0 {
				t.Errorf("%s: %s has no fault window", name, s.Name())
			}
			if last := s.Schedule.WindowStarts(); len(last) > 0 && last[len(last)-1]+s.Schedule.Fault > s.Duration+time.Second {
				t.Errorf("%s: %s: a fault window outlasts the run", name, s.Name())
			}
			if s.Control {
				controls[s.Workload] = true
			}
			if s.Workload == "converge" && s.CheckBound <= 0 {
				t.Errorf("%s: %s has no convergence bound", name, s.Name())
			}
		}
		for _, w := range []string{"register", "set", "converge"} {
			if !controls[w] {
				t.Errorf("%s plan has no negative control for %s", name, w)
			}
		}
	}
	var total time.Duration
	for _, s := range QuickPlan() {
		total += s.Duration
	}
	if total > 3*time.Minute {
		t.Errorf("quick plan runs workloads for %s; CI's budget wants it short", total)
	}
}

func TestAbbrev(t *testing.T) {
	if got := Abbrev("héllo world", 5); got != "héll…" || !strings.HasSuffix(got, "…") {
		t.Fatalf("Abbrev = %q", got)
	}
	if got := Abbrev("ok", 5); got != "ok" {
		t.Fatalf("Abbrev = %q", got)
	}
}

func TestPartitionGroups(t *testing.T) {
	order := []int{2, 4, 0, 3, 1}
	tests := []struct {
		kind    string
		groups  string
		blocked map[int][]int // node → nodes it drops
	}{
		{"isolate", "[[2] [0 1 3 4]]", map[int][]int{2: {0, 1, 3, 4}, 0: {2}, 4: {2}}},
		{"split", "[[2 4] [0 1 3]]", map[int][]int{2: {0, 1, 3}, 4: {0, 1, 3}, 0: {2, 4}}},
		// Bridge: 2 sees everyone; {4,0} and {3,1} do not see each other.
		{"bridge", "[[0 2 4] [1 2 3]]", map[int][]int{2: nil, 4: {1, 3}, 0: {1, 3}, 3: {0, 4}, 1: {0, 4}}},
	}
	for _, tt := range tests {
		g := partitionGroups(tt.kind, order)
		if fmt.Sprint(g) != tt.groups {
			t.Errorf("%s: groups %v, want %s", tt.kind, g, tt.groups)
		}
		for node, want := range tt.blocked {
			if got := blockedFrom(g, 5, node); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: node %d drops %v, want %v", tt.kind, node, got, want)
			}
		}
	}
}
