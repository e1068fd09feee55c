package fuzz

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// accept, listener close and re-listen, clock moves) and real packets
// (parsed with tuple.ParseHeaders; seeds from the nginx/wrk capture)
// against a Demux on a
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
	// Real packets, from the committed nginx/wrk capture (the FuzzParse
	// seeds): each alone, and each family's in one program with a
	// handshake's completion, a close and time between them.
	var all [2][]byte
	for i, pkt := range captureSeeds(f) {
		f.Add(rawOp(nil, pkt))
		v := i / 6 % 2
		if i%6 == 1 { // the capture's SYNs went to a closed port: one to the listener, from its SYN-ACK
			syn := synToListener(pkt)
			f.Add(rawOp(nil, syn))
			all[v] = rawOp(all[v], syn)
		}
		all[v] = append(rawOp(all[v], pkt), 3, 0, 8, byte(i))
	}
	f.Add(all[0])
	f.Add(all[1])
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
			listen("127.0.0.1", 8080), listen("::1", 8081), // the capture's servers
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
			if program[pc] >= rawOpCode { // a real packet: a length, then its bytes
				end := min(pc+2+int(byte1(pc+1)), len(program))
				pkt := program[min(pc+2, end):end]
				pc = end
				if s, err := tuple.ParseHeaders(pkt); err == nil {
					last = d.Deliver(&s, 0, 0)
				}
				checkDemux(t, d, conns, listeners)
				continue
			}
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

// rawOpCode starts a FuzzDemux op that delivers a packet parsed with
// tuple.ParseHeaders: the byte after it is the packet's length.
const rawOpCode = 0xF0

// rawOp appends the op delivering pkt (at most 255 bytes) to program.
func rawOp(program, pkt []byte) []byte {
	pkt = pkt[:min(len(pkt), 255)]
	return append(append(program, rawOpCode, byte(len(pkt))), pkt...)
}

// synToListener turns a captured SYN-ACK around into the SYN it
// answered: addresses and ports swapped, SYN alone (no checksum is
// checked by the parser).
func synToListener(synAck []byte) []byte {
	p := append([]byte(nil), synAck...)
	tcp := 40 // IPv6, no extension headers
	if p[0]>>4 == 4 {
		tcp = int(p[0]&15) * 4
		for i := range 4 {
			p[12+i], p[16+i] = p[16+i], p[12+i]
		}
	} else {
		for i := range 16 {
			p[8+i], p[24+i] = p[24+i], p[8+i]
		}
	}
	p[tcp], p[tcp+1], p[tcp+2], p[tcp+3] = p[tcp+2], p[tcp+3], p[tcp], p[tcp+1]
	p[tcp+13] = byte(tuple.SYN)
	return p
}

// captureSeeds reads the FuzzParse corpus files made from the committed
// capture (testdata/fuzz/FuzzParse/capture-*): IPv4 then IPv6, each a
// SYN, SYN-ACK, ACK, data, FIN and RST.
func captureSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, v := range []string{"v4", "v6"} {
		for _, kind := range []string{"syn", "synack", "ack", "psh", "fin", "rst"} {
			b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParse", "capture-"+v+"-"+kind))
			if err != nil {
				f.Fatal(err)
			}
			lines := strings.SplitN(string(b), "\n", 3)
			if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
				f.Fatalf("capture-%s-%s: not a []byte corpus file", v, kind)
			}
			pkt, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				f.Fatalf("capture-%s-%s: %v", v, kind, err)
			}
			out = append(out, []byte(pkt))
		}
	}
	return out
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
