package table

import (
	"iter"
	"sync"

	"github.com/socktable/socktable/rcu"
	"github.com/socktable/socktable/tuple"
)

// ListenerIndex is the listener index: for a segment that missed the
// established table, which listening socket gets the connection. It
// answers as Linux's __inet_lookup_listener does:
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
//     chosen by the flow hash, scaled by multiply-shift (tuple.Shard, Linux's
//     reciprocal_scale over inet_ehashfn). Groups hold sockets of one owner,
//     family, v6only setting, device and identical address and port; a
//     member that closes leaves the others serving. SetSelector installs a
//     user chooser (the SO_ATTACH_REUSEPORT_EBPF analogue) and SetLoad a
//     load-aware one (the less loaded of two hashed members).
//
// These rules are checked against connections recorded on the real kernel
// (testdata/kernel/lookup.jsonl).
//
// # Concurrency
//
// Lookup and LookupHashed take no lock, write no shared memory and
// allocate nothing; they take O(1) time in the number of listeners on
// other addresses and ports. They read two buckets (the address's, then
// the wildcards') under the index's rcu.SeqCount and run again if a Listen
// or Close published meanwhile, so they are linearizable with Listen and
// Close; they never block a writer, but a writer preempted in the middle
// of publishing holds them back until it runs again (they spin briefly,
// then yield to it), so they are not lock-free in the strict sense. Listen
// and Close take the index's mutex and copy the one bucket they change; a
// Listen that makes the buckets outnumber the hash slots also rebuilds the
// slot array at twice the size (O(listeners), amortized O(1)). The lock
// order is the index's mutex, then the bind table's port stripe (see
// Ports).
//
// # Memory
//
// 8 bytes per hash slot (at most two per listened-on address and port,
// never shrunk) and, per listener, its Listener, its entry in its bucket
// (copied on each change of the bucket) and its Binding in the bind table.
type ListenerIndex[V comparable] struct {
	ports  *Ports        // immutable
	hasher *tuple.Hasher // immutable: the Ports' hasher
	slots  rcu.Pointer[listenSlots[V]]
	mu     sync.Mutex // serializes Listen, Close, growth and policy changes
	closed bool       // guarded by mu: the Ports closed
	// buckets counts the non-empty (address, port) buckets; guarded by mu.
	buckets int
	// seq brackets each publication (written under mu): a lookup sees the
	// exact and wildcard buckets and the groups of one moment.
	seq    rcu.SeqCount
	policy rcu.Pointer[policy[V]] // nil: the flow hash alone
}

// listenSlots is the index's hash array: a power-of-two number of slots,
// each a chain of buckets. A larger one replaces it, rebuilt with new
// chains, when the buckets outnumber the slots: a lookup that loaded the
// old array finishes on it, consistent if stale, as with any bucket
// snapshot.
type listenSlots[V comparable] struct {
	slots []rcu.Pointer[listenBucket[V]] // immutable header
}

// SetSelector installs a member chooser for SO_REUSEPORT groups, the
// analogue of an SO_ATTACH_REUSEPORT_EBPF program: it gets the flow, its
// hash and the group's members' values (in join order; it must not keep
// or change the slice) and returns an index; an index out of range falls
// back to the hash, as the kernel does for an invalid program result. nil
// removes it. It runs inside Lookup, on every core: it must be fast, must
// not block and should not allocate.
func (l *ListenerIndex[V]) SetSelector(f func(dst, src tuple.Endpoint, hash uint64, members []V) int) {
	l.updatePolicy(func(p *policy[V]) { p.selector = f })
}

// SetLoad makes groups choose, for each flow, the less loaded of two
// members picked by two independent hashes (power of two choices), with
// load reporting a member's accept-queue depth (for instance
// accept.Sharded's whole-listener Depth) or any load figure; it is read at
// each lookup. Flows then stay on one member only while the loads do not
// change, so a stack should use it for the SYN's listener choice, not for
// later segments. nil removes it; a Selector takes precedence.
func (l *ListenerIndex[V]) SetLoad(load func(V) int) {
	l.updatePolicy(func(p *policy[V]) { p.load = load })
}

