package table

import (
	"runtime"
	"unsafe"
)

// An incremental resize ("migration") replaces a table by a larger or
// smaller one while writers go on, each doing a bounded share of the work:
//
//  1. begin: the writer that finds the table crowded (or sparse) sizes a
//     new table for the live entries. A small one (syncAllocGroups) it
//     allocates itself; a large one, whose zeroing would stall it for
//     milliseconds, a helper goroutine allocates, and faults in, while
//     writers go on in the old table (which has 1/8 of its slots free at
//     the 3/4 trigger; an insert that fills it to 7/8 first waits for the
//     helper). The new table is linked as the old one's next.
//  2. move: from then on, a write first moves its key's home group: under
//     the old home's lock it copies every entry homed there into the next
//     table, then marks the home moved (reachMoved in its word, the lock
//     kept for good), and does its write in the next table. It also moves
//     migrateQuota more homes from a shared cursor, and the helper (for a
//     large table) moves the rest, yielding between chunks.
//  3. finish: whoever moves the last home publishes the next table.
//
// A home moves whole and once, under its lock, and every write of a key
// takes the key's old home lock first, so a key's entry is in exactly one
// reachable place: in the old table until its home moves, in the next one
// after. A lookup reads its home's word in the old table once: not moved,
// it walks the old table, whose entries for that home are never written
// again after the move (a lookup that read the word just before the move
// sees the state at the move, which lies within the lookup); moved, it
// looks in the next table. Entries are never missed or seen twice, and
// lookups take no lock, write nothing and allocate nothing throughout.
//
// Counting: moved entries are counted as used slots in the next table but
// not as live (they were counted live where they were inserted), so the
// live total, summed over both tables, does not move with them; the
// finisher hands the old table's live count to the next one as inherited.
//
// If the next table cannot take an entry (it filled: only with many more
// inserts in flight than it has spare slots, or a degenerate hash), the
// mover falls back to a stop-the-writers copy of both tables into one
// sized for them (mergeResize): correct, but a pause, as every resize was
// before migrations.
const (
	// migrateQuota is the homes a write moves from the cursor besides its
	// own: a write moves at most 1 + migrateQuota homes.
	migrateQuota = 2
	// helperChunk is the homes the helper goroutine moves between yields.
	helperChunk = 8
	// syncAllocGroups bounds the tables a writer allocates itself (about
	// 86 KB of slots at 48 bytes); larger ones are the helper's.
	syncAllocGroups = 256
	// beginRoomNum/Den: a migration's next table must have room for the
	// live entries at 3/4 of its slots when the migration begins, or the
	// helper sizes it again.
	beginRoomNum, beginRoomDen = 3, 4
	// earlyNum/Den: a table whose successor the helper allocates begins
	// its resize when 3/4 of its slots are used, not 7/8: allocating
	// (and zeroing) the new arrays takes the helper tens of milliseconds
	// at a million entries, or longer when it must share a core, and
	// writers meanwhile go on filling this table. Begun at 7/8, the table
	// reached 99% and inserts waited for room.
	earlyNum, earlyDen = 3, 4
)

// newTable returns a table of groups for the Established, with its resize
// trigger: early if a helper will allocate its successor.
func (m *Established[V]) newTable(groups int) *etable[V] {
	tb := newETable[V](groups)
	// Its successor is at least half its size (a shrink below 1/8 live)
	// and allocated by the helper if over syncAllocGroups. A table of
	// EstablishedOptions.Capacity keeps 7/8: it promised that many
	// entries without a resize.
	if m.background && !m.stopResize && tb.groups > syncAllocGroups/2 && tb.groups > m.minGroups {
		tb.growAt = tb.groups * groupSlots * earlyNum / earlyDen
	}
	return tb
}

// liveIn returns the table's live entries as seen from tb, the published
// table: those tb inherited and those written into it, and, during a
// migration, those written into the next table.
func (m *Established[V]) liveIn(tb *etable[V]) int {
	n := int(tb.inherited.Load()) + tb.live()
	if nt := tb.next.Load(); nt != nil {
		n += nt.live()
	}
	return n
}

