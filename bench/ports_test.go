package bench

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// portsWithHolders returns a bind table whose port 443 has a SO_REUSEPORT
// listener and n holders that hold the port as a busy server's children
// do: half accepted connections, half in TIME_WAIT, from one destination
// address.
func portsWithHolders(b *testing.B, n int) (*table.Ports, *table.Binding, []*table.Binding) {
	p, err := table.NewPorts(table.PortsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := p.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReusePort: true, Owner: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Listen(l); err != nil {
		b.Fatal(err)
	}
	children := make([]*table.Binding, n)
	for i := range children {
		if children[i], err = p.Inherit(l, serverEndpoint.Addr); err != nil {
			b.Fatal(err)
		}
		if i%2 == 1 {
			if err := p.TimeWait(children[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	return p, l, children
}

var holderCounts = []struct {
	name string
	n    int
}{{"1e3", 1000}, {"1e5", 100000}}

// BenchmarkPortsRelease: a listener's child closes (Release of a random
// one of the port's holders) and a new one is accepted (Inherit), on a
// port with 1e3 or 1e5 holders. Linux allows 262,144 TIME_WAIT entries,
// each holding its listener's port.
func BenchmarkPortsRelease(b *testing.B) {
	for _, c := range holderCounts {
		b.Run(fmt.Sprintf("holders=%s/impl=socktable", c.name), func(b *testing.B) {
			p, l, children := portsWithHolders(b, size(c.n))
			r := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				i := r.IntN(len(children))
				if err := p.Release(children[i]); err != nil {
					b.Fatal(err)
				}
				var err error
				if children[i], err = p.Inherit(l, serverEndpoint.Addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPortsBind: a second SO_REUSEPORT listener of the same owner
// binds the port of a busy listener with 1e3 or 1e5 holders (the
// conflict check a bind runs), then goes again.
func BenchmarkPortsBind(b *testing.B) {
	for _, c := range holderCounts {
		b.Run(fmt.Sprintf("holders=%s/impl=socktable", c.name), func(b *testing.B) {
			p, _, _ := portsWithHolders(b, size(c.n))
			req := table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReusePort: true, Owner: 1}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				bd, err := p.Bind(req)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Release(bd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
