package tuple

import "encoding/binary"

// IP protocol numbers (IPv6 next header values) Parse recognises.
const (
	protoHopByHop = 0  // IPv6 hop-by-hop options, RFC 8200 section 4.3
	protoICMP     = 1  // ICMP, RFC 792
	protoTCP      = 6  // TCP
	protoUDP      = 17 // UDP
	protoRouting  = 43 // IPv6 routing header, RFC 8200 section 4.4
	protoFragment = 44 // IPv6 fragment header, RFC 8200 section 4.5
	protoAH       = 51 // authentication header, RFC 4302
	protoICMPv6   = 58 // ICMPv6, RFC 4443
	protoNoNext   = 59 // IPv6 no next header
	protoDestOpts = 60 // IPv6 destination options, RFC 8200 section 4.6
)

// Header sizes and limits.
const (
	ipv4MinHeader = 20 // IPv4 header without options (IHL 5)
	ipv6Header    = 40 // fixed IPv6 header
	ipv6MinExt    = 8  // every IPv6 extension header is at least 8 bytes
	tcpMinHeader  = 20 // TCP header without options (data offset 5)
	udpHeader     = 8
	icmpHeader    = 8 // type, code, checksum, 4-byte rest of header

	// quotedTransport is how much of the quoted packet's transport header
	// an ICMP error is sure to carry: RFC 792 promises only the IP header
	// and 8 bytes of data (RFC 1812 and RFC 4443 ask for more, but old
	// routers still send 8). The TCP ports and sequence number and the
	// whole UDP header fit.
	quotedTransport = 8

	// maxExtHeaders bounds the IPv6 extension header chain. RFC 8200 allows
	// each header once (destination options twice), so 8 is more than any
	// legitimate packet carries, and a crafted chain of tiny headers
	// cannot make Parse walk a whole jumbo packet 8 bytes at a time.
	maxExtHeaders = 8
)

// Field masks.
const (
	ipv4MoreFragments = 0x2000 // MF bit of the IPv4 flags+offset word
	ipv4FragOffset    = 0x1fff // fragment offset, in 8-byte units
	ipv6MoreFragments = 0x0001 // M bit of the fragment header's offset word
	ipv6FragOffsetSh  = 3      // the offset is the word's top 13 bits
)

// TCP option kinds and the lengths of those Parse reads: RFC 9293 section
// 3.2, RFC 7323, RFC 2018.
const (
	tcpOptEnd           = 0
	tcpOptNOP           = 1
	tcpOptMSS           = 2
	tcpOptMSSLen        = 4 // kind, length, 16-bit MSS
	tcpOptWScale        = 3
	tcpOptWScaleLen     = 3 // kind, length, shift count
	tcpOptSACKPermitted = 4
	tcpOptSACKPermLen   = 2 // kind, length
	tcpOptTimestamps    = 8
	tcpOptTSLen         = 10 // kind, length, TSval, TSecr

	// tcpOptAlignedTS is NOP, NOP, kind 8, length 10 as one big-endian
	// word: the aligned timestamp layout.
	tcpOptAlignedTS = tcpOptNOP<<24 | tcpOptNOP<<16 | tcpOptTimestamps<<8 | tcpOptTSLen
)

// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) error and echo types, codes and
// field offsets.
const (
	icmpv4EchoReply     = 0
	icmpv4EchoRequest   = 8
	icmpv6EchoRequest   = 128
	icmpv6EchoReply     = 129
	icmpEchoIDOff       = 4 // 16-bit identifier, then the 16-bit sequence number
	icmpv4Unreachable   = 3
	icmpv4FragNeeded    = 4 // code of type 3: fragmentation needed and DF set
	icmpv4TimeExceeded  = 11
	icmpv4ParamProblem  = 12
	icmpv6Unreachable   = 1
	icmpv6PacketTooBig  = 2
	icmpv6TimeExceeded  = 3
	icmpv6ParamProblem  = 4
	icmpv4NextHopMTUOff = 6 // 16-bit next-hop MTU, RFC 1191
	icmpv6MTUOff        = 4 // 32-bit MTU
)

