package fuzz

import (
	"encoding/binary"
	"testing"

	pt "github.com/socktable/socktable/internal/pkttest"
	"github.com/socktable/socktable/tuple"
)

// parseSentinels are the only errors Parse may return.
var parseSentinels = map[error]bool{
	tuple.ErrTruncated: true, tuple.ErrMalformed: true, tuple.ErrFragment: true,
	tuple.ErrProtocol: true, tuple.ErrPort: true,
}

// FuzzParse feeds tuple.Parse and tuple.ParseHeaders arbitrary bytes.
// Beyond not panicking, it checks what every accepted packet must satisfy
// (a usable four-tuple of the right family, a payload inside the packet,
// TCP options only on TCP, ICMP errors and echoes shaped as documented),
// that errors are bare sentinels with the zero Segment, and these
// properties: Parse is deterministic; bytes after the IP length
// (link-layer padding) change nothing; ParseHeaders of a packet Parse
// accepts is the same Segment, and of a packet Parse refuses for anything
// but truncation the same error; and ParseHeaders of an accepted packet
// cut anywhere is ErrTruncated up to some length (the end of the
// headers) and from there on Parse's Segment marked HeadersOnly.
func FuzzParse(f *testing.F) {
	for _, s := range pt.Samples() {
		f.Add(s.Packet)
	}
	// A few near misses, so the corpus starts at the error paths too.
	f.Add([]byte{})
	f.Add([]byte{0x45})
	f.Add(pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP, FragOffset: 1}.Packet(make([]byte, 20)))
	f.Add(pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoNoNext,
		Ext: []pt.Ext{{Type: pt.ProtoHopByHop}, {Type: pt.ProtoRouting}, {Type: pt.ProtoAH}}}.Packet(nil))
	f.Add(pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP}.Packet(pt.TCP{
		SrcPort: 1, DstPort: 2, Options: []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7}}.Bytes()))
	f.Add(pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP}.Packet(pt.TCP{
		SrcPort: 1, DstPort: 2, Options: []byte{2, 3, 5, 3, 3, 15, 4, 2}}.Bytes()))
	// Packets cut after their headers, which only ParseHeaders accepts.
	f.Add(pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoTCP}.Packet(pt.TCP{
		SrcPort: 1, DstPort: 2, Flags: pt.ACK, Options: pt.TSOption(1, 2), Payload: make([]byte, 100)}.Bytes())[:40+32])
	f.Add(pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoICMP}.Packet(
		pt.ICMPv4(pt.ICMPv4Echo, 0, 1<<16|1, make([]byte, 64)))[:28])

	f.Fuzz(func(t *testing.T, pkt []byte) {
		seg, err := tuple.Parse(pkt)
		checkParseHeaders(t, pkt, seg, err)

		again, err2 := tuple.Parse(pkt)
		if again != seg || err2 != err {
			t.Fatalf("Parse is not deterministic: %+v, %v then %+v, %v", seg, err, again, err2)
		}
		if err != nil {
			if !parseSentinels[err] {
				t.Fatalf("Parse returned %v, not one of the sentinels", err)
			}
			if seg != (tuple.Segment{}) {
				t.Fatalf("Parse returned %+v with error %v, want the zero Segment", seg, err)
			}
			return
		}
		checkSegment(t, pkt, seg)
		if seg.HeadersOnly {
			t.Fatalf("Parse returned a HeadersOnly Segment: %+v", seg)
		}
		if got, err := tuple.ParseHeaders(pkt); err != nil || got != seg {
			t.Fatalf("ParseHeaders of a packet Parse accepts: %+v, %v; want %+v", got, err, seg)
		}
		checkCuts(t, pkt, seg)

		// Bytes past the IP length are link-layer padding: whatever they
		// hold, the Segment is the same.
		for _, tail := range [][]byte{{0}, {0xff, 0xff, 0xff}, pkt} {
			padded := append(append([]byte(nil), pkt...), tail...)
			got, err := tuple.Parse(padded)
			if err != nil || got != seg {
				t.Fatalf("%d trailing bytes changed the result: %+v, %v; want %+v", len(tail), got, err, seg)
			}
		}
		// And the packet needs no byte past its IP length.
		if end := ipLength(pkt); end < len(pkt) {
			got, err := tuple.Parse(pkt[:end:end])
			if err != nil || got != seg {
				t.Fatalf("cut to its IP length %d: %+v, %v; want %+v", end, got, err, seg)
			}
		}
	})
}

