package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/wire"
)

// Header values shared by every request; net/http only reads them.
var (
	octetStream = []string{"application/octet-stream"}
	noop        = context.CancelFunc(func() {})
)

// withTimeout applies the per-request timeout unless the caller's deadline
// is earlier already (which saves a timer on the hot path).
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	t := c.s.timeout
	if t < 0 {
		return ctx, noop
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= t {
		return ctx, noop
	}
	return context.WithTimeout(ctx, t)
}

// send sends one request. body may be nil; xctx, when set, goes in
// X-Context. A transport failure is returned as net/http's own error.
func (c *Client) send(ctx context.Context, method string, u *url.URL, body []byte, xctx string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// The URL is built by hand (see keyURL) so that net/http sends the key
	// exactly as escaped; an empty string parses to an empty URL cheaply.
	req, err := http.NewRequestWithContext(ctx, method, "", rd)
	if err != nil {
		return nil, err
	}
	req.URL = u
	if c.s.auth != nil {
		req.Header["Authorization"] = c.s.auth
	}
	if body != nil {
		req.Header["Content-Type"] = octetStream
	}
	if xctx != "" {
		req.Header[wire.HeaderContext] = []string{xctx}
	}
	return c.s.http.Do(req)
}

// transportError wraps a failure that happened after the answer began (its
// body could not be read): the outcome is unknown, so it is not an *Error.
func transportError(req *http.Request, what string, err error) error {
	if req == nil || req.URL == nil {
		return fmt.Errorf("client: %s: %w", what, err)
	}
	return fmt.Errorf("client: %s %q: %s: %w", req.Method, req.URL.Redacted(), what, err)
}

// maxPrealloc bounds the buffer sized from Content-Length before reading.
const maxPrealloc = 64 << 20

// readBody reads the whole body, sized from Content-Length when known. The
// final read sees EOF, which hands the connection back for reuse.
func readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= maxPrealloc {
		buf := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(resp.Body)
}

// maxDrain bounds how much of an unread body is discarded to keep the
// connection; past it, closing the connection is cheaper.
const maxDrain = 256 << 10

// discardBody drains (up to maxDrain) and closes a body nobody needs, so
// the connection can be reused.
func discardBody(resp *http.Response) {
	if resp.Body != http.NoBody && resp.ContentLength != 0 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	_ = resp.Body.Close()
}

// parseReceipt reads the consistency receipt headers; absent ones are 0.
func parseReceipt(h http.Header) Receipt {
	return Receipt{
		Replicas:   headerInt(h, wire.HeaderReplicas),
		Acks:       headerInt(h, wire.HeaderAcks),
		Fallbacks:  headerInt(h, wire.HeaderFallbacks),
		ReadRepair: headerInt(h, wire.HeaderReadRepair),
	}
}

// headerInt reads an integer header; k must be in canonical form (the wire
// constants are), which skips net/http's canonicalization.
func headerInt(h http.Header, k string) int {
	v := h[k]
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(v[0]))
	if err != nil {
		return 0
	}
	return n
}

// headerString reads a header by its canonical name.
func headerString(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
