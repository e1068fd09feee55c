package table

import (
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/rcu"
	"github.com/socktable/socktable/tuple"
)

// EstablishedOptions configures an Established table.
type EstablishedOptions struct {
	// Capacity is the number of entries the table holds before its first
	// resize; the table never shrinks below it. 0 means a small default.
	// Negative is ErrCapacity.
	Capacity int
	// MaxEntries, if positive, is a hard limit: an Insert into a table
	// holding MaxEntries entries returns ErrTableFull, so memory stays
	// bounded under a SYN flood. 0 means no limit beyond 2^31-1 entries.
	// Negative is ErrCapacity.
	MaxEntries int
	// Hasher is the stack's shared keyed hasher. nil means a new one, keyed
	// from crypto/rand.
	Hasher *tuple.Hasher
	// CheckHashes makes every Hashed call verify its hash, at the cost of
	// hashing again: a debug aid for a caller's tests. A wrong hash then
	// makes InsertHashed and InsertHashedKind return ErrInvalid, and every
	// other Hashed call find nothing (a miss, no change), every time.
	CheckHashes bool
	// StopWritersToResize makes a resize copy the whole table while every
	// writer waits, as resizes did before they migrated incrementally (and
	// as xsync's maps do): a pause proportional to the table (about 0.1 s
	// at a million entries), but the shortest total resize work, one table
	// at a time. The default, false, migrates incrementally (see
	// Established, "Resizing").
	StopWritersToResize bool
}

// Kind is a small tag an entry of an Established table carries beside its
// value, in the slot itself: a lookup that returns it (LookupKind) costs
// no more memory misses than one that does not, so a stack can tell a
// request entry from a connection without loading the value's pointee.
// Insert stores KindConn; InsertKind stores any Kind up to MaxKind;
// CompareAndSwapKind changes it together with the value.
type Kind uint8

const (
	// KindConn is a full connection: the kind Insert stores.
	KindConn Kind = 0
	// KindRequest is a request entry: a connection still in its
	// handshake, its SYN answered (Linux's TCP_NEW_SYN_RECV request
	// socket, in the established hash).
	KindRequest Kind = 1
	// MaxKind is the largest Kind an entry can carry: kinds 2 and 3 are
	// the caller's to name.
	MaxKind Kind = 3
)

