package table

import (
	"iter"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socktable/socktable/internal/siphash"
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
	// entry that may not be taken over) and takes a TIME_WAIT entry over
	// when Linux would. nil: they check only the connections Ports itself
	// knows of, and never take a TIME_WAIT tuple over.
	Flows FlowChecker
	// Hasher is the stack's shared keyed hasher, used for ConnectAny's
	// shard test (ConnectRequest.Shards), which must agree with the flow
	// hash the stack steers received segments by. nil means a new one.
	Hasher *tuple.Hasher
}

// FlowChecker is what connect() asks the established and TIME_WAIT
// tables through Ports: whether a four-tuple is free for a new connection.
//
// ClaimFlow is called with the port's stripe lock held (see the lock
// order in the package documentation): it may take the locks of the
// established and TIME_WAIT tables, but must not call back into Ports.
type FlowChecker interface {
	// ClaimFlow reports whether t (local, remote) may be used by a new
	// connection: FlowFree if no connection holds it; FlowInUse if an
	// established connection does, or a TIME_WAIT entry that may not be
	// taken over; FlowTakenOver if a TIME_WAIT entry held it and Linux's
	// tcp_twsk_unique lets the new connection take it over, in which case
	// ClaimFlow has removed the entry in the same step and returns what
	// the connection inherits and the entry's hold on the port (Owner),
	// which Ports releases under the lock it holds. explicitBind says the
	// connecting socket's port was bound before connect() (Connect, not
	// ConnectAny), which allows a takeover whatever tcp_tw_reuse says.
	//
	// An implementation may also insert the new connection's entry into
	// its established table, as Linux's __inet_check_established does, so
	// that the check and the insert are one step (a checker for one
	// connect: ConnectRequest.Flows, ConnectWith). Ports grants a tuple
	// the checker granted: Connect and ConnectAny succeed on the first
	// FlowFree or FlowTakenOver.
	ClaimFlow(t tuple.Tuple, explicitBind bool) FlowClaim
}

// FlowVerdict is a FlowChecker's answer for a four-tuple.
type FlowVerdict uint8

const (
	// FlowFree: no connection holds the four-tuple.
	FlowFree FlowVerdict = iota
	// FlowInUse: a connection holds it, or a TIME_WAIT entry that may not
	// be taken over.
	FlowInUse
	// FlowTakenOver: a TIME_WAIT entry held it and has been removed for
	// the new connection.
	FlowTakenOver
)

// FlowClaim is a FlowChecker's answer: the verdict and, for
// FlowTakenOver, what the new connection inherits and the removed entry's
// hold on the port.
type FlowClaim struct {
	Verdict FlowVerdict
	// Reuse is what the new connection inherits (FlowTakenOver only).
	Reuse Reuse
	// Owner is the TIME_WAIT entry's binding (Ports.TimeWait), if it held
	// one in this Ports: Ports releases it as it grants the tuple, so the
	// takeover releases it exactly once. nil if it held none.
	Owner *Binding
	// Err, with FlowInUse, ends the connect with this error instead of
	// trying another port: the checker could not insert the connection
	// (its established table is full).
	Err error
}

