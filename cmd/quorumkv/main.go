// Command quorumkv is the quorumkv daemon, its local dev cluster, its
// command-line client and its bench tool.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

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
		fmt.Fprintln(os.Stderr, "quorumkv:", err)
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
	}
	root.AddCommand(serverCmd(), devCmd())
	root.AddCommand(benchCmd())
	root.AddCommand(predictCmd())
	addClientCommands(root)
	return root
}
