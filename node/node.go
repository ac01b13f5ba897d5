package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/antientropy"
	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/resp"
	"github.com/quorumkv/quorumkv/ring"
	"github.com/quorumkv/quorumkv/server"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transfer"
	"github.com/quorumkv/quorumkv/transport"
	"github.com/quorumkv/quorumkv/wire"
)

// RPC is the node-to-node transport a node serves and calls through.
type RPC interface {
	Call(ctx context.Context, addr string, req []byte) ([]byte, error)
	Go(ctx context.Context, addr string, req []byte, done func([]byte, error))
	Addr() string
	Close() error
}

// ClusterView is membership as the node needs it. The real one is gossip
// (package membership); tests pass a static one.
type ClusterView interface {
	replication.Cluster
	// Members lists every known member with its state.
	Members() []membership.Member
	Close() error
}

// Deps replaces the node's network collaborators in tests.
type Deps struct {
	// Listen, when set, is used instead of TCP to serve RPC.
	Listen func(handler transport.Handler) (RPC, error)
	// Cluster, when set, is used instead of gossip membership. It is called
	// once the RPC address is known.
	Cluster func(self membership.Meta) (ClusterView, error)
	// HTTPListener, when set, serves the client API instead of listening on
	// Config.HTTPAddr.
	HTTPListener net.Listener
}

// Node is one running quorumkv daemon.
type Node struct {
	cfg   Config
	log   *slog.Logger
	actor string
	inc   uint64

	store *store.Store
	rpc   RPC
	coord *replication.Coordinator
	view  ClusterView
	// coordView is the view the coordinator uses: valid from the start,
	// it answers "nothing known" until membership is up.
	coordView *lazyView
	transfer  *transfer.Service
	resp      *resp.Server
	api       *server.Server
	ae        atomic.Pointer[antientropy.Service]
	http      *http.Server
	httpL     net.Listener
	ops       ops // TLS, metrics, dashboard (ops.go)

	cancel context.CancelFunc
	loops  sync.WaitGroup
	ready  atomic.Bool
	// serving is set once the components RPC dispatches to exist.
	serving atomic.Bool

	closeOnce sync.Once
	closeErr  error
	leaving   atomic.Bool
	// done is closed when the node has stopped on its own (after leave).
	done chan struct{}
	// membersChanged is kicked when gossip membership changes, for
	// keepMembers; nil with another ClusterView. membersMu orders the
	// saves of the member table with Leave forgetting it.
	membersChanged chan struct{}
	membersMu      sync.Mutex
}

const metaIncarnation = "incarnation"

