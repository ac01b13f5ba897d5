package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// KV is the key-value service the API fronts.
type KV interface {
	Get(ctx context.Context, key []byte, c replication.Consistency) (replication.Result, error)
	Put(ctx context.Context, key []byte, w replication.Write) (replication.Result, error)
	Explain(ctx context.Context, key []byte) wire.Explain
}

// Node is what the status and admin endpoints need from the node.
type Node interface {
	Status(ctx context.Context) wire.Status
	// Leave starts handing this node's data to the new owners; the node
	// leaves the cluster and exits when done.
	Leave() error
	Ready() bool
}

// Observer is told about every key-value request (for metrics).
type Observer func(op string, level string, code int, elapsed time.Duration)

// Config configures the HTTP API.
type Config struct {
	// MaxKeyBytes is the longest key accepted. Default 1024.
	MaxKeyBytes int
	// MaxValueBytes is the largest value accepted. Default 1 MiB.
	MaxValueBytes int64
	// AuthToken, when set, must be sent as "Authorization: Bearer TOKEN" on
	// every request.
	AuthToken string
	// Metrics serves /metrics when set.
	Metrics http.Handler
	// Dashboard serves / when set.
	Dashboard http.Handler
	// Extra is mounted for paths no other route takes (pprof, for example).
	Extra map[string]http.Handler
	// Observe, when set, is called after every key-value request.
	Observe Observer
	Logger  *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config { return Config{MaxKeyBytes: 1024, MaxValueBytes: 1 << 20} }

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxKeyBytes < 1 {
		errs = append(errs, errors.New("server: max key bytes must be at least 1"))
	}
	if c.MaxValueBytes < 0 {
		errs = append(errs, errors.New("server: max value bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// Server is the HTTP handler of the client API.
type Server struct {
	cfg  Config
	kv   KV
	node Node
	log  *slog.Logger
}

// New returns the API handler.
func New(cfg Config, kv KV, node Node) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, kv: kv, node: node, log: log}, nil
}

const kvPrefix = "/v1/kv/"

// ServeHTTP routes a request. Key paths are matched by hand, not by
// http.ServeMux, because keys are arbitrary bytes and the mux would clean
// or redirect paths such as "a/../b".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AuthToken != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="quorumkv"`)
		if strings.HasPrefix(r.URL.Path, kvPrefix) { // no replica was asked
			setReceipt(w.Header(), replication.Receipt{}, isRead(r))
		}
		writeJSONError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token from --auth-token-file>", nil, nil)
		return
	}
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, kvPrefix):
		s.serveKV(w, r, path[len(kvPrefix):])
	case strings.HasPrefix(path, "/v1/explain/"):
		s.serveExplain(w, r, path[len("/v1/explain/"):])
	case path == "/v1/status":
		if !allow(w, r, http.MethodGet) {
			return
		}
		writeJSON(w, http.StatusOK, s.node.Status(r.Context()))
	case path == "/v1/admin/leave":
		if !allow(w, r, http.MethodPost) {
			return
		}
		if err := s.node.Leave(); err != nil {
			writeJSONError(w, http.StatusConflict, wire.CodeConflict, err.Error(), nil, nil)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "leaving"})
	case path == "/healthz":
		if !s.node.Ready() {
			writeJSONError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, "node is not ready", nil, nil)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	case path == "/metrics" && s.cfg.Metrics != nil:
		s.cfg.Metrics.ServeHTTP(w, r)
	case path == "/" && s.cfg.Dashboard != nil:
		s.cfg.Dashboard.ServeHTTP(w, r)
	default:
		for prefix, h := range s.cfg.Extra {
			if strings.HasPrefix(path, prefix) {
				h.ServeHTTP(w, r)
				return
			}
		}
		writeJSONError(w, http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, path), nil, nil)
	}
}

// isRead reports whether a KV request reads (its receipt has X-Read-Repair).
func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// authorized checks "Authorization: Bearer TOKEN". The scheme name is
// case-insensitive (RFC 9110 §11.1), the token is compared exactly.
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AuthToken)) == 1
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeJSONError(w, http.StatusMethodNotAllowed, wire.CodeBadRequest, fmt.Sprintf("method %s is not allowed here; use %s", r.Method, strings.Join(methods, " or ")), nil, nil)
	return false
}

// badRequest is a client error found while decoding a request.
type badRequest struct{ msg string }

func (b badRequest) Error() string { return b.msg }

func (s *Server) decodeKey(escaped string) ([]byte, error) {
	k, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, badRequest{fmt.Sprintf("the key is not valid percent-encoding: %v", err)}
	}
	if len(k) == 0 {
		return nil, badRequest{"the key is empty; keys are 1 to " + strconv.Itoa(s.cfg.MaxKeyBytes) + " bytes"}
	}
	if len(k) > s.cfg.MaxKeyBytes {
		return nil, badRequest{fmt.Sprintf("the key is %d bytes; the limit is %d", len(k), s.cfg.MaxKeyBytes)}
	}
	return []byte(k), nil
}

