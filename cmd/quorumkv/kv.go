package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quorumkv/quorumkv/client"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	endpoint    string
	consistency string
	r, w        int
	context     string
	tokenFile   string
	caFile      string
	flags       *pflag.FlagSet // to tell --r 0 from no --r
}

func (f *clientFlags) register(cmd *cobra.Command, levels bool) {
	f.flags = cmd.Flags()
	cmd.Flags().StringVar(&f.endpoint, "endpoint", "http://127.0.0.1:7000", "URL of the node to talk to")
	cmd.Flags().StringVar(&f.tokenFile, "auth-token-file", "", "file holding the bearer token (or set QUORUMKV_TOKEN)")
	cmd.Flags().StringVar(&f.caFile, "tls-ca", "", "CA certificate to verify an https endpoint")
	if levels {
		cmd.Flags().StringVar(&f.consistency, "consistency", "", "one, quorum, all or strong (default quorum)")
		cmd.Flags().IntVar(&f.r, "r", 0, "read quorum: replicas that must answer a read (1..N)")
		cmd.Flags().IntVar(&f.w, "w", 0, "write quorum: replicas that must acknowledge a write (1..N)")
	}
}

func (f *clientFlags) client() (*client.Client, error) {
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{f.endpoint}
	cfg.Token = os.Getenv("QUORUMKV_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, err
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no certificate found", f.caFile)
		}
		cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return client.New(cfg)
}

// clientAndOptions builds the client and the request options together, as
// every key-value verb needs both.
func (f *clientFlags) clientAndOptions() (*client.Client, client.Options, error) {
	o, err := f.options()
	if err != nil {
		return nil, o, err
	}
	c, err := f.client()
	return c, o, err
}

func (f *clientFlags) options() (client.Options, error) {
	for name, v := range map[string]int{"r": f.r, "w": f.w} {
		if f.flags != nil && f.flags.Changed(name) && v < 1 {
			return client.Options{}, fmt.Errorf("--%s %d: must be a number of replicas from 1 to N", name, v)
		}
	}
	if f.consistency != "" && (f.r != 0 || f.w != 0) {
		return client.Options{}, errors.New("give either --consistency or --r/--w, not both")
	}
	return client.Options{Consistency: f.consistency, R: f.r, W: f.w, Context: f.context}, nil
}

func printReceipt(w io.Writer, rc client.Receipt, read bool) {
	fmt.Fprintf(w, "replicas=%d acks=%d fallbacks=%d", rc.Replicas, rc.Acks, rc.Fallbacks)
	if read {
		fmt.Fprintf(w, " read-repair=%d", rc.ReadRepair)
	}
	fmt.Fprintln(w)
}

// exactArgs is cobra.ExactArgs with the command's usage line in its error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return fmt.Errorf("%w; usage: %s", err, cmd.UseLine())
		}
		return nil
	}
}

// unreachable rewrites a client command's failure to connect to the node
// at --endpoint (the HTTP client's error, as returned) as a sentence that
// says what to check; other errors, and errors a command already explained
// by wrapping them, pass unchanged.
func unreachable(err error) error {
	ue, ok := err.(*url.Error)
	var oe *net.OpError
	if !ok || !errors.As(err, &oe) || oe.Op != "dial" {
		return err
	}
	node := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil {
		node = u.Scheme + "://" + u.Host
	}
	return fmt.Errorf("no node answers at %s (%v); is it running, and does --endpoint name it?", node, oe.Err)
}

func addClientCommands(root *cobra.Command) {
	root.AddCommand(getCmd(), putCmd(), deleteCmd(), statusCmd(), explainCmd(), leaveCmd())
}

