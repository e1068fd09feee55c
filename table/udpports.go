package table

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/tuple"
)

// UDPPorts is the UDP bind table and lookup: which sockets hold which
// port (V is the stack's value for a socket, returned by lookups), by
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
//     changes what it meets afterwards, and its disconnect (connect(2)
//     with AF_UNSPEC) sets it back.
//
// Two orders matter, as in the kernel: the port's list (hslot), which the
// bind conflict walk follows and which nothing reorders, and each
// address's lookup chain (hslot2), where ties between equal scores go to
// the socket met first and where a rehash puts a socket at the head.
//
// A bind to port 0 gets a port from the ephemeral range that no socket
// holds. Bindings are values the caller keeps, like Ports'; Release gives
// a port back. All methods are safe for concurrent use. The writers
// (Bind, Connect, Disconnect, Release, Close) are serialized by one
// mutex and each rebuilds its port's snapshot, so a bind costs time in
// the sockets its port holds, as Linux's walk of the port's list does;
// LookupValue, the datagram path, is lock-free (it retries only when a
// writer published under it) and linearizable with the writers (the
// porcupine check). Memory grows with the bound sockets: a record a
// socket in the port lists, the four-tuple table and the snapshots (with
// their key arrays or address index), 2 KiB per block of 256 ports in
// use, and the 2 KiB block directory.
type UDPPorts[V comparable] struct {
	hasher    *tuple.Hasher
	mu        sync.Mutex                  // serializes the writers
	ports     map[uint16][]*UDPBinding[V] // in the kernel's hslot order (see Bind)
	seq       int64                       // the last chain rank handed out (see UDPBinding.rank)
	local     map[tuple.Addr]struct{}     // nil: any address
	low, high uint16
	closed    atomic.Bool
	// conns is the four-tuple table of connected sockets (Linux's
	// hash4): a datagram from a connected socket's peer finds it in one
	// lookup, however many sockets share the port (a QUIC server's
	// connected sockets all sit on 443). Connected sockets it holds are
	// left out of their port's snapshot, so the scan over the port's
	// unconnected sockets does not grow with them.
	conns *Established[V]
	// flows lists, per four-tuple of conns, the sockets connected on it,
	// the most recent first: the entry holds the first one's value, as
	// the kernel's hash4 chain, added to at its head, finds the most
	// recently connected; when it goes, the next takes the entry.
	flows map[tuple.Tuple][]*UDPBinding[V]
	// connPorts has a bit set for each port that may have sockets in
	// the four-tuple table: set before a connect adds its entry, cleared
	// once the port's last entry is gone and its snapshot published (see
	// find). 8 KiB, read by every lookup.
	connPorts [65536 / 64]atomic.Uint64
	// dir is the read side: per port, an immutable snapshot of its
	// sockets that every change of the port replaces (read-copy-update),
	// in blocks of 256 ports made on first use: Lookup loads two pointers
	// and takes no lock. 2 KiB, plus 2 KiB a block of ports in use.
	dir [256]atomic.Pointer[udpBlock[V]]
}

// udpBlock is 256 ports' snapshots.
type udpBlock[V comparable] [256]atomic.Pointer[udpSnap[V]]

// udpSnap is one port's sockets as Lookup sees them, in chain order: each
// with its fields as of the snapshot (Connect changes a binding's address
// and peer; the snapshot keeps its own copies).
type udpSnap[V comparable] struct {
	socks []udpView[V]
	// hasExact: some socket in socks is bound to a specific address;
	// without one, best skips its first pass (a port that only a
	// wildcard reuseport group holds is scored once, not five times).
	hasExact bool
	// connViews: some socket in socks is connected (bound to a device,
	// so not in the four-tuple table): best looks for its exact
	// four-tuple before scoring.
	connViews bool
	// hasConns: some socket of the port is in the four-tuple table as
	// of this snapshot. A lookup looks there (and hashes the flow) only
	// then, as Linux looks in hash4 only when the (address, port) slot
	// counts connected sockets: a port of bound sockets alone costs no
	// hash.
	hasConns bool
	// For a port with more than udpIndexMin sockets, the sockets by
	// receive address (as Linux switches to its (address, port) slots
	// past 10; here later, since a scan of contiguous records beats the
	// index's extra cache misses up to a few dozen sockets),
	// as indices into socks in chain order: exact4 and exact6 for IPv4 and
	// IPv6 datagrams, wild4 and wild6 the wildcard sockets each takes.
	// A lookup then scores only the sockets of its address.
	exact4, exact6 map[tuple.Addr][]int32
	wild4, wild6   []int32
	// For a smaller port, each socket's receive address in dense arrays
	// a lookup compares before it scores a socket: for IPv4, v4Key of
	// the address (0 for a socket IPv4 cannot reach); for
	// IPv6, the address (an IPv4 one for a socket IPv6 cannot reach). At
	// 17 sockets that is 2 cache lines to read instead of 22. Ports of up
	// to udpKeysMin sockets have neither index nor keys: every socket is
	// scored.
	keys4 []uint64
	keys6 []tuple.Addr
}

