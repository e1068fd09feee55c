package table

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/tuple"
)

// PortsOptions configures a Ports table.
type PortsOptions struct {
	// LocalAddrs lists the addresses a bind may name besides the
	// wildcards (an IPv4 address also allows its v4-mapped form). nil
	// accepts every address: the stack checks locality itself.
	LocalAddrs []tuple.Addr
	// EphemeralLow and EphemeralHigh bound the ports a bind to port 0
	// picks from (inclusive; Linux's ip_local_port_range). Both zero
	// means 32768–60999, Linux's default. Low above high, or low 0, is
	// ErrCapacity.
	EphemeralLow, EphemeralHigh uint16
	// Reserved ports are never picked for port 0
	// (ip_local_reserved_ports); they may still be bound explicitly.
	Reserved []uint16
	// Flows, if set, is asked by Connect and ConnectAny whether a
	// four-tuple is taken (by an established connection, or a TIME_WAIT
	// one that tcp_tw_reuse does not let go). nil: they check only the
	// connections Ports itself knows of.
	Flows FlowChecker
	// Hasher keys ConnectAny's per-destination port offsets and its shard
	// test; it should be the stack's shared one. nil means a new one.
	Hasher *tuple.Hasher
}

// FlowChecker is what Ports needs from the established and TIME_WAIT
// tables: whether connect() may use a four-tuple.
type FlowChecker interface {
	// FlowInUse reports whether t (local, remote) belongs to a
	// connection that a new connect() may not take over.
	FlowInUse(t tuple.Tuple) bool
}

// BindRequest is a bind(2): the socket's family and options and the
// address and port it asks for.
type BindRequest struct {
	// Family is 4 (AF_INET) or 6 (AF_INET6).
	Family int
	// V6Only is IPV6_V6ONLY (family 6 only): the socket takes no IPv4.
	V6Only bool
	// Addr is the local address: a wildcard (tuple.IPv4Unspecified,
	// tuple.IPv6Unspecified) or a specific address. For family 6 an IPv4
	// Addr is the v4-mapped address ::ffff:a.b.c.d, which makes the socket
	// IPv4-only (::ffff:0.0.0.0 is an IPv4 wildcard), as in Linux.
	Addr tuple.Addr
	// Port is the port; 0 asks Bind to pick one.
	Port uint16
	// ReuseAddr and ReusePort are SO_REUSEADDR and SO_REUSEPORT.
	ReuseAddr, ReusePort bool
	// Owner is the socket's owner (its uid): SO_REUSEPORT shares a port
	// only between sockets of one owner, so a port cannot be hijacked.
	Owner uint32
	// Device is the SO_BINDTODEVICE interface index; 0 for none. Sockets
	// bound to different devices never conflict.
	Device int
}

// Ports is the bind table (Linux's bhash/bhash2): every socket that holds
// a local port is in it, from bind() until it and its TIME_WAIT are gone,
// and Bind and Listen decide port sharing exactly as Linux does:
//
//	new socket                existing holder                        result
//	SO_REUSEADDR              SO_REUSEADDR, not listening            shares (bound, connected, TIME_WAIT)
//	SO_REUSEADDR only         SO_REUSEADDR, listening                ErrAddrInUse
//	SO_REUSEPORT              SO_REUSEPORT, same owner or TIME_WAIT  shares
//	SO_REUSEPORT              SO_REUSEPORT, other owner              ErrAddrInUse
//	no option                 any overlapping holder                 ErrAddrInUse
//	any                       bound to another device                shares
//
// where two holders overlap when their addresses are equal or either is a
// wildcard covering the other's family: "::" covers IPv4 unless v6only;
// 0.0.0.0 and ::ffff:0.0.0.0 cover IPv4 and dual-stack IPv6 holders; a
// v6only socket never blocks an IPv4 one. Listen checks again, as Linux's
// listen() does: two SO_REUSEADDR sockets may both bind a port, and the
// second to listen gets ErrAddrInUse. The rules are transcribed from the
// kernel in bindrule.go and checked against answers recorded from the
// real kernel (testdata/kernel).
//
// Concurrency: every method is safe for concurrent use and linearizable;
// methods on different ports take different locks (one per stripe of
// ports), so binds to different ports rarely contend. Bind to port 0
// may lock many stripes in turn. Methods may block briefly on a stripe's
// mutex; they never block on I/O.
//
// Memory: a fixed 256 KiB for ConnectAny's perturbation table (2^16
// entries, as in Linux) and a bit per port of the ephemeral range; then
// one Binding (about 120 bytes) per bound socket, the port's entry while
// it has holders, and a bitmap of the range (3.5 KiB by default) per
// destination connected to, for at most 4096 destinations (see portMaps).
type Ports struct {
	stripes   [portStripes]portStripe
	local     map[tuple.Addr]struct{} // immutable; nil accepts any address
	low, high uint16                  // immutable ephemeral range, inclusive
	reserved  [1 << 16 / 64]uint64    // immutable bitmap
	flows     FlowChecker             // immutable; may be nil
	hasher    *tuple.Hasher           // immutable
	perturb   []atomic.Uint32         // RFC 6056 Algorithm 4's table, 2^16 entries
	maps      portMaps                // hints for ConnectAny's scan
	closed    atomic.Bool

	// listeners is the listener index attached by NewListeners, if any: then
	// listening goes only through it (Listeners.Listen, Listener.Close),
	// so the two registries cannot drift. Set once.
	listeners atomic.Pointer[attachedIndex]
}

