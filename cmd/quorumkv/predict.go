package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/predict"
)

func predictCmd() *cobra.Command {
	d := predict.DefaultConfig()
	var (
		endpoints string
		ts        string
		n, r, w   int
		asJSON    bool
		sec       benchSecurityFlags
		cfg       = d
	)
	tStrings := make([]string, len(d.T))
	for i, t := range d.T {
		tStrings[i] = strconv.FormatFloat(t, 'f', -1, 64)
	}
	cmd := &cobra.Command{
		Use:   "predict",
		Short: "Predict t-visibility (PBS) from the replica latencies the nodes measured",
		Long: `Predict how stale reads are for a read quorum R and write quorum W, without
running a staleness benchmark: Probabilistically Bounded Staleness (Bailis et
al., VLDB 2012). Every node samples the four delays of the WARS model on its
replica messages (W: a write reaching a replica, A: its ack coming back, R: a
read reaching a replica, S: its answer coming back) and serves them at
/v1/pbs. This command pools the samples of the given nodes and simulates
writes and reads drawn from them (Monte Carlo), printing for each t the chance
that a read started t ms after a write's acknowledgement returns it.

The nodes must have served some replicated traffic first (a bench run, say).
The model knows only message delays: it ignores the coordinator's own replica
(which answers at once) and read repair, so for reads coordinated by a
replica of the key it errs towards stale.`,
		Example: `  quorumkv predict --endpoint http://127.0.0.1:7000,http://127.0.0.1:7001,http://127.0.0.1:7002 --r 1 --w 1
  quorumkv predict --endpoint http://127.0.0.1:7000 --r 1 --w 2 --t 0,0.5,1,5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			urls := splitList(endpoints)
			if len(urls) == 0 {
				return fmt.Errorf("--endpoint: give at least one node URL")
			}
			cfg.T = nil
			for _, s := range splitList(ts) {
				t, err := strconv.ParseFloat(strings.TrimSuffix(s, "ms"), 64)
				if err != nil {
					return fmt.Errorf("--t %q: not a number of milliseconds", s)
				}
				cfg.T = append(cfg.T, t)
			}
			token, tlsConf, err := sec.resolve()
			if err != nil {
				return err
			}
			ccfg := client.DefaultConfig()
			ccfg.Endpoints, ccfg.Token, ccfg.TLS, ccfg.Timeout = urls, token, tlsConf, 10*time.Second
			cl, err := client.New(ccfg)
			if err != nil {
				return fmt.Errorf("--endpoint: %w", err)
			}
			defer cl.Close()
			ctx := cmd.Context()
			if n == 0 {
				st, err := cl.Status(ctx)
				if err != nil {
					return fmt.Errorf("reading N from %s (or give --n): %w", urls[0], err)
				}
				n = st.Replicas
			}
			cfg.N, cfg.R, cfg.W = n, r, w
			if cfg.R == 0 {
				cfg.R = n/2 + 1
			}
			if cfg.W == 0 {
				cfg.W = n/2 + 1
			}
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
			defer hc.CloseIdleConnections()
			var pooled predict.Samples
			for _, u := range urls {
				s, err := fetchSamples(ctx, hc, u, token)
				if err != nil {
					return err
				}
				pooled = pooled.Merge(s)
			}
			p, err := predict.Predict(pooled, cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			return writePrediction(out, p, len(urls))
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoints, "endpoint", "http://127.0.0.1:7000", "node URLs whose samples to pool, comma separated")
	f.IntVar(&n, "n", 0, "replication factor N (default: the cluster's, from /v1/status)")
	f.IntVar(&r, "r", 0, "read quorum R, 1..N (default: a majority of N)")
	f.IntVar(&w, "w", 0, "write quorum W, 1..N (default: a majority of N)")
	f.StringVar(&ts, "t", strings.Join(tStrings, ","), "delays t after the write's acknowledgement, in ms, comma separated")
	f.IntVar(&cfg.Trials, "trials", d.Trials, "simulated write-read pairs")
	f.Uint64Var(&cfg.Seed, "seed", d.Seed, "random seed of the simulation")
	f.BoolVar(&asJSON, "json", false, `print JSON ({"n","r","w","points":[{"t_ms","fresh"}…],…}) instead of a table`)
	sec.register(cmd)
	return cmd
}

// fetchSamples reads one node's WARS samples from GET /v1/pbs.
func fetchSamples(ctx context.Context, hc *http.Client, base, token string) (predict.Samples, error) {
	var s predict.Samples
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := strings.TrimSuffix(base, "/") + "/v1/pbs"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return s, fmt.Errorf("--endpoint %s: %w", base, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("fetching latency samples: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return s, fmt.Errorf("fetching latency samples from %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("latency samples from %s: %w", u, err)
	}
	return s, nil
}

func writePrediction(out io.Writer, p predict.Prediction, nodes int) error {
	fmt.Fprintf(out, "PBS prediction for N=%d R=%d W=%d: %d trials over samples pooled from %d node(s) (W %d, A %d, R %d, S %d)\n",
		p.N, p.R, p.W, p.Trials, nodes, p.Samples["w"], p.Samples["a"], p.Samples["r"], p.Samples["s"])
	if p.R+p.W > p.N {
		fmt.Fprintln(out, "R+W > N: every read quorum overlaps every write quorum, so every read is fresh in this model")
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t (ms)\tP(fresh)\t")
	for _, pt := range p.Points {
		fmt.Fprintf(tw, "%s\t%.4f\t\n", strconv.FormatFloat(pt.T, 'f', -1, 64), pt.Fresh)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "fresh for 99%% of reads from t = %.3f ms, for 99.9%% from t = %.3f ms\n", p.T99, p.T999)
	fmt.Fprintf(out, "replica phase latency: write p50 %.3f ms, p99 %.3f ms; read p50 %.3f ms, p99 %.3f ms\n",
		p.WriteP50, p.WriteP99, p.ReadP50, p.ReadP99)
	return nil
}