// startResize begins a resize of tb if tb is the published table and no
// resize of it has begun. The writer that begins a migration of a small
// table also moves its share (migrateQuota) of it, unless it moved homes
// already in this write (help false: it finished the last migration).
func (m *Established[V]) startResize(tb *etable[V], help bool) {
	if m.stopResize {
		m.resize(tb)
		return
	}
	if m.table.Load() != tb || tb.closed || !tb.resizing.CompareAndSwap(false, true) {
		return
	}
	n := m.liveIn(tb)
	if tb.growAt < tb.maxUsed {
		n = n * maxLoadNum * earlyDen / (maxLoadDen * earlyNum) // as if at 7/8: it fills on meanwhile
	}
	groups := max(groupsFor(n), m.minGroups)
	if tableGroups(groups) > syncAllocGroups && m.background {
		go m.prepareMigration(tb, groups)
		return
	}
	if m.beginMigration(tb, m.newTable(groups)) && help {
		m.helpMigration(tb, m.quota)
	}
}

// prepareMigration is the helper goroutine of a large table's migration:
// it allocates the next table, links it, and moves homes until none is
// left at the cursor.
func (m *Established[V]) prepareMigration(tb *etable[V], groups int) {
	nt := m.newTable(groups)
	// Writers went on in tb meanwhile: size again if they outgrew it.
	if n := m.liveIn(tb); n > nt.groups*groupSlots*beginRoomNum/beginRoomDen {
		nt = m.newTable(groupsFor(n))
	}
	// A large table comes fresh from the OS: without this, nearly every
	// entry moved into it took a page fault (a few µs in a VM), and a
	// write's share of moves went past 50 µs. A few system calls here
	// fault the pages in before the moves begin, off the writers' path,
	// unless tb fills meanwhile: within 1/16 of its room from its limit
	// the helper links nt as it is (inserts would soon wait for it).
	stopAt := tb.maxUsed - (tb.maxUsed-tb.growAt)/16
	nt.populate(func() bool { return tb.count.used() >= stopAt })
	if m.hook != nil {
		m.hook(hookHelperLinking)
	}
	if !m.beginMigration(tb, nt) {
		return
	}
	for m.helpMigration(tb, helperChunk) {
		runtime.Gosched() // let writers and readers sharing this P run
	}
}

// beginMigration links nt as tb's next table, which starts the moves. It
// reports false if tb is no longer the published table (Close replaced
// it).
func (m *Established[V]) beginMigration(tb, nt *etable[V]) bool {
	m.resizeMu.Lock() // excludes Close, which freezes tb and its next
	defer m.resizeMu.Unlock()
	if m.table.Load() != tb || tb.frozen.Load() {
		return false
	}
	tb.next.Store(nt)
	return true
}

// helpMigration moves up to quota homes of tb from its cursor. It reports
// whether homes are left at the cursor.
func (m *Established[V]) helpMigration(tb *etable[V], quota int) bool {
	for quota > 0 {
		n := min(quota, helperChunk)
		c := int(tb.cursor.Add(int64(n)) - int64(n))
		if c >= tb.groups || !m.moveRange(tb, c, min(c+n, tb.groups)) {
			return false
		}
		quota -= n
	}
	return int(tb.cursor.Load()) < tb.groups
}

// completeMigration moves every home of tb left and returns once the next
// table (or a table Close or mergeResize published) has replaced tb. It is
// the unbounded path: All, and a writer that finds the next table crowded
// before the migration finished.
func (m *Established[V]) completeMigration(tb *etable[V]) {
	for lo := 0; lo < tb.groups; lo += helperChunk {
		if !m.moveRange(tb, lo, min(lo+helperChunk, tb.groups)) {
			break
		}
	}
	// The last mover may be between its count and its publication.
	for spins := 0; m.table.Load() == tb; spins++ {
		if spins > 16 {
			runtime.Gosched()
		} else if spins == 0 {
			m.waitResize() // a mergeResize in progress
		}
	}
}

