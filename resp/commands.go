package resp

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
	"github.com/tidwall/redcon"
)

// spec describes one command: how to run it and what COMMAND says about it.
type spec struct {
	name string
	// arity follows Redis: n means exactly n arguments counting the
	// command name, -n means at least n.
	arity int
	// flags and acl are what COMMAND reports.
	flags []string
	acl   []string
	// firstKey, lastKey (negative counts from the end) and step locate the
	// keys among the arguments, as COMMAND reports them.
	firstKey, lastKey, step int
	// kv marks a command that reaches the KV; it may run concurrently
	// with its neighbours of a pipelined batch. write marks one that
	// writes its keys.
	kv, write bool
	// noAuth marks a command allowed before AUTH.
	noAuth bool
	run    func(c *client, out []byte, args [][]byte) []byte
}

func (sp *spec) arityOK(n int) bool {
	if sp.arity >= 0 {
		return n == sp.arity
	}
	return n >= -sp.arity
}

func (sp *spec) lastKeyIndex(nargs int) int {
	if sp.lastKey < 0 {
		return nargs + sp.lastKey
	}
	return sp.lastKey
}

// commands is the command table, keyed by lower-case name. It is built once
// by init (not by a variable initializer, because COMMAND reads it) and
// never changed afterwards.
var commands map[string]*spec

