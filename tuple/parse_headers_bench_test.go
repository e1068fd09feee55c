package tuple_test

import (
	"testing"

	pt "github.com/socktable/socktable/internal/pkttest"
	"github.com/socktable/socktable/tuple"
)

// BenchmarkParseHeaders measures ParseHeaders on the data segment of
// BenchmarkParse cut after its headers (a capture's snap length), over
// IPv4 and over IPv6 with one extension header.
func BenchmarkParseHeaders(b *testing.B) {
	ack := pt.TCP{
		SrcPort: 40000, DstPort: 443, Seq: 1001, Ack: 5001, Flags: pt.ACK | pt.PSH, Window: 502,
		Options: pt.TSOption(12346, 777), Payload: make([]byte, 1448),
	}.Bytes()
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"ip=4", pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP}.Packet(ack)[:20+32]},
		{"ip=6", pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoTCP,
			Ext: []pt.Ext{{Type: pt.ProtoDestOpts}}}.Packet(ack)[:40+8+32]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := tuple.ParseHeaders(bc.pkt)
				if err != nil || !s.HeadersOnly {
					b.Fatal(err)
				}
				segSink = s
			}
		})
	}
}

// BenchmarkParseEcho measures Parse on a ping (ICMP and ICMPv6 echo
// request with 56 bytes of data).
func BenchmarkParseEcho(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"ip=4", pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoICMP}.Packet(
			pt.ICMPv4(pt.ICMPv4Echo, 0, 0x1234<<16|1, make([]byte, 56)))},
		{"ip=6", pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoICMPv6}.Packet(
			pt.ICMPv6(pt.ICMPv6Echo, 0, 0x1234<<16|1, make([]byte, 56)))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := tuple.Parse(bc.pkt)
				if err != nil {
					b.Fatal(err)
				}
				segSink = s
			}
		})
	}
}
