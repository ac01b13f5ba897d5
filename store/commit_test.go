package store

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/quorumkv/quorumkv/vclock"
)

// With Sync on, concurrent Updates go through the group committer: every
// write must be there (and in order per key) after a reopen.
func TestGroupCommitKeepsEveryWrite(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Sync = true
	var mu sync.Mutex
	changes := map[string]int{}
	cfg.OnChange = func(_ int, key []byte, _, _ uint64, _, _ bool) {
		mu.Lock()
		changes[string(key)]++
		mu.Unlock()
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.group == nil {
		t.Fatal("Sync store without a group committer")
	}
	const writers, perWriter, hot = 32, 40, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Own keys, plus a few keys every writer updates.
				write(t, s, w%4, fmt.Sprintf("w%d-%d", w, i), fmt.Sprint("v", i))
				key := fmt.Sprint("hot", i%hot)
				if _, err := s.Update(1, []byte(key), func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
					// Append one byte: the final length counts the updates,
					// so a lost or reordered write shows.
					v := []byte{}
					if l := cur.Live(); len(l) > 0 {
						v = bytes.Clone(l[0].Value)
					}
					next, _ := cur.Update("n1.x", cur.Clock, append(v, 'x'), false)
					return next, true, nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	for w := range writers {
		for i := range perWriter {
			o, ok, err := s.Get(w%4, []byte(fmt.Sprintf("w%d-%d", w, i)))
			if err != nil || !ok || string(o.Live()[0].Value) != fmt.Sprint("v", i) {
				t.Fatalf("w%d-%d after reopen: %v %v %+v", w, i, err, ok, o)
			}
		}
	}
	for h := range hot {
		o, ok, err := s.Get(1, []byte(fmt.Sprint("hot", h)))
		if err != nil || !ok {
			t.Fatalf("hot%d: %v %v", h, err, ok)
		}
		if got, want := len(o.Live()[0].Value), writers*perWriter/hot; got != want {
			t.Errorf("hot%d holds %d updates, want %d", h, got, want)
		}
		if changes[fmt.Sprint("hot", h)] != writers*perWriter/hot {
			t.Errorf("hot%d: %d OnChange calls", h, changes[fmt.Sprint("hot", h)])
		}
	}
}

// A batch too big for one badger transaction falls back to one put each.
func TestGroupCommitTooBigBatchFallsBack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Sync = true
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// badger's limit is 15% of the 16 MiB memtable (~2.4 MiB): three 1 MiB
	// values in one transaction exceed it, each alone does not.
	big := bytes.Repeat([]byte("b"), 1<<20)
	var batch []*commitReq
	for i := range 3 {
		batch = append(batch, &commitReq{key: objectKey(0, []byte(fmt.Sprint("big", i))), val: big, done: make(chan error, 1)})
	}
	s.group.commit(batch)
	for i, r := range batch {
		if err := <-r.done; err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}
