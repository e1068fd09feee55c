package fuzz

import (
	"encoding/binary"
	"testing"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// FuzzEstablished runs a program of table operations decoded from the
// fuzzer's bytes against table.Established and a plain map, and compares
// every result. Keys come from a small pool (so operations hit each other)
// and the table starts tiny (so it resizes both ways).
//
// The first byte configures the table: its Capacity (bits 0-2), its
// MaxEntries (bits 3-7, 0 for none, so the limit is often below the pool
// and inserts meet ErrTableFull) and CheckHashes (when MaxEntries is odd).
// Then each operation is two bytes, op and arg: op's low 4 bits pick the
// call, bit 4 its Hashed form, bits 5-7 the value and (mod 4) the kind;
// arg picks the key, and with CheckHashes an arg above 0xe0 passes a
// wrong hash. Forced collisions are covered by the table package's own
// model test with a degenerate hash (TestEstablishedModelCollisions).
func FuzzEstablished(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{1, 0, 0, 1, 0, 1, 2, 0, 1, 1, 0, 1})
	f.Add([]byte{2, 0, 5, 0, 6, 0, 7, 0, 5, 2, 6, 2, 7, 2, 5, 4})
	f.Add(binary.LittleEndian.AppendUint64(nil, 0x0706050403020100))
	// MaxEntries 2: three inserts, the third refused; a delete; a retry.
	f.Add([]byte{2 << 3, 0, 1, 0, 2, 0, 3, 2, 1, 0, 3})
	// A request entry becoming a connection, read by kind, hashed and not.
	f.Add([]byte{1, 0x27, 4, 0x39, 4, 0x28, 4, 0x0a, 4, 0x1a, 4, 0x2b, 4})
	// CheckHashes (MaxEntries 3): wrong hashes for an insert and a lookup.
	f.Add([]byte{3 << 3, 0x10, 0xf0, 0x10, 4, 0x15, 0xf4, 0x19, 0xf4})
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) == 0 {
			return
		}
		max := int(program[0] >> 3)
		check := max%2 == 1
		m, err := table.NewEstablished[uint16](table.EstablishedOptions{
			Capacity: int(program[0] % 8), MaxEntries: max, CheckHashes: check})
		if err != nil {
			t.Fatal(err)
		}
		h := m.Hasher()
		// 256 keys: more than the smallest table holds (98), so programs
		// that insert many grow and shrink it through migrations.
		pool := fuzzKeys(256)
		type entry struct {
			v    uint16
			kind table.Kind
		}
		model := map[tuple.Tuple]entry{}
		for i := 1; i+1 < len(program); i += 2 {
			op, arg := program[i], program[i+1]
			k := pool[int(arg)%len(pool)]
			hashed := op&0x10 != 0
			hk := h.Hash(k)
			wrong := check && arg > 0xe0
			if wrong {
				hk = h.Hash(k.Reverse())
			}
			v := uint16(op >> 5)
			kind := table.Kind(op>>5) % (table.MaxKind + 1)
			want, present := model[k]
			switch op % 16 {
			case 0, 1, 2: // Insert, InsertKind
				var err error
				switch {
				case op%16 == 0 && hashed:
					err, kind = m.InsertHashed(hk, k, v), table.KindConn
				case op%16 == 0:
					err, kind = m.Insert(k, v), table.KindConn
				case hashed:
					err = m.InsertHashedKind(hk, k, v, kind)
				default:
					err = m.InsertKind(k, v, kind)
				}
				switch {
				case hashed && wrong:
					if err != table.ErrInvalid {
						t.Fatalf("Insert with a wrong hash = %v", err)
					}
				case present:
					if err != table.ErrExists {
						t.Fatalf("Insert(present) = %v", err)
					}
				case max > 0 && len(model) >= max:
					if err != table.ErrTableFull {
						t.Fatalf("Insert at MaxEntries=%d = %v", max, err)
					}
				case err != nil:
					t.Fatalf("Insert = %v", err)
				default:
					model[k] = entry{v, kind}
				}
			case 3:
				var got uint16
				var ok bool
				if hashed {
					got, ok = m.DeleteHashed(hk, k)
				} else {
					got, ok = m.Delete(k)
				}
				if hashed && wrong {
					present, want = false, entry{}
				}
				if ok != present || got != want.v {
					t.Fatalf("Delete = %v,%v want %v,%v", got, ok, want, present)
				}
				if ok {
					delete(model, k)
				}
			case 4:
				var ok bool
				if hashed {
					ok = m.CompareAndDeleteHashed(hk, k, v)
				} else {
					ok = m.CompareAndDelete(k, v)
				}
				if ok != (present && want.v == v && !(hashed && wrong)) {
					t.Fatalf("CompareAndDelete = %v", ok)
				}
				if ok {
					delete(model, k)
				}
			case 5:
				var ok bool
				if hashed {
					ok = m.CompareAndSwapHashed(hk, k, v, v+1)
				} else {
					ok = m.CompareAndSwap(k, v, v+1)
				}
				if ok != (present && want.v == v && !(hashed && wrong)) {
					t.Fatalf("CompareAndSwap = %v", ok)
				}
				if ok {
					model[k] = entry{v + 1, want.kind}
				}
			case 6:
				var ok bool
				newKind := (kind + 1) % (table.MaxKind + 1)
				if hashed {
					ok = m.CompareAndSwapHashedKind(hk, k, v, v+1, newKind)
				} else {
					ok = m.CompareAndSwapKind(k, v, v+1, newKind)
				}
				if ok != (present && want.v == v && !(hashed && wrong)) {
					t.Fatalf("CompareAndSwapKind = %v", ok)
				}
				if ok {
					model[k] = entry{v + 1, newKind}
				}
			case 7, 8:
				var got entry
				var ok bool
				switch {
				case op%16 == 7 && hashed:
					got.v, ok = m.LookupHashed(hk, k)
					got.kind = want.kind
				case op%16 == 7:
					got.v, ok = m.Lookup(k)
					got.kind = want.kind
				case hashed:
					got.v, got.kind, ok = m.LookupHashedKind(hk, k)
				default:
					got.v, got.kind, ok = m.LookupKind(k)
				}
				if hashed && wrong {
					if ok {
						t.Fatalf("Lookup with a wrong hash found %v", got)
					}
					break
				}
				if ok != present || (ok && got != want) {
					t.Fatalf("Lookup = %v,%v want %v,%v", got, ok, want, present)
				}
			case 9: // a batch of the next arg%20 keys
				n := int(arg % 20)
				keys, hashes := make([]tuple.Tuple, n), make([]uint64, n)
				for j := range keys {
					keys[j] = pool[(int(arg)+j)%len(pool)]
					hashes[j] = h.Hash(keys[j])
				}
				vals, kinds, found := make([]uint16, n), make([]table.Kind, n), make([]bool, n)
				var got int
				if hashed {
					got = m.LookupBatchHashed(hashes, keys, vals, kinds, found)
				} else {
					got = m.LookupBatch(keys, vals, found)
				}
				if got != n {
					t.Fatalf("LookupBatch = %d, want %d", got, n)
				}
				for j, kk := range keys {
					w, ok := model[kk]
					if found[j] != ok || vals[j] != w.v || hashed && kinds[j] != w.kind {
						t.Fatalf("LookupBatch[%d] = %v,%v,%v want %v,%v", j, vals[j], kinds[j], found[j], w, ok)
					}
				}
			case 10: // delete many at once: shrink
				for kk := range model {
					if m.CompareAndDelete(kk, model[kk].v) {
						delete(model, kk)
					} else {
						t.Fatalf("CompareAndDelete of a present key failed")
					}
					if len(model) <= int(arg%8) {
						break
					}
				}
			}
			if m.Len() != len(model) {
				t.Fatalf("Len = %d, model %d", m.Len(), len(model))
			}
		}
		n := 0
		for k, v := range m.All() {
			if want, ok := model[k]; !ok || want.v != v {
				t.Fatalf("All yielded %v=%v, model %v,%v", k, v, want, ok)
			}
			n++
		}
		if n != len(model) {
			t.Fatalf("All yielded %d, model %d", n, len(model))
		}
	})
}

// fuzzKeys returns n distinct tuples, IPv4 and IPv6 mixed.
func fuzzKeys(n int) []tuple.Tuple {
	keys := make([]tuple.Tuple, n)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = tuple.Tuple{Local: tuple.MustEndpoint("10.0.0.1:80"),
				Remote: tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, 0, 1, byte(i)}), Port: uint16(1000 + i)}}
		} else {
			keys[i] = tuple.Tuple{Local: tuple.MustEndpoint("[2001:db8::1]:80"),
				Remote: tuple.Endpoint{Addr: tuple.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), Port: uint16(1000 + i)}}
		}
	}
	return keys
}