// Established maps connection four-tuples to the caller's socket handles:
// the table every arriving segment is looked up in first. Beside full
// connections it holds the SYN queue's request entries, told apart by a
// Kind kept in the entry itself (see Request entries).
//
// # Layout
//
// An open-addressing hash table of groups of 7 slots (as in Swiss tables
// and Go's own maps, which use 8). Each group's metadata is one 8-byte
// word, in a dense array that mostly stays in cache: 7 tag bytes and a
// control byte holding the writers' lock and the group's reach. Keys are
// stored inline, packed into five words, with the value, in a 48-byte
// slot whose fifth word also carries the entry's kind and the slot's
// version (a per-slot seqlock). A hit costs one cache-miss to memory (the
// slot) instead of the two of node-based maps (bucket, then entry). A
// probe chain visits the eight groups of its home metadata line before it
// jumps to another line by double hashing. A miss usually costs one
// metadata line, decided by the tags alone: it walks no farther than its
// home group's reach, the distance of the farthest entry that overflowed
// from that home, rather than to the first group with an empty slot as a
// Swiss table does (at 7/8 load that halves the groups a miss visits and
// the slots it reads in vain). Keys hold no pointers, so the garbage
// collector never scans them.
//
// # Keys
//
// The key is the four-tuple alone, with no device. A connection bound to
// a device (SO_BINDTODEVICE) or to a VRF is keyed by its four-tuple, and
// the caller checks the device on the handle a lookup returns. Linux's
// inet_match compares the bound device too, but two connections with one
// four-tuple can coexist only in different VRFs (different routing
// domains), and here each routing domain has tables of its own: one
// Established per network namespace or VRF, as one per protocol. Within
// one table a four-tuple names at most one connection, so a device in the
// key would widen every lookup's comparison for a distinction the table
// never has to make.
//
// # Values
//
// V is the caller's socket handle. Readers load it with one atomic
// operation, so V must be pointer-shaped (a pointer, map, chan or func) or
// a pointer-free type of at most 8 bytes (an index, a handle with a
// generation); NewEstablished returns ErrValueType for any other V. A
// pointer V keeps its socket reachable while it is in the table; Delete
// drops the reference.
//
// # Request entries
//
// How the established table holds the SYN queue's request entries: a
// stack keeps the connections whose SYN it has answered and whose final
// ACK it awaits (Linux's TCP_NEW_SYN_RECV request sockets, which Linux
// keeps in its established hash too) in this table, beside its full
// connections, so an arriving segment takes one lookup whatever its
// connection's state. Each entry carries a Kind, two bits in the slot's
// fifth word next to the ports: a lookup that returns it reads no more
// memory than one that does not, and the stack tells a request from a
// connection without loading the value's pointee, so a hit stays one
// memory miss. InsertKind(t, req, KindRequest) enters a request;
// CompareAndSwapKind(t, req, conn, KindConn) makes it a connection at the
// final ACK, the value and the kind in one step; LookupKind,
// LookupHashedKind and LookupBatchHashed (given a kinds slice) return the
// value and the kind as one pair. Lookup, LookupHashed and LookupBatch do
// not read kinds and cost what they cost without them; Insert stores
// KindConn and CompareAndSwap keeps an entry's kind.
//
// The value and the kind are two words, so a kind change is not one
// atomic store: it marks the slot changing, stores the value, then stores
// the kind with a new version (see the slot type). A LookupKind that
// meets a changing slot looks again, so it waits for those two stores, by
// a writer that holds the group's locks and waits for nothing itself; it
// may wait for that writer if it is preempted between them. A Lookup
// never waits: the value alone is one atomic word.
//
// # Hashed calls
//
// Every call keyed by a tuple has a Hashed form taking the tuple's hash,
// Hasher().Hash(t), from a caller that has computed it already: a
// demultiplexer hashes each segment once and uses the hash for this table,
// the TIME_WAIT table, the SO_REUSEPORT member choice and steering. The
// plain forms hash, then do what the Hashed forms do.
//
//	            plain             Hashed                  with a Kind
//	lookup      Lookup            LookupHashed            LookupKind, LookupHashedKind
//	batch       LookupBatch       LookupBatchHashed       LookupBatchHashed with kinds
//	insert      Insert            InsertHashed            InsertKind, InsertHashedKind
//	delete      Delete            DeleteHashed
//	            CompareAndDelete  CompareAndDeleteHashed
//	swap        CompareAndSwap    CompareAndSwapHashed    CompareAndSwapKind, CompareAndSwapHashedKind
//
// A wrong hash is the caller's bug, which the table cannot see without
// hashing again. A Hashed lookup, delete or compare given a wrong hash
// misses (or, if the wrong hash leads to t's group and tag, finds t
// anyway; it never returns another tuple's entry). A Hashed insert given
// a wrong hash stores an entry that calls with the right hash do not find:
// an Insert with the right hash then adds t a second time, All yields it
// twice and Len counts it twice, until it is deleted with the same wrong
// hash. EstablishedOptions.CheckHashes makes every Hashed call check its
// hash (a debug aid for tests, at the cost of a second hash), so that a
// wrong hash is refused every time.
//
// # Memory
//
// 48 bytes of slot and 1.7 of metadata per slot (8 bytes of tags and 4 of
// displaced-entry count per group of 7): about 57 bytes per entry in a
// table presized with EstablishedOptions.Capacity and filled, 85 right
// after a grow (new tables are sized for 3/5 load). While a migration
// runs (see Resizing) both tables exist: at most the old table's 57 bytes
// per entry plus the new one's 85, about 140 (EstablishedStats counts
// both). Inserts allocate nothing; only a resize allocates, the new
// table's arrays (and, for a large table, a helper goroutine). The old
// ones are left to the garbage collector rather than recycled through
// rcu.Recycler: reusing them would need every lookup to announce itself to
// an rcu.Domain (a shared write per lookup, which this table exists to
// avoid), while the collector already knows when the last reader has let
// go, at no cost to readers. The table is bounded by
// EstablishedOptions.MaxEntries; without it, it grows with its live
// entries (up to 2^31-1) and shrinks when they leave.
//
// # Concurrency
//
// Lookup, LookupHashed, LookupBatch and LookupBatchHashed without kinds
// are lock-free: they take no lock, write no shared memory (so lookups
// scale with cores) and retry only while a writer is changing the slot
// they are reading. They never block, not even during a resize, and
// allocate nothing. LookupKind, LookupHashedKind and LookupBatchHashed
// with kinds are the same, except that they wait out a kind change of the
// entry they read (see Request entries).
//
// Insert, Delete, CompareAndDelete, CompareAndSwap and their Hashed and
// Kind forms lock the key's home group (and, briefly, the group they write
// to, if different), so they may block: writers of one group wait for each
// other. Writers of different groups do not contend. During a migration a
// write also moves a bounded number of home groups (see Resizing). Each write counts itself in a counter stripe of the P it
// runs on, so writers on different cores share no counter line (with
// MaxEntries set, they also share one exact count: the price of an exact
// limit). A write that will change nothing (an Insert of a present key, a
// Delete of an absent one, a failed compare) takes no lock: a lock-free
// lookup decides it. All are linearizable with each other and with
// lookups: a write "synchronizes before" any lookup that observes it.
// They allocate nothing, except a write that begins a resize.
//
// With MaxEntries set, Insert returns ErrTableFull only if the table held
// MaxEntries entries at one instant of the call, as lookups saw it: the
// limit's count and the number of writes between changing the count and
// changing what lookups see share one atomic word, and an Insert that
// finds the count at the limit while such a write is in flight waits for
// it (a few stores under that writer's group locks; it spins, then yields
// its P) and tries again. So at the limit an Insert may wait for a
// preempted writer.
//
// # Resizing
//
// The table grows when 7/8 of its slots are used (live or tombstones) and
// shrinks below 1/8 live (never below EstablishedOptions.Capacity), into
// a table sized for 3/5 load. It migrates incrementally, with no writer
// stall: the new table is allocated by the write that finds the need for
// a small table (up to 256 groups, about 90 KB), and by a helper
// goroutine for a larger one while writes go on in the old table; then
// every write first moves its key's home group (the entries homed there)
// into the new table and does its work there, and moves 2 more home
// groups from a shared cursor, while the helper moves the rest. A write
// thus moves at most 3 home groups (about 18 entries at 7/8 load; the
// moves of a write are batched so that their memory misses overlap). The
// last move publishes the new table. A table whose successor the helper
// allocates begins its resize at 3/4 used rather than 7/8, so that the
// allocation is done before the table is crowded (a table of
// EstablishedOptions.Capacity keeps its 7/8, as it promised); the helper
// also faults the new arrays' pages in (madvise on Linux, for as long as
// the old table has room), so that moves into the fresh table take no
// page faults, and an insert that
// finds the old table at 7/8 before the helper has linked its successor
// waits for it rather than crowd the old table further. Lookups consult the old table's home
// word and, if that home has moved, the new table: they stay lock-free,
// allocation-free and never wait, and an entry is never missed nor seen
// twice (a home moves whole, once, under its lock). Len counts the same
// throughout; EstablishedStats.Migrating reports a migration in flight.
// A small table's migration is driven by writes alone, so it may stay in
// flight while none come (both tables kept, lookups a metadata read
// dearer). Two fallbacks are unbounded: an All started during a migration
// completes it first, and if the new table fills before the migration
// ends (inserts far outpacing the moves they make), the write that finds
// it full finishes the migration, or stops writers and copies both tables
// into one (as EstablishedOptions.StopWritersToResize always does).
// BenchmarkEstablishedGrowLatency measures the insert latency and the
// lookup cost during migrations.
//
// All is weakly consistent, in the iter.Seq2[tuple.Tuple, V] form every
// socktable table's All takes: it does not see a consistent snapshot, it
// yields no tuple twice, and its body may call back into the table (see
// All).
//
// Established does not use rcu.SeqCount, the library's sequence count.
// A SeqCount guards a whole structure (or a bucket) with one count that
// readers load besides the data, and a reader waits while the count is
// odd: while any writer of the structure is in the middle of a change, for
// as long as a preempted one stays there. Here each slot is its own
// seqlock: its version sits in the key word a lookup compares anyway (no
// extra cache line, and no count shared by the readers of different
// slots), and a change in progress is a state lookups can decide without
// waiting (a slot being filled is not yet live, one being emptied is no
// longer live: both are misses, linearized before the insert or after the
// delete). Only a kind change has an in-between state, and only the
// lookups that return kinds wait it out.
//
// An Established must not be copied; create it with NewEstablished.
type Established[V comparable] struct {
	table      rcu.Pointer[etable[V]] // the current version, published whole by a resize or Close
	hasher     *tuple.Hasher          // immutable
	hashMask   uint64                 // immutable; all ones except in degenerate-hash tests
	mode       valueMode              // immutable
	maxEntries int                    // immutable
	minGroups  int                    // immutable: from EstablishedOptions.Capacity

	resizeMu   sync.Mutex    // serializes stop-the-writers resizes, migrations' begins and Close
	resizes    atomic.Uint64 // completed resizes
	stopResize bool          // immutable: EstablishedOptions.StopWritersToResize
	background bool          // immutable but for tests: a helper goroutine allocates large tables
	quota      int           // immutable but for tests: migrateQuota

	// bounded is set when MaxEntries is: then limit counts the entries
	// exactly (one shared word, the price of an exact limit). Unbounded
	// tables count only per stripe.
	bounded     bool             // immutable
	reserve     func() putResult // immutable: reserveEntry when bounded, else nil
	checkHashes bool             // immutable: EstablishedOptions.CheckHashes
	hook        func(hookPoint)  // tests only (export_test.go); set before use
	limit       entryLimit
}

