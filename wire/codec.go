package wire

import (
	"fmt"
	"math"

	"github.com/quorumkv/quorumkv/internal/mpack"
	"github.com/quorumkv/quorumkv/vclock"
)

// This file is the hand-written msgpack codec of Request and Response, the
// envelopes of every node-to-node message. It writes exactly the bytes
// msgpack/v5 writes for their struct tags (so nodes running either codec
// understand each other) and reads everything v5 wrote: keys in any order,
// unknown keys skipped (a newer node may add fields), nil for a slice,
// struct or binary, any integer width. Lengths are checked against the
// bytes present before anything is allocated (see mpack.Reader), which
// replaces the checkLengths pass the reflective decoder needed.
//
// The field order of each append function is the struct's field order, and
// each omitempty field is left out under the condition v5 uses (zero number,
// false, nil pointer, empty slice or string, even a non-nil empty one).

func appendKey(b []byte, key string) []byte { return mpack.AppendString(b, key) }

// readInt reads an integer that must fit a Go int.
func readInt(r *mpack.Reader) (int, error) {
	v, err := r.ReadInt()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt || v > math.MaxInt {
		return 0, fmt.Errorf("%d overflows int", v)
	}
	return int(v), nil
}

// appendRequest appends q as msgpack.
func appendRequest(b []byte, q *Request) []byte {
	n := 1
	for _, set := range [...]bool{
		q.From != "", q.Partition != 0, len(q.Key) > 0, q.Object != nil, q.HintFor != "",
		q.Strong != nil, q.Client != nil, q.Level != 0, len(q.Indices) > 0, len(q.Keys) > 0,
		len(q.Objects) > 0, len(q.Cursor) > 0, q.Limit != 0, q.Transfer != "", q.SentAt != 0, q.Primary,
		len(q.Items) > 0,
	} {
		if set {
			n++
		}
	}
	b = mpack.AppendMapHeader(b, n)
	b = appendKey(b, "o")
	b = mpack.AppendUint8(b, uint8(q.Op))
	if q.From != "" {
		b = appendKey(b, "f")
		b = mpack.AppendString(b, q.From)
	}
	if q.Partition != 0 {
		b = appendKey(b, "p")
		b = mpack.AppendInt(b, int64(q.Partition))
	}
	if len(q.Key) > 0 {
		b = appendKey(b, "k")
		b = mpack.AppendBytes(b, q.Key)
	}
	if q.Object != nil {
		b = appendKey(b, "b")
		b = q.Object.AppendMsgpack(b)
	}
	if q.HintFor != "" {
		b = appendKey(b, "h")
		b = mpack.AppendString(b, q.HintFor)
	}
	if q.Strong != nil {
		b = appendKey(b, "s")
		b = q.Strong.AppendMsgpack(b)
	}
	if q.Client != nil {
		b = appendKey(b, "c")
		b = appendClientOp(b, q.Client)
	}
	if q.Level != 0 {
		b = appendKey(b, "l")
		b = mpack.AppendInt(b, int64(q.Level))
	}
	if len(q.Indices) > 0 {
		b = appendKey(b, "i")
		b = mpack.AppendArrayHeader(b, len(q.Indices))
		for _, i := range q.Indices {
			b = mpack.AppendInt(b, int64(i))
		}
	}
	if len(q.Keys) > 0 {
		b = appendKey(b, "ks")
		b = mpack.AppendArrayHeader(b, len(q.Keys))
		for _, k := range q.Keys {
			b = mpack.AppendBytes(b, k)
		}
	}
	if len(q.Objects) > 0 {
		b = appendKey(b, "os")
		b = appendKeyObjects(b, q.Objects)
	}
	if len(q.Cursor) > 0 {
		b = appendKey(b, "cu")
		b = mpack.AppendBytes(b, q.Cursor)
	}
	if q.Limit != 0 {
		b = appendKey(b, "li")
		b = mpack.AppendInt(b, int64(q.Limit))
	}
	if q.Transfer != "" {
		b = appendKey(b, "tr")
		b = mpack.AppendString(b, q.Transfer)
	}
	if q.SentAt != 0 {
		b = appendKey(b, "t")
		b = mpack.AppendInt64(b, q.SentAt)
	}
	if q.Primary {
		b = appendKey(b, "pr")
		b = mpack.AppendBool(b, true)
	}
	if len(q.Items) > 0 {
		b = appendKey(b, "it")
		b = appendWriteItems(b, q.Items)
	}
	return b
}

