package wire

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/quorumkv/quorumkv/vclock"
)

// Op is the kind of a node-to-node request.
type Op uint8

// Node-to-node operations.
const (
	_ Op = iota
	// OpRead asks a replica for its object of Key.
	OpRead
	// OpWrite asks a replica to merge Object into its object of Key, or,
	// with HintFor set, to hold it as a hint for that node.
	OpWrite
	// OpStrongWrite asks a primary to apply Strong (an ABD write).
	OpStrongWrite
	// OpCoordinate forwards a client write to a primary, which coordinates it.
	OpCoordinate
	// OpTreeLevel asks for Merkle hashes of Partition at Level for Indices.
	OpTreeLevel
	// OpSegment asks for the (key, hash) pairs of Partition in Segments.
	OpSegment
	// OpFetch asks for the objects of Keys in Partition.
	OpFetch
	// OpMergeBatch asks a replica to merge Objects into Partition.
	OpMergeBatch
	// OpTransfer streams part of a partition to a new owner.
	OpTransfer
	// OpTransferDone tells a new owner that a partition transfer finished.
	OpTransferDone
	// OpPing checks that a node answers.
	OpPing
	// OpHolds asks whether a node still holds data of Partition that it
	// has not handed off to the partition's primaries.
	OpHolds
	// OpWriteBatch asks a replica to merge every write of Items, as a whole
	// or not at all (replication batches the writes it sends each peer).
	OpWriteBatch
	opEnd
)

// ClientOp is a client write forwarded to a coordinating primary.
type ClientOp struct {
	Delete  bool      `msgpack:"d,omitempty"`
	Value   []byte    `msgpack:"v,omitempty"`
	Context vclock.VV `msgpack:"x,omitempty"`
	// Overwrite supersedes everything the coordinator holds (Redis SET).
	Overwrite bool `msgpack:"o,omitempty"`
	// W is the number of acknowledgements the client asked for.
	W int `msgpack:"w"`
	// TimeoutMs is what is left of the client's deadline.
	TimeoutMs int64 `msgpack:"t"`
}

// ClientResult is the coordinator's answer to a forwarded write.
type ClientResult struct {
	Object    vclock.Object `msgpack:"o"`
	Context   vclock.VV     `msgpack:"x,omitempty"`
	Replicas  int           `msgpack:"r"`
	Acks      int           `msgpack:"a"`
	Fallbacks int           `msgpack:"f"`
	// Code is empty on success, else an error code (see Code* in api.go)
	// with Message, Needed and Acked describing it.
	Code    string `msgpack:"c,omitempty"`
	Message string `msgpack:"m,omitempty"`
	Needed  int    `msgpack:"n,omitempty"`
}

// KeyObject is one key with its object.
type KeyObject struct {
	Key    []byte        `msgpack:"k"`
	Object vclock.Object `msgpack:"o"`
}

// WriteItem is one replica write of an OpWriteBatch.
type WriteItem struct {
	Partition int           `msgpack:"p"`
	Key       []byte        `msgpack:"k"`
	Object    vclock.Object `msgpack:"o"`
	// SentAt is when the coordinator queued the write (Unix ns), for the
	// PBS latency model; never used for ordering.
	SentAt int64 `msgpack:"t,omitempty"`
}

// KeyHash is one key with the hash of its object.
type KeyHash struct {
	Key  []byte `msgpack:"k"`
	Hash uint64 `msgpack:"h"`
}

// Request is the envelope of every node-to-node request.
type Request struct {
	Op        Op     `msgpack:"o"`
	From      string `msgpack:"f,omitempty"`
	Partition int    `msgpack:"p,omitempty"`
	Key       []byte `msgpack:"k,omitempty"`

	Object  *vclock.Object      `msgpack:"b,omitempty"`
	HintFor string              `msgpack:"h,omitempty"`
	Strong  *vclock.StrongWrite `msgpack:"s,omitempty"`
	Client  *ClientOp           `msgpack:"c,omitempty"`

	Level    int         `msgpack:"l,omitempty"`
	Indices  []int       `msgpack:"i,omitempty"`
	Keys     [][]byte    `msgpack:"ks,omitempty"`
	Objects  []KeyObject `msgpack:"os,omitempty"`
	Cursor   []byte      `msgpack:"cu,omitempty"`
	Limit    int         `msgpack:"li,omitempty"`
	Transfer string      `msgpack:"tr,omitempty"`
	// SentAt is the sender's wall clock (Unix ns) when it sent a read or
	// write, for the PBS latency model; never used for ordering.
	SentAt int64 `msgpack:"t,omitempty"`
	// Primary asks the replica to answer only if it is one of the
	// partition's primaries in its own view of the ring (strong operations
	// count primaries only).
	Primary bool `msgpack:"pr,omitempty"`
	// Items are the writes of an OpWriteBatch.
	Items []WriteItem `msgpack:"it,omitempty"`
}

// Response is the envelope of every node-to-node answer.
type Response struct {
	Found  bool           `msgpack:"fd,omitempty"`
	Object *vclock.Object `msgpack:"b,omitempty"`
	Client *ClientResult  `msgpack:"c,omitempty"`

	Hashes    []uint64    `msgpack:"hs,omitempty"`
	KeyHashes []KeyHash   `msgpack:"kh,omitempty"`
	Objects   []KeyObject `msgpack:"os,omitempty"`
	Cursor    []byte      `msgpack:"cu,omitempty"`
	Done      bool        `msgpack:"dn,omitempty"`
	Count     int         `msgpack:"n,omitempty"`
	// SentAt is the replica's wall clock (Unix ns) when it answered a read
	// or write, for the PBS latency model; never used for ordering.
	SentAt int64 `msgpack:"t,omitempty"`
}

// ErrDecode is wrapped by every decoding failure.
var ErrDecode = errors.New("wire: message does not decode")

// Encode serialises a message with msgpack. Requests and responses, the
// messages of the hot path, go through the hand-written codec (codec.go),
// which writes the same bytes as msgpack.Marshal without reflection;
// anything else is marshalled reflectively.
func Encode(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Request:
		if m != nil {
			return appendRequest(make([]byte, 0, requestMaxSize(m)), m), nil
		}
	case Request:
		return appendRequest(make([]byte, 0, requestMaxSize(&m)), &m), nil
	case *Response:
		if m != nil {
			return appendResponse(make([]byte, 0, responseMaxSize(m)), m), nil
		}
	case Response:
		return appendResponse(make([]byte, 0, responseMaxSize(&m)), &m), nil
	}
	return msgpack.Marshal(v)
}

// DecodeRequest parses a Request and checks its operation. The decoder
// checks every length the message announces against the bytes it holds
// before allocating, so a short message cannot make it allocate much.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := decodeRequest(b, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if r.Op == 0 || r.Op >= opEnd {
		return r, fmt.Errorf("%w: unknown op %d", ErrDecode, r.Op)
	}
	if r.Partition < 0 || r.Partition > 1<<16-1 {
		return r, fmt.Errorf("%w: partition %d out of range", ErrDecode, r.Partition)
	}
	for _, it := range r.Items {
		if it.Partition < 0 || it.Partition > 1<<16-1 {
			return r, fmt.Errorf("%w: batch item partition %d out of range", ErrDecode, it.Partition)
		}
	}
	return r, nil
}

// DecodeResponse parses a Response, with the same bounds as DecodeRequest.
func DecodeResponse(b []byte) (Response, error) {
	var r Response
	if err := decodeResponse(b, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return r, nil
}