// checkParseHeaders checks ParseHeaders on pkt against Parse's verdict:
// the same Segment for an accepted packet; the same error for a refused
// one unless Parse said ErrTruncated, in which case ParseHeaders may find
// the headers whole and accept the packet, marked HeadersOnly.
func checkParseHeaders(t *testing.T, pkt []byte, seg tuple.Segment, err error) {
	t.Helper()
	hseg, herr := tuple.ParseHeaders(pkt)
	if herr != nil {
		if !parseSentinels[herr] || hseg != (tuple.Segment{}) {
			t.Fatalf("ParseHeaders returned %+v, %v", hseg, herr)
		}
	}
	switch {
	case err != tuple.ErrTruncated:
		if hseg != seg || herr != err {
			t.Fatalf("ParseHeaders: %+v, %v; Parse: %+v, %v", hseg, herr, seg, err)
		}
	case herr == nil:
		if !hseg.HeadersOnly || len(pkt) >= ipLength(pkt) {
			t.Fatalf("ParseHeaders accepted what Parse found truncated, but %d bytes of %d are present and HeadersOnly is %v",
				len(pkt), ipLength(pkt), hseg.HeadersOnly)
		}
		checkSegment(t, pkt, hseg)
	}
}

// checkCuts cuts an accepted packet short of its IP length: ParseHeaders
// must refuse it with ErrTruncated below some length (the end of its
// headers) and return seg marked HeadersOnly from there on. Every cut up
// to that length and a few after it are tried, then a sample.
func checkCuts(t *testing.T, pkt []byte, seg tuple.Segment) {
	t.Helper()
	end := ipLength(pkt)
	want := seg
	want.HeadersOnly = true
	hdrEnd := -1
	for n := 0; n < end; n++ {
		if hdrEnd >= 0 && n > hdrEnd+16 && n%61 != 0 && n != end-1 {
			continue
		}
		got, err := tuple.ParseHeaders(pkt[:n:n])
		switch {
		case err == tuple.ErrTruncated && hdrEnd < 0:
		case err == nil && got == want:
			if hdrEnd < 0 {
				hdrEnd = n
			}
		default:
			t.Fatalf("cut to %d of %d bytes (headers end at %d): %+v, %v; want ErrTruncated then %+v",
				n, end, hdrEnd, got, err, want)
		}
	}
	if !seg.IsICMPError() && seg.Proto != tuple.ProtoUDP && hdrEnd >= 0 && hdrEnd != end-int(seg.PayloadLen) {
		t.Fatalf("headers end at %d, but the payload of %d bytes starts at %d", hdrEnd, seg.PayloadLen, end-int(seg.PayloadLen))
	}
}

