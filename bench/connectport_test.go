package bench

import (
	"fmt"
	"testing"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// linearProbe is the naive source-port allocator of small stacks: the
// lowest port whose four-tuple is free, found by scanning the range from
// its start.
type linearProbe struct {
	low, high uint16
	used      map[tuple.Tuple]bool
}

func (l *linearProbe) connect(local tuple.Addr, remote tuple.Endpoint) (uint16, bool) {
	for port := l.low; port <= l.high; port++ {
		t := tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: port}, Remote: remote}
		if !l.used[t] {
			l.used[t] = true
			return port, true
		}
	}
	return 0, false
}

func (l *linearProbe) release(local tuple.Addr, port uint16, remote tuple.Endpoint) {
	delete(l.used, tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: port}, Remote: remote})
}

// BenchmarkConnectPort: picking a source port for connect() when 90% of
// the range is in use towards the destination: established=1e3 is one
// destination with a 1,111-port range; 1e5 is four destinations sharing
// the 27,778 ports of 32768–60545. Each op connects to one of them and
// releases the port again.
func BenchmarkConnectPort(b *testing.B) {
	local := tuple.MustAddr("10.0.0.1")
	for _, c := range []struct {
		name       string
		dsts, span int
	}{{"1e3", 1, 1111}, {"1e5", 4, 27778}} {
		if short && c.dsts > 1 {
			continue // filling 1e5 connections takes half a minute
		}
		low := uint16(32768)
		high := low + uint16(c.span-1)
		perDst := c.span * 9 / 10
		dst := func(i int) tuple.Endpoint {
			return tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%c.dsts)}), Port: 443}
		}
		b.Run(fmt.Sprintf("established=%s/impl=socktable", c.name), func(b *testing.B) {
			p, err := table.NewPorts(table.PortsOptions{EphemeralLow: low, EphemeralHigh: high})
			if err != nil {
				b.Fatal(err)
			}
			for i := range perDst * c.dsts {
				if _, err := p.ConnectAny(table.ConnectRequest{Family: 4, Local: local, Remote: dst(i)}); err != nil {
					b.Fatal(err)
				}
			}
			startTiming(b)
			for i := range b.N {
				bd, err := p.ConnectAny(table.ConnectRequest{Family: 4, Local: local, Remote: dst(i)})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Release(bd.Binding); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("established=%s/impl=linear-probe", c.name), func(b *testing.B) {
			// Filled as its own allocator would have: the lowest ports.
			l := &linearProbe{low: low, high: high, used: map[tuple.Tuple]bool{}}
			for d := range c.dsts {
				for port := range perDst {
					l.used[tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: low + uint16(port)}, Remote: dst(d)}] = true
				}
			}
			startTiming(b)
			for i := range b.N {
				port, ok := l.connect(local, dst(i))
				if !ok {
					b.Fatal("range full")
				}
				l.release(local, port, dst(i))
			}
		})
	}
}
