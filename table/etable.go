package table

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/socktable/socktable/tuple"
)

// etable is one version of an Established table: a fixed number of groups.
// A resize builds a new etable and publishes it; the old one is left to
// the garbage collector, so readers still walking it see a consistent, if
// stale, state and need no grace period. An incremental resize (see
// migration.go) links the new table as next and moves the old one's
// entries home group by home group, each moved home locked for good; a
// stop-the-writers resize freezes the old one whole (every group locked
// for good, never written again).
type etable[V comparable] struct {
	meta  []groupMeta // immutable slice header; elements per groupMeta
	slots []slot[V]   // immutable header; len = groupSlots*groups; written under the group locks, versioned per slot
	// displaced[g] counts the entries homed at group g that lie in other
	// groups; guarded by g's lock (only writers use it: see groupMeta).
	displaced []uint32 // immutable header
	groups    int      // immutable, len(meta): lineGroups*lines
	lines     int      // immutable, a prime: metadata cache lines
	maxUsed   int      // immutable: used slots allowed before a resize
	// growAt is the used slots at which a resize begins: maxUsed, or, for
	// a table whose successor a helper allocates (see migration.go), 3/4
	// of the slots, so that the allocation is done before the table is
	// crowded.
	growAt int  // immutable
	closed bool // immutable: the table Close publishes

	// frozen is set once a resize or Close has begun taking every group's
	// lock: a writer finding a group locked then waits for the resize
	// instead of spinning.
	frozen atomic.Bool

	// count holds the entries written into this table (live: inserts less
	// deletes, which a migration's target may see below zero) and its used
	// slots. The table's share of the live entries is inherited + live.
	count counters
	// inherited is the live entries this table took over whole from the
	// table it was migrated from (see migration.go): stored before the
	// table is published (atomic only because writers moved onto it may
	// read it before, to find it is not theirs to resize yet).
	inherited atomic.Int64
	longest   atomic.Int64 // longest probe chain (groups) an insert or a move walked here

	// The incremental resize out of this table (migration.go).
	resizing atomic.Bool      // a resize out of this table has begun (once)
	next     *tablePointer[V] // immutable pointer; the table its entries move to, set once before any home moves
	cursor   atomic.Int64     // next home a helping writer moves
	moved    atomic.Int64     // homes moved
}

// tablePointer is an atomic *etable[V], which an etable reaches through a
// pointer of its own: atomic.LoadPointer's argument escapes, so loading a
// field of the etable itself made escape analysis think the etable leaks,
// and with it LookupBatch's pipeline state that holds it: every caller's
// key array moved to the heap. Loaded through a second pointer, only what
// that pointer points to escapes, which is on the heap anyway.
type tablePointer[V comparable] struct{ p unsafe.Pointer }

// Load returns the table stored, or nil: an atomic load.
func (p *tablePointer[V]) Load() *etable[V] { return (*etable[V])(atomic.LoadPointer(&p.p)) }

// Store stores tb: an atomic store, which Load calls after it see whole.
func (p *tablePointer[V]) Store(tb *etable[V]) { atomic.StorePointer(&p.p, unsafe.Pointer(tb)) }

// live returns the entries written into this table less those deleted
// from it (not the inherited ones): exact when no write runs.
func (tb *etable[V]) live() int { return tb.count.live() }

// crowded reports whether growAt slots are used: time to grow.
func (tb *etable[V]) crowded() bool { return tb.count.used() >= tb.growAt }

// sparse reports whether fewer than 1/8 of the slots would hold the n
// live entries: time to shrink.
func (tb *etable[V]) sparse(n int) bool { return n < tb.groups*groupSlots/8 }

const (
	// Tables hold at most this many live entries (a stripe's halves).
	maxTableEntries = 1<<31 - 1
	// Load limits: resize when used slots pass 7/8 (Swiss tables' bound);
	// size new tables for 3/5, so a grown table uses about 85 bytes per entry.
	maxLoadNum, maxLoadDen = 7, 8
	newLoadNum, newLoadDen = 3, 5
	minGroups              = 2
	// lineGroups is the number of groups whose metadata share a 64-byte
	// cache line: a probe chain visits them all before it jumps.
	lineGroups = 8
)

// tableGroups rounds a number of groups up to what a table has: whole
// metadata lines, a prime number of them.
func tableGroups(groups int) int {
	return lineGroups * nextPrime(max((groups+lineGroups-1)/lineGroups, 2))
}