func getCmd() *cobra.Command {
	var f clientFlags
	var verbose bool
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Read a key; prints every sibling on its own line and the context on stderr",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, o, err := f.clientAndOptions()
			if err != nil {
				return err
			}
			res, err := c.Get(cmd.Context(), []byte(args[0]), o)
			if err != nil {
				return err
			}
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			for _, v := range res.Values {
				out.Write(v)
				fmt.Fprintln(out)
			}
			if res.Context != "" {
				fmt.Fprintf(errw, "context: %s\n", res.Context)
			}
			if len(res.Values) > 1 {
				fmt.Fprintf(errw, "%d siblings: write with --context to resolve them\n", len(res.Values))
			}
			if verbose {
				printReceipt(errw, res.Receipt, true)
			}
			if !res.Found {
				return exitError{code: 1, err: fmt.Errorf("key %q not found", args[0])}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the consistency receipt")
	return cmd
}

func putCmd() *cobra.Command {
	var f clientFlags
	var verbose bool
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Write a key (VALUE - reads standard input)",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, o, err := f.clientAndOptions()
			if err != nil {
				return err
			}
			value := []byte(args[1])
			if args[1] == "-" {
				if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			res, err := c.Put(cmd.Context(), []byte(args[0]), value, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "context: %s\n", res.Context)
			if verbose {
				printReceipt(cmd.ErrOrStderr(), res.Receipt, false)
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&f.context, "context", "", "context from an earlier get: the write replaces exactly what that read saw")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the consistency receipt")
	return cmd
}

func deleteCmd() *cobra.Command {
	var f clientFlags
	var verbose bool
	cmd := &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a key (writes a tombstone)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, o, err := f.clientAndOptions()
			if err != nil {
				return err
			}
			res, err := c.Delete(cmd.Context(), []byte(args[0]), o)
			if err != nil {
				return err
			}
			if verbose {
				printReceipt(cmd.ErrOrStderr(), res.Receipt, false)
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&f.context, "context", "", "context from an earlier get")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the consistency receipt")
	return cmd
}

func statusCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	var planJoin, planLeave string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster as the node at --endpoint sees it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if planJoin != "" || planLeave != "" {
				return printPlan(out, st, planJoin, planLeave)
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			cluster := ""
			if st.Cluster != "" {
				cluster = "cluster " + st.Cluster + "  "
			}
			fmt.Fprintf(out, "%snode %s  N=%d  ring=%d partitions  keys=%d  hints pending=%d  version %s\n\n", cluster, st.ID, st.Replicas, st.RingSize, st.Keys, st.HintsPending, st.Version)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tSTATE\tPARTITIONS\tSHARE\tHTTP\tZONE\tVERSION")
			members := st.Members
			sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
			total := st.RingSize * st.Replicas
			for _, m := range members {
				share := 0.0
				if total > 0 {
					share = 100 * float64(m.Partitions) / float64(total)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\t%s\t%s\t%s\n", m.ID, m.State, m.Partitions, share, m.HTTP, m.Zone, m.Version)
			}
			tw.Flush()
			if len(st.Refused) > 0 {
				fmt.Fprintln(out, "\nrefused (running, but not let into the cluster):")
				ids := slices.Sorted(maps.Keys(st.Refused))
				for _, id := range ids {
					fmt.Fprintf(out, "  %s: %s\n", id, st.Refused[id])
				}
			}
			if len(st.Transfers) > 0 {
				fmt.Fprintln(out, "\ntransfers:")
				for _, t := range st.Transfers {
					fmt.Fprintf(out, "  partition %d %s -> %s: %d keys, %d bytes, %.0f keys/s, eta %.0fs\n", t.Partition, t.From, t.To, t.Keys, t.Bytes, t.KeysPerSec, t.ETASeconds)
				}
			}
			ae := st.AntiEntropy
			fmt.Fprintf(out, "\nanti-entropy: every %s, %d rounds, %d exchanges, %d keys repaired, %d bytes sent\n", ae.Interval, ae.Rounds, ae.Exchanges, ae.KeysRepaired, ae.BytesSent)
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	cmd.Flags().StringVar(&planJoin, "plan-join", "", "show what adding node ID[@ZONE] would move, without doing it")
	cmd.Flags().StringVar(&planLeave, "plan-leave", "", "show what node ID leaving would move, without doing it")
	return cmd
}

func explainCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "explain KEY",
		Short: "Show a key's partition, preference list and what each replica holds now",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ex, err := c.Explain(cmd.Context(), []byte(args[0]))
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(ex)
		},
	}
	f.register(cmd, false)
	return cmd
}

func leaveCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Make the node at --endpoint hand its data to the new owners, leave the cluster and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.Leave(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "leaving: the node hands off its partitions, then exits")
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}
