package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"

	"github.com/quorumkv/quorumkv/ring"
)

// Config configures a Membership. Start from DefaultConfig (or FastConfig in
// tests), fill in Meta and the addresses, and pass it to New. New copies it,
// fills zero durations and counts from DefaultConfig, and validates it; it
// never writes back into the caller's value.
type Config struct {
	// Meta is what this node gossips about itself. ID, RPCAddr, Replicas and
	// Partitions are required. Meta.Started is set by New.
	Meta Meta

	// BindAddr is the memberlist address, "ip:port", for both UDP and TCP.
	// Port 0 picks a free port; GossipAddr reports it. Default
	// "127.0.0.1:7946".
	BindAddr string
	// AdvertiseAddr is the "ip:port" other nodes should use to reach this
	// one, when it differs from BindAddr (NAT, 0.0.0.0 binds). Port 0 means
	// the bound port, and with BindAddr port 0 the bound port is always
	// advertised (memberlist's rule). Empty: the bound address.
	AdvertiseAddr string
	// Join lists gossip addresses ("host:port") of existing members. Empty
	// starts a new cluster. New fails unless at least one of them answers
	// and none refuses this node.
	Join []string
	// SecretKey enables memberlist's encryption (AES-GCM) when it holds 16,
	// 24 or 32 bytes; nil disables it. Every member must use the same key:
	// a node with another key (or none) cannot join.
	SecretKey []byte

	// Transport, if set, replaces memberlist's UDP+TCP transport (then
	// BindAddr only has to be well-formed): tests use it to drop or block
	// gossip. Nil: memberlist's network transport on BindAddr.
	Transport memberlist.Transport

	// Logger receives this package's events and memberlist's own log lines
	// (at debug level, with the original level as "memberlist_level").
	// Nil: no logging.
	Logger *slog.Logger

	// ProbeInterval is how often this node probes one random member.
	// Shorter detects failures sooner at the price of more packets. Default
	// 1s (memberlist's LAN preset).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before
	// indirect probes are tried; it should exceed the network's 99th
	// percentile round trip and must be below ProbeInterval. Default 500ms.
	ProbeTimeout time.Duration
	// IndirectChecks is how many other members are asked to probe a member
	// that did not answer directly, so that one lossy link does not get a
	// healthy node suspected. Default 3.
	IndirectChecks int
	// SuspicionMult scales how long a suspect member has to refute before
	// it is declared dead: SuspicionMult * max(1, log10(members)) *
	// ProbeInterval at least. Higher means fewer false deaths and slower
	// detection. Default 4.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout while waiting for
	// other members to confirm the suspicion: up to this times the minimum.
	// Default 6.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often queued state changes are gossiped.
	// Default 200ms.
	GossipInterval time.Duration
	// GossipNodes is how many random members each gossip round goes to.
	// Default 3.
	GossipNodes int
	// RetransmitMult scales how many times a state change is gossiped:
	// RetransmitMult * ceil(log10(members+1)). Default 4.
	RetransmitMult int
	// PushPullInterval is how often this node exchanges its full state with
	// one random member over TCP, repairing anything gossip missed (and
	// spreading which members died or left, see doc.go). Default 30s.
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long memberlist keeps gossiping to a dead
	// member (so it can learn it was declared dead and refute) before it
	// forgets it. This package remembers dead members itself, so this only
	// tunes memberlist. Default 30s.
	GossipToTheDeadTime time.Duration
	// TCPTimeout bounds TCP exchanges: joins, push/pull, fallback probes.
	// Default 10s.
	TCPTimeout time.Duration
	// ReclaimTime is how long after a member is declared dead another
	// process may take over its ID from a different address (a restart on
	// a new port or host). Zero is not allowed: memberlist would then
	// refuse such restarts until the old life left. Default 1s: once the
	// failure detector has given up on the old address nothing is gained by
	// waiting longer.
	ReclaimTime time.Duration

	// ReconnectInterval is how often this node tries to reach one random
	// dead member it remembers. memberlist stops talking to dead members
	// after GossipToTheDeadTime, so without this two sides of a network
	// partition that lasted longer would never merge again (Serf does the
	// same). One TCP connection attempt per interval. Default 10s.
	ReconnectInterval time.Duration

	// DeadTimeout is how long a dead member keeps its partitions. Until it
	// passes, the member stays in the ring: its writes go to fallbacks with
	// hints and nothing is reshuffled, so restarts, deploys and network
	// blips cost no data movement. Once it passes the member leaves the
	// ring and its partitions are reassigned, restoring full replication
	// from the surviving replicas. Dead and left members are forgotten (gone
	// from Members) DeadTimeout after they left the ring. Default 1h.
	DeadTimeout time.Duration
	// BroadcastTimeout bounds how long UpdateMeta waits for its change to be
	// gossiped. Default 5s.
	BroadcastTimeout time.Duration

	// Remembered is the member table this node kept from its last run
	// (what Members returned; the caller saves and loads it), with Since
	// of a member that was alive or suspect set to when the table was
	// saved: the last time this node knew of it. New takes back, as dead
	// since then, the members that are not this node, had not left or
	// started leaving, and were known less than DeadTimeout ago, so a
	// member long gone does not return to anyone's ring. A restarted node's
	// ring then still holds them: quorum and strong requests need their
	// answers instead of being served by this node alone before gossip
	// has found the others, and the node reconnects to them like to any
	// dead member. With members remembered, a Join that reaches nobody is
	// not fatal: the node starts and keeps reconnecting.
	Remembered []Member

	// OnChange, if set, is called after the member table or the ring
	// changed. Calls are not concurrent with each other, are made without
	// holding any lock of this package, and several changes may be folded
	// into one call: read the current state with Members and Ring. It must
	// not call Close or Leave (they wait for it to return).
	OnChange func()
}

