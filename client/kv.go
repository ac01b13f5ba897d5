package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/quorumkv/quorumkv/wire"
)

// Consistency levels for Options.Consistency.
const (
	LevelOne    = "one"
	LevelQuorum = "quorum"
	LevelAll    = "all"
	LevelStrong = "strong"
)

// Options are the per-request settings of Get, Put and Delete. The zero
// value asks for the server's default level (quorum).
type Options struct {
	// Consistency is "one", "quorum", "all" or "strong" (the Level
	// constants), or "" for the server's default. It is sent as is; the
	// server rejects an unknown level with ErrBadRequest.
	Consistency string
	// R is the number of replica answers a Get waits for (r=), W the number
	// a Put or Delete waits for (w=); 0 leaves it unset. Each is sent only on
	// its kind of request. The server rejects a value outside 1..N, or one
	// combined with Consistency.
	R, W int
	// Context is the X-Context of an earlier read, sent with Put and Delete:
	// the write then supersedes exactly the versions that read saw. Empty:
	// a Put is concurrent with what is stored (a sibling), unless the level
	// is strong; a Delete removes what is stored (see Delete). Get ignores
	// it.
	Context string
}

// Receipt is the consistency receipt every KV answer carries in headers.
// A header the answer lacked reads as 0.
type Receipt struct {
	Replicas   int // X-Replicas: replicas asked
	Acks       int // X-Acks: replicas that answered in time
	Fallbacks  int // X-Fallbacks: how many of those were fallback nodes
	ReadRepair int // X-Read-Repair: replicas repaired (reads only)
}

// GetResult is the answer to Get.
type GetResult struct {
	// Found reports that at least one live value exists.
	Found bool
	// Values holds every sibling value: one normally, several when
	// concurrent writes left siblings, none when not found.
	Values [][]byte
	// Context is the X-Context to pass to the next Put or Delete of this
	// key. It is set on a not-found answer too when a tombstone is known.
	Context string
	// Receipt is the answer's consistency receipt.
	Receipt Receipt
}

// WriteResult is the answer to Put and Delete.
type WriteResult struct {
	// Context is the context of the version just written.
	Context string
	// Receipt is the answer's consistency receipt.
	Receipt Receipt
}

// Get reads key. A missing or deleted key is not an error: it returns
// Found=false (with the tombstone's Context when the server knows one).
// Siblings come back together in Values.
func (c *Client) Get(ctx context.Context, key []byte, o Options) (GetResult, error) {
	if err := checkKey(key); err != nil {
		return GetResult{}, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, c.ep.keyURL("/v1/kv/", key, o.query(true)), nil, "")
	if err != nil {
		return GetResult{}, err
	}
	res := GetResult{
		Context: headerString(resp.Header, wire.HeaderContext),
		Receipt: parseReceipt(resp.Header),
	}
	switch resp.StatusCode {
	case http.StatusOK:
		v, err := readBody(resp)
		_ = resp.Body.Close()
		if err != nil {
			return GetResult{}, transportError(resp.Request, "reading the value", err)
		}
		res.Found = true
		res.Values = [][]byte{v}
		return res, nil
	case http.StatusMultipleChoices:
		b, err := readBody(resp)
		_ = resp.Body.Close()
		if err != nil {
			return GetResult{}, transportError(resp.Request, "reading the siblings", err)
		}
		var sb wire.SiblingsBody
		if err := json.Unmarshal(b, &sb); err != nil {
			return GetResult{}, &Error{
				Status: resp.StatusCode, Code: wire.CodeInternal, Endpoint: c.ep.base,
				Message: "the siblings answer is not valid JSON: " + err.Error(),
				Needed:  -1, Acked: -1, Receipt: res.Receipt,
			}
		}
		if sb.Context != "" {
			res.Context = sb.Context
		}
		res.Values = make([][]byte, len(sb.Siblings))
		for i, s := range sb.Siblings {
			res.Values[i] = s.Value
		}
		res.Found = len(res.Values) > 0
		return res, nil
	case http.StatusNotFound:
		discardBody(resp)
		return res, nil
	}
	err = c.errorFrom(resp)
	discardBody(resp)
	return GetResult{}, err
}

// Put writes value under key. With o.Context from an earlier Get it
// supersedes exactly the versions that Get saw; without, it becomes a
// sibling of what is stored (unless the level is strong).
func (c *Client) Put(ctx context.Context, key, value []byte, o Options) (WriteResult, error) {
	if value == nil {
		value = []byte{} // a body, even empty, marks this as a write of a value
	}
	return c.write(ctx, http.MethodPut, key, value, o)
}

// Delete writes a tombstone for key. With o.Context it supersedes exactly
// the versions that read saw; without, it supersedes every version the
// key's coordinating primary holds, so the key reads as absent afterwards
// unless a concurrent write elsewhere left a sibling.
func (c *Client) Delete(ctx context.Context, key []byte, o Options) (WriteResult, error) {
	return c.write(ctx, http.MethodDelete, key, nil, o)
}

func (c *Client) write(ctx context.Context, method string, key, value []byte, o Options) (WriteResult, error) {
	if err := checkKey(key); err != nil {
		return WriteResult{}, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.send(ctx, method, c.ep.keyURL("/v1/kv/", key, o.query(false)), value, o.Context)
	if err != nil {
		return WriteResult{}, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := c.errorFrom(resp)
		discardBody(resp)
		return WriteResult{}, err
	}
	res := WriteResult{
		Context: headerString(resp.Header, wire.HeaderContext),
		Receipt: parseReceipt(resp.Header),
	}
	discardBody(resp)
	return res, nil
}
