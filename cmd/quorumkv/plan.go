package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/wire"
)

// printPlan shows what a join or a leave would move. The ring is a
// deterministic function of the member set, so the client computes both
// rings exactly as the nodes will.
func printPlan(out io.Writer, st wire.Status, join, leave string) error {
	var members []ring.Member
	for _, m := range st.Members {
		if m.State == "left" {
			continue
		}
		members = append(members, ring.Member{ID: m.ID, Zone: m.Zone})
	}
	before, err := ring.New(members, st.RingSize, st.Replicas)
	if err != nil {
		return err
	}
	var after []ring.Member
	what := ""
	switch {
	case join != "":
		id, zone, _ := strings.Cut(join, "@")
		if before.Contains(id) {
			return fmt.Errorf("--plan-join %s: already a member", id)
		}
		after = append(members, ring.Member{ID: id, Zone: zone})
		what = "join of " + id
	default:
		if !before.Contains(leave) {
			return fmt.Errorf("--plan-leave %s: not a member", leave)
		}
		for _, m := range members {
			if m.ID != leave {
				after = append(after, m)
			}
		}
		what = "departure of " + leave
	}
	next, err := ring.New(after, st.RingSize, st.Replicas)
	if err != nil {
		return err
	}
	moves, err := ring.Diff(before, next)
	if err != nil {
		return err
	}
	gain, lose := map[string]int{}, map[string]int{}
	slots := 0
	for _, m := range moves {
		slots += len(m.Added)
		for _, a := range m.Added {
			gain[a]++
		}
		for _, r := range m.Removed {
			lose[r]++
		}
	}
	total := st.RingSize * st.Replicas
	fmt.Fprintf(out, "plan for the %s: %d of %d partitions change owners; %d of %d replica slots move (%.1f%% of the data)\n\n",
		what, len(moves), st.RingSize, slots, total, 100*float64(slots)/float64(max(total, 1)))
	ids := map[string]bool{}
	for _, m := range before.Members() {
		ids[m.ID] = true
	}
	for _, m := range next.Members() {
		ids[m.ID] = true
	}
	var sorted []string
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tPARTITIONS NOW\tAFTER\tRECEIVES\tHANDS OFF")
	for _, id := range sorted {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", id, before.PrimaryCount(id), next.PrimaryCount(id), gain[id], lose[id])
	}
	return tw.Flush()
}