// DefaultConfig returns memberlist's LAN timings (see each field), a one
// hour DeadTimeout, BindAddr "127.0.0.1:7946", Scheme "http" and the
// default ring size with N=3. Meta.ID and Meta.RPCAddr still need setting.
func DefaultConfig() Config {
	return Config{
		Meta: Meta{
			Scheme:     "http",
			Replicas:   3,
			Partitions: ring.DefaultPartitions,
		},
		BindAddr:                "127.0.0.1:7946",
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		GossipInterval:          200 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		PushPullInterval:        30 * time.Second,
		GossipToTheDeadTime:     30 * time.Second,
		TCPTimeout:              10 * time.Second,
		ReclaimTime:             time.Second,
		ReconnectInterval:       10 * time.Second,
		DeadTimeout:             time.Hour,
		BroadcastTimeout:        5 * time.Second,
	}
}

// FastConfig is DefaultConfig().Fast(): timings for tests and `quorumkv
// dev` on one machine.
func FastConfig() Config { return DefaultConfig().Fast() }

// Fast returns c with timings for tests and single-machine clusters:
// probes every 100ms, failures detected in about a second, push/pull every
// 500ms, BindAddr "127.0.0.1:0". DeadTimeout becomes one minute, long
// enough that a test which kills and restarts a node keeps its partitions;
// tests of reassignment set it shorter themselves.
func (c Config) Fast() Config {
	c.BindAddr = "127.0.0.1:0"
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.IndirectChecks = 2
	c.SuspicionMult = 4
	c.SuspicionMaxTimeoutMult = 4
	c.GossipInterval = 20 * time.Millisecond
	c.GossipNodes = 3
	c.RetransmitMult = 4
	c.PushPullInterval = 500 * time.Millisecond
	c.GossipToTheDeadTime = 2 * time.Second
	c.TCPTimeout = 2 * time.Second
	c.ReclaimTime = 10 * time.Millisecond
	c.ReconnectInterval = 200 * time.Millisecond
	c.DeadTimeout = time.Minute
	c.BroadcastTimeout = 2 * time.Second
	return c
}

