package tuple

import "strconv"

// Segment is what Parse extracts from one received packet: the four-tuple
// and the transport fields a TCP or UDP stack's demultiplexer needs before
// it has found the socket (the flags that pick the listener or the
// established path, the sequence numbers a SYN cookie or a TIME-WAIT check
// reads, the timestamps PAWS compares, the options a SYN handler answers).
//
// A Segment is a comparable value with no pointers (a Tuple and 48 bytes,
// 4 of them padding): it holds no slice into the packet, so the packet
// buffer can be reused as soon as Parse returns, and a Segment can be
// queued or compared with ==.
//
// For an ICMP or ICMPv6 error (IsICMPError) the fields describe the quoted
// packet, one this host sent: Tuple is that packet's flow from this host's
// point of view, Proto its protocol and Seq its TCP sequence number; Ack,
// Window, Flags, PayloadLen and the TCP options are zero, since a quote
// need hold only the first 8 transport bytes.
//
// For an ICMP or ICMPv6 echo request or reply (IsICMPEcho) Proto is
// ProtoICMP or ProtoICMPv6, Tuple holds the addresses as for TCP (Local the
// packet's destination, this host; Remote its source) with both ports 0,
// ICMP holds the echo identifier and sequence number, PayloadLen counts the
// echo data, and the TCP fields are zero. A connection tracker keys an echo
// by the addresses and ICMP.ID; such a Tuple is not a connection key
// (Tuple.Validate reports ErrPort).
type Segment struct {
	// Tuple is the flow seen from this host: Local is the packet's
	// destination address and port, Remote its source. For an ICMP error it
	// is the quoted packet's flow, Local its source and Remote its
	// destination (the quoted packet is one this host sent).
	Tuple Tuple
	// Seq is the TCP sequence number (of the quoted segment for an ICMP
	// error, which RFC 5927 checks against SND.UNA..SND.NXT); 0 for UDP and
	// for an echo (whose sequence number is ICMP.Seq).
	Seq uint32
	// Ack is the TCP acknowledgment number, meaningful when Flags has ACK.
	Ack uint32
	// TSval and TSecr are the TCP timestamp option's values (RFC 7323),
	// meaningful only when HasTimestamps.
	TSval, TSecr uint32
	// MTU is the next-hop MTU in bytes carried by an ICMPPacketTooBig
	// error: the 16-bit field of an ICMPv4 "fragmentation needed" (0 from
	// a router that predates RFC 1191) or the 32-bit field of an ICMPv6
	// packet too big. It is reported as received, not clamped (RFC 8201
	// leaves plausibility checks to the stack), and is 0 otherwise.
	MTU uint32
	// Window is the raw TCP window field, not scaled: the scale factor
	// belongs to the connection, which the demultiplexer has not found yet.
	Window uint16
	// PayloadLen is the number of transport payload bytes (echo data for an
	// ICMP echo), as the IP length fields give it (never counting
	// link-layer padding after them) and, for UDP, the UDP length field.
	// For a first fragment it counts only the bytes of this fragment. For
	// a Segment from ParseHeaders it may count bytes the buffer lacks (see
	// HeadersOnly).
	PayloadLen uint16
	// MSS is the TCP maximum segment size option's value (RFC 9293 section
	// 3.7.1), meaningful only when HasMSS. It is reported as sent, 0
	// included: a peer that sent no MSS gets the default of 536 (IPv4) or
	// 1220 (IPv6) from the stack, not from Parse.
	MSS uint16
	// Proto is the protocol: ProtoTCP or ProtoUDP (the quoted packet's for
	// an ICMP error), or ProtoICMP or ProtoICMPv6 for an echo.
	Proto Proto
	// Version is the IP version, 4 or 6; it always agrees with
	// Tuple.Is4().
	Version uint8
	// Flags are the TCP header flags; 0 for UDP, ICMP errors and echoes.
	Flags Flags
	// WScale is the TCP window scale option's shift count (RFC 7323 section
	// 2), meaningful only when HasWScale. It is reported as sent, even
	// above MaxWindowScale: RFC 7323 section 2.3 has the receiver use 14
	// instead and log the error, and both are the stack's to do.
	WScale uint8
	// HasTimestamps reports that the TCP header carried a well-formed
	// timestamp option, so TSval and TSecr are meaningful.
	HasTimestamps bool
	// HasMSS reports that the TCP header carried a maximum segment size
	// option, so MSS is meaningful.
	HasMSS bool
	// HasWScale reports that the TCP header carried a window scale option,
	// so WScale is meaningful; without it the connection does not scale
	// windows in either direction (RFC 7323 section 2.2).
	HasWScale bool
	// SACKPermitted reports that the TCP header carried the SACK-permitted
	// option (RFC 2018).
	SACKPermitted bool
	// FirstFragment reports that the received packet is the first fragment
	// of a fragmented datagram (IPv4 MF set with offset 0, or an IPv6
	// fragment header with offset 0 and M set): its transport header is
	// present and parsed, but the payload is incomplete until reassembly.
	// It describes the received packet only, never a packet quoted by an
	// ICMP error.
	FirstFragment bool
	// HeadersOnly reports that ParseHeaders parsed a buffer that ends
	// before the end the IP length field gives: the headers are complete,
	// but some of the PayloadLen payload bytes (or, for an ICMP error, of
	// the quote beyond what was read) are not in the buffer. It is false
	// whenever the whole packet was present, and always false from Parse.
	HeadersOnly bool
	// ICMP describes the ICMP or ICMPv6 error or echo the Segment came
	// from; its Kind is ICMPNone for a TCP or UDP packet.
	ICMP ICMPInfo
}

