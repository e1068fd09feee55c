package table_test

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// modelEntry is what the model holds for a key.
type modelEntry struct {
	v    uint32
	kind table.Kind
}

// establishedModel runs random operations against the table and a plain
// map, comparing every result. Keys come from a small pool so that
// re-inserts, deletes of absent keys and CAS races on one key are common;
// the pool is larger than the initial table, so it resizes both ways.
// Each call is made in its plain or its Hashed form at random, and with
// kinds where it has a Kind form.
type establishedModel struct {
	m     *table.Established[uint32]
	model map[tuple.Tuple]modelEntry
	pool  []tuple.Tuple
	max   int // MaxEntries; 0 for none
}

// full reports whether the model holds MaxEntries entries.
func (s *establishedModel) full() bool { return s.max > 0 && len(s.model) >= s.max }

func (s *establishedModel) hashed(t *rapid.T) bool { return rapid.Bool().Draw(t, "hashed") }

func (s *establishedModel) kind(t *rapid.T) table.Kind {
	return table.Kind(rapid.IntRange(0, int(table.MaxKind)).Draw(t, "kind"))
}

// insert inserts k=v of kind kind into the table, by one of the four
// forms, and checks the result against the model: ErrExists for a present
// key, else ErrTableFull at the limit.
func (s *establishedModel) insert(t *rapid.T, k tuple.Tuple, v uint32, kind table.Kind) {
	h := s.m.Hasher().Hash(k)
	var err error
	switch hashed := s.hashed(t); {
	case kind == table.KindConn && rapid.Bool().Draw(t, "plain"):
		if hashed {
			err = s.m.InsertHashed(h, k, v)
		} else {
			err = s.m.Insert(k, v)
		}
	case hashed:
		err = s.m.InsertHashedKind(h, k, v, kind)
	default:
		err = s.m.InsertKind(k, v, kind)
	}
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
	s.model[k] = modelEntry{v, kind}
}

func (s *establishedModel) key(t *rapid.T) tuple.Tuple {
	return s.pool[rapid.IntRange(0, len(s.pool)-1).Draw(t, "key")]
}