// Parse reads one IPv4 or IPv6 packet, starting at the IP header (no
// link-layer header), carrying TCP or UDP, an ICMP or ICMPv6 error that
// quotes a TCP or UDP packet, or an ICMP or ICMPv6 echo request or reply,
// and returns its Segment as the receiver sees it: Tuple.Local is the
// destination, Tuple.Remote the source (for an ICMP error, the quoted
// packet's flow; see Segment).
//
// Parse never panics, never reads outside packet, allocates nothing and
// keeps no reference to packet. On error it returns the zero Segment and
// one of the sentinels:
//
//   - ErrTruncated: packet ends before a header does, or is shorter than
//     an IP or UDP length field says it is; an ICMP error whose quote
//     stops before the quoted IP header and 8 transport bytes.
//   - ErrMalformed: an unknown IP version; header fields that contradict
//     each other (IPv4 IHL below 5 or beyond the total length, TCP data
//     offset below 5, UDP length below 8, more than 8 IPv6 extension
//     headers, a hop-by-hop header that is not first, an ICMP error quoting
//     the other IP version); an IPv6 jumbogram (payload length 0,
//     not supported); or an IPv6 header, received or quoted, with a
//     v4-mapped source or destination, which would alias an IPv4 flow.
//   - ErrFragment: a non-first fragment, received or quoted, which has no
//     transport header.
//   - ErrProtocol: neither TCP nor UDP, nor an ICMP error about one, nor an
//     echo (other ICMP messages, an error quoting ICMP, ICMPv6 over IPv4
//     or ICMPv4 over IPv6, IPv6 "no next header", ESP).
//   - ErrPort: a source or destination port of 0, received or quoted. UDP
//     allows source port 0 for one-way datagrams (RFC 768), but no
//     socket table can key a flow on it, so Parse refuses it like TCP's.
//
// TCP options never make an error: an option Parse cannot read is
// skipped, or ends the reading of the options, as in Linux (see
// parseTCPOptions), and the segment is returned without it.
//
// Where a packet breaks several rules, which sentinel it gets is not part
// of the contract, except that a valid packet cut anywhere before the end
// its IP length field gives is always ErrTruncated (ParseHeaders accepts
// such a packet once its headers are whole).
//
// Bytes after the IP length (IPv4 total length, IPv6 payload length) are
// link-layer padding (Ethernet pads frames to 60 bytes) and are ignored.
// The first fragment of a fragmented packet is parsed, and marked
// FirstFragment.
//
// Of the TCP options Parse reads the MSS, window scale, SACK-permitted and
// timestamp options; others are skipped, and an end-of-option-list stops
// the walk. When an option appears twice the last one wins, as in Linux's
// tcp_parse_options. The first three are reported on any segment that
// carries them, although RFC 9293 and RFC 7323 give them a meaning only
// in a SYN, and Linux reads them only there: a stack ignores them on
// other segments.
//
// Parse verifies no checksum: the IPv4 header, TCP, UDP and ICMP checksums
// are left to the stack, which checks them itself or trusts the NIC's
// receive offload, usually before it demultiplexes. Nor does it check
// addresses (broadcast, multicast, martians): that is routing policy.
//
// Parse and ParseHeaders keep no state: any number of goroutines may call
// them at once, each is wait-free, and a buffer no one writes may be
// parsed by several goroutines together.
func Parse(packet []byte) (Segment, error) { return parse(packet, false) }

// ParseHeaders is Parse for a buffer that may end after the headers: a
// capture cut at its snap length, the header half of a header-split
// receive, the head of a GRO packet. The packet's headers must all be in
// the buffer: the IP header with its options or extension headers, the
// TCP header with its options, the UDP header, the ICMP header, and for an
// ICMP error the quoted IP header and 8 transport bytes; a buffer that ends
// inside them is ErrTruncated, as are headers running past the IP length
// field. What follows the headers may be cut anywhere.
//
// Every other rule of Parse holds unchanged, with the same sentinels.
// PayloadLen comes from the length fields, as in Parse, not from the bytes
// present: the IP payload length less the headers, or for UDP the UDP
// length less 8, which must still fit in the IP payload the IP header
// declares (except in a first fragment). An aggregate longer than an IP
// length field can say (BIG TCP, with a zero IPv4 total length or IPv6
// payload length) is ErrMalformed, as in Parse. The Segment is marked
// HeadersOnly when the buffer ends before the IP length field says the
// packet does.
//
// For a buffer holding the whole packet ParseHeaders returns exactly what
// Parse returns; for a packet cut after its headers it returns what Parse
// returns for the whole packet, with HeadersOnly set. Like Parse it
// verifies no checksum (the missing payload would make that impossible),
// allocates nothing and keeps no reference to packet.
func ParseHeaders(packet []byte) (Segment, error) { return parse(packet, true) }