func newETable[V comparable](groups int) *etable[V] {
	groups = tableGroups(groups)
	tb := &etable[V]{
		meta:      make([]groupMeta, groups),
		slots:     make([]slot[V], groups*groupSlots),
		displaced: make([]uint32, groups),
		groups:    groups,
		lines:     groups / lineGroups,
		maxUsed:   groups * groupSlots * maxLoadNum / maxLoadDen,
		growAt:    groups * groupSlots * maxLoadNum / maxLoadDen,
		count:     newCounters(),
		next:      new(tablePointer[V]),
	}
	return tb
}

// populate faults in the table's pages (see populate), for a table the
// migration helper allocated, before any write uses it: the metadata
// first, then the slots (on huge pages where the system allows) a chunk
// at a time, stopping early once enough()
// reports that the table being migrated from is nearly full (inserts are
// about to wait for this table; the pages left fault in on first use).
func (tb *etable[V]) populate(enough func() bool) {
	populate(unsafe.Pointer(unsafe.SliceData(tb.meta)), uintptr(len(tb.meta))*unsafe.Sizeof(tb.meta[0]))
	populate(unsafe.Pointer(unsafe.SliceData(tb.displaced)), uintptr(len(tb.displaced))*unsafe.Sizeof(tb.displaced[0]))
	const chunk = 1 << 20 // about a millisecond of faults here: the longest an insert at the limit waits for it
	base, size := unsafe.Pointer(unsafe.SliceData(tb.slots)), uintptr(len(tb.slots))*unsafe.Sizeof(tb.slots[0])
	// Huge pages where the system gives them on request (THP "madvise"):
	// a 2 MiB page is one fault instead of 512, so the populate gets
	// further before the old table fills, and lookups take fewer TLB
	// misses (hits during a migration, 2 Ps: 226 to 187 ns).
	adviseHuge(base, size)
	for off := uintptr(0); off < size && !enough(); off += chunk {
		populate(unsafe.Add(base, off), min(chunk, size-off))
	}
}

// nextPrime returns the smallest prime >= n (n >= 2), by trial division:
// at most a few milliseconds for the largest tables, once per resize.
func nextPrime(n int) int {
	for ; ; n++ {
		prime := true
		for d := 2; d*d <= n; d++ {
			if n%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			return n
		}
	}
}

// groupsFor returns the groups needed to hold n entries at the new-table
// load (3/5).
func groupsFor(n int) int {
	slots := (n*newLoadDen + newLoadNum - 1) / newLoadNum
	return max((slots+groupSlots-1)/groupSlots, minGroups)
}

// home returns the first group of h's probe chain and h's tag.
func (tb *etable[V]) home(h uint64) (int, uint64) { return tuple.Shard(h, tb.groups), tagOf(h) }

// probe walks a probe chain. It first visits the groups of the home
// group's metadata line, from home on, wrapping within the line: their
// tags are in the cache line already read, so a lookup that goes on past
// a full group usually costs no second miss (at 7/8 load, a miss lookup
// took a third fewer misses than with a jump after every group). Then it
// jumps to other lines by double hashing: line, line+step, line+2·step,
// ... modulo the number of lines, which is prime, so every step from 1 to
// lines-1 visits every line, each from the same offset. The step is a
// function of the home line alone, so keys that share a home share a
// chain (All relies on it), while chains from different lines run apart
// instead of merging into the long runs linear probing builds at 7/8 load
// (measured: the longest chain over a million keys fell from 29 groups to
// a handful).
type probe struct {
	g    int // the group visited
	n    int // groups visited in g's line, 1..lineGroups
	step int // lines per jump; 0 until the first jump
}

// probeFrom starts a walk at home. The step is computed on the first
// jump: most lookups end in their home line and never need it.
func (tb *etable[V]) probeFrom(home int) probe { return probe{g: home, n: 1} }

func (tb *etable[V]) advance(p *probe) {
	next := p.g&^(lineGroups-1) | (p.g+1)&(lineGroups-1)
	if p.n < lineGroups {
		p.g, p.n = next, p.n+1
		return
	}
	// next is back at the offset the walk entered this line with.
	line := p.g / lineGroups
	if p.step == 0 {
		p.step = 1 + tuple.Shard(uint64(line)*0x9e3779b97f4a7c15, tb.lines-1)
	}
	if line += p.step; line >= tb.lines {
		line -= tb.lines
	}
	p.g, p.n = line*lineGroups+next%lineGroups, 1
}