// requestMaxSize bounds the encoded size of q, so Encode allocates once.
func requestMaxSize(q *Request) int {
	const perField = 3 + mpack.MaxHeaderLen // key and a header or a full-width number
	n := mpack.MaxHeaderLen + 16*perField + len(q.From) + len(q.Key) + len(q.HintFor) + len(q.Cursor) + len(q.Transfer)
	if q.Object != nil {
		n += q.Object.MaxMsgpackSize()
	}
	if q.Strong != nil {
		n += q.Strong.MaxMsgpackSize()
	}
	if q.Client != nil {
		n += clientOpMaxSize(q.Client)
	}
	n += len(q.Indices) * mpack.MaxUintLen
	for _, k := range q.Keys {
		n += mpack.MaxHeaderLen + len(k)
	}
	n += keyObjectsMaxSize(q.Objects)
	n += writeItemsMaxSize(q.Items)
	return n
}

func decodeRequest(b []byte, q *Request) error {
	r := mpack.NewReader(b)
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "o":
			var op uint64
			op, err = r.ReadUint()
			if err == nil && op > math.MaxUint8 {
				err = fmt.Errorf("op %d out of range", op)
			}
			q.Op = Op(op)
		case "f":
			q.From, err = r.ReadString()
		case "p":
			q.Partition, err = readInt(r)
		case "k":
			q.Key, err = r.ReadBytes()
		case "b":
			q.Object, err = readObjectPtr(r)
		case "h":
			q.HintFor, err = r.ReadString()
		case "s":
			q.Strong = nil
			if !r.ReadNil() {
				q.Strong = new(vclock.StrongWrite)
				err = q.Strong.ReadMsgpack(r)
			}
		case "c":
			q.Client = nil
			if !r.ReadNil() {
				q.Client = new(ClientOp)
				err = readClientOp(r, q.Client)
			}
		case "l":
			q.Level, err = readInt(r)
		case "i":
			q.Indices, err = readInts(r)
		case "ks":
			q.Keys, err = readByteSlices(r)
		case "os":
			q.Objects, err = readKeyObjects(r)
		case "cu":
			q.Cursor, err = r.ReadBytes()
		case "li":
			q.Limit, err = readInt(r)
		case "tr":
			q.Transfer, err = r.ReadString()
		case "t":
			q.SentAt, err = r.ReadInt()
		case "pr":
			q.Primary, err = r.ReadBool()
		case "it":
			q.Items, err = readWriteItems(r)
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	return nil
}

// appendResponse appends p as msgpack.
func appendResponse(b []byte, p *Response) []byte {
	n := 0
	for _, set := range [...]bool{
		p.Found, p.Object != nil, p.Client != nil, len(p.Hashes) > 0, len(p.KeyHashes) > 0,
		len(p.Objects) > 0, len(p.Cursor) > 0, p.Done, p.Count != 0, p.SentAt != 0,
	} {
		if set {
			n++
		}
	}
	b = mpack.AppendMapHeader(b, n)
	if p.Found {
		b = appendKey(b, "fd")
		b = mpack.AppendBool(b, true)
	}
	if p.Object != nil {
		b = appendKey(b, "b")
		b = p.Object.AppendMsgpack(b)
	}
	if p.Client != nil {
		b = appendKey(b, "c")
		b = appendClientResult(b, p.Client)
	}
	if len(p.Hashes) > 0 {
		b = appendKey(b, "hs")
		b = mpack.AppendArrayHeader(b, len(p.Hashes))
		for _, h := range p.Hashes {
			b = mpack.AppendUint64(b, h)
		}
	}
	if len(p.KeyHashes) > 0 {
		b = appendKey(b, "kh")
		b = mpack.AppendArrayHeader(b, len(p.KeyHashes))
		for _, kh := range p.KeyHashes {
			b = mpack.AppendMapHeader(b, 2)
			b = appendKey(b, "k")
			b = mpack.AppendBytes(b, kh.Key)
			b = appendKey(b, "h")
			b = mpack.AppendUint64(b, kh.Hash)
		}
	}
	if len(p.Objects) > 0 {
		b = appendKey(b, "os")
		b = appendKeyObjects(b, p.Objects)
	}
	if len(p.Cursor) > 0 {
		b = appendKey(b, "cu")
		b = mpack.AppendBytes(b, p.Cursor)
	}
	if p.Done {
		b = appendKey(b, "dn")
		b = mpack.AppendBool(b, true)
	}
	if p.Count != 0 {
		b = appendKey(b, "n")
		b = mpack.AppendInt(b, int64(p.Count))
	}
	if p.SentAt != 0 {
		b = appendKey(b, "t")
		b = mpack.AppendInt64(b, p.SentAt)
	}
	return b
}

