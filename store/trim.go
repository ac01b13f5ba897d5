package store

import (
	"errors"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/skl"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Trimming table pages.
//
// Badger maps every table file into the process and builds each new table
// by copying it into its mapping, so a table is resident from the moment a
// flush or compaction writes it, and every block a read touches stays
// resident too. With a million keys that is about half of a node's RSS
// (docs/benchmarks.md, Memory), though the pages are clean copies of the
// files that the kernel's page cache holds anyway.
//
// A tableTrimmer hands those pages back every Config.TrimInterval: it drops
// the process's mappings of each table with madvise(MADV_DONTNEED). The pages
// stay in the page cache, so the next read of a trimmed block is a minor
// fault, not a disk read. What stays resident is what was read or written
// since the last trim.
//
// The memtables' write-ahead logs are mapped files as well, written through
// the mapping; their pages are trimmed the same way (a dirty page of a shared
// mapping stays dirty in the page cache and is written back as usual).
//
// Badger does not export its tables. The trimmer reaches them through its
// level handlers (DB.lc.levels[i].tables, under each handler's read lock)
// and its memtables (DB.mt, DB.imm, under DB.lock), and takes a reference on
// each (Table.IncrRef, Skiplist.IncrRef) before it touches the mapping, so a
// compaction or a flush cannot unmap it under the trimmer. badgerLevels and
// badgerMemtables check the layout they rely on when the store opens; if a
// badger release changes it, trimming is off and Open logs why
// (TestTrimDropsTablePagesAndKeepsData fails first).

// memtables reaches badger's memtables, whose write-ahead logs are mapped
// files too: the live one is written through its mapping, and each stays
// mapped until its memtable is flushed.
type memtables struct {
	mu  *sync.RWMutex // DB.lock
	mt  reflect.Value // DB.mt, *memTable
	imm reflect.Value // DB.imm, []*memTable
}

// memtable is one of badger's memtables: its skiplist, whose references
// keep the log mapped, and the log's mapping (nil in memory).
type memtable struct {
	sl  *skl.Skiplist
	wal *z.MmapFile
}

func badgerMemtables(db *badger.DB) (memtables, error) {
	v := reflect.ValueOf(db).Elem()
	mu, err := fieldAddr[sync.RWMutex](v, "lock")
	if err != nil {
		return memtables{}, err
	}
	mt, err := unexported(v, "mt")
	if err != nil {
		return memtables{}, err
	}
	imm, err := unexported(v, "imm")
	if err != nil {
		return memtables{}, err
	}
	if mt.Kind() != reflect.Pointer || imm.Kind() != reflect.Slice {
		return memtables{}, errors.New("badger layout: DB.mt or DB.imm changed kind")
	}
	// Check the memtable's own layout now rather than on every trim.
	if !mt.IsNil() {
		if _, err := describeMemtable(mt); err != nil {
			return memtables{}, err
		}
	}
	return memtables{mu: mu, mt: mt, imm: imm}, nil
}

// describeMemtable reads one *memTable.
func describeMemtable(p reflect.Value) (memtable, error) {
	sl, err := field[*skl.Skiplist](p.Elem(), "sl")
	if err != nil {
		return memtable{}, err
	}
	wal, err := unexported(p.Elem(), "wal")
	if err != nil {
		return memtable{}, err
	}
	if wal.Kind() != reflect.Pointer {
		return memtable{}, errors.New("badger layout: memTable.wal is not a pointer")
	}
	if wal.IsNil() {
		return memtable{sl: sl}, nil
	}
	f, err := field[*z.MmapFile](wal.Elem(), "MmapFile")
	if err != nil {
		return memtable{}, err
	}
	return memtable{sl: sl, wal: f}, nil
}

// hold returns every memtable with a reference taken on each.
func (m memtables) hold() []memtable {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []memtable
	add := func(p reflect.Value) {
		if p.IsNil() {
			return
		}
		d, err := describeMemtable(p)
		if err != nil {
			return // checked at open; cannot change while running
		}
		d.sl.IncrRef()
		out = append(out, d)
	}
	add(m.mt)
	for i := range m.imm.Len() {
		add(m.imm.Index(i))
	}
	return out
}

// levelRef is one of badger's level handlers: its lock and its tables.
type levelRef struct {
	mu     *sync.RWMutex
	tables *[]*table.Table
}

// badgerLevels finds db's level handlers.
func badgerLevels(db *badger.DB) ([]levelRef, error) {
	lc, err := unexported(reflect.ValueOf(db).Elem(), "lc")
	if err != nil {
		return nil, err
	}
	if lc.Kind() != reflect.Pointer || lc.IsNil() {
		return nil, errors.New("badger layout: DB.lc is not a non-nil pointer")
	}
	levels, err := unexported(lc.Elem(), "levels")
	if err != nil {
		return nil, err
	}
	if levels.Kind() != reflect.Slice || levels.Len() == 0 {
		return nil, errors.New("badger layout: levelsController.levels is not a non-empty slice")
	}
	refs := make([]levelRef, 0, levels.Len())
	for i := range levels.Len() {
		h := levels.Index(i)
		if h.Kind() != reflect.Pointer || h.IsNil() {
			return nil, errors.New("badger layout: a level handler is not a non-nil pointer")
		}
		mu, err := fieldAddr[sync.RWMutex](h.Elem(), "RWMutex")
		if err != nil {
			return nil, err
		}
		tables, err := fieldAddr[[]*table.Table](h.Elem(), "tables")
		if err != nil {
			return nil, err
		}
		refs = append(refs, levelRef{mu: mu, tables: tables})
	}
	return refs, nil
}

// unexported returns v's field name, made usable. v must be addressable.
func unexported(v reflect.Value, name string) (reflect.Value, error) {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, errors.New("badger layout: " + v.Type().String() + " is not a struct")
	}
	f := v.FieldByName(name)
	if !f.IsValid() {
		return reflect.Value{}, errors.New("badger layout: " + v.Type().String() + " has no field " + name)
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem(), nil
}

// field returns v's field name, which must be a T.
func field[T any](v reflect.Value, name string) (T, error) {
	var zero T
	f, err := unexported(v, name)
	if err != nil {
		return zero, err
	}
	t, ok := f.Interface().(T)
	if !ok {
		return zero, errors.New("badger layout: " + v.Type().String() + "." + name + " is a " + f.Type().String())
	}
	return t, nil
}

// fieldAddr returns the address of v's field name, which must be a T.
func fieldAddr[T any](v reflect.Value, name string) (*T, error) {
	f, err := unexported(v, name)
	if err != nil {
		return nil, err
	}
	p, ok := f.Addr().Interface().(*T)
	if !ok {
		return nil, errors.New("badger layout: " + v.Type().String() + "." + name + " is a " + f.Type().String())
	}
	return p, nil
}

// tableTrimmer drops the resident pages of badger's table mappings on a
// timer. Stop it before badger closes.
type tableTrimmer struct {
	levels []levelRef
	mems   memtables
	stop   chan struct{}
	done   chan struct{}
}

// startTrimmer finds db's tables and memtables and trims them every
// interval; it fails, changing nothing, if badger's layout is not the one
// it knows.
func startTrimmer(db *badger.DB, every time.Duration) (*tableTrimmer, error) {
	levels, err := badgerLevels(db)
	if err != nil {
		return nil, err
	}
	mems, err := badgerMemtables(db)
	if err != nil {
		return nil, err
	}
	t := &tableTrimmer{levels: levels, mems: mems, stop: make(chan struct{}), done: make(chan struct{})}
	go t.run(every)
	return t, nil
}

func (t *tableTrimmer) run(every time.Duration) {
	defer close(t.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.trim()
		}
	}
}

// trim drops the mapped pages of every table and memtable log badger holds
// now and returns how many bytes of mappings it covered.
func (t *tableTrimmer) trim() int64 {
	var n int64
	for _, m := range t.mems.hold() {
		if m.wal != nil && len(m.wal.Data) > 0 {
			dropPages(m.wal.Data)
			n += int64(len(m.wal.Data))
		}
		m.sl.DecrRef()
	}
	var held []*table.Table
	for _, l := range t.levels {
		l.mu.RLock()
		for _, tb := range *l.tables {
			tb.IncrRef() // the level's own reference keeps it at ≥ 1 here
			held = append(held, tb)
		}
		l.mu.RUnlock()
	}
	for _, tb := range held {
		if tb.MmapFile != nil && len(tb.Data) > 0 {
			dropPages(tb.Data)
			n += int64(len(tb.Data))
		}
		// If a compaction replaced the table meanwhile, this is its last
		// reference and deletes the file, as badger's own would have.
		_ = tb.DecrRef()
	}
	return n
}

func (t *tableTrimmer) close() {
	close(t.stop)
	<-t.done
}
