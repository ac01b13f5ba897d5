package proctest_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/proctest"
)

// The anti-entropy scenarios of internal/clustertest/repair_test.go on real
// `quorumkv server` processes killed with SIGKILL. Convergence is checked
// key by key with /v1/explain, which asks every replica for its object: all
// primaries must report the same version hash, and no replica may hold a
// live value of a deleted key.

var aeArgs = []string{"--anti-entropy-interval", "200ms"}

// each runs fn(0..n-1) on 8 goroutines and fails on the first error.
func each(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func rewrite(ctx context.Context, cl *client.Client, key string, value []byte, level string) error {
	res, err := cl.Get(ctx, []byte(key), client.Options{Consistency: level})
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	o := client.Options{Consistency: level, Context: res.Context}
	if value == nil {
		_, err = cl.Delete(ctx, []byte(key), o)
	} else {
		_, err = cl.Put(ctx, []byte(key), value, o)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// agreement reports why key's primaries disagree, or "" when they hold the
// same versions (and, for a deleted key, no live value).
func agreement(ctx context.Context, cl *client.Client, key string, deleted bool) string {
	ex, err := cl.Explain(ctx, []byte(key))
	if err != nil {
		return err.Error()
	}
	var hash string
	for i, r := range ex.Replicas {
		if r.Role != "primary" {
			continue
		}
		if r.Error != "" {
			return fmt.Sprintf("%s: %s", r.Node, r.Error)
		}
		if deleted && r.Found {
			return fmt.Sprintf("%s holds a live value of deleted key %s", r.Node, key)
		}
		if i == 0 {
			hash = r.Hash
		} else if r.Hash != hash {
			return fmt.Sprintf("%s: %s has %q, %s has %q", key, ex.Replicas[0].Node, hash, r.Node, r.Hash)
		}
	}
	return ""
}

// agreeWithin polls agreement for every key (re-checking only those that
// still disagree) until all agree, or reports how far it got when timeout
// passes.
func agreeWithin(cl *client.Client, keys []string, deleted map[string]bool, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(keys)
	for {
		var still []string
		var why string
		for _, k := range pending {
			if w := agreement(ctx, cl, k, deleted[k]); w != "" {
				still = append(still, k)
				why = w
			}
		}
		if len(still) == 0 {
			return true, ""
		}
		if time.Now().After(deadline) {
			return false, fmt.Sprintf("%d of %d keys still differ after %s, e.g. %s", len(still), len(keys), timeout, why)
		}
		pending = still
		time.Sleep(200 * time.Millisecond)
	}
}

func waitAgreement(t *testing.T, cl *client.Client, keys []string, deleted map[string]bool, timeout time.Duration) {
	t.Helper()
	if ok, why := agreeWithin(cl, keys, deleted, timeout); !ok {
		t.Fatal(why)
	}
}

func TestRealProcessesRepairAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 3, Args: aeArgs})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	each(t, 200, func(i int) error {
		_, err := cl.At(i%3).Put(ctx, fmt.Appendf(nil, "old-%03d", i), fmt.Appendf(nil, "v0-%d", i), client.Options{Consistency: "all"})
		return err
	})
	c.Kill(2)
	each(t, 1000, func(i int) error {
		if i < 800 {
			_, err := cl.At(i%2).Put(ctx, fmt.Appendf(nil, "new-%03d", i), fmt.Appendf(nil, "v1-%d", i), client.Options{Consistency: "quorum"})
			return err
		}
		return rewrite(ctx, cl.At(i%2), fmt.Sprintf("old-%03d", i-800), fmt.Appendf(nil, "v1-%d", i-800), "quorum")
	})
	deleted := map[string]bool{}
	var keys []string
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("old-%03d", i))
	}
	for i := range 800 {
		keys = append(keys, fmt.Sprintf("new-%03d", i))
	}
	for i := range 100 {
		k := keys[i] // 50 keys n3 holds an old value of, 50 it never saw
		if i >= 50 {
			k = keys[200+i]
		}
		deleted[k] = true
	}
	each(t, len(keys), func(i int) error {
		if !deleted[keys[i]] {
			return nil
		}
		return rewrite(ctx, cl.At(i%2), keys[i], nil, "quorum")
	})
	c.Restart(2)
	c.WaitMembers(3, 30*time.Second)
	waitAgreement(t, cl, keys, deleted, 90*time.Second)
	for k := range deleted {
		res, err := cl.At(2).Get(ctx, []byte(k), client.Options{Consistency: "all"})
		if err != nil || res.Found {
			t.Fatalf("deleted %s: found=%v %q err=%v", k, res.Found, res.Values, err)
		}
	}
	st, err := cl.At(2).Status(ctx)
	if err != nil || st.AntiEntropy.KeysRepaired < 900 {
		t.Fatalf("n3 status %+v, err %v: want anti-entropy to have repaired its ~1,000 missed keys", st.AntiEntropy, err)
	}
}

