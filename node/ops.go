package node

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quorumkv/quorumkv/antientropy"
	"github.com/quorumkv/quorumkv/dashboard"
	"github.com/quorumkv/quorumkv/internal/rawio"
	"github.com/quorumkv/quorumkv/metrics"
	"github.com/quorumkv/quorumkv/server"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/wire"
)

// This file is the node's operations side: TLS for clients and between
// nodes (with reload), the HTTP listener's connection limit, the Prometheus
// registry, /v1/stats, the dashboard and pprof. node.go calls in here at a
// few places only:
//
//	loadTLS        first thing in New: bad certificate files fail fast
//	rpcTLS         the RPC transport's tls.Config (nil without TLS)
//	wrapHTTP       the client listener: connection limit, then TLS
//	scheme         Meta.Scheme ("https" with TLS)
//	wireOps        the API's metrics, dashboard, /v1/stats, pprof, Observe
//	browserAuth    wraps the API handler (Basic credentials for the dashboard)

// ops is the operations state of a node.
type ops struct {
	certs   *certStore // nil without TLS
	metrics *metrics.Metrics
}

// ---- TLS -----------------------------------------------------------------

// certStore holds the node's current certificate and CA pool; ReloadTLS
// swaps them. Every new TLS connection, on both listeners and on RPC dials,
// reads the current pair through the config callbacks, so a reload takes
// effect for new connections without a restart; established connections
// keep their session.
type certStore struct {
	certFile, keyFile, caFile string
	cur                       atomic.Pointer[certSet]
	// reloadMu serialises reloads (a second SIGHUP during a reload).
	reloadMu sync.Mutex
}

type certSet struct {
	cert *tls.Certificate
	pool *x509.CertPool
}

// loadCertSet reads and checks the three files.
func loadCertSet(certFile, keyFile, caFile string) (*certSet, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in the file", caFile)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("--tls-cert %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	// A node certificate that its own CA does not sign would be refused by
	// every peer; say so now rather than as handshake errors on each node.
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("--tls-cert %s is not signed by --tls-ca %s, so no peer would accept it: %w", certFile, caFile, err)
	}
	return &certSet{cert: &cert, pool: pool}, nil
}

// loadTLS reads the TLS files when they are configured.
func (n *Node) loadTLS() error {
	c := n.cfg
	if c.TLSCert == "" && c.TLSKey == "" && c.TLSCA == "" {
		return nil
	}
	set, err := loadCertSet(c.TLSCert, c.TLSKey, c.TLSCA)
	if err != nil {
		return err
	}
	cs := &certStore{certFile: c.TLSCert, keyFile: c.TLSKey, caFile: c.TLSCA}
	cs.cur.Store(set)
	n.ops.certs = cs
	n.warnExpiry(set)
	return nil
}

func (n *Node) warnExpiry(set *certSet) {
	left := time.Until(set.cert.Leaf.NotAfter)
	if left < 30*24*time.Hour {
		n.log.Warn("TLS certificate expires soon; replace the files and send SIGHUP", "not_after", set.cert.Leaf.NotAfter.UTC(), "left", left.Round(time.Minute))
	}
}

// ErrNoTLS is returned by ReloadTLS on a node without TLS.
var ErrNoTLS = errors.New("node: TLS is not configured (no --tls-cert)")

// ReloadTLS re-reads --tls-cert, --tls-key and --tls-ca. New connections
// (client HTTPS, RPC in both directions) use the new certificate and CA at
// once; established ones keep theirs. On error the old files stay in use.
// `quorumkv server` calls it on SIGHUP.
func (n *Node) ReloadTLS() error {
	cs := n.ops.certs
	if cs == nil {
		return ErrNoTLS
	}
	cs.reloadMu.Lock()
	defer cs.reloadMu.Unlock()
	set, err := loadCertSet(cs.certFile, cs.keyFile, cs.caFile)
	if err != nil {
		return fmt.Errorf("TLS reload failed, still using the previous certificate: %w", err)
	}
	cs.cur.Store(set)
	n.warnExpiry(set)
	n.log.Info("TLS certificate reloaded", "subject", set.cert.Leaf.Subject.String(), "not_after", set.cert.Leaf.NotAfter.UTC())
	return nil
}

func (cs *certStore) certificate() *tls.Certificate { return cs.cur.Load().cert }

// httpConfig is the client-facing HTTPS config. Clients are not asked for a
// certificate: they authenticate with the bearer token (--auth-token-file),
// as with etcd's or Consul's HTTP APIs, and browsers are not prompted for
// one.
func (cs *certStore) httpConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cs.certificate(), nil },
	}
}

