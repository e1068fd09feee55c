//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/socktable/socktable/internal/corpus"
	"github.com/socktable/socktable/tuple"
)

// This file records timewait-segments.jsonl: how a TIME_WAIT (or orphaned
// FIN_WAIT2) socket of the real kernel answers segments. The recorder
// plays the remote peer itself, writing and reading raw IPv4 packets on a
// TUN device in the namespace, so it chooses every sequence number and
// timestamp the kernel's mini socket is asked to judge, and sees every
// packet the kernel sends back (or that it sends none).

// The TUN device and the addresses on either side of it. The kernel's end
// is tunLocal on tunName; the peer the recorder plays is tunPeer, which the
// kernel reaches through the device's /24 route.
const (
	tunName  = "sttun0"
	tunLocal = "10.77.0.1"
	tunPeer  = "10.77.0.2"
)

// segPeerPortOffset is added to a case's listener port to give the
// peer's port: every case has a four-tuple of its own.
const segPeerPortOffset = 10000

// replyWait is how long the recorder listens for the kernel's answer to a
// probe: a TIME_WAIT socket answers at once or never, and loopback-speed
// delivery through the TUN takes microseconds. It also spaces the probes
// of a case about 200 ms apart, well inside the 500 ms ACK rate limit.
const replyWait = 200 * time.Millisecond

// setupWait bounds the wait for a packet the handshake or the close must
// produce (a SYN-ACK, a FIN, an ACK); not seeing one ends the run.
const setupWait = time.Second

// TCP header flags, as in the header's 14th byte.
const (
	tcpFIN = 1 << 0
	tcpSYN = 1 << 1
	tcpRST = 1 << 2
	tcpPSH = 1 << 3
	tcpACK = 1 << 4
)

// flagString returns the corpus spelling of a flags byte ("SYN|ACK"):
// tuple.Flags's.
func flagString(f uint8) string { return tuple.Flags(f).String() }

// flagsOf returns a packet's flags as the header's byte.
func flagsOf(pk *corpus.Packet) uint8 {
	f, err := pk.FlagBits()
	if err != nil {
		log.Fatal(err)
	}
	return uint8(f)
}

// The corpus's lines are corpus.SegmentCase values, their packets
// corpus.Packet and their probes corpus.Probe: internal/corpus declares
// the schema, which the replay test reads with it.

// tsMode says what timestamp option a probe carries, relative to the last
// TSval the peer sent (which is the entry's ts_recent right after the
// close, since every segment the peer sent was in order).
type tsMode uint8

const (
	tsNext  tsMode = iota // last+1 (the peer's clock ticking on)
	tsNewer               // last+1000, which becomes the peer's last
	tsEqual               // last again
	tsOlder               // last-1000: an old duplicate to PAWS
	tsNone                // no option, even on a connection with timestamps
	tsForce               // last+1000, even on a connection without them
)

// tsSuffix names a mode in probe names.
var tsSuffix = [...]string{tsNext: "", tsNewer: "/ts+1000", tsEqual: "/ts+0", tsOlder: "/ts-1000", tsNone: "/nots", tsForce: "/ts+1000"}

// probeSpec is one probe of a case, made from the connection's state
// when it is sent.
type probeSpec struct {
	name  string
	flags uint8
	// seq returns the probe's sequence number from the peer's view of
	// the connection; name describes it.
	seq     func(c *segConn) uint32
	payload int
	ts      tsMode
	// pause is waited before the probe, on top of the reply wait of the
	// one before: it moves a probe past the 500 ms ACK rate limit.
	pause time.Duration
}

// Sequence numbers relative to the entry's rcv_nxt (the peer's next
// sequence number). oowDelta is far outside any receive window the kernel
// offers, and well inside 2^31.
const oowDelta = 1 << 30

func atRcvNxt(c *segConn) uint32  { return c.peerNxt }
func finRetx(c *segConn) uint32   { return c.finSeq }
func after1k(c *segConn) uint32   { return c.peerNxt + 1000 }
func before1k(c *segConn) uint32  { return c.peerNxt - 1000 }
func after100k(c *segConn) uint32 { return c.peerNxt + 100000 }
func before100k(c *segConn) uint32 {
	return c.peerNxt - 100000
}
func oow(c *segConn) uint32 { return c.peerNxt + oowDelta }

