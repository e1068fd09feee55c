package tuple_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	pt "github.com/socktable/socktable/internal/pkttest"
	"github.com/socktable/socktable/tuple"
)

// headersOnly returns s as ParseHeaders reports it for a cut buffer.
func headersOnly(s tuple.Segment) tuple.Segment {
	s.HeadersOnly = true
	return s
}

// TestParseHeadersWholePacket checks that on a buffer holding the whole
// packet ParseHeaders is Parse: same Segment, same error, for every case
// of Parse's table except the ones where the buffer is shorter than the
// IP length (ErrTruncated from Parse), which ParseHeaders may accept
// because their headers are whole, but then only as HeadersOnly.
func TestParseHeadersWholePacket(t *testing.T) {
	for _, tc := range parseCases() {
		got, err := tuple.ParseHeaders(tc.pkt)
		if tc.err == tuple.ErrTruncated && err == nil {
			require.True(t, got.HeadersOnly, "%s: accepted from a cut buffer but not marked", tc.name)
			require.Less(t, len(tc.pkt), ipLength(tc.pkt), tc.name)
			continue
		}
		require.Equal(t, tc.err, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
}

// TestParseHeadersCutSweep cuts valid packets at every length. Below the
// end of the headers ParseHeaders must say ErrTruncated; from there to the
// IP length it must return what Parse returns for the whole packet, marked
// HeadersOnly; from the IP length on, exactly that. For TCP and echoes the
// headers end where the payload begins, IP length minus PayloadLen; for
// UDP no later (a UDP length below the IP payload moves the payload's end,
// not its start); for an ICMP error they end 8 bytes into the quoted
// transport header.
func TestParseHeadersCutSweep(t *testing.T) {
	for _, tc := range validPackets() {
		full, err := tuple.Parse(tc.pkt)
		require.NoError(t, err, tc.name)
		end := ipLength(tc.pkt)
		hdrEnd := -1
		for n := 0; n <= len(tc.pkt); n++ {
			got, err := tuple.ParseHeaders(tc.pkt[:n:n])
			if err != nil {
				require.Equalf(t, -1, hdrEnd, "%s: accepted at %d bytes, refused at %d", tc.name, hdrEnd, n)
				require.Equalf(t, tuple.ErrTruncated, err, "%s cut to %d bytes", tc.name, n)
				require.Zero(t, got)
				continue
			}
			if hdrEnd < 0 {
				hdrEnd = n
			}
			want := full
			want.HeadersOnly = n < end
			require.Equalf(t, want, got, "%s cut to %d of %d bytes", tc.name, n, end)
		}
		require.GreaterOrEqual(t, hdrEnd, 0, tc.name)
		switch {
		case full.Proto == tuple.ProtoTCP && !full.IsICMPError(), full.IsICMPEcho():
			require.Equal(t, end-int(full.PayloadLen), hdrEnd, "%s: headers end where the payload starts", tc.name)
		case full.Proto == tuple.ProtoUDP && !full.IsICMPError():
			require.LessOrEqual(t, hdrEnd, end-int(full.PayloadLen), tc.name)
			require.GreaterOrEqual(t, hdrEnd, 20+8, tc.name)
		}
	}
}

// TestParseHeaders is the rule-by-rule table for cut buffers: what must be
// present, what may be missing, and where PayloadLen comes from.
func TestParseHeaders(t *testing.T) {
	ip4 := func(proto uint8, l4 []byte) []byte {
		return pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: proto}.Packet(l4)
	}
	ip6 := func(proto uint8, l4 []byte, ext ...pt.Ext) []byte {
		return pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: proto, Ext: ext}.Packet(l4)
	}
	t4 := segTuple(segLocal4, 443, segPeer4, 40000)
	t6 := segTuple(segLocal6, 443, segPeer6, 40000)
	u4 := segTuple(segLocal4, 53, segPeer4, 5353)

	// A full-sized data segment with timestamps: 20 + 32 bytes of headers.
	data := pt.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, Flags: pt.ACK, Window: 500,
		Options: pt.TSOption(10, 20), Payload: make([]byte, 1448)}.Bytes()
	data4, data6 := ip4(pt.ProtoTCP, data), ip6(pt.ProtoTCP, data, pt.Ext{Type: pt.ProtoHopByHop}, pt.Ext{Type: pt.ProtoDestOpts, Size: 24})
	dataSeg := tuple.Segment{Tuple: t4, Seq: 1, Ack: 2, TSval: 10, TSecr: 20, Window: 500, PayloadLen: 1448,
		Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK, HasTimestamps: true}
	dataSeg6 := dataSeg
	dataSeg6.Tuple, dataSeg6.Version = t6, 6
	const data6Hdr = 40 + 8 + 24 + 32

	udp4 := ip4(pt.ProtoUDP, pt.UDP{SrcPort: 5353, DstPort: 53, Payload: make([]byte, 1000)}.Bytes())
	udpSeg := tuple.Segment{Tuple: u4, PayloadLen: 1000, Proto: tuple.ProtoUDP, Version: 4}

	sentTCP := pt.IPv4{Src: pt.Local4, Dst: pt.Peer4, Proto: pt.ProtoTCP}.Packet(
		pt.TCP{SrcPort: 443, DstPort: 40000, Seq: 77, Flags: pt.ACK, Payload: make([]byte, 1400)}.Bytes())
	fragNeeded := pt.IPv4{Src: pt.Router4, Dst: pt.Local4, Proto: pt.ProtoICMP}.Packet(
		pt.ICMPv4(pt.ICMPv4Unreachable, 4, 1400, sentTCP[:576-28]))
	fragSeg := tuple.Segment{Tuple: t4, Seq: 77, MTU: 1400, Proto: tuple.ProtoTCP, Version: 4,
		ICMP: tuple.ICMPInfo{Kind: tuple.ICMPPacketTooBig, Type: 3, Code: 4}}

	echo := pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoICMPv6}.Packet(
		pt.ICMPv6(pt.ICMPv6Echo, 0, 7<<16|8, make([]byte, 1000)))
	echoSeg := tuple.Segment{Tuple: segTuple(segLocal6, 0, segPeer6, 0), PayloadLen: 1000, Proto: tuple.ProtoICMPv6,
		Version: 6, ICMP: tuple.ICMPInfo{Kind: tuple.ICMPEchoRequest, Type: 128, ID: 7, Seq: 8}}

	for _, tc := range []parseCase{
		{name: "tcp4 cut right after the headers", pkt: data4[:52], want: headersOnly(dataSeg)},
		{name: "tcp4 cut in the payload", pkt: data4[:128], want: headersOnly(dataSeg)},
		{name: "tcp4 one payload byte missing", pkt: data4[:len(data4)-1], want: headersOnly(dataSeg)},
		{name: "tcp4 whole", pkt: data4, want: dataSeg},
		{name: "tcp4 cut in the options", pkt: data4[:51], err: tuple.ErrTruncated},
		{name: "tcp4 cut in the fixed header", pkt: data4[:39], err: tuple.ErrTruncated},
		{name: "tcp4 cut in the ip options", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP,
			Options: make([]byte, 8)}.Packet(data)[:26], err: tuple.ErrTruncated},
		{name: "tcp4 header runs past the total length", pkt: patched(data4, func(b []byte) { put16(b, 2, 20+31) }),
			err: tuple.ErrTruncated},
		{name: "tcp6 cut after extension headers and tcp", pkt: data6[:data6Hdr], want: headersOnly(dataSeg6)},
		{name: "tcp6 cut in the tcp options", pkt: data6[:data6Hdr-1], err: tuple.ErrTruncated},
		{name: "tcp6 cut in an extension header", pkt: data6[:40+8+20], err: tuple.ErrTruncated},
		{name: "ipv4 header cut", pkt: data4[:19], err: tuple.ErrTruncated},
		{name: "ipv6 header cut", pkt: data6[:39], err: tuple.ErrTruncated},
		{name: "ipv4 total length below IHL", pkt: patched(data4[:60], func(b []byte) { put16(b, 2, 19) }), err: tuple.ErrMalformed},
		{name: "ipv6 jumbogram", pkt: patched(data6[:200], func(b []byte) { put16(b, 4, 0) }), err: tuple.ErrMalformed},
		{name: "tcp4 unreadable option ignored", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, DstPort: 2, Options: []byte{2, 5, 0, 0},
			Payload: make([]byte, 100)}.Bytes())[:44], want: headersOnly(tuple.Segment{Tuple: segTuple(segLocal4, 2, segPeer4, 1),
			Proto: tuple.ProtoTCP, Version: 4, PayloadLen: 100})},
		{name: "tcp4 port 0", pkt: ip4(pt.ProtoTCP, pt.TCP{SrcPort: 1, Payload: make([]byte, 100)}.Bytes())[:40], err: tuple.ErrPort},
		{name: "tcp4 non-first fragment", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP, FragOffset: 3}.Packet(data)[:60],
			err: tuple.ErrFragment},

		{name: "udp4 cut after the header", pkt: udp4[:28], want: headersOnly(udpSeg)},
		{name: "udp4 cut in the header", pkt: udp4[:27], err: tuple.ErrTruncated},
		{name: "udp4 length below the ip payload wins", pkt: patched(udp4, func(b []byte) { put16(b, 24, 8+600) })[:100],
			want: headersOnly(func() tuple.Segment { s := udpSeg; s.PayloadLen = 600; return s }())},
		{name: "udp4 length beyond the ip payload", pkt: patched(udp4, func(b []byte) { put16(b, 24, 8+1001) })[:100],
			err: tuple.ErrTruncated},
		{name: "udp4 first fragment counts the fragment's bytes", pkt: pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoUDP,
			MoreFragments: true}.Packet(pt.UDP{SrcPort: 5353, DstPort: 53, Payload: make([]byte, 3000)}.Bytes()[:1480])[:28],
			want: tuple.Segment{Tuple: u4, PayloadLen: 1472, Proto: tuple.ProtoUDP, Version: 4, FirstFragment: true, HeadersOnly: true}},

		{name: "icmp4 error cut after the quoted 8 bytes", pkt: fragNeeded[:20+8+20+8], want: headersOnly(fragSeg)},
		{name: "icmp4 error cut later in the quote", pkt: fragNeeded[:100], want: headersOnly(fragSeg)},
		{name: "icmp4 error cut in the quoted 8 bytes", pkt: fragNeeded[:20+8+20+7], err: tuple.ErrTruncated},
		{name: "icmp4 error cut in its header", pkt: fragNeeded[:27], err: tuple.ErrTruncated},

		{name: "icmp6 echo cut after the header", pkt: echo[:48], want: headersOnly(echoSeg)},
		{name: "icmp6 echo cut in the header", pkt: echo[:47], err: tuple.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tuple.ParseHeaders(tc.pkt)
			if tc.err != nil {
				require.Equal(t, tc.err, err)
				require.Zero(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			// Parse refuses what is cut and agrees on what is whole.
			full, err := tuple.Parse(tc.pkt)
			if got.HeadersOnly {
				require.Equal(t, tuple.ErrTruncated, err)
			} else {
				require.NoError(t, err)
				require.Equal(t, got, full)
			}
		})
	}
}