// parse is Parse, or ParseHeaders when headersOnly is set.
func parse(packet []byte, headersOnly bool) (s Segment, err error) {
	if len(packet) == 0 {
		return Segment{}, ErrTruncated
	}
	switch packet[0] >> 4 {
	case 4:
		err = s.parseIPv4(packet, headersOnly)
	case 6:
		err = s.parseIPv6(packet, headersOnly)
	default:
		return Segment{}, ErrMalformed
	}
	if err != nil {
		return Segment{}, err
	}
	return s, nil
}

// The parsers below take a header's bytes as b, the part of the packet
// present in the buffer (never past the IP length), and its length n as
// the IP header declares it; n > len(b) only for ParseHeaders on a cut
// buffer. Headers are read from b; payload lengths come from n.

// parseIPv4 parses a received IPv4 packet (version already checked).
func (s *Segment) parseIPv4(p []byte, headersOnly bool) error {
	hlen, err := ipv4HeaderLen(p)
	if err != nil {
		return err
	}
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if total < hlen {
		return ErrMalformed
	}
	end := total
	if total > len(p) {
		if !headersOnly || hlen > len(p) {
			return ErrTruncated
		}
		s.HeadersOnly = true
		end = len(p)
	}
	if s.FirstFragment, err = ipv4Fragment(p); err != nil {
		return err
	}
	s.Version = 4
	src, dst := ipv4Addrs(p)
	// Slicing to the total length drops the link layer's padding.
	body, n := p[hlen:end], total-hlen
	if p[9] == protoICMP {
		return s.parseICMPv4(src, dst, body, n)
	}
	return s.parseTransport(p[9], src, dst, body, n)
}

// ipv4HeaderLen returns the IHL in bytes of the IPv4 header at the start
// of p, which must hold at least the fixed header. It does not check the
// IHL against len(p): the outer and quoted packets bound it differently.
func ipv4HeaderLen(p []byte) (int, error) {
	if len(p) < ipv4MinHeader {
		return 0, ErrTruncated
	}
	hlen := int(p[0]&0x0f) * 4
	if hlen < ipv4MinHeader {
		return 0, ErrMalformed
	}
	return hlen, nil
}

// ipv4Fragment reports whether the IPv4 header in p is a first fragment
// (MF set, offset 0), or returns ErrFragment for a later one.
func ipv4Fragment(p []byte) (first bool, err error) {
	frag := binary.BigEndian.Uint16(p[6:8])
	if frag&ipv4FragOffset != 0 {
		return false, ErrFragment
	}
	return frag&ipv4MoreFragments != 0, nil
}

// ipv4Addrs returns the source and destination of the IPv4 header in p,
// which holds at least ipv4MinHeader bytes.
func ipv4Addrs(p []byte) (src, dst Addr) {
	return AddrFrom4([4]byte(p[12:16])), AddrFrom4([4]byte(p[16:20]))
}

