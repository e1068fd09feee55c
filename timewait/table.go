package timewait

import (
	"iter"
	"math/bits"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/socktable/socktable/internal/errs"
	"github.com/socktable/socktable/tuple"
)

// More sentinel errors of this package (the same values as socktable's).
var (
	// ErrTimeWaitFull: Enter at the MaxBuckets cap. The caller closes the
	// socket at once, with no TIME_WAIT, as Linux does.
	ErrTimeWaitFull = errs.ErrTimeWaitFull
	// ErrExists: Enter of a four-tuple that already has an entry.
	ErrExists = errs.ErrExists
)

// DefaultMaxBuckets is TableOptions.MaxBuckets when it is 0: Linux's
// tcp_max_tw_buckets on a host whose established hash has 524288 buckets
// (the kernel sets it to half that size).
const DefaultMaxBuckets = 1 << 18

// Limits of TableOptions.
const (
	// MaxMaxBuckets is the largest MaxBuckets accepted.
	MaxMaxBuckets = 1 << 28
	// MaxLifetime is the longest Lifetime or FinWait2Timeout accepted: the
	// table keeps times in 32-bit milliseconds (see Table).
	MaxLifetime = 24 * time.Hour
)

// TableOptions configures a Table whose entries own values of type V. The
// zero value gives Linux's defaults, except for Reuse (see there).
type TableOptions[V any] struct {
	// Lifetime is how long an entry stays in TIME_WAIT after it enters or
	// after a segment restarts its timer; 0 means TimeWaitLen (60 s).
	Lifetime time.Duration
	// FinWait2Timeout is how long an entry that enters in the FinWait2
	// substate lives unless the peer's FIN moves it to TIME_WAIT (what
	// remains of Linux's tcp_fin_timeout); 0 means 60 s, the sysctl's
	// default.
	FinWait2Timeout time.Duration
	// MaxBuckets caps the number of entries (tcp_max_tw_buckets); 0 means
	// DefaultMaxBuckets. Enter at the cap returns ErrTimeWaitFull.
	MaxBuckets int
	// RFC1337 ignores in-window RSTs instead of letting them kill the entry
	// (net.ipv4.tcp_rfc1337; Linux's default is off).
	RFC1337 bool
	// InvalidRateLimit is the least time between two ACKs one entry sends
	// to out-of-window segments (net.ipv4.tcp_invalid_ratelimit); 0 means
	// DefaultInvalidRateLimit, a negative value no limit.
	InvalidRateLimit time.Duration
	// Reuse is the tcp_tw_reuse mode Reusable and TakeOver apply to
	// connections from ephemeral ports. The zero value is ReuseOff; Linux's
	// default is ReuseLoopback.
	Reuse ReuseMode
	// Clock is the time source, the stack's one Clock; nil means the zero
	// SystemClock. On a SystemClock a ticker goroutine expires entries
	// while any exist; with any other clock the caller calls Advance.
	Clock Clock
	// Hasher keys the index's hash; nil means a new one from crypto/rand.
	// A stack passes its one Hasher here, so that the …Hashed methods take
	// the hash it computed once per segment.
	Hasher *tuple.Hasher
	// Shards is the number of independently locked parts the entries are
	// spread over by hash, rounded up to a power of two; 0 means 16 per
	// GOMAXPROCS. At most 4096.
	Shards int
	// OnExpire receives the owner of each entry whose timer fires, and of
	// each entry Close removes; nil drops them. See Table for when it is
	// called and what it may do.
	OnExpire func(tp tuple.Tuple, owner V)
}

// Stats are a Table's counters.
type Stats struct {
	// Entries is the number of entries.
	Entries int
	// Timers is the number of pending timers on the table's wheel: equal
	// to Entries whenever no call is in progress (every entry has exactly
	// one timer).
	Timers int
	// Overflows counts Enter calls refused at MaxBuckets (Linux's
	// TCPTimeWaitOverflow).
	Overflows uint64
	// Expired counts entries removed by their timer.
	Expired uint64
	// Killed counts entries removed by Kill, TakeOver, Replace, or a
	// segment (an RST, or a FIN_WAIT2 entry answering with one).
	Killed uint64
}

// Fate is what a segment did to the entry it reached (Reply.Fate).
type Fate uint8

const (
	// FateKept: the entry stays, its timer unchanged.
	FateKept Fate = iota
	// FateRestarted: the entry stays and its timer was restarted: it lives
	// Lifetime from now.
	FateRestarted
	// FateTimeWait: a FIN_WAIT2 entry received the peer's FIN and is now
	// in TIME_WAIT, for Lifetime from now.
	FateTimeWait
	// FateRemoved: the segment removed the entry (an in-window RST without
	// RFC1337, or a FIN_WAIT2 entry answering with an RST): Process hands
	// back its owner.
	FateRemoved
)

