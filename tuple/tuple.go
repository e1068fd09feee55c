package tuple

import "net/netip"

// Tuple is the four-tuple of a connection, seen from the local stack:
// Local is this host's end, Remote the peer's. For an arriving packet Local
// is the packet's destination and Remote its source (Parse fills it so).
//
// A Tuple is a comparable, immutable, pointer-free value of 48 bytes (tables
// store it packed into five words). The
// tables of one protocol in one network namespace share a key space: a
// stack keeps one set of tables for TCP and another for UDP, so the
// protocol is not part of the key.
type Tuple struct {
	Local  Endpoint
	Remote Endpoint
}

// New builds the Tuple of a connection from netip values and validates it
// as a connection key: both addresses valid (ErrInvalidAddr), unzoned
// (ErrZone), specific rather than wildcards and of one family
// (ErrInvalidAddr), both ports non-zero (ErrPort).
func New(local, remote netip.AddrPort) (Tuple, error) {
	l, err := EndpointFromNetIP(local)
	if err != nil {
		return Tuple{}, err
	}
	r, err := EndpointFromNetIP(remote)
	if err != nil {
		return Tuple{}, err
	}
	t := Tuple{Local: l, Remote: r}
	return t, t.Validate()
}

// Validate reports whether t is a usable connection key: specific
// addresses of one family (ErrInvalidAddr) and non-zero ports (ErrPort).
func (t Tuple) Validate() error {
	if t.Local.Addr.IsUnspecified() || t.Remote.Addr.IsUnspecified() ||
		t.Local.Addr.Is4() != t.Remote.Addr.Is4() {
		return ErrInvalidAddr
	}
	if t.Local.Port == 0 || t.Remote.Port == 0 {
		return ErrPort
	}
	return nil
}

// MustNew is New from text ("10.0.0.1:80", "10.0.0.2:40000"), panicking on
// bad input; for constants and tests.
func MustNew(local, remote string) Tuple {
	t, err := New(netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote))
	if err != nil {
		panic("socktable/tuple: MustNew(" + local + ", " + remote + "): " + err.Error())
	}
	return t
}

// Reverse swaps Local and Remote: the tuple as the peer sees it (the key of
// a reply, or of the inner packet quoted by an ICMP error).
func (t Tuple) Reverse() Tuple { return Tuple{Local: t.Remote, Remote: t.Local} }

// Is4 reports whether the tuple is an IPv4 flow (its local address is).
func (t Tuple) Is4() bool { return t.Local.Addr.Is4() }

// String returns "local 10.0.0.1:80 remote 10.0.0.2:40000".
func (t Tuple) String() string {
	return "local " + t.Local.String() + " remote " + t.Remote.String()
}
