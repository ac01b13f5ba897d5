package store

import (
	"fmt"
	"sync"
	"testing"

	"github.com/quorumkv/quorumkv/vclock"
)

// MergeMany must leave every key as merging its items one by one would:
// duplicates in one batch, keys already stored, objects that change
// nothing, and batches racing with each other and with single-key Updates.
func TestMergeManyEqualsMergingInTurn(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir = dir
	var mu sync.Mutex
	changes := 0
	cfg.OnChange = func(int, []byte, uint64, uint64, bool, bool) {
		mu.Lock()
		changes++
		mu.Unlock()
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each writer w makes versions of keys k0..k19 under its own actor; the
	// expected final object of a key is the join of everything sent for it.
	const writers, rounds, keys = 8, 30, 20
	want := make([]vclock.Object, keys)
	var wantMu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			actor := fmt.Sprint("a", w)
			var last [keys]vclock.Object
			for r := range rounds {
				var batch []Item
				for k := range keys {
					if (k+r+w)%3 == 0 {
						continue
					}
					next, _ := last[k].Update(actor, last[k].Clock, fmt.Appendf(nil, "%s-%d", actor, r), false)
					last[k] = next
					batch = append(batch, Item{Partition: k % 4, Key: fmt.Appendf(nil, "k%d", k), Object: next})
					if k%5 == 0 { // the same key twice in one batch
						batch = append(batch, Item{Partition: k % 4, Key: fmt.Appendf(nil, "k%d", k), Object: next})
					}
				}
				if w%2 == 0 {
					if _, err := s.MergeMany(batch); err != nil {
						t.Error(err)
						return
					}
				} else {
					for _, it := range batch {
						if _, _, err := s.Merge(it.Partition, it.Key, it.Object); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
			wantMu.Lock()
			for k := range keys {
				want[k] = vclock.Merge(want[k], last[k])
			}
			wantMu.Unlock()
		})
	}
	wg.Wait()
	// A batch that changes nothing writes nothing.
	before := changes
	var same []Item
	for k := range keys {
		same = append(same, Item{Partition: k % 4, Key: fmt.Appendf(nil, "k%d", k), Object: want[k]})
	}
	if n, err := s.MergeMany(same); err != nil || n != 0 || changes != before {
		t.Fatalf("re-merging what is stored: %d changed, %d OnChange calls, err %v", n, changes-before, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	for k := range keys {
		got, _, err := s.Get(k%4, fmt.Appendf(nil, "k%d", k))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want[k]) {
			t.Errorf("k%d after reopen: %d siblings, clock %v; want %d siblings, clock %v", k, len(got.Siblings), got.Clock, len(want[k].Siblings), want[k].Clock)
		}
	}
}

func TestMergeManyRefusesBadPartition(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	o, _ := vclock.Object{}.Update("a", nil, []byte("v"), false)
	if _, err := s.MergeMany([]Item{{Partition: 1, Key: []byte("ok"), Object: o}, {Partition: -1, Key: []byte("bad"), Object: o}}); err == nil {
		t.Fatal("a batch with partition -1 was accepted")
	}
	if _, found, _ := s.Get(1, []byte("ok")); found {
		t.Fatal("a refused batch wrote part of itself")
	}
}