// String returns "kept", "restarted", "time-wait", "removed", or the
// number of another value.
func (f Fate) String() string {
	switch f {
	case FateKept:
		return "kept"
	case FateRestarted:
		return "restarted"
	case FateTimeWait:
		return "time-wait"
	case FateRemoved:
		return "removed"
	}
	return "Fate(" + strconv.Itoa(int(f)) + ")"
}

// Reply is what Process tells the stack to do with a segment that reached
// a TIME_WAIT entry, and what became of the entry.
type Reply struct {
	// Verdict: drop the segment, answer with an ACK or an RST, or treat it
	// as a new connection attempt.
	Verdict Verdict
	// Fate is what the segment did to the entry. With FateRemoved the
	// entry is gone and Process returned its owner; with any other Fate it
	// is still there (until its timer fires or another call removes it).
	Fate Fate
	// ISN is the initial sequence number for VerdictNewSYN (the old
	// snd_nxt + 65537, never 0): if a listener takes the SYN, the stack
	// inserts the new connection with Replace, which removes the entry in
	// the same step, and answers with this ISN; if none does, it sends an
	// ACK built from the fields below, as Linux does.
	ISN uint32
	// Seq, Ack and Window are the fields of the ACK to send for
	// VerdictACK, and for a VerdictNewSYN no listener takes
	// (tcp_v4_timewait_ack): our snd_nxt, the entry's rcv_nxt,
	// and the window scaled down by our announced shift. For VerdictRST
	// the stack builds the reset from the segment, as for any RST
	// (RFC 9293 section 3.10.7.1).
	Seq, Ack uint32
	Window   uint16
	// Timestamps says the ACK carries a timestamp option: TSval is the
	// stack's timestamp clock plus TSOffset, TSecr is TSEcr.
	Timestamps bool
	TSOffset   uint32
	TSEcr      uint32
}

// Reuse is what a connection that takes over an entry's four-tuple
// inherits (tcp_twsk_unique).
type Reuse struct {
	// WriteSeq is the new connection's initial sequence number: the old
	// snd_nxt + 65537 (never 0), beyond all the old incarnation sent.
	WriteSeq uint32
	// TSRecent and TSRecentStamp (a time on the table's clock, to the
	// millisecond) are the peer's last timestamp and when it was seen, so
	// that PAWS protects the new connection from the old one's segments.
	TSRecent      uint32
	TSRecentStamp time.Duration
}

// Table holds TIME_WAIT (and orphaned FIN_WAIT2) entries keyed by
// four-tuple, as Linux keeps its timewait mini-sockets: a compact record
// per entry, a timer that removes it when its period ends (on a timing
// wheel per shard, the same as a Wheel's, whose node for an entry is the
// entry's slot number, so a timer needs no handle and no payload), and
// the segment rules of tcp_timewait_state_process (Process) and
// tcp_twsk_unique (Reusable, TakeOver). Nothing ever walks the table to
// collect old entries.
//
// Owners: each entry owns a value of type V that the stack gives Enter
// (what the entry holds on its behalf: the *table.Binding that keeps the
// local port, say). Whoever removes the entry receives its owner, exactly
// once: its timer (OnExpire), Kill, TakeOver, Replace, a Process whose
// segment removes it (Reply.Fate is FateRemoved), or Close (OnExpire).
// Owners are written and read only under their shard's lock; the table
// clears an owner's place when it hands it out, so it keeps no reference
// to it. An Enter that fails takes nothing: the caller keeps its owner.
//
// OnExpire and locks: OnExpire is called after the shard's lock is
// released, never with a lock held that Enter, Lookup, Process, Kill,
// TakeOver, Replace or Reusable take. So it may call those methods, and
// take locks that their callers hold while calling them: a stack's hook
// takes the bind table's port locks to release the entry's binding,
// while its connect path holds a port lock when it calls TakeOver;
// calling the hook under the shard's lock would invert that order. Advance
// and Close are serialized with each other (they share the batch of
// expired owners), and OnExpire runs inside them, one call at a time: it
// must not call Advance or Close, which would wait for it forever. With a
// SystemClock the table's ticker goroutine calls Advance, so it calls
// OnExpire; with another clock the caller of Advance does.
//
// Concurrency: every method is safe for concurrent use, and all but Stats,
// Len and All are linearizable. Lookup and Reusable take no lock: they
// read under the shard's sequence count and retry if a writer changed the
// shard meanwhile; they never block a writer, but a writer preempted in
// the middle of a change holds them back until it finishes (they retry,
// and yield their P to it while its count stays odd), so they are not
// lock-free in the strict sense. Enter, Process, Kill, TakeOver and
// Replace lock one shard (chosen by the key's hash) and may block behind
// another writer of that shard, or behind expiry, which holds it for at
// most 64 entries at a time (Enter holds it longer when it grows the
// shard's index; see Memory). Lookup, Reusable, Process, Kill, TakeOver
// and Replace allocate nothing, nor does Enter once the shard's slab and
// index have grown to their largest size, nor expiry.
//
// Hashes: every method that takes a four-tuple hashes it with the
// table's Hasher; its …Hashed twin takes that hash instead (h must be
// Hasher().Hash(tp), the value table.Established.LookupHashed takes too),
// so a stack hashes a segment's four-tuple once for all its tables. The
// shard, the index position and the index tag all derive from h. A
// …Hashed call with a wrong h simply misses; an EnterHashed with a wrong
// h makes an entry that calls with the right h may miss (its timer still
// removes it and hands its owner to OnExpire).
//
// Memory: an entry is a 72-byte slot (key and record) in its shard's slab,
// the 16-byte link of its timer in the shard's timing wheel, a 4-byte
// reference in the shard's open-addressing index, which is kept 60 to 80%
// full (5 to 6.7 bytes an entry), and its owner: 93 to 95 bytes an entry
// plus the size of V (nothing more for a zero-size V, 8 bytes for a
// pointer). An index grows by a third when it would pass 80%; the shard's
// writers wait while it is rebuilt (a cache miss per entry), its readers
// do not. Slabs grow 256 slots (22 KiB with their links) at a time and,
// like indexes, never shrink: a table holds the memory of the most
// entries it ever held, which MaxBuckets bounds. Each shard's wheel adds
// 2 KiB. Measured with 6M entries (BenchmarkTimeWaitChurn): see
// BENCHMARKS.md.
//
// Times: the table keeps the times in its records in milliseconds of its
// clock, so the thresholds of the rules (the 1 s reuse delay, the 500 ms
// rate limit, PAWS's ages) are applied to the millisecond.
//
// A Table must not be copied.
type Table[V any] struct {
	shards []entryShard
	owners []ownerSlab[V] // owners[i] is guarded by shards[i].mu
	hasher *tuple.Hasher  // immutable
	drv    driver         // the clock, and the ticker of a SystemClock table

	lifetime, finWait2 time.Duration // immutable
	rules              Rules
	reuse              ReuseMode
	max                int64
	onExpire           func(tuple.Tuple, V)

	count     atomic.Int64 // entries, and units of max taken by Enters in progress
	overflows atomic.Uint64
	expired   atomic.Uint64
	killed    atomic.Uint64
	closed    atomic.Bool

	// expiryMu serializes Advance and Close, which hand owners to
	// OnExpire from batch after releasing the shard's lock.
	expiryMu sync.Mutex
	batch    []expiredEntry[V] // guarded by expiryMu
}

