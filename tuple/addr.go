package tuple

import (
	"encoding/binary"
	"net/netip"
)

// v4Prefix is the first 12 bytes of a v4-mapped IPv6 address (::ffff:0:0/96).
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// Addr is an IPv4 or IPv6 address in 16 bytes, IPv4 held v4-mapped
// (::ffff:a.b.c.d). It is a comparable, immutable value with no pointers:
// usable as a map key, compared with ==.
//
// The zero Addr is the IPv6 unspecified address "::". An Addr carries no
// zone: zoned addresses are refused by AddrFromNetIP (ErrZone).
type Addr struct {
	b [16]byte // network byte order; IPv4 as ::ffff:a.b.c.d
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
	return Addr{b: a.As16()}, nil
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
	var a Addr
	a.b[10], a.b[11] = 0xff, 0xff
	copy(a.b[12:], b[:])
	return a
}

// AddrFrom16 returns the Addr of a 16-byte address. A v4-mapped address
// is taken as the IPv4 address it maps, as everywhere in socktable.
func AddrFrom16(b [16]byte) Addr { return Addr{b: b} }

// NetIP converts back to netip. IPv4 comes back unmapped: the result of
// AddrFromNetIP(netip.MustParseAddr("::ffff:1.2.3.4")) converts back to
// 1.2.3.4, since the two are one key here.
func (a Addr) NetIP() netip.Addr {
	if a.Is4() {
		return netip.AddrFrom4([4]byte(a.b[12:]))
	}
	return netip.AddrFrom16(a.b)
}

// As16 returns the 16 bytes of the address, IPv4 v4-mapped.
func (a Addr) As16() [16]byte { return a.b }

// As4 returns the IPv4 address; the result is meaningful only if Is4.
func (a Addr) As4() [4]byte { return [4]byte(a.b[12:]) }

// Is4 reports whether a is an IPv4 address (held v4-mapped).
func (a Addr) Is4() bool { return [12]byte(a.b[:12]) == v4Prefix }

// IsUnspecified reports whether a is a wildcard: "0.0.0.0" (held as
// ::ffff:0.0.0.0, which Linux also treats as the IPv4 wildcard) or "::".
func (a Addr) IsUnspecified() bool {
	return a == Addr{} || a == ipv4Unspecified
}

// IsLoopback reports whether a is in 127.0.0.0/8 or is ::1 (the
// tcp_tw_reuse=2 "loopback only" test).
func (a Addr) IsLoopback() bool {
	if a.Is4() {
		return a.b[12] == 127
	}
	return a == ipv6Loopback
}

// String returns the usual text form: dotted quad for IPv4, RFC 5952 for
// IPv6.
func (a Addr) String() string { return a.NetIP().String() }

// words returns the address as two little-endian machine words, the form
// the hash consumes (a single 8-byte load each).
func (a Addr) words() (uint64, uint64) {
	return binary.LittleEndian.Uint64(a.b[:8]), binary.LittleEndian.Uint64(a.b[8:])
}

var (
	ipv4Unspecified = AddrFrom4([4]byte{})
	ipv6Loopback    = Addr{b: [16]byte{15: 1}}
)

// IPv4Unspecified returns the IPv4 wildcard 0.0.0.0.
func IPv4Unspecified() Addr { return ipv4Unspecified }

// IPv6Unspecified returns the IPv6 wildcard "::" (the zero Addr).
func IPv6Unspecified() Addr { return Addr{} }
