package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

func TestHistogramMergeAcrossWorkers(t *testing.T) {
	// Four workers record disjoint ranges; the merge must equal one
	// histogram that saw everything.
	all := newLevelStats()
	want := newOpStats()
	for w := 0; w < 4; w++ {
		ws := newLevelStats()
		for i := 1; i <= 2500; i++ {
			d := time.Duration(w*2500+i) * time.Microsecond
			ws.op(OpRead).record(d)
			want.record(d)
		}
		ws.op(OpRead).errors[ErrorTimeout] += int64(w)
		ws.op(OpRead).stale += 2
		ws.op(OpRead).ages[3].reads += 5
		for s := 0; s <= w; s++ { // worker w saw seconds 0..w
			ws.tick(s)
		}
		all.merge(ws)
	}
	got := all.op(OpRead)
	if got.hist.TotalCount() != 10000 {
		t.Fatalf("merged count %d, want 10000", got.hist.TotalCount())
	}
	for _, q := range []float64{50, 95, 99, 99.9, 100} {
		g, w := got.hist.ValueAtQuantile(q), want.hist.ValueAtQuantile(q)
		if g != w {
			t.Errorf("p%g: merged %dµs, one histogram %dµs", q, g, w)
		}
		exact := q / 100 * 10000
		if math.Abs(float64(g)-exact) > 0.002*exact+1 {
			t.Errorf("p%g: %dµs, want about %.0fµs", q, g, exact)
		}
	}
	if got.errors[ErrorTimeout] != 0+1+2+3 || got.stale != 8 || got.ages[3].reads != 20 {
		t.Errorf("merged counters: timeouts %d stale %d ages %d", got.errors[ErrorTimeout], got.stale, got.ages[3].reads)
	}
	wantSecs := []int64{4, 3, 2, 1}
	if fmt.Sprint(all.perSecond) != fmt.Sprint(wantSecs) || all.transactions != 10 {
		t.Errorf("per-second %v (transactions %d), want %v (10)", all.perSecond, all.transactions, wantSecs)
	}
	r := summarizeOp(got, 10*time.Second)
	if r.Count != 10000 || r.P50Ms < 4.99 || r.P50Ms > 5.01 || r.MaxMs < 9.99 || r.Errors != 6 || r.ErrorsByKind[ErrorTimeout] != 6 || r.OpsPerSec != 1000 {
		t.Errorf("summary %+v", r)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want ErrorKind
	}{
		{&client.Error{Status: 503, Code: "unavailable"}, ErrorUnavailable},
		{&client.Error{Status: 504, Code: "timeout"}, ErrorTimeout},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ErrorTimeout},
		{&client.Error{Status: 500, Code: "internal"}, ErrorOther},
		{errors.New("connection refused"), ErrorOther},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.Workload = "z"
	c.Distribution = "pareto"
	c.Records = 0
	c.Concurrency = 0
	c.ValueSize = 4
	c.Levels = []string{"quorum", "eventual", "quorum"}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	for _, want := range []string{"--workload", "--distribution", "--records", "--concurrency", "--value-size", `"eventual"`, "listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q: %v", want, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
	if got := ParseLevels(" One, quorum ,,STRONG"); fmt.Sprint(got) != "[one quorum strong]" {
		t.Fatalf("ParseLevels = %v", got)
	}
}