// udpIndexMin is the socket count of a port above which its snapshot is
// indexed by address. At 17 sockets a port (the 1e6 benchmark) the index
// cost 856 ns a lookup against the scan's 337.
const udpIndexMin = 32

type udpView[V comparable] struct {
	addr tuple.Addr
	// remote is the connected peer; or, with port 0 and an address, the
	// IPv6 peer address a disconnected AF_INET6 socket still holds (see
	// UDPBinding.peerLeft).
	remote tuple.Endpoint
	device int32
	family uint8
	v6only bool
	value  V // the binding's, copied: the datagram path reads no binding
	b      *UDPBinding[V]
	group  *udpGroupView[V] // nil without SO_REUSEPORT
}

// udpGroupView is a reuseport group in a snapshot: its members and which
// of them are connected.
type udpGroupView[V comparable] struct {
	members []udpMember[V] // one array: a pick reads one cache line more
	// anyConnected: some member is connected, so a pick may have to pass
	// over members.
	anyConnected bool
	hasConns     bool // the group's hasConns
}

// udpMember is a group member as a pick sees it.
type udpMember[V comparable] struct {
	value     V
	b         *UDPBinding[V]
	connected bool
}

// UDPBinding is one UDP socket's hold on a port, with the stack's value
// for the socket (V: its handle).
type UDPBinding[V comparable] struct {
	ports  *UDPPorts[V]
	owner  bindOwner
	remote tuple.Endpoint // the connected peer; zero if not connected
	// peerLeft is the peer address an AF_INET6 socket keeps after a
	// disconnect (hasPeerLeft): __udp_disconnect clears inet_daddr and
	// inet_dport but not sk_v6_daddr, so the socket goes on scoring IPv6
	// datagrams against that address — it takes only those from it, any
	// port, ahead of an unconnected rival, and none at all if the peer
	// was v4-mapped — while IPv4 datagrams see it unconnected. As a
	// SO_REUSEPORT member it still gets what its group's pick hands it
	// (the pick does not rescore; the lookup corpus shows the kernel
	// doing so).
	peerLeft    tuple.Addr
	hasPeerLeft bool
	group       *udpGroup[V] // its SO_REUSEPORT group; nil without SO_REUSEPORT
	value       V            // the stack's socket, set at Bind
	gone        bool
	// inConns: the socket is in the four-tuple table (Linux's hash4):
	// connected, no device, and either the entry's holder (the most
	// recently connected socket on its four-tuple) or one of those
	// behind it (UDPPorts.flows). It is then left out of the scan.
	inConns bool
	// rank is the socket's place in its address's lookup chain (hslot2),
	// lower first: a socket bound at the chain's head or moved there by
	// a rehash takes a rank below all others, one added at its tail
	// (IPv6 SO_REUSEPORT) one above.
	rank int64
	// addrLocked and portLocked are the kernel's SOCK_BINDADDR_LOCK and
	// SOCK_BINDPORT_LOCK: the socket was bound to a specific address, to
	// a given port (not 0). A disconnect keeps what they lock.
	addrLocked, portLocked bool
}

// udpGroup is a SO_REUSEPORT group (Linux's sock_reuseport): the sockets
// that joined it at bind, in order. A datagram the group takes goes to
// the member its flow hash picks, passing over connected members.
type udpGroup[V comparable] struct {
	members []*UDPBinding[V]
	// hasConns is reuseport_has_conns: a member connected while in the
	// group (never cleared). Without it, the first member a lookup
	// meets with a new best score answers for the whole lookup, however
	// the sockets after it would score (udp4_lib_lookup2's early
	// return); with it, the lookup goes on scoring.
	hasConns bool
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
	// Hasher is the stack's keyed hasher, whose flow hash picks a
	// reuseport group's member; nil means a new one keyed from
	// crypto/rand.
	Hasher *tuple.Hasher
}