// updatePolicy publishes a changed copy of the policy (copy-on-write, so
// lookups read a consistent pair).
func (l *ListenerIndex[V]) updatePolicy(change func(*policy[V])) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var p policy[V]
	if old := l.policy.Load(); old != nil {
		p = *old
	}
	change(&p)
	l.policy.Publish(&p)
}

// listenBucket holds the listeners of one (address, port), or of the
// wildcards on one port, in lookup order, with what scoring reads copied
// inline. The first listener is stored in the bucket itself, since most
// buckets hold one: a lookup then reads the slot and the bucket, two
// dependent loads. Buckets whose keys share a slot are chained through
// next. Immutable once published: Listen and Close copy the chain they
// change.
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
// the caller indexed it with (its socket, its accept queue).
type Listener[V comparable] struct {
	l     *ListenerIndex[V] // immutable
	b     *Binding          // immutable
	owner bindOwner         // a copy, immutable
	value V                 // immutable
	group *listenGroup[V]   // immutable; nil unless SO_REUSEPORT
	index bool              // set while in the index; guarded by ListenerIndex.mu
}

// listenGroup is a SO_REUSEPORT group: members in join order.
type listenGroup[V comparable] struct {
	members rcu.Pointer[groupMembers[V]] // immutable snapshots, replaced under ListenerIndex.mu
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

// ListenerIndexOptions configures a ListenerIndex.
type ListenerIndexOptions struct {
	// Slots is the initial number of hash slots (rounded up to a power of
	// two; 8 bytes each); 0 means 1024. The index doubles them whenever
	// the listened-on (address, port) pairs outnumber them, so lookups stay
	// O(1); it never shrinks them.
	Slots int
	// Hasher is the stack's shared keyed hasher (flow hashes for
	// SO_REUSEPORT, bucket hashes). It must be the Ports' own (nil means
	// that one): one hash of a flow serves every table of a stack, and a
	// hash from another Hasher would silently pick other members.
	Hasher *tuple.Hasher
}

// NewListenerIndex returns an empty index over ports' bindings and
// attaches it to ports: from then on a socket listens only through the
// index (Ports.Listen returns ErrInvalid), and Ports.Close empties it. It
// returns ErrCapacity for a negative Slots, ErrInvalid for a nil ports,
// one that already has an index, or a Hasher other than ports', and
// ErrClosed for a closed ports.
func NewListenerIndex[V comparable](ports *Ports, opts ListenerIndexOptions) (*ListenerIndex[V], error) {
	if opts.Slots < 0 {
		return nil, ErrCapacity
	}
	if ports == nil || opts.Hasher != nil && opts.Hasher != ports.hasher {
		return nil, ErrInvalid
	}
	n := 1
	for n < opts.Slots || (opts.Slots == 0 && n < 1024) {
		n *= 2
	}
	l := &ListenerIndex[V]{ports: ports, hasher: ports.hasher}
	l.slots.Publish(&listenSlots[V]{slots: make([]rcu.Pointer[listenBucket[V]], n)})
	if !ports.listeners.CompareAndSwap(nil, &attachedIndex{clear: l.clear}) {
		return nil, ErrInvalid
	}
	if ports.closed.Load() {
		return nil, ErrClosed
	}
	return l, nil
}

// Hasher returns the index's hasher (its Ports'): a stack checks that its
// tables share one.
func (l *ListenerIndex[V]) Hasher() *tuple.Hasher { return l.hasher }

// clear empties the index when its Ports closes: every listener is gone,
// and later calls return ErrClosed.
func (l *ListenerIndex[V]) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.buckets = 0
	l.seq.BeginWrite()
	defer l.seq.EndWrite()
	slots := l.slots.Load().slots
	for i := range slots {
		for b := slots[i].Load(); b != nil; b = b.next {
			b.first.l.index = false
			for j := range b.rest {
				b.rest[j].l.index = false
			}
		}
		slots[i].Publish(nil)
	}
}

