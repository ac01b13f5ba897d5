package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// fakeKV records what reaches it; a bad request must reach nothing.
type fakeKV struct {
	puts, gets int
	getErr     error
	obj        vclock.Object
}

func (f *fakeKV) Get(ctx context.Context, key []byte, c replication.Consistency) (replication.Result, error) {
	f.gets++
	return replication.Result{Object: f.obj, Context: f.obj.Clock, Receipt: replication.Receipt{Replicas: 3, Acks: 2}}, f.getErr
}

func (f *fakeKV) Put(ctx context.Context, key []byte, w replication.Write) (replication.Result, error) {
	f.puts++
	if err := w.Consistency.Validate(3); err != nil {
		return replication.Result{}, err
	}
	o, _ := vclock.Object{}.Update("n1.x", w.Context, w.Value, w.Delete)
	return replication.Result{Object: o, Context: o.Clock, Receipt: replication.Receipt{Replicas: 3, Acks: 2}}, nil
}

func (f *fakeKV) Explain(ctx context.Context, key []byte) wire.Explain {
	return wire.Explain{Key: string(key)}
}

type fakeNode struct{}

func (fakeNode) Status(context.Context) wire.Status { return wire.Status{ID: "n1"} }
func (fakeNode) Leave() error                       { return nil }
func (fakeNode) Ready() bool                        { return true }