// Reuse is what a connection that takes over a TIME_WAIT entry's
// four-tuple inherits (tcp_twsk_unique): its initial sequence number,
// beyond everything the old incarnation sent, and the peer's last
// timestamp with when it was seen, so that PAWS protects the new
// connection from the old one's segments. It carries the same fields as
// timewait.Reuse, which a FlowChecker over a TIME_WAIT table converts.
type Reuse struct {
	// WriteSeq is the new connection's initial sequence number (the old
	// snd_nxt + 65537, never 0).
	WriteSeq uint32
	// TSRecent is the peer's last timestamp; TSRecentStamp is when it was
	// seen, on the stack's clock (timewait.Clock).
	TSRecent      uint32
	TSRecentStamp time.Duration
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
// # Holders, grouped by what the rules read
//
// The rules read a holder's family, v6only setting, address, options,
// owner, device and state, never which socket it is. So a port's holders
// are kept in classes of identical such fields, each with a count and a
// list of its Bindings: a listener's accepted children from one
// destination address form one class however many there are, and its
// TIME_WAIT entries another. Inherit, TimeWait, Connect and Release add
// or remove one member of one class, O(1) whatever the number of holders
// (a map lookup of the class, an unlink from its list); Bind and Listen
// compare the socket with each class of the port once, O(distinct option
// sets on the port) — Linux's per-bucket fastreuse summary made exact,
// where Linux walks every owner when its summary cannot decide.
//
// # Concurrency
//
// Every method is safe for concurrent use and linearizable. Methods on
// different ports take different locks (one per stripe of ports), so binds
// to different ports rarely contend. Every method may block briefly on a
// stripe's mutex (never on I/O); Bind to port 0 and ConnectAny may lock
// many stripes in turn, one at a time. Connect and ConnectAny call
// PortsOptions.Flows with the port's stripe locked.
//
// Lock order, for the whole library: the listener index's mutex, then a
// port stripe of Ports, then what a FlowChecker takes (the established
// table's group locks, a TIME_WAIT shard's lock). Nothing that holds a
// TIME_WAIT shard's lock takes a port stripe: the TIME_WAIT table hands
// the binding of an expired entry to the stack after dropping its lock
// (timewait's OnExpire), and the stack calls Release then.
//
// # Memory
//
// A fixed 256 KiB for ConnectAny's perturbation table (2^16 entries, as in
// Linux) and a bit per port of the ephemeral range; then a Binding (about
// 80 bytes) per bound socket and, per port with holders, an entry with
// one class record (about 120 bytes) per distinct option set; a map entry
// per connection made through Connect or ConnectAny (for their four-tuple
// uniqueness); and a bitmap of the range (3.5 KiB by default) per
// destination connected to, for at most 4096 destinations (see portMaps).
type Ports struct {
	stripes   [portStripes]portStripe
	local     map[tuple.Addr]struct{} // immutable; nil accepts any address
	low, high uint16                  // immutable ephemeral range, inclusive
	reserved  [1 << 16 / 64]uint64    // immutable bitmap
	flows     FlowChecker             // immutable; may be nil
	hasher    *tuple.Hasher           // immutable
	offsetKey siphash.Key             // immutable: RFC 6056's secret, for ConnectAny's offsets
	perturb   []atomic.Uint32         // RFC 6056 Algorithm 4's table, 2^16 entries
	maps      portMaps                // hints for ConnectAny's scan
	closed    atomic.Bool

	// listeners is the listener index attached by NewListenerIndex, if
	// any: then listening goes only through it (ListenerIndex.Listen,
	// Listener.Close), so the two registries cannot drift. Set once.
	listeners atomic.Pointer[attachedIndex]
}

// attachedIndex is what Ports knows of its listener index: how to empty
// it when the table closes.
type attachedIndex struct{ clear func() }

const portStripes = 256

// portStripe holds the ports p with p % portStripes equal to its index.
// Every field is guarded by mu.
type portStripe struct {
	mu      sync.Mutex
	ports   map[uint16]*portEntry      // ports with holders
	classes map[bindOwner]*holderClass // every class of those ports, by its fields (remote zero)
	// flows maps the four-tuple of each connection made through Connect
	// or ConnectAny (TIME_WAIT included, until Release) to its Binding.
	flows map[tuple.Tuple]*Binding
	_     [32]byte
}

// portEntry is one port's holders: Linux's bind bucket.
type portEntry struct {
	classes []*holderClass // the port's distinct classes, in no order
	// bound counts the holders placed by Bind or Inherit (not by
	// ConnectAny): connect() skips a port that has any (Linux skips
	// bind()-created buckets, fastreuse != -1).
	bound int
}

// holderClass is the holders of one port that agree in every field the
// bind rules read: the rules decide for all of them at once.
type holderClass struct {
	owner   bindOwner // immutable: the fields its members share (remote zero)
	members int       // > 0 while the class is in its port's entry
	head    *Binding  // the members, most recent first
	pos     int       // index in its port's classes
}

// Binding is one socket's hold on a local port, from Ports.Bind (or
// Inherit, ConnectAny) until Ports.Release. Its methods read fields that
// only Ports changes, under the port's lock; they are safe to call
// concurrently with Ports' methods.
type Binding struct {
	ports *Ports // immutable
	port  uint16 // immutable once the Binding is returned
	// Guarded by the port's stripe lock.
	class      *holderClass   // the class it is a member of; nil once released
	remote     tuple.Endpoint // the peer of a connection made through Connect or ConnectAny
	prev, next *Binding       // in class's member list
}

// NewPorts returns an empty bind table. It returns ErrCapacity for an
// ephemeral range with low 0 or low above high, and ErrInvalidAddr for a
// wildcard in LocalAddrs.
func NewPorts(opts PortsOptions) (*Ports, error) {
	p := &Ports{low: opts.EphemeralLow, high: opts.EphemeralHigh, flows: opts.Flows, hasher: opts.Hasher,
		offsetKey: siphash.NewKey(), perturb: make([]atomic.Uint32, perturbSize)}
	if p.hasher == nil {
		p.hasher = tuple.NewHasher()
	}
	if p.low == 0 && p.high == 0 {
		p.low, p.high = defaultEphemeralLow, defaultEphemeralHigh
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
		s := &p.stripes[i]
		s.ports = make(map[uint16]*portEntry)
		s.classes = make(map[bindOwner]*holderClass)
		s.flows = make(map[tuple.Tuple]*Binding)
	}
	return p, nil
}

// Hasher returns the hasher the table steers ConnectAny's shard test by:
// a stack checks that its tables share one.
func (p *Ports) Hasher() *tuple.Hasher { return p.hasher }

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
	o := ownerOf(req)
	b := &Binding{ports: p, port: req.Port}
	if req.Port == 0 {
		return b, p.bindAny(b, o)
	}
	s := p.stripe(req.Port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if classConflictLocked(&o, nil, s.ports[req.Port], true, true) {
		return nil, ErrAddrInUse
	}
	p.addLocked(s, b, o)
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

func (p *Ports) validate(req *BindRequest) error { return validateBind(req, p.local) }

// defaultEphemeralLow and defaultEphemeralHigh are Linux's default
// ip_local_port_range.
const defaultEphemeralLow, defaultEphemeralHigh = 32768, 60999

// validateBind checks a bind's family, address and device, and that a
// specific address is one of local (if local is set).
func validateBind(req *BindRequest, local map[tuple.Addr]struct{}) error {
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
	if local != nil && !req.Addr.IsUnspecified() {
		if _, ok := local[req.Addr]; !ok {
			return ErrAddrNotAvail
		}
	}
	return nil
}

// bindAny picks a port for b (inet_csk_find_open_port) and adds b to it
// with the fields of o.
func (p *Ports) bindAny(b *Binding, o bindOwner) error {
	low, high := int(p.low), int(p.high)+1 // [low, high)
	attemptHalf := o.reuseAddr
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
		if ok, err := p.scan(b, o, lo, hi); ok || err != nil {
			return err
		}
		if !attemptHalf || upper {
			return ErrNoPorts
		}
		upper = true
	}
}

// scan tries the ports of [lo, hi): odd offsets from a random start
// first, then even ones (connect's picks favour the other parity).
func (p *Ports) scan(b *Binding, o bindOwner, lo, hi int) (bool, error) {
	remaining := hi - lo
	if remaining > 1 {
		remaining &^= 1
	}
	if remaining <= 0 {
		return false, nil
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
			if ok, err := p.tryPort(b, o, uint16(port)); ok || err != nil {
				return ok, err
			}
		}
		offset--
	}
	return false, nil
}