// EstablishedStats describes an Established table at one moment; fields
// are read separately and may be mutually inconsistent under concurrent
// writes.
type EstablishedStats struct {
	Entries    int     // live entries
	Capacity   int     // entries it holds before the next resize (at least Entries)
	Slots      int     // allocated slots
	LoadFactor float64 // Entries / Slots
	Resizes    uint64  // completed resizes since NewEstablished
	// LongestProbe is the longest probe chain, in groups of 7 slots, that
	// an insert or a rehash has walked: a lookup reads at most this many
	// groups' metadata (and, for a hit, one slot).
	LongestProbe int
	// BytesPerEntry is the table's own memory (slots, metadata, locks)
	// divided by Entries; 0 when empty. During a migration it counts both
	// tables: the peak.
	BytesPerEntry float64
	// Migrating reports an incremental resize in progress: Slots and
	// LoadFactor are then the old table's, Capacity the new one's.
	Migrating bool
}

// NewEstablished returns an empty table. It returns ErrCapacity for a
// negative Capacity or MaxEntries, and ErrValueType for a V it cannot
// store atomically (see Established).
func NewEstablished[V comparable](opts EstablishedOptions) (*Established[V], error) {
	if opts.Capacity < 0 || opts.MaxEntries < 0 {
		return nil, ErrCapacity
	}
	mode, err := modeOf[V]()
	if err != nil {
		return nil, err
	}
	maxEntries := opts.MaxEntries
	if maxEntries == 0 || maxEntries > maxTableEntries {
		maxEntries = maxTableEntries
	}
	h := opts.Hasher
	if h == nil {
		h = tuple.NewHasher()
	}
	// Capacity entries must fit under the resize threshold (7/8).
	slots := (opts.Capacity*maxLoadDen + maxLoadNum - 1) / maxLoadNum
	minG := tableGroups((slots + groupSlots - 1) / groupSlots)
	m := &Established[V]{hasher: h, hashMask: ^uint64(0), mode: mode, maxEntries: maxEntries,
		minGroups: minG, checkHashes: opts.CheckHashes, stopResize: opts.StopWritersToResize, background: true, quota: migrateQuota}
	if opts.MaxEntries > 0 {
		m.bounded = true
		m.reserve = m.reserveEntry
	}
	m.table.Publish(m.newTable(minG))
	return m, nil
}

