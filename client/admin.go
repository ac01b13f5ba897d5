package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/quorumkv/quorumkv/wire"
)

// Status returns the node's view of the cluster (GET /v1/status).
func (c *Client) Status(ctx context.Context) (wire.Status, error) {
	var st wire.Status
	err := c.getJSON(ctx, c.ep.pathURL("/v1/status"), &st)
	return st, err
}

// Explain returns where key lives and what each replica of its preference
// list holds now (GET /v1/explain/{key}).
func (c *Client) Explain(ctx context.Context, key []byte) (wire.Explain, error) {
	var ex wire.Explain
	if err := checkKey(key); err != nil {
		return ex, err
	}
	err := c.getJSON(ctx, c.ep.keyURL("/v1/explain/", key, ""), &ex)
	return ex, err
}

// Health returns nil when the node is ready to serve (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.expectSuccess(ctx, http.MethodGet, c.ep.pathURL("/healthz"), true)
}

// Leave asks the node to hand its data to the new owners, leave the
// cluster and exit (POST /v1/admin/leave). It returns once the node has
// accepted (200 or 202); the handoff may still be running then — watch
// Status on another node to see it finish. A node may also hold the answer
// until its handoff is done, so when ctx has a deadline, that deadline alone
// bounds Leave (it may be later than Config.Timeout); without one,
// Config.Timeout applies as usual.
func (c *Client) Leave(ctx context.Context) error {
	_, hasDeadline := ctx.Deadline()
	return c.expectSuccess(ctx, http.MethodPost, c.ep.pathURL("/v1/admin/leave"), !hasDeadline)
}

func (c *Client) expectSuccess(ctx context.Context, method string, u *url.URL, timeout bool) error {
	if timeout {
		var cancel context.CancelFunc
		ctx, cancel = c.withTimeout(ctx)
		defer cancel()
	}
	resp, err := c.send(ctx, method, u, nil, "")
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err = c.errorFrom(resp)
	}
	discardBody(resp)
	return err
}

func (c *Client) getJSON(ctx context.Context, u *url.URL, into any) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, u, nil, "")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		err := c.errorFrom(resp)
		discardBody(resp)
		return err
	}
	b, err := readBody(resp)
	_ = resp.Body.Close()
	if err != nil {
		return transportError(resp.Request, "reading the answer", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return &Error{
			Status: resp.StatusCode, Code: wire.CodeInternal, Endpoint: c.ep.base,
			Message: "the answer is not valid JSON: " + err.Error(), Needed: -1, Acked: -1,
		}
	}
	return nil
}