// checkSegment checks the invariants of a Segment Parse or ParseHeaders
// accepted.
func checkSegment(t *testing.T, pkt []byte, seg tuple.Segment) {
	t.Helper()
	switch seg.Proto {
	case tuple.ProtoTCP, tuple.ProtoUDP:
		if seg.IsICMPEcho() {
			t.Fatalf("%v segment marked as an echo: %+v", seg.Proto, seg)
		}
		if seg.Tuple.Local.Port == 0 || seg.Tuple.Remote.Port == 0 {
			t.Fatalf("port 0 in %v", seg.Tuple)
		}
	case tuple.ProtoICMP, tuple.ProtoICMPv6:
		checkEcho(t, seg)
	default:
		t.Fatalf("Proto %v", seg.Proto)
	}
	switch seg.Version {
	case 4:
		if !seg.Tuple.Local.Addr.Is4() || !seg.Tuple.Remote.Addr.Is4() {
			t.Fatalf("IPv4 segment with %v", seg.Tuple)
		}
	case 6:
		if seg.Tuple.Local.Addr.Is4() || seg.Tuple.Remote.Addr.Is4() {
			t.Fatalf("IPv6 segment with a v4-mapped address: %v", seg.Tuple)
		}
	default:
		t.Fatalf("Version %d", seg.Version)
	}
	if int(seg.Version) != int(pkt[0]>>4) {
		t.Fatalf("Version %d for a packet of version %d", seg.Version, pkt[0]>>4)
	}
	if int(seg.PayloadLen) > ipLength(pkt) || (!seg.HeadersOnly && int(seg.PayloadLen) > len(pkt)) {
		t.Fatalf("PayloadLen %d in a packet of %d bytes (IP length %d)", seg.PayloadLen, len(pkt), ipLength(pkt))
	}
	if seg.HeadersOnly != (len(pkt) < ipLength(pkt)) {
		t.Fatalf("HeadersOnly %v for %d bytes of a packet of %d", seg.HeadersOnly, len(pkt), ipLength(pkt))
	}
	if seg.Proto != tuple.ProtoTCP && (seg.Flags != 0 || seg.Ack != 0 || seg.Window != 0 || seg.HasTimestamps ||
		seg.HasMSS || seg.HasWScale || seg.SACKPermitted || (seg.Seq != 0 && !seg.IsICMPError())) {
		t.Fatalf("%v segment with TCP fields: %+v", seg.Proto, seg)
	}
	if !seg.HasTimestamps && (seg.TSval != 0 || seg.TSecr != 0) {
		t.Fatalf("timestamps without the option: %+v", seg)
	}
	if (!seg.HasMSS && seg.MSS != 0) || (!seg.HasWScale && seg.WScale != 0) {
		t.Fatalf("MSS or window scale without the option: %+v", seg)
	}
	if seg.IsICMPError() {
		if seg.Ack != 0 || seg.Window != 0 || seg.Flags != 0 || seg.PayloadLen != 0 || seg.HasTimestamps ||
			seg.HasMSS || seg.HasWScale || seg.SACKPermitted || seg.ICMP.ID != 0 || seg.ICMP.Seq != 0 {
			t.Fatalf("ICMP error with fields beyond the 8 quoted bytes: %+v", seg)
		}
	}
	if seg.ICMP.Kind > tuple.ICMPEchoReply {
		t.Fatalf("ICMP kind %v", seg.ICMP.Kind)
	}
	if seg.ICMP.Kind == tuple.ICMPNone && seg.ICMP != (tuple.ICMPInfo{}) {
		t.Fatalf("ICMP fields on a TCP or UDP segment: %+v", seg)
	}
	if seg.MTU != 0 && seg.ICMP.Kind != tuple.ICMPPacketTooBig {
		t.Fatalf("MTU %d without packet too big: %+v", seg.MTU, seg)
	}
}

// checkEcho checks a Segment of protocol ICMP or ICMPv6: an echo of the
// packet's IP version, with no ports.
func checkEcho(t *testing.T, seg tuple.Segment) {
	t.Helper()
	wantProto, request, reply := tuple.ProtoICMP, uint8(8), uint8(0)
	if seg.Version == 6 {
		wantProto, request, reply = tuple.ProtoICMPv6, 128, 129
	}
	switch {
	case seg.Proto != wantProto:
		t.Fatalf("%v over IPv%d", seg.Proto, seg.Version)
	case seg.ICMP.Kind == tuple.ICMPEchoRequest && seg.ICMP.Type == request:
	case seg.ICMP.Kind == tuple.ICMPEchoReply && seg.ICMP.Type == reply:
	default:
		t.Fatalf("%v segment of ICMP kind %v, type %d", seg.Proto, seg.ICMP.Kind, seg.ICMP.Type)
	}
	if seg.Tuple.Local.Port != 0 || seg.Tuple.Remote.Port != 0 {
		t.Fatalf("echo with ports: %v", seg.Tuple)
	}
}

// ipLength returns the length of an accepted packet as its IP header says.
func ipLength(p []byte) int {
	if p[0]>>4 == 4 {
		return int(binary.BigEndian.Uint16(p[2:4]))
	}
	return 40 + int(binary.BigEndian.Uint16(p[4:6]))
}