// moveRange moves the homes lo..hi-1 of tb (at most helperChunk) that have
// not moved yet, as one batch. It reports false if tb froze (Close, or a
// mergeResize): the migration is over.
func (m *Established[V]) moveRange(tb *etable[V], lo, hi int) bool {
	var held [helperChunk]int
	n := 0
	for g := lo; g < hi; g++ { // in order: two ranges cannot deadlock
		switch tb.lock(g) {
		case locked:
			held[n] = g
			n++
		case lockFrozen:
			for _, h := range held[:n] {
				tb.unlock(h)
			}
			return false
		}
	}
	return n == 0 || m.moveLocked(tb, held[:n])
}

// moveLocked moves the entries homed at homes, whose locks the caller
// holds, into tb.next, then marks each home moved, keeping its lock for
// good. It reports false if it could not (the tables froze, or the next
// one is full and mergeResize replaced both): then it has released the
// locks. The entries are moved in batches (moveBatch), so that their
// memory misses overlap.
func (m *Established[V]) moveLocked(tb *etable[V], homes []int) bool {
	nt := tb.next.Load()
	var b moveBatch[V]
	for _, home := range homes {
		p := tb.probeFrom(home)
		reach := reachOf(tb.meta[home].tags.Load(), tb.groups)
		for d := 1; d <= tb.groups; d++ {
			g := p.g
			tags := tb.meta[g].tags.Load()
			for i := range groupSlots {
				if byteAt(tags, i) < 2 {
					continue
				}
				// An entry homed here cannot change (its home is locked);
				// a slot that changes while read holds another home's.
				k, v, ok := tb.slots[g*groupSlots+i].loadLive(m.mode)
				if !ok {
					continue
				}
				h := m.hashKey(&k)
				if kh, _ := tb.home(h); kh != home {
					continue
				}
				if b.add(nt, k, v, h) {
					continue
				}
				if r := m.placeBatch(nt, &b); r != locked {
					return m.abortMove(tb, homes, r)
				}
				b.add(nt, k, v, h)
			}
			if d >= reach || emptyBytes(tags) != 0 {
				break
			}
			tb.advance(&p)
		}
	}
	if r := m.placeBatch(nt, &b); r != locked {
		return m.abortMove(tb, homes, r)
	}
	for _, home := range homes {
		hm := &tb.meta[home].tags
		hm.Store(hm.Load() | movedWord)
		if m.hook != nil {
			m.hook(hookHomeMoved)
		}
	}
	if tb.moved.Add(int64(len(homes))) == int64(tb.groups) {
		m.finishMigration(tb, nt)
	}
	return true
}

// abortMove releases the homes of a move that could not place its
// entries, r saying why, and reports false. Copies it placed already stay
// in the next table unreachable: their homes here have not moved, and a
// mergeResize skips them.
func (m *Established[V]) abortMove(tb *etable[V], homes []int, r lockState) bool {
	for _, h := range homes {
		tb.unlock(h)
	}
	if r == lockMoved { // the next table is full
		m.mergeResize(tb)
	}
	return false
}

// moveBatchLen is the entries a move places at a time.
const moveBatchLen = 64

// moveBatch is entries on their way to the next table, with the cache
// lines their placement will touch.
type moveBatch[V comparable] struct {
	k     [moveBatchLen]key
	v     [moveBatchLen]V
	h     [moveBatchLen]uint64
	n     int
	addrs [2 * moveChunk]uintptr
}

// add appends an entry and prefetches its home's metadata in nt; it
// reports false if the batch is full.
func (b *moveBatch[V]) add(nt *etable[V], k key, v V, h uint64) bool {
	if b.n == moveBatchLen {
		return false
	}
	b.k[b.n], b.v[b.n], b.h[b.n] = k, v, h
	home, _ := nt.home(h)
	b.addrs[0] = uintptr(unsafe.Pointer(&nt.meta[home]))
	prefetch(&b.addrs[0], 1)
	b.n++
	return true
}