// Hasher returns the table's keyed hasher (EstablishedOptions.Hasher, or
// the one NewEstablished made): the hash the Hashed calls take is
// Hasher().Hash(t). A stack checks that all its tables share one, so that
// one hash of a flow serves them all.
func (m *Established[V]) Hasher() *tuple.Hasher { return m.hasher }

// hash returns t's hash as the table uses it.
func (m *Established[V]) hash(t tuple.Tuple) uint64 { return m.hasher.Hash(t) & m.hashMask }

// wrongHash reports whether CheckHashes is set and h is not t's hash.
func (m *Established[V]) wrongHash(h uint64, t tuple.Tuple) bool {
	return m.checkHashes && h&m.hashMask != m.hash(t)
}

// Lookup returns the value stored for t. It is lock-free and allocates
// nothing. After Close it returns false.
func (m *Established[V]) Lookup(t tuple.Tuple) (V, bool) {
	return m.lookupHashed(m.hasher.Hash(t), &t)
}

// LookupHashed is Lookup for a caller that has hashed t already: h must
// be Hasher().Hash(t) (see Established, "Hashed calls").
func (m *Established[V]) LookupHashed(h uint64, t tuple.Tuple) (V, bool) {
	if m.wrongHash(h, t) {
		var zero V
		return zero, false
	}
	return m.lookupHashed(h, &t)
}

// lookupHashed is Lookup given t's hash. Lookup makes it its only call
// after the hash: hashing and loading the table in one expression made the
// compiler copy t through the stack twice, and a plain Lookup slower.
func (m *Established[V]) lookupHashed(h uint64, t *tuple.Tuple) (V, bool) {
	v, _, ok := m.table.Load().lookup(m.mode, h&m.hashMask, t)
	return v, ok
}

// LookupKind is Lookup that also returns the entry's Kind. The value and
// the kind are one pair the entry held at one moment of the call, even
// while a CompareAndSwapKind changes both. It allocates nothing, and is
// lock-free except in one case: while a CompareAndSwapKind of the same
// entry is between its stores it waits for it, spinning and then yielding
// its P, so it may wait for that writer if it is preempted there (see
// Established, "Request entries").
func (m *Established[V]) LookupKind(t tuple.Tuple) (V, Kind, bool) {
	return m.lookupKindHashed(m.hasher.Hash(t), &t)
}

// LookupHashedKind is LookupKind for a caller that has hashed t already:
// h must be Hasher().Hash(t).
func (m *Established[V]) LookupHashedKind(h uint64, t tuple.Tuple) (V, Kind, bool) {
	if m.wrongHash(h, t) {
		var zero V
		return zero, KindConn, false
	}
	return m.lookupKindHashed(h, &t)
}

// lookupKindHashed is LookupKind given t's hash (see lookupHashed).
func (m *Established[V]) lookupKindHashed(h uint64, t *tuple.Tuple) (V, Kind, bool) {
	return m.lookupKind(m.table.Load(), h&m.hashMask, t)
}

// lookupKind looks t up in tb and returns its value and kind as one pair:
// it looks again while the entry's kind change is between its stores (see
// slot.beginKindChange).
func (m *Established[V]) lookupKind(tb *etable[V], h uint64, t *tuple.Tuple) (V, Kind, bool) {
	for spins := 0; ; spins++ {
		v, w, ok := tb.lookup(m.mode, h, t)
		if w&slotChanging == 0 {
			return v, kindOf(w), ok
		}
		if m.hook != nil {
			m.hook(hookKindWait)
		}
		if spins > 16 {
			runtime.Gosched() // the writer may have been preempted
		}
	}
}

// Insert stores v for t, as a KindConn entry, if t is absent. It returns
// ErrExists if t is present (a duplicate SYN racing the first),
// ErrTableFull if the table holds EstablishedOptions.MaxEntries entries,
// ErrInvalidAddr or ErrPort if t is not a valid connection key, and
// ErrClosed after Close. It allocates nothing except when it grows the
// table.
func (m *Established[V]) Insert(t tuple.Tuple, v V) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return m.insert(m.hash(t), t, v, KindConn)
}

// InsertHashed is Insert for a caller that has hashed t already: h must
// be Hasher().Hash(t). With EstablishedOptions.CheckHashes it returns
// ErrInvalid for a wrong h; without, a wrong h stores an entry that calls
// with the right hash will not find (see Established, "Hashed calls").
func (m *Established[V]) InsertHashed(h uint64, t tuple.Tuple, v V) error {
	return m.InsertHashedKind(h, t, v, KindConn)
}

// InsertKind is Insert of an entry of kind k (a request entry, say). It
// returns ErrInvalid for a k above MaxKind.
func (m *Established[V]) InsertKind(t tuple.Tuple, v V, k Kind) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if k > MaxKind {
		return ErrInvalid
	}
	return m.insert(m.hash(t), t, v, k)
}

// InsertHashedKind is InsertKind for a caller that has hashed t already,
// as InsertHashed.
func (m *Established[V]) InsertHashedKind(h uint64, t tuple.Tuple, v V, k Kind) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if k > MaxKind || m.wrongHash(h, t) {
		return ErrInvalid
	}
	return m.insert(h&m.hashMask, t, v, k)
}

