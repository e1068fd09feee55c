package tuple_test

import (
	"encoding/binary"
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	pt "github.com/socktable/socktable/internal/pkttest"
	"github.com/socktable/socktable/internal/typeinfo"
	"github.com/socktable/socktable/tuple"
)

// parseCase is one packet and what Parse must make of it: want when err is
// nil, the zero Segment and err otherwise.
type parseCase struct {
	name string
	pkt  []byte
	want tuple.Segment
	err  error
}

// The receiving host's and the peer's addresses as tuple.Addr.
var (
	segLocal4 = tuple.AddrFrom4(pt.Local4)
	segPeer4  = tuple.AddrFrom4(pt.Peer4)
	segLocal6 = tuple.AddrFrom16(pt.Local6)
	segPeer6  = tuple.AddrFrom16(pt.Peer6)
)

// segTuple builds an expected Tuple.
func segTuple(local tuple.Addr, lport uint16, remote tuple.Addr, rport uint16) tuple.Tuple {
	return tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: lport}, Remote: tuple.Endpoint{Addr: remote, Port: rport}}
}

// patched returns a copy of b changed by f.
func patched(b []byte, f func(b []byte)) []byte {
	b = append([]byte(nil), b...)
	f(b)
	return b
}

// put16 writes a big-endian field, for patching.
func put16(b []byte, off int, v uint16) { binary.BigEndian.PutUint16(b[off:], v) }