// lookup finds k (hash h). It is the reader side: no locks, only loads.
//
// A hit is returned only if the slot's version did not move while its key
// and value were read, so the pair is consistent (see slot). A miss needs
// no such check: the metadata word is read atomically, and a slot's entry
// changes only after its tag was cleared, so a key present for the whole
// lookup is always found (the gVisor #5850 race cannot happen). The walk
// ends at the home group's reach, read once at the start: an entry present
// then lies within it (see groupMeta), and one published later may be
// missed, which is a miss linearized at that read.
//
// It also returns the slot's fifth word as read for the hit (its kind and
// whether a kind change is in progress, see slot), 0 for a miss.
//
// If a migration has moved t's home to the next table, it looks there:
// the home's word, read once, says which table holds t's entry (see
// migration.go).
func (tb *etable[V]) lookup(mode valueMode, h uint64, t *tuple.Tuple) (V, uint64, bool) {
	home, tag := tb.home(h)
	w := tb.meta[home].tags.Load() // the home's tags, and its reach
	for w >= movedWord {           // a reader that stalled may meet several migrations
		tb = tb.next.Load()
		home, tag = tb.home(h)
		w = tb.meta[home].tags.Load()
	}
	p := tb.probeFrom(home)
	reach := reachOf(w, tb.groups)
	for d := 1; ; d++ {
		g := p.g
	group:
		for marks := matchTag(w, tag); marks != 0; marks &= marks - 1 {
			s := &tb.slots[g*groupSlots+firstByte(marks)]
			if version, ok := s.holds(t); ok {
				v := loadValue(mode, s)
				if s.k[4].Load() != version {
					w = tb.meta[g].tags.Load() // the slot changed meanwhile: read the group again
					goto group
				}
				return v, version, true
			}
		}
		if d >= reach || emptyBytes(w) != 0 {
			break // the chain ends here
		}
		tb.advance(&p)
		w = tb.meta[p.g].tags.Load()
	}
	var zero V
	return zero, 0, false
}

// found is where find located a key, and where the key's chain first had
// room.
type found struct {
	g, i  int   // group and slot of the key; g < 0 if absent
	free  probe // first group of the chain with a free slot
	room  bool  // whether free is set
	depth int   // groups walked to the key, or to free
}

// find locates k on behalf of a writer that holds k's home lock, so k
// cannot appear or vanish meanwhile, nor the home's reach change. The
// chain's groups may be changed by writers of other keys, so every word
// is still read atomically (a slot being filled for another key is not
// live yet, so it cannot pass for k). Past the reach it only looks for
// room.
func (tb *etable[V]) find(h uint64, t tuple.Tuple) found {
	home, tag := tb.home(h)
	p := tb.probeFrom(home)
	reach := reachOf(tb.meta[home].tags.Load(), tb.groups)
	f := found{g: -1, i: -1}
	for n := 1; n <= tb.groups; n++ {
		tags := tb.meta[p.g].tags.Load()
		for marks := matchTag(tags, tag); n <= reach && marks != 0; marks &= marks - 1 {
			j := firstByte(marks)
			if _, ok := tb.slots[p.g*groupSlots+j].holds(&t); ok {
				f.g, f.i, f.depth = p.g, j, n
				return f
			}
		}
		if !f.room && freeBytes(tags) != 0 {
			f.free, f.room, f.depth = p, true, n
		}
		if emptyBytes(tags) != 0 || n >= reach && f.room {
			break
		}
		tb.advance(&p)
	}
	return f
}

// nextFree moves p along its chain to the next group with a free slot,
// counting the groups walked in depth. It reports false if there is none
// within the walk bound.
func (tb *etable[V]) nextFree(p *probe, depth *int) bool {
	for *depth < tb.groups {
		tb.advance(p)
		*depth++
		if freeBytes(tb.meta[p.g].tags.Load()) != 0 {
			return true
		}
	}
	return false
}

// tryLock takes group g's writer lock if it is free. The metadata word
// changes only under the lock, so a free word read here is still current
// unless another writer takes the lock first.
func (tb *etable[V]) tryLock(g int) bool {
	m := &tb.meta[g].tags
	w := m.Load()
	return w&lockedBit == 0 && m.CompareAndSwap(w, w|lockedBit)
}

// lockState is what lock found.
type lockState uint8

const (
	locked     lockState = iota // the caller holds the lock
	lockFrozen                  // the table is frozen: wait for the resize or Close, then reload it
	lockMoved                   // the group's home entries moved to the next table: go there
)

// lock takes group g's writer lock, spinning while another writer holds
// it (writers hold a group for a few loads and stores). It gives up if
// the table is frozen (the caller must release its locks and wait for the
// resize, Established.waitResize) or if g is a home a migration has moved
// (the caller goes on in tb.next).
func (tb *etable[V]) lock(g int) lockState {
	m := &tb.meta[g].tags
	for spins := 0; ; spins++ {
		w := m.Load()
		if w&lockedBit == 0 && m.CompareAndSwap(w, w|lockedBit) {
			return locked
		}
		if w >= movedWord {
			return lockMoved
		}
		if tb.frozen.Load() {
			return lockFrozen
		}
		if spins > 16 {
			runtime.Gosched() // the holder may be descheduled
		}
	}
}

