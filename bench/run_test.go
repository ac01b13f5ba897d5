package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStore is a single-copy, linearizable stand-in for a cluster's HTTP
// API (one value per key, no siblings). With lagging set, every read
// returns the value before the newest: a replica that is always one write
// behind, which the staleness rule must catch.
type fakeStore struct {
	mu      sync.Mutex
	vals    map[string][][]byte // newest last
	version int
	lagging bool
	levels  map[string]int
}

func newFakeStore(lagging bool) *fakeStore {
	return &fakeStore{vals: map[string][][]byte{}, lagging: lagging, levels: map[string]int{}}
}

func (f *fakeStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/status" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"node":"fake"}`)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, "/v1/kv/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.levels[r.Method+" "+r.URL.Query().Get("consistency")]++
	switch r.Method {
	case http.MethodGet:
		vs := f.vals[key]
		i := len(vs) - 1
		if f.lagging {
			i--
		}
		if i < 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("X-Context", "c"+strconv.Itoa(f.version))
		w.WriteHeader(http.StatusOK)
		w.Write(vs[i])
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		vs := append(f.vals[key], b)
		if len(vs) > 2 {
			vs = vs[len(vs)-2:]
		}
		f.vals[key] = vs
		f.version++
		w.Header().Set("X-Context", "c"+strconv.Itoa(f.version))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func fakeConfig(urls ...string) Config {
	c := DefaultConfig()
	c.Endpoints = urls
	c.Records = 100
	c.Ops = 300
	c.Concurrency = 8
	c.Settle = 0
	c.Seed = 1
	return c
}

func TestEveryWorkloadAgainstAFakeStore(t *testing.T) {
	for _, wl := range []string{"a", "b", "c", "d", "f"} {
		t.Run(wl, func(t *testing.T) {
			fs := newFakeStore(false)
			srv := httptest.NewServer(fs)
			defer srv.Close()
			cfg := fakeConfig(srv.URL, srv.URL)
			cfg.Workload = wl
			cfg.Levels = []string{"one", "strong"}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Levels) != 2 || res.Interrupted {
				t.Fatalf("levels %d interrupted %v", len(res.Levels), res.Interrupted)
			}
			for _, lv := range res.Levels {
				if lv.Transactions != cfg.Ops {
					t.Errorf("%s: %d transactions, want %d", lv.Consistency, lv.Transactions, cfg.Ops)
				}
				for op := range workloads[wl].Mix {
					if lv.Ops[op].Count == 0 {
						t.Errorf("%s: no %s operations ran", lv.Consistency, op)
					}
				}
				if rd := lv.Ops[OpRead]; rd.Stale != 0 || rd.Errors != 0 {
					t.Errorf("%s: a linearizable store gave %d stale reads, %d errors", lv.Consistency, rd.Stale, rd.Errors)
				}
			}
			if fs.levels["GET one"] == 0 || fs.levels["GET strong"] == 0 {
				t.Errorf("requests by level: %v", fs.levels)
			}
		})
	}
}

func TestLaggingStoreIsCaughtStale(t *testing.T) {
	fs := newFakeStore(true)
	srv := httptest.NewServer(fs)
	defer srv.Close()
	cfg := fakeConfig(srv.URL)
	cfg.Workload = "a"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rd := res.Levels[0].Ops[OpRead]
	if rd.Stale == 0 {
		t.Fatalf("negative control: a store one write behind gave no stale reads (%+v)", rd)
	}
	t.Logf("lagging store: %d of %d reads stale", rd.Stale, rd.Count)
}

// Workload E's scans read runs of consecutive records that exist, in
// record order, and never a record past the last one inserted.
func TestWorkloadEScansConsecutiveRecords(t *testing.T) {
	fs := newFakeStore(false)
	var mu sync.Mutex
	var gets []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			mu.Lock()
			gets = append(gets, strings.TrimPrefix(r.URL.Path, "/v1/kv/"))
			mu.Unlock()
		}
		fs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := fakeConfig(srv.URL)
	cfg.Workload, cfg.Concurrency = "e", 1 // one worker: its reads in order
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	lv := res.Levels[0]
	if lv.Ops[OpScan].Count == 0 || lv.Ops[OpInsert].Count == 0 || lv.Ops[OpScan].Errors != 0 {
		t.Fatalf("workload e: %+v", lv.Ops)
	}
	if got := lv.Ops[OpScan].Count + lv.Ops[OpInsert].Count; got != int64(cfg.Ops) {
		t.Errorf("%d scans and inserts, want %d transactions", got, cfg.Ops)
	}
	// Every read found its record (none past the last insert), and a run
	// of reads goes up one record at a time.
	fs.mu.Lock()
	for _, k := range gets {
		if len(fs.vals[k]) == 0 {
			t.Errorf("a scan read %s, which was never written", k)
		}
	}
	fs.mu.Unlock()
	next, runs := 0, 0
	record := func(k string) (string, int) { // prefix and record number
		i := len(k)
		for i > 0 && k[i-1] >= '0' && k[i-1] <= '9' {
			i--
		}
		n, _ := strconv.Atoi(k[i:])
		return k[:i], n
	}
	for i := 1; i < len(gets); i++ {
		p0, n0 := record(gets[i-1])
		if p1, n1 := record(gets[i]); p1 == p0 && n1 == n0+1 {
			next++
		} else {
			runs++
		}
	}
	if next < len(gets)/4 || runs == 0 {
		t.Errorf("%d reads: %d followed by the next record, %d new runs; want runs of consecutive records", len(gets), next, runs)
	}
}

