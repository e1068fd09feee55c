// Package pkttest builds IPv4 and IPv6 packets byte by byte, for the tests
// and fuzz targets of socktable (tuple.Parse above all). It is test
// support: it panics on impossible requests (an IPv4 option block that
// does not fit) instead of returning errors, and it favours plain,
// checkable layouts over speed.
//
// A packet is built inside out: the transport header first (TCP.Bytes,
// UDP.Bytes, or an ICMP error with ICMPv4 / ICMPv6 around a quoted
// packet), then the IP header around it (IPv4.Packet, IPv6.Packet).
// Length fields are filled in; tests that need an inconsistent packet
// overwrite bytes of the result. Only the IPv4 header checksum is
// computed: transport and ICMP checksums are left 0, since the code under
// test does not verify them.
package pkttest

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers and IPv6 extension header types.
const (
	ProtoHopByHop = 0  // IPv6 hop-by-hop options
	ProtoICMP     = 1  // ICMP for IPv4
	ProtoTCP      = 6  // TCP
	ProtoUDP      = 17 // UDP
	ProtoRouting  = 43 // IPv6 routing header
	ProtoFragment = 44 // IPv6 fragment header
	ProtoESP      = 50 // IPsec ESP (not parsed by socktable)
	ProtoAH       = 51 // IPsec authentication header
	ProtoICMPv6   = 58 // ICMPv6
	ProtoNoNext   = 59 // IPv6 no next header
	ProtoDestOpts = 60 // IPv6 destination options
)

// ICMP (RFC 792) and ICMPv6 (RFC 4443) message types.
const (
	ICMPv4EchoReply    = 0
	ICMPv4Unreachable  = 3 // code 4: fragmentation needed, next-hop MTU in rest
	ICMPv4Echo         = 8
	ICMPv4TimeExceeded = 11
	ICMPv4ParamProblem = 12

	ICMPv6Unreachable  = 1
	ICMPv6PacketTooBig = 2 // MTU in rest
	ICMPv6TimeExceeded = 3
	ICMPv6ParamProblem = 4
	ICMPv6Echo         = 128
	ICMPv6EchoReply    = 129
)

// TCP flag bits, as in the header's 14th byte.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
	URG = 0x20
	ECE = 0x40
	CWR = 0x80
)

// V4 parses an IPv4 address; it panics on bad input.
func V4(s string) [4]byte { return netip.MustParseAddr(s).As4() }

// V6 parses an IPv6 address (or an IPv4 one, returned v4-mapped); it
// panics on bad input.
func V6(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// TCP is a TCP segment to build.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	// Options is the raw option space; Bytes pads it with zero bytes
	// (end of option list) to a multiple of 4 and sets the data offset.
	Options []byte
	Payload []byte
}

// Bytes returns the TCP header, options and payload.
func (t TCP) Bytes() []byte {
	opts := pad(t.Options, 4)
	hlen := 20 + len(opts)
	b := make([]byte, hlen, hlen+len(t.Payload))
	binary.BigEndian.PutUint16(b[0:], t.SrcPort)
	binary.BigEndian.PutUint16(b[2:], t.DstPort)
	binary.BigEndian.PutUint32(b[4:], t.Seq)
	binary.BigEndian.PutUint32(b[8:], t.Ack)
	b[12] = byte(hlen/4) << 4
	b[13] = t.Flags
	binary.BigEndian.PutUint16(b[14:], t.Window)
	copy(b[20:], opts)
	return append(b, t.Payload...)
}

// TSOption returns the timestamp option (RFC 7323) preceded by two NOPs,
// the 12-byte layout Linux and most stacks send.
func TSOption(val, ecr uint32) []byte {
	b := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], val)
	binary.BigEndian.PutUint32(b[8:], ecr)
	return b
}

// MSSOption returns the 4-byte maximum segment size option.
func MSSOption(mss uint16) []byte { return []byte{2, 4, byte(mss >> 8), byte(mss)} }

// WScaleOption returns the 3-byte window scale option (RFC 7323).
func WScaleOption(shift uint8) []byte { return []byte{3, 3, shift} }

// SACKPermittedOption returns the 2-byte SACK-permitted option (RFC 2018).
func SACKPermittedOption() []byte { return []byte{4, 2} }

// UDP is a UDP datagram to build.
type UDP struct {
	SrcPort, DstPort uint16
	Payload          []byte
}

// Bytes returns the UDP header, with its length field set, and payload.
func (u UDP) Bytes() []byte {
	b := make([]byte, 8, 8+len(u.Payload))
	binary.BigEndian.PutUint16(b[0:], u.SrcPort)
	binary.BigEndian.PutUint16(b[2:], u.DstPort)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(u.Payload)))
	return append(b, u.Payload...)
}