func (s *establishedModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"Insert": func(t *rapid.T) {
			s.insert(t, s.key(t), rapid.Uint32Range(0, 3).Draw(t, "v"), s.kind(t))
		},
		"InsertMany": func(t *rapid.T) { // grow past a resize (or up to the limit) in one step
			for range rapid.IntRange(1, 40).Draw(t, "n") {
				s.insert(t, s.key(t), 9, table.KindRequest)
			}
		},
		"Delete": func(t *rapid.T) {
			k := s.key(t)
			var v uint32
			var ok bool
			if s.hashed(t) {
				v, ok = s.m.DeleteHashed(s.m.Hasher().Hash(k), k)
			} else {
				v, ok = s.m.Delete(k)
			}
			want, present := s.model[k]
			if ok != present || (ok && v != want.v) {
				t.Fatalf("Delete = %v, %v; model %v, %v", v, ok, want, present)
			}
			delete(s.model, k)
		},
		"MigrationStep": func(t *rapid.T) { // move homes of a migration in flight
			s.m.MigrationStep(rapid.IntRange(1, 8).Draw(t, "homes"))
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
			var ok bool
			if s.hashed(t) {
				ok = s.m.CompareAndDeleteHashed(s.m.Hasher().Hash(k), k, v)
			} else {
				ok = s.m.CompareAndDelete(k, v)
			}
			want, present := s.model[k]
			if ok != (present && want.v == v) {
				t.Fatalf("CompareAndDelete = %v; model %v, %v", ok, want, present)
			}
			if ok {
				delete(s.model, k)
			}
		},
		"CompareAndSwap": func(t *rapid.T) {
			k := s.key(t)
			old, new := rapid.Uint32Range(0, 3).Draw(t, "old"), rapid.Uint32Range(0, 3).Draw(t, "new")
			var ok bool
			if s.hashed(t) {
				ok = s.m.CompareAndSwapHashed(s.m.Hasher().Hash(k), k, old, new)
			} else {
				ok = s.m.CompareAndSwap(k, old, new)
			}
			want, present := s.model[k]
			if ok != (present && want.v == old) {
				t.Fatalf("CompareAndSwap = %v; model %v, %v", ok, want, present)
			}
			if ok {
				s.model[k] = modelEntry{new, want.kind} // the kind stays
			}
		},
		"CompareAndSwapKind": func(t *rapid.T) {
			k := s.key(t)
			old, new := rapid.Uint32Range(0, 3).Draw(t, "old"), rapid.Uint32Range(0, 3).Draw(t, "new")
			kind := s.kind(t)
			var ok bool
			if s.hashed(t) {
				ok = s.m.CompareAndSwapHashedKind(s.m.Hasher().Hash(k), k, old, new, kind)
			} else {
				ok = s.m.CompareAndSwapKind(k, old, new, kind)
			}
			want, present := s.model[k]
			if ok != (present && want.v == old) {
				t.Fatalf("CompareAndSwapKind = %v; model %v, %v", ok, want, present)
			}
			if ok {
				s.model[k] = modelEntry{new, kind}
			}
		},
		"Lookup": func(t *rapid.T) {
			k := s.key(t)
			var v uint32
			var ok bool
			if s.hashed(t) {
				v, ok = s.m.LookupHashed(s.m.Hasher().Hash(k), k)
			} else {
				v, ok = s.m.Lookup(k)
			}
			want, present := s.model[k]
			if ok != present || v != want.v {
				t.Fatalf("Lookup = %v, %v; model %v, %v", v, ok, want, present)
			}
		},
		"LookupKind": func(t *rapid.T) {
			k := s.key(t)
			var got modelEntry
			var ok bool
			if s.hashed(t) {
				got.v, got.kind, ok = s.m.LookupHashedKind(s.m.Hasher().Hash(k), k)
			} else {
				got.v, got.kind, ok = s.m.LookupKind(k)
			}
			want, present := s.model[k]
			if ok != present || got != want {
				t.Fatalf("LookupKind = %v, %v; model %v, %v", got, ok, want, present)
			}
		},
		"LookupBatch": func(t *rapid.T) {
			n := rapid.IntRange(0, 40).Draw(t, "n")
			keys, hashes := make([]tuple.Tuple, n), make([]uint64, n)
			for i := range keys {
				keys[i] = s.key(t)
				hashes[i] = s.m.Hasher().Hash(keys[i])
			}
			vals, found := make([]uint32, n), make([]bool, n)
			var kinds []table.Kind
			var got int
			switch rapid.IntRange(0, 2).Draw(t, "form") {
			case 0:
				got = s.m.LookupBatch(keys, vals, found)
			case 1:
				got = s.m.LookupBatchHashed(hashes, keys, vals, nil, found)
			default:
				kinds = make([]table.Kind, n)
				got = s.m.LookupBatchHashed(hashes, keys, vals, kinds, found)
			}
			if got != n {
				t.Fatalf("LookupBatch = %d, want %d", got, n)
			}
			for i, k := range keys {
				want, present := s.model[k]
				if found[i] != present || vals[i] != want.v {
					t.Fatalf("LookupBatch[%d] = %v, %v; model %v, %v", i, vals[i], found[i], want, present)
				}
				if kinds != nil && kinds[i] != want.kind {
					t.Fatalf("LookupBatchHashed kinds[%d] = %v; model %v", i, kinds[i], want)
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
				if want, present := s.model[k]; !present || want.v != v {
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
		m, err := table.NewEstablished[uint32](table.EstablishedOptions{
			Capacity:    rapid.IntRange(0, 64).Draw(t, "capacity"),
			MaxEntries:  max,
			CheckHashes: rapid.Bool().Draw(t, "checkHashes"),
		})
		if err != nil {
			t.Fatal(err)
		}
		m.SetHashMask(mask)
		// Migrations linger when writes move only their own home: the
		// MigrationStep action then takes the other steps.
		m.SetMigrateQuota(rapid.IntRange(0, table.MigrateQuota).Draw(t, "quota"))
		pool := make([]tuple.Tuple, rapid.IntRange(1, 300).Draw(t, "pool"))
		for i := range pool {
			if i%2 == 0 {
				pool[i] = key(i)
			} else {
				pool[i] = key6(i)
			}
		}
		s := &establishedModel{m: m, model: map[tuple.Tuple]modelEntry{}, pool: pool, max: max}
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
