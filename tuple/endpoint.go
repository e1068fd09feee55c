package tuple

import (
	"net/netip"
	"strconv"
)

// Endpoint is one end of a connection: an address and a port. It is a
// comparable, pointer-free value (24 bytes with alignment). The zero Endpoint is [::]:0.
type Endpoint struct {
	Addr Addr
	Port uint16
}

// EndpointFromNetIP converts a netip.AddrPort. It returns ErrInvalidAddr or
// ErrZone for a bad address; port 0 is accepted (a bind to port 0 asks
// for an ephemeral port), use Tuple construction for connection endpoints.
func EndpointFromNetIP(ap netip.AddrPort) (Endpoint, error) {
	a, err := AddrFromNetIP(ap.Addr())
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Addr: a, Port: ap.Port()}, nil
}

// MustEndpoint parses "addr:port" ("1.2.3.4:80", "[::1]:443") and panics on
// bad input; for constants and tests.
func MustEndpoint(s string) Endpoint {
	e, err := EndpointFromNetIP(netip.MustParseAddrPort(s))
	if err != nil {
		panic("socktable/tuple: MustEndpoint(" + s + "): " + err.Error())
	}
	return e
}

// AddrPort converts back to netip; IPv4 comes back unmapped.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.Addr.NetIP(), e.Port) }

// String returns "1.2.3.4:80" or "[2001:db8::1]:80".
func (e Endpoint) String() string {
	if e.Addr.Is4() {
		return e.Addr.String() + ":" + strconv.Itoa(int(e.Port))
	}
	return "[" + e.Addr.String() + "]:" + strconv.Itoa(int(e.Port))
}