func responseMaxSize(p *Response) int {
	const perField = 3 + mpack.MaxHeaderLen
	n := mpack.MaxHeaderLen + 10*perField + len(p.Cursor)
	if p.Object != nil {
		n += p.Object.MaxMsgpackSize()
	}
	if p.Client != nil {
		n += clientResultMaxSize(p.Client)
	}
	n += len(p.Hashes) * mpack.MaxUintLen
	for _, kh := range p.KeyHashes {
		n += 1 + 2 + mpack.MaxHeaderLen + len(kh.Key) + 2 + mpack.MaxUintLen
	}
	n += keyObjectsMaxSize(p.Objects)
	return n
}

func decodeResponse(b []byte, p *Response) error {
	r := mpack.NewReader(b)
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "fd":
			p.Found, err = r.ReadBool()
		case "b":
			p.Object, err = readObjectPtr(r)
		case "c":
			p.Client = nil
			if !r.ReadNil() {
				p.Client = new(ClientResult)
				err = readClientResult(r, p.Client)
			}
		case "hs":
			p.Hashes, err = readUints(r)
		case "kh":
			p.KeyHashes, err = readKeyHashes(r)
		case "os":
			p.Objects, err = readKeyObjects(r)
		case "cu":
			p.Cursor, err = r.ReadBytes()
		case "dn":
			p.Done, err = r.ReadBool()
		case "n":
			p.Count, err = readInt(r)
		case "t":
			p.SentAt, err = r.ReadInt()
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}

func appendClientOp(b []byte, c *ClientOp) []byte {
	n := 2
	for _, set := range [...]bool{c.Delete, len(c.Value) > 0, len(c.Context) > 0, c.Overwrite} {
		if set {
			n++
		}
	}
	b = mpack.AppendMapHeader(b, n)
	if c.Delete {
		b = appendKey(b, "d")
		b = mpack.AppendBool(b, true)
	}
	if len(c.Value) > 0 {
		b = appendKey(b, "v")
		b = mpack.AppendBytes(b, c.Value)
	}
	if len(c.Context) > 0 {
		b = appendKey(b, "x")
		b = c.Context.AppendMsgpack(b)
	}
	if c.Overwrite {
		b = appendKey(b, "o")
		b = mpack.AppendBool(b, true)
	}
	b = appendKey(b, "w")
	b = mpack.AppendInt(b, int64(c.W))
	b = appendKey(b, "t")
	return mpack.AppendInt64(b, c.TimeoutMs)
}

func clientOpMaxSize(c *ClientOp) int {
	return 1 + 6*(2+mpack.MaxHeaderLen+mpack.MaxUintLen) + len(c.Value) + c.Context.MaxMsgpackSize()
}

func readClientOp(r *mpack.Reader, c *ClientOp) error {
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "d":
			c.Delete, err = r.ReadBool()
		case "v":
			c.Value, err = r.ReadBytes()
		case "x":
			err = c.Context.ReadMsgpack(r)
		case "o":
			c.Overwrite, err = r.ReadBool()
		case "w":
			c.W, err = readInt(r)
		case "t":
			c.TimeoutMs, err = r.ReadInt()
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("client op: %w", err)
	}
	return nil
}

func appendClientResult(b []byte, c *ClientResult) []byte {
	n := 4
	for _, set := range [...]bool{len(c.Context) > 0, c.Code != "", c.Message != "", c.Needed != 0} {
		if set {
			n++
		}
	}
	b = mpack.AppendMapHeader(b, n)
	b = appendKey(b, "o")
	b = c.Object.AppendMsgpack(b)
	if len(c.Context) > 0 {
		b = appendKey(b, "x")
		b = c.Context.AppendMsgpack(b)
	}
	b = appendKey(b, "r")
	b = mpack.AppendInt(b, int64(c.Replicas))
	b = appendKey(b, "a")
	b = mpack.AppendInt(b, int64(c.Acks))
	b = appendKey(b, "f")
	b = mpack.AppendInt(b, int64(c.Fallbacks))
	if c.Code != "" {
		b = appendKey(b, "c")
		b = mpack.AppendString(b, c.Code)
	}
	if c.Message != "" {
		b = appendKey(b, "m")
		b = mpack.AppendString(b, c.Message)
	}
	if c.Needed != 0 {
		b = appendKey(b, "n")
		b = mpack.AppendInt(b, int64(c.Needed))
	}
	return b
}

func clientResultMaxSize(c *ClientResult) int {
	return 1 + 8*(2+mpack.MaxHeaderLen+mpack.MaxUintLen) + c.Object.MaxMsgpackSize() + c.Context.MaxMsgpackSize() + len(c.Code) + len(c.Message)
}