// insert is the Insert of a valid key, hashed (h), of kind k.
func (m *Established[V]) insert(h uint64, t tuple.Tuple, v V, k Kind) error {
	tb := m.table.Load()
	for helped := false; ; {
		if tb.closed {
			return ErrClosed
		}
		// A failed insert is a read: decide it without the lock (see
		// unchanged).
		if _, _, ok := tb.lookup(m.mode, h, &t); ok {
			return ErrExists
		}
		switch next, err := m.tryPut(tb, h, t, v, k, m.reserve, 1); next {
		case done:
			return err
		case grown:
			if tb.crowded() {
				m.crowded(tb)
				m.awaitNext(tb)
			}
			return nil
		case moved:
			tb, helped = m.migrating(tb, helped), true
		case yield:
			runtime.Gosched()
		case wait:
			m.waitResize()
			tb = m.table.Load()
		case waitLimit:
			if m.hook != nil {
				m.hook(hookLimitWait)
			}
			m.limit.wait(uint64(m.maxEntries))
		case grow:
			m.makeRoom(tb)
			tb = m.table.Load()
		}
	}
}

// migrating is a write's step onto tb.next, after it moved its key's home
// (or found it moved): it returns tb.next, first moving its share of the
// other homes (migrateQuota) unless it helped already.
func (m *Established[V]) migrating(tb *etable[V], helped bool) *etable[V] {
	if !helped {
		m.helpMigration(tb, m.quota)
	}
	return tb.next.Load()
}

// crowded starts a resize of tb, which an insert found crowded. If tb is
// a migration's next table, not yet published, the migration is finished
// first (the unbounded fallback: a table that fills before its migration
// ends needs inserts far outpacing the moves they make).
func (m *Established[V]) crowded(tb *etable[V]) {
	if m.stopResize {
		m.resize(tb)
		return
	}
	if cur := m.table.Load(); cur != tb && cur.next.Load() == tb {
		m.completeMigration(cur)
	}
	m.startResize(tb, true)
}

// awaitNext holds up an insert that has filled tb to its load limit while
// the helper is still allocating tb's next table: inserts past the limit
// would lengthen every probe chain, and near a full table a chain, and so
// every lookup and move of it, runs on for thousands of groups (a helper
// starved of a P let a table fill: lookups and moves then crawled for
// minutes). It returns once the next table is linked (writes then move
// onto it) or tb is no longer the published table. It yields while it
// waits, so a helper sharing this P runs. Like crowded, it is checked when
// an insert fills a group's last empty slot.
func (m *Established[V]) awaitNext(tb *etable[V]) {
	for waited := false; tb.count.used() >= tb.maxUsed && tb.next.Load() == nil && m.table.Load() == tb && !tb.frozen.Load(); waited = true {
		if !waited && m.hook != nil {
			m.hook(hookAwaitNext)
		}
		runtime.Gosched()
	}
}

// makeRoom is an insert's step when tb has no free slot in its key's
// chain: it resizes, or finishes the migration into tb, or, while a
// helper allocates tb's next table, lets it run.
func (m *Established[V]) makeRoom(tb *etable[V]) {
	if m.stopResize {
		m.resize(tb)
		return
	}
	if cur := m.table.Load(); cur != tb {
		if cur.next.Load() == tb {
			m.mergeResize(cur) // tb is full before its migration ended
		}
		return
	}
	m.startResize(tb, true)
	if tb.next.Load() == nil && m.table.Load() == tb {
		if m.hook != nil {
			m.hook(hookAwaitNext)
		}
		runtime.Gosched() // the helper is allocating it
	}
}

// reserveEntry counts an entry an Insert is about to make visible, for
// etable.put: putPlaced if it may go on, putFull or putBusy if the table
// is at MaxEntries (see entryLimit).
func (m *Established[V]) reserveEntry() putResult {
	r := m.limit.reserve(uint64(m.maxEntries))
	if r == putPlaced && m.hook != nil {
		m.hook(hookInsertReserved)
	}
	return r
}

// hookPoint names a moment a test hook runs at (export_test.go).
type hookPoint uint8

const (
	hookInsertReserved  hookPoint = iota // an Insert counted its entry, which is not visible yet
	hookDeleteUncounted                  // a Delete removed its entry, which is still counted
	hookLimitWait                        // an Insert at MaxEntries waits for a write in flight
	hookKindChanging                     // a CompareAndSwapKind stored the value, not yet the kind
	hookKindWait                         // a LookupKind waits for a kind change
	hookHomeMoved                        // a migration moved one home group
	hookHelperLinking                    // the migration helper has the next table, not yet linked
	hookAwaitNext                        // an insert at the load limit, or with a full chain, waits for the next table
)

// unchanged: a write that will change nothing (an Insert of a present key,
// a Delete of an absent one, a compare that fails) is decided by a
// lock-free lookup first, and is linearizable as that read. Taking the
// group's lock for it would be a write to the group's metadata line,
// which evicts the line from every core reading the group, for no change;
// in a server's table such writes are common (a retransmitted SYN, a late
// close). A write that goes on takes the lock and checks again.

// smallTableGroups: up to this many groups, every delete checks whether
// the table should shrink.
const smallTableGroups = 64

// attempt says what a writer does after one attempt on one table.
type attempt uint8

