package replication

import (
	"context"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
)

// Explain asks every node of key's preference list what it holds now.
func (c *Coordinator) Explain(ctx context.Context, key []byte) wire.Explain {
	pl := c.place(key)
	out := wire.Explain{Key: string(key), Partition: pl.partition}
	if !utf8.Valid(key) {
		out.KeyBase64 = key
	}
	replies := make([]wire.ExplainReplica, len(pl.pref))
	done := make(chan struct{}, len(pl.pref))
	for i, node := range pl.pref {
		role := "fallback"
		if i < len(pl.primaries) {
			role = "primary"
		}
		out.PreferenceList = append(out.PreferenceList, wire.ExplainNode{Node: node, Role: role})
		go func() {
			defer func() { done <- struct{}{} }()
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			defer cancel()
			rep := wire.ExplainReplica{Node: node, Role: role, ValueHashes: []string{}}
			resp, err := c.call(rctx, node, wire.Request{Op: wire.OpRead, Partition: pl.partition, Key: key})
			if err != nil {
				rep.Error = err.Error()
				replies[i] = rep
				return
			}
			obj := objectOf(resp)
			live := obj.Live()
			rep.Found = len(live) > 0
			rep.Tombstone = obj.Deleted()
			rep.Siblings = len(obj.Siblings)
			rep.Version = obj.Clock.String()
			if !obj.IsEmpty() {
				rep.Hash = strconv.FormatUint(obj.Hash(), 16)
			}
			for _, s := range live {
				rep.ValueHashes = append(rep.ValueHashes, fmt.Sprintf("%016x", vclock.ValueHash(s.Value)))
			}
			replies[i] = rep
		}()
	}
	for range pl.pref {
		<-done
	}
	out.Replicas = replies
	return out
}