// parseCases is the rule-by-rule table: every rule of Parse's contract and
// every sentinel it returns.
func parseCases() []parseCase {
	// Builders for packets from the peer to the local host.
	ip4 := func(proto uint8, l4 []byte) []byte {
		return pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: proto}.Packet(l4)
	}
	ip6 := func(proto uint8, l4 []byte, ext ...pt.Ext) []byte {
		return pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: proto, Ext: ext}.Packet(l4)
	}
	// Packets the local host sent, for ICMP errors to quote.
	sent4 := func(proto uint8, l4 []byte) []byte {
		return pt.IPv4{Src: pt.Local4, Dst: pt.Peer4, Proto: proto}.Packet(l4)
	}
	sent6 := func(proto uint8, l4 []byte, ext ...pt.Ext) []byte {
		return pt.IPv6{Src: pt.Local6, Dst: pt.Peer6, Proto: proto, Ext: ext}.Packet(l4)
	}
	icmp4 := func(typ, code uint8, rest uint32, quote []byte) []byte {
		return pt.IPv4{Src: pt.Router4, Dst: pt.Local4, Proto: pt.ProtoICMP}.Packet(pt.ICMPv4(typ, code, rest, quote))
	}
	icmp6 := func(typ, code uint8, rest uint32, quote []byte) []byte {
		return pt.IPv6{Src: pt.Router6, Dst: pt.Local6, Proto: pt.ProtoICMPv6}.Packet(pt.ICMPv6(typ, code, rest, quote))
	}

	ts := pt.TSOption(0x01020304, 0x0a0b0c0d)
	syn := pt.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: pt.SYN, Window: 64240,
		Options: append(pt.MSSOption(1460), ts...)}.Bytes()
	ack := pt.TCP{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: 5001, Flags: pt.ACK | pt.PSH, Window: 502,
		Options: ts, Payload: []byte("hello")}.Bytes()
	bare := pt.TCP{SrcPort: 40000, DstPort: 80, Seq: 7, Ack: 9, Flags: pt.ACK, Window: 3}.Bytes()
	udp := pt.UDP{SrcPort: 5353, DstPort: 53, Payload: []byte("query")}.Bytes()

	t4 := segTuple(segLocal4, 80, segPeer4, 40000)
	t6 := segTuple(segLocal6, 80, segPeer6, 40000)
	u4 := segTuple(segLocal4, 53, segPeer4, 5353)
	u6 := segTuple(segLocal6, 53, segPeer6, 5353)

	synSeg4 := tuple.Segment{Tuple: t4, Seq: 1000, TSval: 0x01020304, TSecr: 0x0a0b0c0d,
		Window: 64240, MSS: 1460, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, HasTimestamps: true, HasMSS: true}
	ackSeg4 := tuple.Segment{Tuple: t4, Seq: 1001, Ack: 5001, TSval: 0x01020304, TSecr: 0x0a0b0c0d,
		Window: 502, PayloadLen: 5, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK | tuple.PSH, HasTimestamps: true}
	ackSeg6 := ackSeg4
	ackSeg6.Tuple, ackSeg6.Version = t6, 6
	bareSeg4 := tuple.Segment{Tuple: t4, Seq: 7, Ack: 9, Window: 3, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK}
	udpSeg4 := tuple.Segment{Tuple: u4, PayloadLen: 5, Proto: tuple.ProtoUDP, Version: 4}
	udpSeg6 := tuple.Segment{Tuple: u6, PayloadLen: 5, Proto: tuple.ProtoUDP, Version: 6}
	with := func(s tuple.Segment, f func(s *tuple.Segment)) tuple.Segment { f(&s); return s }

	// SYNs from 40000 to 80 carrying the option space opts, and their
	// Segment before the options are read.
	synOpts := func(opts ...byte) []byte {
		return ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80, Flags: pt.SYN, Options: opts}.Bytes())
	}
	synBare := tuple.Segment{Tuple: t4, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN}
	mss := func(v uint16) func(s *tuple.Segment) { return func(s *tuple.Segment) { s.MSS, s.HasMSS = v, true } }
	wscale := func(v uint8) func(s *tuple.Segment) {
		return func(s *tuple.Segment) { s.WScale, s.HasWScale = v, true }
	}
	sackOK := func(s *tuple.Segment) { s.SACKPermitted = true }
	opts := func(s tuple.Segment, fs ...func(s *tuple.Segment)) tuple.Segment {
		for _, f := range fs {
			f(&s)
		}
		return s
	}

	// Offsets in a packet built by ip4 without options (TCP/UDP at 20) and
	// by ip6 without extension headers (TCP/UDP at 40).
	const l4at4, l4at6 = 20, 40

	// The quoted packets of ICMP errors, and what they parse to.
	qTCP4 := sent4(pt.ProtoTCP, pt.TCP{SrcPort: 80, DstPort: 40000, Seq: 0xdeadbeef, Ack: 1, Flags: pt.ACK,
		Window: 9, Options: ts, Payload: make([]byte, 1400)}.Bytes())
	qUDP4 := sent4(pt.ProtoUDP, pt.UDP{SrcPort: 53, DstPort: 5353, Payload: make([]byte, 100)}.Bytes())
	qTCP6 := sent6(pt.ProtoTCP, pt.TCP{SrcPort: 443, DstPort: 50000, Seq: 0xfeedface, Flags: pt.ACK,
		Payload: make([]byte, 1400)}.Bytes())
	qUDP6 := sent6(pt.ProtoUDP, pt.UDP{SrcPort: 123, DstPort: 1123, Payload: []byte("ntp")}.Bytes())
	qTCP4Seg := tuple.Segment{Tuple: segTuple(segLocal4, 80, segPeer4, 40000), Seq: 0xdeadbeef,
		Proto: tuple.ProtoTCP, Version: 4}
	qUDP4Seg := tuple.Segment{Tuple: segTuple(segLocal4, 53, segPeer4, 5353), Proto: tuple.ProtoUDP, Version: 4}
	qTCP6Seg := tuple.Segment{Tuple: segTuple(segLocal6, 443, segPeer6, 50000), Seq: 0xfeedface,
		Proto: tuple.ProtoTCP, Version: 6}
	qUDP6Seg := tuple.Segment{Tuple: segTuple(segLocal6, 123, segPeer6, 1123), Proto: tuple.ProtoUDP, Version: 6}
	icmpInfo := func(s tuple.Segment, kind tuple.ICMPKind, typ, code uint8, mtu uint32) tuple.Segment {
		s.ICMP, s.MTU = tuple.ICMPInfo{Kind: kind, Type: typ, Code: code}, mtu
		return s
	}
	// Echoes between the peer and the local host, and what they parse to.
	echo4 := func(typ, code uint8, id, seq uint16, data []byte) []byte {
		return pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoICMP}.Packet(pt.ICMPv4(typ, code, uint32(id)<<16|uint32(seq), data))
	}
	echo6 := func(typ, code uint8, id, seq uint16, data []byte, ext ...pt.Ext) []byte {
		return ip6(pt.ProtoICMPv6, pt.ICMPv6(typ, code, uint32(id)<<16|uint32(seq), data), ext...)
	}
	echoSeg := func(v uint8, kind tuple.ICMPKind, typ, code uint8, id, seq uint16, data int) tuple.Segment {
		s := tuple.Segment{Tuple: segTuple(segLocal4, 0, segPeer4, 0), Proto: tuple.ProtoICMP, Version: 4,
			PayloadLen: uint16(data), ICMP: tuple.ICMPInfo{Kind: kind, Type: typ, Code: code, ID: id, Seq: seq}}
		if v == 6 {
			s.Tuple, s.Proto, s.Version = segTuple(segLocal6, 0, segPeer6, 0), tuple.ProtoICMPv6, 6
		}
		return s
	}
	// chain6 is n destination options headers.
	chain6 := func(n int) []pt.Ext {
		ext := make([]pt.Ext, n)
		for i := range ext {
			ext[i] = pt.Ext{Type: pt.ProtoDestOpts}
		}
		return ext
	}

	return []parseCase{
		// Whole-packet rules.
		{name: "empty", pkt: nil, err: tuple.ErrTruncated},
		{name: "one byte v4", pkt: []byte{0x45}, err: tuple.ErrTruncated},
		{name: "one byte v6", pkt: []byte{0x60}, err: tuple.ErrTruncated},
		{name: "version 0", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[0] = 0x05 }), err: tuple.ErrMalformed},
		{name: "version 5", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[0] = 0x55 }), err: tuple.ErrMalformed},
		{name: "version 15", pkt: []byte{0xf0}, err: tuple.ErrMalformed},

		// IPv4 TCP.
		{name: "tcp4 syn mss+ts", pkt: ip4(pt.ProtoTCP, syn), want: synSeg4},
		{name: "tcp4 ack ts payload", pkt: ip4(pt.ProtoTCP, ack), want: ackSeg4},
		{name: "tcp4 no options", pkt: ip4(pt.ProtoTCP, bare), want: bareSeg4},
		{name: "tcp4 ip options skipped", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP,
			Options: []byte{0x94, 4, 0, 0, 1, 1, 1, 0x44, 12, 5, 0, 0, 0, 0, 0, 0}}.Packet(ack), want: ackSeg4},
		{name: "tcp4 ip options max (IHL 15)", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP,
			Options: make([]byte, 40)}.Packet(ack), want: ackSeg4},
		{name: "tcp4 ethernet padding ignored", pkt: append(ip4(pt.ProtoTCP, bare), make([]byte, 6)...), want: bareSeg4},
		{name: "tcp4 garbage after total length ignored", pkt: append(ip4(pt.ProtoTCP, ack), 0xff, 0xff, 0x45, 0x01), want: ackSeg4},
		{name: "tcp4 all flags", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80, Flags: 0xff}.Bytes()),
			want: tuple.Segment{Tuple: t4, Proto: tuple.ProtoTCP, Version: 4,
				Flags: tuple.FIN | tuple.SYN | tuple.RST | tuple.PSH | tuple.ACK | tuple.URG | tuple.ECE | tuple.CWR}},
		{name: "tcp4 linux syn options (mss sackok ts nop ws)", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80,
			Seq: 1000, Flags: pt.SYN, Window: 64240,
			Options: []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 10, 11, 12, 13, 1, 3, 3, 7}}.Bytes()),
			want: opts(synSeg4, sackOK, wscale(7))},
		{name: "tcp4 unknown options skipped", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80, Flags: pt.ACK,
			Options: []byte{253, 4, 0xab, 0xcd, 30, 2}}.Bytes()),
			want: tuple.Segment{Tuple: t4, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK}},
		{name: "tcp4 end of options stops parsing", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80, Flags: pt.ACK,
			Options: []byte{1, 0, 8, 3, 0xff, 0xff, 0xff, 0xff}}.Bytes()),
			want: tuple.Segment{Tuple: t4, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK}},
		{name: "tcp4 last timestamp wins", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80, Flags: pt.ACK,
			Options: append(pt.TSOption(1, 2), pt.TSOption(3, 4)...)}.Bytes()),
			want: tuple.Segment{Tuple: t4, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK, TSval: 3, TSecr: 4, HasTimestamps: true}},
		{name: "tcp4 first fragment", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP, MoreFragments: true}.Packet(ack),
			want: with(ackSeg4, func(s *tuple.Segment) { s.FirstFragment = true })},
		{name: "tcp4 DF is not a fragment", pkt: patched(ip4(pt.ProtoTCP, ack), func(b []byte) { b[6] = 0x40 }), want: ackSeg4},
		{name: "tcp4 max ports", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 65535, DstPort: 65535}.Bytes()),
			want: tuple.Segment{Tuple: segTuple(segLocal4, 65535, segPeer4, 65535), Proto: tuple.ProtoTCP, Version: 4}},

		// TCP options: MSS, window scale, SACK-permitted, alone and in the
		// layouts real stacks send, then the malformed ones.
		{name: "tcp option mss", pkt: synOpts(2, 4, 5, 0xb4), want: opts(synBare, mss(1460))},
		{name: "tcp option mss 0 is reported", pkt: synOpts(2, 4, 0, 0), want: opts(synBare, mss(0))},
		{name: "tcp option mss 65535", pkt: synOpts(2, 4, 0xff, 0xff), want: opts(synBare, mss(65535))},
		{name: "tcp option window scale", pkt: synOpts(1, 3, 3, 7), want: opts(synBare, wscale(7))},
		{name: "tcp option window scale 0", pkt: synOpts(3, 3, 0), want: opts(synBare, wscale(0))},
		{name: "tcp option window scale 14", pkt: synOpts(3, 3, 14), want: opts(synBare, wscale(14))},
		{name: "tcp option window scale 15 reported as sent", pkt: synOpts(3, 3, 15), want: opts(synBare, wscale(15))},
		{name: "tcp option window scale 255 reported as sent", pkt: synOpts(3, 3, 255), want: opts(synBare, wscale(255))},
		{name: "tcp option sack permitted", pkt: synOpts(4, 2), want: opts(synBare, sackOK)},
		{name: "tcp option sack permitted aligned", pkt: synOpts(1, 1, 4, 2), want: opts(synBare, sackOK)},
		{name: "tcp options mss ws sackok (windows syn)", pkt: synOpts(2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2),
			want: opts(synBare, mss(1460), wscale(8), sackOK)},
		{name: "tcp options mss sackok ws without timestamps", pkt: synOpts(2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7),
			want: opts(synBare, mss(1460), sackOK, wscale(7))},
		{name: "tcp options mss and window scale", pkt: synOpts(2, 4, 0x05, 0x8c, 1, 3, 3, 2),
			want: opts(synBare, mss(1420), wscale(2))},
		{name: "tcp options ws and timestamps", pkt: synOpts(1, 3, 3, 6, 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0),
			want: opts(synBare, wscale(6), func(s *tuple.Segment) { s.TSval, s.HasTimestamps = 9, true })},
		{name: "tcp options syn-ack (mss sackok ts nop ws)", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80,
			Seq: 3, Ack: 1001, Flags: pt.SYN | pt.ACK, Window: 65160,
			Options: []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 5, 1, 2, 3, 4, 1, 3, 3, 7}}.Bytes()),
			want: tuple.Segment{Tuple: t4, Seq: 3, Ack: 1001, TSval: 5, TSecr: 0x01020304, Window: 65160, MSS: 1460,
				Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN | tuple.ACK, WScale: 7,
				HasTimestamps: true, HasMSS: true, HasWScale: true, SACKPermitted: true}},
		{name: "tcp options on a non-syn segment are reported", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 80,
			Flags: pt.ACK, Options: []byte{2, 4, 2, 0, 3, 3, 1, 4, 2}}.Bytes()),
			want: opts(tuple.Segment{Tuple: t4, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK}, mss(512), wscale(1), sackOK)},
		{name: "tcp option last mss wins", pkt: synOpts(2, 4, 0, 1, 2, 4, 0, 2), want: opts(synBare, mss(2))},
		{name: "tcp option last window scale wins", pkt: synOpts(3, 3, 9, 3, 3, 2), want: opts(synBare, wscale(2))},
		{name: "tcp options after end of list are not read", pkt: synOpts(4, 2, 0, 2, 4, 5, 0xb4, 3, 3, 7),
			want: opts(synBare, sackOK)},
		{name: "tcp options among unknown kinds", pkt: synOpts(254, 4, 0xf9, 0x89, 2, 4, 1, 0, 30, 2, 3, 3, 5),
			want: opts(synBare, mss(256), wscale(5))},
		{name: "tcp option mss length 2 is skipped", pkt: synOpts(2, 2, 1, 1), want: synBare},
		{name: "tcp option mss length 3 is skipped", pkt: synOpts(2, 3, 5, 1), want: synBare},
		{name: "tcp option mss length 6 is skipped", pkt: synOpts(2, 6, 5, 0xb4, 0, 0, 1, 1), want: synBare},
		{name: "tcp option mss cut by option space ends the parse", pkt: synOpts(1, 1, 1, 1, 1, 2, 4, 5), want: synBare},
		{name: "tcp option window scale length 2 is skipped", pkt: synOpts(3, 2, 1, 1), want: synBare},
		{name: "tcp option window scale length 4 is skipped", pkt: synOpts(3, 4, 7, 0), want: synBare},
		{name: "tcp option window scale cut by option space ends the parse", pkt: synOpts(1, 1, 3, 3), want: synBare},
		{name: "tcp option sack permitted length 3 is skipped", pkt: synOpts(4, 3, 0, 1), want: synBare},
		{name: "tcp option sack permitted length 4 is skipped", pkt: synOpts(4, 4, 0, 0), want: synBare},
		{name: "tcp option sack permitted without length ends the parse", pkt: synOpts(1, 1, 1, 4), want: synBare},
		{name: "tcp unreadable option after good ones keeps them", pkt: synOpts(2, 4, 5, 0xb4, 3, 3, 7, 4), want: opts(synBare, mss(1460), wscale(7))},
		{name: "tcp skipped bad-length option before good ones", pkt: synOpts(2, 3, 9, 3, 3, 7, 4, 2), want: opts(synBare, wscale(7), sackOK)},

		// IPv4 header errors.
		{name: "ipv4 header cut", pkt: ip4(pt.ProtoTCP, syn)[:19], err: tuple.ErrTruncated},
		{name: "ipv4 IHL 4", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[0] = 0x44 }), err: tuple.ErrMalformed},
		{name: "ipv4 IHL 0", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[0] = 0x40 }), err: tuple.ErrMalformed},
		{name: "ipv4 total length below IHL", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[0] = 0x46; put16(b, 2, 20) }), err: tuple.ErrMalformed},
		{name: "ipv4 total length 0", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { put16(b, 2, 0) }), err: tuple.ErrMalformed},
		{name: "ipv4 total length beyond packet", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { put16(b, 2, uint16(len(b)+1)) }), err: tuple.ErrTruncated},
		{name: "ipv4 IHL beyond total length", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[0] = 0x4f; put16(b, 2, 40) }), err: tuple.ErrMalformed},
		{name: "ipv4 non-first fragment", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP, FragOffset: 185}.Packet(ack), err: tuple.ErrFragment},
		{name: "ipv4 middle fragment", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP, FragOffset: 1, MoreFragments: true}.Packet(ack), err: tuple.ErrFragment},
		{name: "ipv4 non-first fragment too short for tcp", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP, FragOffset: 1}.Packet([]byte{1, 2, 3}), err: tuple.ErrFragment},
		{name: "ipv4 igmp", pkt: ip4(2, make([]byte, 8)), err: tuple.ErrProtocol},
		{name: "ipv4 esp", pkt: ip4(pt.ProtoESP, make([]byte, 40)), err: tuple.ErrProtocol},
		{name: "ipv4 carrying icmpv6", pkt: ip4(pt.ProtoICMPv6, pt.ICMPv6(pt.ICMPv6Unreachable, 0, 0, qTCP6)), err: tuple.ErrProtocol},

		// TCP header errors.
		{name: "tcp header cut by total length", pkt: ip4(pt.ProtoTCP, bare[:19]), err: tuple.ErrTruncated},
		{name: "tcp header only in padding", pkt: patched(append(ip4(pt.ProtoTCP, bare), make([]byte, 10)...),
			func(b []byte) { put16(b, 2, 20+19) }), err: tuple.ErrTruncated},
		{name: "tcp data offset 4", pkt: patched(ip4(pt.ProtoTCP, bare), func(b []byte) { b[l4at4+12] = 4 << 4 }), err: tuple.ErrMalformed},
		{name: "tcp data offset 0", pkt: patched(ip4(pt.ProtoTCP, bare), func(b []byte) { b[l4at4+12] = 0 }), err: tuple.ErrMalformed},
		{name: "tcp data offset beyond segment", pkt: patched(ip4(pt.ProtoTCP, bare), func(b []byte) { b[l4at4+12] = 6 << 4 }), err: tuple.ErrTruncated},
		{name: "tcp data offset 15 beyond segment", pkt: patched(ip4(pt.ProtoTCP, syn), func(b []byte) { b[l4at4+12] = 15 << 4 }), err: tuple.ErrTruncated},
		{name: "tcp option length 0: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{2, 0, 0, 0}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp option length 1: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{2, 1, 0, 0}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp option past option space: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{1, 2, 4, 0}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp option kind without length: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{1, 1, 1, 2}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp timestamp length 8: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{8, 8, 0, 0, 0, 0, 0, 0}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp timestamp length 12: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp timestamp cut by option space: options ignored, as Linux does", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{1, 1, 1, 1, 8, 10, 0, 0}}.Bytes()), want: tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1), Proto: tuple.ProtoTCP, Version: 4}},
		{name: "tcp source port 0", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 0, DstPort: 80}.Bytes()), err: tuple.ErrPort},
		{name: "tcp destination port 0", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 0}.Bytes()), err: tuple.ErrPort},
		{name: "tcp6 destination port 0", pkt: ip6(pt.ProtoTCP, pt.TCP{SrcPort: 40000, DstPort: 0}.Bytes()), err: tuple.ErrPort},

		// UDP.
		{name: "udp4", pkt: ip4(pt.ProtoUDP, udp), want: udpSeg4},
		{name: "udp4 empty payload", pkt: ip4(pt.ProtoUDP, pt.UDP{SrcPort: 5353, DstPort: 53}.Bytes()),
			want: tuple.Segment{Tuple: u4, Proto: tuple.ProtoUDP, Version: 4}},
		{name: "udp4 ethernet padding ignored", pkt: append(ip4(pt.ProtoUDP, udp), make([]byte, 13)...), want: udpSeg4},
		{name: "udp4 length below ip payload wins", pkt: ip4(pt.ProtoUDP, append(append([]byte(nil), udp...), 0xee, 0xee)), want: udpSeg4},
		{name: "udp4 first fragment", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoUDP, MoreFragments: true}.Packet(
			pt.UDP{SrcPort: 5353, DstPort: 53, Payload: make([]byte, 3000)}.Bytes()[:8+1472]),
			want: tuple.Segment{Tuple: u4, PayloadLen: 1472, Proto: tuple.ProtoUDP, Version: 4, FirstFragment: true}},
		{name: "udp header cut", pkt: ip4(pt.ProtoUDP, udp[:7]), err: tuple.ErrTruncated},
		{name: "udp length 7", pkt: patched(ip4(pt.ProtoUDP, udp), func(b []byte) { put16(b, l4at4+4, 7) }), err: tuple.ErrMalformed},
		{name: "udp length 0", pkt: patched(ip4(pt.ProtoUDP, udp), func(b []byte) { put16(b, l4at4+4, 0) }), err: tuple.ErrMalformed},
		{name: "udp length beyond ip payload", pkt: patched(ip4(pt.ProtoUDP, udp), func(b []byte) { put16(b, l4at4+4, 14) }), err: tuple.ErrTruncated},
		{name: "udp length reaching into padding", pkt: patched(append(ip4(pt.ProtoUDP, udp), 0, 0), func(b []byte) { put16(b, l4at4+4, 15) }), err: tuple.ErrTruncated},
		{name: "udp source port 0", pkt: ip4(pt.ProtoUDP, pt.UDP{SrcPort: 0, DstPort: 53}.Bytes()), err: tuple.ErrPort},
		{name: "udp destination port 0", pkt: ip4(pt.ProtoUDP, pt.UDP{SrcPort: 53, DstPort: 0}.Bytes()), err: tuple.ErrPort},
		{name: "udp6 source port 0", pkt: ip6(pt.ProtoUDP, pt.UDP{SrcPort: 0, DstPort: 53}.Bytes()), err: tuple.ErrPort},

		// IPv6.
		{name: "tcp6", pkt: ip6(pt.ProtoTCP, ack), want: ackSeg6},
		{name: "udp6", pkt: ip6(pt.ProtoUDP, udp), want: udpSeg6},
		{name: "udp6 ethernet padding ignored", pkt: append(ip6(pt.ProtoUDP, udp), 1, 2, 3, 4), want: udpSeg6},
		{name: "tcp6 extension chain", pkt: ip6(pt.ProtoTCP, ack,
			pt.Ext{Type: pt.ProtoHopByHop, Size: 16}, pt.Ext{Type: pt.ProtoDestOpts}, pt.Ext{Type: pt.ProtoRouting, Size: 24},
			pt.Ext{Type: pt.ProtoFragment}, pt.Ext{Type: pt.ProtoAH, Size: 12}, pt.Ext{Type: pt.ProtoDestOpts, Size: 8}),
			want: ackSeg6},
		{name: "tcp6 first fragment", pkt: ip6(pt.ProtoTCP, ack, pt.Ext{Type: pt.ProtoFragment, MoreFragments: true}),
			want: with(ackSeg6, func(s *tuple.Segment) { s.FirstFragment = true })},
		{name: "udp6 first fragment behind hop-by-hop", pkt: ip6(pt.ProtoUDP,
			pt.UDP{SrcPort: 5353, DstPort: 53, Payload: make([]byte, 2000)}.Bytes()[:8+1000],
			pt.Ext{Type: pt.ProtoHopByHop}, pt.Ext{Type: pt.ProtoFragment, MoreFragments: true}),
			want: tuple.Segment{Tuple: u6, PayloadLen: 1000, Proto: tuple.ProtoUDP, Version: 6, FirstFragment: true}},
		{name: "tcp6 atomic fragment is whole", pkt: ip6(pt.ProtoTCP, ack, pt.Ext{Type: pt.ProtoFragment}), want: ackSeg6},
		{name: "tcp6 8 extension headers", pkt: ip6(pt.ProtoTCP, ack, chain6(8)...), want: ackSeg6},
		{name: "ipv6 9 extension headers", pkt: ip6(pt.ProtoTCP, ack, chain6(9)...), err: tuple.ErrMalformed},
		{name: "ipv6 long chain of tiny headers", pkt: ip6(pt.ProtoTCP, ack, chain6(1000)...), err: tuple.ErrMalformed},
		{name: "ipv6 hop-by-hop not first", pkt: ip6(pt.ProtoTCP, ack, pt.Ext{Type: pt.ProtoDestOpts}, pt.Ext{Type: pt.ProtoHopByHop}), err: tuple.ErrMalformed},
		{name: "ipv6 non-first fragment", pkt: ip6(pt.ProtoTCP, ack, pt.Ext{Type: pt.ProtoFragment, FragOffset: 1}), err: tuple.ErrFragment},
		{name: "ipv6 last fragment", pkt: ip6(pt.ProtoTCP, []byte{1, 2}, pt.Ext{Type: pt.ProtoFragment, FragOffset: 8191}), err: tuple.ErrFragment},
		{name: "ipv6 no next header", pkt: ip6(pt.ProtoNoNext, nil, pt.Ext{Type: pt.ProtoDestOpts}), err: tuple.ErrProtocol},
		{name: "ipv6 no next header first", pkt: ip6(pt.ProtoNoNext, []byte{0}), err: tuple.ErrProtocol},
		{name: "ipv6 esp", pkt: ip6(pt.ProtoESP, make([]byte, 40)), err: tuple.ErrProtocol},
		{name: "ipv6 carrying icmpv4", pkt: ip6(pt.ProtoICMP, pt.ICMPv4(pt.ICMPv4Unreachable, 3, 0, qUDP4)), err: tuple.ErrProtocol},
		{name: "ipv6 header cut", pkt: ip6(pt.ProtoTCP, ack)[:39], err: tuple.ErrTruncated},
		{name: "ipv6 payload length 0 (jumbogram)", pkt: patched(ip6(pt.ProtoTCP, ack), func(b []byte) { put16(b, 4, 0) }), err: tuple.ErrMalformed},
		{name: "ipv6 payload length beyond packet", pkt: patched(ip6(pt.ProtoTCP, ack), func(b []byte) { put16(b, 4, uint16(len(b)-40+1)) }), err: tuple.ErrTruncated},
		{name: "ipv6 tcp cut by payload length", pkt: patched(ip6(pt.ProtoTCP, bare), func(b []byte) { put16(b, 4, 19) }), err: tuple.ErrTruncated},
		{name: "ipv6 extension header past payload", pkt: patched(ip6(pt.ProtoTCP, bare, pt.Ext{Type: pt.ProtoDestOpts}),
			func(b []byte) { b[l4at6+1] = 3 }), err: tuple.ErrTruncated},
		{name: "ipv6 extension header under 8 bytes", pkt: ip6(pt.ProtoDestOpts, make([]byte, 7)), err: tuple.ErrTruncated},
		{name: "ipv6 AH past payload", pkt: patched(ip6(pt.ProtoTCP, bare, pt.Ext{Type: pt.ProtoAH}),
			func(b []byte) { b[l4at6+1] = 20 }), err: tuple.ErrTruncated},
		{name: "ipv6 v4-mapped source", pkt: pt.IPv6{Src: pt.V6("::ffff:192.0.2.1"), Dst: pt.Local6, Proto: pt.ProtoTCP}.Packet(ack), err: tuple.ErrMalformed},
		{name: "ipv6 v4-mapped destination", pkt: pt.IPv6{Src: pt.Peer6, Dst: pt.V6("::ffff:198.51.100.2"), Proto: pt.ProtoUDP}.Packet(udp), err: tuple.ErrMalformed},

		// ICMPv4 errors.
		{name: "icmp4 frag needed quoting tcp", pkt: icmp4(pt.ICMPv4Unreachable, 4, 1400, qTCP4[:576-20-8]),
			want: icmpInfo(qTCP4Seg, tuple.ICMPPacketTooBig, 3, 4, 1400)},
		{name: "icmp4 frag needed without mtu (pre-RFC 1191)", pkt: icmp4(pt.ICMPv4Unreachable, 4, 0, qTCP4[:28]),
			want: icmpInfo(qTCP4Seg, tuple.ICMPPacketTooBig, 3, 4, 0)},
		{name: "icmp4 port unreachable quoting udp", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0, qUDP4),
			want: icmpInfo(qUDP4Seg, tuple.ICMPUnreachable, 3, 3, 0)},
		{name: "icmp4 host unreachable quoting 8 tcp bytes", pkt: icmp4(pt.ICMPv4Unreachable, 1, 0, qTCP4[:28]),
			want: icmpInfo(qTCP4Seg, tuple.ICMPUnreachable, 3, 1, 0)},
		{name: "icmp4 time exceeded quoting 8 udp bytes", pkt: icmp4(pt.ICMPv4TimeExceeded, 0, 0, qUDP4[:28]),
			want: icmpInfo(qUDP4Seg, tuple.ICMPTimeExceeded, 11, 0, 0)},
		{name: "icmp4 param problem quoting ip options", pkt: icmp4(pt.ICMPv4ParamProblem, 0, 20<<24,
			pt.IPv4{Src: pt.Local4, Dst: pt.Peer4, Proto: pt.ProtoTCP, Options: []byte{0x07, 7, 4, 0, 0, 0, 0}}.Packet(
				pt.TCP{SrcPort: 80, DstPort: 40000, Seq: 0xdeadbeef}.Bytes())[:28+8]),
			want: icmpInfo(qTCP4Seg, tuple.ICMPParamProblem, 12, 0, 0)},
		{name: "icmp4 quote with mismatched total length", pkt: icmp4(pt.ICMPv4TimeExceeded, 0, 0,
			patched(qUDP4[:28], func(b []byte) { put16(b, 2, 3) })),
			want: icmpInfo(qUDP4Seg, tuple.ICMPTimeExceeded, 11, 0, 0)},
		{name: "icmp4 quoting our first fragment", pkt: icmp4(pt.ICMPv4TimeExceeded, 1, 0,
			patched(qUDP4[:28], func(b []byte) { b[6] = 0x20 })),
			want: icmpInfo(qUDP4Seg, tuple.ICMPTimeExceeded, 11, 1, 0)},
		{name: "icmp4 error in a first fragment", pkt: pt.IPv4{Src: pt.Router4, Dst: pt.Local4, Proto: pt.ProtoICMP, MoreFragments: true}.Packet(
			pt.ICMPv4(pt.ICMPv4Unreachable, 3, 0, qUDP4[:28])),
			want: with(icmpInfo(qUDP4Seg, tuple.ICMPUnreachable, 3, 3, 0), func(s *tuple.Segment) { s.FirstFragment = true })},
		{name: "icmp4 padding ignored", pkt: append(icmp4(pt.ICMPv4Unreachable, 3, 0, qUDP4[:28]), make([]byte, 10)...),
			want: icmpInfo(qUDP4Seg, tuple.ICMPUnreachable, 3, 3, 0)},
		{name: "icmp4 redirect", pkt: icmp4(5, 1, 0, qUDP4), err: tuple.ErrProtocol},
		{name: "icmp4 source quench", pkt: icmp4(4, 0, 0, qUDP4), err: tuple.ErrProtocol},
		{name: "icmp4 timestamp request", pkt: icmp4(13, 0, 0x00010001, make([]byte, 12)), err: tuple.ErrProtocol},
		{name: "icmp4 router advertisement", pkt: icmp4(9, 0, 0x01020708, make([]byte, 8)), err: tuple.ErrProtocol},
		{name: "icmp4 header cut", pkt: ip4(pt.ProtoICMP, []byte{3, 3, 0, 0, 0, 0, 0}), err: tuple.ErrTruncated},
		{name: "icmp4 without quote", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0, nil), err: tuple.ErrTruncated},
		{name: "icmp4 quote cut in ip header", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0, qUDP4[:19]), err: tuple.ErrTruncated},
		{name: "icmp4 quote cut in ip options", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0,
			patched(qUDP4[:22], func(b []byte) { b[0] = 0x46 })), err: tuple.ErrTruncated},
		{name: "icmp4 quote with 7 transport bytes", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0, qUDP4[:27]), err: tuple.ErrTruncated},
		{name: "icmp4 quoting ipv6", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0, qUDP6), err: tuple.ErrMalformed},
		{name: "icmp4 quote IHL 3", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0, patched(qUDP4[:28], func(b []byte) { b[0] = 0x43 })), err: tuple.ErrMalformed},
		{name: "icmp4 quoting a non-first fragment", pkt: icmp4(pt.ICMPv4TimeExceeded, 1, 0,
			patched(qUDP4[:28], func(b []byte) { b[7] = 1 })), err: tuple.ErrFragment},
		{name: "icmp4 quoting icmp", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0,
			sent4(pt.ProtoICMP, pt.ICMPv4(pt.ICMPv4Echo, 0, 1, nil))), err: tuple.ErrProtocol},
		{name: "icmp4 quoting an error about an error", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0,
			sent4(pt.ProtoICMP, pt.ICMPv4(pt.ICMPv4Unreachable, 3, 0, qUDP4))), err: tuple.ErrProtocol},
		{name: "icmp4 quoting sctp", pkt: icmp4(pt.ICMPv4Unreachable, 2, 0, sent4(132, make([]byte, 12))), err: tuple.ErrProtocol},
		{name: "icmp4 quoting source port 0", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0,
			sent4(pt.ProtoUDP, pt.UDP{SrcPort: 0, DstPort: 53}.Bytes())), err: tuple.ErrPort},
		{name: "icmp4 quoting destination port 0", pkt: icmp4(pt.ICMPv4Unreachable, 3, 0,
			sent4(pt.ProtoTCP, pt.TCP{SrcPort: 80, DstPort: 0}.Bytes())), err: tuple.ErrPort},

		// ICMP and ICMPv6 echo: the identifier and sequence number are
		// read, the data counted; the code is reported, not checked.
		{name: "icmp4 echo request", pkt: echo4(pt.ICMPv4Echo, 0, 0x1234, 7, []byte("ping")),
			want: echoSeg(4, tuple.ICMPEchoRequest, 8, 0, 0x1234, 7, 4)},
		{name: "icmp4 echo reply", pkt: echo4(pt.ICMPv4EchoReply, 0, 0xfffe, 0xffff, make([]byte, 56)),
			want: echoSeg(4, tuple.ICMPEchoReply, 0, 0, 0xfffe, 0xffff, 56)},
		{name: "icmp4 echo without data", pkt: echo4(pt.ICMPv4Echo, 0, 0, 0, nil),
			want: echoSeg(4, tuple.ICMPEchoRequest, 8, 0, 0, 0, 0)},
		{name: "icmp4 echo with a nonzero code", pkt: echo4(pt.ICMPv4EchoReply, 9, 1, 2, []byte{1}),
			want: echoSeg(4, tuple.ICMPEchoReply, 0, 9, 1, 2, 1)},
		{name: "icmp4 echo padding ignored", pkt: append(echo4(pt.ICMPv4Echo, 0, 5, 6, []byte("x")), make([]byte, 17)...),
			want: echoSeg(4, tuple.ICMPEchoRequest, 8, 0, 5, 6, 1)},
		{name: "icmp4 echo in a first fragment", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoICMP, MoreFragments: true}.Packet(
			pt.ICMPv4(pt.ICMPv4Echo, 0, 0x00030004, make([]byte, 1472))),
			want: with(echoSeg(4, tuple.ICMPEchoRequest, 8, 0, 3, 4, 1472), func(s *tuple.Segment) { s.FirstFragment = true })},
		{name: "icmp4 echo header cut", pkt: ip4(pt.ProtoICMP, []byte{8, 0, 0, 0, 0, 1, 0}), err: tuple.ErrTruncated},
		{name: "icmp4 echo over ipv6", pkt: ip6(pt.ProtoICMP, pt.ICMPv4(pt.ICMPv4Echo, 0, 1, nil)), err: tuple.ErrProtocol},
		{name: "icmp6 echo request", pkt: echo6(pt.ICMPv6Echo, 0, 0xbeef, 1, []byte("ping6")),
			want: echoSeg(6, tuple.ICMPEchoRequest, 128, 0, 0xbeef, 1, 5)},
		{name: "icmp6 echo reply", pkt: echo6(pt.ICMPv6EchoReply, 0, 0xbeef, 2, make([]byte, 56)),
			want: echoSeg(6, tuple.ICMPEchoReply, 129, 0, 0xbeef, 2, 56)},
		{name: "icmp6 echo behind extension headers", pkt: echo6(pt.ICMPv6Echo, 0, 9, 10, []byte("x"),
			pt.Ext{Type: pt.ProtoHopByHop}, pt.Ext{Type: pt.ProtoDestOpts, Size: 16}),
			want: echoSeg(6, tuple.ICMPEchoRequest, 128, 0, 9, 10, 1)},
		{name: "icmp6 echo in a first fragment", pkt: echo6(pt.ICMPv6EchoReply, 0, 1, 1, make([]byte, 1000),
			pt.Ext{Type: pt.ProtoFragment, MoreFragments: true}),
			want: with(echoSeg(6, tuple.ICMPEchoReply, 129, 0, 1, 1, 1000), func(s *tuple.Segment) { s.FirstFragment = true })},
		{name: "icmp6 echo header cut", pkt: ip6(pt.ProtoICMPv6, []byte{128, 0, 0, 0, 0, 1}), err: tuple.ErrTruncated},
		{name: "icmp6 echo over ipv4", pkt: ip4(pt.ProtoICMPv6, pt.ICMPv6(pt.ICMPv6Echo, 0, 1, nil)), err: tuple.ErrProtocol},
		{name: "icmp6 echo after no next header", pkt: ip6(pt.ProtoNoNext, pt.ICMPv6(pt.ICMPv6Echo, 0, 1, nil)), err: tuple.ErrProtocol},

		// ICMPv6 errors.
		{name: "icmp6 packet too big quoting tcp", pkt: icmp6(pt.ICMPv6PacketTooBig, 0, 1280, qTCP6[:1280-48]),
			want: icmpInfo(qTCP6Seg, tuple.ICMPPacketTooBig, 2, 0, 1280)},
		{name: "icmp6 packet too big with 32-bit mtu", pkt: icmp6(pt.ICMPv6PacketTooBig, 0, 0x00012345, qTCP6[:48]),
			want: icmpInfo(qTCP6Seg, tuple.ICMPPacketTooBig, 2, 0, 0x00012345)},
		{name: "icmp6 port unreachable quoting udp", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0, qUDP6),
			want: icmpInfo(qUDP6Seg, tuple.ICMPUnreachable, 1, 4, 0)},
		{name: "icmp6 time exceeded quoting 8 tcp bytes", pkt: icmp6(pt.ICMPv6TimeExceeded, 0, 0, qTCP6[:48]),
			want: icmpInfo(qTCP6Seg, tuple.ICMPTimeExceeded, 3, 0, 0)},
		{name: "icmp6 param problem quoting extension headers", pkt: icmp6(pt.ICMPv6ParamProblem, 1, 40,
			sent6(pt.ProtoUDP, pt.UDP{SrcPort: 123, DstPort: 1123}.Bytes(),
				pt.Ext{Type: pt.ProtoHopByHop}, pt.Ext{Type: pt.ProtoFragment, MoreFragments: true}, pt.Ext{Type: pt.ProtoDestOpts})),
			want: icmpInfo(qUDP6Seg, tuple.ICMPParamProblem, 4, 1, 0)},
		{name: "icmp6 quote with mismatched payload length", pkt: icmp6(pt.ICMPv6Unreachable, 1, 0,
			patched(qTCP6[:48], func(b []byte) { put16(b, 4, 0) })),
			want: icmpInfo(qTCP6Seg, tuple.ICMPUnreachable, 1, 1, 0)},
		{name: "icmp6 unknown error type", pkt: icmp6(5, 0, 0, qUDP6), err: tuple.ErrProtocol},
		{name: "icmp6 unknown error type 127", pkt: icmp6(127, 0, 0, qUDP6), err: tuple.ErrProtocol},
		{name: "icmp6 mld query", pkt: icmp6(130, 0, 0, make([]byte, 16)), err: tuple.ErrProtocol},
		{name: "icmp6 router solicitation", pkt: icmp6(133, 0, 0, nil), err: tuple.ErrProtocol},
		{name: "icmp6 neighbor solicitation", pkt: icmp6(135, 0, 0, pt.Local6[:]), err: tuple.ErrProtocol},
		{name: "icmp6 header cut", pkt: ip6(pt.ProtoICMPv6, []byte{1, 4, 0, 0}), err: tuple.ErrTruncated},
		{name: "icmp6 quote cut in ip header", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0, qUDP6[:39]), err: tuple.ErrTruncated},
		{name: "icmp6 quote cut in extension header", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0,
			sent6(pt.ProtoUDP, pt.UDP{SrcPort: 123, DstPort: 1123}.Bytes(), pt.Ext{Type: pt.ProtoDestOpts, Size: 16})[:40+12]), err: tuple.ErrTruncated},
		{name: "icmp6 quote with 7 transport bytes", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0, qUDP6[:47]), err: tuple.ErrTruncated},
		{name: "icmp6 quoting ipv4", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0, qUDP4), err: tuple.ErrMalformed},
		{name: "icmp6 quoting v4-mapped source", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0,
			pt.IPv6{Src: pt.V6("::ffff:198.51.100.2"), Dst: pt.Peer6, Proto: pt.ProtoUDP}.Packet(pt.UDP{SrcPort: 1, DstPort: 2}.Bytes())), err: tuple.ErrMalformed},
		{name: "icmp6 quoting v4-mapped destination", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0,
			pt.IPv6{Src: pt.Local6, Dst: pt.V6("::ffff:192.0.2.1"), Proto: pt.ProtoUDP}.Packet(pt.UDP{SrcPort: 1, DstPort: 2}.Bytes())), err: tuple.ErrMalformed},
		{name: "icmp6 quoting a non-first fragment", pkt: icmp6(pt.ICMPv6TimeExceeded, 1, 0,
			sent6(pt.ProtoUDP, pt.UDP{SrcPort: 123, DstPort: 1123}.Bytes(), pt.Ext{Type: pt.ProtoFragment, FragOffset: 2})), err: tuple.ErrFragment},
		{name: "icmp6 quoting icmpv6", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0,
			sent6(pt.ProtoICMPv6, pt.ICMPv6(pt.ICMPv6Echo, 0, 1, nil))), err: tuple.ErrProtocol},
		{name: "icmp6 quoting no next header", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0, sent6(pt.ProtoNoNext, make([]byte, 8))), err: tuple.ErrProtocol},
		{name: "icmp6 quoting 9 extension headers", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0,
			sent6(pt.ProtoUDP, pt.UDP{SrcPort: 123, DstPort: 1123}.Bytes(), chain6(9)...)), err: tuple.ErrMalformed},
		{name: "icmp6 quoting port 0", pkt: icmp6(pt.ICMPv6Unreachable, 4, 0,
			sent6(pt.ProtoUDP, pt.UDP{SrcPort: 123, DstPort: 0}.Bytes())), err: tuple.ErrPort},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tuple.Parse(tc.pkt)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, tc.err, err, "Parse returns the sentinel itself")
				require.Zero(t, got, "the zero Segment on error")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, got.Tuple.Is4(), got.Version == 4)
		})
	}
}

