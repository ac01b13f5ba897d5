package fault

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// Outcomes of an operation.
const (
	// OutcomeOK: the node acknowledged the operation.
	OutcomeOK = "ok"
	// OutcomeFail: the operation certainly did not happen (the request was
	// refused before it changed anything, or never reached a node).
	OutcomeFail = "fail"
	// OutcomeUnknown: it may or may not have happened (a timeout, a 503
	// after some replicas took the write, a connection that broke).
	OutcomeUnknown = "unknown"
)

// Op is one operation of a history. Times are nanoseconds since the run
// started, from the monotonic clock.
type Op struct {
	Client  int      `json:"client"`
	Node    string   `json:"node"`
	Kind    string   `json:"kind"` // read, write, delete, add, final-read
	Key     string   `json:"key"`
	Value   string   `json:"value,omitempty"`
	Values  []string `json:"values,omitempty"` // what a read returned
	Call    int64    `json:"call"`
	Return  int64    `json:"return"`
	Outcome string   `json:"outcome"`
	Error   string   `json:"error,omitempty"`
}

// Recorder collects a history from many goroutines.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op // guarded by mu
}

// NewRecorder returns a recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Start is the run's time zero.
func (r *Recorder) Start() time.Time { return r.start }

// Now is the time since the start, in nanoseconds.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add records op.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns the history so far, ordered by invocation time.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	out := slices.Clone(r.ops)
	r.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Op) int {
		switch {
		case a.Call < b.Call:
			return -1
		case a.Call > b.Call:
			return 1
		}
		return 0
	})
	return out
}

// Classify maps a client error to an outcome. Only answers that say the
// request changed nothing (400, 413, 401, 404, 409) and connections that were
// never made are failures; everything else might have taken effect.
func Classify(err error) string {
	if err == nil {
		return OutcomeOK
	}
	for _, definite := range []error{client.ErrBadRequest, client.ErrTooLarge, client.ErrUnauthorized, client.ErrNotFound, client.ErrConflict} {
		if errors.Is(err, definite) {
			return OutcomeFail
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return OutcomeFail
	}
	return OutcomeUnknown
}

// WriteHistory writes ops as JSON lines to path.
func WriteHistory(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
