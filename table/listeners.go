package table

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/tuple"
)

// Listeners is the listener index: for a segment that missed the
// established table, which listening socket gets the connection. It
// answers as Linux's __inet_lookup_listener does (DESIGN.md §1):
//
//  1. the listeners bound to the destination address and port are scored
//     first; only if none matches, those bound to a wildcard on the port
//     (an exact-address listener beats a wildcard one whatever the scores);
//  2. a candidate must match the packet's family (an IPv4 packet: AF_INET
//     sockets, v4-mapped and dual-stack AF_INET6 ones, never v6only; an IPv6
//     packet: AF_INET6 sockets bound to its address or to "::"), and its
//     device if it is bound to one;
//  3. score: 2 if device-bound, else 1; +1 for AF_INET (a plain IPv4
//     listener beats a dual-stack one); the first candidate with the
//     highest score wins, in the kernel's order (new listeners go first,
//     except SO_REUSEPORT AF_INET6 ones, which go last);
//  4. a winner in a SO_REUSEPORT group hands the connection to a member
//     chosen by the flow hash, scaled by multiply-shift (Linux's
//     reciprocal_scale over inet_ehashfn). Groups hold sockets of one owner,
//     family, v6only setting, device and identical address and port; a
//     member that closes leaves the others serving. SetSelector installs a
//     user chooser (the SO_ATTACH_REUSEPORT_EBPF analogue) and SetLoad a
//     load-aware one (the less loaded of two hashed members).
//
// These rules are checked against connections recorded on the real kernel
// (testdata/kernel/lookup.jsonl).
//
// Concurrency: Lookup is lock-free (a few atomic loads of immutable
// snapshots, run again only if a Listen or Close published meanwhile),
// allocates nothing and takes O(1) time in the number
// of listeners on other addresses and ports. Listen and Close take a mutex
// and copy the one bucket they change, and a Listen that makes the buckets
// outnumber the hash slots also rebuilds the slot array at twice the size
// (O(listeners), amortized O(1)); they are linearizable with each other
// and with Lookup.
//
// Memory: 8 bytes per hash slot (at most two per listened-on address and
// port, never shrunk) and about 400 bytes per listener with its Binding
// and the bind table's entry (measured with 1e4 listeners, 8 KiB of slots
// when empty).
type Listeners[V comparable] struct {
	ports  *Ports
	hasher *tuple.Hasher
	slots  atomic.Pointer[listenSlots[V]] // replaced by a larger copy as buckets grow
	mu     sync.Mutex                     // serializes Listen, Close and growth
	closed bool                           // guarded by mu: the Ports closed
	// buckets counts the non-empty (address, port) buckets; guarded by mu.
	buckets int
	// seq is odd while a Listen, Close or clear publishes its changes
	// (written under mu): a lookup reads it before and after, and runs
	// again if it moved, so it sees the exact and wildcard buckets and the
	// groups of one moment.
	seq    atomic.Uint64
	policy atomic.Pointer[policy[V]] // nil: the flow hash alone
}

// listenSlots is the index's hash array: a power-of-two number of slots,
// each a chain of buckets. A larger one replaces it, rebuilt with new
// chains, when the buckets outnumber the slots: a lookup that loaded the
// old array finishes on it, consistent if stale, as with any bucket
// snapshot.
type listenSlots[V comparable] struct {
	slots []atomic.Pointer[listenBucket[V]] // immutable header
}

// SetSelector installs a member chooser for SO_REUSEPORT groups, the
// analogue of an SO_ATTACH_REUSEPORT_EBPF program: it gets the flow, its
// hash and the group's members (in join order; it must not keep or change
// the slice) and returns an index; an index out of range falls back to the
// hash, as the kernel does for an invalid program result. nil removes it.
// It runs inside Lookup, on every core: it must be fast, must not block
// and should not allocate.
func (l *Listeners[V]) SetSelector(f func(dst, src tuple.Endpoint, hash uint64, members []V) int) {
	l.updatePolicy(func(p *policy[V]) { p.selector = f })
}

