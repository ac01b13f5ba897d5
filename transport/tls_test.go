package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "quorumkv test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// nodeCert issues a certificate usable as both server and client on loopback.
func (ca *testCA) nodeCert(t *testing.T, name string, serial int64) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mutualTLS is a node's config: it presents cert and requires the peer's.
func (ca *testCA) mutualTLS(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{
		RootCAs:    ca.pool,
		ClientCAs:  ca.pool,
		ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

func TestTCPMutualTLS(t *testing.T) {
	defer checkNoLeak(t)()
	ca := newTestCA(t)
	a, b := ca.nodeCert(t, "a", 2), ca.nodeCert(t, "b", 3)

	var served atomic.Int32
	scfg := testConfig()
	scfg.TLS = ca.mutualTLS(&a)
	srv := listen(t, scfg, func(ctx context.Context, req []byte) ([]byte, error) {
		served.Add(1)
		return append([]byte(CallerAddr(ctx)+":"), req...), nil
	})
	ccfg := testConfig()
	ccfg.TLS = ca.mutualTLS(&b)
	cli := listen(t, ccfg, nil)

	resp, err := cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), []byte("hi"))
	if err != nil {
		t.Fatalf("mutual TLS call: %v", err)
	}
	if want := cli.Addr() + ":hi"; string(resp) != want {
		t.Fatalf("got %q, want %q", resp, want)
	}

	// A client without a certificate is refused.
	ncfg := testConfig()
	ncfg.TLS = ca.mutualTLS(nil)
	nocert := listen(t, ncfg, nil)
	before := served.Load()
	if _, err := nocert.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), []byte("hi")); err == nil {
		t.Fatal("a client without a certificate got an answer")
	} else {
		t.Logf("client without certificate: %v", err)
	}

	// A client with a certificate from another CA is refused.
	other := newTestCA(t)
	foreign := other.nodeCert(t, "x", 4)
	fcfg := testConfig()
	fcfg.TLS = ca.mutualTLS(&foreign)
	fcli := listen(t, fcfg, nil)
	if _, err := fcli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), []byte("hi")); err == nil {
		t.Fatal("a client with a foreign certificate got an answer")
	}

	// A plain-TCP client is refused too.
	plain := listen(t, testConfig(), nil)
	if _, err := plain.Call(ctxTimeout(t, 2*time.Second), srv.Addr(), []byte("hi")); err == nil {
		t.Fatal("a plain client got an answer from a TLS server")
	}
	if n := served.Load(); n != before {
		t.Fatalf("handler ran %d times for refused clients", n-before)
	}

	// The server is still fine.
	if _, err := cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), []byte("again")); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
	for _, tr := range []*TCP{cli, nocert, fcli, plain, srv} {
		tr.Close()
	}
}

// TestTCPTLSReload shows certificate rotation through GetCertificate and
// GetClientCertificate: new connections pick up the new certificate.
func TestTCPTLSReload(t *testing.T) {
	ca := newTestCA(t)
	var current atomic.Pointer[tls.Certificate]
	first := ca.nodeCert(t, "gen1", 10)
	current.Store(&first)
	reloading := ca.mutualTLS(nil)
	reloading.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }
	reloading.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return current.Load(), nil }

	seen := make(chan string, 4)
	scfg := testConfig()
	scfg.TLS = reloading
	scfg.ConnsPerPeer = 1
	srv := listen(t, scfg, nil)
	cb := ca.nodeCert(t, "client", 11)
	ccfg := testConfig()
	ccfg.ConnsPerPeer = 1
	ccfg.TLS = ca.mutualTLS(&cb)
	ccfg.TLS.VerifyConnection = func(cs tls.ConnectionState) error {
		seen <- cs.PeerCertificates[0].Subject.CommonName
		return nil
	}
	cli := listen(t, ccfg, nil)
	if _, err := cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), nil); err == nil {
		t.Fatal("nil handler should answer with an error")
	}
	if cn := <-seen; cn != "gen1" {
		t.Fatalf("first connection saw %q", cn)
	}
	second := ca.nodeCert(t, "gen2", 12)
	current.Store(&second)
	// Force a new connection.
	cli.peer(srv.Addr()).slots[0].Load().fail(ErrConnLost)
	cli.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), nil)
	if cn := <-seen; cn != "gen2" {
		t.Fatalf("after reload the server presented %q", cn)
	}
}
