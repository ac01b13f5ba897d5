package resp

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/tidwall/redcon"
)

// maxKeptReply is the largest reply buffer a connection keeps for reuse.
const maxKeptReply = 64 << 10

// client is one connection. Its goroutine reads a batch of pipelined
// commands, runs it, writes every reply in order with one write, and reads
// the next batch.
type client struct {
	s    *Server
	conn net.Conn
	id   int64
	rd   *reader
	out  []byte

	// ctx is the parent of this connection's KV calls: a child of the
	// server's, so Close cancels it, and per connection, so that calls of
	// different connections do not contend on one parent context's lock.
	ctx    context.Context
	cancel context.CancelFunc

	// Connection state. Only the connection's goroutine writes these, and
	// only between waves, so the goroutines of a wave read them freely.
	level  replication.Consistency
	name   string
	lib    string
	authed bool
	quit   bool

	// mu guards busy and closing, which Server.Shutdown reads to close
	// the connection only between batches.
	mu      sync.Mutex
	busy    bool
	closing bool

	// Wave scratch (see runBatch). waveCmds is the wave under way; pool
	// goroutines read it and write replies[k] for their command k.
	waveCmds []command
	replies  [][]byte
	keys     map[uint64]uint8
	wg       sync.WaitGroup
}

func (s *Server) newClient(nc net.Conn) *client {
	c := &client{
		s:      s,
		conn:   nc,
		id:     s.nextID.Add(1),
		rd:     newReader(nc, s.cfg.MaxCommandBytes),
		level:  s.cfg.DefaultLevel,
		authed: s.cfg.AuthToken == "",
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	return c
}

func (c *client) serve() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	defer c.cancel()
	defer c.conn.Close()
	defer func() {
		// The parser and the batch runner are meant never to panic; if
		// one does, this connection ends and the node goes on.
		if r := recover(); r != nil {
			c.s.log.Error("resp: connection panicked", "peer", c.conn.RemoteAddr().String(), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	for {
		cmds, err := c.rd.readBatch()
		if err != nil {
			var pe *protocolError
			if errors.As(err, &pe) {
				c.conn.Write(redcon.AppendError(c.out[:0], "ERR "+pe.Error()))
				c.lingerClose()
			}
			return
		}
		if !c.beginBatch() {
			return // Shutdown closed the connection: these do not run
		}
		c.s.commandsRun.Add(int64(len(cmds)))
		err = c.runBatch(cmds)
		if !c.endBatch() {
			// Shutdown: the batch's replies are out; close without
			// resetting the connection under them.
			c.lingerClose()
			return
		}
		if err != nil || c.quit {
			return
		}
	}
}

// beginBatch marks the connection busy with a batch; false if Shutdown has
// closed it.
func (c *client) beginBatch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.busy = true
	return true
}

// endBatch marks the batch done; false if the server is shutting down, in
// which case the connection reads nothing more.
func (c *client) endBatch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	if c.s.draining.Load() {
		c.closing = true
		return false
	}
	return true
}

// closeIfIdle closes the connection if it is waiting for its client
// (Shutdown); a busy one closes itself after its batch (endBatch).
func (c *client) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		c.closing = true
		c.conn.Close()
	}
}

// lingerClose half-closes the connection and discards what the client
// still sends for a moment before the connection is closed, as net/http
// does: closing with unread input makes TCP send a reset, which can destroy
// the error reply before the client reads it.
func (c *client) lingerClose() {
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	cw.CloseWrite()
	c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	io.CopyN(io.Discard, c.conn, 1<<20)
}