// p builds a probeSpec; where names the sequence number.
func p(flags uint8, where string, seq func(*segConn) uint32, payload int, ts tsMode) probeSpec {
	name := strings.ToLower(strings.ReplaceAll(flagString(flags), "|", "")) + "@" + where
	if payload > 0 {
		name += fmt.Sprintf("+%dB", payload)
	}
	return probeSpec{name: name + tsSuffix[ts], flags: flags, seq: seq, payload: payload, ts: ts}
}

// segSpec is one case to run.
type segSpec struct {
	id         string
	close      string // closeFinAck, closeAckFin or closeAck
	noTS       bool   // the peer's SYN offers no timestamps
	tsZero     bool   // every TSval the peer sends is 0
	noWScale   bool   // the peer's SYN offers no window scaling
	rfc1337    bool   // net.ipv4.tcp_rfc1337 = 1
	noListener bool   // close the listener before the probes
	probes     []probeSpec
}

// How the peer answers the kernel's FIN (corpus.SegmentCase.Close).
const (
	closeFinAck = "fin-ack"
	closeAckFin = "ack-fin"
	closeAck    = "ack"
)

// segSpecs returns the cases: each probe kind against a TIME_WAIT entry,
// with and without timestamps and with tcp_rfc1337 off and on where an
// RST is involved, then against a FIN_WAIT2 entry. Every case is its own
// connection, so the per-socket ACK rate limit of one never meets another.
func segSpecs() []segSpec {
	ack, fin, syn, rst, data := uint8(tcpACK), uint8(tcpFIN|tcpACK), uint8(tcpSYN), uint8(tcpRST), uint8(tcpACK|tcpPSH)
	var specs []segSpec
	tw := func(id string, mod func(*segSpec), probes ...probeSpec) {
		s := segSpec{id: "tw-" + id, close: closeFinAck, probes: probes}
		if mod != nil {
			mod(&s)
		}
		specs = append(specs, s)
	}
	noTS := func(s *segSpec) { s.noTS = true }
	rfc := func(s *segSpec) { s.rfc1337 = true }
	noTSrfc := func(s *segSpec) { s.noTS, s.rfc1337 = true, true }

	// Bare ACKs: in window (drop, ts_recent updated), PAWS-rejected, old,
	// out of window, and the out-of-window rate limit.
	tw("ack", nil, p(ack, "rcv_nxt", atRcvNxt, 0, tsNewer))
	tw("ack-nots", noTS, p(ack, "rcv_nxt", atRcvNxt, 0, tsNext))
	tw("ack-paws", nil, p(ack, "rcv_nxt", atRcvNxt, 0, tsOlder))
	tw("ack-old", nil, p(ack, "rcv_nxt-1000", before1k, 0, tsNext))
	tw("ack-oow", nil, p(ack, "rcv_nxt+2^30", oow, 0, tsNext))
	tw("ack-oow-nots", noTS, p(ack, "rcv_nxt+2^30", oow, 0, tsNext))
	late := p(ack, "rcv_nxt+2^30", oow, 0, tsNext)
	late.pause = 400 * time.Millisecond
	tw("ack-oow-ratelimit", nil, p(ack, "rcv_nxt+2^30", oow, 0, tsNext), p(ack, "rcv_nxt+2^30", oow, 0, tsNext), late)
	// The peer's FIN again, and data.
	tw("fin", nil, p(fin, "fin", finRetx, 0, tsNext))
	tw("fin-nots", noTS, p(fin, "fin", finRetx, 0, tsNext))
	tw("fin-paws", nil, p(fin, "fin", finRetx, 0, tsOlder))
	tw("fin-tszero", func(s *segSpec) { s.tsZero = true }, p(fin, "fin", finRetx, 0, tsNext))
	tw("fin-nows", func(s *segSpec) { s.noWScale = true }, p(fin, "fin", finRetx, 0, tsNext))
	tw("fin-via-fw2", func(s *segSpec) { s.close = closeAckFin }, p(fin, "fin", finRetx, 0, tsNext))
	tw("data", nil, p(data, "rcv_nxt", atRcvNxt, 100, tsNext))
	tw("data-nots", noTS, p(data, "rcv_nxt", atRcvNxt, 100, tsNext))
	tw("data-paws", nil, p(data, "rcv_nxt", atRcvNxt, 100, tsOlder))
	// SYNs: after or before rcv_nxt, with newer, equal or older
	// timestamps, or none.
	tw("syn-after", nil, p(syn, "rcv_nxt+100000", after100k, 0, tsNewer))
	tw("syn-after-tsequal", nil, p(syn, "rcv_nxt+100000", after100k, 0, tsEqual))
	tw("syn-after-tsold", nil, p(syn, "rcv_nxt+100000", after100k, 0, tsOlder))
	tw("syn-after-nots", noTS, p(syn, "rcv_nxt+100000", after100k, 0, tsNext))
	tw("syn-after-tsconn-nots", nil, p(syn, "rcv_nxt+100000", after100k, 0, tsNone))
	tw("syn-after-nolistener", func(s *segSpec) { s.noListener = true }, p(syn, "rcv_nxt+100000", after100k, 0, tsNewer))
	tw("syn-after-via-fw2", func(s *segSpec) { s.close = closeAckFin }, p(syn, "rcv_nxt+100000", after100k, 0, tsNewer))
	tw("syn-at", nil, p(syn, "rcv_nxt", atRcvNxt, 0, tsEqual))
	tw("syn-at-tsnew", nil, p(syn, "rcv_nxt", atRcvNxt, 0, tsNewer))
	tw("syn-before-tsnew", nil, p(syn, "rcv_nxt-100000", before100k, 0, tsNewer))
	tw("syn-before-tsequal", nil, p(syn, "rcv_nxt-100000", before100k, 0, tsEqual))
	tw("syn-before-tsold", nil, p(syn, "rcv_nxt-100000", before100k, 0, tsOlder))
	tw("syn-before-nots", noTS, p(syn, "rcv_nxt-100000", before100k, 0, tsNext))
	tw("syn-before-nots-tsinsyn", noTS, p(syn, "rcv_nxt-100000", before100k, 0, tsForce))
	tw("syn-before-tsconn-nots", nil, p(syn, "rcv_nxt-100000", before100k, 0, tsNone))
	tw("synack-after", nil, p(syn|tcpACK, "rcv_nxt+100000", after100k, 0, tsNewer))
	// RSTs: at rcv_nxt (RFC 1337 assassination, or not), PAWS-rejected,
	// out of window either side, with ACK.
	for _, r := range []struct {
		id  string
		mod func(*segSpec)
	}{{"", nil}, {"-rfc1337", rfc}} {
		tw("rst"+r.id, r.mod, p(rst, "rcv_nxt", atRcvNxt, 0, tsNext))
		tw("rst-nots"+r.id, func(s *segSpec) {
			noTS(s)
			if r.mod != nil {
				noTSrfc(s)
			}
		}, p(rst, "rcv_nxt", atRcvNxt, 0, tsNext))
		tw("rst-paws"+r.id, r.mod, p(rst, "rcv_nxt", atRcvNxt, 0, tsOlder))
		tw("rst-after"+r.id, r.mod, p(rst, "rcv_nxt+1000", after1k, 0, tsNext))
		tw("rst-before"+r.id, r.mod, p(rst, "rcv_nxt-1000", before1k, 0, tsNext))
		tw("rstack"+r.id, r.mod, p(rst|tcpACK, "rcv_nxt", atRcvNxt, 0, tsNext))
	}

	fw := func(id string, mod func(*segSpec), probes ...probeSpec) {
		s := segSpec{id: "fw2-" + id, close: closeAck, probes: probes}
		if mod != nil {
			mod(&s)
		}
		specs = append(specs, s)
	}
	// FIN_WAIT2: the peer's FIN (which makes it TIME_WAIT), duplicate
	// ACKs, data, SYNs, RSTs, and segments outside the window.
	fw("fin", nil, p(fin, "rcv_nxt", atRcvNxt, 0, tsNext))
	fw("fin-nots", noTS, p(fin, "rcv_nxt", atRcvNxt, 0, tsNext))
	fw("fin-paws", nil, p(fin, "rcv_nxt", atRcvNxt, 0, tsOlder))
	fw("fin-after", nil, p(fin, "rcv_nxt+1000", after1k, 0, tsNext))
	fw("ack", nil, p(ack, "rcv_nxt", atRcvNxt, 0, tsNext))
	fw("ack-paws", nil, p(ack, "rcv_nxt", atRcvNxt, 0, tsOlder))
	fw("ack-oow", nil, p(ack, "rcv_nxt+2^30", oow, 0, tsNext))
	fw("ack-old", nil, p(ack, "rcv_nxt-1000", before1k, 0, tsNext))
	fw("data", nil, p(data, "rcv_nxt", atRcvNxt, 100, tsNext))
	fw("data-nots", noTS, p(data, "rcv_nxt", atRcvNxt, 100, tsNext))
	fw("syn-at", nil, p(syn, "rcv_nxt", atRcvNxt, 0, tsNewer))
	fw("syn-after", nil, p(syn, "rcv_nxt+1000", after1k, 0, tsNewer))
	fw("syn-before", nil, p(syn, "rcv_nxt-100000", before100k, 0, tsNewer))
	fw("syn-oow", nil, p(syn, "rcv_nxt+2^30", oow, 0, tsNewer))
	fw("rst", nil, p(rst, "rcv_nxt", atRcvNxt, 0, tsNext))
	fw("rst-rfc1337", rfc, p(rst, "rcv_nxt", atRcvNxt, 0, tsNext))
	fw("rst-after", nil, p(rst, "rcv_nxt+1000", after1k, 0, tsNext))
	fw("rst-oow", nil, p(rst, "rcv_nxt+2^30", oow, 0, tsNext))
	fw("rst-paws", nil, p(rst, "rcv_nxt", atRcvNxt, 0, tsOlder))
	return specs
}