const (
	done      attempt = iota // finished, with the returned result
	grown                    // inserted, filling a group's last empty slot: check the load
	wait                     // the table is frozen: wait for the resize, then reload it
	yield                    // a second lock was busy: let its holder run, then retry
	waitLimit                // at MaxEntries with writes in flight: wait for them, then retry
	grow                     // no free slot in the chain: resize, then retry
	moved                    // the key's home moved to tb.next: go on there
	proceed                  // lockHome: the home is locked, go on
)

// lockHome takes the lock of the key's home group for a write on tb. If a
// migration out of tb has begun, it moves the home first (see
// migration.go) and returns moved: the write goes on in tb.next. proceed
// means the caller holds the lock.
func (m *Established[V]) lockHome(tb *etable[V], home int) attempt {
	switch tb.lock(home) {
	case lockFrozen:
		return wait
	case lockMoved:
		return moved
	}
	if tb.next.Load() == nil {
		return proceed
	}
	if hs := [1]int{home}; !m.moveLocked(tb, hs[:]) {
		return wait
	}
	return moved
}

// tryPut runs one attempt of insert on tb, reserving the entry with
// reserve (if not nil) and counting it live (1), or not (0, a migration's
// move).
func (m *Established[V]) tryPut(tb *etable[V], h uint64, t tuple.Tuple, v V, k Kind, reserve func() putResult, live uint64) (attempt, error) {
	home, tag := tb.home(h)
	if next := m.lockHome(tb, home); next != proceed {
		return next, nil
	}
	defer tb.unlock(home)
	f := tb.find(h, t)
	if f.g >= 0 {
		return done, ErrExists
	}
	for ok := f.room; ok; ok = tb.nextFree(&f.free, &f.depth) {
		g := f.free.g
		if !tb.lockOther(home, g) {
			return yield, nil
		}
		res := tb.put(m.mode, home, g, f.depth, tag, t, v, k, reserve, live)
		tb.unlockOther(home, g)
		switch res {
		case putFull:
			return done, ErrTableFull
		case putBusy:
			return waitLimit, nil
		case putPlaced, putFilled:
			if reserve != nil {
				m.limit.commit()
			}
			tb.noteProbe(f.depth)
			if res == putFilled {
				return grown, nil
			}
			return done, nil
		}
		// Another writer took the group's last free slot: look further.
	}
	return grow, nil
}

// noteProbe records a probe chain of that many groups, if it is tb's
// longest.
func (tb *etable[V]) noteProbe(probes int) {
	for {
		cur := tb.longest.Load()
		if int64(probes) <= cur || tb.longest.CompareAndSwap(cur, int64(probes)) {
			return
		}
	}
}

// Delete removes t and returns the value it had. It is linearizable and
// allocates nothing; after Close it returns false.
func (m *Established[V]) Delete(t tuple.Tuple) (V, bool) {
	var zero V
	return m.deleteIf(m.hash(t), t, zero, false)
}

// DeleteHashed is Delete for a caller that has hashed t already: h must
// be Hasher().Hash(t); a wrong h finds nothing to delete.
func (m *Established[V]) DeleteHashed(h uint64, t tuple.Tuple) (V, bool) {
	var zero V
	if m.wrongHash(h, t) {
		return zero, false
	}
	return m.deleteIf(h&m.hashMask, t, zero, false)
}

// CompareAndDelete removes t only if it still maps to v, and reports
// whether it did: a late close of an old connection must not remove a
// newer connection that took over the same tuple.
func (m *Established[V]) CompareAndDelete(t tuple.Tuple, v V) bool {
	_, ok := m.deleteIf(m.hash(t), t, v, true)
	return ok
}

// CompareAndDeleteHashed is CompareAndDelete for a caller that has hashed
// t already: h must be Hasher().Hash(t); a wrong h deletes nothing.
func (m *Established[V]) CompareAndDeleteHashed(h uint64, t tuple.Tuple, v V) bool {
	if m.wrongHash(h, t) {
		return false
	}
	_, ok := m.deleteIf(h&m.hashMask, t, v, true)
	return ok
}

// deleteIf deletes t (hash h) if it is present and, if compare is set,
// maps to want.
func (m *Established[V]) deleteIf(h uint64, t tuple.Tuple, want V, compare bool) (V, bool) {
	tb := m.table.Load()
	for helped := false; ; {
		if cur, _, ok := tb.lookup(m.mode, h, &t); !ok || compare && cur != want {
			var zero V
			return zero, false // nothing to delete: a read (see unchanged)
		}
		v, ok, emptied, next := m.tryDelete(tb, h, t, want, compare)
		switch next {
		case yield:
			runtime.Gosched()
			continue
		case wait:
			m.waitResize()
			tb = m.table.Load()
			continue
		case moved:
			tb, helped = m.migrating(tb, helped), true
			continue
		}
		// Checking the load means summing the counter stripes: do it when
		// a group empties (frequent once a table is mostly empty), and on
		// every delete in small tables, which have few groups to empty.
		if (emptied || tb.groups <= smallTableGroups) && tb.groups > m.minGroups && tb.sparse(m.liveIn(tb)) {
			m.startResize(tb, true) // mostly empty: shrink
		}
		return v, ok
	}
}

