package resp

import (
	"errors"
	"hash/maphash"
	"sync"

	"github.com/quorumkv/quorumkv/replication"
)

// Coalescing of plain SETs of one key.
//
// A plain SET is a round: read the key's context, write the value with it.
// When several connections SET the same key at once through this node
// (redis-benchmark without -r: 64 clients on one key), running those rounds
// side by side would make their writes concurrent, and so siblings — after
// which every GET of the key fails. Instead the SETs of one key that are in
// flight on this node together are ordered by the node: while a round runs,
// new SETs of the key wait; when it ends, the next round writes the value
// of the last of them (reading the context afresh), and answers all of
// them with its outcome. The SETs it absorbs were each, in that order,
// superseded by the next: the node linearizes them, as Redis would. Each
// absorbed SET is answered only once the value that superseded it is
// stored at its level, and shares that write's errors (UNAVAILABLE,
// TIMEOUT), so no SET is acknowledged before its effect — its supersession
// — is durable. SETs that meet only on different nodes stay concurrent and
// become siblings, as any two writers that did not see each other do.
//
// A key with no SET in flight costs a map insert and delete; each round is
// led by the goroutine of the SET it writes, so no connection works for
// others longer than one round.
type coalescer struct {
	seed   maphash.Seed
	shards [64]coalescerShard
}

type coalescerShard struct {
	// mu guards chains.
	mu     sync.Mutex
	chains map[string]*setChain
}

// setChain is the SETs of one key waiting for the round under way to end.
type setChain struct {
	pending []*setWait
}

// setWait is a SET waiting for its round.
type setWait struct {
	value []byte
	level replication.Consistency
	// wake tells the SET its outcome, or hands it a round to lead.
	wake chan setWake
}

type setWake struct {
	// lead, when set, is the round this SET leads; it ends with the SET
	// itself, whose value the round writes.
	lead []*setWait
	err  error
}

func newCoalescer() *coalescer {
	co := &coalescer{seed: maphash.MakeSeed()}
	for i := range co.shards {
		co.shards[i].chains = make(map[string]*setChain)
	}
	return co
}

func (co *coalescer) shard(key []byte) *coalescerShard {
	return &co.shards[maphash.Bytes(co.seed, key)%uint64(len(co.shards))]
}

var errLeaderPanicked = errors.New("resp: the SET that wrote this key's value panicked")

// set runs a plain SET of key through the key's chain.
func (c *client) set(key, value []byte, lvl replication.Consistency) error {
	co := c.s.sets
	sh := co.shard(key)
	sh.mu.Lock()
	ch := sh.chains[string(key)]
	if ch == nil {
		sh.chains[string(key)] = &setChain{}
		sh.mu.Unlock()
		return c.leadRound(sh, key, []*setWait{{value: value, level: lvl}})
	}
	w := &setWait{value: value, level: lvl, wake: make(chan setWake, 1)}
	ch.pending = append(ch.pending, w)
	sh.mu.Unlock()
	wk := <-w.wake
	if wk.lead == nil {
		return wk.err
	}
	return c.leadRound(sh, key, wk.lead)
}

// leadRound writes the value of the last SET of round, answers the others
// with the outcome, and hands the next round to a waiting SET (or ends the
// chain). It does so even if the write panics, so no SET waits forever.
func (c *client) leadRound(sh *coalescerShard, key []byte, round []*setWait) (err error) {
	own := round[len(round)-1]
	defer func() {
		r := recover()
		if r != nil {
			err = errLeaderPanicked
		}
		for _, w := range round[:len(round)-1] {
			w.wake <- setWake{err: err}
		}
		sh.handOff(key)
		if r != nil {
			panic(r)
		}
	}()
	return c.setOnce(key, own.value, own.level)
}

// handOff starts the next round of key's chain: the longest run of waiting
// SETs at one level, led by the last of them. With none waiting, the chain
// ends.
func (sh *coalescerShard) handOff(key []byte) {
	sh.mu.Lock()
	ch := sh.chains[string(key)]
	if len(ch.pending) == 0 {
		delete(sh.chains, string(key))
		sh.mu.Unlock()
		return
	}
	n := 1
	for n < len(ch.pending) && ch.pending[n].level == ch.pending[0].level {
		n++
	}
	round := ch.pending[:n:n]
	ch.pending = append([]*setWait(nil), ch.pending[n:]...)
	sh.mu.Unlock()
	round[n-1].wake <- setWake{lead: round}
}

// setOnce is one plain SET round: read the key's context at lvl, then write
// with it, so the new value supersedes every version that read saw. At
// strong the read is skipped: a strong write supersedes by tag and needs no
// context.
func (c *client) setOnce(key, value []byte, lvl replication.Consistency) error {
	w := replication.Write{Value: value, Consistency: lvl}
	if lvl.Level != replication.Strong {
		res, err := c.get(key, lvl)
		if err != nil {
			return err
		}
		w.Context = res.Context
	}
	_, err := c.put(key, w)
	return err
}