// parseConsistency reads consistency=, r= (reads) or w= (writes).
func parseConsistency(q url.Values, read bool) (replication.Consistency, error) {
	param := "w"
	if read {
		param = "r"
	}
	for _, name := range []string{"consistency", "r", "w"} {
		if v := q[name]; len(v) > 1 {
			return replication.Consistency{}, badRequest{fmt.Sprintf("%s= is given %d times (%s); give it once", name, len(v), strings.Join(v, ", "))}
		}
	}
	_, hasLevel := q["consistency"]
	_, hasR := q["r"]
	_, hasW := q["w"]
	if hasLevel && (hasR || hasW) {
		return replication.Consistency{}, badRequest{"give either consistency= or r=/w=, not both"}
	}
	if hasLevel {
		l, err := replication.ParseLevel(q.Get("consistency"))
		if err != nil {
			return replication.Consistency{}, badRequest{fmt.Sprintf("unknown consistency level %q; use one, quorum, all or strong", q.Get("consistency"))}
		}
		return replication.Consistency{Level: l}, nil
	}
	// The other direction's count (w= on a read, r= on a write) does not
	// apply and is ignored, but it must still be a count: a client that
	// sends both gets told about a typo in either.
	other, kind := "r", "write"
	if read {
		other, kind = "w", "read"
	}
	if v, ok := q[other]; ok {
		if n, err := strconv.Atoi(v[0]); err != nil || n < 1 {
			return replication.Consistency{}, badRequest{fmt.Sprintf("%s=%q is not a replica count from 1 to N (a %s ignores %s=, but it must be valid)", other, v[0], kind, other)}
		}
	}
	if v, ok := q[param]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil {
			return replication.Consistency{}, badRequest{fmt.Sprintf("%s=%q is not an integer; give a replica count from 1 to N", param, v[0])}
		}
		return replication.Consistency{Level: replication.Count, Count: n}, nil
	}
	return replication.Consistency{Level: replication.Quorum}, nil
}

func (s *Server) serveKV(w http.ResponseWriter, r *http.Request, escaped string) {
	start := time.Now()
	op := strings.ToLower(r.Method)
	level := "invalid"
	code := s.kvRequest(w, r, escaped, &level)
	if s.cfg.Observe != nil {
		s.cfg.Observe(op, level, code, time.Since(start))
	}
}

func (s *Server) kvRequest(w http.ResponseWriter, r *http.Request, escaped string, level *string) int {
	if !allow(w, r, http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead) {
		return http.StatusMethodNotAllowed
	}
	read := isRead(r)
	key, err := s.decodeKey(escaped)
	if err != nil {
		return s.writeError(w, err, replication.Receipt{}, read)
	}
	cons, err := parseConsistency(r.URL.Query(), read)
	if err != nil {
		return s.writeError(w, err, replication.Receipt{}, read)
	}
	*level = cons.String()
	if read {
		return s.get(w, r, key, cons)
	}
	var vctx vclock.VV
	if h := r.Header.Get(wire.HeaderContext); h != "" {
		if vctx, err = vclock.DecodeContext(h); err != nil {
			return s.writeError(w, badRequest{"the X-Context header does not decode; send the X-Context of an earlier read unchanged"}, replication.Receipt{}, read)
		}
	}
	wr := replication.Write{Context: vctx, Consistency: cons, Delete: r.Method == http.MethodDelete}
	// A DELETE without X-Context removes what is stored: its tombstone
	// supersedes every version the coordinating primary holds, as RESP's
	// DEL and Riak's delete without a vclock do. A tombstone concurrent
	// with the value would hide nothing (GET answers the live sibling).
	// Versions written concurrently elsewhere survive as siblings.
	wr.Overwrite = wr.Delete && vctx == nil
	if !wr.Delete {
		if r.ContentLength > s.cfg.MaxValueBytes {
			return s.writeError(w, tooLarge(r.ContentLength, s.cfg.MaxValueBytes), replication.Receipt{}, read)
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxValueBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return s.writeError(w, tooLarge(-1, s.cfg.MaxValueBytes), replication.Receipt{}, read)
			}
			return s.writeError(w, badRequest{"could not read the request body: " + err.Error()}, replication.Receipt{}, read)
		}
		if body == nil {
			body = []byte{}
		}
		wr.Value = body
	}
	res, err := s.kv.Put(r.Context(), key, wr)
	if err != nil {
		return s.writeError(w, err, res.Receipt, false)
	}
	setReceipt(w.Header(), res.Receipt, false)
	w.Header().Set(wire.HeaderContext, vclock.EncodeContext(res.Context))
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, key []byte, cons replication.Consistency) int {
	res, err := s.kv.Get(r.Context(), key, cons)
	if err != nil {
		return s.writeError(w, err, res.Receipt, true)
	}
	h := w.Header()
	setReceipt(h, res.Receipt, true)
	if len(res.Context) > 0 {
		h.Set(wire.HeaderContext, vclock.EncodeContext(res.Context))
	}
	live := res.Object.Live()
	if wantsJSON(r) {
		body := wire.SiblingsBody{Context: vclock.EncodeContext(res.Context), Siblings: make([]wire.SiblingJSON, 0, len(live))}
		for _, sb := range live {
			body.Siblings = append(body.Siblings, wire.SiblingJSON{Value: sb.Value})
		}
		code := http.StatusOK
		switch {
		case len(live) == 0:
			code = http.StatusNotFound
		case len(live) > 1:
			code = http.StatusMultipleChoices
		}
		writeJSON(w, code, body)
		return code
	}
	switch len(live) {
	case 0:
		msg := "key not found"
		if res.Object.Deleted() {
			msg = "key not found (deleted)"
		}
		writeJSONError(w, http.StatusNotFound, wire.CodeNotFound, msg, nil, nil)
		return http.StatusNotFound
	case 1:
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.Itoa(len(live[0].Value)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(live[0].Value)
		}
		return http.StatusOK
	}
	body := wire.SiblingsBody{Context: vclock.EncodeContext(res.Context)}
	for _, sb := range live {
		body.Siblings = append(body.Siblings, wire.SiblingJSON{Value: sb.Value})
	}
	writeJSON(w, http.StatusMultipleChoices, body)
	return http.StatusMultipleChoices
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func (s *Server) serveExplain(w http.ResponseWriter, r *http.Request, escaped string) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	key, err := s.decodeKey(escaped)
	if err != nil {
		s.writeError(w, err, replication.Receipt{}, false)
		return
	}
	writeJSON(w, http.StatusOK, s.kv.Explain(r.Context(), key))
}