// placeBatch puts the batch's entries into nt and empties the batch. As
// in copyFrom, it runs a pipeline over chunks of moveChunk entries: while
// it places one chunk, the slots the next will most likely take (the
// first free one of each entry's home group, whose metadata add
// prefetched) are on their way. It returns what moveEntry returned for the
// first entry it could not place, or locked.
func (m *Established[V]) placeBatch(nt *etable[V], b *moveBatch[V]) lockState {
	n := b.n
	b.n = 0
	m.prefetchSlots(nt, b, 0, min(moveChunk, n))
	for lo := 0; lo < n; lo += moveChunk {
		hi := min(lo+moveChunk, n)
		m.prefetchSlots(nt, b, hi, min(hi+moveChunk, n))
		for i := lo; i < hi; i++ {
			if r := m.moveEntry(nt, b.h[i], &b.k[i], b.v[i]); r != locked {
				return r
			}
		}
	}
	return locked
}

// moveChunk is the entries of a batch whose slots are prefetched at once.
const moveChunk = 16

// prefetchSlots prefetches, for the batch's entries lo..hi-1, the slot
// each will most likely take in nt. A 48-byte slot straddles two cache
// lines half the time: both ends are prefetched.
func (m *Established[V]) prefetchSlots(nt *etable[V], b *moveBatch[V], lo, hi int) {
	cnt := 0
	for i := lo; i < hi; i++ {
		home, _ := nt.home(b.h[i])
		if free := freeBytes(nt.meta[home].tags.Load()); free != 0 {
			s := &nt.slots[home*groupSlots+firstByte(free)]
			b.addrs[cnt] = uintptr(unsafe.Pointer(&s.k[0]))
			b.addrs[cnt+1] = uintptr(unsafe.Pointer(&s.v))
			cnt += 2
		}
	}
	if cnt > 0 {
		prefetch(&b.addrs[0], cnt)
	}
}

// moveEntry puts the entry k, v (hash h) into nt, where it is absent. It
// returns locked once it is in, lockFrozen if nt froze, and lockMoved if nt
// has no free slot in the entry's whole chain (it is full).
func (m *Established[V]) moveEntry(nt *etable[V], h uint64, k *key, v V) lockState {
	t := k.tuple()
	kind := kindOf(k[4])
	for {
		next, _ := m.tryPut(nt, h, t, v, kind, nil, 0)
		switch next {
		case done, grown:
			return locked
		case wait, moved: // moved: unreachable, nt migrates only once published
			return lockFrozen
		case grow:
			return lockMoved
		}
		runtime.Gosched() // yield: a second lock was busy
	}
}

// finishMigration publishes nt, into which every home of tb has moved,
// and starts its own resize if it needs one already.
func (m *Established[V]) finishMigration(tb, nt *etable[V]) {
	// Every write into tb held a home lock that has since been taken for
	// good: tb's count is final.
	nt.inherited.Store(tb.inherited.Load() + int64(tb.live()))
	if !m.table.CompareAndPublish(tb, nt) {
		return // Close, or a mergeResize, replaced tb first
	}
	m.resizes.Add(1)
	if nt.crowded() || nt.groups > m.minGroups && nt.sparse(m.liveIn(nt)) {
		m.startResize(nt, false)
	}
}

// mergeResize is the fallback when a migration's next table is full: it
// stops the writers of tb and its next table and copies both into one
// table sized for their live entries, as a stop-the-writers resize does.
// The caller holds no lock.
func (m *Established[V]) mergeResize(tb *etable[V]) {
	m.resizeMu.Lock()
	defer m.resizeMu.Unlock()
	if m.table.Load() != tb {
		// Finished (a move found room after all), or closed. A finisher
		// may also publish nt after this check: then nt's own resize
		// waits for resizeMu, and the copy below still takes nt whole.
		return
	}
	nt := tb.next.Load()
	tb.freeze()
	nt.freeze()
	merged := m.newTable(max(groupsFor(m.liveIn(tb)), m.minGroups))
	// Both frozen: an entry is in tb if its home there has not moved, in
	// nt if it has (nt may also hold copies a failed move left behind,
	// whose tb home has not moved: they are skipped).
	moved := func(h uint64) bool {
		g, _ := tb.home(h)
		return tb.meta[g].tags.Load() >= movedWord
	}
	longest := merged.copyFrom(tb, m.mode, m.hashKey, func(h uint64) bool { return !moved(h) })
	longest = max(longest, merged.copyFrom(nt, m.mode, m.hashKey, moved))
	merged.longest.Store(int64(longest))
	m.table.Publish(merged)
	m.resizes.Add(1)
}