// TestParseEverySentinel guards the table: each sentinel Parse can return
// has a case, and so does each ICMP kind.
func TestParseEverySentinel(t *testing.T) {
	errs := map[error]bool{}
	kinds := map[tuple.ICMPKind]bool{}
	for _, tc := range parseCases() {
		errs[tc.err] = true
		kinds[tc.want.ICMP.Kind] = true
	}
	for _, e := range []error{nil, tuple.ErrTruncated, tuple.ErrMalformed, tuple.ErrFragment, tuple.ErrProtocol, tuple.ErrPort} {
		require.True(t, errs[e], "no case returns %v", e)
	}
	for k := tuple.ICMPNone; k <= tuple.ICMPEchoReply; k++ {
		require.True(t, kinds[k], "no case yields ICMP kind %v", k)
	}
}

// validPackets returns every packet Parse accepts: the table's and
// pkttest's samples.
func validPackets() []parseCase {
	var out []parseCase
	for _, tc := range parseCases() {
		if tc.err == nil {
			out = append(out, tc)
		}
	}
	for _, s := range pt.Samples() {
		out = append(out, parseCase{name: s.Name, pkt: s.Packet})
	}
	return out
}

// TestParseTruncationSweep cuts valid packets at every length: each strict
// prefix is shorter than the IP length field says, so each must be
// ErrTruncated, and none may panic.
func TestParseTruncationSweep(t *testing.T) {
	for _, tc := range validPackets() {
		full, err := tuple.Parse(tc.pkt)
		require.NoError(t, err, tc.name)
		// The IP length field ends the packet; beyond it lies padding.
		end := ipLength(tc.pkt)
		for n := 0; n < end; n++ {
			// Cap n: Parse reslicing past the prefix would panic rather
			// than quietly read the rest of the packet.
			got, err := tuple.Parse(tc.pkt[:n:n])
			require.Equalf(t, tuple.ErrTruncated, err, "%s cut to %d of %d bytes", tc.name, n, end)
			require.Zero(t, got)
		}
		for n := end; n <= len(tc.pkt); n++ {
			got, err := tuple.Parse(tc.pkt[:n:n])
			require.NoErrorf(t, err, "%s cut to %d bytes, past its IP length %d", tc.name, n, end)
			require.Equal(t, full, got)
		}
	}
}

