package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/rawio"
)

// DefaultTimeout is the per-request timeout used when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// Config configures a Client. New copies it; later changes have no effect.
type Config struct {
	// Endpoints are the base URLs of nodes, e.g. "http://127.0.0.1:7000".
	// A URL without a scheme gets "http://". A base path is kept, so a node
	// behind a reverse proxy at "https://proxy/qkv" works. Requests go to
	// Endpoints[0] unless a view made with At picks another. At least one
	// is required.
	Endpoints []string

	// HTTPClient sends the requests. Nil: a client tuned for many requests
	// in flight to few hosts (keep-alives, 256 idle connections per host,
	// 5s dial timeout, no proxy, no automatic gzip, redirects not followed).
	// Supplying one makes TLS below irrelevant.
	HTTPClient *http.Client

	// TLS is used by the default HTTPClient for https endpoints (e.g. a
	// RootCAs pool for a cluster started with --tls-ca). Nil: system roots.
	TLS *tls.Config

	// Token, when set, is sent as "Authorization: Bearer <Token>" on every
	// request (nodes started with --auth-token-file demand it).
	Token string

	// Timeout bounds each request, from sending to reading the whole answer.
	// 0 means DefaultTimeout (10s); negative means none, so only the
	// caller's context bounds it. A context deadline that comes earlier wins.
	Timeout time.Duration
}

// DefaultConfig returns the configuration for a local development cluster:
// one endpoint, http://127.0.0.1:7000 (node 0 of `quorumkv dev`), and the
// default timeout.
func DefaultConfig() Config {
	return Config{
		Endpoints: []string{"http://127.0.0.1:7000"},
		Timeout:   DefaultTimeout,
	}
}

// Validate reports every problem with the configuration at once.
func (cfg Config) Validate() error {
	_, err := parseEndpoints(cfg.Endpoints)
	return err
}

// Client talks to quorumkv nodes over HTTP. It is safe for concurrent use;
// make one and share it (and its views from At).
type Client struct {
	s  *shared
	ep *endpoint
}

// shared is what every view of one Client has in common.
type shared struct {
	http      *http.Client
	ownHTTP   bool // the default client is ours to close
	endpoints []endpoint
	auth      []string // Authorization header value; nil without a token
	timeout   time.Duration
}

// endpoint is one node's parsed base URL.
type endpoint struct {
	base    string // normalized URL, as Endpoints reports it
	scheme  string
	host    string
	path    string // base path, unescaped, no trailing slash
	rawPath string // base path, escaped
}

// New returns a client for the nodes in cfg.Endpoints.
func New(cfg Config) (*Client, error) {
	eps, err := parseEndpoints(cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	s := &shared{endpoints: eps, http: cfg.HTTPClient, timeout: cfg.Timeout}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.http == nil {
		s.http = defaultHTTPClient(cfg.TLS)
		s.ownHTTP = true
	}
	if cfg.Token != "" {
		s.auth = []string{"Bearer " + cfg.Token}
	}
	return &Client{s: s, ep: &s.endpoints[0]}, nil
}

func defaultHTTPClient(tlsConf *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// No proxy: a database client should reach its nodes directly, and
		// an HTTP_PROXY meant for something else must not reroute it.
		Proxy: nil,
		// Connections skip the scheduler's system-call bookkeeping
		// (internal/rawio), as the nodes' own do.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return rawio.Wrap(c), nil
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no global cap; the per-host cap applies
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Values are opaque bytes; a gzip layer would only cost CPU.
		DisableCompression: true,
	}
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf.Clone()
	}
	return &http.Client{
		Transport: tr,
		// The API never redirects; surface a 3xx rather than follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func parseEndpoints(raw []string) ([]endpoint, error) {
	if len(raw) == 0 {
		return nil, errors.New("client: no endpoints: at least one node URL is required")
	}
	var errs []error
	eps := make([]endpoint, 0, len(raw))
	for i, r := range raw {
		ep, err := parseEndpoint(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("client: endpoint %d %q: %w", i, r, err))
			continue
		}
		eps = append(eps, ep)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return eps, nil
}

func parseEndpoint(r string) (endpoint, error) {
	s := strings.TrimSpace(r)
	if s == "" {
		return endpoint{}, errors.New("empty URL")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, err
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, fmt.Sprintf("scheme %q is not http or https", u.Scheme))
	}
	if u.Host == "" {
		problems = append(problems, "no host")
	}
	if u.User != nil {
		problems = append(problems, "credentials in the URL are not supported (use Config.Token)")
	}
	if u.RawQuery != "" || u.ForceQuery {
		problems = append(problems, "a query is not allowed")
	}
	if u.Fragment != "" {
		problems = append(problems, "a fragment is not allowed")
	}
	if len(problems) > 0 {
		return endpoint{}, errors.New(strings.Join(problems, "; "))
	}
	ep := endpoint{
		scheme:  u.Scheme,
		host:    u.Host,
		path:    strings.TrimRight(u.Path, "/"),
		rawPath: strings.TrimRight(u.EscapedPath(), "/"),
	}
	ep.base = (&url.URL{Scheme: ep.scheme, Host: ep.host, Path: ep.path, RawPath: ep.rawPath}).String()
	return ep, nil
}

// Endpoints returns the normalized base URLs of all nodes, in Config order.
func (c *Client) Endpoints() []string {
	out := make([]string, len(c.s.endpoints))
	for i := range c.s.endpoints {
		out[i] = c.s.endpoints[i].base
	}
	return out
}

// Endpoint returns the base URL this view sends its requests to.
func (c *Client) Endpoint() string { return c.ep.base }

// At returns a view of the same client that sends to endpoint i, taken
// modulo the number of endpoints (negative i counts from the end). Views
// share connections and configuration and are cheap to make.
func (c *Client) At(i int) *Client {
	n := len(c.s.endpoints)
	i %= n
	if i < 0 {
		i += n
	}
	return &Client{s: c.s, ep: &c.s.endpoints[i]}
}

// Close closes idle connections of the client's default HTTP client, so no
// connection goroutines outlive it. A caller-supplied Config.HTTPClient is
// left alone. Close is idempotent, and the client still works afterwards
// (it opens new connections).
func (c *Client) Close() error {
	if c.s.ownHTTP {
		c.s.http.CloseIdleConnections()
	}
	return nil
}