// New starts a node: it opens the store, serves RPC, joins the cluster and
// serves the client API. Close stops it.
func New(cfg Config, deps Deps) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log.With("node", cfg.ID), done: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err = n.loadTLS(); err != nil {
		return nil, err
	}

	scfg := store.DefaultConfig()
	scfg.Dir, scfg.InMemory, scfg.Sync, scfg.Logger = cfg.DataDir, cfg.InMemory, cfg.Sync, n.log
	scfg.ObjectCacheSize = cfg.CacheBytes
	scfg.OnChange = n.aeOnChange
	if n.store, err = store.Open(scfg); err != nil {
		return nil, err
	}
	if n.inc, err = loadIncarnation(n.store); err != nil {
		return nil, err
	}
	n.actor = cfg.ID + "." + strconv.FormatUint(n.inc, 36)

	handler := func(ctx context.Context, req []byte) ([]byte, error) { return n.handleRPC(ctx, req) }
	if deps.Listen != nil {
		n.rpc, err = deps.Listen(handler)
	} else {
		tcfg := transport.DefaultConfig()
		tcfg.ListenAddr, tcfg.DefaultTimeout, tcfg.Logger = cfg.RPCAddr, cfg.RequestTimeout, n.log
		tcfg.TLS = n.rpcTLS()
		var tcp *transport.TCP
		if tcp, err = transport.ListenTCP(tcfg, handler); err == nil {
			n.rpc = tcp // not a typed nil in the interface: Close would panic
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rpc: %w", err)
	}

	httpL := deps.HTTPListener
	if httpL == nil {
		if httpL, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
	}
	httpL = n.wrapHTTP(httpL)
	n.httpL = httpL

	meta := membership.Meta{
		ID: cfg.ID, RPCAddr: n.rpc.Addr(), HTTPAddr: httpL.Addr().String(), Scheme: n.scheme(), Zone: cfg.Zone, Cluster: cfg.ClusterName,
		Incarnation: n.inc, Replicas: cfg.Replicas, Partitions: cfg.Partitions, Version: Version(),
	}
	view := &lazyView{}
	n.coordView = view
	if err = n.newTransfer(); err != nil {
		return nil, err
	}
	rcfg := replication.DefaultConfig()
	if !cfg.DisableFence {
		rcfg.Fence = n.transfer
	}
	rcfg.ID, rcfg.Actor, rcfg.RequestTimeout, rcfg.Logger = cfg.ID, n.actor, cfg.RequestTimeout, n.log
	rcfg.DisableReadRepair = cfg.DisableReadRepair
	rcfg.DisableWriteBack = cfg.DisableWriteBack
	if n.coord, err = replication.New(rcfg, n.store, view, n.rpc); err != nil {
		return nil, err
	}
	n.serving.Store(true)
	if deps.Cluster != nil {
		n.view, err = deps.Cluster(meta)
	} else {
		n.view, err = n.gossip(meta)
	}
	if err != nil {
		return nil, err
	}
	view.set(n.view)
	if err = n.newAntiEntropy(); err != nil {
		return nil, err
	}

	scfgAPI := server.DefaultConfig()
	scfgAPI.MaxValueBytes, scfgAPI.Logger = cfg.MaxValueBytes, n.log
	scfgAPI.Extra = map[string]http.Handler{"/v1/pbs": http.HandlerFunc(n.servePBS)}
	if cfg.AuthTokenFile != "" {
		tok, err := os.ReadFile(cfg.AuthTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-token-file: %w", err)
		}
		if scfgAPI.AuthToken = strings.TrimSpace(string(tok)); scfgAPI.AuthToken == "" {
			return nil, fmt.Errorf("--auth-token-file %s is empty", cfg.AuthTokenFile)
		}
	}
	if err = n.wireOps(&scfgAPI); err != nil {
		return nil, err
	}
	if n.api, err = server.New(scfgAPI, n.coord, n); err != nil {
		return nil, err
	}
	if err = n.startRESP(scfgAPI.AuthToken); err != nil {
		return nil, fmt.Errorf("--resp: %w", err)
	}
	n.http = &http.Server{
		Handler:           n.browserAuth(n.api),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}

	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.loop(func() {
		if err := n.http.Serve(httpL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	})
	hc := replication.DefaultHandoffConfig()
	hc.Window = cfg.HintWindow
	n.loop(func() { n.coord.RunHandoff(ctx, hc) })
	n.loop(func() { n.runAntiEntropy(ctx) })
	n.loop(func() { n.transfer.Run(ctx) })
	if n.membersChanged != nil {
		n.loop(func() { n.keepMembers(ctx, n.membersChanged) })
	}
	n.ready.Store(true)
	n.log.Info("node started", "http", httpL.Addr().String(), "rpc", n.rpc.Addr(), "actor", n.actor, "version", Version())
	return n, nil
}

func (n *Node) loop(fn func()) {
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		fn()
	}()
}

func (n *Node) gossip(meta membership.Meta) (ClusterView, error) {
	mc := membership.DefaultConfig()
	if n.cfg.FastGossip {
		mc = membership.FastConfig()
	}
	mc.Meta, mc.BindAddr, mc.Join, mc.Logger, mc.DeadTimeout = meta, n.cfg.GossipAddr, n.cfg.Join, n.cfg.Logger, n.cfg.DeadTimeout
	mc.Remembered = n.rememberedMembers()
	n.membersChanged = make(chan struct{}, 1)
	mc.OnChange = func() {
		select {
		case n.membersChanged <- struct{}{}:
		default:
		}
	}
	if n.cfg.GossipKey != "" {
		k, err := base64.StdEncoding.DecodeString(n.cfg.GossipKey)
		if err != nil {
			return nil, fmt.Errorf("--gossip-key: %w", err)
		}
		mc.SecretKey = k
	}
	m, err := membership.New(mc)
	if err != nil {
		return nil, err
	}
	return gossipView{m}, nil
}

// loadIncarnation reads the node's incarnation, choosing a new one when the
// data directory is new (or was wiped): a node that lost its data must not
// reuse its old actor id.
func loadIncarnation(st *store.Store) (uint64, error) {
	b, ok, err := st.GetMeta(metaIncarnation)
	if err != nil {
		return 0, err
	}
	if ok && len(b) == 8 {
		return binary.BigEndian.Uint64(b), nil
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return 0, err
	}
	inc := uint64(binary.BigEndian.Uint32(r[:])) | 1
	return inc, st.SetMeta(metaIncarnation, binary.BigEndian.AppendUint64(nil, inc))
}

func (n *Node) handleRPC(ctx context.Context, b []byte) ([]byte, error) {
	// RPC listens before the components it serves exist (the RPC address
	// must be known to build them); until they do, answer "not yet".
	if !n.serving.Load() {
		return nil, errors.New("node is starting")
	}
	req, err := wire.DecodeRequest(b)
	if err != nil {
		return nil, err
	}
	if err := n.checkRequest(req); err != nil {
		return nil, err
	}
	if out, ok, err := n.serveAntiEntropy(ctx, req); ok {
		return out, err
	}
	if out, ok, err := n.serveTransfer(ctx, req); ok {
		return out, err
	}
	resp, err := n.coord.HandleRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	return wire.Encode(&resp)
}

// Ready reports whether the node serves requests.
func (n *Node) Ready() bool { return n.ready.Load() && !n.leaving.Load() }

