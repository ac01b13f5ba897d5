package metrics

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/wire"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestMetrics(t *testing.T, clk *fakeClock, stats *replication.Stats) *Metrics {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	cfg.GoRuntime = false
	cfg.Coordinator = stats
	cfg.StoreSize = func() (int64, int64) { return 100, 200 }
	cfg.Status = func(context.Context) wire.Status {
		return wire.Status{
			ID: "n1",
			Members: []wire.MemberStatus{
				{ID: "n1", State: "alive", Partitions: 600},
				{ID: "n2", State: "alive", Partitions: 424},
				{ID: "n3", State: "dead", Partitions: 0},
			},
			HintsPending: 7, HintsByNode: map[string]int64{"n3": 7},
			Transfers:   []wire.TransferStatus{{Partition: 1, Keys: 10, Bytes: 1000}, {Partition: 2, Keys: 5, Done: true}},
			AntiEntropy: wire.AntiEntropyStatus{Rounds: 2, KeysCompared: 99, PartitionsHeld: 600, PartitionsCovered: 598},
		}
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var stats replication.Stats
	m := newTestMetrics(t, clk, &stats)

	before := scrape(t, m)
	for _, want := range []string{
		`quorumkv_members{state="alive"} 2`, `quorumkv_members{state="dead"} 1`, `quorumkv_members{state="suspect"} 0`,
		`quorumkv_partitions{member="n1"} 600`, `quorumkv_hints_pending 7`, `quorumkv_hints_pending_by_target{target="n3"} 7`,
		`quorumkv_transfers_in_progress 1`, `quorumkv_transfer_keys 15`, `quorumkv_anti_entropy_keys_compared_total 99`,
		`quorumkv_store_vlog_bytes 200`, `quorumkv_read_repairs_total 0`, `quorumkv_anti_entropy_partitions_covered 598`,
	} {
		if !strings.Contains(before, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(before, "quorumkv_requests_total{") {
		t.Errorf("request series before any request:\n%s", before)
	}

	for i := 0; i < 30; i++ {
		m.ObserveHTTP("put", "quorum", 204, 2*time.Millisecond)
		m.ObserveHTTP("get", "quorum", 200, time.Millisecond)
	}
	m.ObserveHTTP("get", "all", 503, 5*time.Millisecond)
	m.ObserveRESP("set", "one", "ok", time.Millisecond)
	stats.ReadRepairs.Add(3)
	stats.QuorumFailures.Add(1)

	after := scrape(t, m)
	for _, want := range []string{
		`quorumkv_requests_total{api="http",level="quorum",op="put",outcome="ok"} 30`,
		`quorumkv_requests_total{api="http",level="all",op="get",outcome="unavailable"} 1`,
		`quorumkv_requests_total{api="resp",level="one",op="set",outcome="ok"} 1`,
		`quorumkv_request_duration_seconds_count{api="http",level="quorum",op="get"} 30`,
		`quorumkv_read_repairs_total 3`, `quorumkv_quorum_failures_total 1`,
	} {
		if !strings.Contains(after, want+"\n") {
			t.Errorf("/metrics after traffic lacks %q", want)
		}
	}
	if n := countSeries(t, m.requests); n != 4 {
		t.Errorf("%d request series, want 4", n)
	}
}

// Hostile label values must not create series: a flood of odd methods and
// levels lands in one "other"/"invalid" series.
func TestLabelsAreBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newTestMetrics(t, clk, nil)
	for i := 0; i < 500; i++ {
		m.ObserveHTTP(strings.Repeat("x", i%7+1), "999"+strings.Repeat("9", i%5), 400, time.Millisecond)
		m.ObserveHTTP("get", "-1", 400, time.Millisecond)
		m.ObserveHTTP("get", "01", 400, time.Millisecond)
		m.ObserveRESP("get", "quorum", "weird outcome", time.Millisecond)
	}
	if n := countSeries(t, m.requests); n != 3 {
		t.Errorf("%d request series after hostile labels, want 3", n)
	}
	for _, c := range []struct{ level, want string }{{"1", "1"}, {"16", "16"}, {"17", "invalid"}, {"quorum", "quorum"}, {"QUORUM", "invalid"}, {"", "invalid"}} {
		if got := cleanLevel(c.level); got != c.want {
			t.Errorf("cleanLevel(%q) = %q, want %q", c.level, got, c.want)
		}
	}
	for _, c := range []struct {
		code int
		want string
	}{{200, "ok"}, {204, "ok"}, {300, "siblings"}, {404, "not_found"}, {405, "bad_request"}, {409, "conflict"}, {413, "too_large"}, {503, "unavailable"}, {504, "timeout"}, {500, "internal"}, {418, "other"}} {
		if got := outcomeOf(c.code); got != c.want {
			t.Errorf("outcomeOf(%d) = %q, want %q", c.code, got, c.want)
		}
	}
}

func TestStatsWindow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var stats replication.Stats
	m := newTestMetrics(t, clk, &stats)
	// 10 seconds of 100 gets/s at 1ms with 1 error/s, then 100 puts at 20ms
	// in the current (incomplete) second, which the window must not count.
	for s := 0; s < 10; s++ {
		for i := 0; i < 100; i++ {
			code := 200
			if i == 0 {
				code = 504
			}
			m.ObserveHTTP("get", "quorum", code, time.Millisecond)
		}
		clk.Add(time.Second)
	}
	for i := 0; i < 100; i++ {
		m.ObserveHTTP("put", "one", 204, 20*time.Millisecond)
	}
	stats.HintsDelivered.Add(4)

	rec := httptest.NewRecorder()
	m.StatsHandler("/v1/stats").ServeHTTP(rec, httptest.NewRequest("GET", "/v1/stats", nil))
	var st Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%v\n%s", err, rec.Body)
	}
	if len(st.Requests) != 1 {
		t.Fatalf("requests %+v, want the gets only", st.Requests)
	}
	r := st.Requests[0]
	if r.Op != "get" || r.Level != "quorum" || r.API != "http" || r.Count != 1000 || r.Errors != 10 || r.PerSec != 100 || r.ErrorsPerSec != 1 {
		t.Errorf("row %+v", r)
	}
	if r.P50ms < 0.8 || r.P50ms > 1.25 || r.P99ms < 0.8 || r.P99ms > 1.25 {
		t.Errorf("latency estimates %v/%v ms, want about 1", r.P50ms, r.P99ms)
	}
	if st.Total.Count != 1000 {
		t.Errorf("total %+v", st.Total)
	}
	if len(st.Series) != windowSlots-1 || st.Series[len(st.Series)-1].Count != 100 || st.Series[0].Count != 0 {
		t.Errorf("series: %d points, last %+v", len(st.Series), st.Series[len(st.Series)-1])
	}
	if st.Counters["hints_delivered_total"] != 4 || st.Counters["store_lsm_bytes"] != 100 || st.Counters["hints_pending"] != 7 {
		t.Errorf("counters %v", st.Counters)
	}
	// A minute later the window is empty again.
	clk.Add(time.Minute)
	if st := m.Stats(); len(st.Requests) != 0 || st.Total.Count != 0 {
		t.Errorf("after a minute: %+v", st.Requests)
	}
}

func TestBucketsAreMonotonic(t *testing.T) {
	prev := 0
	for d := time.Microsecond; d < time.Minute; d = d * 11 / 10 {
		b := bucketOf(d)
		if b < prev {
			t.Fatalf("bucketOf(%v) = %d < %d", d, b, prev)
		}
		prev = b
	}
	if bucketOf(time.Hour) != latencyBuckets-1 {
		t.Errorf("an hour is not in the last bucket")
	}
	var a agg
	a.add(false, 10*time.Millisecond)
	if q := a.quantileMs(0.5); q < 8 || q > 12.5 {
		t.Errorf("10ms estimated as %vms", q)
	}
}

func TestConcurrentObserve(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newTestMetrics(t, clk, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				m.ObserveHTTP("get", "one", 200, time.Millisecond)
				if i%100 == 0 {
					clk.Add(time.Second)
					m.Stats()
				}
			}
		}()
	}
	wg.Wait()
	if got := counterValue(t, m.requests.WithLabelValues("http", "get", "one", "ok")); got != 8000 {
		t.Errorf("counted %v, want 8000", got)
	}
}

// countSeries counts the series a collector exports.
func countSeries(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