func keyOf(o *bindOwner) listenKey {
	if o.addr.IsUnspecified() {
		return listenKey{port: o.port}
	}
	return listenKey{addr: o.addr, port: o.port}
}

// hashKey is a bucket key's endpoint hash.
func (l *ListenerIndex[V]) hashKey(k listenKey) uint64 {
	return l.hasher.HashEndpoint(tuple.Endpoint{Addr: k.addr, Port: k.port})
}

func (l *ListenerIndex[V]) slot(k listenKey) *rcu.Pointer[listenBucket[V]] {
	return l.slots.Load().slotOf(l.hashKey(k))
}

func (t *listenSlots[V]) slotOf(keyHash uint64) *rcu.Pointer[listenBucket[V]] {
	return &t.slots[keyHash&uint64(len(t.slots)-1)]
}

// growLocked replaces the slot array by one twice as large once the
// buckets outnumber the slots. The caller holds mu, so no chain changes
// meanwhile; the buckets are immutable, so the new chains are new nodes
// sharing the old nodes' entries.
func (l *ListenerIndex[V]) growLocked() {
	old := l.slots.Load()
	if l.buckets <= len(old.slots) {
		return
	}
	t := &listenSlots[V]{slots: make([]rcu.Pointer[listenBucket[V]], 2*len(old.slots))}
	for i := range old.slots {
		for b := old.slots[i].Load(); b != nil; b = b.next {
			sp := t.slotOf(l.hashKey(b.key))
			sp.Publish(&listenBucket[V]{key: b.key, first: b.first, rest: b.rest, next: sp.Load()})
		}
	}
	l.slots.Publish(t)
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
// is nil, belongs to another Ports or is already listening, and ErrClosed
// after Ports.Close.
func (l *ListenerIndex[V]) Listen(b *Binding, v V) (*Listener[V], error) {
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
	o, _ := b.owner()
	h := &Listener[V]{l: l, b: b, owner: o, value: v}
	l.seq.BeginWrite()
	defer l.seq.EndWrite()
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
			h.group.members.Publish(&groupMembers[V]{})
		}
		old := h.group.members.Load()
		h.group.members.Publish(&groupMembers[V]{
			ls:   append(append([]*Listener[V](nil), old.ls...), h),
			vals: append(append([]V(nil), old.vals...), v),
		})
	}
	e := entryOf[V](&h.owner)
	e.group, e.l = h.group, h
	var next []listenEntry[V]
	if h.owner.reusePort && h.owner.family == 6 {
		next = append(append(next, entries...), e) // __inet_hash: tail
	} else {
		next = append(append(next, e), entries...) // head
	}
	l.publishLocked(sp, old, k, next)
	h.index = true
	return h, nil
}

// sameGroup is inet_reuseport_add_sock's test: one owner, family, v6only
// setting, device and identical address (and, by the bucket, port).
func sameGroup(a, b *bindOwner) bool {
	return a.family == b.family && a.v6only == b.v6only && a.device == b.device &&
		a.uid == b.uid && a.addr == b.addr && a.port == b.port
}

// publishLocked replaces bucket k of slot sp (whose current value is old)
// by entries (none: the bucket goes), then grows the slot array if the
// buckets now outnumber its slots. The caller holds mu and is inside a
// write section of seq.
func (l *ListenerIndex[V]) publishLocked(sp *rcu.Pointer[listenBucket[V]], old *listenBucket[V], k listenKey, entries []listenEntry[V]) {
	var chain *listenBucket[V]
	if len(entries) > 0 {
		chain = &listenBucket[V]{key: k, first: entries[0], rest: entries[1:]}
	}
	switch had := find(old, k) != nil; {
	case !had && chain != nil:
		l.buckets++
		defer l.growLocked()
	case had && chain == nil:
		l.buckets--
	}
	for b := old; b != nil; b = b.next {
		if b.key != k {
			chain = &listenBucket[V]{key: b.key, first: b.first, rest: b.rest, next: chain}
		}
	}
	sp.Publish(chain)
}

