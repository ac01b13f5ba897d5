package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/quorumkv/quorumkv/bench"
)

// benchSecurityFlags are the client security flags bench and bench
// staleness share.
type benchSecurityFlags struct {
	tokenFile string
	caFile    string
}

func (f *benchSecurityFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.tokenFile, "auth-token-file", "", "file holding the bearer token (or set QUORUMKV_TOKEN)")
	cmd.Flags().StringVar(&f.caFile, "tls-ca", "", "CA certificate to verify https endpoints")
}

func (f *benchSecurityFlags) resolve() (token string, tlsConf *tls.Config, err error) {
	token = os.Getenv("QUORUMKV_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return "", nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", nil, fmt.Errorf("--tls-ca %s: no certificate found", f.caFile)
		}
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return token, tlsConf, nil
}

// progressTarget returns where progress goes (stderr) and whether it is a
// terminal, which earns a progress bar instead of plain lines.
func progressTarget(cmd *cobra.Command, quiet bool) (io.Writer, bool) {
	if quiet {
		return nil, false
	}
	w := cmd.ErrOrStderr()
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w, true
	}
	return w, false
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func benchCmd() *cobra.Command {
	d := bench.DefaultConfig()
	var (
		endpoints, levels, distribution string
		jsonPath, htmlPath, stalePath   string
		withStaleness, quiet            bool
		sec                             benchSecurityFlags
		cfg                             = d
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a cluster with the YCSB core workloads, levels side by side",
		Long: `Load-test a cluster with the YCSB core workloads (a: 50/50 read/update,
b: 95/5 read/update, c: read only, d: read latest with 5% inserts,
e: 95% scans of 1-100 consecutive records with 5% inserts, f: read-modify-write
with contexts). quorumkv hashes keys onto its ring and has no key order, so a
scan of e reads its records one point read after another.

A load phase inserts --records keys first; then each level in --consistency
runs for --duration (or --ops) against the same data, one after the other,
so levels compare side by side. With no --endpoints the bench starts its own
3-node cluster in a temporary directory and removes it afterwards.

Every value carries a per-key sequence number; a read is stale when an
acknowledged write to its key that is newer than every value it returned
finished before the read started. See docs/benchmarks.md.`,
		Example: `  quorumkv bench --workload a --consistency one,quorum,strong --duration 10s --json a.json --html a.html
  quorumkv bench --endpoints http://127.0.0.1:7000,http://127.0.0.1:7001,http://127.0.0.1:7002 --workload b
  quorumkv bench staleness --consistency one,quorum,strong --json staleness.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Endpoints = splitList(endpoints)
			cfg.Levels = bench.ParseLevels(levels)
			cfg.Distribution = bench.Distribution(strings.ToLower(distribution))
			if !cmd.Flags().Changed("duration") && cmd.Flags().Changed("ops") {
				cfg.Duration = 0
			}
			var err error
			if cfg.Token, cfg.TLS, err = sec.resolve(); err != nil {
				return err
			}
			cfg.Progress, cfg.ProgressBar = progressTarget(cmd, quiet)
			cfg.Log = cmd.ErrOrStderr()
			if err := cfg.Validate(); err != nil {
				return err
			}
			var given *bench.StalenessResult
			if stalePath != "" {
				b, err := os.ReadFile(stalePath)
				if err != nil {
					return fmt.Errorf("--staleness-json: %w", err)
				}
				var sr bench.StalenessResult
				if err := json.Unmarshal(b, &sr); err != nil {
					return fmt.Errorf("--staleness-json %s: not a `bench staleness` result: %w", stalePath, err)
				}
				given = &sr
			}
			if withStaleness {
				sc := bench.DefaultStalenessConfig()
				sc.Levels = nil // the run's levels
				sc.Log = cfg.Log
				cfg.Staleness = &sc
			}
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if res.Staleness == nil {
				res.Staleness = given
			}
			return finishBench(cmd, res, jsonPath, htmlPath)
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoints, "endpoints", "", "node URLs, comma separated (absent: start an embedded 3-node cluster)")
	f.StringVar(&cfg.Workload, "workload", d.Workload, "YCSB core workload: a, b, c, d, e or f")
	f.StringVar(&distribution, "distribution", "", "key choice: uniform, zipfian or latest (default: the workload's, zipfian; latest for d)")
	f.IntVar(&cfg.Records, "records", d.Records, "keys inserted by the load phase")
	f.DurationVar(&cfg.Duration, "duration", d.Duration, "how long each level runs")
	f.Int64Var(&cfg.Ops, "ops", 0, "run each level for this many operations instead of --duration")
	f.IntVar(&cfg.Concurrency, "concurrency", d.Concurrency, "workers, each with one request in flight")
	f.IntVar(&cfg.ValueSize, "value-size", d.ValueSize, "bytes per value (at least 8)")
	f.StringVar(&levels, "consistency", strings.Join(d.Levels, ","), "level, or comma list of levels run one after the other: one, quorum, all, strong")
	f.StringVar(&jsonPath, "json", "", "write the results as JSON to this file")
	f.StringVar(&htmlPath, "html", "", "write a self-contained HTML report with charts to this file")
	f.StringVar(&stalePath, "staleness-json", "", "include the result FILE of \"bench staleness --json\" in the report")
	f.BoolVar(&withStaleness, "staleness", false, "also measure t-visibility (as bench staleness does) on the same cluster after the levels")
	f.DurationVar(&cfg.Settle, "settle", d.Settle, "pause after the load and between levels")
	f.Int64Var(&cfg.Seed, "seed", 0, "random seed for keys and the operation mix (0: from the clock)")
	f.DurationVar(&cfg.RequestTimeout, "timeout", d.RequestTimeout, "per-request timeout")
	f.BoolVar(&quiet, "quiet", false, "no progress display")
	sec.register(cmd)
	cmd.AddCommand(benchStalenessCmd())
	return cmd
}

// finishBench prints the summary and writes the files; the summary comes
// first so a failing file write still shows the figures.
func finishBench(cmd *cobra.Command, res bench.Result, jsonPath, htmlPath string) error {
	out := cmd.OutOrStdout()
	if err := res.WriteSummary(out); err != nil {
		return err
	}
	if res.Staleness != nil {
		fmt.Fprintln(out)
		if err := res.Staleness.WriteSummary(out); err != nil {
			return err
		}
	}
	if jsonPath != "" {
		if err := res.WriteJSON(jsonPath); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", jsonPath)
	}
	if htmlPath != "" {
		if err := bench.WriteHTML(htmlPath, res); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", htmlPath)
	}
	if res.Interrupted {
		return exitError{code: 130, err: fmt.Errorf("interrupted; results above cover what ran")}
	}
	return nil
}

func benchStalenessCmd() *cobra.Command {
	d := bench.DefaultStalenessConfig()
	var (
		endpoints, levels, delays string
		jsonPath, htmlPath        string
		quiet                     bool
		sec                       benchSecurityFlags
		cfg                       = d
	)
	delayStrings := make([]string, len(d.Delays))
	for i, x := range d.Delays {
		delayStrings[i] = strconv.FormatInt(x.Milliseconds(), 10)
	}
	cmd := &cobra.Command{
		Use:   "staleness",
		Short: "Measure t-visibility: the chance a read t ms after a write's acknowledgement sees it, per level",
		Long: `Measure t-visibility per level: each trial overwrites a key through one node,
waits t after the acknowledgement, then reads it through another node; a read
is fresh when it sees that write or a newer one. Writes are made at the level
under test (--write-consistency to choose another); strong is always written
at strong. With no --endpoints an embedded 3-node cluster is started.`,
		Example: `  quorumkv bench staleness --consistency one,quorum,strong --json staleness.json
  quorumkv bench staleness --endpoints http://127.0.0.1:7000,http://127.0.0.1:7001 --delays 0,1,5,20 --trials 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Endpoints = splitList(endpoints)
			cfg.Levels = bench.ParseLevels(levels)
			cfg.Delays = nil
			for _, s := range splitList(delays) {
				dd, err := parseDelay(s)
				if err != nil {
					return fmt.Errorf("--delays %q: %w", s, err)
				}
				cfg.Delays = append(cfg.Delays, dd)
			}
			var err error
			if cfg.Token, cfg.TLS, err = sec.resolve(); err != nil {
				return err
			}
			cfg.Progress, cfg.ProgressBar = progressTarget(cmd, quiet)
			cfg.Log = cmd.ErrOrStderr()
			res, err := bench.RunStaleness(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := res.WriteSummary(cmd.OutOrStdout()); err != nil {
				return err
			}
			if jsonPath != "" {
				if err := res.WriteJSON(jsonPath); err != nil {
					return fmt.Errorf("--json: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", jsonPath)
			}
			if htmlPath != "" {
				if err := bench.WriteHTML(htmlPath, bench.Result{Staleness: &res, Levels: []bench.LevelResult{}}); err != nil {
					return fmt.Errorf("--html: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", htmlPath)
			}
			if res.Interrupted {
				return exitError{code: 130, err: fmt.Errorf("interrupted; results above cover what ran")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoints, "endpoints", "", "node URLs, comma separated (absent: start an embedded 3-node cluster)")
	f.StringVar(&levels, "consistency", strings.Join(d.Levels, ","), "levels to measure, comma separated")
	f.StringVar(&cfg.WriteLevel, "write-consistency", "", "level of the writes (default: the level under test; strong always writes at strong)")
	f.StringVar(&delays, "delays", strings.Join(delayStrings, ","), "delays t after the acknowledgement, in ms (or with a unit: 500us, 1s), comma separated")
	f.IntVar(&cfg.Trials, "trials", d.Trials, "reads per level and delay")
	f.IntVar(&cfg.Concurrency, "concurrency", d.Concurrency, "trials in flight")
	f.IntVar(&cfg.ValueSize, "value-size", d.ValueSize, "bytes per value (at least 8)")
	f.Int64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock)")
	f.DurationVar(&cfg.RequestTimeout, "timeout", d.RequestTimeout, "per-request timeout")
	f.StringVar(&jsonPath, "json", "", "write the results as JSON to this file")
	f.StringVar(&htmlPath, "html", "", "write a self-contained HTML report of the curve to this file")
	f.BoolVar(&quiet, "quiet", false, "no progress display")
	sec.register(cmd)
	return cmd
}

// parseDelay reads "5" as 5ms, or a Go duration ("500us", "1s").
func parseDelay(s string) (time.Duration, error) {
	if ms, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(ms * float64(time.Millisecond)), nil
	}
	return time.ParseDuration(s)
}
