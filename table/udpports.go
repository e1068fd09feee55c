package table

import (
	"math/rand/v2"
	"sync"

	"github.com/socktable/socktable/tuple"
)

// UDPPorts is the UDP bind table: which sockets hold which port, by
// Linux's UDP rules (udp_lib_get_port and udp_lib_lport_inuse in
// net/ipv4/udp.c), which are not TCP's: no listen and no TIME_WAIT, and
//
//   - two sockets whose addresses overlap (inet_rcv_saddr_equal, wildcards
//     included) and whose devices may meet share a port only if both set
//     SO_REUSEADDR, or both set SO_REUSEPORT under one owner;
//   - the port's sockets are looked at in the kernel's list order (newest
//     first, but IPv6 SO_REUSEPORT sockets at the end, oldest first), and
//     the first one that overlaps and is not covered by SO_REUSEADDR
//     decides alone: a SO_REUSEPORT one of the same owner lets the bind
//     through, whatever the others are (udp_lib_lport_inuse returns at
//     the first match);
//   - connect(2) of a socket bound to a wildcard address sets its address
//     to the source the route chose (ip4_datagram_connect's rehash), which
//     changes what it meets afterwards.
//
// A bind to port 0 gets a port from the ephemeral range that no socket
// holds. Bindings are values the caller keeps, like Ports'; Release gives
// a port back. All methods are safe for concurrent use and serialized by
// one mutex: binds and connects are control-path operations (the
// datagram path reads the lookup tables, not this one). Memory grows with
// the bound sockets, one map entry a port and a record a socket.
type UDPPorts struct {
	mu        sync.Mutex
	ports     map[uint16][]*UDPBinding // in the kernel's hslot order (see Bind)
	local     map[tuple.Addr]struct{}  // nil: any address
	low, high uint16
	closed    bool
}

// UDPBinding is one UDP socket's hold on a port.
type UDPBinding struct {
	ports  *UDPPorts
	owner  bindOwner
	remote tuple.Endpoint // the connected peer; zero if not connected
	gone   bool
}

// UDPPortsOptions configures a UDPPorts: the host's addresses and the
// ephemeral range, as PortsOptions does for TCP.
type UDPPortsOptions struct {
	// LocalAddrs, if set, are the only specific addresses a socket may
	// bind (others: ErrAddrNotAvail).
	LocalAddrs []tuple.Addr
	// EphemeralLow and EphemeralHigh are ip_local_port_range; zero means
	// Linux's 32768-60999.
	EphemeralLow, EphemeralHigh uint16
}

// NewUDPPorts returns an empty UDP bind table. It returns ErrInvalid for
// an ephemeral range upside down or starting at 0.
func NewUDPPorts(opts UDPPortsOptions) (*UDPPorts, error) {
	low, high := opts.EphemeralLow, opts.EphemeralHigh
	if low == 0 && high == 0 {
		low, high = defaultEphemeralLow, defaultEphemeralHigh
	}
	if low == 0 || low > high {
		return nil, ErrInvalid
	}
	p := &UDPPorts{ports: map[uint16][]*UDPBinding{}, low: low, high: high}
	if opts.LocalAddrs != nil {
		p.local = map[tuple.Addr]struct{}{}
		for _, a := range opts.LocalAddrs {
			p.local[a] = struct{}{}
		}
	}
	return p, nil
}

// Bind binds a UDP socket (bind(2)): req as for Ports.Bind. It returns
// ErrAddrInUse when a socket already there keeps the port (see
// UDPPorts), ErrNoPorts when a port-0 bind finds no free port, ErrInvalid
// for a bad family or address (a v6only socket binding a v4-mapped
// address), ErrAddrNotAvail for an address not in LocalAddrs, and
// ErrClosed after Close.
func (p *UDPPorts) Bind(req BindRequest) (*UDPBinding, error) {
	if err := validateBind(&req, p.local); err != nil {
		return nil, err
	}
	b := &UDPBinding{ports: p, owner: ownerOf(req)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if req.Port == 0 {
		port, ok := p.freePortLocked()
		if !ok {
			return nil, ErrNoPorts
		}
		b.owner.port = port
	} else if p.inUseLocked(&b.owner) {
		return nil, ErrAddrInUse
	}
	if b.owner.reusePort && b.owner.family == 6 {
		// An IPv6 SO_REUSEPORT socket goes to the list's tail, every other
		// to its head (udp_lib_get_port's sk_add_node_tail_rcu), so that
		// the order the conflict walk meets them in is the kernel's.
		p.ports[b.owner.port] = append(p.ports[b.owner.port], b)
	} else {
		p.ports[b.owner.port] = append([]*UDPBinding{b}, p.ports[b.owner.port]...)
	}
	return b, nil
}

// freePortLocked picks a port of the ephemeral range that no socket
// holds, from a random start.
func (p *UDPPorts) freePortLocked() (uint16, bool) {
	span := int(p.high) - int(p.low) + 1
	start := rand.IntN(span)
	for i := range span {
		port := p.low + uint16((start+i)%span)
		if len(p.ports[port]) == 0 {
			return port, true
		}
	}
	return 0, false
}

// inUseLocked is udp_lib_lport_inuse for a socket not yet in a reuseport
// group: the newest overlapping holder not covered by SO_REUSEADDR
// decides.
func (p *UDPPorts) inUseLocked(sk *bindOwner) bool {
	for _, b := range p.ports[sk.port] {
		sk2 := &b.owner
		if (sk2.reuseAddr && sk.reuseAddr) || !devicesOverlap(sk, sk2) || !rcvSaddrEqual(sk, sk2) {
			continue
		}
		return !(sk2.reusePort && sk.reusePort && sk2.uid == sk.uid)
	}
	return false
}

// Connect records b's connect(2) to remote, routed from local: a socket
// bound to a wildcard takes local as its address (the kernel's rehash on
// connect), one bound to a specific address keeps it. It returns
// ErrInvalid for a released binding, a wildcard local or remote, port 0,
// or a remote the socket cannot reach (IPv6 from an AF_INET socket, IPv4
// from a v6only one), and ErrClosed after Close.
func (b *UDPBinding) Connect(local tuple.Addr, remote tuple.Endpoint) error {
	p := b.ports
	if local.IsUnspecified() || remote.Port == 0 || remote.Addr.IsUnspecified() ||
		(b.owner.family == 4 && (!remote.Addr.Is4() || !local.Is4())) ||
		(b.owner.v6only && remote.Addr.Is4()) {
		return ErrInvalid
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case b.gone:
		return ErrInvalid
	}
	if b.owner.addr.IsUnspecified() {
		b.owner.addr = local
	}
	b.remote = remote
	return nil
}

// Release gives b's port back (close(2)). It returns ErrInvalid if b was
// released already, ErrClosed after Close.
func (b *UDPBinding) Release() error {
	p := b.ports
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case b.gone:
		return ErrInvalid
	}
	b.gone = true
	list := p.ports[b.owner.port]
	for i, x := range list {
		if x == b {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.ports, b.owner.port)
	} else {
		p.ports[b.owner.port] = list
	}
	return nil
}

// Close empties the table; every later call returns ErrClosed.
func (p *UDPPorts) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	p.ports = nil
	return nil
}

// Port is the bound port.
func (b *UDPBinding) Port() uint16 { return b.owner.port }

// Addr is the bound address: the one bound, or after a connect of a
// wildcard socket, the source the route chose.
func (b *UDPBinding) Addr() tuple.Addr { return b.owner.addr }

// Remote is the connected peer, zero if the socket is not connected.
func (b *UDPBinding) Remote() tuple.Endpoint { return b.remote }