// attachedIndex is what Ports knows of its listener index: how to empty
// it when the table closes.
type attachedIndex struct{ clear func() }

const portStripes = 256

type portStripe struct {
	mu      sync.Mutex
	holders map[uint16][]*bindOwner // port -> its holders, in bind order
	_       [40]byte
}

// Binding is one socket's hold on a local port, from Ports.Bind (or
// Ports.Inherit) until Ports.Release. Its methods read fields that only
// Ports changes, under the port's lock; they are safe to call
// concurrently with Ports' methods.
type Binding struct {
	owner    bindOwner // guarded by the port's stripe lock
	released bool      // guarded by the port's stripe lock
	ports    *Ports
}

// NewPorts returns an empty bind table. It returns ErrCapacity for an
// ephemeral range with low 0 or low above high, and ErrInvalidAddr for a
// wildcard in LocalAddrs.
func NewPorts(opts PortsOptions) (*Ports, error) {
	p := &Ports{low: opts.EphemeralLow, high: opts.EphemeralHigh, flows: opts.Flows, hasher: opts.Hasher,
		perturb: make([]atomic.Uint32, perturbSize)}
	if p.hasher == nil {
		p.hasher = tuple.NewHasher()
	}
	if p.low == 0 && p.high == 0 {
		p.low, p.high = 32768, 60999
	}
	if p.low == 0 || p.low > p.high {
		return nil, ErrCapacity
	}
	p.maps = newPortMaps(int(p.high-p.low) + 1)
	if opts.LocalAddrs != nil {
		p.local = make(map[tuple.Addr]struct{}, len(opts.LocalAddrs))
		for _, a := range opts.LocalAddrs {
			if a.IsUnspecified() {
				return nil, ErrInvalidAddr
			}
			p.local[a] = struct{}{}
		}
	}
	for _, r := range opts.Reserved {
		p.reserved[r/64] |= 1 << (r % 64)
	}
	for i := range p.stripes {
		p.stripes[i].holders = make(map[uint16][]*bindOwner)
	}
	return p, nil
}

func (p *Ports) stripe(port uint16) *portStripe { return &p.stripes[port%portStripes] }

func (p *Ports) isReserved(port uint16) bool { return p.reserved[port/64]&(1<<(port%64)) != 0 }

// Bind binds a socket: it returns the socket's Binding, or ErrAddrInUse if
// a holder of the port keeps it from sharing (see Ports), ErrInvalid for a
// family other than 4 or 6, an IPv6 address on family 4, V6Only on family
// 4, a v4-mapped address on a V6Only socket or a negative Device (Linux's
// EINVAL), ErrAddrNotAvail for an address not in LocalAddrs, ErrNoPorts
// when port 0 finds no free port, and ErrClosed after Close.
//
// Port 0 is picked as Linux's bind() does (inet_csk_find_open_port): from
// a random start, odd ports first, then even; with SO_REUSEADDR the lower
// half of the range first; never a port shared with another holder, even
// where the options would allow it.
func (p *Ports) Bind(req BindRequest) (*Binding, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if err := p.validate(&req); err != nil {
		return nil, err
	}
	b := &Binding{ports: p, owner: ownerOf(req)}
	if req.Port == 0 {
		return b, p.bindAny(b)
	}
	s := p.stripe(req.Port)
	s.mu.Lock()
	defer s.mu.Unlock()
	holders := s.holders[req.Port]
	if portConflict(&b.owner, holders, true, true) {
		return nil, ErrAddrInUse
	}
	p.addHolder(s, req.Port, &b.owner)
	return b, nil
}