func (tb *etable[V]) unlock(g int) {
	m := &tb.meta[g].tags
	m.Store(m.Load() &^ lockedBit)
}

// lockOther takes the lock of group g for a writer holding home's lock.
// It only tries, so two writers whose chains cross cannot deadlock; on
// failure the caller drops its locks and starts over.
func (tb *etable[V]) lockOther(home, g int) bool {
	return g == home || tb.tryLock(g)
}

func (tb *etable[V]) unlockOther(home, g int) {
	if g != home {
		tb.unlock(g)
	}
}

// putResult is what put did.
type putResult uint8

const (
	putNoRoom putResult = iota // g had no free slot left (another writer took it)
	putFull                    // reserve refused the entry: the table holds MaxEntries
	putBusy                    // reserve found the table at MaxEntries with writes in flight
	putPlaced                  // stored
	// putFilled: stored in g's last empty slot. The group now extends
	// every probe chain that reaches it, and the used count grew: the
	// moment to check whether the table must grow.
	putFilled
)

// put writes t and v, of kind kind, into a free slot of group g, depth
// groups along the chain from home; the caller has locked both. Before the
// entry becomes visible, home's reach is extended to cover it, and reserve
// (if not nil) has counted it. live is 1 for an entry new to the table,
// 0 for one a migration moves in (counted live in the table it left).
func (tb *etable[V]) put(mode valueMode, home, g, depth int, tag uint64, t tuple.Tuple, v V, kind Kind, reserve func() putResult, live uint64) putResult {
	m := &tb.meta[g].tags
	w := m.Load()
	// Reuse a tombstone before an empty slot: it keeps the used count, and
	// with it the next rehash, where it is.
	marks := matchTag(w, tagDeleted)
	delta := live
	if marks == 0 {
		if marks = emptyBytes(w); marks == 0 {
			return putNoRoom
		}
		delta += usedOne
	}
	i := firstByte(marks)
	if reserve != nil {
		if r := reserve(); r != putPlaced {
			return r
		}
	}
	tb.count.add(delta)
	if depth > 1 {
		tb.displaced[home]++
		hm := &tb.meta[home].tags
		hm.Store(withReach(hm.Load(), depth))
	}
	k := packKey(t)
	s := &tb.slots[g*groupSlots+i]
	s.fillKey(mode, &k, v)
	w = setByte(w, i, tag)
	m.Store(w)
	s.activate(k[4] | uint64(kind)<<kindShift) // the insert takes effect
	if delta >= usedOne && emptyBytes(w) == 0 {
		return putFilled
	}
	return putPlaced
}

// remove deletes the entry in slot i of group g, depth groups along the
// chain from home (the caller has locked both): it clears the tag, so new
// lookups skip the slot, retires the slot, so lookups reading it retry,
// and only then shrinks home's displaced count and perhaps its reach. The
// slot becomes empty if the group still has an empty slot (then no probe
// chain runs through the group, so none can be cut), else a tombstone. It
// reports whether the group is now entirely empty: the moment to check
// whether the table should shrink.
func (tb *etable[V]) remove(mode valueMode, home, g, depth, i int) (emptied bool) {
	m := &tb.meta[g].tags
	w := m.Load()
	mark, delta := uint64(tagDeleted), uint64(1)
	if emptyBytes(w) != 0 {
		mark, delta = tagEmpty, 1+usedOne
	}
	w = setByte(w, i, mark)
	m.Store(w) // the delete takes effect
	tb.slots[g*groupSlots+i].retire(mode)
	if depth > 1 {
		if tb.displaced[home]--; tb.displaced[home] == 0 {
			hm := &tb.meta[home].tags
			hm.Store(withoutReach(hm.Load()))
		}
	}
	tb.count.add(-delta)
	return w&tagsMask == 0
}

// freeze stops every writer of tb for good: it marks tb frozen, so
// writers that find a group locked go and wait for the resize, then takes
// every group's lock, waiting for the writers in progress to finish. The
// locks are never released: tb is never written again. A moved home
// (locked for good already) is skipped.
func (tb *etable[V]) freeze() {
	tb.frozen.Store(true)
	for g := range tb.groups {
		for spins := 0; !tb.tryLock(g) && tb.meta[g].tags.Load() < movedWord; spins++ {
			if spins > 16 {
				runtime.Gosched()
			}
		}
	}
}

// memory returns the bytes the table's arrays occupy.
func (tb *etable[V]) memory() int {
	return int(unsafe.Sizeof(groupMeta{})+unsafe.Sizeof(uint32(0)))*tb.groups +
		int(unsafe.Sizeof(slot[V]{}))*len(tb.slots)
}