// NewUDPPorts returns an empty UDP bind table. It returns ErrInvalid for
// an ephemeral range upside down or starting at 0.
func NewUDPPorts[V comparable](opts UDPPortsOptions) (*UDPPorts[V], error) {
	low, high := opts.EphemeralLow, opts.EphemeralHigh
	if low == 0 && high == 0 {
		low, high = defaultEphemeralLow, defaultEphemeralHigh
	}
	if low == 0 || low > high {
		return nil, ErrInvalid
	}
	h := opts.Hasher
	if h == nil {
		h = tuple.NewHasher()
	}
	conns, err := NewEstablished[V](EstablishedOptions{Hasher: h})
	if err != nil {
		return nil, err
	}
	p := &UDPPorts[V]{hasher: h, conns: conns, flows: map[tuple.Tuple][]*UDPBinding[V]{}, ports: map[uint16][]*UDPBinding[V]{}, low: low, high: high}
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
func (p *UDPPorts[V]) Bind(req BindRequest, v V) (*UDPBinding[V], error) {
	if err := validateBind(&req, p.local); err != nil {
		return nil, err
	}
	b := &UDPBinding[V]{ports: p, owner: ownerOf(req), value: v, addrLocked: req.Addr != udpWildcard(req.Family), portLocked: req.Port != 0}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
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
	if b.owner.reusePort {
		p.joinGroupLocked(b)
	}
	if b.owner.reusePort && b.owner.family == 6 {
		// An IPv6 SO_REUSEPORT socket goes to the list's tail, every other
		// to its head (udp_lib_get_port's sk_add_node_tail_rcu), so that
		// the order the conflict walk meets them in is the kernel's.
		p.ports[b.owner.port] = append(p.ports[b.owner.port], b)
		p.seq++
		b.rank = p.seq
	} else {
		p.ports[b.owner.port] = append([]*UDPBinding[V]{b}, p.ports[b.owner.port]...)
		p.toChainHeadLocked(b)
	}
	p.publishLocked(b.owner.port)
	return b, nil
}

// publishLocked replaces port's snapshot with one of its sockets now.
func (p *UDPPorts[V]) publishLocked(port uint16) {
	blk := p.dir[port>>8].Load()
	if blk == nil {
		blk = new(udpBlock[V])
		p.dir[port>>8].Store(blk)
	}
	list := p.ports[port]
	if len(list) == 0 {
		blk[port&255].Store(nil)
		return
	}
	snap := &udpSnap[V]{socks: make([]udpView[V], 0, len(list))}
	groups := map[*udpGroup[V]]*udpGroupView[V]{}
	chain := slices.Clone(list)
	slices.SortFunc(chain, func(a, b *UDPBinding[V]) int { return cmp.Compare(a.rank, b.rank) })
	for _, b := range chain {
		o := &b.owner
		v := udpView[V]{addr: o.addr, remote: b.remote, device: int32(o.device), family: o.family, v6only: o.v6only, value: b.value, b: b}
		if b.hasPeerLeft {
			v.remote = tuple.Endpoint{Addr: b.peerLeft}
		}
		if g := b.group; g != nil {
			gv := groups[g]
			if gv == nil {
				gv = &udpGroupView[V]{members: make([]udpMember[V], len(g.members)), hasConns: g.hasConns}
				for j, m := range g.members {
					gv.members[j] = udpMember[V]{value: m.value, b: m, connected: m.remote.Port != 0}
					gv.anyConnected = gv.anyConnected || m.remote.Port != 0
				}
				groups[g] = gv
			}
			v.group = gv
		}
		if !b.inConns {
			snap.socks = append(snap.socks, v)
			snap.connViews = snap.connViews || b.remote.Port != 0
			snap.hasExact = snap.hasExact || !o.addr.IsUnspecified()
		} else {
			snap.hasConns = true
		}
	}
	switch n := len(snap.socks); {
	case n > udpIndexMin:
		snap.index()
	case n > udpKeysMin:
		snap.fillKeys()
	}
	blk[port&255].Store(snap)
}

// index fills the snapshot's address index.
func (s *udpSnap[V]) index() {
	s.exact4, s.exact6 = map[tuple.Addr][]int32{}, map[tuple.Addr][]int32{}
	for i := range s.socks {
		v := &s.socks[i]
		if !(v.family == 6 && v.v6only) { // IPv4 datagrams reach it
			if a := v4AddrOf(v.family, v.addr); a.IsUnspecified() {
				s.wild4 = append(s.wild4, int32(i))
			} else {
				s.exact4[a] = append(s.exact4[a], int32(i))
			}
		}
		if v.family == 6 && !v.addr.Is4() { // IPv6 datagrams reach it
			if v.addr.IsUnspecified() {
				s.wild6 = append(s.wild6, int32(i))
			} else {
				s.exact6[v.addr] = append(s.exact6[v.addr], int32(i))
			}
		}
	}
}

// joinGroupLocked puts b into the group of the first socket of its port
// that it may share one with (udp_reuseport_add_sock: SO_REUSEPORT, same
// family, v6only, device and owner, the very same address), or a new one.
// A socket that left its group at connect (see Connect) still has
// SO_REUSEPORT: b and it start a new group (reuseport_add_sock allocates
// one for a sk2 without).
func (p *UDPPorts[V]) joinGroupLocked(b *UDPBinding[V]) {
	o := &b.owner
	for _, x := range p.ports[o.port] {
		xo := &x.owner
		if x != b && xo.reusePort && xo.family == o.family && xo.v6only == o.v6only && xo.device == o.device &&
			xo.uid == o.uid && xo.addr == o.addr {
			if x.group == nil {
				x.group = &udpGroup[V]{members: []*UDPBinding[V]{x}}
			}
			x.group.members = append(x.group.members, b)
			b.group = x.group
			return
		}
	}
	b.group = &udpGroup[V]{members: []*UDPBinding[V]{b}}
}

// freePortLocked picks a port of the ephemeral range that no socket
// holds, from a random start.
func (p *UDPPorts[V]) freePortLocked() (uint16, bool) {
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
func (p *UDPPorts[V]) inUseLocked(sk *bindOwner) bool {
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
// connect: it moves to the head of that address's chain and leaves its
// SO_REUSEPORT group), one bound to a specific address keeps it. A
// socket without a device goes into the four-tuple table, ahead of any
// connected on the same four-tuple before it. It returns
// ErrInvalid for a released binding, a wildcard local or remote, port 0,
// or a remote the socket cannot reach (IPv6 from an AF_INET socket, IPv4
// from a v6only one), and ErrClosed after Close.
func (b *UDPBinding[V]) Connect(local tuple.Addr, remote tuple.Endpoint) error {
	p := b.ports
	if local.IsUnspecified() || remote.Port == 0 || remote.Addr.IsUnspecified() ||
		(b.owner.family == 4 && (!remote.Addr.Is4() || !local.Is4())) ||
		(b.owner.v6only && remote.Addr.Is4()) {
		return ErrInvalid
	}
	if err := b.lockLive(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	defer p.settleConnPortLocked(b.owner.port)
	defer p.publishLocked(b.owner.port)
	p.leaveConnsLocked(b)
	if b.group != nil && b.owner.family == 6 && remote.Addr.Is4() {
		// Over IPv4, an AF_INET6 socket's connect marks its group
		// (__ip4_datagram_connect) before the rehash that may leave it.
		b.group.hasConns = true
	}
	if b.owner.addr.IsUnspecified() {
		// The rehash: the socket moves to its new address's chain, at the
		// head (udp_lib_rehash's hlist_add_head_rcu), and leaves its
		// reuseport group (reuseport_detach_sock), whose members share
		// the wildcard it no longer has. The port's list keeps its order.
		b.owner.addr = local
		b.leaveGroupLocked()
		p.toChainHeadLocked(b)
	}
	if b.group != nil {
		b.group.hasConns = true // reuseport_has_conns_set
	}
	b.remote, b.hasPeerLeft = remote, false
	if b.owner.device == 0 {
		p.joinConnsLocked(b)
	}
	return nil
}

// joinConnsLocked puts connected b in the four-tuple table, ahead of any
// socket connected on its four-tuple before it (SO_REUSEADDR lets two).
func (p *UDPPorts[V]) joinConnsLocked(b *UDPBinding[V]) {
	f := b.flowLocked()
	p.markConnPort(b.owner.port, true)
	list := p.flows[f]
	if len(list) == 0 {
		if p.conns.Insert(f, b.value) != nil {
			return // the table refused it (ErrCapacity): b stays in the scan, scored as connected
		}
	} else if !p.conns.CompareAndSwap(f, list[0].value, b.value) {
		return
	}
	p.flows[f] = append([]*UDPBinding[V]{b}, list...)
	b.inConns = true
}

// Disconnect is connect(2) with AF_UNSPEC (__udp_disconnect), connected
// or not: the socket forgets its peer and leaves the four-tuple table,
// and loses its SO_BINDTODEVICE device. One bound to a wildcard address
// gets the wildcard back, and (the kernel's rehash) goes to the head of
// the wildcard's chain and leaves any SO_REUSEPORT group it is in — an
// unconnected member too, which then takes the group's datagrams alone
// until it closes. One whose port was picked (Bind with port 0, or the
// stack's autobind) gives the port back, as Release does: released
// reports it, b is then released, and the socket binds again before it
// sends or receives. It returns ErrInvalid for a released binding and
// ErrClosed after Close.
func (b *UDPBinding[V]) Disconnect() (released bool, err error) {
	p := b.ports
	if err := b.lockLive(); err != nil {
		return false, err
	}
	defer p.mu.Unlock()
	if !b.portLocked {
		p.releaseLocked(b)
		return true, nil
	}
	// The snapshot with b back in the scan is published before b's
	// four-tuple entry goes: a lookup reads the four-tuple table first,
	// so it finds b connected or, missing it, loads a snapshot in which
	// b is there disconnected — never neither.
	wasIn, flow := b.inConns, b.flowLocked()
	b.inConns = false // out of the snapshot's exclusions; leaveFlowLocked below does the rest
	if b.owner.family == 6 && b.remote.Port != 0 {
		b.peerLeft, b.hasPeerLeft = b.remote.Addr, true
	}
	b.remote = tuple.Endpoint{}
	b.owner.device = 0
	if !b.addrLocked {
		if wild := udpWildcard(int(b.owner.family)); b.owner.addr != wild {
			b.owner.addr = wild
			p.toChainHeadLocked(b)
		}
		b.leaveGroupLocked()
	}
	p.publishLocked(b.owner.port)
	if wasIn {
		p.leaveFlowLocked(b, flow)
	}
	p.settleConnPortLocked(b.owner.port)
	return false, nil
}

// udpWildcard is the address that binds family's wildcard: 0.0.0.0, or
// "::" for AF_INET6, whose ::ffff:0.0.0.0 is an address of its own (it
// locks the address, as inet6_bind sees any address but "::").
func udpWildcard(family int) tuple.Addr {
	if family == 6 {
		return tuple.IPv6Unspecified()
	}
	return tuple.IPv4Unspecified()
}

// markConnPort sets or clears port's connPorts bit.
func (p *UDPPorts[V]) markConnPort(port uint16, conns bool) {
	w, bit := &p.connPorts[port>>6], uint64(1)<<(port&63)
	if conns {
		w.Or(bit)
	} else {
		w.And(^bit)
	}
}

// settleConnPortLocked clears port's connPorts bit if none of its
// sockets is in the four-tuple table: called once a writer has published
// the port's snapshot and made its four-tuple changes.
func (p *UDPPorts[V]) settleConnPortLocked(port uint16) {
	for _, x := range p.ports[port] {
		if x.inConns {
			return
		}
	}
	p.markConnPort(port, false)
}

// hasConnPort reports port's connPorts bit.
func (p *UDPPorts[V]) hasConnPort(port uint16) bool {
	return p.connPorts[port>>6].Load()&(1<<(port&63)) != 0
}

// toChainHeadLocked gives b a rank below every other socket's: the head
// of its address's chain.
func (p *UDPPorts[V]) toChainHeadLocked(b *UDPBinding[V]) {
	p.seq++
	b.rank = -p.seq
}

// lockLive takes the table's mutex for a change of b, or returns
// ErrClosed or ErrInvalid (b released) with it not held.
func (b *UDPBinding[V]) lockLive() error {
	p := b.ports
	p.mu.Lock()
	switch {
	case p.closed.Load():
		p.mu.Unlock()
		return ErrClosed
	case b.gone:
		p.mu.Unlock()
		return ErrInvalid
	}
	return nil
}

// flowLocked is b's four-tuple as a datagram from its peer carries it.
func (b *UDPBinding[V]) flowLocked() tuple.Tuple {
	return tuple.Tuple{Local: tuple.Endpoint{Addr: b.owner.addr, Port: b.owner.port}, Remote: b.remote}
}

// leaveConnsLocked takes b out of the four-tuple table if it is there.
func (p *UDPPorts[V]) leaveConnsLocked(b *UDPBinding[V]) {
	if b.inConns {
		b.inConns = false
		p.leaveFlowLocked(b, b.flowLocked())
	}
}

// leaveFlowLocked takes b out of four-tuple f's sockets: the entry goes
// with the last one, or, if b held it, passes to the next.
func (p *UDPPorts[V]) leaveFlowLocked(b *UDPBinding[V], f tuple.Tuple) {
	list := p.flows[f]
	i := slices.Index(list, b)
	if i < 0 {
		return
	}
	switch {
	case len(list) == 1:
		p.conns.Delete(f)
		delete(p.flows, f)
		return
	case i == 0:
		p.conns.CompareAndSwap(f, b.value, list[1].value)
	}
	p.flows[f] = slices.Delete(list, i, i+1)
}

// Release gives b's port back (close(2)). It returns ErrInvalid if b was
// released already, ErrClosed after Close.
func (b *UDPBinding[V]) Release() error {
	p := b.ports
	if err := b.lockLive(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	p.releaseLocked(b)
	return nil
}

// releaseLocked takes b out of the table (udp_lib_unhash).
func (p *UDPPorts[V]) releaseLocked(b *UDPBinding[V]) {
	b.gone = true
	p.leaveConnsLocked(b)
	defer p.settleConnPortLocked(b.owner.port)
	defer p.publishLocked(b.owner.port)
	b.leaveGroupLocked()
	list := slices.DeleteFunc(p.ports[b.owner.port], func(x *UDPBinding[V]) bool { return x == b }) // the lists are the writers' alone: snapshots copy
	if len(list) == 0 {
		delete(p.ports, b.owner.port)
	} else {
		p.ports[b.owner.port] = list
	}
}

// leaveGroupLocked takes b out of its SO_REUSEPORT group, if it is in one.
func (b *UDPBinding[V]) leaveGroupLocked() {
	if g := b.group; g != nil {
		g.members = slices.DeleteFunc(g.members, func(x *UDPBinding[V]) bool { return x == b })
		b.group = nil
	}
}

// Close empties the table; every later call returns ErrClosed.
func (p *UDPPorts[V]) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	p.closed.Store(true)
	p.ports, p.flows = nil, nil
	_ = p.conns.Close()
	for i := range p.dir {
		p.dir[i].Store(nil)
	}
	return nil
}

// Family is the socket's family, 4 or 6, and V6Only its IPV6_V6ONLY
// (true for an AF_INET6 socket bound to a specific IPv6 address, which
// can receive no IPv4); neither changes after Bind.
func (b *UDPBinding[V]) Family() int { return int(b.owner.family) }

// V6Only: see Family.
func (b *UDPBinding[V]) V6Only() bool { return b.owner.v6only }

// Port is the bound port.
func (b *UDPBinding[V]) Port() uint16 { return b.owner.port } // set before the binding is shared, never changed

// Addr is the bound address: the one bound, or after a connect of a
// wildcard socket, the source the route chose.
func (b *UDPBinding[V]) Addr() tuple.Addr {
	b.ports.mu.Lock()
	defer b.ports.mu.Unlock()
	return b.owner.addr
}

// Remote is the connected peer, zero if the socket is not connected.
func (b *UDPBinding[V]) Remote() tuple.Endpoint {
	b.ports.mu.Lock()
	defer b.ports.mu.Unlock()
	return b.remote
}

// LookupValue returns the value of the socket a datagram of flow t
// arriving on device goes to (t.Local its destination, t.Remote its
// source), by Linux's __udp4_lib_lookup and __udp6_lib_lookup:
//
//   - a socket connected to t.Remote from t.Local takes it first (the
//     four-tuple table, Linux's hash4), in one lookup;
//   - the sockets bound (or, after connect, rehashed) to the destination
//     address are scored first, the wildcard ones only if none of those
//     takes it;
//   - compute_score: a socket of the wrong family (an IPv6 datagram to an
//     AF_INET socket, an IPv4 one to a v6only socket), of another
//     address, connected to another peer or bound to another device scores
//     nothing; the rest score, for IPv4, 2 for AF_INET and 1 for AF_INET6,
//     4 more for a connected peer address, 4 for its port and 4 for a bound
//     device (IPv6: 1 for each); the first best in the address's chain
//     wins (the point Linux gives the socket last read on the receiving
//     CPU is not modeled: the kernel sets it on every receive, which
//     would put a write on this read path);
//   - a winner in a SO_REUSEPORT group hands the datagram to the member
//     the flow hash picks, passing over connected members (reuseport
//     select by hash), unrescored; a connected winner keeps it;
//   - a group none of whose members ever connected answers as soon as
//     the chain reaches it with a new best score: the sockets after it
//     are not scored, so a later device-bound socket loses to it (the
//     kernel's early return in udp4_lib_lookup2, which the lookup corpus
//     shows).
//
// It reports false when no socket takes the datagram: the stack sends
// the ICMP port unreachable. It is lock-free and allocates nothing: it
// reads the four-tuple table and the port's snapshot, so it is
// linearizable at those loads, and the socket whose value it returns may
// be released by the time the caller uses it (as in Linux, whose lookup
// runs under RCU).
func (p *UDPPorts[V]) LookupValue(t tuple.Tuple, device int) (V, bool) {
	if p.hasConnPort(t.Local.Port) {
		// find's connected path, spelled out: a hash and one four-tuple
		// lookup.
		h := p.hasher.Hash(t)
		if v, ok := p.conns.LookupHashed(h, t); ok {
			return v, true
		}
		return p.valueOf(&t, p.bestOf(&t, device, p.snapOf(t.Local.Port)), h, true)
	}
	v, hit, best, h, hashed := p.find(&t, device)
	if hit {
		return v, true
	}
	return p.valueOf(&t, best, h, hashed)
}

// valueOf is the value of the socket that gets a datagram of t that
// best scored best for (none for nil), hashing t for a group's pick if
// it was not hashed.
func (p *UDPPorts[V]) valueOf(t *tuple.Tuple, best *udpView[V], h uint64, hashed bool) (V, bool) {
	if best == nil {
		var zero V
		return zero, false
	}
	if !hashed && best.picks() {
		h = p.hasher.Hash(*t)
	}
	v, _ := best.receiver(h)
	return v, true
}

// find is the datagram path LookupValue and Lookup share: the
// four-tuple table's answer (hit), or the snapshot's best-scoring
// socket, and the flow hash if it was computed.
//
// On a port whose connPorts bit is set, the four-tuple table is read
// first and, on a miss, the snapshot as it is then: a connect adds its
// entry before it publishes the snapshot without the socket, a
// disconnect publishes the snapshot with the socket before its entry
// goes, a release takes the entry out first, so the lookup takes effect
// at its four-tuple read. On a port whose bit is clear — no socket there
// in the four-tuple table — the snapshot alone answers, with no hash
// and no four-tuple lookup: it is loaded, and used if the bit is still
// clear and the snapshot counts no connected socket (else it is stale,
// or a connect began: the lookup starts over, which only a writer's
// progress makes it do). The bit is set before a port's first entry goes
// in and cleared after its last one is gone and the snapshot without it
// published, so a snapshot read between two clear bits is current at a
// moment when the four-tuple table holds nothing of the port.
func (p *UDPPorts[V]) find(t *tuple.Tuple, device int) (v V, hit bool, best *udpView[V], h uint64, hashed bool) {
	port := t.Local.Port
	for {
		if p.hasConnPort(port) {
			h = p.hasher.Hash(*t)
			if v, ok := p.conns.LookupHashed(h, *t); ok {
				return v, true, nil, h, true
			}
			return v, false, p.bestOf(t, device, p.snapOf(port)), h, true
		}
		snap := p.snapOf(port)
		if p.hasConnPort(port) || snap != nil && snap.hasConns {
			continue
		}
		return v, false, p.bestOf(t, device, snap), 0, false
	}
}

// bestOf is snap.best, or nil for a port without a snapshot.
func (p *UDPPorts[V]) bestOf(t *tuple.Tuple, device int, snap *udpSnap[V]) *udpView[V] {
	if snap == nil {
		return nil
	}
	return snap.best(t, device, snap.how())
}

// snapOf loads port's snapshot; nil for a port without sockets.
func (p *UDPPorts[V]) snapOf(port uint16) *udpSnap[V] {
	blk := p.dir[port>>8].Load()
	if blk == nil {
		return nil
	}
	return blk[port&255].Load()
}

// Lookup is LookupValue's answer as the socket's binding, for control
// paths and tests: the same choice, but a connected socket found in the
// four-tuple table is looked up under the table's mutex.
func (p *UDPPorts[V]) Lookup(t tuple.Tuple, device int) (*UDPBinding[V], bool) {
	_, hit, best, h, hashed := p.find(&t, device)
	if hit {
		// The entry's binding is the writers' to look up: under their
		// mutex, where the four-tuple table and the lists agree, ask again.
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, hit, best, h, hashed = p.find(&t, device); hit {
			if l := p.flows[t]; len(l) > 0 {
				return l[0], true
			}
		}
	}
	if best == nil {
		return nil, false
	}
	if !hashed && best.picks() {
		h = p.hasher.Hash(t)
	}
	_, b := best.receiver(h)
	return b, true
}

// receiver is the socket that gets a datagram of flow hash h that v
// scored best for: v itself, or if v is an unconnected member of a
// SO_REUSEPORT group, the member the hash picks.
func (v *udpView[V]) receiver(h uint64) (V, *UDPBinding[V]) {
	if v.picks() {
		g := v.group
		i := g.pick(h)
		m := &g.members[i]
		return m.value, m.b
	}
	return v.value, v.b
}

// picks reports whether v hands its datagrams to its group's pick: an
// unconnected member of a group of more than one.
func (v *udpView[V]) picks() bool {
	return v.group != nil && v.remote.Port == 0 && len(v.group.members) > 1
}

// best is the socket of the snapshot (the port's unconnected sockets,
// and those not in the four-tuple table) that a datagram of t scores
// best for, in two passes (the destination address's sockets, then the
// wildcard's) over the chain, through the address index if indexed.
func (s *udpSnap[V]) best(t *tuple.Tuple, device int, how udpScan) *udpView[V] {
	v4 := t.Local.Addr.Is4()
	if s.connViews {
		// A connected socket bound to a device: the kernel has it in
		// hash4 like any connected socket, found before the scoring (and
		// before a group's early answer) when the device matches.
		for i := range s.socks {
			if v := &s.socks[i]; v.remote.Port != 0 && v.remote == t.Remote && udpScore(v, t, v4, false, device) > 0 {
				return v
			}
		}
	}
	var best *udpView[V]
	score := 0
	try := func(v *udpView[V], wildcard bool) (stop bool) {
		if sc := udpScore(v, t, v4, wildcard, device); sc > score {
			best, score = v, sc
			return v.answersAtOnce()
		}
		return false
	}
	switch how {
	case udpScanIndex:
		exact, wild := s.exact6[t.Local.Addr], s.wild6
		if v4 {
			exact, wild = s.exact4[t.Local.Addr], s.wild4
		}
		for pass, idx := range [2][]int32{exact, wild} {
			for _, i := range idx {
				if try(&s.socks[i], pass == 1) {
					return best
				}
			}
			if best != nil {
				break
			}
		}
	case udpScanKeys:
		if v4 {
			want := [2]uint64{v4Key(t.Local.Addr), v4Key(tuple.IPv4Unspecified())}
			for pass := s.firstPass(); pass < 2 && best == nil; pass++ {
				for i, k := range s.keys4 {
					if k == want[pass] && try(&s.socks[i], pass == 1) {
						return best
					}
				}
			}
			break
		}
		want := [2]tuple.Addr{t.Local.Addr, tuple.IPv6Unspecified()}
		for pass := s.firstPass(); pass < 2 && best == nil; pass++ {
			for i := range s.keys6 {
				if s.keys6[i] == want[pass] && try(&s.socks[i], pass == 1) {
					return best
				}
			}
		}
	default: // udpScanAll
		for pass := s.firstPass(); pass < 2 && best == nil; pass++ {
			for i := range s.socks {
				if try(&s.socks[i], pass == 1) {
					return best
				}
			}
		}
	}
	return best
}

// firstPass is best's first pass: 0, the destination address's sockets,
// unless every socket is bound to a wildcard.
func (s *udpSnap[V]) firstPass() int {
	if s.hasExact {
		return 0
	}
	return 1
}

// udpScan is how best finds a snapshot's candidates: by its address
// index (ports of many sockets), by its dense key arrays, or, as the
// tests' reference, by scoring every socket.
type udpScan uint8

const (
	udpScanAll udpScan = iota
	udpScanKeys
	udpScanIndex
)

// how is the way a lookup scans s.
func (s *udpSnap[V]) how() udpScan {
	switch {
	case s.exact4 != nil:
		return udpScanIndex
	case s.keys4 != nil:
		return udpScanKeys
	}
	return udpScanAll
}

// udpKeysMin is the socket count of a port above which its snapshot
// has key arrays: below, scoring the few sockets costs less than the
// arrays' own cache miss (10 ns at one socket a port, the 1e4
// benchmark; 20% less at 17, the 1e6 one).
const udpKeysMin = 4

// v4Key is an IPv4 address's keys4 entry: its low word, the v4-mapped
// form's 0xffff marker and the four bytes, never 0.
func v4Key(a tuple.Addr) uint64 {
	_, lo := a.Words()
	return lo
}

// fillKeys fills the snapshot's key arrays from its sockets.
func (s *udpSnap[V]) fillKeys() {
	s.keys4, s.keys6 = make([]uint64, len(s.socks)), make([]tuple.Addr, len(s.socks))
	for i := range s.socks {
		v := &s.socks[i]
		if !(v.family == 6 && v.v6only) { // IPv4 datagrams reach it
			s.keys4[i] = v4Key(v4AddrOf(v.family, v.addr))
		}
		s.keys6[i] = tuple.IPv4Unspecified() // no IPv6 destination is an IPv4 address
		if v.family == 6 && !v.addr.Is4() {  // IPv6 datagrams reach it
			s.keys6[i] = v.addr
		}
	}
}

// answersAtOnce reports whether a lookup that meets v with a new best
// score stops there: v is an unconnected member of a SO_REUSEPORT group
// (one of one included) none of whose members ever connected, so the
// kernel returns the group's pick without scoring the rest of the chain
// — a later socket bound to the datagram's device loses to it (the
// lookup corpus's udp-dev-lo-then-group2).
func (v *udpView[V]) answersAtOnce() bool {
	return v.group != nil && v.remote.Port == 0 && !v.group.hasConns
}

// udpScore is compute_score for a socket and a datagram of t; 0 is no
// match. wildcard selects the pass over sockets bound to the wildcard
// address.
func udpScore[V comparable](v *udpView[V], t *tuple.Tuple, v4, wildcard bool, device int) int {
	o := v
	score := 1
	if v4 {
		if o.family == 6 && o.v6only {
			return 0
		}
		addr := v4AddrOf(o.family, o.addr)
		if addr.IsUnspecified() != wildcard || (!wildcard && addr != t.Local.Addr) {
			return 0
		}
		if o.family == 4 {
			score = 2
		}
	} else {
		if o.family != 6 || o.addr.Is4() {
			return 0
		}
		if o.addr.IsUnspecified() != wildcard || (!wildcard && o.addr != t.Local.Addr) {
			return 0
		}
	}
	step := 1
	if v4 {
		step = 4
	}
	if r := v.remote; r.Port != 0 {
		if r != t.Remote {
			return 0
		}
		score += 2 * step
	} else if !v4 && r.Addr != (tuple.Addr{}) {
		// A disconnected AF_INET6 socket's peer address (peerLeft).
		if r.Addr != t.Remote.Addr {
			return 0
		}
		score += step
	}
	if o.device != 0 {
		if int(o.device) != device {
			return 0
		}
		score += step
	}
	return score
}

// pick is the member for a flow hash, by index: reciprocal scaling onto
// the members, then forward to the first one not connected.
func (g *udpGroupView[V]) pick(hash uint64) int {
	n := len(g.members)
	i := tuple.Shard(hash, n)
	if !g.anyConnected {
		return i
	}
	for range n {
		if !g.members[i].connected {
			return i
		}
		if i++; i == n {
			i = 0
		}
	}
	return tuple.Shard(hash, n)
}

// Value is the stack's socket given to Bind.
func (b *UDPBinding[V]) Value() V { return b.value }

// SameGroup reports whether b and o are one SO_REUSEPORT group's members
// (or the same socket) now: a wildcard-bound member leaves its group at
// connect, and a released one at release.
func (b *UDPBinding[V]) SameGroup(o *UDPBinding[V]) bool {
	if b == o {
		return true
	}
	b.ports.mu.Lock()
	defer b.ports.mu.Unlock()
	return b.group != nil && b.group == o.group
}
