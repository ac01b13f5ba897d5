// Command quorumkv is the quorumkv daemon, its local dev cluster, its
// command-line client and its bench tool.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/quorumkv/quorumkv/node"
	"github.com/spf13/cobra"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first SIGINT or SIGTERM asks the command to stop cleanly. Once it
	// has, the signals get their default action back, so a second one ends
	// the process at once: the way out of a shutdown that cannot finish (a
	// store that cannot flush its memtable retries forever). For a server
	// that is a kill -9, which loses no acknowledged write.
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := rootCmd()
	root.SetContext(ctx)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "quorumkv:", unreachable(err))
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "quorumkv",
		Short:         "A leaderless, quorum-replicated key-value store",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       node.Version(),
	}
	root.SetVersionTemplate("quorumkv {{.Version}}\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the build this binary is",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "quorumkv %s (%s %s/%s)\n", node.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	})
	root.AddCommand(serverCmd(), devCmd())
	root.AddCommand(benchCmd())
	root.AddCommand(predictCmd())
	addClientCommands(root)
	return root
}
