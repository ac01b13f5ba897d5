package metrics

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/wire"
)

// statusCollector turns one /v1/status snapshot per scrape into gauges and
// counters, so that what an operator sees in the status and on the
// dashboard is exactly what Prometheus records.
type statusCollector struct {
	status func(ctx context.Context) wire.Status
}

// memberStates are always exported, zero or not, so that an alert on
// quorumkv_members{state="dead"} > 0 has a series to look at.
var memberStates = []string{"alive", "suspect", "dead", "left"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	descMembers      = desc("members", "Members this node knows, by state.", "state")
	descPartitions   = desc("partitions", "Partitions each member holds as primary in this node's ring.", "member")
	descHintsPending = desc("hints_pending", "Hints this node holds for other nodes, waiting to be handed back.")
	descHintsByNode  = desc("hints_pending_by_target", "Hints this node holds, by the node they are for.", "target")
	descTransfers    = desc("transfers_in_progress", "Ownership transfers (one partition to one new owner) not yet done.")
	descTransferKeys = desc("transfer_keys", "Keys moved so far by the ownership transfers listed in /v1/status.")
	descTransferB    = desc("transfer_bytes", "Bytes moved so far by the ownership transfers listed in /v1/status.")
	descArriving     = desc("partitions_arriving", "Partitions this node became a primary of whose old owners have not finished handing them off.")
	descLeaving      = desc("leaving", "1 while this node hands its data off before leaving the cluster.")
	descAERounds     = desc("anti_entropy_rounds_total", "Finished anti-entropy rounds.")
	descAEExchanges  = desc("anti_entropy_exchanges_total", "Finished anti-entropy exchanges (one partition with one peer).")
	descAECompared   = desc("anti_entropy_keys_compared_total", "Keys compared by anti-entropy.")
	descAERepaired   = desc("anti_entropy_keys_repaired_total", "Local keys anti-entropy changed.")
	descAEBytes      = desc("anti_entropy_bytes_sent_total", "Bytes this node sent for anti-entropy.")
	descAECovered    = desc("anti_entropy_partitions_covered", "Held partitions compared with every other primary in the last finished round.")
	descAEHeld       = desc("anti_entropy_partitions_held", "Partitions this node holds as a primary.")
	descAELastRound  = desc("anti_entropy_last_round_timestamp_seconds", "When the last anti-entropy round finished (Unix time; 0: none yet).")
)

func (statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descPartitions, descHintsPending, descHintsByNode, descTransfers,
		descTransferKeys, descTransferB, descArriving, descLeaving, descAERounds, descAEExchanges, descAECompared, descAERepaired, descAEBytes,
		descAECovered, descAEHeld, descAELastRound} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := c.status(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}

	byState := map[string]int{}
	for _, m := range st.Members {
		byState[m.State]++
		gauge(descPartitions, float64(m.Partitions), m.ID)
	}
	for _, s := range memberStates {
		gauge(descMembers, float64(byState[s]), s)
	}

	targets := make([]string, 0, len(st.HintsByNode))
	for t := range st.HintsByNode {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		gauge(descHintsByNode, float64(st.HintsByNode[t]), t)
	}
	gauge(descHintsPending, float64(st.HintsPending))

	var active int
	var keys, bytes int64
	for _, t := range st.Transfers {
		if !t.Done {
			active++
		}
		keys += t.Keys
		bytes += t.Bytes
	}
	gauge(descTransfers, float64(active))
	gauge(descTransferKeys, float64(keys))
	gauge(descTransferB, float64(bytes))
	gauge(descArriving, float64(st.PartitionsArriving))
	leaving := 0.0
	if st.Leaving {
		leaving = 1
	}
	gauge(descLeaving, leaving)

	ae := st.AntiEntropy
	counter(descAERounds, ae.Rounds)
	counter(descAEExchanges, ae.Exchanges)
	counter(descAECompared, ae.KeysCompared)
	counter(descAERepaired, ae.KeysRepaired)
	counter(descAEBytes, ae.BytesSent)
	gauge(descAECovered, float64(ae.PartitionsCovered))
	gauge(descAEHeld, float64(ae.PartitionsHeld))
	var last float64
	if t, err := time.Parse(time.RFC3339, ae.LastRoundFinished); err == nil {
		last = float64(t.Unix())
	}
	gauge(descAELastRound, last)
}
