package table

import "github.com/socktable/socktable/tuple"

// This file transcribes Linux's bind-conflict rules (net/ipv4/
// inet_connection_sock.c, 6.x, with bhash2) as pure
// functions over bindOwner records, so they can be read against the kernel
// line by line and tested without any table around them. Ports applies
// them under its port locks.

// BindState is where a bound socket is in its life, as far as port
// sharing cares.
type BindState uint8

const (
	// StateBound: bound, not listening, not connected.
	StateBound BindState = iota
	// StateListen: listen() succeeded.
	StateListen
	// StateConnected: connect() fixed its four-tuple.
	StateConnected
	// StateTimeWait: the socket closed and left a TIME_WAIT entry, which
	// keeps its port (Linux's tw_tb), with the socket's options and owner.
	StateTimeWait
	// StateReleased: the binding was released (Ports.Release, or its
	// table closed); it holds nothing.
	StateReleased
)

// loopback4IPv6 is the IPv4 address Linux gives an AF_INET6 socket bound
// to a specific, non-v4-mapped address (LOOPBACK4_IPV6, 127.0.0.6): no
// IPv4 socket is ever bound to it, so IPv4 comparisons never match it by
// accident, while an IPv4 wildcard still does.
var loopback4IPv6 = tuple.AddrFrom4([4]byte{127, 0, 0, 6})

// bindOwner is one holder of a port: Linux's socket or TIME_WAIT socket in
// a bind bucket's owner list.
type bindOwner struct {
	family    uint8      // 4 (AF_INET) or 6 (AF_INET6)
	v6only    bool       // IPV6_V6ONLY; family 6 only
	addr      tuple.Addr // bound address; for family 6, an IPv4 Addr is the v4-mapped address
	port      uint16
	reuseAddr bool
	reusePort bool
	uid       uint32
	device    int // SO_BINDTODEVICE; 0 = none
	state     BindState
	// remote is the peer of a connection made through Connect or
	// ConnectAny (zero otherwise); autobound marks a socket whose port
	// ConnectAny picked, which other connects may share (Linux's
	// connect-created bind buckets, fastreuse = -1).
	remote    tuple.Endpoint
	autobound bool
}

// v4Addr is the socket's IPv4 receive address (sk_rcv_saddr): its own for
// family 4 and for a v4-mapped family-6 address, 0.0.0.0 for "::", and
// 127.0.0.6 for any other IPv6 address.
func (o *bindOwner) v4Addr() tuple.Addr { return v4AddrOf(o.family, o.addr) }

func v4AddrOf(family uint8, addr tuple.Addr) tuple.Addr {
	switch {
	case family == 4 || addr.Is4():
		return addr
	case addr == tuple.IPv6Unspecified():
		return tuple.IPv4Unspecified()
	}
	return loopback4IPv6
}

// v6Kind classifies a family-6 address the way ipv6_addr_type does for
// these rules. A family-4 socket has no IPv6 address; the rules treat it as
// v4-mapped.
type v6Kind uint8

const (
	v6Any    v6Kind = iota // ::
	v6Mapped               // ::ffff:a.b.c.d (or a family-4 socket)
	v6Other                // any other IPv6 address
)

func (o *bindOwner) v6Kind() v6Kind {
	switch {
	case o.family == 4 || o.addr.Is4():
		return v6Mapped
	case o.addr == tuple.IPv6Unspecified():
		return v6Any
	}
	return v6Other
}

// devicesOverlap: sockets bound to different devices never conflict.
func devicesOverlap(a, b *bindOwner) bool {
	return a.device == 0 || b.device == 0 || a.device == b.device
}

// bindConflict is inet_bind_conflict: whether the options and states of
// sk (the socket binding or listening) and sk2 (an owner of the port) keep
// them from sharing it, if their addresses overlap. relax is false only
// for the port-0 search, which never shares a port; reuseportOK is true
// for bind and listen. (Linux also requires sk's reuseport group, if any,
// to have no closed members; a socket that is binding is in no group, so
// that term is always true here.)
func bindConflict(sk, sk2 *bindOwner, relax, reuseportOK bool) bool {
	if !devicesOverlap(sk, sk2) {
		return false
	}
	reuseportShares := sk.reusePort && sk2.reusePort &&
		(sk2.state == StateTimeWait || sk.uid == sk2.uid)
	if sk.reuseAddr && sk2.reuseAddr && sk2.state != StateListen {
		return !relax || (!reuseportOK && reuseportShares)
	}
	return !reuseportOK || !reuseportShares
}