// tryDelete runs one attempt of deleteIf on tb. emptied reports that the
// entry's group is now empty (see etable.remove).
func (m *Established[V]) tryDelete(tb *etable[V], h uint64, t tuple.Tuple, want V, compare bool) (v V, ok, emptied bool, next attempt) {
	if tb.closed {
		return v, false, false, done
	}
	home, _ := tb.home(h)
	if next := m.lockHome(tb, home); next != proceed {
		return v, false, false, next
	}
	defer tb.unlock(home)
	f := tb.find(h, t)
	g, i := f.g, f.i
	if g < 0 {
		return v, false, false, done
	}
	if !tb.lockOther(home, g) {
		return v, false, false, yield
	}
	defer tb.unlockOther(home, g)
	v = loadValue(m.mode, &tb.slots[g*groupSlots+i])
	if compare && v != want {
		var zero V
		return zero, false, false, done
	}
	if !m.bounded {
		emptied = tb.remove(m.mode, home, g, f.depth, i)
		return v, true, emptied, done
	}
	m.limit.enter()
	emptied = tb.remove(m.mode, home, g, f.depth, i)
	if m.hook != nil {
		m.hook(hookDeleteUncounted)
	}
	m.limit.release()
	return v, true, emptied, done
}

// CompareAndSwap replaces the value of t with new only if it is old, and
// reports whether it did (a TIME_WAIT entry handing its tuple to a new
// connection). The entry keeps its kind. It is linearizable and allocates
// nothing.
func (m *Established[V]) CompareAndSwap(t tuple.Tuple, old, new V) bool {
	return m.swap(m.hash(t), t, old, new, KindConn, false)
}

// CompareAndSwapHashed is CompareAndSwap for a caller that has hashed t
// already: h must be Hasher().Hash(t); a wrong h swaps nothing.
func (m *Established[V]) CompareAndSwapHashed(h uint64, t tuple.Tuple, old, new V) bool {
	if m.wrongHash(h, t) {
		return false
	}
	return m.swap(h&m.hashMask, t, old, new, KindConn, false)
}

// CompareAndSwapKind replaces the value of t with new and its kind with
// newKind, in one step, only if its value is old, and reports whether it
// did: a request entry becoming a connection at the handshake's final
// ACK. A LookupKind sees the old pair or the new one, never a mix; a
// Lookup sees the old value or the new one. It returns false for a
// newKind above MaxKind. It is linearizable and allocates nothing.
func (m *Established[V]) CompareAndSwapKind(t tuple.Tuple, old, new V, newKind Kind) bool {
	if newKind > MaxKind {
		return false
	}
	return m.swap(m.hash(t), t, old, new, newKind, true)
}

// CompareAndSwapHashedKind is CompareAndSwapKind for a caller that has
// hashed t already: h must be Hasher().Hash(t); a wrong h swaps nothing.
func (m *Established[V]) CompareAndSwapHashedKind(h uint64, t tuple.Tuple, old, new V, newKind Kind) bool {
	if newKind > MaxKind || m.wrongHash(h, t) {
		return false
	}
	return m.swap(h&m.hashMask, t, old, new, newKind, true)
}

// swap replaces t's value (hash h) with new if it is old, and its kind
// with k if setKind.
func (m *Established[V]) swap(h uint64, t tuple.Tuple, old, new V, k Kind, setKind bool) bool {
	tb := m.table.Load()
	for helped := false; ; {
		if cur, _, ok := tb.lookup(m.mode, h, &t); !ok || cur != old {
			return false // nothing to swap: a read (see unchanged)
		}
		ok, next := m.trySwap(tb, h, t, old, new, k, setKind)
		switch next {
		case done:
			return ok
		case yield:
			runtime.Gosched()
		case wait:
			m.waitResize()
			tb = m.table.Load()
		case moved:
			tb, helped = m.migrating(tb, helped), true
		}
	}
}

func (m *Established[V]) trySwap(tb *etable[V], h uint64, t tuple.Tuple, old, new V, k Kind, setKind bool) (bool, attempt) {
	if tb.closed {
		return false, done
	}
	home, _ := tb.home(h)
	if next := m.lockHome(tb, home); next != proceed {
		return false, next
	}
	defer tb.unlock(home)
	f := tb.find(h, t)
	g, i := f.g, f.i
	if g < 0 {
		return false, done
	}
	if !tb.lockOther(home, g) {
		return false, yield
	}
	defer tb.unlockOther(home, g)
	s := &tb.slots[g*groupSlots+i]
	if loadValue(m.mode, s) != old {
		return false, done
	}
	if w := s.k[4].Load(); setKind && kindOf(w) != k {
		s.beginKindChange(w)
		storeValue(m.mode, s, new)
		if m.hook != nil {
			m.hook(hookKindChanging)
		}
		s.endKindChange(w, k)
		return true, done
	}
	storeValue(m.mode, s, new) // one atomic word: no new version (see slot)
	return true, done
}

// resize replaces tb by a table sized for its live entries: larger when it
// filled up, smaller when mostly empty, the same size to clear tombstones.
// Writers wait; readers go on reading tb, which stays valid and frozen.
func (m *Established[V]) resize(tb *etable[V]) {
	m.resizeMu.Lock()
	defer m.resizeMu.Unlock()
	if m.table.Load() != tb {
		return // another writer resized it first
	}
	tb.freeze()
	nt := m.newTable(max(groupsFor(m.liveIn(tb)), m.minGroups))
	nt.longest.Store(int64(nt.copyFrom(tb, m.mode, m.hashKey, nil)))
	m.table.Publish(nt)
	m.resizes.Add(1)
}

// waitResize returns once the resize or Close in progress, if any, has
// published its table. The caller must hold no group lock.
func (m *Established[V]) waitResize() {
	m.resizeMu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting is the point
	m.resizeMu.Unlock()
}