func readClientResult(r *mpack.Reader, c *ClientResult) error {
	if err := r.ReadMap(func(k []byte) (err error) {
		switch string(k) {
		case "o":
			err = c.Object.ReadMsgpack(r)
		case "x":
			err = c.Context.ReadMsgpack(r)
		case "r":
			c.Replicas, err = readInt(r)
		case "a":
			c.Acks, err = readInt(r)
		case "f":
			c.Fallbacks, err = readInt(r)
		case "c":
			c.Code, err = r.ReadString()
		case "m":
			c.Message, err = r.ReadString()
		case "n":
			c.Needed, err = readInt(r)
		default:
			err = r.Skip()
		}
		return err
	}); err != nil {
		return fmt.Errorf("client result: %w", err)
	}
	return nil
}

func readObjectPtr(r *mpack.Reader) (*vclock.Object, error) {
	if r.ReadNil() {
		return nil, nil
	}
	o := new(vclock.Object)
	if err := o.ReadMsgpack(r); err != nil {
		return nil, err
	}
	return o, nil
}

func appendKeyObjects(b []byte, kos []KeyObject) []byte {
	b = mpack.AppendArrayHeader(b, len(kos))
	for _, ko := range kos {
		b = mpack.AppendMapHeader(b, 2)
		b = appendKey(b, "k")
		b = mpack.AppendBytes(b, ko.Key)
		b = appendKey(b, "o")
		b = ko.Object.AppendMsgpack(b)
	}
	return b
}

func keyObjectsMaxSize(kos []KeyObject) int {
	n := mpack.MaxHeaderLen
	for _, ko := range kos {
		n += 1 + 2 + mpack.MaxHeaderLen + len(ko.Key) + 2 + ko.Object.MaxMsgpackSize()
	}
	return n
}

func readKeyObjects(r *mpack.Reader) ([]KeyObject, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([]KeyObject, n)
	for i := range out {
		if err := r.ReadMap(func(k []byte) (err error) {
			switch string(k) {
			case "k":
				out[i].Key, err = r.ReadBytes()
			case "o":
				err = out[i].Object.ReadMsgpack(r)
			default:
				err = r.Skip()
			}
			return err
		}); err != nil {
			return nil, fmt.Errorf("key object: %w", err)
		}
	}
	return out, nil
}

func appendWriteItems(b []byte, items []WriteItem) []byte {
	b = mpack.AppendArrayHeader(b, len(items))
	for i := range items {
		it := &items[i]
		n := 3
		if it.SentAt != 0 {
			n++
		}
		b = mpack.AppendMapHeader(b, n)
		b = appendKey(b, "p")
		b = mpack.AppendInt(b, int64(it.Partition))
		b = appendKey(b, "k")
		b = mpack.AppendBytes(b, it.Key)
		b = appendKey(b, "o")
		b = it.Object.AppendMsgpack(b)
		if it.SentAt != 0 {
			b = appendKey(b, "t")
			b = mpack.AppendInt64(b, it.SentAt)
		}
	}
	return b
}

func writeItemsMaxSize(items []WriteItem) int {
	n := mpack.MaxHeaderLen
	for i := range items {
		n += 1 + 4*(2+mpack.MaxHeaderLen) + len(items[i].Key) + items[i].Object.MaxMsgpackSize()
	}
	return n
}

func readWriteItems(r *mpack.Reader) ([]WriteItem, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([]WriteItem, n)
	for i := range out {
		if err := r.ReadMap(func(k []byte) (err error) {
			switch string(k) {
			case "p":
				out[i].Partition, err = readInt(r)
			case "k":
				out[i].Key, err = r.ReadBytes()
			case "o":
				err = out[i].Object.ReadMsgpack(r)
			case "t":
				out[i].SentAt, err = r.ReadInt()
			default:
				err = r.Skip()
			}
			return err
		}); err != nil {
			return nil, fmt.Errorf("write item: %w", err)
		}
	}
	return out, nil
}

func readKeyHashes(r *mpack.Reader) ([]KeyHash, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([]KeyHash, n)
	for i := range out {
		if err := r.ReadMap(func(k []byte) (err error) {
			switch string(k) {
			case "k":
				out[i].Key, err = r.ReadBytes()
			case "h":
				out[i].Hash, err = r.ReadUint()
			default:
				err = r.Skip()
			}
			return err
		}); err != nil {
			return nil, fmt.Errorf("key hash: %w", err)
		}
	}
	return out, nil
}

func readInts(r *mpack.Reader) ([]int, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([]int, n)
	for i := range out {
		if out[i], err = readInt(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readUints(r *mpack.Reader) ([]uint64, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		if out[i], err = r.ReadUint(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readByteSlices(r *mpack.Reader) ([][]byte, error) {
	n, isNil, err := r.ReadArrayHeader()
	if err != nil || isNil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		if out[i], err = r.ReadBytes(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