// ownerOf is the holder record of a validated request.
func ownerOf(req BindRequest) bindOwner {
	o := bindOwner{
		family: uint8(req.Family), v6only: req.V6Only, addr: req.Addr, port: req.Port,
		reuseAddr: req.ReuseAddr, reusePort: req.ReusePort, uid: req.Owner, device: req.Device,
	}
	if o.v6Kind() == v6Other {
		// Linux's inet6_bind: a socket bound to a specific IPv6 address
		// can receive no IPv4, so it becomes v6only for every later rule
		// (a later 0.0.0.0 bind of the port does not meet it). A
		// dual-stack "::" that connects over IPv6 does not: it keeps
		// meeting 0.0.0.0.
		o.v6only = true
	}
	return o
}

func (p *Ports) validate(req *BindRequest) error {
	switch {
	case req.Device < 0:
		return ErrInvalid
	case req.Family == 4:
		if !req.Addr.Is4() || req.V6Only {
			return ErrInvalid
		}
	case req.Family == 6:
		if req.V6Only && req.Addr.Is4() {
			return ErrInvalid
		}
	default:
		return ErrInvalid
	}
	if p.local != nil && !req.Addr.IsUnspecified() {
		if _, ok := p.local[req.Addr]; !ok {
			return ErrAddrNotAvail
		}
	}
	return nil
}

// bindAny picks a port for b (inet_csk_find_open_port) and adds b to it.
func (p *Ports) bindAny(b *Binding) error {
	low, high := int(p.low), int(p.high)+1 // [low, high)
	attemptHalf := b.owner.reuseAddr
	var upper bool // scanning the upper half
	for {
		lo, hi := low, high
		if attemptHalf {
			half := (high - low) / 2
			if !upper {
				hi = low + half
			} else {
				lo = low + half
			}
		}
		if port, ok := p.scan(b, lo, hi); ok {
			b.owner.port = port
			return nil
		}
		if !attemptHalf || upper {
			return ErrNoPorts
		}
		upper = true
	}
}

// scan tries the ports of [lo, hi): odd offsets from a random start
// first, then even ones (connect's picks favour the other parity).
func (p *Ports) scan(b *Binding, lo, hi int) (uint16, bool) {
	remaining := hi - lo
	if remaining > 1 {
		remaining &^= 1
	}
	if remaining <= 0 {
		return 0, false
	}
	offset := rand.IntN(remaining) | 1
	for parity := 0; parity < 2; parity++ {
		port := lo + offset
		for i := 0; i < remaining; i, port = i+2, port+2 {
			if port >= hi {
				port -= remaining
			}
			if port < lo || port >= hi || p.isReserved(uint16(port)) {
				continue
			}
			if p.tryPort(b, uint16(port)) {
				return uint16(port), true
			}
		}
		offset--
	}
	return 0, false
}

// tryPort adds b to port if no holder conflicts even without the relaxed
// sharing rules (relax=false: a picked port is never shared by options).
func (p *Ports) tryPort(b *Binding, port uint16) bool {
	s := p.stripe(port)
	s.mu.Lock()
	defer s.mu.Unlock()
	holders := s.holders[port]
	b.owner.port = port
	if portConflict(&b.owner, holders, false, false) {
		return false
	}
	p.addHolder(s, port, &b.owner)
	return true
}

// addHolder adds o to port's holders. Caller holds s, port's stripe lock.
func (p *Ports) addHolder(s *portStripe, port uint16, o *bindOwner) {
	s.holders[port] = append(s.holders[port], o)
	p.noteBound(port, s.holders[port])
}

// lockFor locks the stripe of b's port, unless the table is closed.
func (p *Ports) lockFor(b *Binding) (*portStripe, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	s := p.stripe(b.owner.port)
	s.mu.Lock()
	return s, nil
}

// Listen re-runs the conflict check as listen(2) does and, if it passes,
// marks b listening. It returns ErrAddrInUse on a conflict (b stays
// bound, not listening), ErrInvalid if b is connected, in TIME_WAIT or
// released, and ErrClosed after Close. Listening again is a no-op.
//
// A table with a listener index (NewListeners) has one registry of
// listeners, the index: there Listen returns ErrInvalid, and a socket
// listens through Listeners.Listen, whose handle's Close removes it from
// both (two registries that each track listeners drift apart, as gVisor's
// did: #7428).
func (p *Ports) Listen(b *Binding) error {
	if p.listeners.Load() != nil {
		return ErrInvalid
	}
	return p.listen(b)
}

// listen is Listen for the attached index.
func (p *Ports) listen(b *Binding) error {
	s, err := p.lockFor(b)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	switch {
	case b.released || b.owner.state == StateConnected || b.owner.state == StateTimeWait:
		return ErrInvalid
	case b.owner.state == StateListen:
		return nil
	}
	b.owner.state = StateListen
	if portConflict(&b.owner, s.holders[b.owner.port], true, true) {
		b.owner.state = StateBound
		return ErrAddrInUse
	}
	return nil
}

