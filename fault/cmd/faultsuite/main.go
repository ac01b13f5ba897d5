// Command faultsuite runs quorumkv's multi-host fault suite against a
// cluster of containers (see package fault and docs/reliability.md).
//
//	make fault                  # the full suite
//	FAULT_QUICK=1 make fault    # the short one CI runs
//	faultsuite -cleanup         # remove what an interrupted run left
//
// It exits 0 when every run gave its expected verdict (ok, or, for a
// negative control, anything but ok), 1 when one did not, and 2 when the
// suite could not run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/fault"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		image   = flag.String("image", "quorumkv-fault:latest", "node image (make image builds it)")
		results = flag.String("results", "fault-results.json", "where to write the results")
		outDir  = flag.String("out", "fault-out", "where to keep histories, visualizations and logs of failed checks")
		quick   = flag.Bool("quick", quickFromEnv(), "run the short suite (default from FAULT_QUICK)")
		seed    = flag.Int64("seed", time.Now().UnixNano(), "seed of the nemesis' and clients' choices")
		only    = flag.String("only", "", "run only the specs whose name (workload-variant-nemesis) contains one of these comma-separated words")
		cleanup = flag.Bool("cleanup", false, "remove every container, volume and network of the suite, then exit")
		table   = flag.String("markdown", "", "print the results file given here as a Markdown table (for docs/reliability.md), then exit")
	)
	flag.Parse()

	if *table != "" {
		b, err := os.ReadFile(*table)
		var res fault.Results
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "faultsuite:", err)
			return 2
		}
		fault.PrintMarkdown(os.Stdout, res)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *cleanup {
		if err := fault.Cleanup(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		return 0
	}

	specs := fault.FullPlan()
	if *quick {
		specs = fault.QuickPlan()
	}
	if *only != "" {
		var kept []fault.Spec
		for _, s := range specs {
			for _, w := range strings.Split(*only, ",") {
				if w != "" && strings.Contains(s.Name(), w) {
					kept = append(kept, s)
					break
				}
			}
		}
		specs = kept
	}
	if len(specs) == 0 {
		fmt.Fprintln(os.Stderr, "faultsuite: no run matches -only")
		return 2
	}

	cc := fault.DefaultClusterConfig()
	cc.Image = *image
	suite := fault.NewSuite(fault.SuiteConfig{
		Cluster:     cc,
		OutDir:      *outDir,
		ResultsPath: *results,
		Quick:       *quick,
		Seed:        *seed,
		Out:         os.Stdout,
	})
	mode := "full"
	if *quick {
		mode = "quick"
	}
	fmt.Printf("quorumkv fault suite (%s, %d runs, seed %d)\n", mode, len(specs), *seed)
	start := time.Now()
	res, err := suite.Run(ctx, specs)
	fmt.Println()
	fault.PrintTable(os.Stdout, res)
	fmt.Printf("\n%d runs in %s; results in %s\n", len(res.Runs), time.Since(start).Round(time.Second), *results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultsuite:", err)
		return 2
	}
	if !res.AllExpected() {
		fmt.Fprintf(os.Stderr, "faultsuite: some runs did not give their expected verdict; histories in %s\n", *outDir)
		return 1
	}
	return 0
}

func quickFromEnv() bool {
	v := os.Getenv("FAULT_QUICK")
	return v != "" && v != "0" && v != "false"
}
