//go:build !race

package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/tuple"
)

// UDPDemux.Deliver allocates nothing on any path.
func TestUDPDemuxDeliverAllocatesNothing(t *testing.T) {
	d, err := socktable.NewUDPDemux[udpSock](socktable.UDPOptions{})
	require.NoError(t, err)
	for range 2 {
		_, err := d.Bind(udpReq("0.0.0.0", 443, true), &udpSock{})
		require.NoError(t, err)
	}
	_, err = d.Bind(udpReq("192.0.2.1", 53, false), &udpSock{})
	require.NoError(t, err)
	icmp := udpSeg("192.0.2.1:53", "198.51.100.1:3000")
	icmp.ICMP = tuple.ICMPInfo{Kind: tuple.ICMPUnreachable, Type: 3, Code: 3}
	for _, s := range []tuple.Segment{udpSeg("192.0.2.1:53", "198.51.100.1:3000"), udpSeg("192.0.2.1:443", "198.51.100.1:3000"),
		udpSeg("192.0.2.1:9", "198.51.100.1:3000"), udpSeg("224.0.0.1:9", "198.51.100.1:3000"), icmp} {
		require.Zero(t, testing.AllocsPerRun(200, func() { d.Deliver(&s, 0, 0) }), "%v", s.Tuple)
	}
}