// rcvSaddrEqual is inet_rcv_saddr_equal(sk, sk2, true): whether the two
// sockets' bound addresses overlap, wildcards included.
func rcvSaddrEqual(sk, sk2 *bindOwner) bool {
	if sk.family == 6 {
		return ipv6RcvSaddrEqual(sk, sk2)
	}
	return ipv4RcvSaddrEqual(sk.v4Addr(), sk2.v4Addr(), sk2.family == 6 && sk2.v6only)
}

func ipv4RcvSaddrEqual(a1, a2 tuple.Addr, sk2v6only bool) bool {
	if sk2v6only {
		return false
	}
	any4 := tuple.IPv4Unspecified()
	return a1 == a2 || a1 == any4 || a2 == any4
}

// ipv6RcvSaddrEqual is the kernel's ipv6_rcv_saddr_equal for an AF_INET6
// sk.
func ipv6RcvSaddrEqual(sk, sk2 *bindOwner) bool {
	t1, t2 := sk.v6Kind(), sk2.v6Kind()
	sk2v6only := sk2.family == 6 && sk2.v6only
	if t1 == v6Mapped && t2 == v6Mapped { // both IPv4 in effect
		return ipv4RcvSaddrEqual(sk.v4Addr(), sk2.v4Addr(), sk2v6only)
	}
	if t1 == v6Any && t2 == v6Any {
		return true
	}
	if t2 == v6Any && !(sk2v6only && t1 == v6Mapped) {
		return true
	}
	if t1 == v6Any && !(sk.v6only && t2 == v6Mapped) {
		return true
	}
	return sk2.family == 6 && sk.addr == sk2.addr
}

// useBhash2 is inet_use_bhash2_on_bind: a bind to a specific address is
// checked against the owners of that address and of the wildcards (the
// bhash2 path); a wildcard bind against every owner of the port.
func useBhash2(sk *bindOwner) bool {
	if sk.family == 6 {
		switch sk.v6Kind() {
		case v6Any:
			return false
		case v6Other:
			return true
		}
	}
	return sk.v4Addr() != tuple.IPv4Unspecified()
}

// sameBhash2Bucket is inet_bind2_bucket_addr_match: whether sk2 is in the
// bhash2 bucket of sk's address. IPv4 and v4-mapped addresses share
// buckets; other IPv6 addresses are compared as IPv6.
func sameBhash2Bucket(sk, sk2 *bindOwner) bool {
	k1, k2 := sk.v6Kind(), sk2.v6Kind()
	if k1 == v6Mapped || k2 == v6Mapped {
		return k1 == k2 && sk.v4Addr() == sk2.v4Addr()
	}
	return k1 == k2 && sk.addr == sk2.addr
}

// inAnyBucket is inet_bind2_bucket_match_addr_any for the bucket holding
// sk2: whether a specific bind of sk must also be checked against sk2
// because sk2 holds a wildcard that covers sk's address.
func inAnyBucket(sk, sk2 *bindOwner) bool {
	k2 := sk2.v6Kind()
	if sk.family == 6 {
		if k2 == v6Any {
			return true
		}
		if k2 != v6Mapped {
			return false
		}
		if sk.v6only && sk.v6Kind() != v6Mapped {
			return false
		}
	}
	return sk2.v4Addr() == tuple.IPv4Unspecified() && (k2 == v6Mapped || k2 == v6Any)
}

// bhash2Conflict is __inet_bhash2_conflict: a v6only owner never blocks
// an IPv4 (or v4-mapped) socket on the bhash2 path.
func bhash2Conflict(sk, sk2 *bindOwner, relax, reuseportOK bool) bool {
	if sk2.family == 6 && sk2.v6only && (sk.family == 4 || sk.v6Kind() == v6Mapped) {
		return false
	}
	return bindConflict(sk, sk2, relax, reuseportOK)
}

// portConflict reports whether sk may not hold its port beside owners
// (every other holder of the same port): inet_csk_bind_conflict, plus
// inet_bhash2_addr_any_conflict for specific addresses. Ports applies the
// same test to a port's classes of holders (classConflictLocked); the
// tests compare the two.
func portConflict(sk *bindOwner, owners []*bindOwner, relax, reuseportOK bool) bool {
	bhash2 := useBhash2(sk)
	for _, sk2 := range owners {
		if sk2 != sk && holderConflict(sk, sk2, bhash2, relax, reuseportOK) {
			return true
		}
	}
	return false
}

// holderConflict is the test of one owner sk2 of the port, bhash2 being
// useBhash2(sk).
func holderConflict(sk, sk2 *bindOwner, bhash2, relax, reuseportOK bool) bool {
	switch {
	case !bhash2:
		return bindConflict(sk, sk2, relax, reuseportOK) && rcvSaddrEqual(sk, sk2)
	case sameBhash2Bucket(sk, sk2) || inAnyBucket(sk, sk2):
		return bhash2Conflict(sk, sk2, relax, reuseportOK)
	}
	return false
}