// SetLoad makes groups choose, for each flow, the less loaded of two
// members picked by two independent hashes (power of two choices), with
// load reporting a member's accept-queue depth (or any load figure; it is
// read at each lookup). Flows then stay on one member only while the loads
// do not change, so a stack should use it for the SYN's listener choice,
// not for later segments. nil removes it; a Selector takes precedence.
func (l *Listeners[V]) SetLoad(load func(V) int) {
	l.updatePolicy(func(p *policy[V]) { p.load = load })
}

// updatePolicy publishes a changed copy of the policy (copy-on-write, so
// lookups read a consistent pair).
func (l *Listeners[V]) updatePolicy(change func(*policy[V])) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var p policy[V]
	if old := l.policy.Load(); old != nil {
		p = *old
	}
	change(&p)
	l.policy.Store(&p)
}

// listenBucket holds the listeners of one (address, port), or of the
// wildcards on one port, in lookup order, with what scoring reads copied
// inline. The first listener is stored in the bucket itself, since most
// buckets hold one: a lookup then reads the slot and the bucket, two
// dependent loads, and 1e4 listeners fit in about 1 MB. Buckets whose keys
// share a slot are chained through next. Immutable once published: Listen
// and Close copy the chain they change.
type listenBucket[V comparable] struct {
	key   listenKey
	next  *listenBucket[V]
	first listenEntry[V]   // entries[0]
	rest  []listenEntry[V] // entries[1:]
}

// entries returns the bucket's listeners in order (a new slice: for
// Listen and Close, not for lookups).
func (b *listenBucket[V]) entries() []listenEntry[V] {
	if b == nil {
		return nil
	}
	return append([]listenEntry[V]{b.first}, b.rest...)
}

// listenEntry is a listener as the lookup sees it: what compute_score
// reads, and what it returns.
type listenEntry[V comparable] struct {
	addr   tuple.Addr // the bound address; for family 6, an IPv4 Addr is v4-mapped
	device int        // SO_BINDTODEVICE; 0 for none
	family uint8
	v6only bool
	value  V
	group  *listenGroup[V] // nil unless SO_REUSEPORT
	l      *Listener[V]
}

func entryOf[V comparable](o *bindOwner) listenEntry[V] {
	return listenEntry[V]{addr: o.addr, device: o.device, family: o.family, v6only: o.v6only}
}

// listenKey: addr is the bound address, or the zero Addr for every
// wildcard (0.0.0.0, ::ffff:0.0.0.0 and "::" share a bucket, as in Linux,
// where they hash alike). IPv4 and v4-mapped addresses are the same Addr,
// so they share buckets too.
type listenKey struct {
	addr tuple.Addr
	port uint16
}

// Listener is a listening socket in the index: its Binding and the value
// Lookup returns for it.
type Listener[V comparable] struct {
	l     *Listeners[V]
	b     *Binding
	owner bindOwner // a copy, immutable
	value V
	group *listenGroup[V] // nil unless SO_REUSEPORT
	index bool            // set while in the index; guarded by Listeners.mu
}

// listenGroup is a SO_REUSEPORT group: members in join order.
type listenGroup[V comparable] struct {
	members atomic.Pointer[groupMembers[V]] // immutable snapshots, replaced under Listeners.mu
}

// groupMembers is a snapshot of a group: its listeners and their values
// (the slice a Selector sees).
type groupMembers[V comparable] struct {
	ls   []*Listener[V]
	vals []V
}

// policy is how groups choose members beyond the flow hash.
type policy[V comparable] struct {
	selector func(dst, src tuple.Endpoint, hash uint64, members []V) int
	load     func(V) int
}