// WithDefaults returns c with every zero duration, count, BindAddr, Scheme,
// Replicas and Partitions taken from DefaultConfig.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.BindAddr, d.BindAddr)
	setDefault(&c.Meta.Scheme, d.Meta.Scheme)
	setDefault(&c.Meta.Replicas, d.Meta.Replicas)
	setDefault(&c.Meta.Partitions, d.Meta.Partitions)
	setDefault(&c.ProbeInterval, d.ProbeInterval)
	setDefault(&c.ProbeTimeout, d.ProbeTimeout)
	setDefault(&c.IndirectChecks, d.IndirectChecks)
	setDefault(&c.SuspicionMult, d.SuspicionMult)
	setDefault(&c.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setDefault(&c.GossipInterval, d.GossipInterval)
	setDefault(&c.GossipNodes, d.GossipNodes)
	setDefault(&c.RetransmitMult, d.RetransmitMult)
	setDefault(&c.PushPullInterval, d.PushPullInterval)
	setDefault(&c.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setDefault(&c.TCPTimeout, d.TCPTimeout)
	setDefault(&c.ReclaimTime, d.ReclaimTime)
	setDefault(&c.ReconnectInterval, d.ReconnectInterval)
	setDefault(&c.DeadTimeout, d.DeadTimeout)
	setDefault(&c.BroadcastTimeout, d.BroadcastTimeout)
	return c
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// maxIDLen bounds node IDs: they appear in every gossip message, in
// metadata, and in version-vector actor ids.
const maxIDLen = 128

// Validate reports every problem of c at once (joined with errors.Join).
// It does not fill defaults: call WithDefaults first for a partial config.
func (c Config) Validate() error {
	errs := metaProblems(c.Meta)
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("membership: "+format, args...))
	}

	if err := checkHostPort(c.BindAddr, true); err != nil {
		bad("bind address %q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if err := checkHostPort(c.AdvertiseAddr, true); err != nil {
			bad("advertise address %q: %v", c.AdvertiseAddr, err)
		}
	}
	for _, j := range c.Join {
		if strings.TrimSpace(j) == "" {
			bad("join list contains an empty address")
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		bad("secret key is %d bytes: want 16, 24 or 32", len(c.SecretKey))
	}

	positive := func(name string, d time.Duration) {
		if d <= 0 {
			bad("%s = %v: must be positive", name, d)
		}
	}
	positive("ProbeInterval", c.ProbeInterval)
	positive("ProbeTimeout", c.ProbeTimeout)
	positive("GossipInterval", c.GossipInterval)
	positive("PushPullInterval", c.PushPullInterval)
	positive("GossipToTheDeadTime", c.GossipToTheDeadTime)
	positive("TCPTimeout", c.TCPTimeout)
	positive("ReclaimTime", c.ReclaimTime)
	positive("ReconnectInterval", c.ReconnectInterval)
	positive("DeadTimeout", c.DeadTimeout)
	positive("BroadcastTimeout", c.BroadcastTimeout)
	if c.ProbeTimeout > 0 && c.ProbeInterval > 0 && c.ProbeTimeout >= c.ProbeInterval {
		bad("ProbeTimeout = %v must be below ProbeInterval = %v", c.ProbeTimeout, c.ProbeInterval)
	}
	atLeast := func(name string, v, least int) {
		if v < least {
			bad("%s = %d: want at least %d", name, v, least)
		}
	}
	atLeast("IndirectChecks", c.IndirectChecks, 0)
	atLeast("SuspicionMult", c.SuspicionMult, 1)
	atLeast("SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult, 1)
	atLeast("GossipNodes", c.GossipNodes, 1)
	atLeast("RetransmitMult", c.RetransmitMult, 1)
	return errors.Join(errs...)
}

// metaProblems lists what is wrong with m; Validate and UpdateMeta use it.
func metaProblems(m Meta) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("membership: "+format, args...))
	}
	switch id := m.ID; {
	case id == "":
		bad("node id is empty")
	case len(id) > maxIDLen:
		bad("node id is %d bytes, at most %d allowed", len(id), maxIDLen)
	case strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		bad("node id %q contains spaces or unprintable characters", id)
	}
	if m.RPCAddr == "" {
		bad("RPC address is empty")
	} else if err := checkHostPort(m.RPCAddr, false); err != nil {
		bad("RPC address %q: %v", m.RPCAddr, err)
	}
	if m.HTTPAddr != "" {
		if err := checkHostPort(m.HTTPAddr, false); err != nil {
			bad("HTTP address %q: %v", m.HTTPAddr, err)
		}
	}
	if m.Scheme != "http" && m.Scheme != "https" {
		bad("scheme %q: want http or https", m.Scheme)
	}
	if m.Replicas < 1 || m.Replicas > ring.MaxReplicas {
		bad("replicas = %d: want 1..%d", m.Replicas, ring.MaxReplicas)
	}
	if m.Partitions < 1 || m.Partitions > ring.MaxPartitions {
		bad("partitions = %d: want 1..%d", m.Partitions, ring.MaxPartitions)
	}
	if err := CheckClusterName(m.Cluster); err != nil {
		bad("%v", err)
	}
	if _, err := encodeMeta(m); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// MaxClusterNameLen is the longest cluster name (Meta.Cluster) allowed.
const MaxClusterNameLen = 128

// CheckClusterName reports what is wrong with a cluster name: longer than
// MaxClusterNameLen bytes, or holding other characters than letters, digits,
// '.', '_' and '-'. The empty name (none) is valid.
func CheckClusterName(name string) error {
	if len(name) > MaxClusterNameLen {
		return fmt.Errorf("cluster name is %d bytes, at most %d allowed", len(name), MaxClusterNameLen)
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("cluster name %q: only letters, digits, '.', '_' and '-' are allowed", name)
	}
	return nil
}

// checkHostPort checks "host:port"; with ipOnly the host must be an IP
// literal (memberlist binds and advertises IPs only).
func checkHostPort(addr string, ipOnly bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("missing host")
	}
	if ipOnly && net.ParseIP(host) == nil {
		return fmt.Errorf("host %q is not an IP address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	if !ipOnly && p == 0 {
		return fmt.Errorf("port 0 cannot be advertised")
	}
	return nil
}

// splitHostPort splits an address Validate accepted.
func splitHostPort(addr string) (string, int) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return host, p
}
