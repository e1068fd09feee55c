package accept

import "github.com/socktable/socktable/tuple"

// RSSIndirectionSize is the size of the indirection table SteerRSS models:
// 128 entries, indexed by the low 7 bits of the RSS hash and filled round
// robin over the receive queues (ethtool_rxfh_indir_default), as most
// NICs' drivers do by default.
const RSSIndirectionSize = 128

// DefaultRSSKey is the 40-byte Toeplitz key of Microsoft's RSS
// specification, which many NIC drivers load by default (others pick a
// random key at boot: read the NIC's with ethtool -x and pass it to
// RSSHash instead).
var DefaultRSSKey = [40]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
	0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
	0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// RSSHash returns the Toeplitz hash a NIC computes over a received TCP or
// UDP packet of flow t (t as the receiving stack sees it: the packet's
// source is t.Remote), with key: over the source address, the destination
// address, the source port and the destination port, in network byte
// order, 4-byte addresses for IPv4 (and v4-mapped) flows and 16-byte ones
// for IPv6. The key needs 4 bytes more than the input (16 for IPv4, 40
// for IPv6); a shorter key yields 0. It allocates nothing.
func RSSHash(key []byte, t tuple.Tuple) uint32 {
	var in [36]byte
	n := 0
	put := func(a tuple.Addr) {
		if a.Is4() {
			b := a.As4()
			n += copy(in[n:], b[:])
		} else {
			b := a.As16()
			n += copy(in[n:], b[:])
		}
	}
	put(t.Remote.Addr)
	put(t.Local.Addr)
	in[n], in[n+1], in[n+2], in[n+3] = byte(t.Remote.Port>>8), byte(t.Remote.Port), byte(t.Local.Port>>8), byte(t.Local.Port)
	n += 4
	return Toeplitz(key, in[:n])
}

// Toeplitz returns the Toeplitz hash of input with key (Microsoft's RSS
// hash): the XOR, for each set bit of input (most significant first), of
// the 32 key bits starting at that bit's position. The key must be at
// least len(input)+4 bytes; Toeplitz returns 0 otherwise.
func Toeplitz(key, input []byte) uint32 {
	if len(key) < len(input)+4 {
		return 0
	}
	var hash uint32
	window := uint32(key[0])<<24 | uint32(key[1])<<16 | uint32(key[2])<<8 | uint32(key[3])
	for i, b := range input {
		next := key[i+4]
		for bit := 7; bit >= 0; bit-- {
			if b&(1<<bit) != 0 {
				hash ^= window
			}
			window = window<<1 | uint32(next>>bit&1)
		}
	}
	return hash
}
