package bench

import (
	"math/rand/v2"
	"sort"
)

// Op is an operation type, as reported in Result (the keys of LevelResult.Ops).
type Op string

// The operation types. A read-modify-write records its read under OpRead and
// its write under OpUpdate as well as the whole under OpReadModifyWrite, as
// YCSB does.
const (
	OpRead            Op = "read"
	OpUpdate          Op = "update"
	OpInsert          Op = "insert"
	OpReadModifyWrite Op = "rmw"
	OpScan            Op = "scan"
)

// Workload is a YCSB core workload: a mix of operations and a default key
// distribution.
type Workload struct {
	// Name is the letter, "a" to "f".
	Name string
	// Description says what it models, for the report.
	Description string
	// Mix gives each transaction type its proportion (they sum to 1).
	Mix map[Op]float64
	// Distribution is the default key chooser.
	Distribution Distribution
}

// workloads are YCSB's core workloads (workloads/workload[a-f] in the YCSB
// repository), with their proportions and request distributions.
var workloads = map[string]Workload{
	"a": {Name: "a", Description: "update heavy: 50% reads, 50% updates",
		Mix: map[Op]float64{OpRead: 0.5, OpUpdate: 0.5}, Distribution: Zipfian},
	"b": {Name: "b", Description: "read mostly: 95% reads, 5% updates",
		Mix: map[Op]float64{OpRead: 0.95, OpUpdate: 0.05}, Distribution: Zipfian},
	"c": {Name: "c", Description: "read only: 100% reads",
		Mix: map[Op]float64{OpRead: 1}, Distribution: Zipfian},
	"d": {Name: "d", Description: "read latest: 95% reads, 5% inserts, the newest keys hottest",
		Mix: map[Op]float64{OpRead: 0.95, OpInsert: 0.05}, Distribution: Latest},
	"e": {Name: "e", Description: "short ranges: 95% scans of 1-100 consecutive records (as point reads: keys are hashed onto the ring), 5% inserts",
		Mix: map[Op]float64{OpScan: 0.95, OpInsert: 0.05}, Distribution: Zipfian},
	"f": {Name: "f", Description: "read-modify-write: 50% reads, 50% read-modify-writes with the read's context",
		Mix: map[Op]float64{OpRead: 0.5, OpReadModifyWrite: 0.5}, Distribution: Zipfian},
}

// LookupWorkload returns the YCSB core workload named by letter.
func LookupWorkload(name string) (Workload, bool) {
	w, ok := workloads[name]
	return w, ok
}

// opChooser draws transaction types in a workload's proportions.
type opChooser struct {
	ops []Op
	cum []float64
}

func newOpChooser(mix map[Op]float64) opChooser {
	var oc opChooser
	names := make([]Op, 0, len(mix))
	for op := range mix {
		names = append(names, op)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	total := 0.0
	for _, op := range names {
		total += mix[op]
		oc.ops = append(oc.ops, op)
		oc.cum = append(oc.cum, total)
	}
	for i := range oc.cum {
		oc.cum[i] /= total
	}
	return oc
}

func (oc opChooser) next(r *rand.Rand) Op {
	u := r.Float64()
	for i, c := range oc.cum {
		if u < c {
			return oc.ops[i]
		}
	}
	return oc.ops[len(oc.ops)-1]
}