// tunDev is the TUN device the peer's packets go through.
type tunDev struct {
	f      *os.File
	buf    []byte
	strays int // packets read that belonged to no case being run
}

// ifreq is struct ifreq as TUNSETIFF reads it: the name, then the flags
// at the start of a 24-byte union.
type ifreq struct {
	name  [syscall.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// openTun creates tunName (IFF_TUN, no packet information header: reads
// and writes are bare IPv4 packets), gives it tunLocal/24 and brings it
// up. IPv6 is turned off on it so that no router solicitation crosses it.
func openTun() *tunDev {
	fd := createTun(tunName, syscall.O_NONBLOCK)
	// Best effort: a kernel without IPv6 has no such file.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+tunName+"/disable_ipv6", []byte("1"), 0)
	for _, args := range [][]string{
		{"addr", "add", tunLocal + "/24", "dev", tunName},
		{"link", "set", tunName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			log.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// A non-blocking descriptor makes the File pollable, so reads take
	// deadlines.
	return &tunDev{f: os.NewFile(uintptr(fd), "/dev/net/tun"), buf: make([]byte, 65536)}
}

// monoMS returns CLOCK_MONOTONIC in milliseconds, the clock of the
// kernel's TCP timestamps (tcp_clock_ms: ktime_get_ns / 10^6).
func monoMS() int64 {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		log.Fatalf("clock_gettime: %v", errno)
	}
	return ts.Nano() / int64(time.Millisecond)
}

// ipv4 parses a dotted quad of this file's constants.
func ipv4(s string) [4]byte {
	var a [4]byte
	for i, f := range strings.Split(s, ".") {
		v, err := strconv.Atoi(f)
		if err != nil || i > 3 {
			log.Fatalf("bad IPv4 address %q", s)
		}
		a[i] = byte(v)
	}
	return a
}

// csum adds b to a ones'-complement sum.
func csum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

// fold finishes a ones'-complement checksum.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// be16 and be32 write big-endian values.
func be16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }
func be32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
func get16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func get32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// encode builds the IPv4 packet of a peer segment from src:sport to
// dst:dport, checksums included. The options are laid out as Linux lays
// out a SYN's: MSS, then NOP and window scale, then NOP NOP timestamps.
func encode(pk *corpus.Packet, src, dst [4]byte, sport, dport uint16) []byte {
	var opts []byte
	if pk.MSS != nil {
		opts = append(opts, 2, 4, byte(*pk.MSS>>8), byte(*pk.MSS))
	}
	if pk.WScale != nil {
		opts = append(opts, 1, 3, 3, *pk.WScale)
	}
	if pk.TS != nil {
		o := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
		be32(o[4:], pk.TS[0])
		be32(o[8:], pk.TS[1])
		opts = append(opts, o...)
	}
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	thl := 20 + len(opts)
	total := 20 + thl + pk.Len
	b := make([]byte, total)
	ip := b[:20]
	ip[0] = 0x45
	be16(ip[2:], uint16(total))
	be16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = syscall.IPPROTO_TCP
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	be16(ip[10:], fold(csum(0, ip)))
	th := b[20:]
	be16(th[0:], sport)
	be16(th[2:], dport)
	be32(th[4:], pk.Seq)
	be32(th[8:], pk.Ack)
	th[12] = byte(thl/4) << 4
	th[13] = flagsOf(pk)
	be16(th[14:], pk.Window)
	copy(th[20:], opts)
	for i := range pk.Len {
		th[thl+i] = 'x'
	}
	pseudo := make([]byte, 12)
	copy(pseudo[0:4], src[:])
	copy(pseudo[4:8], dst[:])
	pseudo[9] = syscall.IPPROTO_TCP
	be16(pseudo[10:], uint16(len(th)))
	be16(th[16:], fold(csum(csum(0, pseudo), th)))
	return b
}

// decoded is a packet read from the TUN: its ports and the segment.
type decoded struct {
	sport, dport uint16
	pk           corpus.Packet
}

// decode parses an IPv4 TCP packet the kernel sent from tunLocal to
// tunPeer. ok is false for anything else (other protocols, other
// addresses), which the caller counts as a stray.
func decode(b []byte) (d decoded, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != syscall.IPPROTO_TCP {
		return d, false
	}
	ihl := int(b[0]&0xf) * 4
	total := int(get16(b[2:]))
	if ihl < 20 || total > len(b) || total < ihl+20 ||
		[4]byte(b[12:16]) != ipv4(tunLocal) || [4]byte(b[16:20]) != ipv4(tunPeer) {
		return d, false
	}
	th := b[ihl:total]
	thl := int(th[12]>>4) * 4
	if thl < 20 || thl > len(th) {
		return d, false
	}
	d.sport, d.dport = get16(th[0:]), get16(th[2:])
	d.pk = corpus.Packet{Dir: "kernel", Seq: get32(th[4:]), Ack: get32(th[8:]), Flags: flagString(th[13]),
		Window: get16(th[14:]), Len: len(th) - thl}
	for o := th[20:thl]; len(o) > 0; {
		kind := o[0]
		if kind == 0 {
			break
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
			log.Fatalf("kernel sent malformed TCP options % x", th[20:thl])
		}
		v := o[2:o[1]]
		switch {
		case kind == 2 && len(v) == 2:
			mss := get16(v)
			d.pk.MSS = &mss
		case kind == 3 && len(v) == 1:
			ws := v[0]
			d.pk.WScale = &ws
		case kind == 8 && len(v) == 8:
			d.pk.TS = []uint32{get32(v), get32(v[4:])}
		}
		o = o[o[1]:]
	}
	return d, true
}

// segConn is the peer's side of one case's connection: what it has sent
// and what it knows of the kernel's side from the kernel's packets.
type segConn struct {
	tun          *tunDev
	c            *corpus.SegmentCase
	lport, pport uint16
	ts, tsZero   bool // the peer offers timestamps; sends TSval 0 throughout
	ws           bool // the peer offers window scaling

	peerNxt   uint32 // the peer's next sequence number (the entry's rcv_nxt once the close is done)
	finSeq    uint32 // the sequence number of the peer's FIN (its ISN + 1)
	kernelNxt uint32 // the kernel's snd_nxt, as its packets show it
	tsval     uint32 // the last TSval the peer sent
	kernelTS  uint32 // the last TSval the kernel sent: the peer's TSecr
	lastSent  int64  // monoMS when the peer last wrote a packet
}

// nextTS returns the TSval of the peer's next ordinary segment.
func (cn *segConn) nextTS() uint32 {
	if !cn.tsZero {
		cn.tsval++
	}
	return cn.tsval
}

// segment builds a peer segment with the connection's usual window and,
// if the connection has them, a timestamp option as mode says.
func (cn *segConn) segment(flags uint8, seq, ack uint32, payload int, mode tsMode) corpus.Packet {
	pk := corpus.Packet{Dir: "peer", Flags: flagString(flags), Seq: seq, Ack: ack, Len: payload, Window: 65535}
	if cn.ws && flags&tcpSYN == 0 {
		pk.Window = 512 // 64 KiB with the peer's shift of 7
	}
	if flags&tcpACK == 0 {
		pk.Ack = 0
	}
	if flags&tcpSYN != 0 {
		mss, ws := uint16(1460), uint8(7)
		pk.MSS = &mss
		if cn.ws {
			pk.WScale = &ws
		}
	}
	if !cn.ts && mode != tsForce || mode == tsNone {
		return pk
	}
	var v uint32
	switch mode {
	case tsNext:
		v = cn.nextTS()
	case tsNewer, tsForce:
		cn.tsval += 1000
		v = cn.tsval
	case tsEqual:
		v = cn.tsval
	case tsOlder:
		v = cn.tsval - 1000
	}
	ecr := cn.kernelTS
	if flags&tcpACK == 0 {
		ecr = 0
	}
	pk.TS = []uint32{v, ecr}
	return pk
}

// send writes a peer segment to the kernel and returns it as recorded.
func (cn *segConn) send(pk corpus.Packet) corpus.Packet {
	b := encode(&pk, ipv4(tunPeer), ipv4(tunLocal), cn.pport, cn.lport)
	now := monoMS()
	pk.ClockMS = [2]int64{now, now}
	if _, err := cn.tun.f.Write(b); err != nil {
		log.Fatalf("%s: write to %s: %v", cn.c.ID, tunName, err)
	}
	cn.lastSent = now
	return pk
}

// read returns the case's packets the kernel sends within wait, or up to
// the first one for which stop reports true. Packets of other four-tuples
// (a late retransmission of an earlier case) are counted as strays.
func (cn *segConn) read(wait time.Duration, stop func(*corpus.Packet) bool) []corpus.Packet {
	var got []corpus.Packet
	deadline := time.Now().Add(wait)
	if err := cn.tun.f.SetReadDeadline(deadline); err != nil {
		log.Fatal(err)
	}
	for {
		n, err := cn.tun.f.Read(cn.tun.buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			log.Fatalf("read %s: %v", tunName, err)
		}
		d, ok := decode(cn.tun.buf[:n])
		if !ok || d.sport != cn.lport || d.dport != cn.pport {
			cn.tun.strays++
			continue
		}
		d.pk.ClockMS = [2]int64{cn.lastSent, monoMS()}
		if d.pk.TS != nil {
			cn.kernelTS = d.pk.TS[0]
		}
		got = append(got, d.pk)
		if stop != nil && stop(&got[len(got)-1]) {
			return got
		}
	}
}

// expect waits for the kernel packet the setup needs, which want
// recognises, and records it and anything before it in the setup.
func (cn *segConn) expect(what string, want func(*corpus.Packet) bool) corpus.Packet {
	got := cn.read(setupWait, want)
	cn.c.Setup = append(cn.c.Setup, got...)
	if len(got) == 0 || !want(&got[len(got)-1]) {
		log.Fatalf("%s: no %s from the kernel within %v (got %+v)", cn.c.ID, what, setupWait, got)
	}
	return got[len(got)-1]
}

// sendSetup sends a setup packet and records it.
func (cn *segConn) sendSetup(pk corpus.Packet) {
	cn.c.Setup = append(cn.c.Setup, cn.send(pk))
}

// procSockets maps "localport:remoteport" to the entry string (see
// corpus.Probe.Entry) of every IPv4 TCP socket in the namespace.
func procSockets() map[string]string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ..."
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		st := int(parseHex(fs[3]))
		tr, _, _ := strings.Cut(fs[5], ":")
		name := tcpStates[st]
		if name == "" {
			name = "state" + fs[3]
		}
		entry := "socket " + name
		if tr == "03" { // the timer of a timewait mini socket (get_timewait4_sock)
			entry = name
		}
		m[fmt.Sprintf("%d:%d", hexPort(fs[1]), hexPort(fs[2]))] = entry
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	return m
}

// tcpStates names the states of include/net/tcp_states.h.
var tcpStates = map[int]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}

