package wire

// This file holds the JSON documents of the client HTTP API (v1). The server
// writes them and the Go client reads them, so both agree by construction.

import "encoding/json"

// Error codes of the HTTP API, in the "code" field of an ErrorBody.
const (
	CodeBadRequest   = "bad_request"
	CodeTooLarge     = "too_large"
	CodeUnavailable  = "unavailable"
	CodeTimeout      = "timeout"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnauthorized = "unauthorized"
	CodeInternal     = "internal"
)

// Headers of the client HTTP API.
const (
	HeaderContext    = "X-Context"
	HeaderReplicas   = "X-Replicas"
	HeaderAcks       = "X-Acks"
	HeaderFallbacks  = "X-Fallbacks"
	HeaderReadRepair = "X-Read-Repair"
)

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Needed and Acked are set on unavailable (503) and timeout (504) answers.
	Needed *int `json:"needed,omitempty"`
	Acked  *int `json:"acked,omitempty"`
}

// SiblingsBody is the JSON answer of a read with several siblings (300), or
// of any read when the client asks for application/json.
type SiblingsBody struct {
	Context  string        `json:"context"`
	Siblings []SiblingJSON `json:"siblings"`
}

// SiblingJSON is one sibling value; Value is base64 in JSON (encoding/json
// does that for []byte).
type SiblingJSON struct {
	Value []byte `json:"value"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	ID string `json:"id"`
	// Cluster is the cluster's name (--cluster-name); empty when it has
	// none.
	Cluster string `json:"cluster"`
	// Version is the build this node runs.
	Version     string         `json:"version"`
	Replicas    int            `json:"n"`
	RingSize    int            `json:"ring_size"`
	Incarnation uint64         `json:"incarnation"`
	Members     []MemberStatus `json:"members"`
	// Refused lists the nodes this node refused lately (another N, ring
	// size, TLS or cluster name), by ID, with the reason.
	Refused map[string]string `json:"refused,omitempty"`
	// HintsPending counts hints this node holds for other nodes.
	HintsPending int64            `json:"hints_pending"`
	HintsByNode  map[string]int64 `json:"hints_by_node,omitempty"`
	Transfers    []TransferStatus `json:"transfers"`
	// PartitionsArriving counts partitions this node became a primary of
	// whose old owners have not finished handing them off.
	PartitionsArriving int               `json:"partitions_arriving"`
	Leaving            bool              `json:"leaving,omitempty"`
	AntiEntropy        AntiEntropyStatus `json:"anti_entropy"`
	// Keys counts the keys this node stores, tombstones included (zero
	// until anti-entropy has built its trees after a start).
	Keys int64 `json:"keys"`
}

// MemberStatus is one member in Status.
type MemberStatus struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Partitions int    `json:"partitions"`
	HTTP       string `json:"http"`
	RPC        string `json:"rpc"`
	Gossip     string `json:"gossip,omitempty"`
	Zone       string `json:"zone,omitempty"`
	Since      string `json:"since,omitempty"`
	// Version is the build the member runs, as it gossips it.
	Version string `json:"version,omitempty"`
}

// TransferStatus is one ownership transfer in progress.
type TransferStatus struct {
	Partition  int     `json:"partition"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	Keys       int64   `json:"keys"`
	Bytes      int64   `json:"bytes"`
	KeysPerSec float64 `json:"keys_per_sec"`
	ETASeconds float64 `json:"eta_seconds"`
	Done       bool    `json:"done"`
}

// AntiEntropyStatus summarises anti-entropy on this node.
type AntiEntropyStatus struct {
	Interval          string `json:"interval"`
	Rounds            int64  `json:"rounds"`
	Exchanges         int64  `json:"exchanges"`
	KeysCompared      int64  `json:"keys_compared"`
	KeysRepaired      int64  `json:"keys_repaired"`
	BytesSent         int64  `json:"bytes_sent"`
	LastRoundFinished string `json:"last_round_finished,omitempty"`
	PartitionsCovered int    `json:"partitions_covered"`
	PartitionsHeld    int    `json:"partitions_held"`
}

// Explain is the answer of GET /v1/explain/{key}.
type Explain struct {
	Key string `json:"key"`
	// KeyBase64 is the key's bytes, set only when they are not valid
	// UTF-8: JSON strings replace such bytes, so Key alone would not say
	// which key this is.
	KeyBase64      []byte           `json:"key_base64,omitempty"`
	Partition      int              `json:"partition"`
	PreferenceList []ExplainNode    `json:"preference_list"`
	Replicas       []ExplainReplica `json:"replicas"`
}

// ExplainNode is one entry of a preference list; Role is "primary" or
// "fallback".
type ExplainNode struct {
	Node string `json:"node"`
	Role string `json:"role"`
}

// ExplainReplica is what one replica of the preference list holds now.
type ExplainReplica struct {
	Node        string   `json:"node"`
	Role        string   `json:"role"`
	Found       bool     `json:"found"`
	Tombstone   bool     `json:"tombstone"`
	Siblings    int      `json:"siblings"`
	Version     string   `json:"version"`
	Hash        string   `json:"hash"`
	ValueHashes []string `json:"value_hashes"`
	Error       string   `json:"error,omitempty"`
}

// MarshalJSON always writes "error": null when the replica answered, so
// the field is there for clients that look it up, as the API documents.
func (r ExplainReplica) MarshalJSON() ([]byte, error) {
	type plain ExplainReplica
	var e *string
	if r.Error != "" {
		e = &r.Error
	}
	return json.Marshal(struct {
		plain
		Error *string `json:"error"`
	}{plain(r), e})
}