// MaxWindowScale is the largest window scale shift count RFC 7323 (section
// 2.3) allows. A stack uses min(Segment.WScale, MaxWindowScale), as Linux
// does; Parse reports the value as sent so that the stack can log a peer
// that sent more.
const MaxWindowScale = 14

// IsICMPError reports whether s came from an ICMP or ICMPv6 error quoting
// one of this host's packets rather than from a TCP or UDP packet or an
// echo.
func (s Segment) IsICMPError() bool {
	return s.ICMP.Kind >= ICMPUnreachable && s.ICMP.Kind <= ICMPParamProblem
}

// IsICMPEcho reports whether s came from an ICMP or ICMPv6 echo request or
// reply.
func (s Segment) IsICMPEcho() bool {
	return s.ICMP.Kind == ICMPEchoRequest || s.ICMP.Kind == ICMPEchoReply
}

// Proto is an IP protocol number (IPv6 next header value). Parse returns
// ProtoTCP and ProtoUDP, and ProtoICMP and ProtoICMPv6 for echoes only.
type Proto uint8

// The protocols Parse demultiplexes.
const (
	ProtoICMP   Proto = 1  // ICMP for IPv4, RFC 792: echo request and reply
	ProtoTCP    Proto = 6  // TCP, RFC 9293
	ProtoUDP    Proto = 17 // UDP, RFC 768
	ProtoICMPv6 Proto = 58 // ICMPv6, RFC 4443: echo request and reply
)

// String returns "TCP", "UDP", "ICMP", "ICMPv6", or the decimal protocol
// number.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "ICMPv6"
	}
	return strconv.Itoa(int(p))
}

// Flags are the eight TCP header flags, as laid out in the header's 14th
// byte (RFC 9293 section 3.1, RFC 3168 for ECE and CWR), so a Flags value
// is that byte unchanged.
type Flags uint8

// The TCP flags, one bit each.
const (
	FIN Flags = 1 << iota // no more data from sender
	SYN                   // synchronize sequence numbers
	RST                   // reset the connection
	PSH                   // push function
	ACK                   // acknowledgment field is significant
	URG                   // urgent pointer field is significant
	ECE                   // ECN-Echo (RFC 3168)
	CWR                   // congestion window reduced (RFC 3168)
)

// flagNames is in bit order, FIN first.
var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// Has reports whether every flag in mask is set in f.
func (f Flags) Has(mask Flags) bool { return f&mask == mask }

// String returns the set flags joined by "|" in bit order, FIN first
// ("SYN|ACK"), or "none" when no flag is set.
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var buf [len("FIN|SYN|RST|PSH|ACK|URG|ECE|CWR")]byte
	b := buf[:0]
	for i, name := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = append(b, name...)
	}
	return string(b)
}

// ICMPKind classifies the ICMP and ICMPv6 messages Parse accepts, errors
// and echoes, so a stack handles IPv4 and IPv6 alike; ICMPInfo keeps the
// raw type and code.
type ICMPKind uint8

// The kinds of ICMP message. ICMPNone, the zero value, marks a Segment
// parsed from a TCP or UDP packet. The error kinds run from
// ICMPUnreachable to ICMPParamProblem (Segment.IsICMPError); the echo
// kinds follow (Segment.IsICMPEcho).
const (
	// ICMPNone: not an ICMP message.
	ICMPNone ICMPKind = iota
	// ICMPUnreachable: ICMPv4 type 3 (destination unreachable), except
	// code 4, or ICMPv6 type 1.
	ICMPUnreachable
	// ICMPPacketTooBig: ICMPv4 type 3 code 4 (fragmentation needed and DF
	// set, RFC 1191) or ICMPv6 type 2 (packet too big, RFC 8201); the
	// next-hop MTU is in Segment.MTU.
	ICMPPacketTooBig
	// ICMPTimeExceeded: ICMPv4 type 11 or ICMPv6 type 3.
	ICMPTimeExceeded
	// ICMPParamProblem: ICMPv4 type 12 or ICMPv6 type 4.
	ICMPParamProblem
	// ICMPEchoRequest: ICMPv4 type 8 or ICMPv6 type 128, of any code.
	ICMPEchoRequest
	// ICMPEchoReply: ICMPv4 type 0 or ICMPv6 type 129, of any code.
	ICMPEchoReply
)

// String returns the kind's name: "none", "unreachable", "packet-too-big",
// "time-exceeded", "param-problem", "echo-request", "echo-reply", or the
// decimal value.
func (k ICMPKind) String() string {
	switch k {
	case ICMPNone:
		return "none"
	case ICMPUnreachable:
		return "unreachable"
	case ICMPPacketTooBig:
		return "packet-too-big"
	case ICMPTimeExceeded:
		return "time-exceeded"
	case ICMPParamProblem:
		return "param-problem"
	case ICMPEchoRequest:
		return "echo-request"
	case ICMPEchoReply:
		return "echo-reply"
	}
	return strconv.Itoa(int(k))
}

// ICMPInfo describes the ICMP or ICMPv6 message a Segment came from (the
// MTU of a packet too big is in Segment.MTU). It is the zero ICMPInfo for
// a TCP or UDP packet.
type ICMPInfo struct {
	// Kind classifies the message across ICMPv4 and ICMPv6.
	Kind ICMPKind
	// Type and Code are the raw ICMP or ICMPv6 type and code, for the
	// distinctions Kind does not make (port unreachable against host
	// unreachable, for instance).
	Type, Code uint8
	// ID and Seq are an echo's identifier and sequence number (RFC 792,
	// RFC 4443 section 4); both are 0 for an error.
	ID, Seq uint16
}
