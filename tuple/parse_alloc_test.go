//go:build !race

package tuple_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	pt "github.com/socktable/socktable/internal/pkttest"
	"github.com/socktable/socktable/tuple"
)

// TestParseNoAllocs checks that Parse allocates nothing, on the paths a
// stack takes per packet and on an error path (errors are the sentinels
// themselves, never wrapped). The race detector's instrumentation
// allocates, hence the build tag.
func TestParseNoAllocs(t *testing.T) {
	samples := map[string][]byte{}
	for _, s := range pt.Samples() {
		samples[s.Name] = s.Packet
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		err  error
	}{
		{"tcp4 timestamps", samples["tcp4-ipopts-ts-payload"], nil},
		{"tcp6 extension headers", samples["tcp6-ext-ts-payload"], nil},
		{"udp4", samples["udp4"], nil},
		{"udp6 first fragment", samples["udp6-first-fragment"], nil},
		{"icmp4 error", samples["icmp4-fragneeded-tcp"], nil},
		{"icmp6 error", samples["icmp6-ptb-tcp"], nil},
		{"tcp4 syn options", samples["tcp4-syn-linux-options"], nil},
		{"icmp4 echo", samples["icmp4-echo-request"], nil},
		{"icmp6 echo", samples["icmp6-echo-reply"], nil},
		{"error truncated", samples["tcp4-syn-ts"][:30], tuple.ErrTruncated},
		{"error port", pt.IPv4{Src: pt.Peer4, Dst: pt.Local4, Proto: pt.ProtoUDP}.Packet(pt.UDP{DstPort: 53}.Bytes()), tuple.ErrPort},
	} {
		require.NotEmpty(t, tc.pkt, tc.name)
		var err error
		allocs := testing.AllocsPerRun(100, func() { _, err = tuple.Parse(tc.pkt) })
		require.Equal(t, tc.err, err, tc.name)
		require.Zero(t, allocs, "%s: Parse allocated", tc.name)
	}
}

// TestParseHeadersNoAllocs is TestParseNoAllocs for ParseHeaders, on cut
// buffers and whole ones.
func TestParseHeadersNoAllocs(t *testing.T) {
	samples := map[string][]byte{}
	for _, s := range pt.Samples() {
		samples[s.Name] = s.Packet
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		err  error
	}{
		{"tcp4 cut after headers", samples["tcp4-ipopts-ts-payload"][:24+32], nil},
		{"tcp6 whole", samples["tcp6-ext-ts-payload"], nil},
		{"udp4 cut after header", samples["udp4"][:28], nil},
		{"icmp4 error cut", samples["icmp4-fragneeded-tcp"][:20+8+20+8], nil},
		{"icmp4 echo cut after header", samples["icmp4-echo-request"][:28], nil},
		{"icmp6 echo whole", samples["icmp6-echo-reply"], nil},
		{"error truncated", samples["tcp4-syn-ts"][:30], tuple.ErrTruncated},
	} {
		require.NotEmpty(t, tc.pkt, tc.name)
		var (
			seg tuple.Segment
			err error
		)
		allocs := testing.AllocsPerRun(100, func() { seg, err = tuple.ParseHeaders(tc.pkt) })
		require.Equal(t, tc.err, err, tc.name)
		require.Equal(t, tc.err == nil && len(tc.pkt) < ipLength(tc.pkt), seg.HeadersOnly, tc.name)
		require.Zero(t, allocs, "%s: ParseHeaders allocated", tc.name)
	}
}
