package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

type udpSock struct{ name string }

func udpSeg(dst, src string) tuple.Segment {
	t := tuple.MustNew(dst, src)
	v := uint8(4)
	if !t.Local.Addr.Is4() {
		v = 6
	}
	return tuple.Segment{Tuple: t, Proto: tuple.ProtoUDP, Version: v, PayloadLen: 20}
}

func udpReq(addr string, port uint16, reusePort bool) table.BindRequest {
	a := tuple.MustAddr(addr)
	fam := 4
	if !a.Is4() || addr == "::" {
		fam = 6
	}
	return table.BindRequest{Family: fam, Addr: a, Port: port, ReusePort: reusePort, Owner: 1}
}

// Deliver's outcomes, one by one, and the counters that count them.
func TestUDPDemuxDeliver(t *testing.T) {
	d, err := socktable.NewUDPDemux[udpSock](socktable.UDPOptions{})
	require.NoError(t, err)
	dns, quic := &udpSock{"dns"}, &udpSock{"quic"}
	_, err = d.Bind(udpReq("::", 53, false), dns) // dual-stack
	require.NoError(t, err)
	qb, err := d.Bind(udpReq("0.0.0.0", 443, false), quic)
	require.NoError(t, err)
	_, err = d.Bind(udpReq("0.0.0.0", 80, false), nil)
	require.ErrorIs(t, err, socktable.ErrInvalid)

	for _, s := range []tuple.Segment{udpSeg("192.0.2.1:53", "198.51.100.1:3000"), udpSeg("[2001:db8::1]:53", "[2001:db8::9]:3000")} {
		res := d.Deliver(&s, 0, 0)
		require.Equal(t, socktable.ToConn, res.Outcome)
		require.Same(t, dns, res.Conn)
		require.False(t, res.ICMP)
	}
	s := udpSeg("192.0.2.1:443", "198.51.100.1:3000")
	require.Same(t, quic, d.Deliver(&s, 0, 1).Conn)

	// No socket: a port unreachable for unicast, nothing for broadcast,
	// multicast or an ICMP error.
	s = udpSeg("192.0.2.1:9", "198.51.100.1:3000")
	res := d.Deliver(&s, 0, 0)
	require.Equal(t, socktable.Send, res.Outcome)
	require.Equal(t, socktable.UDPReply{Type: 3, Code: 3}, res.Reply)
	s = udpSeg("[2001:db8::1]:9", "[2001:db8::9]:3000")
	require.Equal(t, socktable.UDPReply{Type: 1, Code: 4}, d.Deliver(&s, 0, 0).Reply)
	for _, dst := range []string{"255.255.255.255:9", "224.0.0.251:9", "[ff02::fb]:9"} {
		src := "198.51.100.1:5353"
		if dst[0] == '[' {
			src = "[2001:db8::9]:5353"
		}
		s = udpSeg(dst, src)
		require.Equal(t, socktable.Dropped, d.Deliver(&s, 0, 0).Outcome, dst)
	}

	// An ICMP error quoting a datagram quic sent goes to quic.
	icmp := udpSeg("192.0.2.1:443", "198.51.100.1:3000")
	icmp.ICMP = tuple.ICMPInfo{Kind: tuple.ICMPUnreachable, Type: 3, Code: 3}
	res = d.Deliver(&icmp, 0, 0)
	require.Equal(t, socktable.ToConn, res.Outcome)
	require.Same(t, quic, res.Conn)
	require.True(t, res.ICMP)
	icmp.Tuple.Local.Port = 9
	require.Equal(t, socktable.Dropped, d.Deliver(&icmp, 0, 0).Outcome, "no ICMP about an ICMP error")

	tcp := udpSeg("192.0.2.1:53", "198.51.100.1:3000")
	tcp.Proto = tuple.ProtoTCP
	require.Equal(t, socktable.Dropped, d.Deliver(&tcp, 0, 0).Outcome)

	require.Equal(t, socktable.UDPCounters{InDatagrams: 3, NoPorts: 2, InICMPErrors: 1, Dropped: 5}, d.Counters())

	require.NoError(t, qb.Release())
	s = udpSeg("192.0.2.1:443", "198.51.100.1:3000")
	require.Equal(t, socktable.Send, d.Deliver(&s, 0, 0).Outcome, "released")
	require.NoError(t, d.Close())
	require.ErrorIs(t, d.Close(), socktable.ErrClosed)
	s = udpSeg("192.0.2.1:53", "198.51.100.1:3000")
	require.Equal(t, socktable.Dropped, d.Deliver(&s, 0, 0).Outcome)
	_, err = d.Bind(udpReq("0.0.0.0", 53, false), dns)
	require.ErrorIs(t, err, socktable.ErrClosed)
	require.NotNil(t, d.Ports())
}