// expiredEntry is an entry removed by expiry or Close, waiting for
// OnExpire.
type expiredEntry[V any] struct {
	tp    tuple.Tuple
	owner V
}

// ownerSlab holds the owners of one shard's entries, at their slots'
// numbers, in chunks parallel to the slot chunks. Guarded by the shard's
// lock. A zero-size V is never stored: its slab stays empty.
type ownerSlab[V any] struct {
	chunks []*[slotChunk]V
}

// sized reports whether V takes any memory.
func (o *ownerSlab[V]) sized() bool {
	var v V
	return unsafe.Sizeof(v) != 0
}

// put stores the owner of slot i, growing the slab a chunk at a time.
func (o *ownerSlab[V]) put(i uint32, v V) {
	if !o.sized() {
		return
	}
	for int(i>>slotChunkBits) >= len(o.chunks) {
		o.chunks = append(o.chunks, new([slotChunk]V))
	}
	o.chunks[i>>slotChunkBits][i&(slotChunk-1)] = v
}

// take returns the owner of slot i and clears its place.
func (o *ownerSlab[V]) take(i uint32) V {
	var v V
	if !o.sized() {
		return v
	}
	p := &o.chunks[i>>slotChunkBits][i&(slotChunk-1)]
	v, *p = *p, v
	return v
}

// NewTable returns an empty Table whose entries own values of type V. It
// returns ErrCapacity for a negative or oversized Lifetime,
// FinWait2Timeout, MaxBuckets or Shards.
func NewTable[V any](opts TableOptions[V]) (*Table[V], error) {
	if opts.Lifetime < 0 || opts.Lifetime > MaxLifetime || opts.FinWait2Timeout < 0 ||
		opts.FinWait2Timeout > MaxLifetime || opts.MaxBuckets < 0 || opts.MaxBuckets > MaxMaxBuckets ||
		opts.Shards < 0 || opts.Shards > 4096 {
		return nil, ErrCapacity
	}
	t := &Table[V]{hasher: opts.Hasher, lifetime: opts.Lifetime, finWait2: opts.FinWait2Timeout,
		rules: Rules{RFC1337: opts.RFC1337, InvalidRateLimit: opts.InvalidRateLimit},
		reuse: opts.Reuse, max: int64(opts.MaxBuckets), onExpire: opts.OnExpire}
	if t.lifetime == 0 {
		t.lifetime = TimeWaitLen
	}
	if t.finWait2 == 0 {
		t.finWait2 = 60 * time.Second
	}
	if t.max == 0 {
		t.max = DefaultMaxBuckets
	}
	switch {
	case t.rules.InvalidRateLimit == 0:
		t.rules.InvalidRateLimit = DefaultInvalidRateLimit
	case t.rules.InvalidRateLimit < 0:
		t.rules.InvalidRateLimit = 0
	}
	if t.hasher == nil {
		t.hasher = tuple.NewHasher()
	}
	n := opts.Shards
	if n == 0 {
		n = min(16*runtime.GOMAXPROCS(0), 4096)
	}
	n = 1 << bits.Len(uint(n-1))
	t.shards = make([]entryShard, n)
	t.owners = make([]ownerSlab[V], n)
	t.drv.init(opts.Clock, time.Millisecond, t.Advance, t.Len)
	nowMS := t.drv.seen.Load() / msNS
	for i := range t.shards {
		t.shards[i].init(nowMS)
	}
	return t, nil
}