// Close removes the listener from the index and its group (the others go
// on serving) and releases its binding, in one step. The connections
// queued for it are the stack's: it migrates each to the member Successor
// picks for it (net.ipv4.tcp_migrate_req), or resets it. A second Close
// returns ErrClosed, as does a Close after Ports.Close (which removed
// every listener).
func (h *Listener[V]) Close() error {
	l := h.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || !h.index {
		return ErrClosed
	}
	h.index = false
	l.seq.BeginWrite()
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
		h.group.members.Publish(next)
	}
	l.publishLocked(sp, old, k, entries)
	l.seq.EndWrite()
	return l.ports.release(h.b, true)
}

// Value returns the value the listener was indexed with.
func (h *Listener[V]) Value() V { return h.value }

// Binding returns the listener's hold on its port.
func (h *Listener[V]) Binding() *Binding { return h.b }

// Members returns the SO_REUSEPORT group the listener belongs to, in join
// order, as of now (a new slice): itself included while it listens, the
// other members after its Close. A listener not in a group gets itself
// while it listens, nothing after. It allocates the slice; for a group it
// takes no lock.
func (h *Listener[V]) Members() []*Listener[V] {
	if h.group == nil {
		h.l.mu.Lock()
		defer h.l.mu.Unlock()
		if h.index {
			return []*Listener[V]{h}
		}
		return nil
	}
	return append([]*Listener[V](nil), h.group.members.Load().ls...)
}

// Successor returns the member of the listener's SO_REUSEPORT group that
// takes over a connection with flow hash flowHash when the listener
// closes (Linux's reuseport_migrate_sock: the flow hash scaled over the
// members still listening), or false if none is left (the connection is
// reset). Call it after Close, for each connection queued for the
// listener, with the flow hash of the connection's four-tuple. It takes no
// lock and allocates nothing.
func (h *Listener[V]) Successor(flowHash uint64) (*Listener[V], bool) {
	if h.group == nil {
		return nil, false
	}
	m := h.group.members.Load()
	n := len(m.ls)
	if n == 0 {
		return nil, false
	}
	if c := m.ls[tuple.Shard(flowHash, n)]; c != h {
		return c, true
	}
	// Still listening (Successor before Close), and picked: pick among
	// the others, skipping its own position.
	if n == 1 {
		return nil, false
	}
	i := tuple.Shard(flowHash, n-1)
	if m.ls[i] == h {
		i = n - 1
	}
	return m.ls[i], true
}

// All returns an iterator over the index's listeners, each with the local
// endpoint it listens on (a wildcard address for a wildcard listener), in
// no particular order. It reads published snapshots without a lock, so
// yield may call back into the index; it does not see a consistent
// snapshot (a listener added or closed meanwhile may or may not be seen)
// but yields no listener twice.
func (l *ListenerIndex[V]) All() iter.Seq2[tuple.Endpoint, *Listener[V]] {
	return func(yield func(tuple.Endpoint, *Listener[V]) bool) {
		seen := map[*Listener[V]]struct{}{} // a slot array may be replaced meanwhile
		slots := l.slots.Load().slots
		for i := range slots {
			for b := slots[i].Load(); b != nil; b = b.next {
				for _, e := range b.entries() {
					if _, dup := seen[e.l]; dup {
						continue
					}
					seen[e.l] = struct{}{}
					if !yield(tuple.Endpoint{Addr: e.l.owner.addr, Port: e.l.owner.port}, e.l) {
						return
					}
				}
			}
		}
	}
}

// Lookup returns the listener that gets a connection to dst from src
// arriving on device (0 if unknown), as described on ListenerIndex, or
// false if none listens (the kernel answers with a RST). It hashes the
// flow only if a SO_REUSEPORT group must pick a member; a stack that has
// hashed the flow already calls LookupHashed.
func (l *ListenerIndex[V]) Lookup(dst, src tuple.Endpoint, device int) (*Listener[V], bool) {
	return l.lookupRetry(0, false, dst, src, device)
}