func TestEndpointThatDoesNotAnswerFailsBeforeTheLoad(t *testing.T) {
	// A closed port, and a server that is not a quorumkv node (or wants a
	// token): each must stop the run before the load, naming the endpoint.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer other.Close()
	store := newFakeStore(false)
	good := httptest.NewServer(store)
	defer good.Close()
	for _, bad := range []string{closed, other.URL} {
		res, err := Run(context.Background(), fakeConfig(good.URL, bad))
		if err == nil || !strings.Contains(err.Error(), "endpoint "+bad+" does not answer") {
			t.Errorf("%s: Run = %v", bad, err)
		}
		if res.Load != nil {
			t.Errorf("%s: the load phase ran", bad)
		}
		sc := DefaultStalenessConfig()
		sc.Endpoints = []string{bad}
		rs, err := RunStaleness(context.Background(), sc)
		if err == nil || !strings.Contains(err.Error(), "endpoint "+bad+" does not answer") || len(rs.Levels) != 0 {
			t.Errorf("%s: RunStaleness = %v, %d levels", bad, err, len(rs.Levels))
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.vals) != 0 {
		t.Errorf("the good endpoint got %d keys written", len(store.vals))
	}
}

func TestCancelStopsEarlyAndKeepsResults(t *testing.T) {
	srv := httptest.NewServer(newFakeStore(false))
	defer srv.Close()
	cfg := fakeConfig(srv.URL)
	cfg.Ops = 0
	cfg.Duration = time.Minute
	cfg.Levels = []string{"quorum", "strong"}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("cancel took %s to stop the run", time.Since(start))
	}
	if !res.Interrupted || len(res.Levels) != 1 || res.Levels[0].Transactions == 0 {
		t.Fatalf("interrupted %v, levels %d", res.Interrupted, len(res.Levels))
	}
}