// HTTPAddr is the address the client API listens on.
func (n *Node) HTTPAddr() string { return n.httpL.Addr().String() }

// RPCAddr is the address the node-to-node RPC listens on.
func (n *Node) RPCAddr() string { return n.rpc.Addr() }

// GossipAddr is the memberlist address, when gossip is used.
func (n *Node) GossipAddr() string {
	if g, ok := n.view.(gossipView); ok {
		return g.GossipAddr()
	}
	return ""
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Actor is the node's actor id (id plus incarnation).
func (n *Node) Actor() string { return n.actor }

// Coordinator exposes the node's coordinator (tests, RESP front door).
func (n *Node) Coordinator() *replication.Coordinator { return n.coord }

// Handler is the client API handler.
func (n *Node) Handler() http.Handler { return n.api }

// Done is closed when the node stopped on its own (after leaving).
func (n *Node) Done() <-chan struct{} { return n.done }

// Status describes this node and the cluster as it sees it.
func (n *Node) Status(ctx context.Context) wire.Status {
	r := n.view.Ring()
	st := wire.Status{ID: n.cfg.ID, Cluster: n.cfg.ClusterName, Version: Version(), Replicas: n.cfg.Replicas, RingSize: n.cfg.Partitions, Incarnation: n.inc}
	st.Transfers, st.PartitionsArriving = n.transferStatus()
	st.Leaving = n.leaving.Load()
	for _, m := range n.view.Members() {
		ms := wire.MemberStatus{ID: m.ID, State: string(m.State), Partitions: r.PrimaryCount(m.ID), HTTP: m.HTTPAddr, RPC: m.RPCAddr, Gossip: m.GossipAddr, Zone: m.Zone, Version: m.Version}
		if !m.Since.IsZero() {
			ms.Since = m.Since.UTC().Format(time.RFC3339)
		}
		st.Members = append(st.Members, ms)
	}
	if v, ok := n.view.(interface{ Refused() map[string]string }); ok {
		st.Refused = v.Refused()
	}
	if hints, err := n.coord.PendingHints(); err == nil {
		st.HintsByNode = hints
		for _, c := range hints {
			st.HintsPending += c
		}
	}
	st.AntiEntropy = n.antiEntropyStatus()
	if svc := n.ae.Load(); svc != nil {
		st.Keys = svc.TotalKeys()
	}
	return st
}

// drainTimeout bounds how long Close waits for peer requests under way.
const drainTimeout = 5 * time.Second

// Close stops the node: the HTTP API and the RESP port stop accepting and
// finish the requests and command batches in flight, background loops stop,
// requests from peers already running finish and are answered, the node
// leaves gossip, and badger is flushed and closed. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.ready.Store(false)
		var errs []error
		// Both front doors drain at once: requests and RESP batches under
		// way finish and are answered, for up to 10 s.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		respDone := make(chan error, 1)
		if n.resp != nil {
			go func() { respDone <- n.resp.Shutdown(ctx) }()
		} else {
			respDone <- nil
		}
		if n.http != nil {
			errs = append(errs, n.http.Shutdown(ctx))
		} else if n.httpL != nil {
			n.httpL.Close()
		}
		errs = append(errs, <-respDone)
		cancel()
		if n.cancel != nil {
			n.cancel()
		}
		n.loops.Wait()
		// Answer the peer requests already running (a forwarded write
		// whose answer is lost has an unknown outcome for its client);
		// refuse new ones so their senders go elsewhere.
		if d, ok := n.rpc.(interface{ Drain(time.Duration) }); ok {
			d.Drain(drainTimeout)
		}
		if n.view != nil {
			errs = append(errs, n.view.Close())
		}
		if n.coord != nil {
			errs = append(errs, n.coord.Close())
		}
		if n.rpc != nil {
			errs = append(errs, n.rpc.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// lazyView lets the coordinator be built before membership exists (the
// coordinator must answer RPC as soon as gossip announces the node).
type lazyView struct {
	v atomic.Pointer[ClusterView]
}

func (l *lazyView) set(v ClusterView) { l.v.Store(&v) }

var emptyRing = func() *ring.Ring { r, _ := ring.New(nil, 1, 1); return r }()

func (l *lazyView) Ring() *ring.Ring {
	if v := l.v.Load(); v != nil {
		return (*v).Ring()
	}
	return emptyRing
}

func (l *lazyView) Addr(id string) (string, bool) {
	if v := l.v.Load(); v != nil {
		return (*v).Addr(id)
	}
	return "", false
}

func (l *lazyView) Up(id string) bool {
	if v := l.v.Load(); v != nil {
		return (*v).Up(id)
	}
	return false
}

// gossipView is gossip membership as the node's ClusterView.
type gossipView struct{ *membership.Membership }

// servePBS answers the latency samples this node measured for the PBS
// staleness prediction (quorumkv predict).
func (n *Node) servePBS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n.coord.Latency.Snapshot())
}