// ipLength returns the length of the packet the IP header describes.
func ipLength(p []byte) int {
	if p[0]>>4 == 4 {
		return int(binary.BigEndian.Uint16(p[2:4]))
	}
	return 40 + int(binary.BigEndian.Uint16(p[4:6]))
}

// TestParseQuoteNeedsOnly8TransportBytes cuts the quote of ICMP errors at
// every length, fixing up the outer lengths: below the inner IP header
// plus 8 bytes it is ErrTruncated, from there on the Segment is the same,
// whatever the rest of the quote holds.
func TestParseQuoteNeedsOnly8TransportBytes(t *testing.T) {
	tcpOpts := pt.IPv4{Src: pt.Local4, Dst: pt.Peer4, Proto: pt.ProtoTCP, Options: make([]byte, 8)}.Packet(
		pt.TCP{SrcPort: 80, DstPort: 40000, Seq: 42, Flags: pt.ACK, Options: pt.TSOption(1, 2), Payload: make([]byte, 64)}.Bytes())
	udp6 := pt.IPv6{Src: pt.Local6, Dst: pt.Peer6, Proto: pt.ProtoUDP, Ext: []pt.Ext{{Type: pt.ProtoDestOpts}}}.Packet(
		pt.UDP{SrcPort: 123, DstPort: 1123, Payload: make([]byte, 64)}.Bytes())
	for _, q := range []struct {
		name   string
		quote  []byte
		need   int // inner IP header(s) + 8
		wrap   func(quote []byte) []byte
		expect tuple.Segment
	}{
		{"icmp4 tcp with ip options", tcpOpts, 20 + 8 + 8,
			func(q []byte) []byte {
				return pt.IPv4{Src: pt.Router4, Dst: pt.Local4, Proto: pt.ProtoICMP}.Packet(pt.ICMPv4(pt.ICMPv4Unreachable, 1, 0, q))
			},
			tuple.Segment{Tuple: segTuple(segLocal4, 80, segPeer4, 40000), Seq: 42, Proto: tuple.ProtoTCP, Version: 4,
				ICMP: tuple.ICMPInfo{Kind: tuple.ICMPUnreachable, Type: 3, Code: 1}}},
		{"icmp6 udp with destination options", udp6, 40 + 8 + 8,
			func(q []byte) []byte {
				return pt.IPv6{Src: pt.Router6, Dst: pt.Local6, Proto: pt.ProtoICMPv6}.Packet(pt.ICMPv6(pt.ICMPv6TimeExceeded, 0, 0, q))
			},
			tuple.Segment{Tuple: segTuple(segLocal6, 123, segPeer6, 1123), Proto: tuple.ProtoUDP, Version: 6,
				ICMP: tuple.ICMPInfo{Kind: tuple.ICMPTimeExceeded, Type: 3}}},
	} {
		for n := 0; n <= len(q.quote); n++ {
			got, err := tuple.Parse(q.wrap(q.quote[:n]))
			if n < q.need {
				require.Equalf(t, tuple.ErrTruncated, err, "%s: quote of %d bytes", q.name, n)
				continue
			}
			require.NoErrorf(t, err, "%s: quote of %d bytes", q.name, n)
			require.Equal(t, q.expect, got)
		}
	}
}

