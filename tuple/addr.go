package tuple

import (
	"encoding/binary"
	"net/netip"
)

// v4Mark is the low word of a v4-mapped address (::ffff:0:0/96) with the
// IPv4 address masked out; the high word of such an address is zero.
const v4Mark = 0xffff << 32

// Addr is an IPv4 or IPv6 address in 16 bytes, IPv4 held v4-mapped
// (::ffff:a.b.c.d). It is a comparable, immutable value with no pointers:
// usable as a map key, compared with ==.
//
// The zero Addr is the IPv6 unspecified address "::". An Addr carries no
// zone: zoned addresses are refused by AddrFromNetIP (ErrZone).
//
// The address is held as two machine words rather than 16 bytes so that a
// Tuple is passed to Hash and to table lookups in registers: a [16]byte
// array goes through the stack, and reading it back with wider loads than
// it was written with stalls store forwarding.
type Addr struct {
	hi, lo uint64 // big-endian halves; IPv4 as ::ffff:a.b.c.d
}

// AddrFromNetIP converts a netip.Addr. IPv4 addresses, and IPv6 v4-mapped
// ones, become the same v4-mapped Addr. It returns ErrInvalidAddr for the
// zero netip.Addr and ErrZone for an address with a zone.
func AddrFromNetIP(a netip.Addr) (Addr, error) {
	if !a.IsValid() {
		return Addr{}, ErrInvalidAddr
	}
	if a.Zone() != "" {
		return Addr{}, ErrZone
	}
	return AddrFrom16(a.As16()), nil
}

// MustAddr is AddrFromNetIP for addresses known to be good (constants,
// tests); it panics on an error.
func MustAddr(s string) Addr {
	a, err := AddrFromNetIP(netip.MustParseAddr(s))
	if err != nil {
		panic("socktable/tuple: MustAddr(" + s + "): " + err.Error())
	}
	return a
}

// AddrFrom4 returns the (v4-mapped) Addr of an IPv4 address.
func AddrFrom4(b [4]byte) Addr {
	return Addr{lo: v4Mark | uint64(binary.BigEndian.Uint32(b[:]))}
}

// AddrFrom16 returns the Addr of a 16-byte address. A v4-mapped address
// is taken as the IPv4 address it maps, as everywhere in socktable.
func AddrFrom16(b [16]byte) Addr {
	return Addr{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// NetIP converts back to netip. IPv4 comes back unmapped: the result of
// AddrFromNetIP(netip.MustParseAddr("::ffff:1.2.3.4")) converts back to
// 1.2.3.4, since the two are one key here.
func (a Addr) NetIP() netip.Addr {
	if a.Is4() {
		return netip.AddrFrom4(a.As4())
	}
	return netip.AddrFrom16(a.As16())
}

// As16 returns the 16 bytes of the address, IPv4 v4-mapped.
func (a Addr) As16() [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return b
}

// As4 returns the IPv4 address; the result is meaningful only if Is4.
func (a Addr) As4() [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a.lo))
	return b
}

// Is4 reports whether a is an IPv4 address (held v4-mapped).
func (a Addr) Is4() bool { return a.hi == 0 && a.lo>>32 == 0xffff }

// IsUnspecified reports whether a is a wildcard: "0.0.0.0" (held as
// ::ffff:0.0.0.0, which Linux also treats as the IPv4 wildcard) or "::".
func (a Addr) IsUnspecified() bool {
	return a == Addr{} || a == ipv4Unspecified
}

// IsLoopback reports whether a is in 127.0.0.0/8 or is ::1 (the
// tcp_tw_reuse=2 "loopback only" test).
func (a Addr) IsLoopback() bool {
	if a.Is4() {
		return uint32(a.lo)>>24 == 127
	}
	return a == ipv6Loopback
}

// String returns the usual text form: dotted quad for IPv4, RFC 5952 for
// IPv6.
func (a Addr) String() string { return a.NetIP().String() }

// words returns the address as the two machine words the hash consumes.
func (a Addr) words() (uint64, uint64) { return a.hi, a.lo }

// Words returns the address as two words, the big-endian halves of its 16
// bytes: the compact form tables store keys in. AddrFromWords inverts it.
func (a Addr) Words() (hi, lo uint64) { return a.hi, a.lo }

// AddrFromWords returns the Addr whose Words are hi and lo.
func AddrFromWords(hi, lo uint64) Addr { return Addr{hi: hi, lo: lo} }

var (
	ipv4Unspecified = AddrFrom4([4]byte{})
	ipv6Loopback    = Addr{lo: 1}
)

// IPv4Unspecified returns the IPv4 wildcard 0.0.0.0.
func IPv4Unspecified() Addr { return ipv4Unspecified }

// IPv6Unspecified returns the IPv6 wildcard "::" (the zero Addr).
func IPv6Unspecified() Addr { return Addr{} }