func init() {
	read := []string{"@read", "@string", "@fast"}
	write := []string{"@write", "@string", "@slow"}
	conn := []string{"@connection", "@fast"}
	list := []*spec{
		{name: "get", arity: 2, flags: []string{"readonly", "fast"}, acl: read, firstKey: 1, lastKey: 1, step: 1, kv: true, run: cmdGet},
		{name: "set", arity: -3, flags: []string{"write", "denyoom"}, acl: write, firstKey: 1, lastKey: 1, step: 1, kv: true, write: true, run: cmdSet},
		{name: "del", arity: -2, flags: []string{"write"}, acl: []string{"@keyspace", "@write", "@slow"}, firstKey: 1, lastKey: -1, step: 1, kv: true, write: true, run: cmdDel},
		{name: "exists", arity: -2, flags: []string{"readonly", "fast"}, acl: []string{"@keyspace", "@read", "@fast"}, firstKey: 1, lastKey: -1, step: 1, kv: true, run: cmdExists},
		{name: "mget", arity: -2, flags: []string{"readonly", "fast"}, acl: read, firstKey: 1, lastKey: -1, step: 1, kv: true, run: cmdMGet},
		{name: "mset", arity: -3, flags: []string{"write", "denyoom"}, acl: write, firstKey: 1, lastKey: -1, step: 2, kv: true, write: true, run: cmdMSet},
		{name: "qget", arity: -2, flags: []string{"readonly", "fast"}, acl: read, firstKey: 1, lastKey: 1, step: 1, kv: true, run: cmdQGet},
		{name: "qset", arity: -3, flags: []string{"write", "denyoom"}, acl: write, firstKey: 1, lastKey: 1, step: 1, kv: true, write: true, run: cmdQSet},
		{name: "qdel", arity: -2, flags: []string{"write"}, acl: write, firstKey: 1, lastKey: 1, step: 1, kv: true, write: true, run: cmdQDel},
		{name: "consistency", arity: -1, flags: []string{"fast", "stale"}, acl: conn, run: cmdConsistency},
		{name: "ping", arity: -1, flags: []string{"fast", "stale"}, acl: conn, run: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast", "stale"}, acl: conn, run: cmdEcho},
		{name: "quit", arity: -1, flags: []string{"fast", "noauth", "stale"}, acl: conn, noAuth: true, run: cmdQuit},
		{name: "reset", arity: 1, flags: []string{"fast", "noauth", "stale"}, acl: conn, noAuth: true, run: cmdReset},
		{name: "auth", arity: -2, flags: []string{"fast", "noauth", "stale"}, acl: conn, noAuth: true, run: cmdAuth},
		{name: "hello", arity: -1, flags: []string{"fast", "noauth", "stale"}, acl: conn, noAuth: true, run: cmdHello},
		{name: "select", arity: 2, flags: []string{"fast", "stale"}, acl: conn, run: cmdSelect},
		{name: "client", arity: -2, flags: []string{"stale"}, acl: []string{"@connection", "@slow"}, run: cmdClient},
		{name: "config", arity: -2, flags: []string{"admin", "stale"}, acl: []string{"@admin", "@slow"}, run: cmdConfig},
		{name: "command", arity: -1, flags: []string{"stale"}, acl: []string{"@connection", "@slow"}, run: cmdCommand},
		{name: "info", arity: -1, flags: []string{"stale"}, acl: []string{"@slow"}, run: cmdInfo},
	}
	commands = make(map[string]*spec, len(list))
	for _, sp := range list {
		commands[sp.name] = sp
	}
}

// lookup finds a command by name, case-insensitively, without allocating.
func lookup(name []byte) *spec {
	var buf [16]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return commands[string(buf[:len(name)])]
}

// ---- plumbing shared by the key-value commands ----

// ownKey checks a key and copies it out of the read buffer, which the next
// batch reuses while the KV may still hold the key (read repair, hints).
func (c *client) ownKey(k []byte) ([]byte, error) {
	if len(k) == 0 || len(k) > c.s.cfg.MaxKeyBytes {
		return nil, badRequest("keys must be 1 to %d bytes; this one is %d", c.s.cfg.MaxKeyBytes, len(k))
	}
	return append(make([]byte, 0, len(k)), k...), nil
}

// ownKeyValue checks and copies a key and a value with one allocation.
func (c *client) ownKeyValue(k, v []byte) (key, value []byte, err error) {
	if len(k) == 0 || len(k) > c.s.cfg.MaxKeyBytes {
		return nil, nil, badRequest("keys must be 1 to %d bytes; this one is %d", c.s.cfg.MaxKeyBytes, len(k))
	}
	if len(v) > c.s.cfg.MaxValueBytes {
		return nil, nil, badRequest("the value is %d bytes; the limit is %d bytes (--max-value-bytes)", len(v), c.s.cfg.MaxValueBytes)
	}
	b := make([]byte, len(k)+len(v))
	copy(b, k)
	copy(b[len(k):], v)
	return b[:len(k):len(k)], b[len(k):], nil
}

// kvContext returns the context of one KV call.
func (c *client) kvContext() (context.Context, context.CancelFunc) {
	if c.s.cfg.RequestTimeout > 0 {
		return context.WithTimeout(c.ctx, c.s.cfg.RequestTimeout)
	}
	return c.ctx, noCancel
}

func noCancel() {}

func (c *client) get(key []byte, lvl replication.Consistency) (replication.Result, error) {
	ctx, cancel := c.kvContext()
	defer cancel()
	return c.s.kv.Get(ctx, key, lvl)
}

func (c *client) put(key []byte, w replication.Write) (replication.Result, error) {
	ctx, cancel := c.kvContext()
	defer cancel()
	return c.s.kv.Put(ctx, key, w)
}

// set is a plain SET: one write that supersedes every version the key's
// coordinating replica holds (replication.Write.Overwrite), as Redis's SET
// replaces the value whatever it was. It takes one round trip; no read.
// At strong the write supersedes by tag anyway.
func (c *client) set(key, value []byte, lvl replication.Consistency) error {
	_, err := c.put(key, replication.Write{Value: value, Consistency: lvl, Overwrite: true})
	return err
}

// del is a plain DEL of one key: read it at lvl (DEL answers how many keys
// existed); if it holds a live value, write a tombstone that supersedes it
// and whatever else the coordinating replica holds by then (an overwrite,
// like SET). It reports whether there was a live value.
func (c *client) del(key []byte, lvl replication.Consistency) (bool, error) {
	res, err := c.get(key, lvl)
	if err != nil {
		return false, err
	}
	if n, _ := live(res.Object); n == 0 {
		return false, nil
	}
	_, err = c.put(key, replication.Write{Delete: true, Context: res.Context, Consistency: lvl, Overwrite: true})
	return err == nil, err
}

// live counts the live siblings of o and returns the first one's value.
func live(o vclock.Object) (n int, first []byte) {
	for i := range o.Siblings {
		if !o.Siblings[i].Tombstone {
			if n == 0 {
				first = o.Siblings[i].Value
			}
			n++
		}
	}
	return n, first
}

// begin returns the start time of a command when Config.Observe wants it.
func (c *client) begin() time.Time {
	if c.s.cfg.Observe == nil {
		return time.Time{}
	}
	return time.Now()
}

// observe reports a finished key-value command to Config.Observe.
func (c *client) observe(op string, lvl replication.Consistency, start time.Time, err error, notFound bool) {
	if c.s.cfg.Observe == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		_, outcome = c.s.replyError(err)
	} else if notFound {
		outcome = wire.CodeNotFound
	}
	c.s.cfg.Observe(op, lvl.String(), outcome, time.Since(start))
}

