package fuzz

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// demuxConn is FuzzDemux's connection: the flow the Demux gave it.
type demuxConn struct {
	flow socktable.Flow
}

// demuxFlows are the client flows FuzzDemux plays with, to two ports (one
// with two SO_REUSEPORT listeners) over IPv4 and IPv6.
var demuxFlows = []tuple.Tuple{
	tuple.MustNew("192.0.2.1:80", "10.0.0.2:40000"),
	tuple.MustNew("192.0.2.1:80", "10.0.0.2:40001"),
	tuple.MustNew("192.0.2.1:80", "10.0.0.3:40000"),
	tuple.MustNew("192.0.2.1:443", "10.0.0.2:40000"),
	tuple.MustNew("[2001:db8::1]:80", "[2001:db8::2]:5000"),
	tuple.MustNew("192.0.2.1:81", "10.0.0.2:40000"), // nobody listens
}

// FuzzDemux runs a program of segments (built from the fuzzer's bytes:
// flags, sequence and acknowledgment numbers near the flow's, options)
// and lifecycle calls (Establish of the last handshake, TimeWait, Abort,
// accept, listener close and re-listen, clock moves) against a Demux on a
// manual clock with small backlogs, then shuts it down. It checks that
// nothing panics, and after every step that the tables hold nothing
// without an owner: every connection in the established table is one the
// program holds; every binding belongs to an open listener, a connection
// or a TIME_WAIT entry, and each of those has one; the listeners' SYN
// queue counts equal the request entries; and that Shutdown hands back
// every connection still queued.
func FuzzDemux(f *testing.F) {
	f.Add([]byte{0, 0, 2, 0, 0, 1, 0, 16, 0, 0, 2, 0, 3, 0, 0, 0, 16, 0, 1, 4, 0})
	f.Add([]byte{0, 1, 2, 0, 0, 0, 1, 2, 0, 0, 0, 2, 2, 0, 0, 0, 3, 2, 0, 0, 7, 1, 0, 1, 16, 1, 0, 2, 0, 6, 0})
	f.Add([]byte{0, 0, 2, 0, 0, 1, 0, 16, 0, 0, 2, 0, 4, 0, 5, 0, 0, 0, 17, 0, 0, 0, 2, 3, 0, 8, 200})
	f.Add([]byte{9, 0, 0, 1, 1, 2, 0, 0, 1, 3, 16, 0, 0, 2, 1, 5, 4, 1})
	f.Fuzz(func(t *testing.T, program []byte) {
		clock := &timewait.ManualClock{}
		d, err := socktable.NewDemux[demuxConn](socktable.Options{Clock: clock, MigrateReq: len(program)%2 == 1,
			AbortOnOverflow: len(program)%3 == 1, MaxTimeWait: 3})
		if err != nil {
			t.Fatal(err)
		}
		listen := func(addr string, port uint16) *socktable.Listener[demuxConn] {
			a := tuple.MustAddr(addr)
			fam := 4
			if !a.Is4() {
				fam = 6
			}
			b, err := d.Bind(table.BindRequest{Family: fam, Addr: a, Port: port, ReusePort: true})
			if err != nil {
				t.Fatalf("bind %s:%d: %v", addr, port, err)
			}
			l, err := d.Listen(b, socktable.ListenOptions{Backlog: 2, Shards: 1})
			if err != nil {
				t.Fatalf("listen %s:%d: %v", addr, port, err)
			}
			return l
		}
		listeners := []*socktable.Listener[demuxConn]{
			listen("0.0.0.0", 80), listen("0.0.0.0", 443), listen("0.0.0.0", 443), listen("::", 80),
		}
		conns := map[*demuxConn]bool{} // open: in the established table
		// ever holds every connection the program made: a closed one may
		// still wait in an accept queue (Linux's too: accept returns it,
		// and its first read reports the reset).
		ever := map[*demuxConn]bool{}
		var last socktable.Result[demuxConn]
		iss := make([]uint32, len(demuxFlows))
		byte1 := func(i int) byte {
			if i < len(program) {
				return program[i]
			}
			return 0
		}
		for pc := 0; pc < len(program); {
			op, arg := program[pc]%10, int(byte1(pc+1))
			pc += 2
			fl := demuxFlows[arg%len(demuxFlows)]
			fi := arg % len(demuxFlows)
			switch op {
			case 0, 1, 2: // a segment
				s := tuple.Segment{Tuple: fl, Proto: tuple.ProtoTCP, Version: 4, Window: 1000}
				if !fl.Is4() {
					s.Version = 6
				}
				s.Flags = tuple.Flags(byte1(pc))
				s.Seq = uint32(fi)<<16 + uint32(byte1(pc+1))
				s.Ack = iss[fi] + uint32(byte1(pc+2)) - 1
				if byte1(pc+3)&1 != 0 {
					s.HasTimestamps, s.TSval, s.TSecr = true, binary.LittleEndian.Uint32([]byte{byte1(pc + 3), 0, 1, 0}), 0
				}
				pc += 4
				if op == 2 && byte1(pc)&1 != 0 { // or an ICMP error about it
					s.ICMP = tuple.ICMPInfo{Kind: tuple.ICMPUnreachable, Code: 1}
					s.Flags = 0
				}
				last = d.Deliver(&s, 0, arg%3-1)
				if last.Reply.Flags&tuple.SYN != 0 {
					iss[fi] = last.Reply.Seq
				}
			case 3: // the stack completes the last handshake
				if last.Outcome != socktable.Completed {
					continue
				}
				c := &demuxConn{}
				flow, err := d.Establish(&last.Handshake, c)
				if err == nil {
					c.flow = flow
					conns[c], ever[c] = true, true
				}
				last = socktable.Result[demuxConn]{}
			case 4, 5: // close a connection into TIME_WAIT, or abort it
				for c := range conns {
					if c.flow.Tuple != fl {
						continue
					}
					delete(conns, c)
					if op == 4 {
						_ = d.TimeWait(c.flow, c, timewait.State{RcvNxt: uint32(fi)<<16 + 10, SndNxt: iss[fi] + 5})
					} else {
						_ = d.Abort(c.flow, c)
					}
					break
				}
			case 6: // accept
				l := listeners[arg%len(listeners)]
				if acc, err := l.Register(accept.Unbound); err == nil {
					_, _ = acc.TryAccept()
					_ = acc.Close()
				}
			case 7: // a listener closes and comes back
				i := arg % len(listeners)
				l := listeners[i]
				o, err := l.Close()
				if err != nil {
					t.Fatalf("close: %v", err)
				}
				for _, a := range o.Conns {
					if !ever[a.Conn] {
						t.Fatalf("orphan %v not the program's", a.Flow.Tuple)
					}
					delete(conns, a.Conn)
				}
				ep := l.Binding().Addr().String()
				listeners[i] = listen(ep, l.Binding().Port())
			case 8: // time passes
				clock.Advance(time.Duration(arg) * 500 * time.Millisecond)
				d.Advance()
			case 9:
				clock.Advance(timewait.TimeWaitLen)
				d.Advance()
			}
			checkDemux(t, d, conns, listeners)
		}
		o, err := d.Shutdown()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range o.Conns {
			if !ever[a.Conn] {
				t.Fatalf("Shutdown handed back %v, not the program's", a.Flow.Tuple)
			}
		}
	})
}

// checkDemux checks that every entry of d has an owner and every binding
// an entry.
func checkDemux(t *testing.T, d *socktable.Demux[demuxConn], conns map[*demuxConn]bool, ls []*socktable.Listener[demuxConn]) {
	t.Helper()
	nconns := 0
	for tp, c := range d.Connections() {
		if !conns[c] {
			t.Fatalf("connection %v in the table is not the program's", tp)
		}
		if c.flow.Tuple != tp {
			t.Fatalf("connection of %v found at %v", c.flow.Tuple, tp)
		}
		nconns++
	}
	ntw := 0
	for range d.TimeWaits() {
		ntw++
	}
	nbind := 0
	for range d.Bindings() {
		nbind++
	}
	if want := len(ls) + nconns + ntw; nbind != want {
		t.Fatalf("%d bindings for %d listeners, %d connections and %d TIME_WAIT entries", nbind, len(ls), nconns, ntw)
	}
	reqs, qlen := 0, 0
	for range d.Requests() {
		reqs++
	}
	for _, l := range ls {
		qlen += l.SynQueueLen()
	}
	if reqs != qlen {
		t.Fatalf("%d request entries, SYN queues count %d", reqs, qlen)
	}
}