// rpcConfig is mutual TLS between nodes. Both sides present the node
// certificate and require the peer's, signed by --tls-ca (the current one:
// it is read per connection, so a reload can roll the CA).
//
// Peer host names are not checked: a node's RPC address is whatever it
// listens on (a pod IP, say), and its identity here is "holds a certificate
// from the cluster's CA", as with Consul's default (verify_server_hostname
// off). For the same reason extended key usages are not checked either: a
// node certificate marked serverAuth only is still accepted as a peer. So
// use a CA for the cluster only, and do not issue client certificates from
// it.
func (cs *certStore) rpcConfig() *tls.Config {
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cs.certificate(), nil }
	verify := func(st tls.ConnectionState) error { return verifyPeer(st.PeerCertificates, cs.cur.Load().pool) }
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Dialling side: present our certificate, verify the server's chain
		// against the current CA ourselves (InsecureSkipVerify only turns
		// off Go's check, which would also demand a host name match).
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cs.certificate(), nil },
		InsecureSkipVerify:   true,
		VerifyConnection:     verify,
		// Accepting side: a client certificate is required and checked
		// against the current CA by the same rule.
		GetCertificate: getCert,
		ClientAuth:     tls.RequireAnyClientCert,
	}
}

// verifyPeer checks a peer's chain against roots.
func verifyPeer(chain []*x509.Certificate, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("peer certificate %q: %w", chain[0].Subject.String(), err)
	}
	return nil
}

// rpcTLS is the RPC transport's TLS config, nil without TLS.
func (n *Node) rpcTLS() *tls.Config {
	if n.ops.certs == nil {
		return nil
	}
	return n.ops.certs.rpcConfig()
}

// scheme is the client API's URL scheme, gossiped in Meta.Scheme.
func (n *Node) scheme() string {
	if n.ops.certs != nil {
		return "https"
	}
	return "http"
}

// ---- the client listener -------------------------------------------------

// wrapHTTP limits the client listener's connections and, with TLS, serves
// HTTPS only: a plain-HTTP request gets "400 Client sent an HTTP request to
// an HTTPS server" from net/http and nothing else.
func (n *Node) wrapHTTP(l net.Listener) net.Listener {
	l = rawio.WrapListener(l)
	if n.cfg.MaxConnections > 0 {
		l = newLimitListener(l, n.cfg.MaxConnections)
	}
	if n.ops.certs != nil {
		l = tls.NewListener(l, n.ops.certs.httpConfig())
	}
	return l
}

// limitListener accepts at most max connections at once; Accept waits for
// one to close before taking the next from the kernel's queue (as
// golang.org/x/net/netutil.LimitListener does). With http.Server's header,
// read and idle timeouts, a client holding connections open cannot keep the
// slots for long.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// ---- metrics, dashboard, stats, pprof ------------------------------------

// Metrics is the node's Prometheus registry and request window (for other
// front doors: the Redis one reports through Metrics().ObserveRESP).
func (n *Node) Metrics() *metrics.Metrics { return n.ops.metrics }

// wireOps builds the node's metrics and mounts /metrics, /v1/stats, the
// dashboard and (with Config.Pprof) /debug/pprof/ on the API config. It runs
// once the coordinator, membership, anti-entropy and transfer exist.
func (n *Node) wireOps(c *server.Config) error {
	mc := metrics.DefaultConfig()
	mc.Coordinator = &n.coord.Stats
	mc.Status = n.Status
	mc.StoreSize = n.store.Size
	m, err := metrics.New(mc)
	if err != nil {
		return err
	}
	n.ops.metrics = m
	m.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "quorumkv", Name: "build_info", Help: "Always 1; the labels name the build this node runs.",
		ConstLabels: prometheus.Labels{"version": Version(), "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	n.registerComponentMetrics(m)

	if c.Extra == nil {
		c.Extra = map[string]http.Handler{}
	}
	c.Metrics = m.Handler()
	c.Observe = m.ObserveHTTP
	c.Dashboard = dashboard.Handler()
	c.Extra[dashboard.AssetPrefix] = c.Dashboard
	c.Extra["/v1/stats"] = m.StatsHandler("/v1/stats")
	if n.cfg.Pprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		c.Extra["/debug/pprof/"] = mux
	}
	return nil
}