// parseLevel parses a consistency level: one, quorum, all, strong (any
// case), or a replica count 1..N meaning r = w = that count.
func parseLevel(b []byte, n int) (replication.Consistency, error) {
	if lvl, err := replication.ParseLevel(strings.ToLower(string(b))); err == nil {
		return replication.Consistency{Level: lvl}, nil
	}
	if k, err := strconv.Atoi(string(b)); err == nil {
		cons := replication.Consistency{Level: replication.Count, Count: k}
		if err := checkLevel(cons, n); err != nil {
			return replication.Consistency{}, badRequest("%s", err)
		}
		return cons, nil
	}
	upto := "N"
	if n > 0 {
		upto = strconv.Itoa(n)
	}
	return replication.Consistency{}, badRequest("unknown consistency level '%s'; use one, quorum, all, strong or a replica count 1..%s", clip(b, 64), upto)
}

// qoptions are the trailing options of QGET, QSET and QDEL.
type qoptions struct {
	context    vclock.VV
	hasContext bool // a CONTEXT option was given (it may be "", nothing seen)
	level      replication.Consistency
}

var qusage = map[string]string{
	"qget": "QGET key [CONSISTENCY level]",
	"qset": "QSET key value [CONTEXT context] [CONSISTENCY level]",
	"qdel": "QDEL key [CONTEXT context] [CONSISTENCY level]",
}

// parseQOptions parses "[CONTEXT c] [CONSISTENCY l]" in any order.
func (c *client) parseQOptions(cmd string, args [][]byte, withContext bool) (qoptions, error) {
	o := qoptions{level: c.level}
	var sawContext, sawLevel bool
	for i := 0; i < len(args); i += 2 {
		name := args[i]
		if i+1 >= len(args) {
			return o, badRequest("syntax error: %s option %s needs a value", cmd, clip(name, 32))
		}
		val := args[i+1]
		switch {
		case bytes.EqualFold(name, []byte("consistency")) && !sawLevel:
			sawLevel = true
			lvl, err := parseLevel(val, c.s.cfg.Replicas)
			if err != nil {
				return o, err
			}
			o.level = lvl
		case withContext && bytes.EqualFold(name, []byte("context")) && !sawContext:
			sawContext = true
			vv, err := vclock.DecodeContext(string(val))
			if err != nil {
				return o, err
			}
			o.context, o.hasContext = vv, true
		default:
			return o, badRequest("syntax error at '%s'; usage: %s", clip(name, 32), qusage[cmd])
		}
	}
	return o, nil
}

// ---- key-value commands ----

// GET key: the value at the connection's level; nil when absent or deleted;
// a SIBLINGS error when the key holds concurrent values.
func cmdGet(c *client, out []byte, args [][]byte) []byte {
	start, lvl := c.begin(), c.level
	key, err := c.ownKey(args[1])
	var res replication.Result
	if err == nil {
		res, err = c.get(key, lvl)
	}
	var n int
	var value []byte
	if err == nil {
		if n, value = live(res.Object); n > 1 {
			err = &siblingsError{key: key, n: n}
		}
	}
	c.observe("get", lvl, start, err, n == 0)
	if err != nil {
		return c.appendError(out, err)
	}
	if n == 0 {
		return redcon.AppendNull(out)
	}
	return redcon.AppendBulk(out, value)
}