func newServer(t *testing.T, kv *fakeKV) *Server {
	cfg := DefaultConfig()
	cfg.MaxValueBytes = 16
	s, err := New(cfg, kv, fakeNode{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(s *Server, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestMalformedRequestsChangeNothing(t *testing.T) {
	long := strings.Repeat("k", 1025)
	tests := []struct {
		name, method, target, body string
		hdr                        map[string]string
		status                     int
		code                       string
	}{
		{"unknown level", "PUT", "/v1/kv/a?consistency=most", "v", nil, 400, "bad_request"},
		{"w too big", "PUT", "/v1/kv/a?w=4", "v", nil, 400, "bad_request"},
		{"w zero", "PUT", "/v1/kv/a?w=0", "v", nil, 400, "bad_request"},
		{"w not a number", "PUT", "/v1/kv/a?w=two", "v", nil, 400, "bad_request"},
		{"level and w", "PUT", "/v1/kv/a?consistency=one&w=1", "v", nil, 400, "bad_request"},
		{"level and r on get", "GET", "/v1/kv/a?consistency=one&r=1", "", nil, 400, "bad_request"},
		{"r on get not a number", "GET", "/v1/kv/a?r=x", "", nil, 400, "bad_request"},
		{"w on get not a number", "GET", "/v1/kv/a?w=abc", "", nil, 400, "bad_request"},
		{"w on get zero", "GET", "/v1/kv/a?r=2&w=0", "", nil, 400, "bad_request"},
		{"r on put not a number", "PUT", "/v1/kv/a?r=x", "v", nil, 400, "bad_request"},
		{"r on delete negative", "DELETE", "/v1/kv/a?w=2&r=-1", "", nil, 400, "bad_request"},
		{"level twice", "PUT", "/v1/kv/a?consistency=one&consistency=all", "v", nil, 400, "bad_request"},
		{"r twice on get", "GET", "/v1/kv/a?r=1&r=3", "", nil, 400, "bad_request"},
		{"empty key", "PUT", "/v1/kv/", "v", nil, 400, "bad_request"},
		{"key too long", "PUT", "/v1/kv/" + long, "v", nil, 400, "bad_request"},
		{"bad context", "PUT", "/v1/kv/a", "v", map[string]string{"X-Context": "%%%"}, 400, "bad_request"},
		{"bad context delete", "DELETE", "/v1/kv/a", "", map[string]string{"X-Context": "AAAA"}, 400, "bad_request"},
		{"too large", "PUT", "/v1/kv/a", strings.Repeat("x", 17), nil, 413, "too_large"},
		{"method", "POST", "/v1/kv/a", "v", nil, 405, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := &fakeKV{}
			w := do(newServer(t, kv), tt.method, tt.target, tt.body, tt.hdr)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			var body wire.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Code != tt.code || body.Error == "" {
				t.Fatalf("body %s: want JSON error with code %q", w.Body, tt.code)
			}
			if tt.status == 413 && kv.puts != 0 {
				t.Fatal("an oversized value reached the store")
			}
			if tt.status == 400 && !strings.HasPrefix(tt.name, "w ") && kv.puts+kv.gets != 0 {
				t.Fatal("a malformed request reached the store")
			}
			// Every answer to a KV request carries the receipt, and a
			// read's includes X-Read-Repair.
			if tt.status != 405 {
				h := w.Header()
				if h.Get(wire.HeaderReplicas) == "" || h.Get(wire.HeaderAcks) == "" || h.Get(wire.HeaderFallbacks) == "" ||
					(tt.method == "GET") != (h.Get(wire.HeaderReadRepair) != "") {
					t.Errorf("receipt headers of a failed %s: %v", tt.method, h)
				}
			}
		})
	}
}

// A parameter given twice is refused rather than one of its values taken.
func TestRepeatedParameterNamed(t *testing.T) {
	w := do(newServer(t, &fakeKV{}), "PUT", "/v1/kv/a?consistency=one&consistency=all", "v", nil)
	if want := "consistency= is given 2 times (one, all); give it once"; w.Code != 400 || !strings.Contains(w.Body.String(), want) {
		t.Fatalf("%d %s, want 400 saying %q", w.Code, w.Body, want)
	}
}

func TestReadAnswers(t *testing.T) {
	kv := &fakeKV{}
	s := newServer(t, kv)
	if w := do(s, "GET", "/v1/kv/a", "", nil); w.Code != 404 || w.Header().Get(wire.HeaderReplicas) != "3" {
		t.Fatalf("absent: %d %v", w.Code, w.Header())
	}
	kv.obj, _ = vclock.Object{}.Update("n1.x", nil, []byte("one"), false)
	w := do(s, "GET", "/v1/kv/a", "", nil)
	if w.Code != 200 || w.Body.String() != "one" || w.Header().Get(wire.HeaderContext) == "" || w.Header().Get(wire.HeaderReadRepair) != "0" {
		t.Fatalf("one value: %d %q %v", w.Code, w.Body, w.Header())
	}
	kv.obj, _ = kv.obj.Update("n2.x", nil, []byte("two"), false)
	w = do(s, "GET", "/v1/kv/a", "", nil)
	var sib wire.SiblingsBody
	if w.Code != 300 || json.Unmarshal(w.Body.Bytes(), &sib) != nil || len(sib.Siblings) != 2 || sib.Context == "" {
		t.Fatalf("siblings: %d %s", w.Code, w.Body)
	}
	kv.obj, _ = kv.obj.Update("n1.x", kv.obj.Clock, nil, true)
	w = do(s, "GET", "/v1/kv/a", "", nil)
	if w.Code != 404 || w.Header().Get(wire.HeaderContext) == "" {
		t.Fatalf("deleted: %d %v", w.Code, w.Header())
	}
	w = do(s, "GET", "/v1/kv/a", "", map[string]string{"Accept": "application/json"})
	if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &sib) != nil || len(sib.Siblings) != 0 {
		t.Fatalf("deleted as JSON: %d %s", w.Code, w.Body)
	}
}

func TestQuorumErrors(t *testing.T) {
	kv := &fakeKV{getErr: &replication.QuorumError{Op: "read", Needed: 3, Acked: 2}}
	w := do(newServer(t, kv), "GET", "/v1/kv/a?consistency=all", "", nil)
	var body wire.ErrorBody
	if w.Code != 503 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Code != "unavailable" || *body.Needed != 3 || *body.Acked != 2 {
		t.Fatalf("unavailable: %d %s", w.Code, w.Body)
	}
	if w.Header().Get(wire.HeaderReadRepair) != "0" {
		t.Errorf("a failed read has no X-Read-Repair: %v", w.Header())
	}
	kv.getErr = &replication.QuorumError{Op: "read", Needed: 2, Acked: 1, Timeout: true}
	w = do(newServer(t, kv), "GET", "/v1/kv/a", "", nil)
	if w.Code != 504 || !strings.Contains(w.Body.String(), `"timeout"`) {
		t.Fatalf("timeout: %d %s", w.Code, w.Body)
	}
}

func TestAuth(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AuthToken = "s3cret"
	s, _ := New(cfg, &fakeKV{}, fakeNode{})
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"},
		{"Authorization": "Basic s3cret"}, {"Authorization": "Bearer S3cret"}, {"Authorization": "Bearer  s3cret"}, {"Authorization": "Bearers3cret"}} {
		if w := do(s, "GET", "/v1/kv/a", "", h); w.Code != http.StatusUnauthorized {
			t.Fatalf("%v: %d", h, w.Code)
		} else if w.Header().Get(wire.HeaderReplicas) != "0" || w.Header().Get(wire.HeaderReadRepair) != "0" {
			t.Errorf("a refused KV read carries no receipt: %v", w.Header())
		}
	}
	if w := do(s, "GET", "/v1/status", "", nil); w.Code != http.StatusUnauthorized || w.Header().Get(wire.HeaderReplicas) != "" {
		t.Errorf("refused status: %d %v (a receipt belongs to KV requests only)", w.Code, w.Header())
	}
	// The scheme is case-insensitive, as in every HTTP authentication scheme.
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		if w := do(s, "GET", "/v1/kv/a", "", map[string]string{"Authorization": scheme + " s3cret"}); w.Code != 404 {
			t.Fatalf("with token, scheme %q: %d", scheme, w.Code)
		}
	}
}

func FuzzKVRequest(f *testing.F) {
	f.Add("/v1/kv/a?consistency=one", "AQpuMS4xcDRlbjZiAQ", "v")
	f.Add("/v1/kv/%2F%00?w=2", "", "")
	f.Fuzz(func(t *testing.T, target, ctxHeader, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		kv := &fakeKV{}
		s := newServer(t, kv)
		r, err := http.NewRequest("PUT", "http://x"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		r.Header.Set("X-Context", ctxHeader)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s: status %d", target, w.Code)
		}
	})
}