// tryPort adds b on port if no holder conflicts even without the relaxed
// sharing rules (relax=false: a picked port is never shared by options).
func (p *Ports) tryPort(b *Binding, o bindOwner, port uint16) (bool, error) {
	s := p.stripe(port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return false, ErrClosed
	}
	o.port = port
	if classConflictLocked(&o, nil, s.ports[port], false, false) {
		return false, nil
	}
	b.port = port
	p.addLocked(s, b, o)
	return true, nil
}

// classConflictLocked is portConflict over a port's classes: whether sk
// may not hold the port beside the holders in e (nil: none), self being
// the class sk's own socket is counted in, if any (its one membership is
// not a holder to compare with). The caller holds the port's stripe lock.
func classConflictLocked(sk *bindOwner, self *holderClass, e *portEntry, relax, reuseportOK bool) bool {
	if e == nil {
		return false
	}
	bhash2 := useBhash2(sk)
	for _, c := range e.classes {
		if c == self && c.members == 1 {
			continue
		}
		if holderConflict(sk, &c.owner, bhash2, relax, reuseportOK) {
			return true
		}
	}
	return false
}

// addLocked makes b a holder of its port with the fields of o (o.port is
// b's port). The caller holds the port's stripe lock.
func (p *Ports) addLocked(s *portStripe, b *Binding, o bindOwner) {
	o.remote = tuple.Endpoint{}
	c := s.classes[o]
	if c == nil {
		e := s.ports[o.port]
		if e == nil {
			e = &portEntry{}
			s.ports[o.port] = e
		}
		c = &holderClass{owner: o, pos: len(e.classes)}
		e.classes = append(e.classes, c)
		s.classes[o] = c
	}
	c.members++
	b.class, b.prev, b.next = c, nil, c.head
	if c.head != nil {
		c.head.prev = b
	}
	c.head = b
	if !o.autobound {
		e := s.ports[o.port]
		if e.bound++; e.bound == 1 {
			p.noteBoundLocked(o.port, true)
		}
	}
}

