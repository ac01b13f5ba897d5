package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/quorumkv/quorumkv/node"
)

func devCmd() *cobra.Command {
	var (
		nodes    int
		dir      string
		basePort int
		replicas int
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster on loopback in one process",
		Long: `Run a local cluster on loopback in one process, data in a fresh temporary
directory (or --dir). Node i serves HTTP on base-port+i, RPC on base-port+100+i,
gossip on base-port+200+i and the Redis protocol on base-port+300+i. Ctrl-C
stops it cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 100 {
				return fmt.Errorf("--nodes %d: between 1 and 100 (each kind of port gets a block of 100)", nodes)
			}
			if basePort < 1 || basePort+300+nodes > 65535 {
				return fmt.Errorf("--base-port %d: ports base..base+300+nodes must fit below 65536", basePort)
			}
			logger, err := newLogger(logLevel, "text")
			if err != nil {
				return err
			}
			root := dir
			if root == "" {
				if root, err = os.MkdirTemp("", "quorumkv-dev-"); err != nil {
					return err
				}
				defer os.RemoveAll(root)
			}
			var running []*node.Node
			defer func() {
				for _, n := range running {
					n.Close()
				}
			}()
			seed := ""
			for i := 0; i < nodes; i++ {
				cfg := node.DefaultConfig()
				cfg.ID = "n" + strconv.Itoa(i+1)
				cfg.DataDir = filepath.Join(root, cfg.ID)
				cfg.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+i))
				cfg.RPCAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+100+i))
				cfg.GossipAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+200+i))
				cfg.RESPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+300+i))
				cfg.Replicas = replicas
				cfg.FastGossip = true
				cfg.Logger = logger
				if seed != "" {
					cfg.Join = []string{seed}
				} else {
					seed = cfg.GossipAddr
				}
				n, err := node.New(cfg, node.Deps{})
				if err != nil {
					return fmt.Errorf("node %s: %w", cfg.ID, err)
				}
				running = append(running, n)
				fmt.Printf("%s  http://%s  (rpc %s, gossip %s, resp %s)\n", cfg.ID, cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr, cfg.RESPAddr)
			}
			fmt.Printf("data in %s; %d nodes, N=%d. Try:\n  curl -X PUT --data hello http://127.0.0.1:%d/v1/kv/greeting\n  curl http://127.0.0.1:%d/v1/kv/greeting\n  redis-cli -p %d get greeting\nCtrl-C to stop.\n",
				root, nodes, replicas, basePort, basePort+min(1, nodes-1), basePort+300)
			<-cmd.Context().Done()
			fmt.Println("stopping")
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "number of nodes, 1 to 100")
	f.StringVar(&dir, "dir", "", "keep data in this directory instead of a temporary one")
	f.IntVar(&basePort, "base-port", 7000, "node i serves HTTP on base-port+i")
	f.IntVar(&replicas, "replicas", 3, "replication factor N")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}
