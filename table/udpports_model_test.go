package table_test

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// udpAddrs are the addresses the property test binds one port with:
// IPv4 and IPv6 wildcards and specifics, v4-mapped, across families.
var udpAddrs = []struct {
	family int
	v6only bool
	addr   string
}{
	{4, false, "0.0.0.0"}, {4, false, "192.0.2.1"}, {4, false, "192.0.2.2"}, {4, false, "192.0.2.3"},
	{6, false, "::"}, {6, true, "::"}, {6, false, "2001:db8::1"}, {6, true, "2001:db8::2"},
	{6, false, "::ffff:192.0.2.1"}, {6, false, "::ffff:0.0.0.0"},
}

// Whatever sockets share a port, LookupValue's answer through the
// port's address index (ports of more than 32 sockets) or its key arrays
// (the others) is the answer of scoring every socket, the rules the
// kernel corpora hold it to; and the binding Lookup returns carries that
// value.
func TestUDPIndexIsScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, err := table.NewUDPPorts[int](table.UDPPortsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.SampledFrom([]int{1, 2, 3, 5, 8, 17, 32, 33, 50, 80}).Draw(t, "sockets")
		for i := range n {
			a := udpAddrs[rapid.IntRange(0, len(udpAddrs)-1).Draw(t, "addr")]
			req := table.BindRequest{Family: a.family, V6Only: a.v6only, Addr: tuple.MustAddr(a.addr), Port: 53,
				ReuseAddr: true, ReusePort: rapid.Bool().Draw(t, "reuseport"), Owner: 1,
				Device: rapid.SampledFrom([]int{0, 0, 0, 2}).Draw(t, "device")}
			b, err := p.Bind(req, i)
			if err != nil {
				continue // a v6only socket on a v4-mapped address, say
			}
			if rapid.IntRange(0, 3).Draw(t, "connect") == 0 {
				peer := tuple.MustEndpoint(fmt.Sprintf("198.51.100.%d:%d", rapid.IntRange(1, 3).Draw(t, "peer"), 4000))
				local := b.Addr()
				if a.family == 6 && !local.Is4() && !local.IsUnspecified() {
					peer = tuple.MustEndpoint(fmt.Sprintf("[2001:db8::%d]:4000", rapid.IntRange(10, 12).Draw(t, "peer6")))
				} else if local.IsUnspecified() {
					if a.family == 6 && (a.v6only || a.addr == "::") && rapid.Bool().Draw(t, "v6peer") {
						local, peer = tuple.MustAddr("2001:db8::1"), tuple.MustEndpoint("[2001:db8::10]:4000")
					} else {
						local = tuple.MustAddr("192.0.2.1")
					}
				}
				_ = b.Connect(local, peer) // refusals (a v6only socket to IPv4) change nothing
			}
		}
		for range 50 {
			var dst, src tuple.Endpoint
			if rapid.Bool().Draw(t, "v4") {
				dst = tuple.MustEndpoint(fmt.Sprintf("192.0.2.%d:53", rapid.IntRange(1, 4).Draw(t, "dst")))
				src = tuple.MustEndpoint(fmt.Sprintf("198.51.100.%d:%d", rapid.IntRange(1, 3).Draw(t, "src"), rapid.SampledFrom([]int{4000, 4001}).Draw(t, "sport")))
			} else {
				dst = tuple.MustEndpoint(fmt.Sprintf("[2001:db8::%d]:53", rapid.IntRange(1, 3).Draw(t, "dst6")))
				src = tuple.MustEndpoint(fmt.Sprintf("[2001:db8::%d]:4000", rapid.IntRange(10, 12).Draw(t, "src6")))
			}
			f := tuple.Tuple{Local: dst, Remote: src}
			dev := rapid.SampledFrom([]int{0, 2}).Draw(t, "dev")
			got, ok := p.LookupValue(f, dev)
			want, wok := p.UDPScanUnindexed(f, dev)
			if ok != wok || got != want {
				t.Fatalf("%v on device %d: index %d %v, scan %d %v", f, dev, got, ok, want, wok)
			}
			if b, bok := p.Lookup(f, dev); bok != ok || ok && b.Value() != got {
				t.Fatalf("%v: Lookup %v %v, LookupValue %d", f, b, bok, got)
			}
		}
	})
}