// entry returns what /proc/net/tcp holds for the connection.
func (cn *segConn) entry() string {
	if e, ok := procSockets()[fmt.Sprintf("%d:%d", cn.lport, cn.pport)]; ok {
		return e
	}
	return "none"
}

// sysctlPath is where net.ipv4.NAME lives.
func sysctlPath(name string) string { return "/proc/sys/net/ipv4/" + name }

// readSysctl returns net.ipv4.name in the namespace.
func readSysctl(name string) int {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		log.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		log.Fatalf("%s: %q", name, b)
	}
	return v
}

// writeSysctl sets net.ipv4.name in the namespace (these are per
// namespace: the caller's are untouched).
func writeSysctl(name string, v int) {
	if err := os.WriteFile(sysctlPath(name), []byte(strconv.Itoa(v)), 0); err != nil {
		log.Fatalf("%s = %d: %v", name, v, err)
	}
}

// recordedSysctls are the sysctls a case records.
var recordedSysctls = []string{"tcp_rfc1337", "tcp_invalid_ratelimit", "tcp_fin_timeout", "tcp_timestamps", "tcp_window_scaling"}

// runSegment runs one case on listener port lport and returns its line. It
// reports false, having logged why, if the close did not leave the
// expected mini socket.
func runSegment(tun *tunDev, s *segSpec, lport int, kernel string) (corpus.SegmentCase, bool) {
	c := corpus.SegmentCase{ID: s.id, Close: s.close, Listener: !s.noListener, Kernel: kernel,
		Local: fmt.Sprintf("%s:%d", tunLocal, lport), Remote: fmt.Sprintf("%s:%d", tunPeer, lport+segPeerPortOffset)}
	c.Substate = "TIME_WAIT"
	if s.close == closeAck {
		c.Substate = "FIN_WAIT2"
	}
	writeSysctl("tcp_rfc1337", map[bool]int{false: 0, true: 1}[s.rfc1337])
	defer writeSysctl("tcp_rfc1337", 0)
	c.Sysctls = map[string]int{}
	for _, n := range recordedSysctls {
		c.Sysctls[n] = readSysctl(n)
	}

	lfd, err := openBound(corpus.BindSock{Family: 4, Addr: tunLocal, Port: lport}, true)
	if err != nil {
		log.Fatalf("%s: listener bind: %v", s.id, err)
	}
	if err := syscall.Listen(lfd, backlog); err != nil {
		log.Fatalf("%s: listen: %v", s.id, err)
	}
	listening := true
	defer func() {
		if listening {
			closeFD(lfd)
		}
	}()
	cn := &segConn{tun: tun, c: &c, lport: uint16(lport), pport: uint16(lport + segPeerPortOffset),
		ts: !s.noTS, tsZero: s.tsZero, ws: !s.noWScale}
	// Distinct, arbitrary starting points per case, so that no two cases'
	// numbers could be mistaken for each other.
	isn := uint32(0x10000000) + uint32(lport)*0x10001
	if !cn.tsZero {
		cn.tsval = uint32(lport) * 100000
	}

	// Handshake.
	cn.sendSetup(cn.segment(tcpSYN, isn, 0, 0, tsNext))
	synack := cn.expect("SYN-ACK", func(pk *corpus.Packet) bool { return flagsOf(pk) == tcpSYN|tcpACK })
	if synack.Ack != isn+1 {
		log.Fatalf("%s: SYN-ACK acknowledges %d, want %d", s.id, synack.Ack, isn+1)
	}
	cn.peerNxt, cn.finSeq = isn+1, isn+1
	cn.kernelNxt = synack.Seq + 1
	cn.sendSetup(cn.segment(tcpACK, cn.peerNxt, cn.kernelNxt, 0, tsNext))
	a, ok := acceptWait([]int{lfd})
	if !ok {
		log.Fatalf("%s: the connection never reached the accept queue", s.id)
	}

	// The kernel closes first.
	cn.lastSent = monoMS()
	closeFD(a.fd)
	kfin := cn.expect("FIN", func(pk *corpus.Packet) bool { return flagsOf(pk)&tcpFIN != 0 })
	cn.kernelNxt = kfin.Seq + 1
	switch s.close {
	case closeFinAck:
		cn.sendSetup(cn.segment(tcpFIN|tcpACK, cn.peerNxt, cn.kernelNxt, 0, tsNext))
		cn.peerNxt++
	case closeAckFin, closeAck:
		cn.sendSetup(cn.segment(tcpACK, cn.peerNxt, cn.kernelNxt, 0, tsNext))
		if s.close == closeAckFin {
			if e := waitEntry(cn, "FIN_WAIT2"); e != "FIN_WAIT2" {
				log.Printf("%s: after the ACK of its FIN the kernel holds %q, not a FIN_WAIT2 mini socket: skipped", s.id, e)
				return c, false
			}
			cn.sendSetup(cn.segment(tcpFIN|tcpACK, cn.peerNxt, cn.kernelNxt, 0, tsNext))
			cn.peerNxt++
		}
	}
	if s.close != closeAck {
		peerEnd := cn.peerNxt
		cn.expect("ACK of the peer's FIN", func(pk *corpus.Packet) bool { return flagsOf(pk)&tcpACK != 0 && pk.Ack == peerEnd })
	}
	if e := waitEntry(cn, c.Substate); e != c.Substate {
		log.Printf("%s: after the close the kernel holds %q, not a %s mini socket: skipped", s.id, e, c.Substate)
		return c, false
	}
	if s.noListener {
		closeFD(lfd)
		listening = false
	}

	// The probes, then the follow-up.
	probe := func(name, role string, pk corpus.Packet) {
		pr := corpus.Probe{Name: name, Role: role}
		pr.Segment = cn.send(pk)
		pr.Replies = cn.read(replyWait, nil)
		if pr.Replies == nil {
			pr.Replies = []corpus.Packet{}
		}
		pr.Entry = cn.entry()
		c.Probes = append(c.Probes, pr)
		for _, r := range pr.Replies {
			if flagsOf(&r) == tcpSYN|tcpACK && r.Ack == pk.Seq+1 {
				// A listener took the SYN: reset the request at its
				// rcv_nxt, so that it neither lingers nor retransmits.
				// An RST without ACK, so it carries no acknowledgment to
				// check.
				rst := corpus.Packet{Dir: "peer", Flags: flagString(tcpRST), Seq: pk.Seq + 1}
				cl := corpus.Probe{Name: "rst@syn+1", Role: "cleanup"}
				cl.Segment = cn.send(rst)
				cl.Replies = cn.read(replyWait, nil)
				if cl.Replies == nil {
					cl.Replies = []corpus.Packet{}
				}
				cl.Entry = cn.entry()
				c.Probes = append(c.Probes, cl)
			}
		}
	}
	for _, ps := range s.probes {
		time.Sleep(ps.pause)
		probe(ps.name, "probe", cn.segment(ps.flags, ps.seq(cn), cn.kernelNxt, ps.payload, ps.ts))
	}
	probe("finack@fin", "followup", cn.segment(tcpFIN|tcpACK, cn.finSeq, cn.kernelNxt, 0, tsNext))
	return c, true
}