// Hasher returns the table's Hasher: the one whose Hash the …Hashed
// methods take. A stack checks that its tables share one.
func (t *Table[V]) Hasher() *tuple.Hasher { return t.hasher }

// Clock returns the table's clock (the zero SystemClock if
// TableOptions.Clock was nil): the clock State.TSRecentStamp and
// Reuse.TSRecentStamp are times on, and the one Reusable and TakeOver
// read.
func (t *Table[V]) Clock() Clock { return t.drv.clock }

// locate returns the shard of key tp, whose hash is h, its number, and
// the key as slots store it. The shard comes from the hash's top bits
// (tuple.Shard), the index position from its low 32 bits and the tag from
// bits 40-47, so the three are independent.
func (t *Table[V]) locate(h uint64, tp tuple.Tuple) (int, *entryShard, packedKey) {
	i := tuple.Shard(h, len(t.shards))
	return i, &t.shards[i], packTuple(tp)
}

// Enter starts a TIME_WAIT (or FIN_WAIT2) entry for four-tuple tp with
// state s, owning owner: the connection that held tp is closing, and the
// entry answers its peer's segments for Lifetime (FinWait2Timeout in the
// FinWait2 substate), then hands owner to OnExpire. It returns ErrExists
// if tp has an entry (even at the cap: a failing Enter takes no room),
// ErrTimeWaitFull at MaxBuckets (the caller closes the socket at once,
// without TIME_WAIT), tp.Validate's error for an invalid key, and
// ErrClosed after Close; the entry then does not exist and the caller
// keeps owner. Len never exceeds MaxBuckets, and no Enter is refused while
// fewer entries than that exist or are being entered. Enter is
// linearizable and may block on tp's shard (see Table).
func (t *Table[V]) Enter(tp tuple.Tuple, s State, owner V) error {
	return t.EnterHashed(t.hasher.Hash(tp), tp, s, owner)
}

