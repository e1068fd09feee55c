package timewait

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

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

// DefaultMaxBuckets is Options.MaxBuckets when it is 0: Linux's
// tcp_max_tw_buckets on a host whose established hash has 524288 buckets
// (the kernel sets it to half that size).
const DefaultMaxBuckets = 1 << 18

// Limits of Options.
const (
	// MaxMaxBuckets is the largest MaxBuckets accepted.
	MaxMaxBuckets = 1 << 28
	// MaxLifetime is the longest Lifetime or FinWait2Timeout accepted: the
	// table keeps times in 32-bit milliseconds (see Table).
	MaxLifetime = 24 * time.Hour
)

// Options configures a Table. The zero value gives Linux's defaults,
// except for Reuse (see there).
type Options struct {
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
	// A stack passes its one Hasher here.
	Hasher *tuple.Hasher
	// Shards is the number of independently locked parts the entries are
	// spread over by hash, rounded up to a power of two; 0 means 16 per
	// GOMAXPROCS. At most 4096.
	Shards int
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
	// Killed counts entries removed by Kill, TakeOver, or a segment (an
	// RST, or a FIN_WAIT2 entry answering with one).
	Killed uint64
}

// Reply is what Process tells the stack to do with a segment that reached
// a TIME_WAIT entry.
type Reply struct {
	// Verdict: drop the segment, answer with an ACK or an RST, or treat it
	// as a new connection attempt.
	Verdict Verdict
	// ISN is the initial sequence number for VerdictNewSYN (the old
	// snd_nxt + 65537, never 0): if a listener takes the SYN, the stack
	// calls Kill and answers with this ISN; if none does, it sends an ACK
	// built from the fields below, as Linux does.
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
// tcp_twsk_unique (Reusable, TakeOver). An entry leaves the table when its
// timer fires, when a segment kills it, or at once through Kill or TakeOver:
// nothing ever walks the table to collect old entries.
//
// Concurrency: every method is safe for concurrent use, and all but Stats
// are linearizable. Lookup and Reusable take no lock: they read under a
// shard's sequence word and retry if a writer changed the shard meanwhile;
// they never block a writer, but a writer preempted in the middle of a
// change holds them back until it finishes (they yield to it), so they are
// not lock-free in the strict sense. Enter, Process, TakeOver and Kill
// lock one shard (chosen by the key's hash) for a few hundred
// nanoseconds (Enter longer when it grows the shard's index; see
// Memory), and expiry for at most 64 entries at a time. Process and
// Lookup allocate nothing, nor does Enter once the shard's slab and index
// have grown to their largest size.
//
// Memory: an entry is a 72-byte slot (key and record) in its shard's slab,
// the 16-byte link of its timer in the shard's timing wheel, and a 4-byte
// reference in the shard's open-addressing index, which is kept 60 to 80%
// full (5 to 6.7 bytes an entry): 93 to 95 bytes an entry. An index grows
// by a third when it would pass 80%; the shard's writers wait while it is
// rebuilt (a cache miss per entry: milliseconds for a shard of 100k
// entries), its readers do not. Slabs grow 256 slots (22 KiB with their
// links) at a time and, like indexes, never shrink: a table holds the
// memory of the most entries it ever held, which MaxBuckets bounds. Each
// shard's wheel adds 2 KiB. Measured with 6M entries
// (BenchmarkTimeWaitChurn): see BENCHMARKS.md.
//
// Times: the table keeps the times in its records in milliseconds of its
// clock, so the thresholds of the rules (the 1 s reuse delay, the 500 ms
// rate limit, PAWS's ages) are applied to the millisecond.
type Table struct {
	shards    []entryShard
	shardBits uint
	hasher    *tuple.Hasher
	drv       driver // the clock, and the ticker of a SystemClock table

	lifetime, finWait2 time.Duration
	rules              Rules
	reuse              ReuseMode
	max                int64

	count     atomic.Int64
	overflows atomic.Uint64
	expired   atomic.Uint64
	killed    atomic.Uint64
	closed    atomic.Bool
	closeMu   sync.Mutex
}

// New returns an empty Table. It returns ErrCapacity for a negative or
// oversized Lifetime, FinWait2Timeout, MaxBuckets or Shards.
func New(opts Options) (*Table, error) {
	if opts.Lifetime < 0 || opts.Lifetime > MaxLifetime || opts.FinWait2Timeout < 0 ||
		opts.FinWait2Timeout > MaxLifetime || opts.MaxBuckets < 0 || opts.MaxBuckets > MaxMaxBuckets ||
		opts.Shards < 0 || opts.Shards > 4096 {
		return nil, ErrCapacity
	}
	t := &Table{hasher: opts.Hasher, lifetime: opts.Lifetime, finWait2: opts.FinWait2Timeout,
		rules: Rules{RFC1337: opts.RFC1337, InvalidRateLimit: opts.InvalidRateLimit},
		reuse: opts.Reuse, max: int64(opts.MaxBuckets)}
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
	t.shardBits = uint(bits.Len(uint(n - 1)))
	t.shards = make([]entryShard, 1<<t.shardBits)
	t.drv.init(opts.Clock, time.Millisecond, t.Advance, t.Len)
	nowMS := t.drv.seen.Load() / msNS
	for i := range t.shards {
		t.shards[i].init(nowMS)
	}
	return t, nil
}

// locate returns key k's hash and shard. The shard comes from the hash's
// top bits, the index position from its low bits and the tag from bits
// 40-47, so the three are independent.
func (t *Table) locate(tp tuple.Tuple) (uint64, *entryShard, packedKey) {
	h := t.hasher.Hash(tp)
	i := uint32(0)
	if t.shardBits > 0 {
		i = uint32(h >> (64 - t.shardBits))
	}
	return h, &t.shards[i], packTuple(tp)
}

// Enter starts a TIME_WAIT (or FIN_WAIT2) entry for four-tuple tp with
// state s: the connection that held tp is closing, and the entry answers
// its peer's segments for Lifetime (FinWait2Timeout in the FinWait2
// substate). It returns ErrExists if tp has an entry (even at the cap: a
// failing Enter takes no room), ErrTimeWaitFull at MaxBuckets (the caller
// closes the socket at once, without TIME_WAIT), tp.Validate's error for
// an invalid key, and ErrClosed after Close. Len never exceeds MaxBuckets,
// and no Enter is refused while fewer entries than that exist or are
// being entered.
func (t *Table) Enter(tp tuple.Tuple, s State) error {
	if err := tp.Validate(); err != nil {
		return err
	}
	if t.closed.Load() {
		return ErrClosed
	}
	h, sh, k := t.locate(tp)
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
	nowNS := t.drv.now()
	now := nowNS / msNS
	life := t.lifetime
	if s.Substate == FinWait2 {
		life = t.finWait2
	}
	sh.wheel.schedule(int32(i), t.drv.ticks(time.Duration(nowNS)+life), now)
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
func (t *Table) reserveUnit() bool {
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
// allocates nothing.
func (t *Table) Lookup(tp tuple.Tuple) (State, bool) {
	r, ok := t.read(tp)
	if !ok {
		return State{}, false
	}
	return r.state(), true
}

// read returns tp's record without a lock (see entryShard.read).
func (t *Table) read(tp tuple.Tuple) (record, bool) {
	h, sh, k := t.locate(tp)
	var w slotWords
	if !sh.read(h, &k, func(sl *slot) { w = sl.words() }) {
		return record{}, false
	}
	// The times are decoded against the latest clock reading, taken now:
	// the writer read the clock before it stored them, so none is later.
	return w.record(t.drv.seen.Load() / msNS), true
}

// Process applies Linux's tcp_timewait_state_process to segment seg that
// arrived for tp's entry and reports what to send (see Reply and Verdict),
// or false if tp has no entry. It updates the entry as the rules say:
// restarts its timer (Lifetime), moves a FIN_WAIT2 entry to TIME_WAIT, or
// removes it (an in-window RST without RFC1337; an RST answer in
// FIN_WAIT2). It allocates nothing.
func (t *Table) Process(tp tuple.Tuple, seg *tuple.Segment) (Reply, bool) {
	if seg == nil {
		return Reply{}, false
	}
	h, sh, k := t.locate(tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	if sl == nil {
		return Reply{}, false
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
		t.removeLocked(sh, pos)
		t.killed.Add(1)
		return reply, true
	case restartTimer:
		sh.wheel.reschedule(int32(sh.slotNumber(pos)), t.drv.ticks(time.Duration(nowNS)+t.lifetime))
	}
	if r != before {
		sh.beginWrite()
		sl.store(&r, nowMS)
		sh.endWrite()
	}
	return reply, true
}

// slotNumber returns the slot number the index holds at position pos.
func (sh *entryShard) slotNumber(pos uint64) uint32 {
	return sh.index.Load().e[pos].Load()&refMask - 1
}

// removeLocked removes the entry at index position pos and cancels its
// timer; the caller holds the shard's lock.
func (t *Table) removeLocked(sh *entryShard, pos uint64) {
	sh.wheel.cancel(int32(sh.slotNumber(pos)))
	t.unhashLocked(sh, pos)
}

// unhashLocked removes the entry at index position pos, whose timer has
// fired or been cancelled; the caller holds the shard's lock.
func (t *Table) unhashLocked(sh *entryShard, pos uint64) {
	sh.beginWrite()
	sh.remove(pos, t.hasher)
	sh.endWrite()
	t.count.Add(-1)
}

// Kill removes tp's entry at once and reports whether it had one: the
// stack knows the flow is gone (a new connection took the four-tuple, or
// the application asked), so nothing waits for the timer.
func (t *Table) Kill(tp tuple.Tuple) bool {
	h, sh, k := t.locate(tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	if sl == nil {
		return false
	}
	t.removeLocked(sh, pos)
	t.killed.Add(1)
	return true
}

// Reusable reports whether a new outgoing connection may take over tp's
// entry now, on the table's clock (Linux's tcp_twsk_unique with the
// table's Reuse mode; see ReuseMode and ReuseDelay), and what it
// inherits. explicitBind says the connecting socket's port was bound by the
// application, which allows reuse in any mode. It changes nothing: a
// connect path uses TakeOver, which decides and removes the entry in one
// step. It takes no lock and allocates nothing.
func (t *Table) Reusable(tp tuple.Tuple, explicitBind bool) (Reuse, bool) {
	r, ok := t.read(tp)
	if !ok {
		return Reuse{}, false
	}
	return t.reuseOf(&r, tp, time.Duration(t.drv.now()), explicitBind)
}

func (t *Table) reuseOf(r *record, tp tuple.Tuple, now time.Duration, explicitBind bool) (Reuse, bool) {
	ok, seq := r.reusable(tp, now, t.reuse, explicitBind)
	if !ok {
		return Reuse{}, false
	}
	return Reuse{WriteSeq: seq, TSRecent: r.tsRecent, TSRecentStamp: r.tsRecentStamp}, true
}

// TakeOver is Reusable that also removes the entry when it is reusable, in
// one step under the entry's lock, so that of two connects racing for one
// four-tuple only one succeeds (Linux decides and unhashes under the
// bucket lock in __inet_check_established).
func (t *Table) TakeOver(tp tuple.Tuple, explicitBind bool) (Reuse, bool) {
	h, sh, k := t.locate(tp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos, sl := sh.find(h, &k)
	if sl == nil {
		return Reuse{}, false
	}
	nowNS := t.drv.now()
	r := sl.load(nowNS / msNS)
	reuse, ok := t.reuseOf(&r, tp, time.Duration(nowNS), explicitBind)
	if ok {
		t.removeLocked(sh, pos)
		t.killed.Add(1)
	}
	return reuse, ok
}

// expiryBatch bounds the entries one shard's expiry removes under one
// hold of its lock (a few microseconds each: hashing the key, and the
// keys of the probe run behind it), so that its writers wait at most tens
// of microseconds behind a burst of expiries.
const expiryBatch = 64

// Advance removes the entries whose time has come on the table's clock and
// returns how many it removed. With a SystemClock the table's ticker
// calls it every millisecond while entries exist; with a ManualClock the
// caller does. Each shard's timers are collected and their entries
// removed under the shard's lock, so an expiry never races a Kill or a
// restart of the same entry.
func (t *Table) Advance() int {
	if t.closed.Load() {
		return 0
	}
	to := t.drv.now() / msNS
	fired := 0
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.wheel.count.Load() == 0 {
			continue // its clock catches up when an entry comes
		}
		for more := true; more; {
			sh.mu.Lock()
			var due []int32
			due, more = sh.wheel.collect(to, sh.due[:0], expiryBatch)
			sh.due = due[:0]
			chunks := *sh.chunks.Load()
			for _, j := range due {
				k := slotAt(chunks, uint32(j)).key()
				t.unhashLocked(sh, sh.position(t.hasher.Hash(k.tuple()), uint32(j)))
			}
			sh.mu.Unlock()
			fired += len(due)
		}
	}
	t.expired.Add(uint64(fired))
	return fired
}

// Clock returns the table's clock (the zero SystemClock if
// TableOptions.Clock was nil): the clock State.TSRecentStamp and
// Reuse.TSRecentStamp are times on, and the one Reusable and TakeOver
// read.
func (t *Table) Clock() Clock { return t.drv.clock }

// Len returns the number of entries.
func (t *Table) Len() int { return int(t.count.Load()) }

// Stats returns the table's counters; each is read atomically, the set is
// not a snapshot.
func (t *Table) Stats() Stats {
	timers := int64(0)
	for i := range t.shards {
		timers += t.shards[i].wheel.count.Load()
	}
	return Stats{Entries: t.Len(), Timers: int(timers), Overflows: t.overflows.Load(), Expired: t.expired.Load(),
		Killed: t.killed.Load()}
}

// Close removes every entry and stops the timers; later calls fail with
// ErrClosed (Enter) or find nothing. A second Close returns ErrClosed.
func (t *Table) Close() error {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.closed.Swap(true) {
		return ErrClosed
	}
	t.drv.close()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.beginWrite()
		sh.index.Store(newEntryIndex(minIndex)) // a closed table holds nothing
		empty := make([]*[slotChunk]slot, 0)
		sh.chunks.Store(&empty)
		sh.free, sh.used = nil, 0
		sh.wheel.reset(true)
		t.count.Add(int64(-sh.n))
		sh.n = 0
		sh.endWrite()
		sh.mu.Unlock()
	}
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