// ListenersOptions configures a Listeners index.
type ListenersOptions struct {
	// Slots is the initial number of hash slots (rounded up to a power of
	// two; 8 bytes each); 0 means 1024. The index doubles them whenever
	// the listened-on (address, port) pairs outnumber them, so lookups stay
	// O(1); it never shrinks them.
	Slots int
	// Hasher is the stack's shared keyed hasher (flow hashes for
	// SO_REUSEPORT, bucket hashes). nil means a new one.
	Hasher *tuple.Hasher
}

// NewListeners returns an empty index over ports' bindings and attaches
// it to ports: from then on a socket listens only through the index
// (Ports.Listen returns ErrInvalid), and Ports.Close empties it. It
// returns ErrCapacity for a negative Slots, ErrInvalid for a nil ports or
// one that already has an index, and ErrClosed for a closed one.
func NewListeners[V comparable](ports *Ports, opts ListenersOptions) (*Listeners[V], error) {
	if opts.Slots < 0 {
		return nil, ErrCapacity
	}
	if ports == nil {
		return nil, ErrInvalid
	}
	n := 1
	for n < opts.Slots || (opts.Slots == 0 && n < 1024) {
		n *= 2
	}
	h := opts.Hasher
	if h == nil {
		h = tuple.NewHasher()
	}
	l := &Listeners[V]{ports: ports, hasher: h}
	l.slots.Store(&listenSlots[V]{slots: make([]atomic.Pointer[listenBucket[V]], n)})
	if !ports.listeners.CompareAndSwap(nil, &attachedIndex{clear: l.clear}) {
		return nil, ErrInvalid
	}
	if ports.closed.Load() {
		return nil, ErrClosed
	}
	return l, nil
}

// clear empties the index when its Ports closes: every listener is gone,
// and later calls return ErrClosed.
func (l *Listeners[V]) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.buckets = 0
	l.seq.Add(1)
	defer l.seq.Add(1)
	slots := l.slots.Load().slots
	for i := range slots {
		slots[i].Store(nil)
	}
}

func keyOf(o *bindOwner) listenKey {
	if o.addr.IsUnspecified() {
		return listenKey{port: o.port}
	}
	return listenKey{addr: o.addr, port: o.port}
}

func (l *Listeners[V]) slot(k listenKey) *atomic.Pointer[listenBucket[V]] {
	return l.slots.Load().slotOf(l.hasher, k)
}

func (t *listenSlots[V]) slotOf(h *tuple.Hasher, k listenKey) *atomic.Pointer[listenBucket[V]] {
	return &t.slots[h.HashEndpoint(tuple.Endpoint{Addr: k.addr, Port: k.port})&uint64(len(t.slots)-1)]
}

// grow replaces the slot array by one twice as large once the buckets
// outnumber the slots. The caller holds mu, so no chain changes meanwhile;
// the buckets are immutable, so the new chains are new nodes sharing the
// old nodes' entries.
func (l *Listeners[V]) grow() {
	old := l.slots.Load()
	if l.buckets <= len(old.slots) {
		return
	}
	t := &listenSlots[V]{slots: make([]atomic.Pointer[listenBucket[V]], 2*len(old.slots))}
	for i := range old.slots {
		for b := old.slots[i].Load(); b != nil; b = b.next {
			sp := t.slotOf(l.hasher, b.key)
			sp.Store(&listenBucket[V]{key: b.key, first: b.first, rest: b.rest, next: sp.Load()})
		}
	}
	l.slots.Store(t)
}

// find returns the bucket of k in the chain starting at b.
func find[V comparable](b *listenBucket[V], k listenKey) *listenBucket[V] {
	for ; b != nil; b = b.next {
		if b.key == k {
			return b
		}
	}
	return nil
}