// EnterHashed is Enter for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp) (see Table on a wrong h).
func (t *Table[V]) EnterHashed(h uint64, tp tuple.Tuple, s State, owner V) error {
	if err := tp.Validate(); err != nil {
		return err
	}
	if t.closed.Load() {
		return ErrClosed
	}
	si, sh, k := t.locate(h, tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if t.closed.Load() { // Close ran meanwhile: it clears each shard under its lock
		return ErrClosed
	}
	if enterLocked != nil {
		enterLocked()
	}
	if _, sl := sh.find(h, &k); sl != nil {
		return ErrExists
	}
	// Only an Enter that will succeed takes a unit of MaxBuckets, and the
	// count never passes the cap, even for an instant.
	if !t.reserveUnit() {
		t.overflows.Add(1)
		return ErrTimeWaitFull
	}
	i, ok := sh.alloc()
	if !ok {
		t.count.Add(-1)
		t.overflows.Add(1)
		return ErrTimeWaitFull
	}
	sh.reserve(t.hasher)
	t.owners[si].put(i, owner)
	nowNS := t.drv.now()
	now := nowNS / msNS
	life := t.lifetime
	if s.Substate == FinWait2 {
		life = t.finWait2
	}
	sh.wheel.schedule(int32(i), t.drv.ticks(time.Duration(nowNS)+life), now)
	sh.timers.Add(1)
	r := newRecord(&s, fromMS(now))
	sl := slotAt(*sh.chunks.Load(), i)
	sh.beginWrite()
	sl.addr[0].Store(k[0])
	sl.addr[1].Store(k[1])
	if midWrite != nil {
		midWrite()
	}
	sl.addr[2].Store(k[2])
	sl.addr[3].Store(k[3])
	sl.meta.Store(k[4])
	sl.store(&r, now)
	sh.insert(h, i)
	sh.endWrite()
	t.drv.scheduled()
	return nil
}

// reserveUnit takes one unit of MaxBuckets for an entry about to be
// inserted, or reports false at the cap.
func (t *Table[V]) reserveUnit() bool {
	for {
		n := t.count.Load()
		if n >= t.max {
			return false
		}
		if t.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// enterLocked, when a test sets it (before any goroutine uses a table),
// runs in Enter with the shard locked, before the duplicate check.
var enterLocked func()

// Lookup returns the state of tp's entry, if it has one: what the demux's
// established-table miss path checks before it looks for a listener. The
// stamps come back at millisecond granularity. It takes no lock and
// allocates nothing (see Table for its progress guarantee).
func (t *Table[V]) Lookup(tp tuple.Tuple) (State, bool) {
	return t.LookupHashed(t.hasher.Hash(tp), tp)
}

// LookupHashed is Lookup for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp), or it misses.
func (t *Table[V]) LookupHashed(h uint64, tp tuple.Tuple) (State, bool) {
	r, ok := t.read(h, tp)
	if !ok {
		return State{}, false
	}
	return r.state(), true
}

// read returns tp's record without a lock (see entryShard.read).
func (t *Table[V]) read(h uint64, tp tuple.Tuple) (record, bool) {
	_, sh, k := t.locate(h, tp)
	var w slotWords
	if !sh.read(h, &k, func(sl *slot) { w = sl.words() }) {
		return record{}, false
	}
	// The times are decoded against the latest clock reading, taken now:
	// the writer read the clock before it stored them, so none is later.
	return w.record(t.drv.seen.Load() / msNS), true
}

// Process applies Linux's tcp_timewait_state_process to segment seg that
// arrived for tp's entry and reports what to send (see Reply and Verdict)
// and what became of the entry (Reply.Fate), or false if tp has no entry.
// It updates the entry as the rules say: restarts its timer (Lifetime),
// moves a FIN_WAIT2 entry to TIME_WAIT, or removes it (an in-window RST
// without RFC1337; an RST answer in FIN_WAIT2), and then returns its
// owner (FateRemoved; otherwise the zero V). It is linearizable, may block
// on tp's shard (see Table), and allocates nothing. A tuple with no entry
// is answered by a lock-free probe, without the lock: a demux may call
// Process for every segment its established table misses.
func (t *Table[V]) Process(tp tuple.Tuple, seg *tuple.Segment) (Reply, V, bool) {
	return t.ProcessHashed(t.hasher.Hash(tp), tp, seg)
}

// ProcessHashed is Process for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp), or it misses.
func (t *Table[V]) ProcessHashed(h uint64, tp tuple.Tuple, seg *tuple.Segment) (Reply, V, bool) {
	var owner V
	if seg == nil {
		return Reply{}, owner, false
	}
	si, sh, k := t.locate(h, tp)
	// Most segments a demux brings here have no entry (its established
	// table missed): a lock-free probe says so without taking the lock.
	if !sh.read(h, &k, func(*slot) {}) {
		return Reply{}, owner, false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	if sl == nil {
		return Reply{}, owner, false
	}
	nowNS := t.drv.now()
	nowMS := nowNS / msNS
	r := sl.load(nowMS)
	before := r
	v, act, isn := r.process(seg, fromMS(nowMS), &t.rules)
	reply := Reply{Verdict: v, ISN: isn}
	if v == VerdictACK || v == VerdictNewSYN { // a SYN no listener takes is ACKed
		a := r.ack()
		reply.Seq, reply.Ack, reply.Window = a.seq, a.ack, a.window
		reply.Timestamps, reply.TSOffset, reply.TSEcr = a.timestamps, a.tsOffset, a.tsEcr
	}
	switch act {
	case killEntry:
		reply.Fate = FateRemoved
		owner = t.removeLocked(si, sh, pos)
		t.killed.Add(1)
		return reply, owner, true
	case restartTimer:
		reply.Fate = FateRestarted
		if before.substate == FinWait2 && r.substate == TimeWait {
			reply.Fate = FateTimeWait
		}
		sh.wheel.reschedule(int32(sh.slotNumber(pos)), t.drv.ticks(time.Duration(nowNS)+t.lifetime))
	}
	if r != before {
		sh.beginWrite()
		sl.store(&r, nowMS)
		sh.endWrite()
	}
	return reply, owner, true
}

// slotNumber returns the slot number the index holds at position pos.
func (sh *entryShard) slotNumber(pos uint64) uint32 {
	return sh.index.Load().e[pos].Load()&refMask - 1
}

// removeLocked removes the entry at index position pos of shard si,
// cancels its timer and returns its owner; the caller holds the shard's
// lock.
func (t *Table[V]) removeLocked(si int, sh *entryShard, pos uint64) V {
	i := sh.slotNumber(pos)
	sh.wheel.cancel(int32(i))
	sh.timers.Add(-1)
	owner := t.owners[si].take(i)
	t.unhashLocked(sh, pos)
	return owner
}

// unhashLocked removes the entry at index position pos, whose timer has
// fired or been cancelled and whose owner has been taken; the caller holds
// the shard's lock.
func (t *Table[V]) unhashLocked(sh *entryShard, pos uint64) {
	sh.beginWrite()
	sh.remove(pos, t.hasher)
	sh.endWrite()
	t.count.Add(-1)
}

// Kill removes tp's entry at once and returns its owner, or false if tp
// has no entry: the stack knows the flow is gone (the application asked,
// or the stack is tearing the flow down), so nothing waits for the timer.
// It is linearizable, may block on tp's shard (see Table), and allocates
// nothing.
func (t *Table[V]) Kill(tp tuple.Tuple) (V, bool) {
	return t.KillHashed(t.hasher.Hash(tp), tp)
}

// KillHashed is Kill for a caller that hashed tp with the table's Hasher:
// h must be Hasher().Hash(tp), or it misses.
func (t *Table[V]) KillHashed(h uint64, tp tuple.Tuple) (V, bool) {
	si, sh, k := t.locate(h, tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	if sl == nil {
		var zero V
		return zero, false
	}
	owner := t.removeLocked(si, sh, pos)
	t.killed.Add(1)
	return owner, true
}

// Reusable reports whether a new outgoing connection may take over tp's
// entry now, on the table's clock (Linux's tcp_twsk_unique with the
// table's Reuse mode; see ReuseMode and ReuseDelay), and what it
// inherits. explicitBind says the connecting socket's port was bound by the
// application, which allows reuse in any mode. It changes nothing: a
// connect path uses TakeOver, which decides and removes the entry in one
// step. It takes no lock and allocates nothing (see Table for its progress
// guarantee).
func (t *Table[V]) Reusable(tp tuple.Tuple, explicitBind bool) (Reuse, bool) {
	return t.ReusableHashed(t.hasher.Hash(tp), tp, explicitBind)
}

// ReusableHashed is Reusable for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp), or it misses.
func (t *Table[V]) ReusableHashed(h uint64, tp tuple.Tuple, explicitBind bool) (Reuse, bool) {
	r, ok := t.read(h, tp)
	if !ok {
		return Reuse{}, false
	}
	return t.reuseOf(&r, tp, time.Duration(t.drv.now()), explicitBind)
}

func (t *Table[V]) reuseOf(r *record, tp tuple.Tuple, now time.Duration, explicitBind bool) (Reuse, bool) {
	ok, seq := r.reusable(tp, now, t.reuse, explicitBind)
	if !ok {
		return Reuse{}, false
	}
	return Reuse{WriteSeq: seq, TSRecent: r.tsRecent, TSRecentStamp: r.tsRecentStamp}, true
}

// TakeOver is Reusable that also removes the entry when it is reusable, in
// one step under the entry's lock, and returns its owner: of two connects
// racing for one four-tuple only one succeeds (Linux decides and unhashes
// under the bucket lock in __inet_check_established). A connect path may
// call it holding its bind table's port lock (see Table on OnExpire). It
// is linearizable, may block on tp's shard, and allocates nothing.
func (t *Table[V]) TakeOver(tp tuple.Tuple, explicitBind bool) (Reuse, V, bool) {
	return t.TakeOverHashed(t.hasher.Hash(tp), tp, explicitBind)
}

// TakeOverHashed is TakeOver for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp), or it misses.
func (t *Table[V]) TakeOverHashed(h uint64, tp tuple.Tuple, explicitBind bool) (Reuse, V, bool) {
	var owner V
	si, sh, k := t.locate(h, tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	if sl == nil {
		return Reuse{}, owner, false
	}
	nowNS := t.drv.now()
	r := sl.load(nowNS / msNS)
	reuse, ok := t.reuseOf(&r, tp, time.Duration(nowNS), explicitBind)
	if ok {
		owner = t.removeLocked(si, sh, pos)
		t.killed.Add(1)
	}
	return reuse, owner, ok
}

// Claim is connect()'s one-step check and insert for tp, as Linux's
// __inet_check_established does under the bucket lock: under the lock of
// tp's shard, if tp has an entry that may not be taken over (see
// Reusable) it returns ErrExists and install does not run; otherwise
// install runs (the caller's insert of the new connection into its
// established table) and, if it succeeds and tp had an entry, the entry
// is removed in the same step: Claim returns what the connection inherits,
// the entry's owner and true. If install fails its error is returned and
// the entry stays. A demux that looks up its established table first and
// this table second finds the entry or the new connection at every
// moment, never neither; and an entry entered concurrently (it takes the
// same lock) is never missed, so the tuple is never in both tables.
//
// install runs with the shard's lock held, as Replace's does. Claim is
// linearizable, may block on tp's shard, and allocates nothing beyond
// what install does.
func (t *Table[V]) Claim(tp tuple.Tuple, explicitBind bool, install func() error) (Reuse, V, bool, error) {
	return t.ClaimHashed(t.hasher.Hash(tp), tp, explicitBind, install)
}

// ClaimHashed is Claim for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp), or it misses.
func (t *Table[V]) ClaimHashed(h uint64, tp tuple.Tuple, explicitBind bool, install func() error) (Reuse, V, bool, error) {
	var owner V
	si, sh, k := t.locate(h, tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	var reuse Reuse
	if sl != nil {
		nowNS := t.drv.now()
		r := sl.load(nowNS / msNS)
		ok := false
		if reuse, ok = t.reuseOf(&r, tp, time.Duration(nowNS), explicitBind); !ok {
			return Reuse{}, owner, false, ErrExists
		}
	}
	if err := install(); err != nil {
		return Reuse{}, owner, false, err
	}
	if sl == nil {
		return Reuse{}, owner, false, nil
	}
	owner = t.removeLocked(si, sh, pos)
	t.killed.Add(1)
	return reuse, owner, true, nil
}

// Replace is the one-step takeover of tp by a new connection, for a SYN
// Process answered with VerdictNewSYN that a listener takes: under the
// lock of tp's shard it runs install (the caller's insert of the new
// connection or request into its established table). If install returns
// an error, the entry (if any) stays and Replace returns that error. If
// install succeeds, tp's entry, if it has one, is removed in the same
// step and Replace returns its owner and true; with no entry (its timer
// fired meanwhile, or after Close) install runs all the same and Replace
// returns false, so the caller needs no second path. A demux that looks
// up its established table first and this table second thus finds the
// old entry or the new connection at every moment, never neither: no
// retransmitted SYN slips between them.
//
// install runs with the shard's lock held: it must be brief, and must not
// call any method of this Table (it would wait for itself or take a second
// shard's lock). Replace is linearizable (install's effect and the
// entry's removal are one step for every other call of this table), may
// block on tp's shard, and allocates nothing beyond what install does.
func (t *Table[V]) Replace(tp tuple.Tuple, install func() error) (V, bool, error) {
	return t.ReplaceHashed(t.hasher.Hash(tp), tp, install)
}

// ReplaceHashed is Replace for a caller that hashed tp with the table's
// Hasher: h must be Hasher().Hash(tp), or it misses (install still runs).
func (t *Table[V]) ReplaceHashed(h uint64, tp tuple.Tuple, install func() error) (V, bool, error) {
	var owner V
	si, sh, k := t.locate(h, tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := install(); err != nil {
		return owner, false, err
	}
	pos, sl := sh.find(h, &k)
	if sl == nil {
		return owner, false, nil
	}
	owner = t.removeLocked(si, sh, pos)
	t.killed.Add(1)
	return owner, true, nil
}

// expiryBatch bounds the entries one shard's expiry removes under one
// hold of its lock (hashing each key, and the keys of the probe run
// behind it), and so the owners handed to OnExpire between two holds.
const expiryBatch = 64

// Advance removes the entries whose time has come on the table's clock,
// hands their owners to OnExpire, and returns how many it removed. With a
// SystemClock the table's ticker calls it every millisecond while entries
// exist; with any other clock the caller does. Each shard's timers are
// collected and their entries removed under the shard's lock, so an
// expiry never races a Kill or a restart of the same entry; OnExpire is
// called after that lock is released (see Table). Calls to Advance and
// Close are serialized: one waits while another runs, OnExpire calls
// included, so Advance may block. It allocates nothing once its batch has
// grown to 64 entries.
func (t *Table[V]) Advance() int {
	t.expiryMu.Lock()
	defer t.expiryMu.Unlock()
	if t.closed.Load() {
		return 0
	}
	to := t.drv.now() / msNS
	fired := 0
	for si := range t.shards {
		sh := &t.shards[si]
		if sh.timers.Load() == 0 {
			continue // its clock catches up when an entry comes
		}
		for more := true; more; {
			batch := t.batch[:0]
			sh.mu.Lock()
			var due []int32
			due, more = sh.wheel.collect(to, sh.due[:0], expiryBatch)
			sh.timers.Add(-int64(len(due)))
			sh.due = due[:0]
			chunks := *sh.chunks.Load()
			for _, j := range due {
				k := slotAt(chunks, uint32(j)).key()
				tp := k.tuple()
				batch = append(batch, expiredEntry[V]{tp: tp, owner: t.owners[si].take(uint32(j))})
				t.unhashLocked(sh, sh.position(t.hasher.Hash(tp), uint32(j)))
			}
			sh.mu.Unlock()
			fired += len(batch)
			t.expired.Add(uint64(len(batch)))
			t.handOut(batch)
		}
	}
	return fired
}

// handOut gives the batch's owners to OnExpire, then forgets them; the
// caller holds expiryMu and no shard lock.
func (t *Table[V]) handOut(batch []expiredEntry[V]) {
	if t.onExpire != nil {
		for i := range batch {
			t.onExpire(batch[i].tp, batch[i].owner)
		}
	}
	clear(batch) // keep no owner reachable from the table
	t.batch = batch[:0]
}

// Entry is one TIME_WAIT (or FIN_WAIT2) entry as Entries reports it.
type Entry struct {
	Tuple tuple.Tuple
	State State
	// Expires is when the entry's timer fires, on the table's clock: the
	// end of TIME_WAIT (or of the FIN_WAIT2 timeout), restarted by the
	// segments that restart it (RFC 1337 aside, a retransmitted FIN).
	Expires time.Duration
}

// All yields the four-tuple and state of every entry: Entries without the
// expiry times.
func (t *Table[V]) All() iter.Seq2[tuple.Tuple, State] {
	return func(yield func(tuple.Tuple, State) bool) {
		for e := range t.Entries() {
			if !yield(e.Tuple, e.State) {
				return
			}
		}
	}
}

// Entries yields every entry with its state and expiry (what `ss -to
// state time-wait` shows). It holds each shard's lock while it copies
// that shard's entries (the shard's writers wait that long), and no lock
// while it yields, so yield may call any method of the table. It is not a
// consistent snapshot of the table: each shard is seen at one moment,
// different shards at different moments, so an entry that enters or
// leaves during the iteration may or may not be yielded; but no
// four-tuple is yielded twice, since a four-tuple lives in one shard. It
// may block on each shard in turn, and allocates a buffer the size of the
// largest shard.
func (t *Table[V]) Entries() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		type item struct {
			k   packedKey
			w   slotWords
			due int64 // the timer's tick
		}
		var buf []item
		for si := range t.shards {
			sh := &t.shards[si]
			buf = buf[:0]
			sh.mu.Lock()
			idx := sh.index.Load()
			chunks := *sh.chunks.Load()
			for j := range idx.e {
				if e := idx.e[j].Load(); e != 0 {
					i := e&refMask - 1
					sl := slotAt(chunks, i)
					buf = append(buf, item{k: sl.key(), w: sl.words(), due: sh.wheel.link(int32(i)).expires()})
				}
			}
			sh.mu.Unlock()
			ref := t.drv.seen.Load() / msNS // after the copies: no stored time is later
			for i := range buf {
				r := buf[i].w.record(ref)
				e := Entry{Tuple: buf[i].k.tuple(), State: r.state(), Expires: time.Duration(buf[i].due) * t.drv.tick}
				if !yield(e) {
					return
				}
			}
		}
	}
}

// Len returns the number of entries (with Enters in progress that have
// passed the cap check). It is wait-free; it never exceeds MaxBuckets.
func (t *Table[V]) Len() int { return int(t.count.Load()) }

// Stats returns the table's counters; each is read atomically, the set is
// not a snapshot. It is wait-free.
func (t *Table[V]) Stats() Stats {
	timers := int64(0)
	for i := range t.shards {
		timers += t.shards[i].timers.Load()
	}
	return Stats{Entries: t.Len(), Timers: int(timers), Overflows: t.overflows.Load(), Expired: t.expired.Load(),
		Killed: t.killed.Load()}
}

// Close removes every entry, stops the timers, and hands each removed
// entry's owner to OnExpire (after releasing the shard's lock, as expiry
// does; Stats.Expired does not count them), so no owner is lost. It waits
// for an Advance in progress to finish; once it returns, OnExpire is not
// called again. Later calls fail with ErrClosed (Enter) or find nothing
// (Replace still runs its install). A second Close returns ErrClosed.
// Close may block (on Advance, and on each shard in turn).
func (t *Table[V]) Close() error {
	t.expiryMu.Lock()
	defer t.expiryMu.Unlock()
	if t.closed.Swap(true) {
		return ErrClosed
	}
	t.drv.close()
	for si := range t.shards {
		sh := &t.shards[si]
		batch := t.batch[:0]
		sh.mu.Lock()
		if t.onExpire != nil {
			idx := sh.index.Load()
			chunks := *sh.chunks.Load()
			for j := range idx.e {
				if e := idx.e[j].Load(); e != 0 {
					i := e&refMask - 1
					k := slotAt(chunks, i).key()
					batch = append(batch, expiredEntry[V]{tp: k.tuple(), owner: t.owners[si].take(i)})
				}
			}
		}
		sh.beginWrite()
		sh.index.Store(newEntryIndex(minIndex)) // a closed table holds nothing
		empty := make([]*[slotChunk]slot, 0)
		sh.chunks.Store(&empty)
		sh.free, sh.used = nil, 0
		sh.wheel.reset(true)
		sh.timers.Store(0)
		t.count.Add(int64(-sh.n))
		sh.n = 0
		sh.endWrite()
		t.owners[si] = ownerSlab[V]{}
		sh.mu.Unlock()
		t.handOut(batch)
	}
	t.batch = nil
	return nil
}

// state converts a record back to the State it came from.
func (r *record) state() State {
	s := State{Substate: r.substate, RcvNxt: r.rcvNxt, SndNxt: r.sndNxt, RcvWnd: r.rcvWnd,
		RcvWScale: r.rcvWScale, TSOffset: r.tsOffset}
	if r.flags&recTimestamps != 0 {
		s.HasTimestamps = true
		s.TSRecent = r.tsRecent
		s.TSRecentStamp = r.tsRecentStamp
	}
	return s
}