// waitEntry polls /proc/net/tcp for the connection's mini socket with
// substate want: the kernel may still be processing the packet just
// written. It returns the last entry seen.
func waitEntry(cn *segConn, want string) string {
	var e string
	for range 50 {
		if e = cn.entry(); e == want {
			return e
		}
		time.Sleep(2 * time.Millisecond)
	}
	return e
}

// runSegments records timewait-segments.jsonl in dir. It runs in the
// fresh namespace (run has checked), after lo is up.
func runSegments(dir, kernel string) {
	tun := openTun()
	defer tun.f.Close()
	specs := segSpecs()
	seen := map[string]bool{}
	counts := map[string]int{}
	var skipped []string
	writeJSONL(filepath.Join(dir, corpus.SegmentsFile), func(emit func(any)) {
		for i := range specs {
			s := &specs[i]
			if seen[s.id] {
				log.Fatalf("duplicate case id %s", s.id)
			}
			seen[s.id] = true
			c, ok := runSegment(tun, s, firstPort+i, kernel)
			if !ok {
				skipped = append(skipped, s.id)
				continue
			}
			for _, pr := range c.Probes {
				var rs []string
				for _, r := range pr.Replies {
					rs = append(rs, r.Flags)
				}
				if len(rs) == 0 {
					rs = []string{"nothing"}
				}
				counts[fmt.Sprintf("%s %s -> %s, entry %s", c.Substate, pr.Role, strings.Join(rs, "+"), pr.Entry)]++
			}
			emit(&c)
		}
	})
	fmt.Printf("kernel %s, timewait-segments.jsonl: %d cases, %d skipped, %d stray packets\n",
		kernel, len(specs)-len(skipped), len(skipped), tun.strays)
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Printf("  %-70s %4d\n", k, counts[k])
	}
	for _, id := range skipped {
		fmt.Printf("  skipped %s\n", id)
	}
}