func setReceipt(h http.Header, rc replication.Receipt, read bool) {
	h.Set(wire.HeaderReplicas, strconv.Itoa(rc.Replicas))
	h.Set(wire.HeaderAcks, strconv.Itoa(rc.Acks))
	h.Set(wire.HeaderFallbacks, strconv.Itoa(rc.Fallbacks))
	if read {
		h.Set(wire.HeaderReadRepair, strconv.Itoa(rc.ReadRepair))
	}
}

type tooLargeError struct{ size, limit int64 }

func (e tooLargeError) Error() string {
	if e.size < 0 {
		return fmt.Sprintf("the value is larger than the limit of %d bytes (--max-value-bytes)", e.limit)
	}
	return fmt.Sprintf("the value is %d bytes; the limit is %d bytes (--max-value-bytes)", e.size, e.limit)
}

func tooLarge(size, limit int64) error { return tooLargeError{size, limit} }

// writeError maps an error to its status code and JSON body. It is the one
// place where errors become status codes.
func (s *Server) writeError(w http.ResponseWriter, err error, rc replication.Receipt, read bool) int {
	setReceipt(w.Header(), rc, read)
	var (
		br  badRequest
		tl  tooLargeError
		qe  *replication.QuorumError
		msg = err.Error()
	)
	switch {
	case errors.As(err, &br):
		writeJSONError(w, http.StatusBadRequest, wire.CodeBadRequest, br.msg, nil, nil)
		return http.StatusBadRequest
	case errors.As(err, &tl):
		writeJSONError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, tl.Error(), nil, nil)
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, replication.ErrBadRequest):
		writeJSONError(w, http.StatusBadRequest, wire.CodeBadRequest, strings.TrimPrefix(msg, replication.ErrBadRequest.Error()+": "), nil, nil)
		return http.StatusBadRequest
	case errors.Is(err, replication.ErrTooManySiblings):
		writeJSONError(w, http.StatusConflict, wire.CodeConflict, strings.TrimPrefix(msg, replication.ErrTooManySiblings.Error()+": "), nil, nil)
		return http.StatusConflict
	case errors.As(err, &qe):
		code, status := wire.CodeUnavailable, http.StatusServiceUnavailable
		if qe.Timeout {
			code, status = wire.CodeTimeout, http.StatusGatewayTimeout
		}
		if !qe.Timeout && !qe.Refused() && strings.Contains(qe.Op, "write") {
			msg += "; a write that fails this way may still have reached some replicas and become visible later"
		}
		writeJSONError(w, status, code, msg, &qe.Needed, &qe.Acked)
		return status
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		zero := 0
		writeJSONError(w, http.StatusGatewayTimeout, wire.CodeTimeout, "the request timed out; the outcome is unknown", nil, &zero)
		return http.StatusGatewayTimeout
	}
	s.log.Error("request failed", "err", err)
	writeJSONError(w, http.StatusInternalServerError, wire.CodeInternal, "internal error: "+msg, nil, nil)
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, errCode, msg string, needed, acked *int) {
	writeJSON(w, code, wire.ErrorBody{Error: msg, Code: errCode, Needed: needed, Acked: acked})
}
