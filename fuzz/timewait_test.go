package fuzz

import (
	"encoding/binary"
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

// FuzzTimeWait runs a program of Enter, Process (with segments built from
// the fuzzer's bytes), Kill, TakeOver, Lookup and clock moves against a
// Table on a manual clock. It checks that nothing panics; that after every
// step each entry has exactly one timer and each timer one entry
// (Stats().Timers == Entries == Len); that Lookup agrees with Len; and
// that no entry disappears before its shortest lifetime unless a kill
// could have removed it.
func FuzzTimeWait(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{0, 1, 16, 3, 232, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 17, 1, 0, 0, 5, 200, 5, 200})
	f.Add([]byte{0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 1, 5, 255, 4, 2})
	f.Fuzz(func(t *testing.T, program []byte) {
		clock := &timewait.ManualClock{}
		now := time.Hour
		clock.Set(now)
		const life, fw2 = 60 * time.Millisecond, 40 * time.Millisecond
		tb, err := timewait.New(timewait.Options{Clock: clock, Lifetime: life, FinWait2Timeout: fw2, MaxBuckets: 3,
			Reuse: timewait.ReuseLoopback, Shards: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		entered := map[tuple.Tuple]time.Duration{} // when each present flow last entered
		mayBeKilled := map[tuple.Tuple]bool{}      // a Process since then could have killed it
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
			switch op[0] % 6 {
			case 0: // Enter
				b := next(16)
				st := timewait.State{
					Substate: timewait.Substate(b[0] % 3), RcvNxt: binary.LittleEndian.Uint32(b[1:]), SndNxt: binary.LittleEndian.Uint32(b[5:]),
					RcvWnd: uint32(b[9]) << 8, RcvWScale: b[10] % 16, HasTimestamps: b[11]&1 != 0,
					TSRecent: binary.LittleEndian.Uint32(b[12:]), TSRecentStamp: now - time.Duration(b[11])*time.Second,
				}
				switch err := tb.Enter(tu, st); err {
				case nil:
					entered[tu] = now
					delete(mayBeKilled, tu)
				case timewait.ErrTimeWaitFull:
					if tb.Len() < 3 {
						t.Fatalf("ErrTimeWaitFull with %d entries", tb.Len())
					}
				case timewait.ErrExists:
					if _, ok := entered[tu]; !ok {
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
				if b[10]&4 != 0 && len(entered) > 0 {
					// aim at the entry's rcv_nxt, where most rules live
					if st, ok := tb.Lookup(tu); ok {
						seg.Seq = st.RcvNxt + uint32(int8(b[1]))/64
					}
				}
				_, found := tb.Process(tu, &seg)
				_, was := entered[tu]
				if found != was {
					t.Fatalf("Process found=%v, entry present=%v", found, was)
				}
				mayBeKilled[tu] = true
			case 2: // Kill
				_, was := entered[tu]
				if tb.Kill(tu) != was {
					t.Fatalf("Kill disagrees with presence %v", was)
				}
				delete(entered, tu)
			case 3: // TakeOver
				b := next(1)
				if _, ok := tb.TakeOver(tu, b[0]&1 != 0); ok {
					delete(entered, tu)
				}
			case 4: // clock
				b := next(1)
				now += time.Duration(b[0]) * time.Millisecond / 2
				clock.Set(now)
				tb.Advance()
			case 5: // Lookup
				if _, ok := tb.Lookup(tu); !ok && entered[tu] != 0 && !mayBeKilled[tu] && now-entered[tu] < min(life, fw2) {
					t.Fatal("entry gone before its lifetime")
				}
			}
			// Sync presence with the table (Process kills, expiry), checking
			// that no entry went early.
			for _, f := range twFlows {
				_, ok := tb.Lookup(f)
				at, was := entered[f]
				switch {
				case ok && !was:
					t.Fatalf("Lookup finds %v, which is not entered", f)
				case !ok && was:
					if !mayBeKilled[f] && now-at < min(life, fw2) {
						t.Fatalf("entry %v expired %v after entering, before its lifetime", f, now-at)
					}
					delete(entered, f)
				}
			}
			st := tb.Stats()
			if st.Entries != st.Timers || st.Entries != tb.Len() || st.Entries != len(entered) {
				t.Fatalf("entries %d, timers %d, Len %d, model %d", st.Entries, st.Timers, tb.Len(), len(entered))
			}
		}
	})
}