// TestShortBenchOnEmbeddedCluster runs the real thing briefly: an embedded
// 3-node cluster, workload A at strong, one and quorum, and a short
// t-visibility measurement. The JSON must have every field of the brief's
// shape, and strong must never be stale.
func TestShortBenchOnEmbeddedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	cfg := DefaultConfig()
	cfg.Records = 300
	// A count rather than a duration, so that a stall of this shared
	// machine cannot leave a level without an operation of each kind.
	cfg.Ops = 150
	cfg.Concurrency = 8
	cfg.Settle = 100 * time.Millisecond
	// Strong first: the load is then written at strong too, so the strong
	// level reads only keys every write to which was strong, which is when
	// the brief promises linearizability (a later strong level may
	// legitimately miss a one-level write whose replication failed).
	cfg.Levels = []string{"strong", "one", "quorum"}
	sc := DefaultStalenessConfig()
	sc.Trials = 8
	sc.Delays = []time.Duration{0, 5 * time.Millisecond}
	cfg.Staleness = &sc
	// A safety net only: on an idle machine the run takes a few seconds,
	// on this shared one under heavy load it has taken a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run took %s", time.Since(start).Round(time.Millisecond))
	if res.Interrupted {
		t.Fatalf("the run was cut short by the test's deadline after %s", time.Since(start))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bench.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Workload *string `json:"workload"`
		Levels   []struct {
			Consistency *string                   `json:"consistency"`
			OpsPerSec   *float64                  `json:"ops_per_sec"`
			Ops         map[string]map[string]any `json:"ops"`
			Throughput  []float64                 `json:"throughput_per_sec"`
		} `json:"levels"`
		Staleness *struct {
			Levels []struct {
				Consistency string `json:"consistency"`
				Points      []struct {
					TMs   *float64 `json:"t_ms"`
					Fresh *float64 `json:"fresh"`
					Reads *float64 `json:"reads"`
				} `json:"points"`
			} `json:"levels"`
		} `json:"staleness"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	if doc.Workload == nil || *doc.Workload != "a" || len(doc.Levels) != 3 {
		t.Fatalf("workload/levels missing: %s", b)
	}
	fields := []string{"count", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "errors", "stale"}
	for _, lv := range doc.Levels {
		if lv.Consistency == nil || lv.OpsPerSec == nil || *lv.OpsPerSec <= 0 || len(lv.Throughput) == 0 {
			t.Fatalf("level without consistency, ops_per_sec or throughput: %s", b)
		}
		for _, op := range []string{"read", "update"} {
			o, ok := lv.Ops[op]
			if !ok {
				t.Fatalf("%s: no %q in ops", *lv.Consistency, op)
			}
			for _, f := range fields {
				if _, ok := o[f].(float64); !ok {
					t.Errorf("%s %s: field %q missing or not a number", *lv.Consistency, op, f)
				}
			}
			if _, ok := o["errors_by_kind"].(map[string]any); !ok {
				t.Errorf("%s %s: errors_by_kind missing", *lv.Consistency, op)
			}
			if o["count"] == 0.0 {
				t.Errorf("%s %s: no operations", *lv.Consistency, op)
			}
		}
		if *lv.Consistency == "strong" && lv.Ops["read"]["stale"] != 0.0 {
			t.Errorf("strong: %v stale reads", lv.Ops["read"]["stale"])
		}
	}
	if doc.Staleness == nil || len(doc.Staleness.Levels) != 3 {
		t.Fatalf("staleness missing: %s", b)
	}
	for _, l := range doc.Staleness.Levels {
		for _, p := range l.Points {
			if p.TMs == nil || p.Fresh == nil || p.Reads == nil {
				t.Fatalf("staleness point lacks a field: %s", b)
			}
			if l.Consistency == "strong" && *p.Fresh != 1 {
				t.Errorf("strong at t=%gms: fresh %g, want 1", *p.TMs, *p.Fresh)
			}
		}
	}
	var html bytes.Buffer
	if err := RenderHTML(&html, res); err != nil {
		t.Fatal(err)
	}
	page := html.String()
	for _, want := range []string{"<svg", "Read latency", "Throughput over time", "Staleness"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "<link", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("report is not self-contained: contains %q", bad)
		}
	}
	var sum bytes.Buffer
	res.WriteSummary(&sum)
	t.Logf("\n%s", sum.String())
}