// Listen makes b's socket listen and indexes it with value v, joining a
// SO_REUSEPORT group if one matches: in one step, under the index's lock,
// so that no lookup sees a listener the bind table does not hold, nor the
// reverse. It is the one way to listen on a Ports with an index; the
// returned Listener's Close undoes both. It returns Ports.Listen's
// errors (ErrAddrInUse: listen(2)'s conflict re-check), ErrInvalid if b
// belongs to another Ports or is already listening, and ErrClosed after
// Ports.Close.
func (l *Listeners[V]) Listen(b *Binding, v V) (*Listener[V], error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, ErrClosed
	case b == nil || b.ports != l.ports || b.State() == StateListen:
		return nil, ErrInvalid
	}
	if err := l.ports.listen(b); err != nil {
		return nil, err
	}
	h := &Listener[V]{l: l, b: b, owner: b.read(), value: v}
	l.seq.Add(1)
	defer l.seq.Add(1)
	k := keyOf(&h.owner)
	sp := l.slot(k)
	old := sp.Load()
	entries := find(old, k).entries()
	if h.owner.reusePort {
		for _, e := range entries {
			if e.group != nil && sameGroup(&e.l.owner, &h.owner) {
				h.group = e.group
				break
			}
		}
		if h.group == nil {
			h.group = &listenGroup[V]{}
			h.group.members.Store(&groupMembers[V]{})
		}
		old := h.group.members.Load()
		h.group.members.Store(&groupMembers[V]{
			ls:   append(append([]*Listener[V](nil), old.ls...), h),
			vals: append(append([]V(nil), old.vals...), v),
		})
	}
	e := entryOf[V](&h.owner)
	e.value, e.group, e.l = v, h.group, h
	var next []listenEntry[V]
	if h.owner.reusePort && h.owner.family == 6 {
		next = append(append(next, entries...), e) // __inet_hash: tail
	} else {
		next = append(append(next, e), entries...) // head
	}
	l.publish(sp, old, k, next)
	h.index = true
	return h, nil
}

// sameGroup is inet_reuseport_add_sock's test: one owner, family, v6only
// setting, device and identical address (and, by the bucket, port).
func sameGroup(a, b *bindOwner) bool {
	return a.family == b.family && a.v6only == b.v6only && a.device == b.device &&
		a.uid == b.uid && a.addr == b.addr && a.port == b.port
}

// publish replaces bucket k of slot sp (whose current value is old) by
// entries (none: the bucket goes), then grows the slot array if the
// buckets now outnumber its slots.
func (l *Listeners[V]) publish(sp *atomic.Pointer[listenBucket[V]], old *listenBucket[V], k listenKey, entries []listenEntry[V]) {
	var chain *listenBucket[V]
	if len(entries) > 0 {
		chain = &listenBucket[V]{key: k, first: entries[0], rest: entries[1:]}
	}
	switch had := find(old, k) != nil; {
	case !had && chain != nil:
		l.buckets++
		defer l.grow()
	case had && chain == nil:
		l.buckets--
	}
	for b := old; b != nil; b = b.next {
		if b.key != k {
			chain = &listenBucket[V]{key: b.key, first: b.first, rest: b.rest, next: chain}
		}
	}
	sp.Store(chain)
}

// Close removes the listener from the index and its group (the others go
// on serving) and releases its binding. A second Close returns ErrInvalid;
// after Ports.Close, ErrClosed.
func (h *Listener[V]) Close() error {
	l := h.l
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case !h.index:
		return ErrInvalid
	}
	h.index = false
	l.seq.Add(1)
	k := keyOf(&h.owner)
	sp := l.slot(k)
	old := sp.Load()
	var entries []listenEntry[V]
	for _, e := range find(old, k).entries() {
		if e.l != h {
			entries = append(entries, e)
		}
	}
	if h.group != nil {
		next := &groupMembers[V]{}
		for _, m := range h.group.members.Load().ls {
			if m != h {
				next.ls, next.vals = append(next.ls, m), append(next.vals, m.value)
			}
		}
		h.group.members.Store(next)
	}
	l.publish(sp, old, k, entries)
	l.seq.Add(1)
	return l.ports.release(h.b, true)
}

// Value returns the value the listener was indexed with.
func (h *Listener[V]) Value() V { return h.value }

