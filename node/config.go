package node

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/quorumkv/quorumkv/antientropy"
	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/store"
)

// Config is everything one quorumkv daemon needs. Every field has a flag of
// the same meaning in `quorumkv server`.
type Config struct {
	// ID is the node's name, unique in the cluster. Default: the host name.
	ID string `toml:"id"`
	// DataDir is the badger directory. Required unless InMemory.
	DataDir string `toml:"data"`
	// InMemory keeps data in memory (tests only).
	InMemory bool `toml:"-"`
	// HTTPAddr is the client API address. Default 127.0.0.1:8080.
	HTTPAddr string `toml:"http"`
	// RPCAddr is the node-to-node RPC address. Default 127.0.0.1:9090.
	RPCAddr string `toml:"rpc"`
	// GossipAddr is the memberlist bind address. Default 127.0.0.1:7946.
	GossipAddr string `toml:"gossip"`
	// Join lists gossip addresses of existing members; empty starts a new
	// cluster.
	Join []string `toml:"join"`
	// Replicas is the replication factor N, cluster-wide. Default 3.
	Replicas int `toml:"replicas"`
	// Partitions is the ring size, cluster-wide. Default 1024.
	Partitions int `toml:"partitions"`
	// Zone labels the node's failure domain; replicas spread over zones.
	Zone string `toml:"zone"`
	// ClusterName names the cluster, cluster-wide: a node joins only
	// members of its own name, so a --join or a remembered address that
	// leads to another cluster's node is refused instead of merging two
	// clusters. Default empty (no name; such nodes only join each other).
	ClusterName string `toml:"cluster-name"`
	// AntiEntropyInterval is how often each partition is compared with its
	// replicas. Default 1m.
	AntiEntropyInterval time.Duration `toml:"anti-entropy-interval"`
	// AntiEntropyKeysPerSec bounds the objects anti-entropy moves per
	// second (fetched plus pushed). Default 2000; 0 means unlimited.
	AntiEntropyKeysPerSec int `toml:"anti-entropy-keys-per-sec"`
	// AntiEntropyBytesPerSec bounds anti-entropy's network bytes per
	// second. Default 8 MiB; 0 means unlimited.
	AntiEntropyBytesPerSec int64 `toml:"anti-entropy-bytes-per-sec"`
	// TombstoneGrace is how long a tombstone is kept after anti-entropy saw
	// it on every replica. Must exceed HintWindow. Default 24h.
	TombstoneGrace time.Duration `toml:"tombstone-grace"`
	// DisableAntiEntropy stops this node from starting exchanges (it still
	// answers peers). A negative control for tests; never in production.
	DisableAntiEntropy bool `toml:"-"`
	// DisableReadRepair turns read repair off. A negative control for
	// tests; never in production.
	DisableReadRepair bool `toml:"-"`
	// DisableWriteBack makes strong reads skip their write-back phase, which
	// breaks linearizability. A negative control for tests; never in
	// production.
	DisableWriteBack bool `toml:"-"`
	// AntiEntropyTune, when set, adjusts the anti-entropy config after the
	// fields above are applied (tests and benchmarks).
	AntiEntropyTune func(*antientropy.Config) `toml:"-"`
	// RESPAddr also serves the Redis protocol there when set.
	RESPAddr string `toml:"resp"`
	// TLS files: a certificate and key for this node and the CA that signs
	// every node's and client's certificate. All three or none.
	TLSCert string `toml:"tls-cert"`
	TLSKey  string `toml:"tls-key"`
	TLSCA   string `toml:"tls-ca"`
	// AuthTokenFile holds the bearer token clients must send.
	AuthTokenFile string `toml:"auth-token-file"`
	// GossipKey is a base64 memberlist encryption key (16, 24 or 32 bytes).
	GossipKey string `toml:"gossip-key"`
	// MaxValueBytes is the largest value accepted. Default 1 MiB.
	MaxValueBytes int64 `toml:"max-value-bytes"`
	// CacheBytes sizes the object cache in front of badger: the objects
	// of recently read and written keys, which reads and the read every
	// write does first then take from memory. Default 16 MiB; 0 turns it
	// off. It lives in the Go heap (the server raises its soft heap limit
	// by whatever is set above the default).
	CacheBytes int64 `toml:"cache-bytes"`
	// MaxConnections bounds the client connections the HTTP listener holds
	// at once; more wait in the kernel's accept queue. Default 4096; 0
	// means no limit.
	MaxConnections int `toml:"max-connections"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the HTTP listener
	// (behind the bearer token when there is one). Default off.
	Pprof bool `toml:"pprof"`
	// Sync makes every replica write wait for fsync (grouped across
	// concurrent writes). Default false: writes survive a process crash
	// (kill -9) but not a machine crash.
	Sync bool `toml:"-"`
	// RequestTimeout bounds every request. Default 2s.
	RequestTimeout time.Duration `toml:"request-timeout"`
	// HintWindow is how long hints are kept before anti-entropy takes over.
	// Default 3h.
	HintWindow time.Duration `toml:"hint-window"`
	// DeadTimeout is how long a dead member keeps its partitions before the
	// ring reassigns them. Default 1h.
	DeadTimeout time.Duration `toml:"dead-timeout"`
	// FastGossip uses short probe and suspicion intervals (tests, dev).
	FastGossip bool `toml:"-"`
	// DisableFence stops new owners from folding in old owners' data while
	// a partition arrives (a negative control for tests; never in
	// production: reads may then miss acknowledged writes during a move).
	DisableFence bool `toml:"-"`
	// TransferInterval is how often the node looks for partitions to hand
	// off after ownership changed. Default 1s.
	TransferInterval time.Duration `toml:"-"`
	// Logger; nil discards.
	Logger *slog.Logger `toml:"-"`
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		ID:                     host,
		HTTPAddr:               "127.0.0.1:8080",
		RPCAddr:                "127.0.0.1:9090",
		GossipAddr:             "127.0.0.1:7946",
		Replicas:               3,
		Partitions:             ring.DefaultPartitions,
		AntiEntropyInterval:    time.Minute,
		MaxValueBytes:          1 << 20,
		CacheBytes:             store.DefaultConfig().ObjectCacheSize,
		MaxConnections:         4096,
		RequestTimeout:         2 * time.Second,
		HintWindow:             3 * time.Hour,
		AntiEntropyKeysPerSec:  2000,
		AntiEntropyBytesPerSec: 8 << 20,
		TombstoneGrace:         24 * time.Hour,
		DeadTimeout:            time.Hour,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.ID == "" {
		add("--id: a node id is required")
	}
	if c.DataDir == "" && !c.InMemory {
		add("--data: a data directory is required")
	}
	for name, addr := range map[string]string{"--http": c.HTTPAddr, "--rpc": c.RPCAddr, "--gossip": c.GossipAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s %q: %v", name, addr, err)
		}
	}
	if c.RESPAddr != "" {
		if _, _, err := net.SplitHostPort(c.RESPAddr); err != nil {
			add("--resp %q: %v", c.RESPAddr, err)
		}
	}
	if c.Replicas < 1 || c.Replicas > 16 {
		add("--replicas %d: must be between 1 and 16", c.Replicas)
	}
	if c.Partitions < 1 || c.Partitions > 1<<16 {
		add("--partitions %d: must be between 1 and 65536", c.Partitions)
	}
	if err := membership.CheckClusterName(c.ClusterName); err != nil {
		add("--cluster-name: %v", err)
	}
	if c.AntiEntropyInterval <= 0 {
		add("--anti-entropy-interval %s: must be positive", c.AntiEntropyInterval)
	}
	if c.MaxValueBytes < 1 {
		add("--max-value-bytes %d: must be positive", c.MaxValueBytes)
	}
	if c.CacheBytes < 0 {
		add("--cache-bytes %d: must not be negative (0 turns the cache off)", c.CacheBytes)
	}
	if c.RequestTimeout <= 0 {
		add("--request-timeout %s: must be positive", c.RequestTimeout)
	}
	if c.HintWindow <= 0 {
		add("--hint-window %s: must be positive", c.HintWindow)
	}
	if c.AntiEntropyKeysPerSec < 0 {
		add("--anti-entropy-keys-per-sec %d: must not be negative", c.AntiEntropyKeysPerSec)
	}
	if c.AntiEntropyBytesPerSec < 0 {
		add("--anti-entropy-bytes-per-sec %d: must not be negative", c.AntiEntropyBytesPerSec)
	}
	if c.TombstoneGrace <= c.HintWindow {
		add("--tombstone-grace %s: must be longer than --hint-window %s, or a hint replayed after a purge would bring a deleted value back", c.TombstoneGrace, c.HintWindow)
	}
	if c.DeadTimeout <= 0 {
		add("--dead-timeout %s: must be positive", c.DeadTimeout)
	}
	n := 0
	for _, f := range []string{c.TLSCert, c.TLSKey, c.TLSCA} {
		if f != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		add("--tls-cert, --tls-key and --tls-ca go together: give all three or none")
	}
	for name, f := range map[string]string{"--tls-cert": c.TLSCert, "--tls-key": c.TLSKey, "--tls-ca": c.TLSCA, "--auth-token-file": c.AuthTokenFile} {
		if _, err := os.Stat(f); f != "" && err != nil {
			add("%s: %v", name, err)
		}
	}
	if c.MaxConnections < 0 {
		add("--max-connections %d: must not be negative (0 means no limit)", c.MaxConnections)
	}
	if c.GossipKey != "" {
		k, err := base64.StdEncoding.DecodeString(c.GossipKey)
		if err != nil {
			add("--gossip-key: not base64: %v", err)
		} else if l := len(k); l != 16 && l != 24 && l != 32 {
			add("--gossip-key: decodes to %d bytes; it must be 16, 24 or 32", l)
		}
	}
	return errors.Join(errs...)
}
