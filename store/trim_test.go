//go:build linux

package store

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/vclock"
)

// resident is how many bytes of files under dir ending in suffix are
// resident in this process, by /proc/self/smaps.
func resident(t *testing.T, dir, suffix string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("reading /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var n int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			path := fields[len(fields)-1]
			in = len(fields) >= 6 && strings.HasPrefix(path, dir) && strings.HasSuffix(path, suffix)
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			n += kb << 10
		}
	}
	return n
}

// fillTables writes keys of 100 random bytes until badger has flushed
// tables, and returns what it wrote.
func fillTables(t *testing.T, s *Store, n int) map[string][]byte {
	t.Helper()
	want := make(map[string][]byte, n)
	for i := range n {
		k := fmt.Sprintf("key-%06d", i)
		v := make([]byte, 100)
		for j := range v {
			v[j] = byte(rand.Uint32())
		}
		_, err := s.Update(i%8, []byte(k), func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
			next, _ := cur.Update("n1.x", cur.Clock, v, false)
			return next, true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	return want
}

func openTrimTest(t *testing.T, every time.Duration) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.MemTableSize = 1 << 20
	cfg.ObjectCacheSize = 0
	cfg.TrimInterval = every
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestTrimDropsTablePagesAndKeepsData(t *testing.T) {
	s, dir := openTrimTest(t, time.Hour) // trimmed by hand below
	if s.trimmer == nil {
		t.Fatal("the trimmer did not start: badger's layout was not recognised")
	}
	want := fillTables(t, s, 40000)
	deadline := time.Now().Add(20 * time.Second)
	before := resident(t, dir, ".sst")
	for before < 1<<20 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		before = resident(t, dir, ".sst")
	}
	if before < 1<<20 {
		t.Fatalf("only %d bytes of tables resident after the writes: nothing to trim", before)
	}
	logBefore := resident(t, dir, ".mem")
	if logBefore < 64<<10 {
		t.Fatalf("only %d bytes of memtable logs resident after the writes", logBefore)
	}
	covered := s.trimmer.trim()
	after, logAfter := resident(t, dir, ".sst"), resident(t, dir, ".mem")
	t.Logf("resident: tables %d KiB before the trim, %d KiB after; logs %d KiB, %d KiB (%d KiB of mappings)",
		before>>10, after>>10, logBefore>>10, logAfter>>10, covered>>10)
	if after > before/10 || logAfter > logBefore/10 {
		t.Fatalf("trim left tables %d of %d bytes and logs %d of %d bytes resident", after, before, logAfter, logBefore)
	}
	verify(t, s, want)
	// Written through a trimmed log, and read back after a restart (replayed
	// from the log if not yet flushed): a trim loses no write.
	more := fillTables(t, s, 1000)
	s.trimmer.trim()
	dir2 := s.cfg.Dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dir = dir2
	s2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	verify(t, s2, more)
}

// verify reads every key back and compares its value.
func verify(t *testing.T, s *Store, want map[string][]byte) {
	t.Helper()
	for k, v := range want {
		var p int
		fmt.Sscanf(k, "key-%d", &p)
		o, ok, err := s.Get(p%8, []byte(k))
		if err != nil || !ok {
			t.Fatalf("%s: found %v, err %v", k, ok, err)
		}
		if len(o.Siblings) != 1 || !bytes.Equal(o.Siblings[0].Value, v) {
			t.Fatalf("%s: read %d siblings, not the value written", k, len(o.Siblings))
		}
	}
}

// Trims every millisecond while writers make badger flush and compact:
// a table that a compaction drops must not be unmapped under a trim, and
// no value may change.
func TestTrimDuringCompactions(t *testing.T) {
	s, _ := openTrimTest(t, time.Millisecond)
	var wg sync.WaitGroup
	parts := make([]map[string][]byte, 4)
	for w := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := make(map[string][]byte)
			for i := range 15000 {
				k := fmt.Sprintf("key-%06d", w*100000+i)
				v := []byte(fmt.Sprintf("%0100d", rand.Uint64()))
				p := (w*100000 + i) % 8
				if _, err := s.Update(p, []byte(k), func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
					next, _ := cur.Update("n1.x", cur.Clock, v, false)
					return next, true, nil
				}); err != nil {
					t.Error(err)
					return
				}
				m[k] = v
			}
			parts[w] = m
		}()
	}
	wg.Wait()
	for _, m := range parts {
		verify(t, s, m)
	}
}