// removeLocked takes b out of its class (b stays usable for a moveLocked
// or is released). The caller holds the port's stripe lock.
func (p *Ports) removeLocked(s *portStripe, b *Binding) {
	c := b.class
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		c.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	}
	b.class, b.prev, b.next = nil, nil, nil
	e := s.ports[c.owner.port]
	if !c.owner.autobound {
		if e.bound--; e.bound == 0 {
			p.noteBoundLocked(c.owner.port, false)
		}
	}
	if c.members--; c.members > 0 {
		return
	}
	delete(s.classes, c.owner)
	last := e.classes[len(e.classes)-1]
	e.classes[c.pos], last.pos = last, c.pos
	e.classes[len(e.classes)-1] = nil
	e.classes = e.classes[:len(e.classes)-1]
	if len(e.classes) == 0 {
		delete(s.ports, c.owner.port)
	}
}

// moveLocked gives b the fields of o (same port): out of its class, into
// o's. The caller holds the port's stripe lock.
func (p *Ports) moveLocked(s *portStripe, b *Binding, o bindOwner) {
	p.removeLocked(s, b)
	p.addLocked(s, b, o)
}

// lockFor checks that b is a live binding of p and locks its port's
// stripe: ErrInvalid for nil, a binding of another table, or one already
// released; ErrClosed after Close. On success the caller unlocks.
func (p *Ports) lockFor(b *Binding) (*portStripe, error) {
	if b == nil || b.ports != p {
		return nil, ErrInvalid
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	s := p.stripe(b.port)
	s.mu.Lock()
	switch {
	case p.closed.Load():
		s.mu.Unlock()
		return nil, ErrClosed
	case b.class == nil:
		s.mu.Unlock()
		return nil, ErrInvalid
	}
	return s, nil
}

// Listen re-runs the conflict check as listen(2) does and, if it passes,
// marks b listening. It returns ErrAddrInUse on a conflict (b stays
// bound, not listening), ErrInvalid if b is nil, belongs to another
// table, or is connected, in TIME_WAIT or released, and ErrClosed after
// Close. Listening again is a no-op.
//
// A table with a listener index (NewListenerIndex) has one registry of
// listeners, the index: there Listen returns ErrInvalid, and a socket
// listens through ListenerIndex.Listen, whose handle's Close removes it
// from both (two registries that each track listeners drift apart).
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
	switch b.class.owner.state {
	case StateListen:
		return nil
	case StateConnected, StateTimeWait:
		return ErrInvalid
	}
	o := b.class.owner
	o.state = StateListen
	if classConflictLocked(&o, b.class, s.ports[b.port], true, true) {
		return ErrAddrInUse
	}
	p.moveLocked(s, b, o)
	return nil
}

// ConnectResult is what Connect and ConnectAny return: the connection's
// binding and four-tuple and, if it took over a TIME_WAIT entry's tuple,
// what it inherits.
type ConnectResult struct {
	// Binding is the connection's hold on its local port.
	Binding *Binding
	// Tuple is the connection's four-tuple (local, remote).
	Tuple tuple.Tuple
	// Reused says the connection took over a TIME_WAIT entry's four-tuple
	// (FlowTakenOver): it must start at Reuse.WriteSeq and keep
	// Reuse.TSRecent for PAWS.
	Reused bool
	Reuse  Reuse
}

// Connect records that b's socket connected to remote from local (the
// source address the stack routed it from): a wildcard binding narrows to
// local, as Linux's connect() does, so later binds of other addresses on
// the port no longer meet it. The four-tuple must be free: no connection
// Ports knows of holds it and, if PortsOptions.Flows is set, the checker
// grants it — taking over a TIME_WAIT entry whatever tcp_tw_reuse says,
// since the port was bound explicitly (Linux's twp == NULL path). It
// returns ErrAddrNotAvail if the tuple is taken, ErrInvalid if b is nil,
// another table's, not merely bound (listening, already connected —
// Linux's EISCONN —, in TIME_WAIT or released), or local is a wildcard or
// of the wrong family, and ErrClosed after Close.
func (p *Ports) Connect(b *Binding, local tuple.Addr, remote tuple.Endpoint) (ConnectResult, error) {
	return p.ConnectWith(b, local, remote, nil)
}