// IPv4 is an IPv4 header to build.
type IPv4 struct {
	Src, Dst [4]byte
	Proto    uint8
	// Options is the raw option space; Packet pads it with zero bytes
	// (end of option list) to a multiple of 4. At most 40 bytes.
	Options []byte
	// MoreFragments sets MF; FragOffset is the fragment offset in 8-byte
	// units.
	MoreFragments bool
	FragOffset    uint16
	TTL           uint8 // 0 means 64
}

// Packet returns the IPv4 header, with its IHL, total length and header
// checksum set, followed by payload.
func (h IPv4) Packet(payload []byte) []byte {
	opts := pad(h.Options, 4)
	if len(opts) > 40 {
		panic("pkttest: IPv4 options longer than 40 bytes")
	}
	hlen := 20 + len(opts)
	b := make([]byte, hlen, hlen+len(payload))
	b[0] = 0x40 | byte(hlen/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hlen+len(payload)))
	frag := h.FragOffset & 0x1fff
	if h.MoreFragments {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = h.TTL
	if b[8] == 0 {
		b[8] = 64
	}
	b[9] = h.Proto
	copy(b[12:], h.Src[:])
	copy(b[16:], h.Dst[:])
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[10:], checksum(b))
	return append(b, payload...)
}

// Ext is an IPv6 extension header to build.
type Ext struct {
	// Type is the header's own type: ProtoHopByHop, ProtoRouting,
	// ProtoDestOpts, ProtoAH or ProtoFragment.
	Type uint8
	// Size is the header's length in bytes: a multiple of 8, at least 8,
	// for hop-by-hop, routing and destination options (0 means 8); a
	// multiple of 4, at least 12, for AH (0 means 24: a 96-bit ICV). A
	// fragment header is always 8 bytes.
	Size int
	// FragOffset (in 8-byte units) and MoreFragments fill a fragment
	// header.
	FragOffset    uint16
	MoreFragments bool
}

// IPv6 is an IPv6 header, with its extension headers, to build.
type IPv6 struct {
	Src, Dst [16]byte
	// Proto is the upper-layer protocol, the next header after the last
	// extension header.
	Proto    uint8
	Ext      []Ext
	HopLimit uint8 // 0 means 64
}

// Packet returns the IPv6 header, with its payload length and next
// header chain set, the extension headers, and payload.
func (h IPv6) Packet(payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload)+8*len(h.Ext))
	b[0] = 0x60
	b[7] = h.HopLimit
	if b[7] == 0 {
		b[7] = 64
	}
	copy(b[8:], h.Src[:])
	copy(b[24:], h.Dst[:])
	nextAt := 6 // where the next header value goes
	for _, e := range h.Ext {
		b[nextAt] = e.Type
		nextAt = len(b)
		b = append(b, e.bytes()...)
	}
	b[nextAt] = h.Proto
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

// bytes returns the extension header with a zero next header field.
func (e Ext) bytes() []byte {
	switch e.Type {
	case ProtoFragment:
		b := make([]byte, 8)
		w := e.FragOffset << 3
		if e.MoreFragments {
			w |= 1
		}
		binary.BigEndian.PutUint16(b[2:], w)
		binary.BigEndian.PutUint32(b[4:], 0x5eed) // identification
		return b
	case ProtoAH:
		n := e.Size
		if n == 0 {
			n = 24
		}
		b := make([]byte, n)
		b[1] = byte(n/4 - 2)
		binary.BigEndian.PutUint32(b[4:], 0x100) // SPI
		binary.BigEndian.PutUint32(b[8:], 1)     // sequence number
		return b
	default: // hop-by-hop, routing, destination options
		n := e.Size
		if n == 0 {
			n = 8
		}
		b := make([]byte, n)
		b[1] = byte(n/8 - 1)
		if e.Type != ProtoRouting {
			b[2], b[3] = 1, byte(n-4) // one PadN option fills the header
		}
		return b
	}
}

// ICMPv4 returns an ICMP message: type, code, a zero checksum, the 4-byte
// rest of header (the next-hop MTU of a "fragmentation needed" in its low
// 16 bits, an echo's identifier in its high and sequence number in its low
// 16 bits) and the quoted packet (or an echo's data).
func ICMPv4(typ, code uint8, rest uint32, quote []byte) []byte { return icmp(typ, code, rest, quote) }

// ICMPv6 returns an ICMPv6 message laid out as ICMPv4 does it (rest is the
// MTU of a packet too big, for instance).
func ICMPv6(typ, code uint8, rest uint32, quote []byte) []byte { return icmp(typ, code, rest, quote) }

func icmp(typ, code uint8, rest uint32, quote []byte) []byte {
	b := make([]byte, 8, 8+len(quote))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	return append(b, quote...)
}

// pad returns b extended with zero bytes to a multiple of n.
func pad(b []byte, n int) []byte {
	out := append([]byte(nil), b...)
	for len(out)%n != 0 {
		out = append(out, 0)
	}
	return out
}

// checksum returns the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