// parseIPv6 parses a received IPv6 packet (version already checked).
func (s *Segment) parseIPv6(p []byte, headersOnly bool) error {
	if len(p) < ipv6Header {
		return ErrTruncated
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if plen == 0 {
		// A jumbogram (RFC 2675) keeps its length in a hop-by-hop option;
		// no stack socktable serves uses them, so refuse rather than trust
		// len(p).
		return ErrMalformed
	}
	end := ipv6Header + plen
	if end > len(p) {
		if !headersOnly {
			return ErrTruncated
		}
		s.HeadersOnly = true
		end = len(p)
	}
	src, dst, err := ipv6Addrs(p)
	if err != nil {
		return err
	}
	// Slicing to the payload length drops the link layer's padding. The
	// extension headers must lie in the bytes present.
	payload := p[ipv6Header:end]
	proto, off, first, err := ipv6Upper(p[6], payload)
	if err != nil {
		return err
	}
	s.Version, s.FirstFragment = 6, first
	body, n := payload[off:], plen-off
	if proto == protoICMPv6 {
		return s.parseICMPv6(src, dst, body, n)
	}
	return s.parseTransport(proto, src, dst, body, n)
}

// ipv6Addrs returns the source and destination of the IPv6 header in p,
// which holds at least ipv6Header bytes, refusing v4-mapped ones: an IPv6
// packet from ::ffff:10.0.0.1 would otherwise be demultiplexed to the
// sockets of the IPv4 flow from 10.0.0.1, since Addr holds IPv4 v4-mapped
// (RFC 4038 section 4.2 asks stacks to drop such packets).
func ipv6Addrs(p []byte) (src, dst Addr, err error) {
	src, dst = AddrFrom16([16]byte(p[8:24])), AddrFrom16([16]byte(p[24:40]))
	if src.Is4() || dst.Is4() {
		return Addr{}, Addr{}, ErrMalformed
	}
	return src, dst, nil
}

// ipv6Upper walks the IPv6 extension headers at the start of b, the first
// of which is next, and returns the upper-layer protocol, its offset in b,
// and whether a fragment header marked a first fragment. It returns
// ErrFragment for a non-first fragment, ErrProtocol for "no next header",
// ErrMalformed for a chain longer than maxExtHeaders or a misplaced
// hop-by-hop header, and ErrTruncated for a header running past b.
func ipv6Upper(next uint8, b []byte) (proto uint8, off int, first bool, err error) {
	for n := 0; ; n++ {
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts, protoAH, protoFragment:
		case protoNoNext:
			return 0, 0, false, ErrProtocol
		default:
			return next, off, first, nil
		}
		if n == maxExtHeaders || (next == protoHopByHop && n != 0) {
			// RFC 8200 section 4.1: hop-by-hop must come right after the
			// IPv6 header.
			return 0, 0, false, ErrMalformed
		}
		h := b[off:]
		if len(h) < ipv6MinExt {
			return 0, 0, false, ErrTruncated
		}
		var hlen int
		switch next {
		case protoFragment:
			word := binary.BigEndian.Uint16(h[2:4])
			if word>>ipv6FragOffsetSh != 0 {
				return 0, 0, false, ErrFragment
			}
			// An atomic fragment (offset 0, M clear; RFC 6946) is a whole
			// packet and is not marked.
			first = first || word&ipv6MoreFragments != 0
			hlen = ipv6MinExt
		case protoAH:
			hlen = (int(h[1]) + 2) * 4 // AH counts 4-byte words, minus 2
		default:
			hlen = (int(h[1]) + 1) * 8 // 8-byte units, not counting the first
		}
		if hlen > len(h) {
			return 0, 0, false, ErrTruncated
		}
		next = h[0]
		off += hlen
	}
}

// parseTransport parses the TCP or UDP header of a received packet from
// src to dst.
func (s *Segment) parseTransport(proto uint8, src, dst Addr, b []byte, n int) error {
	s.Tuple.Local.Addr, s.Tuple.Remote.Addr = dst, src
	switch proto {
	case protoTCP:
		return s.parseTCP(b, n)
	case protoUDP:
		return s.parseUDP(b, n)
	}
	return ErrProtocol
}

// parseTCP parses a TCP header and its options.
func (s *Segment) parseTCP(b []byte, n int) error {
	if len(b) < tcpMinHeader {
		return ErrTruncated
	}
	hlen := int(b[12]>>4) * 4
	if hlen < tcpMinHeader {
		return ErrMalformed
	}
	if hlen > len(b) {
		return ErrTruncated
	}
	s.parseTCPOptions(b[tcpMinHeader:hlen])
	sport, dport, err := ports(b)
	if err != nil {
		return err
	}
	s.Proto = ProtoTCP
	s.Tuple.Local.Port, s.Tuple.Remote.Port = dport, sport
	s.Seq = binary.BigEndian.Uint32(b[4:8])
	s.Ack = binary.BigEndian.Uint32(b[8:12])
	s.Flags = Flags(b[13])
	s.Window = binary.BigEndian.Uint16(b[14:16])
	s.PayloadLen = uint16(n - hlen) // n fits: it comes from a 16-bit IP length field
	return nil
}