// ConnectWith is Connect asking flows (if not nil) in place of
// PortsOptions.Flows whether the four-tuple is free: a checker for this
// one connection, which inserts it into the stack's established table in
// the same step (see FlowChecker), so that no segment finds the tuple
// bound here but owned by no one. A FlowClaim.Err from it is returned.
func (p *Ports) ConnectWith(b *Binding, local tuple.Addr, remote tuple.Endpoint, flows FlowChecker) (ConnectResult, error) {
	s, err := p.lockFor(b)
	if err != nil {
		return ConnectResult{}, err
	}
	defer s.mu.Unlock()
	o := b.class.owner
	if o.state != StateBound || local.IsUnspecified() || (o.family == 4 && !local.Is4()) || (o.v6only && local.Is4()) {
		return ConnectResult{}, ErrInvalid
	}
	if !o.addr.IsUnspecified() && o.addr != local {
		return ConnectResult{}, ErrInvalid
	}
	t := tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: b.port}, Remote: remote}
	claim, ok := p.claimLocked(s, t, true, flows)
	if !ok {
		if claim.Err != nil {
			return ConnectResult{}, claim.Err
		}
		return ConnectResult{}, ErrAddrNotAvail
	}
	o.addr, o.state = local, StateConnected
	p.moveLocked(s, b, o)
	return p.connectLocked(s, b, t, claim), nil
}

// claimLocked decides whether four-tuple t is free for a new connection
// on its port (whose stripe s the caller holds): no live connection Ports
// knows of holds it; a TIME_WAIT one only if the FlowChecker grants the
// tuple (with no checker, never); and the checker, if any, grants it. A
// TIME_WAIT owner the checker took over is released here. flows, if not
// nil, is the connect's own checker, asked in place of PortsOptions.Flows.
func (p *Ports) claimLocked(s *portStripe, t tuple.Tuple, explicitBind bool, flows FlowChecker) (FlowClaim, bool) {
	if flows == nil {
		flows = p.flows
	}
	if h := s.flows[t]; h != nil && (h.class.owner.state != StateTimeWait || flows == nil) {
		return FlowClaim{}, false
	}
	if flows == nil {
		return FlowClaim{}, true
	}
	claim := flows.ClaimFlow(t, explicitBind)
	switch claim.Verdict {
	case FlowInUse:
		return claim, false
	case FlowTakenOver:
		if o := claim.Owner; o != nil && o.ports == p && o.port == t.Local.Port && o.class != nil {
			p.releaseLocked(s, o)
		}
	}
	// A TIME_WAIT binding still mapped to t has lost its entry (it expired
	// and its release is on its way, or was taken over just now): the new
	// connection replaces it in the map, and its release leaves the map
	// alone (see releaseLocked).
	return claim, true
}

// connectLocked registers b's connection to t, granted by claim (its
// stripe s held), and returns what Connect and ConnectAny report.
func (p *Ports) connectLocked(s *portStripe, b *Binding, t tuple.Tuple, claim FlowClaim) ConnectResult {
	b.remote = t.Remote
	s.flows[t] = b
	p.noteConnectedLocked(t, true)
	return ConnectResult{Binding: b, Tuple: t, Reused: claim.Verdict == FlowTakenOver, Reuse: claim.Reuse}
}

// Inherit adds the connection a listener accepted from local (its
// destination address): in Linux the child socket holds the listener's
// port with the listener's options and owner until it closes, and its
// TIME_WAIT after that. It takes O(1) time whatever the number of the
// listener's children. It returns ErrInvalid if l is nil, another table's
// or not listening, or local is a wildcard, and ErrClosed after Close.
func (p *Ports) Inherit(l *Binding, local tuple.Addr) (*Binding, error) {
	s, err := p.lockFor(l)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if l.class.owner.state != StateListen || local.IsUnspecified() {
		return nil, ErrInvalid
	}
	o := l.class.owner
	o.addr, o.state = local, StateConnected // remote unknown: uniqueness is the established table's
	c := &Binding{ports: p, port: l.port}
	p.addLocked(s, c, o)
	return c, nil
}

