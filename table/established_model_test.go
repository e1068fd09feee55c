package table_test

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// establishedModel runs random operations against the table and a plain
// map, comparing every result. Keys come from a small pool so that
// re-inserts, deletes of absent keys and CAS races on one key are common;
// the pool is larger than the initial table, so it resizes both ways.
type establishedModel struct {
	m     *table.Established[uint32]
	model map[tuple.Tuple]uint32
	pool  []tuple.Tuple
	max   int // MaxEntries; 0 for none
}

// full reports whether the model holds MaxEntries entries.
func (s *establishedModel) full() bool { return s.max > 0 && len(s.model) >= s.max }

// insert inserts k=v into the table and checks the result against the
// model: ErrExists for a present key, else ErrTableFull at the limit.
func (s *establishedModel) insert(t *rapid.T, k tuple.Tuple, v uint32) {
	err := s.m.Insert(k, v)
	if _, present := s.model[k]; present {
		if err != table.ErrExists {
			t.Fatalf("Insert of a present key: %v", err)
		}
		return
	}
	if s.full() {
		if err != table.ErrTableFull {
			t.Fatalf("Insert into a table at MaxEntries=%d: %v", s.max, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	s.model[k] = v
}

func (s *establishedModel) key(t *rapid.T) tuple.Tuple {
	return s.pool[rapid.IntRange(0, len(s.pool)-1).Draw(t, "key")]
}

func (s *establishedModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"Insert": func(t *rapid.T) {
			s.insert(t, s.key(t), rapid.Uint32Range(0, 3).Draw(t, "v"))
		},
		"InsertMany": func(t *rapid.T) { // grow past a resize (or up to the limit) in one step
			for range rapid.IntRange(1, 40).Draw(t, "n") {
				s.insert(t, s.key(t), 9)
			}
		},
		"Delete": func(t *rapid.T) {
			k := s.key(t)
			v, ok := s.m.Delete(k)
			want, present := s.model[k]
			if ok != present || (ok && v != want) {
				t.Fatalf("Delete = %v, %v; model %v, %v", v, ok, want, present)
			}
			delete(s.model, k)
		},
		"DeleteMany": func(t *rapid.T) { // shrink
			for k := range s.model {
				if rapid.Bool().Draw(t, "del") {
					if _, ok := s.m.Delete(k); !ok {
						t.Fatalf("Delete of a present key failed")
					}
					delete(s.model, k)
				}
			}
		},
		"CompareAndDelete": func(t *rapid.T) {
			k, v := s.key(t), rapid.Uint32Range(0, 3).Draw(t, "v")
			ok := s.m.CompareAndDelete(k, v)
			want, present := s.model[k]
			if ok != (present && want == v) {
				t.Fatalf("CompareAndDelete = %v; model %v, %v", ok, want, present)
			}
			if ok {
				delete(s.model, k)
			}
		},
		"CompareAndSwap": func(t *rapid.T) {
			k := s.key(t)
			old, new := rapid.Uint32Range(0, 3).Draw(t, "old"), rapid.Uint32Range(0, 3).Draw(t, "new")
			ok := s.m.CompareAndSwap(k, old, new)
			want, present := s.model[k]
			if ok != (present && want == old) {
				t.Fatalf("CompareAndSwap = %v; model %v, %v", ok, want, present)
			}
			if ok {
				s.model[k] = new
			}
		},
		"Lookup": func(t *rapid.T) {
			k := s.key(t)
			v, ok := s.m.Lookup(k)
			want, present := s.model[k]
			if ok != present || v != want {
				t.Fatalf("Lookup = %v, %v; model %v, %v", v, ok, want, present)
			}
		},
		"LookupBatch": func(t *rapid.T) {
			n := rapid.IntRange(0, 40).Draw(t, "n")
			keys := make([]tuple.Tuple, n)
			for i := range keys {
				keys[i] = s.key(t)
			}
			vals, found := make([]uint32, n), make([]bool, n)
			if got := s.m.LookupBatch(keys, vals, found); got != n {
				t.Fatalf("LookupBatch = %d, want %d", got, n)
			}
			for i, k := range keys {
				want, present := s.model[k]
				if found[i] != present || vals[i] != want {
					t.Fatalf("LookupBatch[%d] = %v, %v; model %v, %v", i, vals[i], found[i], want, present)
				}
			}
		},
		"All": func(t *rapid.T) {
			seen := map[tuple.Tuple]bool{}
			for k, v := range s.m.All() {
				if seen[k] {
					t.Fatalf("All visited %v twice", k)
				}
				seen[k] = true
				if want, present := s.model[k]; !present || want != v {
					t.Fatalf("All yielded %v=%v; model %v, %v", k, v, want, present)
				}
			}
			if len(seen) != len(s.model) {
				t.Fatalf("All yielded %d entries, model has %d", len(seen), len(s.model))
			}
		},
		"": func(t *rapid.T) {
			if n := s.m.Len(); n != len(s.model) {
				t.Fatalf("Len = %d, model %d", n, len(s.model))
			}
			if s.max > 0 && len(s.model) > s.max {
				t.Fatalf("the model holds %d entries past MaxEntries=%d", len(s.model), s.max)
			}
		},
	}
}

func testEstablishedModel(t *testing.T, mask uint64, bounded bool) {
	rapid.Check(t, func(t *rapid.T) {
		max := 0
		if bounded {
			max = rapid.IntRange(1, 100).Draw(t, "maxEntries")
		}
		m, err := table.NewEstablished[uint32](table.EstablishedOptions{Capacity: rapid.IntRange(0, 64).Draw(t, "capacity"), MaxEntries: max})
		if err != nil {
			t.Fatal(err)
		}
		m.SetHashMask(mask)
		pool := make([]tuple.Tuple, rapid.IntRange(1, 300).Draw(t, "pool"))
		for i := range pool {
			if i%2 == 0 {
				pool[i] = key(i)
			} else {
				pool[i] = key6(i)
			}
		}
		s := &establishedModel{m: m, model: map[tuple.Tuple]uint32{}, pool: pool, max: max}
		t.Repeat(s.actions())
	})
}

func TestEstablishedModel(t *testing.T) { testEstablishedModel(t, ^uint64(0), false) }

// TestEstablishedModelCollisions runs the model with a hash of 4 bits:
// few home groups and few tags, so chains are long and tags collide.
func TestEstablishedModelCollisions(t *testing.T) {
	testEstablishedModel(t, 0xf000_0000_0000_000f, false)
}

// TestEstablishedModelMaxEntries runs the model on a table with a limit,
// often below the key pool: inserts at the limit report ErrTableFull, and
// deletes make room again.
func TestEstablishedModelMaxEntries(t *testing.T) { testEstablishedModel(t, ^uint64(0), true) }