// The negative control: with anti-entropy an hour apart (and no reads, so
// no read repair), the killed replica stays behind and the check fails.
func TestRealProcessesNoRepairNegativeControl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 3, Args: []string{"--anti-entropy-interval", "1h"}})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c.Kill(2)
	var keys []string
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("k%03d", i))
	}
	each(t, len(keys), func(i int) error {
		_, err := cl.At(i%2).Put(ctx, []byte(keys[i]), []byte("v"), client.Options{Consistency: "quorum"})
		return err
	})
	start := time.Now()
	c.Restart(2)
	c.WaitMembers(3, 30*time.Second)
	t.Logf("n3 back after %s", time.Since(start))
	if ok, why := agreeWithin(cl, keys, nil, 5*time.Second); ok {
		t.Fatal("replicas agree with anti-entropy off: the agreement check cannot fail")
	} else {
		t.Logf("as expected: %s", why)
	}
}

func TestRealProcessesWipedReplicaRefills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 3, Args: aeArgs})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var keys []string
	for i := range 1000 {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	each(t, len(keys), func(i int) error {
		_, err := cl.At(i%3).Put(ctx, []byte(keys[i]), fmt.Appendf(nil, "v%d", i), client.Options{Consistency: "all"})
		return err
	})
	for i := range 5 {
		if err := rewrite(ctx, cl.At(2), "kv679", fmt.Appendf(nil, "before-%d", i), "all"); err != nil {
			t.Fatal(err)
		}
	}
	before, err := cl.At(2).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(2)
	c.Wipe(2)
	c.Restart(2)
	c.WaitMembers(3, 30*time.Second)
	after, err := cl.At(2).Status(ctx)
	if err != nil || after.Incarnation == before.Incarnation {
		t.Fatalf("wiped node's incarnation %d, before %d (err %v): want a new one", after.Incarnation, before.Incarnation, err)
	}
	// kv679: the wiped node's first write must not pass for an old one.
	if _, err := cl.At(2).Put(ctx, []byte("kv679"), []byte("after-wipe"), client.Options{Consistency: "all"}); err != nil {
		t.Fatal(err)
	}
	waitAgreement(t, cl, append(keys, "kv679"), nil, 90*time.Second)
	res, err := cl.At(0).Get(ctx, []byte("kv679"), client.Options{Consistency: "all"})
	if err != nil || !slices.ContainsFunc(res.Values, func(v []byte) bool { return string(v) == "after-wipe" }) {
		t.Fatalf("kv679 = %q (err %v): the wiped node's new write was lost", res.Values, err)
	}
	st, err := cl.At(2).Status(ctx)
	if err != nil || st.AntiEntropy.KeysRepaired < 1000 {
		t.Fatalf("wiped node's anti-entropy %+v (err %v): want its 1,001 keys repaired", st.AntiEntropy, err)
	}
}

// counter sums a Prometheus counter over every running node's /metrics.
func counter(t *testing.T, c *proctest.Cluster, nodes int, name string) int64 {
	t.Helper()
	var sum int64
	for i := range nodes {
		v, err := metric(c, i, name)
		if err != nil {
			t.Fatal(err)
		}
		sum += int64(v)
	}
	return sum
}

// metric reads an unlabelled sample from node i's /metrics; 0 if absent.
func metric(c *proctest.Cluster, i int, name string) (float64, error) {
	resp, err := http.Get(c.URL(i) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, sc.Err()
}

func TestRealProcessesHintsDeliveredOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := proctest.Start(t, proctest.Options{Nodes: 5, Args: aeArgs})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c.Kill(4)
	c.WaitMembers(4, 30*time.Second)
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("h%03d", i))
	}
	each(t, len(keys), func(i int) error {
		_, err := cl.At(i%4).Put(ctx, []byte(keys[i]), fmt.Appendf(nil, "v%d", i), client.Options{Consistency: "quorum"})
		return err
	})
	pending := func() (n int64) {
		for i := range 5 {
			if !c.Running(i) {
				continue
			}
			st, err := cl.At(i).Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += st.HintsPending
		}
		return n
	}
	stored := counter(t, c, 4, "quorumkv_hints_stored_total")
	if stored == 0 || pending() != stored {
		t.Fatalf("hints stored %d, pending %d: want some, all pending, while n5 is down", stored, pending())
	}
	c.Restart(4)
	c.WaitMembers(5, 30*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d hints still pending a minute after n5 came back", pending())
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitAgreement(t, cl, keys, nil, 60*time.Second)
	delivered := counter(t, c, 4, "quorumkv_hints_delivered_total")
	expired := counter(t, c, 4, "quorumkv_hints_expired_total")
	if delivered != stored || expired != 0 {
		t.Fatalf("hints stored %d, delivered %d, expired %d: want each delivered exactly once", stored, delivered, expired)
	}
}