// parseTCPOptions reads the MSS, window scale, SACK-permitted and
// timestamp options from a TCP header's option space as Linux's
// tcp_parse_options does: an option of one of those kinds with the wrong
// length is skipped by its length byte, as any unknown option is; a
// length byte below 2 ("silly options") or one that runs past the option
// space ends the parse, keeping what was read before it; a kind byte
// alone at the end does too. None of these makes the segment an error:
// Linux processes such segments, without the options it could not read.
// When an option appears twice the last one wins.
func (s *Segment) parseTCPOptions(o []byte) {
	// Fast path for the layout nearly every stack sends on established
	// connections, NOP NOP TS alone (RFC 7323 appendix A, Linux's
	// tcp_parse_aligned_timestamp).
	if len(o) == 12 && binary.BigEndian.Uint32(o[0:4]) == tcpOptAlignedTS {
		s.TSval = binary.BigEndian.Uint32(o[4:8])
		s.TSecr = binary.BigEndian.Uint32(o[8:12])
		s.HasTimestamps = true
		return
	}
	for i := 0; i < len(o); {
		switch o[i] {
		case tcpOptEnd:
			return
		case tcpOptNOP:
			i++
			continue
		}
		if len(o)-i < 2 {
			return
		}
		n := int(o[i+1])
		if n < 2 || n > len(o)-i {
			return
		}
		opt := o[i : i+n]
		switch {
		case opt[0] == tcpOptMSS && n == tcpOptMSSLen:
			s.MSS = binary.BigEndian.Uint16(opt[2:4])
			s.HasMSS = true
		case opt[0] == tcpOptWScale && n == tcpOptWScaleLen:
			s.WScale = opt[2]
			s.HasWScale = true
		case opt[0] == tcpOptSACKPermitted && n == tcpOptSACKPermLen:
			s.SACKPermitted = true
		case opt[0] == tcpOptTimestamps && n == tcpOptTSLen:
			s.TSval = binary.BigEndian.Uint32(opt[2:6])
			s.TSecr = binary.BigEndian.Uint32(opt[6:10])
			s.HasTimestamps = true
		}
		i += n
	}
}

// parseUDP parses a UDP header.
//
// A UDP length below 8 is ErrMalformed (it cannot cover its own header);
// one above the IP payload length is ErrTruncated, the packet being
// shorter than its header claims, except in a first fragment, where the
// length covers the whole datagram and PayloadLen counts the bytes of this
// fragment. A UDP length below the IP payload is accepted and wins, as in
// Linux (udp_rcv trims the rest).
func (s *Segment) parseUDP(b []byte, n int) error {
	if len(b) < udpHeader {
		return ErrTruncated
	}
	ulen := int(binary.BigEndian.Uint16(b[4:6]))
	if ulen < udpHeader {
		return ErrMalformed
	}
	if ulen > n {
		if !s.FirstFragment {
			return ErrTruncated
		}
		ulen = n
	}
	sport, dport, err := ports(b)
	if err != nil {
		return err
	}
	s.Proto = ProtoUDP
	s.Tuple.Local.Port, s.Tuple.Remote.Port = dport, sport
	s.PayloadLen = uint16(ulen - udpHeader)
	return nil
}

// ports returns the source and destination ports that open both the TCP
// and the UDP header (b holds at least 4 bytes), refusing port 0.
func ports(b []byte) (src, dst uint16, err error) {
	src, dst = binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
	if src == 0 || dst == 0 {
		return 0, 0, ErrPort
	}
	return src, dst, nil
}

// parseICMPv4 parses an ICMP message received over IPv4 from src to dst:
// an echo, or an error it classifies and then the IPv4 packet it quotes;
// anything else is ErrProtocol.
func (s *Segment) parseICMPv4(src, dst Addr, m []byte, n int) error {
	if len(m) < icmpHeader {
		return ErrTruncated
	}
	info := ICMPInfo{Type: m[0], Code: m[1]}
	switch info.Type {
	case icmpv4EchoRequest:
		s.parseEcho(ProtoICMP, ICMPEchoRequest, src, dst, m, n)
		return nil
	case icmpv4EchoReply:
		s.parseEcho(ProtoICMP, ICMPEchoReply, src, dst, m, n)
		return nil
	case icmpv4Unreachable:
		info.Kind = ICMPUnreachable
		if info.Code == icmpv4FragNeeded {
			info.Kind = ICMPPacketTooBig
			s.MTU = uint32(binary.BigEndian.Uint16(m[icmpv4NextHopMTUOff : icmpv4NextHopMTUOff+2]))
		}
	case icmpv4TimeExceeded:
		info.Kind = ICMPTimeExceeded
	case icmpv4ParamProblem:
		info.Kind = ICMPParamProblem
	default:
		return ErrProtocol
	}
	s.ICMP = info
	return s.parseQuotedIPv4(m[icmpHeader:])
}