// Lookup returns the listener that gets a connection to dst from src
// arriving on device (0 if unknown), as described on Listeners, or false
// if none listens (the kernel answers with a RST). It is lock-free and
// allocates nothing.
//
// It reads two buckets (the address's, then the wildcards'), so it checks
// the index's sequence around them and runs again if a Listen or Close
// published meanwhile: without that, a lookup could miss an exact
// listener added before a wildcard one it then finds, an answer no moment
// of the index gives (Linux's lockless lookup allows it; this index is
// linearizable).
func (l *Listeners[V]) Lookup(dst, src tuple.Endpoint, device int) (V, bool) {
	for spins := 0; ; spins++ {
		if s := l.seq.Load(); s&1 == 0 {
			v, ok := l.lookup(dst, src, device)
			if l.seq.Load() == s {
				return v, ok
			}
		}
		if spins > 16 {
			runtime.Gosched() // the writer may be descheduled
		}
	}
}

func (l *Listeners[V]) lookup(dst, src tuple.Endpoint, device int) (V, bool) {
	if !dst.Addr.IsUnspecified() {
		if v, ok := l.lookupIn(listenKey{addr: dst.Addr, port: dst.Port}, dst, src, device); ok {
			return v, true
		}
	}
	return l.lookupIn(listenKey{port: dst.Port}, dst, src, device)
}

func (l *Listeners[V]) lookupIn(k listenKey, dst, src tuple.Endpoint, device int) (V, bool) {
	var best *listenEntry[V]
	hiscore := 0
	if bk := find(l.slot(k).Load(), k); bk != nil {
		e := &bk.first
		for i := 0; ; i++ {
			if score := e.score(dst.Addr, device); score > hiscore {
				if e.group != nil {
					if v, ok := e.group.pick(l, dst, src); ok {
						return v, true
					}
				}
				best, hiscore = e, score
			}
			if i == len(bk.rest) {
				break
			}
			e = &bk.rest[i]
		}
	}
	if best == nil {
		var zero V
		return zero, false
	}
	return best.value, true
}

// score is compute_score: 0 if the listener cannot take a connection to
// daddr on device.
func (e *listenEntry[V]) score(daddr tuple.Addr, device int) int {
	if e.device != 0 && e.device != device {
		return 0
	}
	score := 1
	if e.device != 0 {
		score = 2
	}
	if daddr.Is4() { // the IPv4 path: AF_INET and non-v6only AF_INET6
		if e.family == 6 && e.v6only {
			return 0
		}
		if a := v4AddrOf(e.family, e.addr); a != daddr && a != tuple.IPv4Unspecified() {
			return 0
		}
		if e.family == 4 {
			score++
		}
		return score
	}
	// The IPv6 path: AF_INET6 sockets bound to daddr or to "::".
	if e.family != 6 || (e.addr != daddr && e.addr != tuple.IPv6Unspecified()) {
		return 0
	}
	return score
}

// pick chooses the group member for a flow: the Selector's choice if one
// is set and valid, else the less loaded of two hashed members if SetLoad
// was used, else reciprocal_scale of the flow hash over the members.
// false if the group is empty.
func (g *listenGroup[V]) pick(l *Listeners[V], dst, src tuple.Endpoint) (V, bool) {
	m := g.members.Load()
	n := len(m.vals)
	if n == 0 {
		var zero V
		return zero, false
	}
	h := l.hasher.Hash(tuple.Tuple{Local: dst, Remote: src})
	if p := l.policy.Load(); p != nil {
		if p.selector != nil {
			if i := p.selector(dst, src, h, m.vals); i >= 0 && i < n {
				return m.vals[i], true
			}
		} else if p.load != nil && n > 1 {
			a, b := m.vals[tuple.Shard(h, n)], m.vals[tuple.Shard(h*0x9e3779b97f4a7c15+1, n)]
			if p.load(b) < p.load(a) {
				return b, true
			}
			return a, true
		}
	}
	return m.vals[tuple.Shard(h, n)], true
}
