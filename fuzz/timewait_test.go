package fuzz

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// twFlows are the four-tuples FuzzTimeWait plays with: IPv4, IPv6 and
// loopback.
var twFlows = []tuple.Tuple{
	tuple.MustNew("10.0.0.1:80", "10.0.0.2:40000"),
	tuple.MustNew("10.0.0.1:80", "10.0.0.2:40001"),
	tuple.MustNew("127.0.0.1:5000", "127.0.0.1:80"),
	tuple.MustNew("[2001:db8::1]:443", "[2001:db8::2]:5000"),
}

var errRefused = errors.New("install refused")

// FuzzTimeWait runs a program of Enter, Process (with segments built from
// the fuzzer's bytes), Kill, TakeOver, Replace, Lookup and clock moves
// against a Table on a manual clock, every entry owning a fresh serial
// number, then closes it. It checks that nothing panics; that every owner
// comes back exactly once, from the four-tuple it entered with, by the
// call that removed its entry (Kill, TakeOver, Replace, a Process whose
// Reply.Fate is FateRemoved, or OnExpire for expiry and Close), and that a
// call that removes nothing hands back nothing; that after every step each
// entry has exactly one timer and each timer one entry (Stats().Timers ==
// Entries == Len == the model's count); that Lookup and All agree with the
// model; and that no entry expires before its shortest lifetime.
func FuzzTimeWait(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{0, 1, 16, 3, 232, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 17, 1, 0, 0, 5, 200, 5, 200})
	f.Add([]byte{0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 1, 5, 255, 4, 2})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 6, 0, 1, 1, 0, 4, 0, 0, 0, 0, 0, 0, 4, 200})
	f.Fuzz(func(t *testing.T, program []byte) {
		clock := &timewait.ManualClock{}
		now := time.Hour
		clock.Set(now)
		const life, fw2 = 60 * time.Millisecond, 40 * time.Millisecond
		type entry struct {
			at    time.Duration // when it entered
			owner int
		}
		present := map[tuple.Tuple]entry{} // the model
		handed := map[int]bool{}           // owners handed back
		serial, entered := 0, 0
		// back checks an owner handed back for tp's entry and forgets it.
		back := func(how string, tp tuple.Tuple, owner int) {
			e, ok := present[tp]
			switch {
			case !ok:
				t.Fatalf("%s handed back owner %d for %v, which has no entry", how, owner, tp)
			case handed[owner]:
				t.Fatalf("%s handed back owner %d twice", how, owner)
			case owner != e.owner:
				t.Fatalf("%s handed back owner %d for %v, whose owner is %d", how, owner, tp, e.owner)
			}
			handed[owner] = true
			delete(present, tp)
		}
		closing := false
		tb, err := timewait.NewTable(timewait.TableOptions[int]{Clock: clock, Lifetime: life, FinWait2Timeout: fw2,
			MaxBuckets: 3, Reuse: timewait.ReuseLoopback, Shards: 2,
			OnExpire: func(tp tuple.Tuple, owner int) {
				if e, ok := present[tp]; ok && !closing && now-e.at < min(life, fw2) {
					t.Fatalf("entry %v expired %v after entering, before its lifetime", tp, now-e.at)
				}
				back("OnExpire", tp, owner)
			}})
		if err != nil {
			t.Fatal(err)
		}
		next := func(n int) []byte {
			if len(program) < n {
				program = append(program, make([]byte, n-len(program))...)
			}
			b := program[:n]
			program = program[n:]
			return b
		}
		for len(program) > 0 {
			op := next(2)
			tu := twFlows[int(op[1])%len(twFlows)]
			switch op[0] % 7 {
			case 0: // Enter
				b := next(16)
				st := timewait.State{
					Substate: timewait.Substate(b[0] % 3), RcvNxt: binary.LittleEndian.Uint32(b[1:]), SndNxt: binary.LittleEndian.Uint32(b[5:]),
					RcvWnd: uint32(b[9]) << 8, RcvWScale: b[10] % 16, HasTimestamps: b[11]&1 != 0,
					TSRecent: binary.LittleEndian.Uint32(b[12:]), TSRecentStamp: now - time.Duration(b[11])*time.Second,
				}
				serial++
				switch err := tb.Enter(tu, st, serial); err {
				case nil:
					if _, ok := present[tu]; ok {
						t.Fatal("Enter of a present flow succeeded")
					}
					present[tu] = entry{at: now, owner: serial}
					entered++
				case timewait.ErrTimeWaitFull:
					if len(present) < 3 {
						t.Fatalf("ErrTimeWaitFull with %d entries", len(present))
					}
				case timewait.ErrExists:
					if _, ok := present[tu]; !ok {
						t.Fatal("ErrExists for an absent flow")
					}
				default:
					t.Fatal(err)
				}
			case 1: // Process
				b := next(12)
				seg := tuple.Segment{Tuple: tu, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.Flags(b[0]),
					Seq: binary.LittleEndian.Uint32(b[1:]), Ack: binary.LittleEndian.Uint32(b[5:]), PayloadLen: uint16(b[9]) * 3,
					HasTimestamps: b[10]&1 != 0, TSval: uint32(b[11]) << uint(b[10]%25)}
				if b[10]&2 != 0 {
					seg.Proto = tuple.ProtoUDP
				}
				if b[10]&4 != 0 {
					// aim at the entry's rcv_nxt, where most rules live
					if st, ok := tb.Lookup(tu); ok {
						seg.Seq = st.RcvNxt + uint32(int8(b[1]))/64
					}
				}
				reply, owner, found := tb.Process(tu, &seg)
				_, was := present[tu]
				switch {
				case found != was:
					t.Fatalf("Process found=%v, entry present=%v", found, was)
				case reply.Fate == timewait.FateRemoved:
					back("Process", tu, owner)
				case owner != 0:
					t.Fatalf("Process handed back owner %d with fate %v", owner, reply.Fate)
				}
			case 2: // Kill
				owner, ok := tb.Kill(tu)
				if _, was := present[tu]; ok != was {
					t.Fatalf("Kill %v disagrees with presence %v", ok, was)
				}
				if ok {
					back("Kill", tu, owner)
				}
			case 3: // TakeOver
				b := next(1)
				if _, owner, ok := tb.TakeOver(tu, b[0]&1 != 0); ok {
					back("TakeOver", tu, owner)
				} else if owner != 0 {
					t.Fatal("a refused TakeOver handed back an owner")
				}
			case 4: // clock
				b := next(1)
				now += time.Duration(b[0]) * time.Millisecond / 2
				clock.Set(now)
				tb.Advance()
			case 5: // Lookup
				_, ok := tb.Lookup(tu)
				if _, was := present[tu]; ok != was {
					t.Fatalf("Lookup %v, entry present %v", ok, was)
				}
			case 6: // Replace
				b := next(1)
				ran := false
				owner, ok, err := tb.Replace(tu, func() error {
					ran = true
					if b[0]&1 != 0 {
						return errRefused
					}
					return nil
				})
				_, was := present[tu]
				switch {
				case !ran:
					t.Fatal("Replace did not run install")
				case b[0]&1 != 0 && (err != errRefused || ok || owner != 0):
					t.Fatalf("a refused install: %v %v %d", err, ok, owner)
				case b[0]&1 == 0 && (err != nil || ok != was):
					t.Fatalf("Replace: %v, removed %v, present %v", err, ok, was)
				case ok:
					back("Replace", tu, owner)
				}
			}
			st := tb.Stats()
			if st.Entries != st.Timers || st.Entries != tb.Len() || st.Entries != len(present) {
				t.Fatalf("entries %d, timers %d, Len %d, model %d", st.Entries, st.Timers, tb.Len(), len(present))
			}
			n := 0
			for tp := range tb.All() {
				if _, ok := present[tp]; !ok {
					t.Fatalf("All yields %v, which has no entry", tp)
				}
				n++
			}
			if n != len(present) {
				t.Fatalf("All yields %d entries, the model holds %d", n, len(present))
			}
		}
		closing = true
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		if len(present) != 0 {
			t.Fatalf("Close lost the owners of %d entries", len(present))
		}
		if len(handed) != entered {
			t.Fatalf("%d owners entered, %d handed back", entered, len(handed))
		}
	})
}
