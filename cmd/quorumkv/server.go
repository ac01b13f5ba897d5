package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quorumkv/quorumkv/node"
)

// defaultMemoryLimit is the Go heap's soft limit unless GOMEMLIMIT is set.
// Badger's caches and memtables and the store's object cache
// (store.DefaultConfig: 3×16 MiB memtables, 8 MiB index cache, 16 MiB
// object cache, no block cache) live in the Go heap, so this bounds them too.
// Badger's table files and memtable logs are mapped, not in the heap; the
// store hands their pages back to the page cache every 100 ms (store/trim.go),
// so they add only what was touched since (docs/benchmarks.md, Memory).
const defaultMemoryLimit = 160 << 20

// memoryLimit is the soft heap limit of a node whose object cache is
// cacheBytes: the default, raised by whatever the cache is set above its
// own default, so that a bigger cache buys hits and not a busier GC.
func memoryLimit(cacheBytes int64) int64 {
	return defaultMemoryLimit + max(0, cacheBytes-node.DefaultConfig().CacheBytes)
}

func serverCmd() *cobra.Command {
	var (
		flags     = node.DefaultConfig()
		cfgFile   string
		syncMode  string
		gossipPro string
		logLevel  string
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one quorumkv node",
		Long: `Run one quorumkv node. Every flag can also be set in a TOML file given with
--config, using the flag's name as the key (for example: replicas = 3,
join = ["127.0.0.1:7946"], anti-entropy-interval = "1m"). Flags win over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := node.DefaultConfig()
			if cfgFile != "" {
				extra, err := loadConfigFile(cfgFile, &cfg)
				if err != nil {
					return err
				}
				// Settings that are not node.Config fields: the file sets
				// them unless the flag was given.
				for name, dst := range map[string]*string{"sync": &syncMode, "gossip-profile": &gossipPro, "log-level": &logLevel, "log-format": &logFormat} {
					if v := extra[name]; v != "" && !cmd.Flags().Changed(name) {
						*dst = v
					}
				}
			}
			var problems []error
			cmd.Flags().Visit(func(f *pflag.Flag) {
				if err := copyFlag(f.Name, &cfg, &flags); err != nil {
					problems = append(problems, err)
				}
			})
			switch syncMode {
			case "never":
				cfg.Sync = false
			case "always":
				cfg.Sync = true
			default:
				problems = append(problems, fmt.Errorf("--sync %q: use never or always", syncMode))
			}
			switch gossipPro {
			case "lan":
				cfg.FastGossip = false
			case "local":
				cfg.FastGossip = true
			default:
				problems = append(problems, fmt.Errorf("--gossip-profile %q: use lan or local", gossipPro))
			}
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				problems = append(problems, err)
			}
			if err := cfg.Validate(); err != nil {
				problems = append(problems, err)
			}
			if err := errors.Join(problems...); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			cfg.Logger = logger
			// A soft heap limit keeps a node under its memory budget
			// (256 MiB RSS with a million small keys, docs/benchmarks.md):
			// near the limit the GC runs more often instead of letting the
			// heap double. GOMEMLIMIT in the environment wins.
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(memoryLimit(cfg.CacheBytes))
			}
			n, err := node.New(cfg, node.Deps{})
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "quorumkv node %s serving %s (rpc %s, gossip %s)\n", cfg.ID, n.URL(), n.RPCAddr(), n.GossipAddr())
			go shareHostCores(cmd.Context(), n.HostPeers, logger)
			// SIGHUP reloads the TLS files; SIGTERM and SIGINT (main's
			// context) shut down gracefully without leaving the ring.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
		wait:
			for {
				select {
				case <-hup:
					if err := n.ReloadTLS(); errors.Is(err, node.ErrNoTLS) {
						logger.Info("SIGHUP: nothing to reload", "reason", err)
					} else if err != nil {
						logger.Error("SIGHUP", "err", err)
					}
				case <-cmd.Context().Done():
					logger.Info("shutting down: finishing requests in flight, then closing the store (the node keeps its partitions); a second SIGTERM or SIGINT exits at once")
					break wait
				case <-n.Done():
					break wait
				}
			}
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "TOML file with any of these flags (flags win)")
	f.StringVar(&flags.ID, "id", flags.ID, "node name, unique in the cluster")
	f.StringVar(&flags.DataDir, "data", "", "badger data directory (required)")
	f.StringVar(&flags.HTTPAddr, "http", flags.HTTPAddr, "client HTTP API address")
	f.StringVar(&flags.RPCAddr, "rpc", flags.RPCAddr, "node-to-node RPC address")
	f.StringVar(&flags.GossipAddr, "gossip", flags.GossipAddr, "memberlist bind address")
	f.StringSliceVar(&flags.Join, "join", nil, "gossip addresses of existing members (absent: start a new cluster, or rejoin the one this data directory was in)")
	f.IntVar(&flags.Replicas, "replicas", flags.Replicas, "replication factor N (cluster-wide)")
	f.IntVar(&flags.Partitions, "partitions", flags.Partitions, "ring size (cluster-wide)")
	f.StringVar(&flags.Zone, "zone", "", "failure-domain label; replicas spread over zones")
	f.StringVar(&flags.ClusterName, "cluster-name", "", "the cluster's name (cluster-wide): nodes join only members of the same name")
	f.DurationVar(&flags.AntiEntropyInterval, "anti-entropy-interval", flags.AntiEntropyInterval, "how often each partition is compared with its replicas")
	f.StringVar(&flags.RESPAddr, "resp", "", "also serve the Redis protocol on this address")
	f.StringVar(&flags.TLSCert, "tls-cert", "", "TLS certificate (HTTPS for clients, mutual TLS between nodes)")
	f.StringVar(&flags.TLSKey, "tls-key", "", "TLS private key")
	f.StringVar(&flags.TLSCA, "tls-ca", "", "CA certificate that signs node and client certificates")
	f.StringVar(&flags.AuthTokenFile, "auth-token-file", "", "file holding the bearer token clients must send")
	f.StringVar(&flags.GossipKey, "gossip-key", "", "base64 gossip encryption key (16, 24 or 32 bytes)")
	f.Int64Var(&flags.MaxValueBytes, "max-value-bytes", flags.MaxValueBytes, "largest value accepted")
	f.Int64Var(&flags.CacheBytes, "cache-bytes", flags.CacheBytes, "bytes of recently used objects kept in memory in front of badger (0: off)")
	f.IntVar(&flags.MaxConnections, "max-connections", flags.MaxConnections, "most client connections held at once (0: no limit)")
	f.BoolVar(&flags.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on the HTTP listener")
	f.DurationVar(&flags.RequestTimeout, "request-timeout", flags.RequestTimeout, "deadline of every request")
	f.DurationVar(&flags.HintWindow, "hint-window", flags.HintWindow, "how long hints are kept before anti-entropy takes over")
	f.DurationVar(&flags.TombstoneGrace, "tombstone-grace", flags.TombstoneGrace, "how long a tombstone held by every replica is kept before it is purged (must exceed --hint-window)")
	f.IntVar(&flags.AntiEntropyKeysPerSec, "anti-entropy-keys-per-sec", flags.AntiEntropyKeysPerSec, "objects anti-entropy may move per second (0: unlimited)")
	f.Int64Var(&flags.AntiEntropyBytesPerSec, "anti-entropy-bytes-per-sec", flags.AntiEntropyBytesPerSec, "bytes anti-entropy may send per second (0: unlimited)")
	f.DurationVar(&flags.DeadTimeout, "dead-timeout", flags.DeadTimeout, "how long a dead member keeps its partitions")
	f.StringVar(&syncMode, "sync", "never", "never: acknowledge writes once in the OS page cache (survives kill -9); always: after fsync (grouped)")
	f.StringVar(&gossipPro, "gossip-profile", "lan", "failure-detection timing: lan (memberlist's LAN defaults, ~5s to suspect a node) or local (one machine: ~1s)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// copyFlag copies the Config field whose toml name is flag from src to dst.
func copyFlag(flag string, dst, src *node.Config) error {
	switch flag {
	case "config", "sync", "log-level", "log-format", "gossip-profile":
		return nil
	}
	t := reflect.TypeOf(*dst)
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == flag {
			reflect.ValueOf(dst).Elem().Field(i).Set(reflect.ValueOf(src).Elem().Field(i))
			return nil
		}
	}
	return fmt.Errorf("flag --%s has no configuration field", flag)
}

type fileConfig struct {
	node.Config
	Sync          string `toml:"sync"`
	GossipProfile string `toml:"gossip-profile"`
	LogLevel      string `toml:"log-level"`
	LogFormat     string `toml:"log-format"`
}

// loadConfigFile reads a TOML file over cfg and returns the settings that
// are not node.Config fields, by flag name.
func loadConfigFile(path string, cfg *node.Config) (map[string]string, error) {
	fc := fileConfig{Config: *cfg}
	md, err := toml.DecodeFile(path, &fc)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("--config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	*cfg = fc.Config
	return map[string]string{"sync": fc.Sync, "gossip-profile": fc.GossipProfile, "log-level": fc.LogLevel, "log-format": fc.LogFormat}, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
