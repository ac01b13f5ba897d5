package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/vclock"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = dir
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s *Store, p int, key, value string) vclock.Object {
	t.Helper()
	o, err := s.Update(p, []byte(key), func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
		next, _ := cur.Update("n1.x", cur.Clock, []byte(value), false)
		return next, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := 0; i < 100; i++ {
		write(t, s, i%4, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	if _, err := s.AddHint(Hint{Target: "n2", Partition: 1, Key: []byte("h")}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMeta("incarnation", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	for i := 0; i < 100; i++ {
		o, ok, err := s.Get(i%4, []byte(fmt.Sprint("k", i)))
		if err != nil || !ok || string(o.Live()[0].Value) != fmt.Sprint("v", i) {
			t.Fatalf("k%d after reopen: %v %v %+v", i, err, ok, o)
		}
	}
	if c, _ := s.HintCounts(); c["n2"] != 1 {
		t.Fatalf("hints after reopen: %v", c)
	}
	if m, ok, _ := s.GetMeta("incarnation"); !ok || len(m) != 3 {
		t.Fatal("meta lost")
	}
	// A new hint after reopen must not reuse a sequence number.
	seq, _ := s.AddHint(Hint{Target: "n2", Partition: 1, Key: []byte("h2")}, time.Now())
	if seq != 2 {
		t.Fatalf("hint seq after reopen = %d, want 2", seq)
	}
}

func TestScanIsPerPartition(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for i := 0; i < 30; i++ {
		write(t, s, i%3, fmt.Sprintf("k%02d", i), "v")
	}
	var keys []string
	if err := s.Scan(1, func(k []byte, _ vclock.Object) (bool, error) {
		keys = append(keys, string(k))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 10 || keys[0] != "k01" || keys[9] != "k28" {
		t.Fatalf("partition 1 keys = %v", keys)
	}
	if err := s.DropPartition(1); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.Scan(1, func([]byte, vclock.Object) (bool, error) { n++; return true, nil })
	m := 0
	s.Scan(2, func([]byte, vclock.Object) (bool, error) { m++; return true, nil })
	if n != 0 || m != 10 {
		t.Fatalf("after drop: partition 1 has %d keys, partition 2 has %d", n, m)
	}
}

func TestMergeAndPurge(t *testing.T) {
	var changes []string
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.OnChange = func(p int, key []byte, oldH, newH uint64, hadOld, hasNew bool) {
		changes = append(changes, fmt.Sprintf("%s:%v:%v", key, hadOld, hasNew))
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := write(t, s, 0, "k", "v1")
	if _, changed, _ := s.Merge(0, []byte("k"), o); changed {
		t.Fatal("merging what is stored changed it")
	}
	other, _ := vclock.Object{}.Update("n2.y", nil, []byte("v2"), false)
	got, changed, err := s.Merge(0, []byte("k"), other)
	if err != nil || !changed || len(got.Siblings) != 2 {
		t.Fatalf("concurrent merge: %v %v %+v", err, changed, got)
	}
	if ok, _ := s.Purge(0, []byte("k"), 12345); ok {
		t.Fatal("purge with a stale hash removed the key")
	}
	if ok, _ := s.Purge(0, []byte("k"), got.Hash()); !ok {
		t.Fatal("purge with the current hash did nothing")
	}
	if _, ok, _ := s.Get(0, []byte("k")); ok {
		t.Fatal("purged key still there")
	}
	want := []string{"k:false:true", "k:true:true", "k:true:false"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("OnChange calls = %v, want %v", changes, want)
	}
}

func TestHintsOldestFirstAndDelete(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for i := 0; i < 5; i++ {
		s.AddHint(Hint{Target: "n3", Partition: 2, Key: []byte(fmt.Sprint(i))}, time.Now())
	}
	s.AddHint(Hint{Target: "n4", Partition: 2, Key: []byte("x")}, time.Now())
	var got []string
	s.Hints("n3", 3, func(h Hint) error { got = append(got, string(h.Key)); return s.DeleteHint("n3", h.Seq) })
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("first batch = %v", got)
	}
	c, _ := s.HintCounts()
	if c["n3"] != 2 || c["n4"] != 1 {
		t.Fatalf("counts = %v", c)
	}
	if _, err := s.AddHint(Hint{Target: ""}, time.Now()); err == nil {
		t.Fatal("hint without target accepted")
	}
}

func TestValidateReportsEverything(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"data directory", "memtable", "value log", "compactors"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, missing %q", err, want)
		}
	}
}