// LookupHashed is Lookup for a flow the stack has hashed once with its
// Hasher (flowHash = Hasher.Hash of the tuple {Local: dst, Remote: src}),
// the hash that picks the SO_REUSEPORT member. A hash from another Hasher
// picks a member the kernel's rules would not (never a wrong listener).
func (l *ListenerIndex[V]) LookupHashed(flowHash uint64, dst, src tuple.Endpoint, device int) (*Listener[V], bool) {
	return l.lookupRetry(flowHash, true, dst, src, device)
}

// lookupRetry runs the lookup under the index's sequence count until it
// read one moment of the index: it reads two buckets (the address's, then
// the wildcards'), and without the check it could miss an exact listener
// added before a wildcard one it then finds, an answer no moment of the
// index gives. Each hash it needs (a bucket's endpoint, the flow's) is
// computed once, when first needed, and kept across retries. It allocates
// nothing.
func (l *ListenerIndex[V]) lookupRetry(flowHash uint64, hashed bool, dst, src tuple.Endpoint, device int) (*Listener[V], bool) {
	flow := lazyFlow{h: flowHash, ok: hashed}
	exact := !dst.Addr.IsUnspecified()
	var exactHash, wildHash uint64
	if exact {
		exactHash = l.hashKey(listenKey{addr: dst.Addr, port: dst.Port})
	}
	haveWild := false
	for {
		e := l.seq.BeginRead()
		slots := l.slots.Load()
		if exact {
			h, ok := l.lookupIn(slots.slotOf(exactHash), listenKey{addr: dst.Addr, port: dst.Port}, dst, src, device, &flow)
			if ok {
				if l.seq.ReadOK(e) {
					return h, true
				}
				continue
			}
		}
		if !haveWild {
			wildHash, haveWild = l.hashKey(listenKey{port: dst.Port}), true
		}
		h, ok := l.lookupIn(slots.slotOf(wildHash), listenKey{port: dst.Port}, dst, src, device, &flow)
		if l.seq.ReadOK(e) {
			return h, ok
		}
	}
}

// lazyFlow is a lookup's flow hash, computed when a SO_REUSEPORT group
// first needs it.
type lazyFlow struct {
	h  uint64
	ok bool
}

func (f *lazyFlow) hash(hasher *tuple.Hasher, dst, src tuple.Endpoint) uint64 {
	if !f.ok {
		f.h, f.ok = hasher.Hash(tuple.Tuple{Local: dst, Remote: src}), true
	}
	return f.h
}

func (l *ListenerIndex[V]) lookupIn(sp *rcu.Pointer[listenBucket[V]], k listenKey, dst, src tuple.Endpoint,
	device int, flow *lazyFlow) (*Listener[V], bool) {
	var best *listenEntry[V]
	hiscore := 0
	if bk := find(sp.Load(), k); bk != nil {
		e := &bk.first
		for i := 0; ; i++ {
			if score := e.score(dst.Addr, device); score > hiscore {
				if e.group != nil {
					if h, ok := e.group.pick(l, flow, dst, src); ok {
						return h, true
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
		return nil, false
	}
	return best.l, true
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

// pick chooses the group member for the flow: the Selector's choice if
// one is set and valid, else the less loaded of two hashed members if
// SetLoad was used, else reciprocal_scale of the flow hash over the
// members. false if the group is empty.
func (g *listenGroup[V]) pick(l *ListenerIndex[V], flow *lazyFlow, dst, src tuple.Endpoint) (*Listener[V], bool) {
	m := g.members.Load()
	n := len(m.ls)
	if n == 0 {
		return nil, false
	}
	h := flow.hash(l.hasher, dst, src)
	if p := l.policy.Load(); p != nil {
		if p.selector != nil {
			if i := p.selector(dst, src, h, m.vals); i >= 0 && i < n {
				return m.ls[i], true
			}
		} else if p.load != nil && n > 1 {
			i, j := tuple.Shard(h, n), tuple.Shard(h*0x9e3779b97f4a7c15+1, n)
			if p.load(m.vals[j]) < p.load(m.vals[i]) {
				return m.ls[j], true
			}
			return m.ls[i], true
		}
	}
	return m.ls[tuple.Shard(h, n)], true
}