// TimeWait records that b's connection closed into TIME_WAIT: it keeps
// the port, with its options and owner, until Release — which the stack
// calls when the TIME_WAIT entry goes, whichever way it goes (expiry,
// kill, takeover; a FlowChecker's takeover hands it to Ports, which
// releases it itself). It returns ErrInvalid unless b is a connection of
// this table, and ErrClosed after Close.
func (p *Ports) TimeWait(b *Binding) error {
	s, err := p.lockFor(b)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	o := b.class.owner
	if o.state != StateConnected {
		return ErrInvalid
	}
	if b.remote != (tuple.Endpoint{}) {
		// The dest bitmaps mark live connections only: the exact check
		// decides TIME_WAIT takeovers.
		p.noteConnectedLocked(tuple.Tuple{Local: tuple.Endpoint{Addr: o.addr, Port: b.port}, Remote: b.remote}, false)
	}
	o.state = StateTimeWait
	p.moveLocked(s, b, o)
	return nil
}

// Release gives b's port back (the socket, or its TIME_WAIT, is gone), in
// O(1) time whatever the number of the port's holders. It returns
// ErrInvalid for nil, a binding of another table, a second Release, and a
// binding listening through a listener index (closing its Listener
// releases it); after Close, ErrClosed.
func (p *Ports) Release(b *Binding) error { return p.release(b, false) }

// release is Release; byIndex is set when the listener index releases a
// listener it is removing.
func (p *Ports) release(b *Binding, byIndex bool) error {
	s, err := p.lockFor(b)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if b.class.owner.state == StateListen && p.listeners.Load() != nil && !byIndex {
		return ErrInvalid
	}
	p.releaseLocked(s, b)
	return nil
}

// releaseLocked removes b for good (its stripe s held).
func (p *Ports) releaseLocked(s *portStripe, b *Binding) {
	o := &b.class.owner
	if b.remote != (tuple.Endpoint{}) {
		t := tuple.Tuple{Local: tuple.Endpoint{Addr: o.addr, Port: b.port}, Remote: b.remote}
		if s.flows[t] == b { // a newer connection may have the tuple now: see claimLocked
			delete(s.flows, t)
		}
		if o.state == StateConnected {
			p.noteConnectedLocked(t, false)
		}
	}
	p.removeLocked(s, b)
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
		for _, c := range s.classes {
			for b := c.head; b != nil; {
				next := b.next
				b.class, b.prev, b.next = nil, nil, nil
				b = next
			}
		}
		clear(s.ports)
		clear(s.classes)
		clear(s.flows)
		s.mu.Unlock()
	}
	p.maps.dests.Clear()
	return nil
}

// All returns an iterator over the table's bindings, each with its local
// endpoint (a wildcard address for a socket bound to one). It locks one
// stripe at a time and yields with no lock held, so yield may call back
// into the table; it does not see a consistent snapshot of the table, but
// it yields no binding twice, and every binding held for the whole
// iteration exactly once.
func (p *Ports) All() iter.Seq2[tuple.Endpoint, *Binding] {
	return func(yield func(tuple.Endpoint, *Binding) bool) {
		var batch []*Binding
		for i := range p.stripes {
			s := &p.stripes[i]
			batch = batch[:0]
			s.mu.Lock()
			for _, e := range s.ports {
				for _, c := range e.classes {
					for b := c.head; b != nil; b = b.next {
						batch = append(batch, b)
					}
				}
			}
			s.mu.Unlock()
			for _, b := range batch {
				o, ok := b.owner()
				if !ok {
					continue // released meanwhile
				}
				if !yield(tuple.Endpoint{Addr: o.addr, Port: o.port}, b) {
					return
				}
			}
		}
	}
}

// Port returns the bound port (the picked one after a bind to port 0).
func (b *Binding) Port() uint16 { return b.port }

// Addr returns the bound address (narrowed by Connect); the zero Addr
// once released.
func (b *Binding) Addr() tuple.Addr {
	o, _ := b.owner()
	return o.addr
}

// Remote returns the peer of a connection made through Connect or
// ConnectAny; the zero Endpoint otherwise (an inherited child's peer is
// the stack's to know).
func (b *Binding) Remote() tuple.Endpoint {
	s := b.ports.stripe(b.port)
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.remote
}

// State returns where the socket is in its life; StateReleased once
// released.
func (b *Binding) State() BindState {
	o, ok := b.owner()
	if !ok {
		return StateReleased
	}
	return o.state
}

// owner returns b's fields, false once released.
func (b *Binding) owner() (bindOwner, bool) {
	s := b.ports.stripe(b.port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.class == nil {
		return bindOwner{}, false
	}
	return b.class.owner, true
}