// SET key value: an overwrite (see set).
func cmdSet(c *client, out []byte, args [][]byte) []byte {
	if len(args) > 3 {
		return redcon.AppendError(out, "ERR syntax error: SET takes no options here (EX, PX, NX, XX, GET, KEEPTTL); quorumkv has neither expiry nor conditional writes")
	}
	start, lvl := c.begin(), c.level
	key, value, err := c.ownKeyValue(args[1], args[2])
	if err == nil {
		err = c.set(key, value, lvl)
	}
	c.observe("set", lvl, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	return redcon.AppendOK(out)
}

// DEL key...: delete each key that has a live value (see del); answers how
// many did. Keys run concurrently; a key named twice counts once.
func cmdDel(c *client, out []byte, args [][]byte) []byte {
	start, lvl := c.begin(), c.level
	keys, err := c.ownKeys(dedupe(args[1:]))
	var count int
	if err == nil {
		deleted := make([]bool, len(keys))
		errs := make([]error, len(keys))
		c.fanOut(len(keys), func(i int) { deleted[i], errs[i] = c.del(keys[i], lvl) })
		for i := range keys {
			if errs[i] != nil && err == nil {
				err = errs[i]
			}
			if deleted[i] {
				count++
			}
		}
	}
	c.observe("del", lvl, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	return redcon.AppendInt(out, int64(count))
}

// EXISTS key...: how many of the keys have a live value (a key named twice
// counts twice, as in Redis).
func cmdExists(c *client, out []byte, args [][]byte) []byte {
	start, lvl := c.begin(), c.level
	keys, err := c.ownKeys(args[1:])
	var count int
	if err == nil {
		found := make([]bool, len(keys))
		errs := make([]error, len(keys))
		c.fanOut(len(keys), func(i int) {
			res, err := c.get(keys[i], lvl)
			n, _ := live(res.Object)
			found[i], errs[i] = n > 0, err
		})
		for i := range keys {
			if errs[i] != nil && err == nil {
				err = errs[i]
			}
			if found[i] {
				count++
			}
		}
	}
	c.observe("exists", lvl, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	return redcon.AppendInt(out, int64(count))
}

// MGET key...: the values in order, nil for absent keys. The keys are read
// concurrently. If any read fails, or any key holds siblings, the whole
// command answers that error: Redis clients do not expect errors inside an
// MGET reply.
func cmdMGet(c *client, out []byte, args [][]byte) []byte {
	start, lvl := c.begin(), c.level
	keys, err := c.ownKeys(args[1:])
	var values [][]byte
	if err == nil {
		values = make([][]byte, len(keys))
		counts := make([]int, len(keys))
		errs := make([]error, len(keys))
		c.fanOut(len(keys), func(i int) {
			res, err := c.get(keys[i], lvl)
			counts[i], values[i] = live(res.Object)
			errs[i] = err
		})
		for i := range keys {
			if errs[i] != nil {
				err = errs[i]
				break
			}
			if counts[i] > 1 {
				err = &siblingsError{key: keys[i], n: counts[i]}
				break
			}
		}
	}
	c.observe("mget", lvl, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	out = redcon.AppendArray(out, len(values))
	for _, v := range values {
		if v == nil {
			out = redcon.AppendNull(out)
		} else {
			out = redcon.AppendBulk(out, v)
		}
	}
	return out
}

// MSET key value...: a SET of each pair, run concurrently. When a key is
// named twice its last value is written, as in Redis. MSET is not atomic:
// on an error some keys may have been written, and the error says how many.
func cmdMSet(c *client, out []byte, args [][]byte) []byte {
	if len(args)%2 != 1 {
		return appendArityError(out, "mset")
	}
	start, lvl := c.begin(), c.level
	pairs := lastPairs(args[1:])
	keys := make([][]byte, len(pairs))
	values := make([][]byte, len(pairs))
	var err error
	for i, p := range pairs {
		if keys[i], values[i], err = c.ownKeyValue(args[1+p], args[2+p]); err != nil {
			break
		}
	}
	if err == nil {
		errs := make([]error, len(keys))
		c.fanOut(len(keys), func(i int) { errs[i] = c.set(keys[i], values[i], lvl) })
		failed := 0
		for i := range keys {
			if errs[i] != nil {
				if err == nil {
					err = errs[i]
				}
				failed++
			}
		}
		if err != nil && len(keys) > 1 {
			msg, _ := c.s.replyError(err)
			c.observe("mset", lvl, start, err, false)
			return redcon.AppendError(out, msg+" (MSET is not atomic: "+strconv.Itoa(len(keys)-failed)+" of "+strconv.Itoa(len(keys))+" keys were written)")
		}
	}
	c.observe("mset", lvl, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	return redcon.AppendOK(out)
}

// QGET key [CONSISTENCY level]: [context, value...] with every live
// sibling; just [context] when the key is absent or deleted (the context is
// "" for a key never written).
func cmdQGet(c *client, out []byte, args [][]byte) []byte {
	start := c.begin()
	o, err := c.parseQOptions("qget", args[2:], false)
	var key []byte
	if err == nil {
		key, err = c.ownKey(args[1])
	}
	var res replication.Result
	if err == nil {
		res, err = c.get(key, o.level)
	}
	n, _ := live(res.Object)
	c.observe("qget", o.level, start, err, n == 0)
	if err != nil {
		return c.appendError(out, err)
	}
	out = redcon.AppendArray(out, 1+n)
	if len(res.Context) == 0 {
		out = redcon.AppendBulkString(out, "")
	} else {
		out = redcon.AppendBulkString(out, vclock.EncodeContext(res.Context))
	}
	for i := range res.Object.Siblings {
		if sb := &res.Object.Siblings[i]; !sb.Tombstone {
			out = redcon.AppendBulk(out, sb.Value)
		}
	}
	return out
}

// QSET key value [CONTEXT c] [CONSISTENCY level]: write with exactly the
// given context (none: the value becomes a sibling of whatever is stored,
// like an HTTP PUT without X-Context); answers the new version's context.
func cmdQSet(c *client, out []byte, args [][]byte) []byte {
	start := c.begin()
	o, err := c.parseQOptions("qset", args[3:], true)
	var key, value []byte
	if err == nil {
		key, value, err = c.ownKeyValue(args[1], args[2])
	}
	var res replication.Result
	if err == nil {
		res, err = c.put(key, replication.Write{Value: value, Context: o.context, Consistency: o.level})
	}
	c.observe("qset", o.level, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	return redcon.AppendBulkString(out, vclock.EncodeContext(res.Context))
}

// QDEL key [CONTEXT c] [CONSISTENCY level]: write a tombstone with exactly
// the given context; answers the new context.
func cmdQDel(c *client, out []byte, args [][]byte) []byte {
	start := c.begin()
	o, err := c.parseQOptions("qdel", args[2:], true)
	var key []byte
	if err == nil {
		key, err = c.ownKey(args[1])
	}
	var res replication.Result
	if err == nil {
		// Without CONTEXT the tombstone supersedes what the coordinating
		// primary holds, like an HTTP DELETE without X-Context.
		res, err = c.put(key, replication.Write{Delete: true, Context: o.context, Consistency: o.level, Overwrite: !o.hasContext})
	}
	c.observe("qdel", o.level, start, err, false)
	if err != nil {
		return c.appendError(out, err)
	}
	return redcon.AppendBulkString(out, vclock.EncodeContext(res.Context))
}

// ownKeys checks and copies keys.
func (c *client) ownKeys(args [][]byte) ([][]byte, error) {
	keys := make([][]byte, len(args))
	for i, a := range args {
		k, err := c.ownKey(a)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

// dedupe returns keys without repeats, keeping first occurrences in order.
func dedupe(keys [][]byte) [][]byte {
	if len(keys) < 2 {
		return keys
	}
	seen := make(map[string]struct{}, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if _, ok := seen[string(k)]; !ok {
			seen[string(k)] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// lastPairs returns the offsets (into kv) of the key-value pairs to write,
// keeping the last pair of a key named more than once, in first-seen order.
func lastPairs(kv [][]byte) []int {
	n := len(kv) / 2
	offs := make([]int, 0, n)
	if n == 1 {
		return append(offs, 0)
	}
	at := make(map[string]int, n)
	for i := 0; i < len(kv); i += 2 {
		if j, ok := at[string(kv[i])]; ok {
			offs[j] = i
			continue
		}
		at[string(kv[i])] = len(offs)
		offs = append(offs, i)
	}
	return offs
}