// registerComponentMetrics exports the counters of anti-entropy and
// ownership transfer that /v1/status does not carry. A component added
// later registers its counters here the same way.
func (n *Node) registerComponentMetrics(m *metrics.Metrics) {
	ae := func(get func(*antientropy.Stats) int64) func() float64 {
		return func() float64 {
			if svc := n.ae.Load(); svc != nil {
				return float64(get(&svc.Stats))
			}
			return 0
		}
	}
	for _, c := range []struct {
		name, help string
		get        func(*antientropy.Stats) int64
	}{
		{"anti_entropy_exchange_errors_total", "Anti-entropy exchanges that failed and were left to the next round.", func(s *antientropy.Stats) int64 { return s.ExchangeErrors.Load() }},
		{"anti_entropy_peers_skipped_total", "Peers anti-entropy did not compare because membership said they were down.", func(s *antientropy.Stats) int64 { return s.PeersSkipped.Load() }},
		{"anti_entropy_hashes_compared_total", "Merkle tree nodes compared by anti-entropy.", func(s *antientropy.Stats) int64 { return s.HashesCompared.Load() }},
		{"anti_entropy_keys_differing_total", "Keys anti-entropy found different between replicas.", func(s *antientropy.Stats) int64 { return s.KeysDiffering.Load() }},
		{"anti_entropy_keys_fetched_total", "Objects anti-entropy pulled from peers.", func(s *antientropy.Stats) int64 { return s.KeysFetched.Load() }},
		{"anti_entropy_keys_pushed_total", "Objects anti-entropy sent to peers.", func(s *antientropy.Stats) int64 { return s.KeysPushed.Load() }},
		{"anti_entropy_bytes_received_total", "Bytes this node received in answers to its anti-entropy requests.", func(s *antientropy.Stats) int64 { return s.BytesReceived.Load() }},
		{"anti_entropy_tombstones_confirmed_total", "Tombstones anti-entropy saw on every primary.", func(s *antientropy.Stats) int64 { return s.TombstonesConfirmed.Load() }},
		{"anti_entropy_tombstones_purged_total", "Tombstones removed after the grace period.", func(s *antientropy.Stats) int64 { return s.TombstonesPurged.Load() }},
	} {
		m.CounterFunc(c.name, c.help, ae(c.get))
	}

	if n.transfer != nil {
		ts := &n.transfer.Stats
		for _, c := range []struct {
			name, help string
			v          *atomic.Int64
		}{
			{"transfer_keys_sent_total", "Keys this node handed off to new owners.", &ts.KeysSent},
			{"transfer_bytes_sent_total", "Bytes this node handed off to new owners.", &ts.BytesSent},
			{"transfer_keys_received_total", "Keys new owners merged from handoffs to this node.", &ts.KeysMerged},
			{"transfer_keys_purged_total", "Keys dropped here after every new owner acknowledged them.", &ts.KeysPurged},
			{"transfer_batches_total", "Handoff batches sent.", &ts.Batches},
			{"transfer_failures_total", "Handoff batches that failed and will be retried.", &ts.Failures},
			{"transfers_completed_total", "Partitions whose handoff finished.", &ts.Completed},
			{"transfer_fence_reads_total", "Reads a new owner served while a partition was still arriving.", &ts.FenceReads},
		} {
			m.CounterFunc(c.name, c.help, func() float64 { return float64(c.v.Load()) })
		}
	}

	cache := func(get func(store.CacheStats) int64) func() float64 {
		return func() float64 { return float64(get(n.store.CacheStats())) }
	}
	m.CounterFunc("store_object_cache_hits_total", "Object lookups the object cache answered (reads, and the read before every write).", cache(func(s store.CacheStats) int64 { return s.Hits }))
	m.CounterFunc("store_object_cache_misses_total", "Objects read from badger because the object cache did not hold them.", cache(func(s store.CacheStats) int64 { return s.Misses }))
	m.GaugeFunc("store_object_cache_bytes", "What the object cache holds now, in bytes (the cache's estimate).", cache(func(s store.CacheStats) int64 { return s.Bytes }))
	m.GaugeFunc("store_object_cache_capacity_bytes", "The object cache's size (--cache-bytes; 0: off).", cache(func(s store.CacheStats) int64 { return s.Capacity }))

	if cs := n.ops.certs; cs != nil {
		m.GaugeFunc("tls_cert_not_after_timestamp_seconds", "When the node's current TLS certificate expires (Unix time).",
			func() float64 { return float64(cs.certificate().Leaf.NotAfter.Unix()) })
	}
}

// ---- browser access with a token -----------------------------------------

// browserAuth lets a browser open the dashboard when a bearer token is
// required. Browsers cannot be told to send "Authorization: Bearer", but
// they do answer a Basic challenge and then send the credentials with every
// request to the node, the page's fetches included. So: GET / without any
// credentials gets a Basic challenge (plus the Bearer one), and Basic
// credentials whose password is the token are turned into that bearer token
// before the API checks it (in constant time, as always). The user name is
// ignored.
func (n *Node) browserAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); ok {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+pass)
		} else if r.URL.Path == "/" && r.Header.Get("Authorization") == "" && n.authRequired() {
			w.Header().Add("WWW-Authenticate", `Basic realm="quorumkv: any user name, the bearer token as password", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="quorumkv"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(wire.ErrorBody{Code: wire.CodeUnauthorized,
				Error: "this node requires its bearer token: send Authorization: Bearer <token>, or sign in with any user name and the token as the password"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (n *Node) authRequired() bool { return n.cfg.AuthTokenFile != "" }

// URL is the client API's base URL, e.g. https://10.0.0.5:8080.
func (n *Node) URL() string { return n.scheme() + "://" + n.HTTPAddr() }

// checkRequest refuses node-to-node requests that no correct peer sends,
// before any handler sees them: wire.DecodeRequest accepts any partition
// up to 65535, but the ring has cfg.Partitions, and the handlers index by
// partition.
func (n *Node) checkRequest(req wire.Request) error {
	if req.Partition >= n.cfg.Partitions {
		return fmt.Errorf("%w: partition %d, the ring has %d", wire.ErrDecode, req.Partition, n.cfg.Partitions)
	}
	for _, it := range req.Items {
		if it.Partition < 0 || it.Partition >= n.cfg.Partitions {
			return fmt.Errorf("%w: batch item in partition %d, the ring has %d", wire.ErrDecode, it.Partition, n.cfg.Partitions)
		}
	}
	return nil
}