func (m *Established[V]) hashKey(k *key) uint64 { return m.hasher.Hash(k.tuple()) & m.hashMask }

// Len returns the number of entries. It is wait-free; under concurrent
// writes it is the count at some moment during the call. A migration
// does not change it (see Established, "Resizing").
func (m *Established[V]) Len() int { return m.liveIn(m.table.Load()) }

// All returns an iterator over the table's entries. It is weakly
// consistent, as sync.Map.Range is: it does not see a consistent snapshot,
// but no tuple is visited twice, and an entry present for the whole
// iteration is visited, with some value it had during the iteration. The
// body may call any method of the table, including writes and Close.
// Entries inserted during the iteration may or may not be visited. An All
// that starts during a migration first completes it (moving every home
// left: work in proportion to the table, as All's own); if a resize
// begins during the iteration, it goes on over the table as it was: a
// home group moved meanwhile is read as it was at its move.
//
// All yields values, not kinds (LookupKind reads an entry's kind). It
// never blocks lookups; it takes each group's writer lock briefly (not
// while calling the body), so it delays writers of that group for a few
// loads, and it may block itself: it waits for a writer holding a group's
// lock, and for a resize in progress. It allocates a small buffer per
// call, grown only for a group with more entries homed at it than a few
// groups hold.
func (m *Established[V]) All() iter.Seq2[tuple.Tuple, V] {
	return func(yield func(tuple.Tuple, V) bool) {
		tb := m.table.Load()
		if tb.next.Load() != nil {
			// Entries may have moved to the next table before the
			// iteration began: walk one table, the migration's result.
			m.completeMigration(tb)
			tb = m.table.Load()
		}
		keys := make([]key, 0, groupSlots*4)
		vals := make([]V, 0, groupSlots*4)
		for home := range tb.groups {
			// Collect the entries whose home group is this one, under its
			// lock: they cannot be inserted or deleted meanwhile, so each
			// is seen exactly once across the whole walk.
			keys, vals = m.collectHome(tb, home, keys[:0], vals[:0])
			for i := range keys {
				if !yield(keys[i].tuple(), vals[i]) {
					return
				}
			}
		}
	}
}

// collectHome appends the entries whose home group is home, walking its
// chain (chains are short: EstablishedStats.LongestProbe).
func (m *Established[V]) collectHome(tb *etable[V], home int, keys []key, vals []V) ([]key, []V) {
	reach := tb.groups
	switch tb.lock(home) {
	case locked:
		defer tb.unlock(home)
		reach = reachOf(tb.meta[home].tags.Load(), tb.groups)
	case lockFrozen:
		// Once the resize has published its table, tb is never written
		// again and needs no lock.
		m.waitResize()
		reach = reachOf(tb.meta[home].tags.Load(), tb.groups)
	case lockMoved:
		// A migration begun during the iteration moved the home: its
		// entries here stay as they were at the move, but the word no
		// longer has their reach; walk to a group with an empty slot.
	}
	p := tb.probeFrom(home)
	for d := 1; d <= tb.groups; d++ {
		g := p.g
		tags := tb.meta[g].tags.Load()
		for i := range groupSlots {
			if byteAt(tags, i) < 2 {
				continue
			}
			// An entry homed here cannot change (its home is locked or
			// tb frozen): a slot that changes while read held another.
			k, v, ok := tb.slots[g*groupSlots+i].loadLive(m.mode)
			if !ok {
				continue
			}
			if h, _ := tb.home(m.hashKey(&k)); h != home {
				continue
			}
			keys = append(keys, k)
			vals = append(vals, v)
		}
		if d >= reach || emptyBytes(tags) != 0 {
			break
		}
		tb.advance(&p)
	}
	return keys, vals
}

// Close empties the table and makes every later write return ErrClosed
// and every later lookup miss. It waits for writers in progress. A second
// Close returns ErrClosed.
func (m *Established[V]) Close() error {
	m.resizeMu.Lock()
	defer m.resizeMu.Unlock()
	tb := m.table.Load()
	if tb.closed {
		return ErrClosed
	}
	tb.freeze()
	if nt := tb.next.Load(); nt != nil {
		nt.freeze() // after tb: a move in progress finishes into nt first
	}
	closed := newETable[V](minGroups)
	closed.closed = true
	m.table.Publish(closed)
	return nil
}

// Stats returns the table's size and shape. It is wait-free.
func (m *Established[V]) Stats() EstablishedStats {
	tb := m.table.Load()
	n := m.liveIn(tb)
	slots := tb.groups * groupSlots
	s := EstablishedStats{
		Entries:      n,
		Capacity:     min(max(tb.maxUsed, n), m.maxEntries), // the grow check runs when a group fills: a few more may fit
		Slots:        slots,
		Resizes:      m.resizes.Load(),
		LongestProbe: int(tb.longest.Load()),
	}
	if tb.closed {
		s.Capacity, s.Slots = 0, 0
		return s
	}
	s.LoadFactor = float64(n) / float64(slots)
	memory := tb.memory()
	if nt := tb.next.Load(); nt != nil {
		s.Migrating = true
		s.Capacity = min(max(nt.maxUsed, n), m.maxEntries)
		s.LongestProbe = max(s.LongestProbe, int(nt.longest.Load()))
		memory += nt.memory()
	}
	if n > 0 {
		s.BytesPerEntry = float64(memory) / float64(n)
	}
	return s
}