// Connect records that b's socket connected to remote from local (the
// source address the stack routed it from): a wildcard binding narrows to
// local, as Linux's connect() does, so later binds of other addresses on
// the port no longer meet it. It returns ErrAddrNotAvail if
// PortsOptions.Flows reports the four-tuple taken, ErrInvalid if local is
// a wildcard or of the wrong family, or b is not merely bound (listening,
// already connected — Linux's EISCONN —, in TIME_WAIT or released), and
// ErrClosed after Close.
func (p *Ports) Connect(b *Binding, local tuple.Addr, remote tuple.Endpoint) error {
	s, err := p.lockFor(b)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	o := &b.owner
	if b.released || o.state != StateBound || local.IsUnspecified() ||
		(o.family == 4 && !local.Is4()) || (o.v6only && local.Is4()) {
		return ErrInvalid
	}
	if !o.addr.IsUnspecified() && o.addr != local {
		return ErrInvalid
	}
	if p.flows != nil && p.flows.FlowInUse(tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: o.port}, Remote: remote}) {
		return ErrAddrNotAvail
	}
	o.addr, o.state, o.remote = local, StateConnected, remote
	p.noteConnected(o, true)
	return nil
}

// Inherit adds the connection a listener accepted from local (its
// destination address): in Linux the child socket holds the listener's
// port with the listener's options and owner until it closes, and its
// TIME_WAIT after that. It returns ErrInvalid if l is not listening or
// local is a wildcard, and ErrClosed after Close.
func (p *Ports) Inherit(l *Binding, local tuple.Addr) (*Binding, error) {
	s, err := p.lockFor(l)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if l.released || l.owner.state != StateListen || local.IsUnspecified() {
		return nil, ErrInvalid
	}
	c := &Binding{ports: p, owner: l.owner}
	c.owner.addr, c.owner.state = local, StateConnected // remote unknown: uniqueness is the established table's
	p.addHolder(s, l.owner.port, &c.owner)
	return c, nil
}

// TimeWait records that b's connection closed into TIME_WAIT: it keeps
// the port, with its options and owner, until Release. It returns
// ErrInvalid unless b is connected (only connections leave a TIME_WAIT),
// and ErrClosed after Close.
func (p *Ports) TimeWait(b *Binding) error {
	s, err := p.lockFor(b)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if b.released || b.owner.state != StateConnected {
		return ErrInvalid
	}
	p.noteConnected(&b.owner, false) // the exact check decides TIME_WAIT takeovers
	b.owner.state = StateTimeWait
	return nil
}

// Release gives b's port back (the socket, or its TIME_WAIT, is gone). A
// second Release returns ErrInvalid; after Close, ErrClosed. A binding
// listening through a listener index is released by closing its
// Listener: Release returns ErrInvalid for it.
func (p *Ports) Release(b *Binding) error { return p.release(b, false) }

// release is Release; byIndex is set when the listener index releases a
// listener it is removing.
func (p *Ports) release(b *Binding, byIndex bool) error {
	s, err := p.lockFor(b)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if b.released || b.owner.state == StateListen && p.listeners.Load() != nil && !byIndex {
		return ErrInvalid
	}
	b.released = true
	if b.owner.state == StateConnected {
		p.noteConnected(&b.owner, false)
	}
	port := b.owner.port
	holders := s.holders[port]
	for i, o := range holders {
		if o == &b.owner {
			holders = append(holders[:i], holders[i+1:]...)
			break
		}
	}
	if len(holders) == 0 {
		delete(s.holders, port)
	} else {
		s.holders[port] = holders
	}
	p.noteBound(port, holders)
	return nil
}

// Close empties the table and its listener index, if any; every later
// call returns ErrClosed. A second Close returns ErrClosed.
func (p *Ports) Close() error {
	if p.closed.Swap(true) {
		return ErrClosed
	}
	if ix := p.listeners.Load(); ix != nil {
		ix.clear()
	}
	for i := range p.stripes {
		s := &p.stripes[i]
		s.mu.Lock()
		clear(s.holders)
		s.mu.Unlock()
	}
	p.maps.dests.Clear()
	return nil
}

// Port returns the bound port (the picked one after a bind to port 0).
func (b *Binding) Port() uint16 { return b.read().port }

// Addr returns the bound address (narrowed by Connect).
func (b *Binding) Addr() tuple.Addr { return b.read().addr }

// State returns where the socket is in its life.
func (b *Binding) State() BindState { return b.read().state }

func (b *Binding) read() bindOwner {
	s := b.ports.stripe(b.owner.port)
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.owner
}
