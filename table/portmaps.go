package table

import (
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/tuple"
)

// portMaps are lock-free hints over the ephemeral range that let
// ConnectAny pass over used ports with a bit test instead of a locked walk
// of the port's holders: bound marks ports with a holder placed by Bind
// (connect() skips them), and each destination's bitmap marks ports with a
// live connection (not TIME_WAIT) to it. Bits change only under the
// port's stripe lock, set after a holder appears and cleared before it
// goes, so a set bit means the port was in use when it was read; a clear
// bit proves nothing, and the locked check decides.
//
// Memory: two bits per port of the range per destination (source address,
// destination address and port) connected to through ConnectAny or
// Connect, 3.5 KiB for the default range, for at most maxDestMaps
// destinations (later ones are scanned without a bitmap); Close frees
// them.
type portMaps struct {
	bound []atomic.Uint64 // immutable header
	dests sync.Map        // destKey -> *destMap
	count atomic.Int64    // destination maps made
}

const maxDestMaps = 4096

type destKey struct {
	local  tuple.Addr
	remote tuple.Endpoint
}

type destMap struct{ bits []atomic.Uint64 }

func newPortMaps(ports int) portMaps {
	return portMaps{bound: make([]atomic.Uint64, (ports+63)/64)}
}

func setBit(words []atomic.Uint64, i int)   { words[i/64].Or(1 << (i % 64)) }
func clearBit(words []atomic.Uint64, i int) { words[i/64].And(^uint64(1 << (i % 64))) }
func testBit(words []atomic.Uint64, i int) bool {
	return words[i/64].Load()&(1<<(i%64)) != 0
}

// index is the bit of port, or -1 outside the ephemeral range.
func (p *Ports) index(port uint16) int {
	if port < p.low || port > p.high {
		return -1
	}
	return int(port - p.low)
}

// destBits returns the bitmap of (local, remote), making it if create is
// set and the cap allows; nil otherwise.
func (p *Ports) destBits(local tuple.Addr, remote tuple.Endpoint, create bool) []atomic.Uint64 {
	k := destKey{local, remote}
	if d, ok := p.maps.dests.Load(k); ok {
		return d.(*destMap).bits
	}
	if !create || p.maps.count.Load() >= maxDestMaps {
		return nil
	}
	d, loaded := p.maps.dests.LoadOrStore(k, &destMap{bits: make([]atomic.Uint64, len(p.maps.bound))})
	if !loaded {
		p.maps.count.Add(1)
	}
	return d.(*destMap).bits
}

// noteBoundLocked sets port's bound bit: whether it has a holder placed by
// Bind or Inherit. Caller holds the port's stripe lock.
func (p *Ports) noteBoundLocked(port uint16, bound bool) {
	i := p.index(port)
	switch {
	case i < 0:
	case bound:
		setBit(p.maps.bound, i)
	default:
		clearBit(p.maps.bound, i)
	}
}

// noteConnectedLocked marks four-tuple t live on its port, or not. Caller holds
// the port's stripe lock.
func (p *Ports) noteConnectedLocked(t tuple.Tuple, live bool) {
	i := p.index(t.Local.Port)
	if i < 0 || t.Remote == (tuple.Endpoint{}) {
		return
	}
	bits := p.destBits(t.Local.Addr, t.Remote, live)
	switch {
	case bits == nil:
	case live:
		setBit(bits, i)
	default:
		clearBit(bits, i)
	}
}
