package pkttest

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIPv4HeaderChecksumVerifies(t *testing.T) {
	p := IPv4{Src: Peer4, Dst: Local4, Proto: ProtoUDP, Options: []byte{0x94, 4}}.Packet(UDP{SrcPort: 1, DstPort: 2}.Bytes())
	require.Equal(t, byte(0x46), p[0], "IHL 6: the 2 option bytes are padded to 4")
	require.Equal(t, uint16(0), checksum(p[:24]), "a header including its checksum sums to 0")
	require.Equal(t, uint16(24+8), binary.BigEndian.Uint16(p[2:]))
}

func TestIPv6ExtensionChain(t *testing.T) {
	p := IPv6{Src: Peer6, Dst: Local6, Proto: ProtoTCP, Ext: []Ext{
		{Type: ProtoHopByHop}, {Type: ProtoRouting, Size: 24}, {Type: ProtoAH}, {Type: ProtoFragment, FragOffset: 3, MoreFragments: true},
	}}.Packet([]byte{9})
	// Walk the chain as a parser would.
	next, off := p[6], 40
	var types []byte
	for next != ProtoTCP {
		types = append(types, next)
		h := p[off:]
		switch next {
		case ProtoAH:
			off += (int(h[1]) + 2) * 4
		case ProtoFragment:
			require.Equal(t, uint16(3<<3|1), binary.BigEndian.Uint16(h[2:]))
			off += 8
		default:
			off += (int(h[1]) + 1) * 8
		}
		next = h[0]
	}
	require.Equal(t, []byte{ProtoHopByHop, ProtoRouting, ProtoAH, ProtoFragment}, types)
	require.Equal(t, 40+8+24+24+8, off)
	require.Equal(t, []byte{9}, p[off:])
	require.Equal(t, uint16(len(p)-40), binary.BigEndian.Uint16(p[4:]))
}

func TestTCPAndUDPLayout(t *testing.T) {
	b := TCP{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: SYN | ACK, Window: 5, Options: MSSOption(1460)[:3], Payload: []byte("x")}.Bytes()
	require.Len(t, b, 24+1)
	require.Equal(t, byte(6<<4), b[12], "3 option bytes pad to 4: data offset 6")
	require.Equal(t, byte(SYN|ACK), b[13])
	u := UDP{SrcPort: 1, DstPort: 2, Payload: []byte("abc")}.Bytes()
	require.Equal(t, uint16(11), binary.BigEndian.Uint16(u[4:]))
}

func TestSamplesAreFresh(t *testing.T) {
	a, b := Samples(), Samples()
	require.NotEmpty(t, a)
	a[0].Packet[0] = 0
	require.NotEqual(t, a[0].Packet[0], b[0].Packet[0], "callers may modify a sample")
}