// TestParseIgnoresTrailingBytes appends bytes of every value after valid
// packets: the IP length field, not the buffer, ends the packet.
func TestParseIgnoresTrailingBytes(t *testing.T) {
	for _, tc := range validPackets() {
		want, err := tuple.Parse(tc.pkt)
		require.NoError(t, err)
		for _, tail := range [][]byte{{0}, {0xff}, make([]byte, 64), {0x45, 0, 0, 20}} {
			got, err := tuple.Parse(append(append([]byte(nil), tc.pkt...), tail...))
			require.NoError(t, err, tc.name)
			require.Equal(t, want, got, tc.name)
		}
	}
}

// TestParseDoesNotKeepPacket checks that a Segment survives the reuse of
// the packet buffer (it holds no slice of it).
func TestParseDoesNotKeepPacket(t *testing.T) {
	for _, s := range pt.Samples() {
		seg, err := tuple.Parse(s.Packet)
		require.NoError(t, err)
		before := seg
		clear(s.Packet)
		require.Equal(t, before, seg)
	}
}

func TestSegmentIsCompactAndPointerFree(t *testing.T) {
	require.False(t, typeinfo.HasPointers(reflect.TypeFor[tuple.Segment]()))
	// The fields after the Tuple take 44 bytes; the Tuple's alignment
	// rounds them up to 48.
	require.Equal(t, unsafe.Sizeof(tuple.Tuple{})+48, unsafe.Sizeof(tuple.Segment{}),
		"Segment grew: keep it small, it is copied per packet")
}