// runBatch runs the commands of one pipelined batch and appends their
// replies to c.out in order.
//
// Key-value commands run in waves: a wave is a run of consecutive key-value
// commands of which no two touch the same key unless both only read it. The
// commands of a wave run concurrently, each into its own reply buffer; the
// wave ends before a command that conflicts with it, before any connection
// command (CONSISTENCY, AUTH, SELECT... which change what later commands
// do), and after Concurrency commands. So every command sees the effects of
// the commands before it on its keys and the connection's state, exactly as
// if the batch ran one command at a time; only commands that cannot observe
// each other overlap.
//
// Replies go out in one write per batch, or sooner once more than
// flushBytes have piled up, so a pipeline of GETs of large values does not
// hold all of them in memory; the write blocks while the client is not
// reading, which holds the connection back.
func (c *client) runBatch(cmds []command) error {
	for i := range cmds {
		cmds[i].spec = lookup(cmds[i].args[0])
	}
	limit := c.s.cfg.Concurrency
	for i := 0; i < len(cmds) && !c.quit; {
		n := 1
		if limit > 1 && i+1 < len(cmds) {
			n = c.wave(cmds[i:], limit)
		}
		if n <= 1 {
			c.out = c.exec(c.out, &cmds[i])
			i++
		} else {
			c.runWave(cmds[i : i+n])
			i += n
		}
		if len(c.out) > flushBytes && i < len(cmds) {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	return c.flush()
}

// flushBytes is how many reply bytes a batch gathers before writing them.
const flushBytes = 256 << 10

// flush writes the replies gathered so far.
func (c *client) flush() error {
	if len(c.out) > 0 {
		if _, err := c.conn.Write(c.out); err != nil {
			return err
		}
	}
	if cap(c.out) > 4*maxKeptReply {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return nil
}

// wave returns how many commands from the start of cmds form one wave.
func (c *client) wave(cmds []command, limit int) int {
	if c.keys == nil {
		c.keys = make(map[uint64]uint8)
	} else {
		clear(c.keys)
	}
	n := 0
	for n < len(cmds) && n < limit {
		cmd := &cmds[n]
		if !c.concurrent(cmd) {
			break
		}
		if n > 0 && c.conflicts(cmd) {
			break
		}
		c.addKeys(cmd)
		n++
	}
	return n
}

// concurrent reports whether cmd may run in a wave: a well-formed key-value
// command of an authenticated connection.
func (c *client) concurrent(cmd *command) bool {
	sp := cmd.spec
	return sp != nil && sp.kv && c.authed && sp.arityOK(len(cmd.args))
}

const (
	keyRead  uint8 = 1
	keyWrite uint8 = 2
)

// conflicts reports whether cmd touches a key of the current wave where one
// of the two writes. Keys are compared by hash; a collision only ends a wave
// early.
func (c *client) conflicts(cmd *command) bool {
	sp := cmd.spec
	for k := sp.firstKey; k <= sp.lastKeyIndex(len(cmd.args)); k += sp.step {
		have := c.keys[maphash.Bytes(c.s.seed, cmd.args[k])]
		if have != 0 && (sp.write || have&keyWrite != 0) {
			return true
		}
	}
	return false
}

func (c *client) addKeys(cmd *command) {
	sp := cmd.spec
	mode := keyRead
	if sp.write {
		mode = keyWrite
	}
	for k := sp.firstKey; k <= sp.lastKeyIndex(len(cmd.args)); k += sp.step {
		c.keys[maphash.Bytes(c.s.seed, cmd.args[k])] |= mode
	}
}

// runWave runs cmds concurrently and appends their replies to c.out in order.
func (c *client) runWave(cmds []command) {
	n := len(cmds)
	for len(c.replies) < n {
		c.replies = append(c.replies, nil)
	}
	c.waveCmds = cmds
	c.wg.Add(n - 1)
	for k := 1; k < n; k++ {
		c.s.workers.submit(task{c: c, k: k})
	}
	c.replies[0] = c.exec(c.replies[0][:0], &cmds[0])
	c.wg.Wait()
	c.waveCmds = nil
	for k := 0; k < n; k++ {
		c.out = append(c.out, c.replies[k]...)
		if cap(c.replies[k]) > maxKeptReply {
			c.replies[k] = nil
		}
	}
}

// runWaveTask runs command k of the wave under way, on a pool goroutine.
func (c *client) runWaveTask(k int) {
	defer c.wg.Done()
	c.replies[k] = c.exec(c.replies[k][:0], &c.waveCmds[k])
}

// exec runs one command and appends its reply to out. A panic in the
// command becomes an error reply for that command alone.
func (c *client) exec(out []byte, cmd *command) (res []byte) {
	mark := len(out)
	defer func() {
		if r := recover(); r != nil {
			c.s.log.Error("resp: command panicked", "op", string(cmd.args[0]), "panic", r, "stack", string(debug.Stack()))
			res = redcon.AppendError(out[:mark], "ERR internal error while running the command; see the node's log")
		}
	}()
	sp := cmd.spec
	if sp == nil {
		return appendUnknown(out, cmd.args)
	}
	if !c.authed && !sp.noAuth {
		return redcon.AppendError(out, "NOAUTH Authentication required.")
	}
	if !sp.arityOK(len(cmd.args)) {
		return appendArityError(out, sp.name)
	}
	return sp.run(c, out, cmd.args)
}

func appendArityError(out []byte, name string) []byte {
	return redcon.AppendError(out, "ERR wrong number of arguments for '"+name+"' command")
}

// appendUnknown answers an unknown command the way Redis 7 does.
func appendUnknown(out []byte, args [][]byte) []byte {
	msg := fmt.Appendf(nil, "ERR unknown command '%s', with args beginning with: ", clip(args[0], 128))
	room := 128
	for _, a := range args[1:] {
		if room <= 0 {
			break
		}
		a = clip(a, room)
		room -= len(a)
		msg = fmt.Appendf(msg, "'%s' ", a)
	}
	return redcon.AppendError(out, string(msg))
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// fanOut runs fn(0..n-1) with at most Concurrency calls at once and returns
// when all have returned. A panic in fn is re-raised on the caller's
// goroutine, where exec turns it into an error reply.
func (c *client) fanOut(n int, fn func(i int)) {
	workers := min(n, c.s.cfg.Concurrency)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			fn(i)
		}
	}
	wg.Add(workers - 1)
	for range workers - 1 {
		c.s.workers.submit(task{fn: func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					failed.CompareAndSwap(nil, fmt.Sprint(r))
				}
			}()
			work()
		}})
	}
	work()
	wg.Wait()
	if r := failed.Load(); r != nil {
		panic(r)
	}
}
