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
// and the table starts tiny (so it resizes both ways). Forced collisions
// are covered by the table package's own model test with a degenerate
// hash (TestEstablishedModelCollisions).
func FuzzEstablished(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{1, 0, 0, 1, 0, 1, 2, 0, 1, 1, 0, 1})
	f.Add([]byte{2, 0, 5, 0, 6, 0, 7, 0, 5, 2, 6, 2, 7, 2, 5, 4})
	f.Add(binary.LittleEndian.AppendUint64(nil, 0x0706050403020100))
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) == 0 {
			return
		}
		m, err := table.NewEstablished[uint16](table.EstablishedOptions{Capacity: int(program[0] % 8)})
		if err != nil {
			t.Fatal(err)
		}
		pool := fuzzKeys(64)
		model := map[tuple.Tuple]uint16{}
		for i := 1; i+1 < len(program); i += 2 {
			op, arg := program[i], program[i+1]
			k := pool[int(arg)%len(pool)]
			v := uint16(op >> 3)
			switch op % 7 {
			case 0, 1:
				err := m.Insert(k, v)
				if _, ok := model[k]; ok {
					if err != table.ErrExists {
						t.Fatalf("Insert(present) = %v", err)
					}
				} else if err != nil {
					t.Fatalf("Insert = %v", err)
				} else {
					model[k] = v
				}
			case 2:
				got, ok := m.Delete(k)
				want, present := model[k]
				if ok != present || got != want {
					t.Fatalf("Delete = %v,%v want %v,%v", got, ok, want, present)
				}
				delete(model, k)
			case 3:
				ok := m.CompareAndDelete(k, v)
				want, present := model[k]
				if ok != (present && want == v) {
					t.Fatalf("CompareAndDelete = %v", ok)
				}
				if ok {
					delete(model, k)
				}
			case 4:
				ok := m.CompareAndSwap(k, v, v+1)
				want, present := model[k]
				if ok != (present && want == v) {
					t.Fatalf("CompareAndSwap = %v", ok)
				}
				if ok {
					model[k] = v + 1
				}
			case 5:
				got, ok := m.Lookup(k)
				want, present := model[k]
				if ok != present || got != want {
					t.Fatalf("Lookup = %v,%v want %v,%v", got, ok, want, present)
				}
			case 6: // delete many at once: shrink
				for kk := range model {
					if m.CompareAndDelete(kk, model[kk]) {
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
			if want, ok := model[k]; !ok || want != v {
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
