// Command httpload drives one HTTP key-value API with a fixed number of
// workers, each with one request in flight, for a fixed time, and prints one
// line: target, op, ops/s, p50/p99 in ms, errors. The same driver for etcd's
// JSON gateway and quorumkv's HTTP API, so the comparison in compare.sh does
// not measure two different clients.
//
//	httpload -target etcd -op put -endpoints http://127.0.0.1:23790,... -c 64 -d 10s
//	httpload -target quorumkv -op get -consistency strong -endpoints http://127.0.0.1:28000,...
//
// Keys are "k" + a uniform random number below -keys; values -size bytes.
// Workers are spread round-robin over the endpoints. Run -op put before -op
// get so reads find values.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	target := flag.String("target", "quorumkv", "quorumkv or etcd")
	op := flag.String("op", "put", "put or get")
	endpoints := flag.String("endpoints", "http://127.0.0.1:7000", "comma-separated base URLs")
	conc := flag.Int("c", 64, "workers, each with one request in flight")
	dur := flag.Duration("d", 10*time.Second, "how long to run")
	size := flag.Int("size", 100, "value bytes")
	keys := flag.Int("keys", 100000, "key space (uniform)")
	cons := flag.String("consistency", "quorum", "quorumkv consistency level")
	label := flag.String("label", "", "label printed in the first column (default target)")
	prefix := flag.String("prefix", "k", "key prefix: keys are PREFIX0..PREFIX(keys-1)")
	flag.Parse()
	if *label == "" {
		*label = *target
	}
	eps := strings.Split(*endpoints, ",")
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	value := bytes.Repeat([]byte("v"), *size)

	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		last string
	)
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conc {
		base := eps[w%len(eps)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var mine []time.Duration
			bad := 0
			var lastErr string
			for time.Now().Before(deadline) {
				key := fmt.Sprintf("%s%d", *prefix, rng.IntN(*keys))
				t0 := time.Now()
				err := do(cl, *target, *op, base, key, value, *cons)
				if err != nil {
					bad++
					lastErr = err.Error()
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			errs += bad
			if lastErr != "" {
				last = lastErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(p*float64(len(lats)-1))].Microseconds()) / 1000
	}
	fmt.Printf("%-24s %-4s %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d\n",
		*label, *op, float64(len(lats))/elapsed.Seconds(), pct(0.50), pct(0.99), errs)
	if last != "" {
		fmt.Fprintf(os.Stderr, "httpload: last error: %s\n", last)
	}
}

// do sends one request and reads its whole answer.
func do(cl *http.Client, target, op, base, key string, value []byte, cons string) error {
	var req *http.Request
	var err error
	switch target + "/" + op {
	case "etcd/put":
		body, _ := json.Marshal(map[string]string{
			"key":   base64.StdEncoding.EncodeToString([]byte(key)),
			"value": base64.StdEncoding.EncodeToString(value),
		})
		req, err = http.NewRequest(http.MethodPost, base+"/v3/kv/put", bytes.NewReader(body))
	case "etcd/get":
		// Linearizable range (etcd's default): a read index round through the leader.
		body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
		req, err = http.NewRequest(http.MethodPost, base+"/v3/kv/range", bytes.NewReader(body))
	case "quorumkv/put":
		req, err = http.NewRequest(http.MethodPut, base+"/v1/kv/"+url.PathEscape(key)+"?consistency="+cons, bytes.NewReader(value))
	case "quorumkv/get":
		req, err = http.NewRequest(http.MethodGet, base+"/v1/kv/"+url.PathEscape(key)+"?consistency="+cons, nil)
	default:
		return fmt.Errorf("unknown target/op %s/%s", target, op)
	}
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode < 300, resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusMultipleChoices:
		return nil
	default:
		return fmt.Errorf("%s: %.200s", resp.Status, b)
	}
}
