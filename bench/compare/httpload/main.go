// Command httpload drives one HTTP key-value API with a fixed number of
// workers, each with one request in flight, for a fixed time, and prints one
// line: target, op, ops/s, p50/p99 in ms, errors (the loop is
// bench/compare/loadgen, shared with etcdgrpc). The same driver for etcd's
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
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/bench/compare/loadgen"
)

func main() {
	target := flag.String("target", "quorumkv", "quorumkv or etcd")
	cfg := loadgen.Flags("http://127.0.0.1:7000")
	flag.Parse()
	if cfg.Label == "" {
		cfg.Label = *target
	}
	eps := strings.Split(cfg.Endpoints, ",")
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Workers, MaxConnsPerHost: cfg.Workers}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	value := bytes.Repeat([]byte("v"), cfg.ValueSize)
	// Workers are spread round-robin over the endpoints.
	loadgen.Run(cfg, func(w int, key string) error {
		return do(cl, *target, cfg.Op, eps[w%len(eps)], key, value, cfg.Consistency)
	})
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
