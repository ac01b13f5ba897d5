package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/testpki"
	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/transport"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// startNode starts a real node on loopback (TCP RPC, gossip, HTTP on free
// ports, data in memory) and closes it at the end of the test.
func startNode(t *testing.T, id string, configure func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.InMemory, cfg.FastGossip = id, true, true
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Replicas, cfg.Partitions = 2, 64
	if configure != nil {
		configure(&cfg)
	}
	n, err := New(cfg, Deps{})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitAlive waits until n sees want members alive.
func waitAlive(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		alive := 0
		for _, m := range n.view.Members() {
			if m.State == membership.StateAlive {
				alive++
			}
		}
		if alive == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %d members alive, want %d", n.ID(), alive, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type httpDo struct {
	t      *testing.T
	client *http.Client
	token  string
}

func (h httpDo) do(method, url string, body []byte, hdr ...string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
}

// TestTLSAuthAndGossipKey runs two nodes with HTTPS, mutual TLS between
// them, a bearer token and a gossip key, and checks what is accepted and
// what is refused.
func TestTLSAuthAndGossipKey(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "quorumkv test CA")
	token := "s3cret-token"
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	files := map[string]testpki.Files{}
	secure := func(id string) func(*Config) {
		files[id] = ca.Write(t, filepath.Join(dir), id, ca.Issue(t, id))
		return func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSCA = files[id].Cert, files[id].Key, files[id].CA
			c.AuthTokenFile, c.GossipKey = tokenFile, key
		}
	}
	n1 := startNode(t, "n1", secure("n1"))
	n2 := startNode(t, "n2", func(c *Config) { secure("n2")(c); c.Join = []string{n1.GossipAddr()} })
	waitAlive(t, n1, 2)
	waitAlive(t, n2, 2)
	for _, m := range n1.view.Members() {
		if m.Scheme != "https" {
			t.Errorf("member %s gossips scheme %q, want https", m.ID, m.Scheme)
		}
	}
	if !strings.HasPrefix(n1.URL(), "https://") {
		t.Errorf("URL %s", n1.URL())
	}

	ok := httpDo{t: t, client: tlsClient(ca.Pool), token: token}
	u1, u2 := "https://"+n1.HTTPAddr(), "https://"+n2.HTTPAddr()

	// A quorum write through n1 (which needs RPC over mutual TLS to n2 for
	// W=2) and a read through n2.
	if code, _, body := ok.do("PUT", u1+"/v1/kv/k1?consistency=all", []byte("v1")); code != 204 {
		t.Fatalf("PUT over HTTPS with the token: %d %s", code, body)
	}
	if code, hdr, body := ok.do("GET", u2+"/v1/kv/k1?consistency=all", nil); code != 200 || body != "v1" || hdr.Get("X-Acks") != "2" {
		t.Fatalf("GET: %d %q acks %s", code, body, hdr.Get("X-Acks"))
	}
	for _, path := range []string{"/healthz", "/metrics", "/v1/status", "/v1/stats", "/"} {
		if code, _, body := ok.do("GET", u1+path, nil); code != 200 {
			t.Errorf("GET %s with the token: %d %s", path, code, body)
		}
	}

	// Without the token, or with a wrong one, everything is refused,
	// /healthz and /metrics included.
	for _, h := range []httpDo{{t: t, client: tlsClient(ca.Pool)}, {t: t, client: tlsClient(ca.Pool), token: "wrong"}, {t: t, client: tlsClient(ca.Pool), token: token + "x"}} {
		for _, path := range []string{"/v1/kv/k1", "/healthz", "/metrics", "/v1/status", "/v1/stats", "/", "/dashboard/app.js", "/debug/pprof/"} {
			if code, _, body := h.do("GET", u1+path, nil); code != 401 {
				t.Errorf("GET %s with token %q: %d %s, want 401", path, h.token, code, body)
			}
		}
		if code, _, _ := h.do("PUT", u1+"/v1/kv/k1", []byte("evil")); code != 401 {
			t.Errorf("PUT with token %q: %d, want 401", h.token, code)
		}
	}
	// The dashboard offers browsers a Basic challenge; the token as the
	// password opens it, and the page's fetches carry the same credentials.
	code, hdr, _ := httpDo{t: t, client: tlsClient(ca.Pool)}.do("GET", u1+"/", nil)
	if code != 401 || !strings.Contains(strings.Join(hdr.Values("WWW-Authenticate"), " "), "Basic") {
		t.Errorf("GET / without credentials: %d %v, want 401 with a Basic challenge", code, hdr.Values("WWW-Authenticate"))
	}
	basic := func(pass string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+pass)) }
	nob := httpDo{t: t, client: tlsClient(ca.Pool)}
	if code, _, body := nob.do("GET", u1+"/", nil, "Authorization", basic(token)); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("GET / with Basic and the token: %d", code)
	}
	if code, _, _ := nob.do("GET", u1+"/v1/status", nil, "Authorization", basic(token)); code != 200 {
		t.Errorf("GET /v1/status with Basic and the token: %d", code)
	}
	if code, _, _ := nob.do("GET", u1+"/v1/status", nil, "Authorization", basic("nope")); code != 401 {
		t.Errorf("GET /v1/status with Basic and a wrong password: %d, want 401", code)
	}
	// pprof is off by default.
	if code, _, _ := ok.do("GET", u1+"/debug/pprof/", nil); code != 404 {
		t.Errorf("pprof without --pprof: %d, want 404", code)
	}

	// Plain HTTP on the HTTPS port is refused and stores nothing.
	plain := httpDo{t: t, client: &http.Client{Timeout: 5 * time.Second}, token: token}
	if code, _, body := plain.do("PUT", "http://"+n1.HTTPAddr()+"/v1/kv/k1", []byte("plain")); code != 400 || !strings.Contains(body, "HTTPS") {
		t.Errorf("plain HTTP PUT: %d %q, want 400 (HTTP request to an HTTPS server)", code, body)
	}
	if code, _, body := ok.do("GET", u1+"/v1/kv/k1?consistency=all", nil); code != 200 || body != "v1" {
		t.Errorf("after the plain-HTTP PUT: %d %q, want v1", code, body)
	}
	// A client that does not trust the CA cannot connect.
	req, _ := http.NewRequest("GET", u1+"/healthz", nil)
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a client without the CA connected")
	}

	// RPC: a peer with a certificate from the cluster CA is answered; one
	// from another CA, or with no certificate, is not.
	ping, _ := wire.Encode(&wire.Request{Op: wire.OpPing, From: "test"})
	rpcCall := func(cfg *tls.Config) error {
		tr, err := transport.ListenTCP(transport.Config{ListenAddr: "127.0.0.1:0", TLS: cfg, DialTimeout: 2 * time.Second, BackoffMin: time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = tr.Call(ctx, n1.RPCAddr(), ping)
		return err
	}
	good := ca.Issue(t, "peer").TLS(t)
	if err := rpcCall(&tls.Config{Certificates: []tls.Certificate{good}, RootCAs: ca.Pool, ServerName: "localhost"}); err != nil {
		t.Errorf("RPC with a certificate from the cluster CA: %v", err)
	}
	serverOnly := ca.Issue(t, "peer2", x509.ExtKeyUsageServerAuth).TLS(t)
	if err := rpcCall(&tls.Config{Certificates: []tls.Certificate{serverOnly}, RootCAs: ca.Pool, ServerName: "localhost"}); err != nil {
		t.Errorf("RPC with a serverAuth-only certificate from the cluster CA: %v", err)
	}
	other := testpki.NewCA(t, "another CA")
	rogue := other.Issue(t, "rogue").TLS(t)
	if err := rpcCall(&tls.Config{Certificates: []tls.Certificate{rogue}, RootCAs: ca.Pool, ServerName: "localhost"}); err == nil {
		t.Errorf("RPC with a certificate from another CA was answered")
	}
	if err := rpcCall(&tls.Config{RootCAs: ca.Pool, ServerName: "localhost"}); err == nil {
		t.Errorf("RPC without a client certificate was answered")
	}
	if err := rpcCall(nil); err == nil {
		t.Errorf("plain-TCP RPC was answered")
	}
	// Reload: a new certificate from the same CA is served to new
	// connections after ReloadTLS; a broken file keeps the old one.
	serverSerial := func() int64 {
		conn, err := tls.Dial("tcp", n1.HTTPAddr(), &tls.Config{RootCAs: ca.Pool})
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	before := serverSerial()
	fresh := ca.Issue(t, "n1")
	ca.Write(t, dir, "n1", fresh)
	if serverSerial() != before {
		t.Errorf("certificate changed before ReloadTLS")
	}
	if err := n1.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := serverSerial(); got != fresh.Serial {
		t.Errorf("after ReloadTLS the server presents serial %d, want %d", got, fresh.Serial)
	}
	os.WriteFile(files["n1"].Cert, []byte("not a certificate"), 0o600)
	if err := n1.ReloadTLS(); err == nil {
		t.Errorf("ReloadTLS of a broken file succeeded")
	}
	if got := serverSerial(); got != fresh.Serial {
		t.Errorf("after a failed reload the server presents serial %d, want %d still", got, fresh.Serial)
	}
	if code, _, body := ok.do("GET", u1+"/v1/kv/k1?consistency=all", nil); code != 200 || body != "v1" {
		t.Errorf("after reloads: %d %q", code, body)
	}
	// A node with a certificate from another CA cannot serve its peers:
	// the other node's dials to it fail, so it is useless as a replica.
	ocert := other.Write(t, t.TempDir(), "n3", other.Issue(t, "n3"))
	n3 := startNode(t, "n3", func(c *Config) {
		c.TLSCert, c.TLSKey, c.TLSCA = ocert.Cert, ocert.Key, ocert.CA
		c.AuthTokenFile, c.GossipKey, c.Join = tokenFile, key, []string{n1.GossipAddr()}
	})
	tr, err := transport.ListenTCP(transport.Config{ListenAddr: "127.0.0.1:0", TLS: n1.rpcTLS(), DialTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = tr.Call(ctx, n3.RPCAddr(), ping)
	cancel()
	tr.Close()
	if err == nil {
		t.Errorf("n1's RPC reached a node whose certificate another CA signed")
	}
}

// startNodeErr is New's error for a config, for tests of refusals.
func startNodeErr(id string, configure func(*Config)) error {
	cfg := DefaultConfig()
	cfg.ID, cfg.InMemory, cfg.FastGossip = id, true, true
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if configure != nil {
		configure(&cfg)
	}
	n, err := New(cfg, Deps{})
	if err == nil {
		n.Close()
	}
	return err
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	other := testpki.NewCA(t, "other")
	good := ca.Write(t, dir, "good", ca.Issue(t, "good"))
	foreign := other.Write(t, filepath.Join(t.TempDir()), "foreign", other.Issue(t, "foreign"))
	serverOnly := ca.Write(t, dir, "serveronly", ca.Issue(t, "serveronly", x509.ExtKeyUsageServerAuth))
	for _, c := range []struct {
		name      string
		cert, key string
		ca        string
		want      string
	}{
		{"missing file", filepath.Join(dir, "nope.crt"), good.Key, good.CA, "--tls-cert"},
		{"key of another cert", good.Cert, foreign.Key, good.CA, "private key does not match"},
		{"cert of another CA", foreign.Cert, foreign.Key, good.CA, "not signed by --tls-ca"},
		{"CA file without a certificate", good.Cert, good.Key, good.Key, "no PEM certificate"},
	} {
		err := startNodeErr("x", func(cfg *Config) { cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = c.cert, c.key, c.ca })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	// Between nodes the CA is the identity: a certificate marked for
	// serverAuth only is accepted (outside tools often issue those).
	if err := startNodeErr("x", func(cfg *Config) { cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = serverOnly.Cert, serverOnly.Key, good.CA }); err != nil {
		t.Errorf("serverAuth-only certificate: %v", err)
	}
	if err := startNodeErr("x", func(cfg *Config) { cfg.TLSCert = good.Cert }); err == nil || !strings.Contains(err.Error(), "all three") {
		t.Errorf("cert without key and CA: %v", err)
	}
	if err := (&Node{}).ReloadTLS(); err != ErrNoTLS {
		t.Errorf("ReloadTLS without TLS: %v", err)
	}
}

// TestPlainSetup: without TLS and token, /healthz and /metrics are open;
// metrics move with traffic; pprof is there when asked for; the dashboard
// and /v1/stats answer.
func TestPlainSetup(t *testing.T) {
	n := startNode(t, "p1", func(c *Config) { c.Replicas, c.Pprof = 1, true })
	h := httpDo{t: t, client: &http.Client{Timeout: 10 * time.Second}}
	u := "http://" + n.HTTPAddr()
	if code, _, _ := h.do("GET", u+"/healthz", nil); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	code, _, before := h.do("GET", u+"/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for i := 0; i < 20; i++ {
		if code, _, body := h.do("PUT", fmt.Sprintf("%s/v1/kv/key%d", u, i), []byte("v")); code != 204 {
			t.Fatalf("PUT: %d %s", code, body)
		}
		h.do("GET", fmt.Sprintf("%s/v1/kv/key%d?consistency=one", u, i), nil)
	}
	h.do("GET", u+"/v1/kv/key1?r=99", nil)
	h.do("BREW", u+"/v1/kv/key1", nil)
	_, _, after := h.do("GET", u+"/metrics", nil)
	for _, want := range []string{
		`quorumkv_requests_total{api="http",level="quorum",op="put",outcome="ok"} 20`,
		`quorumkv_requests_total{api="http",level="one",op="get",outcome="ok"} 20`,
		`quorumkv_requests_total{api="http",level="invalid",op="get",outcome="bad_request"} 1`,
		`quorumkv_requests_total{api="http",level="invalid",op="other",outcome="bad_request"} 1`,
		`quorumkv_request_duration_seconds_count{api="http",level="quorum",op="put"} 20`,
		`quorumkv_members{state="alive"} 1`, `quorumkv_partitions{member="p1"} 64`, `quorumkv_hints_pending 0`,
		`quorumkv_transfers_in_progress 0`, "quorumkv_anti_entropy_keys_compared_total", "quorumkv_store_lsm_bytes",
		"quorumkv_quorum_failures_total 0", "quorumkv_read_repairs_total", "quorumkv_hints_delivered_total", "quorumkv_hints_expired_total",
		"quorumkv_transfer_keys_sent_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("/metrics lacks %q", want)
		}
		if strings.Contains(want, "requests_total") && strings.Contains(before, want) {
			t.Errorf("/metrics had %q before the traffic", want)
		}
	}
	code, _, body := h.do("GET", u+"/v1/stats", nil)
	var st struct {
		Total struct {
			Count uint64 `json:"count"`
		} `json:"total"`
		Series   []json.RawMessage  `json:"series"`
		Counters map[string]float64 `json:"counters"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/v1/stats: %d %v %s", code, err, body)
	}
	if len(st.Series) == 0 || st.Counters == nil {
		t.Errorf("/v1/stats: %s", body)
	}
	if code, hdr, body := h.do("GET", u+"/", nil); code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "quorumkv") {
		t.Errorf("GET /: %d %s", code, hdr.Get("Content-Type"))
	}
	if code, _, body := h.do("GET", u+"/debug/pprof/", nil); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof: %d", code)
	}
	if code, _, _ := h.do("GET", u+"/debug/pprof/goroutine?debug=1", nil); code != 200 {
		t.Errorf("pprof goroutine: %d", code)
	}
}

// TestAuthWithoutTLS: with a token on plain HTTP, /healthz and /metrics
// need it too ("open only on plain setups").
func TestAuthWithoutTLS(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("tok"), 0o600)
	n := startNode(t, "a1", func(c *Config) { c.Replicas, c.AuthTokenFile = 1, tokenFile })
	u := "http://" + n.HTTPAddr()
	for _, path := range []string{"/healthz", "/metrics", "/v1/status", "/v1/kv/x", "/"} {
		if code, _, _ := (httpDo{t: t, client: http.DefaultClient}).do("GET", u+path, nil); code != 401 {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code, _, _ := (httpDo{t: t, client: http.DefaultClient, token: "tok"}).do("GET", u+path, nil); code == 401 {
			t.Errorf("GET %s with the token: 401", path)
		}
	}
}

// TestTooManySiblings: past 100 siblings a write is refused with 409, and
// the key still reads with its 100 siblings.
func TestTooManySiblings(t *testing.T) {
	// On disk: badger's in-memory mode refuses records over the store's
	// value threshold (1 KiB), which 100 siblings exceed.
	dir := t.TempDir()
	n := startNode(t, "s1", func(c *Config) { c.Replicas, c.InMemory, c.DataDir = 1, false, dir })
	h := httpDo{t: t, client: &http.Client{Timeout: 10 * time.Second}}
	u := "http://" + n.HTTPAddr() + "/v1/kv/hot"
	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				code, _, body := h.do("PUT", u, []byte(fmt.Sprint("v", g, "-", i)))
				if code != 204 {
					t.Errorf("write under the limit: %d %s", code, body)
				}
				codes <- code
			}
		}(g)
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 204 {
			t.Fatalf("write %d while under the limit", c)
		}
	}
	code, _, body := h.do("PUT", u, []byte("one too many"))
	if code != 409 || !strings.Contains(body, "conflict") || !strings.Contains(body, "context") {
		t.Fatalf("101st sibling: %d %s, want 409 conflict telling to write with the context", code, body)
	}
	code, hdr, body := h.do("GET", u, nil)
	var sib wire.SiblingsBody
	if err := json.Unmarshal([]byte(body), &sib); code != 300 || err != nil || len(sib.Siblings) != 100 {
		t.Fatalf("GET: %d, %d siblings (%v)", code, len(sib.Siblings), err)
	}
	// Resolving with the context works.
	if code, _, body := h.do("PUT", u, []byte("merged"), "X-Context", hdr.Get("X-Context")); code != 204 {
		t.Fatalf("resolving write: %d %s", code, body)
	}
	if code, _, body := h.do("GET", u, nil); code != 200 || body != "merged" {
		t.Fatalf("after resolving: %d %q", code, body)
	}
}

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	got := []net.Conn{<-accepted, <-accepted}
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted over the limit of 2")
	case <-time.After(200 * time.Millisecond):
	}
	got[0].Close()
	got[0].Close() // a second Close must not free a second slot
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	got[1].Close()
	l.Close()
	if _, ok := <-accepted; ok {
		t.Fatal("accept after close")
	}
}

// TestDashboardInChromium loads the dashboard of a small live cluster in
// headless Chromium and checks that the page's script filled it in from
// /v1/status and /v1/stats. The screenshot is kept at
// $QUORUMKV_DASHBOARD_PNG when set.
func TestDashboardInChromium(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install -y chromium); the dashboard was not checked in a browser")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	n1 := startNode(t, "n1", func(c *Config) { c.ClusterName = "alpha" })
	n2 := startNode(t, "n2", func(c *Config) { c.ClusterName = "alpha"; c.Join = []string{n1.GossipAddr()} })
	waitAlive(t, n1, 2)
	waitAlive(t, n2, 2)
	// A node of another cluster tries to join: the page says it was refused.
	if err := startNodeErr("n3", func(c *Config) {
		c.ClusterName, c.Replicas, c.Partitions, c.Join = "beta", 2, 64, []string{n1.GossipAddr()}
	}); err == nil {
		t.Fatal("a node named beta joined the cluster named alpha")
	}
	for deadline := time.Now().Add(5 * time.Second); n1.Status(context.Background()).Refused["n3"] == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("n1 does not list n3 as refused")
		}
	}
	h := httpDo{t: t, client: &http.Client{Timeout: 10 * time.Second}}
	u := "http://" + n1.HTTPAddr()
	for i := 0; i < 50; i++ {
		h.do("PUT", fmt.Sprintf("%s/v1/kv/k%d", u, i), []byte("v"))
		h.do("GET", fmt.Sprintf("%s/v1/kv/k%d?consistency=one", u, i), nil)
	}
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		home := t.TempDir()
		cmd := exec.CommandContext(ctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--no-first-run", "--user-data-dir=" + home, "--virtual-time-budget=4000", "--window-size=1280,900"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = io.Discard
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out.String()
	}
	dom := run("--dump-dom", u+"/")
	for _, want := range []string{"n1", "n2", "alive", "this node", "quorum", "put", "live", ">" + Version() + "</td>", "cluster <b>alpha</b>", `<b>n3</b> refused: membership: refusing node "n3": it is in the cluster named "beta"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered dashboard lacks %q", want)
		}
	}
	if strings.Contains(dom, "Cannot reach this node") {
		t.Errorf("the dashboard could not fetch its data")
	}
	png := os.Getenv("QUORUMKV_DASHBOARD_PNG")
	if png == "" {
		png = filepath.Join(t.TempDir(), "dash.png")
	}
	run("--screenshot="+png, u+"/")
	if fi, err := os.Stat(png); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot %s missing or tiny: %v", png, err)
	}
}

// FuzzHandleRPC sends arbitrary bytes, and mutated valid requests of every
// operation, to a live node's RPC handler: nothing may panic (the
// transport would recover it, but a panic can leave a lock held), and
// bytes that do not decode must be refused.
func FuzzHandleRPC(f *testing.F) {
	obj := vclock.Object{Clock: vclock.VV{{Actor: "x.1", Counter: 1}}, Siblings: []vclock.Sibling{{Dot: vclock.Dot{Actor: "x.1", Counter: 1}, Value: []byte("v")}}}
	for _, r := range []wire.Request{
		{Op: wire.OpRead, Partition: 3, Key: []byte("k")},
		{Op: wire.OpWrite, Partition: 3, Key: []byte("k"), Object: &obj},
		{Op: wire.OpWrite, Partition: 63, Key: []byte("k"), Object: &obj, HintFor: "nobody"},
		{Op: wire.OpStrongWrite, Partition: 3, Key: []byte("k"), Strong: &vclock.StrongWrite{Value: []byte("s")}},
		{Op: wire.OpCoordinate, Partition: 3, Key: []byte("k"), Client: &wire.ClientOp{Value: []byte("v"), W: 1, TimeoutMs: 50}},
		{Op: wire.OpTreeLevel, Partition: 3, Level: 1, Indices: []int{0, 1}},
		{Op: wire.OpSegment, Partition: 3, Indices: []int{0}},
		{Op: wire.OpFetch, Partition: 3, Keys: [][]byte{[]byte("k")}},
		{Op: wire.OpMergeBatch, Partition: 3, Objects: []wire.KeyObject{{Key: []byte("k"), Object: obj}}},
		{Op: wire.OpTransfer, Partition: 3, Objects: []wire.KeyObject{{Key: []byte("k"), Object: obj}}},
		{Op: wire.OpTransferDone, Partition: 3},
		{Op: wire.OpPing},
		{Op: wire.OpHolds, Partition: 3},
		{Op: wire.OpRead, Partition: 65535, Key: []byte("k")},
		{Op: wire.OpTreeLevel, Partition: 3, Level: 1 << 20, Indices: []int{-1, 1 << 40}},
	} {
		b, err := wire.Encode(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x82, 0xa1, 'o', 0x01, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff, 'x'})
	n := startFuzzNode(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, decodeErr := wire.DecodeRequest(b)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		// handleRPC decodes first and touches nothing when that fails.
		if _, err := n.handleRPC(ctx, b); decodeErr != nil && err == nil {
			t.Fatalf("undecodable request answered")
		}
	})
}

func startFuzzNode(f *testing.F) *Node {
	cfg := DefaultConfig()
	// On disk: in badger's in-memory mode a record over the store's value
	// threshold (1 KiB) can panic badger's writer goroutine, which takes the
	// fuzzing process down with it (tests only: on disk such values go to
	// the value log).
	cfg.ID, cfg.DataDir, cfg.FastGossip = "fz", f.TempDir(), true
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Replicas, cfg.Partitions, cfg.RequestTimeout = 1, 64, 200*time.Millisecond
	cfg.AntiEntropyInterval = 2 * time.Second // background work sees the fuzzed data too
	n, err := New(cfg, Deps{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	return n
}

// TestHostileHTTP sends malformed and oversized requests over raw TCP to a
// live node: each gets a 4xx (or the connection is closed), the node stays
// healthy, and the stored value never changes.
func TestHostileHTTP(t *testing.T) {
	n := startNode(t, "h1", func(c *Config) { c.Replicas, c.MaxValueBytes = 1, 1024 })
	addr := n.HTTPAddr()
	h := httpDo{t: t, client: &http.Client{Timeout: 10 * time.Second}}
	if code, _, _ := h.do("PUT", "http://"+addr+"/v1/kv/victim", []byte("original")); code != 204 {
		t.Fatalf("setup PUT: %d", code)
	}
	raw := func(req string) string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		go func() { io.WriteString(c, req); c.(*net.TCPConn).CloseWrite() }()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	big := strings.Repeat("a", 2048)
	for _, c := range []struct {
		name, req string
		want      string // status line prefix; "" means closed or any 4xx
	}{
		{"huge header", "GET /v1/kv/victim HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 100<<10) + "\r\n\r\n", "HTTP/1.1 431"},
		{"huge URI", "GET /v1/kv/" + strings.Repeat("u", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 431"},
		{"value over the limit", "PUT /v1/kv/victim HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + big, "HTTP/1.1 413"},
		{"chunked value over the limit", "PUT /v1/kv/victim HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + big + "\r\n0\r\n\r\n", "HTTP/1.1 413"},
		{"body shorter than announced", "PUT /v1/kv/victim HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort", ""},
		{"bad chunk size", "PUT /v1/kv/victim HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nevil\r\n0\r\n\r\n", ""},
		{"undecodable context", "PUT /v1/kv/victim HTTP/1.1\r\nHost: x\r\nX-Context: !!!!\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"context of random bytes", "PUT /v1/kv/victim HTTP/1.1\r\nHost: x\r\nX-Context: /////////////////w\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"bad percent-encoding", "PUT /v1/kv/%zz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"key too long", "PUT /v1/kv/" + strings.Repeat("k", 1025) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"empty key", "PUT /v1/kv/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"unknown level", "PUT /v1/kv/victim?consistency=most HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"w out of range", "PUT /v1/kv/victim?w=99 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"w zero", "PUT /v1/kv/victim?w=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"w negative", "DELETE /v1/kv/victim?w=-1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400"},
		{"level and w", "PUT /v1/kv/victim?consistency=one&w=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 400"},
		{"odd method", "PATCH /v1/kv/victim HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil", "HTTP/1.1 405"},
		{"garbage", "\x00\x01\x02\xff garbage\r\n\r\n", "HTTP/1.1 400"},
		{"HTTP/0.9", "GET /v1/kv/victim\r\n\r\n", "HTTP/1.1 400"},
		{"no Host", "GET /v1/kv/victim HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"TLS hello on plain port", "\x16\x03\x01\x00\x05hello", "HTTP/1.1 400"},
	} {
		resp := raw(c.req)
		status, _, _ := strings.Cut(resp, "\r\n")
		switch {
		case c.want != "" && !strings.HasPrefix(status, c.want):
			t.Errorf("%s: answered %q, want %s", c.name, status, c.want)
		case c.want == "" && status != "" && !strings.HasPrefix(status, "HTTP/1.1 4"):
			t.Errorf("%s: answered %q, want a 4xx or nothing", c.name, status)
		}
		code, _, body := h.do("GET", "http://"+addr+"/v1/kv/victim", nil)
		if code != 200 || body != "original" {
			t.Fatalf("after %s: GET answered %d %q, want the original value", c.name, code, body)
		}
	}
	if code, _, _ := h.do("GET", "http://"+addr+"/healthz", nil); code != 200 {
		t.Errorf("healthz after the hostile requests: %d", code)
	}
}