// parseICMPv6 parses an ICMPv6 message received from src to dst: an echo,
// or an error it classifies and then the IPv6 packet it quotes; other
// informational messages (type 128 and up) and unknown errors are
// ErrProtocol.
func (s *Segment) parseICMPv6(src, dst Addr, m []byte, n int) error {
	if len(m) < icmpHeader {
		return ErrTruncated
	}
	info := ICMPInfo{Type: m[0], Code: m[1]}
	switch info.Type {
	case icmpv6EchoRequest:
		s.parseEcho(ProtoICMPv6, ICMPEchoRequest, src, dst, m, n)
		return nil
	case icmpv6EchoReply:
		s.parseEcho(ProtoICMPv6, ICMPEchoReply, src, dst, m, n)
		return nil
	case icmpv6Unreachable:
		info.Kind = ICMPUnreachable
	case icmpv6PacketTooBig:
		info.Kind = ICMPPacketTooBig
		s.MTU = binary.BigEndian.Uint32(m[icmpv6MTUOff : icmpv6MTUOff+4])
	case icmpv6TimeExceeded:
		info.Kind = ICMPTimeExceeded
	case icmpv6ParamProblem:
		info.Kind = ICMPParamProblem
	default:
		return ErrProtocol
	}
	s.ICMP = info
	return s.parseQuotedIPv6(m[icmpHeader:])
}

// parseEcho fills s from an ICMP or ICMPv6 echo message m (at least the
// 8-byte header) of n bytes, received from src to dst: the addresses as
// for TCP, no ports, the identifier and sequence number in ICMP.
func (s *Segment) parseEcho(proto Proto, kind ICMPKind, src, dst Addr, m []byte, n int) {
	s.Proto = proto
	s.Tuple.Local.Addr, s.Tuple.Remote.Addr = dst, src
	s.ICMP = ICMPInfo{Kind: kind, Type: m[0], Code: m[1],
		ID:  binary.BigEndian.Uint16(m[icmpEchoIDOff : icmpEchoIDOff+2]),
		Seq: binary.BigEndian.Uint16(m[icmpEchoIDOff+2 : icmpEchoIDOff+4])}
	s.PayloadLen = uint16(n - icmpHeader)
}

// parseQuotedIPv4 parses the IPv4 packet quoted by an ICMP error. The quote
// is cut short by design, so the total length field is not checked against
// it; only the header (IHL) and 8 transport bytes must be present.
func (s *Segment) parseQuotedIPv4(q []byte) error {
	if len(q) > 0 && q[0]>>4 != 4 {
		return ErrMalformed // an ICMPv4 error can only quote IPv4
	}
	hlen, err := ipv4HeaderLen(q)
	if err != nil {
		return err
	}
	if hlen > len(q) {
		return ErrTruncated
	}
	// The quoted packet may itself be a first fragment; that says nothing
	// about the received one, so only a later fragment matters.
	if _, err := ipv4Fragment(q); err != nil {
		return err
	}
	src, dst := ipv4Addrs(q)
	return s.parseQuotedTransport(q[9], src, dst, q[hlen:])
}

// parseQuotedIPv6 parses the IPv6 packet quoted by an ICMPv6 error; as for
// IPv4, its payload length is not checked against the quote.
func (s *Segment) parseQuotedIPv6(q []byte) error {
	if len(q) > 0 && q[0]>>4 != 6 {
		return ErrMalformed // an ICMPv6 error can only quote IPv6
	}
	if len(q) < ipv6Header {
		return ErrTruncated
	}
	src, dst, err := ipv6Addrs(q)
	if err != nil {
		return err
	}
	proto, off, _, err := ipv6Upper(q[6], q[ipv6Header:])
	if err != nil {
		return err
	}
	return s.parseQuotedTransport(proto, src, dst, q[ipv6Header+off:])
}

// parseQuotedTransport reads the first 8 bytes of the transport header of
// a packet this host sent from src to dst, as quoted by an ICMP error:
// the ports, and for TCP the sequence number. Nothing beyond 8 bytes is
// read, even when the quote holds more.
func (s *Segment) parseQuotedTransport(proto uint8, src, dst Addr, t []byte) error {
	if proto != protoTCP && proto != protoUDP {
		return ErrProtocol // including a quoted ICMP message: no error about an error
	}
	if len(t) < quotedTransport {
		return ErrTruncated
	}
	sport, dport, err := ports(t)
	if err != nil {
		return err
	}
	s.Proto = Proto(proto)
	// The quoted packet is ours: its source is our end.
	s.Tuple = Tuple{Local: Endpoint{Addr: src, Port: sport}, Remote: Endpoint{Addr: dst, Port: dport}}
	if proto == protoTCP {
		s.Seq = binary.BigEndian.Uint32(t[4:8])
	}
	return nil
}