func TestSegmentHelpers(t *testing.T) {
	require.Equal(t, "none", tuple.Flags(0).String())
	require.Equal(t, "SYN", tuple.SYN.String())
	require.Equal(t, "SYN|ACK", (tuple.SYN | tuple.ACK).String())
	require.Equal(t, "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR", tuple.Flags(0xff).String())
	require.True(t, (tuple.SYN | tuple.ACK).Has(tuple.SYN))
	require.True(t, (tuple.SYN | tuple.ACK).Has(tuple.SYN|tuple.ACK))
	require.False(t, tuple.SYN.Has(tuple.SYN|tuple.ACK))

	require.Equal(t, "TCP", tuple.ProtoTCP.String())
	require.Equal(t, "UDP", tuple.ProtoUDP.String())
	require.Equal(t, "ICMP", tuple.ProtoICMP.String())
	require.Equal(t, "ICMPv6", tuple.ProtoICMPv6.String())
	require.Equal(t, "2", tuple.Proto(2).String())

	for k, s := range map[tuple.ICMPKind]string{
		tuple.ICMPNone: "none", tuple.ICMPUnreachable: "unreachable", tuple.ICMPPacketTooBig: "packet-too-big",
		tuple.ICMPTimeExceeded: "time-exceeded", tuple.ICMPParamProblem: "param-problem",
		tuple.ICMPEchoRequest: "echo-request", tuple.ICMPEchoReply: "echo-reply", 9: "9",
	} {
		require.Equal(t, s, k.String())
	}

	for k := tuple.ICMPKind(0); k < 10; k++ {
		s := tuple.Segment{ICMP: tuple.ICMPInfo{Kind: k}}
		isErr := k == tuple.ICMPUnreachable || k == tuple.ICMPPacketTooBig || k == tuple.ICMPTimeExceeded || k == tuple.ICMPParamProblem
		isEcho := k == tuple.ICMPEchoRequest || k == tuple.ICMPEchoReply
		require.Equal(t, isErr, s.IsICMPError(), "%v", k)
		require.Equal(t, isEcho, s.IsICMPEcho(), "%v", k)
	}
	require.Equal(t, 14, tuple.MaxWindowScale)
}

// TestParseSampleSYNOptions checks the SYN samples, in the layouts Linux
// sends, against what their options say.
func TestParseSampleSYNOptions(t *testing.T) {
	samples := map[string][]byte{}
	for _, s := range pt.Samples() {
		samples[s.Name] = s.Packet
	}
	syn, err := tuple.Parse(samples["tcp4-syn-linux-options"])
	require.NoError(t, err)
	require.Equal(t, tuple.Segment{Tuple: segTuple(segLocal4, 80, segPeer4, 40000), Seq: 1000, TSval: 12345, Window: 64240,
		MSS: 1460, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, WScale: 7,
		HasTimestamps: true, HasMSS: true, HasWScale: true, SACKPermitted: true}, syn)
	synAck, err := tuple.Parse(samples["tcp6-synack-options"])
	require.NoError(t, err)
	require.Equal(t, tuple.Segment{Tuple: segTuple(segLocal6, 443, segPeer6, 40000), Seq: 9, Ack: 77, Window: 65535,
		MSS: 1440, Proto: tuple.ProtoTCP, Version: 6, Flags: tuple.SYN | tuple.ACK, WScale: 9,
		HasMSS: true, HasWScale: true, SACKPermitted: true}, synAck)
}
