package pkttest

// Sample is a named, valid packet.
type Sample struct {
	Name   string
	Packet []byte
}

// The addresses samples use, from the documentation ranges (RFC 5737,
// RFC 3849). Local is the receiving host, Peer the remote one, Router the
// sender of ICMP errors.
var (
	Local4  = V4("198.51.100.2")
	Peer4   = V4("192.0.2.1")
	Router4 = V4("203.0.113.1")
	Local6  = V6("2001:db8::2")
	Peer6   = V6("2001:db8:1::1")
	Router6 = V6("2001:db8:ff::1")
)

// Samples returns one valid packet of each shape tuple.Parse accepts,
// freshly built (the caller may modify them): TCP and UDP over IPv4 and
// IPv6, with IP options and IPv6 extension headers, SYNs with the options
// Linux sends, a first fragment, ICMP and ICMPv6 errors quoting TCP and
// UDP, one of them with only the 8 transport bytes RFC 792 guarantees, and
// ICMP and ICMPv6 echoes. They seed fuzz targets and truncation sweeps.
func Samples() []Sample {
	synTS := TCP{
		SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: SYN, Window: 64240,
		Options: append(MSSOption(1460), TSOption(12345, 0)...),
	}
	ackTS := TCP{
		SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: 5001, Flags: ACK | PSH, Window: 502,
		Options: TSOption(12346, 777), Payload: []byte("GET / HTTP/1.1\r\n\r\n"),
	}
	// Linux's SYN and SYN-ACK layouts: MSS, SACK-permitted, timestamps,
	// NOP, window scale; and MSS, NOP NOP SACK-permitted, NOP window scale
	// when timestamps are off.
	synLinux := TCP{
		SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: SYN, Window: 64240,
		Options: append(append(append(MSSOption(1460), SACKPermittedOption()...), TSOption(12345, 0)[2:]...),
			append([]byte{1}, WScaleOption(7)...)...),
	}
	synAckNoTS := TCP{
		SrcPort: 40000, DstPort: 443, Seq: 9, Ack: 77, Flags: SYN | ACK, Window: 65535,
		Options: append(append(MSSOption(1440), 1, 1, 4, 2, 1), WScaleOption(9)...),
	}
	udp := UDP{SrcPort: 5353, DstPort: 53, Payload: []byte("query")}
	// What this host sent, quoted back by routers.
	sentTCP4 := IPv4{Src: Local4, Dst: Peer4, Proto: ProtoTCP}.Packet(TCP{
		SrcPort: 80, DstPort: 40000, Seq: 5001, Ack: 1019, Flags: ACK, Window: 500, Payload: make([]byte, 1400),
	}.Bytes())
	sentUDP4 := IPv4{Src: Local4, Dst: Peer4, Proto: ProtoUDP}.Packet(UDP{SrcPort: 53, DstPort: 5353, Payload: []byte("answer")}.Bytes())
	sentTCP6 := IPv6{Src: Local6, Dst: Peer6, Proto: ProtoTCP}.Packet(TCP{
		SrcPort: 443, DstPort: 50000, Seq: 7, Flags: ACK, Window: 100, Payload: make([]byte, 1400),
	}.Bytes())
	sentUDP6 := IPv6{Src: Local6, Dst: Peer6, Proto: ProtoUDP}.Packet(UDP{SrcPort: 123, DstPort: 1123, Payload: []byte("ntp")}.Bytes())

	return []Sample{
		{"tcp4-syn-ts", IPv4{Src: Peer4, Dst: Local4, Proto: ProtoTCP}.Packet(synTS.Bytes())},
		{"tcp4-syn-linux-options", IPv4{Src: Peer4, Dst: Local4, Proto: ProtoTCP}.Packet(synLinux.Bytes())},
		{"tcp6-synack-options", IPv6{Src: Peer6, Dst: Local6, Proto: ProtoTCP}.Packet(synAckNoTS.Bytes())},
		{"tcp4-ipopts-ts-payload", IPv4{
			Src: Peer4, Dst: Local4, Proto: ProtoTCP,
			Options: []byte{0x94, 0x04, 0, 0}, // router alert
		}.Packet(ackTS.Bytes())},
		{"tcp6-ext-ts-payload", IPv6{
			Src: Peer6, Dst: Local6, Proto: ProtoTCP,
			Ext: []Ext{{Type: ProtoHopByHop}, {Type: ProtoDestOpts, Size: 16}},
		}.Packet(ackTS.Bytes())},
		{"udp4", IPv4{Src: Peer4, Dst: Local4, Proto: ProtoUDP}.Packet(udp.Bytes())},
		{"udp6-first-fragment", IPv6{
			Src: Peer6, Dst: Local6, Proto: ProtoUDP,
			Ext: []Ext{{Type: ProtoFragment, MoreFragments: true}},
		}.Packet(udp.Bytes())},
		{"icmp4-fragneeded-tcp", IPv4{Src: Router4, Dst: Local4, Proto: ProtoICMP}.Packet(
			ICMPv4(ICMPv4Unreachable, 4, 1400, sentTCP4[:20+40]))},
		{"icmp4-timeexceeded-udp-8bytes", IPv4{Src: Router4, Dst: Local4, Proto: ProtoICMP}.Packet(
			ICMPv4(ICMPv4TimeExceeded, 0, 0, sentUDP4[:20+8]))},
		{"icmp6-ptb-tcp", IPv6{Src: Router6, Dst: Local6, Proto: ProtoICMPv6}.Packet(
			ICMPv6(ICMPv6PacketTooBig, 0, 1280, sentTCP6[:1280-40-8]))},
		{"icmp6-unreachable-udp", IPv6{Src: Router6, Dst: Local6, Proto: ProtoICMPv6}.Packet(
			ICMPv6(ICMPv6Unreachable, 4, 0, sentUDP6))},
		{"icmp4-echo-request", IPv4{Src: Peer4, Dst: Local4, Proto: ProtoICMP}.Packet(
			ICMPv4(ICMPv4Echo, 0, 0x1234<<16|1, make([]byte, 56)))},
		{"icmp6-echo-reply", IPv6{Src: Peer6, Dst: Local6, Proto: ProtoICMPv6}.Packet(
			ICMPv6(ICMPv6EchoReply, 0, 0xbeef<<16|2, []byte("ping6")))},
	}
}
