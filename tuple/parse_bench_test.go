package tuple_test

import (
	"testing"

	pt "github.com/socktable/socktable/internal/pkttest"
	"github.com/socktable/socktable/tuple"
)

// segSink keeps the benchmarked Parse from being optimised away.
var segSink tuple.Segment

// BenchmarkParse measures Parse on the common fast path: a TCP data
// segment with the timestamp option, over IPv4 and over IPv6 with one
// extension header.
func BenchmarkParse(b *testing.B) {
	ack := pt.TCP{
		SrcPort: 40000, DstPort: 443, Seq: 1001, Ack: 5001, Flags: pt.ACK | pt.PSH, Window: 502,
		Options: pt.TSOption(12346, 777), Payload: make([]byte, 1448),
	}.Bytes()
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"ip=4", pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP}.Packet(ack)},
		{"ip=6", pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoTCP,
			Ext: []pt.Ext{{Type: pt.ProtoDestOpts}}}.Packet(ack)},
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

// BenchmarkParseSYN measures Parse on a SYN carrying the options Linux
// sends (MSS, SACK-permitted, timestamps, window scale), which takes the
// general option walk rather than the aligned-timestamp fast path.
func BenchmarkParseSYN(b *testing.B) {
	syn := pt.TCP{
		SrcPort: 40000, DstPort: 443, Seq: 1000, Flags: pt.SYN, Window: 64240,
		Options: []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7},
	}.Bytes()
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"ip=4", pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoTCP}.Packet(syn)},
		{"ip=6", pt.IPv6{Src: pt.Peer6, Dst: pt.Local6, Proto: pt.ProtoTCP}.Packet(syn)},
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
