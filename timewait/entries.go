package timewait

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/socktable/socktable/rcu"
	"github.com/socktable/socktable/tuple"
)

// This file holds the storage of one shard of a Table: a slab of entries
// (key and record in one 72-byte slot, the timer's 16-byte link in the
// shard's wheel, at the same number), an open-addressing index of 4-byte
// references into it, and the shard's timing wheel. Writers hold the
// shard's mutex; readers take no lock and validate what they read with
// the shard's sequence count (an rcu.SeqCount), so Lookup never blocks a
// writer and a writer never waits for readers.
//
// Why not a second table.Established for the index: an entry must carry its
// key anyway, since expiry has to remove it from the index, and
// Established's slot stores the key again (48 bytes a slot, about 57 an
// entry at its load). Keeping the key in the entry's slot and only a 4-byte
// reference in the index costs about 94 bytes an entry instead of about
// 57 + 88.

const (
	// slotChunkBits sizes the slab's chunks: 256 slots of 72 bytes are
	// 18 KiB, exactly one of Go's size classes, and their 256 links 4 KiB
	// (linkChunk: one slot chunk per link chunk).
	slotChunkBits = linkChunkBits
	slotChunk     = 1 << slotChunkBits
	// maxSlots bounds a shard: an index entry keeps 24 bits of slot number
	// (plus one, so that 0 means empty).
	maxSlots = 1<<24 - 1
	// refMask extracts the slot number plus one from an index entry; the
	// top 8 bits hold a tag from the key's hash, so most probes of other
	// keys are rejected without touching their slot.
	refMask = 1<<24 - 1
	// minIndex is the smallest index.
	minIndex = 16
	// An index grows when an insert would fill more than maxLoadNum /
	// loadDen of it, to a size that the entries fill to grownLoadNum /
	// loadDen: its load stays between 0.6 and 0.8 (about 5 to 6.7 bytes
	// an entry), and each growth is by a third, so the rehashing an
	// entry costs over the index's growth is about four moves.
	maxLoadNum   = 4
	grownLoadNum = 3
	loadDen      = 5
	// wheelLevels is the depth of each shard's wheel: with 1 ms ticks its
	// top level reaches 36 hours, beyond MaxLifetime.
	wheelLevels = 8
)

// slot is one entry: its key and its record (packed in 32-bit words so that
// readers can load it atomically while a writer changes it). 72 bytes, no
// pointers. Its timer is the link of the same number in its shard's wheel.
type slot struct {
	addr [4]atomic.Uint64 // Local hi, lo, Remote hi, lo
	// meta holds the ports (Local<<16 | Remote) in bits 0-31 and the
	// record's substate, flags and window scale in bits 32-39, 40-47 and
	// 48-55.
	meta atomic.Uint64
	// rec holds the record's 32-bit fields in pairs (the low half first):
	// rcvNxt and sndNxt, rcvWnd and tsRecent, tsOffset and the time of
	// tsRecent, the entry's and the last out-of-window ACK's times, the
	// times in milliseconds (see encodeTime). Pairs, because an atomic
	// store is a full barrier on amd64: four of them cost half of eight.
	rec [recWords / 2]atomic.Uint64
}

// Positions of the record's words in slot.rec.
const (
	recRcvNxt = iota
	recSndNxt
	recRcvWnd
	recTSRecent
	recTSOffset
	recTSStamp
	recEntryStamp
	recOOWAck
	recWords
)

// packedKey is a Tuple as the slot stores it.
type packedKey [5]uint64

func packTuple(t tuple.Tuple) packedKey {
	var k packedKey
	k[0], k[1] = t.Local.Addr.Words()
	k[2], k[3] = t.Remote.Addr.Words()
	k[4] = uint64(t.Local.Port)<<16 | uint64(t.Remote.Port)
	return k
}

func (k *packedKey) tuple() tuple.Tuple {
	return tuple.Tuple{
		Local:  tuple.Endpoint{Addr: tuple.AddrFromWords(k[0], k[1]), Port: uint16(k[4] >> 16)},
		Remote: tuple.Endpoint{Addr: tuple.AddrFromWords(k[2], k[3]), Port: uint16(k[4])},
	}
}

// matches reports whether the slot holds key k. A reader may see a slot in
// the middle of a change; the shard's sequence word tells it to retry.
func (s *slot) matches(k *packedKey) bool {
	return s.addr[0].Load() == k[0] && s.addr[1].Load() == k[1] &&
		s.addr[2].Load() == k[2] && s.addr[3].Load() == k[3] &&
		s.meta.Load()&0xffffffff == k[4]
}

func (s *slot) key() packedKey {
	return packedKey{s.addr[0].Load(), s.addr[1].Load(), s.addr[2].Load(), s.addr[3].Load(),
		s.meta.Load() & 0xffffffff}
}

// Times in a slot are milliseconds on the table's clock, kept in 32 bits as
// the low bits of the count; they are read back relative to a later
// reading of the clock (ref), which is correct while the time is less than
// 2^32 ms (49 days) old. Writers keep every stored time within 2^30 ms of
// the present (clampAge), far beyond every threshold the rules compare
// ages with (at most PAWS's 2147 s), so clamping changes no decision; and a
// table's Lifetime is at most a day, so no entry goes unwritten that long.
const maxAgeMS = 1 << 30

func encodeTime(ms, nowMS int64) uint32 {
	if ms > nowMS {
		ms = nowMS
	}
	if nowMS-ms > maxAgeMS {
		ms = nowMS - maxAgeMS
	}
	return uint32(ms)
}

func decodeTime(v uint32, refMS int64) int64 {
	return refMS - int64(uint32(uint32(refMS)-v))
}

// store writes r into the slot (the caller holds the lock and has made
// the shard's sequence odd). Times are in ns on the table's clock.
func (s *slot) store(r *record, nowMS int64) {
	s.meta.Store(s.meta.Load()&0xffffffff | uint64(r.substate)<<32 | uint64(r.flags)<<40 | uint64(r.rcvWScale)<<48)
	s.rec[0].Store(pair(r.rcvNxt, r.sndNxt))
	s.rec[1].Store(pair(r.rcvWnd, r.tsRecent))
	if midWrite != nil {
		midWrite()
	}
	s.rec[2].Store(pair(r.tsOffset, encodeTime(toMS(r.tsRecentStamp), nowMS)))
	s.rec[3].Store(pair(encodeTime(toMS(r.entryStamp), nowMS), encodeTime(toMS(r.lastOOWAck), nowMS)))
}

func pair(lo, hi uint32) uint64 { return uint64(hi)<<32 | uint64(lo) }

// slotWords is a copy of a slot's record words, its times not yet decoded.
type slotWords struct {
	meta uint64
	rec  [recWords]uint32
}

// words copies the slot's record words.
func (s *slot) words() slotWords {
	w := slotWords{meta: s.meta.Load()}
	for i := range s.rec {
		p := s.rec[i].Load()
		w.rec[2*i], w.rec[2*i+1] = uint32(p), uint32(p>>32)
	}
	return w
}

// record decodes the words, reading their times relative to refMS, a clock
// reading taken after they were copied (so no time in them is later); times
// come back in ns, at ms granularity.
func (w *slotWords) record(refMS int64) record {
	return record{
		substate:      Substate(w.meta >> 32),
		flags:         recordFlags(w.meta >> 40),
		rcvWScale:     uint8(w.meta >> 48),
		rcvNxt:        w.rec[recRcvNxt],
		sndNxt:        w.rec[recSndNxt],
		rcvWnd:        w.rec[recRcvWnd],
		tsRecent:      w.rec[recTSRecent],
		tsOffset:      w.rec[recTSOffset],
		tsRecentStamp: fromMS(decodeTime(w.rec[recTSStamp], refMS)),
		entryStamp:    fromMS(decodeTime(w.rec[recEntryStamp], refMS)),
		lastOOWAck:    fromMS(decodeTime(w.rec[recOOWAck], refMS)),
	}
}

// load reads the slot's record (the caller holds the lock, and refMS is
// the clock's reading, taken after the slot was last written).
func (s *slot) load(refMS int64) record {
	w := s.words()
	return w.record(refMS)
}

const msNS = 1_000_000

// toMS is clock time d in whole milliseconds (rounded down, towards the
// past for a negative d); fromMS converts back.
func toMS(d time.Duration) int64 {
	ms := int64(d) / msNS
	if d < 0 && int64(d)%msNS != 0 {
		ms--
	}
	return ms
}

func fromMS(ms int64) time.Duration { return time.Duration(ms * msNS) }

// entryIndex is a shard's open-addressing index with linear probing: each
// entry is 0 (empty) or tag<<24 | slot+1. Its size is any number, not a
// power of two: a key's home is its hash's low 32 bits scaled to the size
// (Lemire's multiply-shift), which lets the index grow by a third at a
// time instead of doubling.
type entryIndex struct {
	e []atomic.Uint32
	n uint64 // len(e)
}

func newEntryIndex(n int) *entryIndex {
	return &entryIndex{e: make([]atomic.Uint32, n), n: uint64(n)}
}

// home is the position at which key hash h's probe starts.
func (x *entryIndex) home(h uint64) uint64 { return (h & 0xffffffff) * x.n >> 32 }

// next is the position after j, wrapping around.
func (x *entryIndex) next(j uint64) uint64 {
	if j++; j == x.n {
		return 0
	}
	return j
}

// put stores entry e, whose key hashes to h, in the first empty position
// of its probe run; the caller knows there is one.
func (x *entryIndex) put(h uint64, e uint32) {
	for j := x.home(h); ; j = x.next(j) {
		if x.e[j].Load() == 0 {
			x.e[j].Store(e)
			return
		}
	}
}

// dist is how far position j lies after position from, cyclically.
func (x *entryIndex) dist(from, j uint64) uint64 {
	if j >= from {
		return j - from
	}
	return j + x.n - from
}

func indexTag(h uint64) uint32 { return uint32(h>>40) & 0xff << 24 }

// entryShard is one shard of a Table.
type entryShard struct {
	// seq is odd while a writer changes the index or a slot (written
	// under mu); readers retry when it was odd or changed while they read.
	seq    rcu.SeqCount
	index  atomic.Pointer[entryIndex]
	chunks atomic.Pointer[[]*[slotChunk]slot]

	mu    sync.Mutex      // writers
	wheel wheelCore[link] // the entries' timers, node i for slot i
	// timers mirrors the wheel's pending count (written under mu) for
	// Advance's lock-free skip of idle shards and for Stats.
	timers atomic.Int64
	free   []int32 // free slot numbers below used
	used   int32   // slots handed out so far (the slab's high-water mark)
	n      int     // live entries
	due    []int32 // expiry's buffer

	_ [64]byte // keep neighbouring shards' locks and sequence words apart
}

func (s *entryShard) init(nowMS int64) {
	s.index.Store(newEntryIndex(minIndex))
	chunks := make([]*[slotChunk]slot, 0, 4)
	s.chunks.Store(&chunks)
	s.wheel.init(wheelLevels, nowMS)
}

// slotAt returns slot i, or nil if a torn read produced a number beyond the
// slab (the reader will retry).
func slotAt(chunks []*[slotChunk]slot, i uint32) *slot {
	c := i >> slotChunkBits
	if int(c) >= len(chunks) {
		return nil
	}
	return &chunks[c][i&(slotChunk-1)]
}

// read runs f on the live slot holding key k, if any, with no lock: it
// retries until no writer changed the shard while it looked, so what f
// saw is one consistent state of the entry. f must only read the slot.
func (s *entryShard) read(h uint64, k *packedKey, f func(*slot)) bool {
	tag := indexTag(h)
	for {
		// BeginRead waits out a writer mid-change: a few stores, unless it
		// was preempted; then it yields rather than spin against it.
		seq := s.seq.BeginRead()
		idx := s.index.Load()
		chunks := *s.chunks.Load()
		found := false
		for i, n := idx.home(h), uint64(0); n < idx.n; i, n = idx.next(i), n+1 {
			e := idx.e[i].Load()
			if e == 0 {
				break
			}
			if e&^refMask != tag {
				continue
			}
			if sl := slotAt(chunks, e&refMask-1); sl != nil && sl.matches(k) {
				f(sl)
				found = true
				break
			}
		}
		if s.seq.ReadOK(seq) {
			return found
		}
	}
}

// find returns the index position and slot of key k; the caller holds the
// lock.
func (s *entryShard) find(h uint64, k *packedKey) (uint64, *slot) {
	idx := s.index.Load()
	chunks := *s.chunks.Load()
	tag := indexTag(h)
	for i := idx.home(h); ; i = idx.next(i) {
		e := idx.e[i].Load()
		if e == 0 {
			return 0, nil
		}
		if e&^refMask == tag {
			if sl := slotAt(chunks, e&refMask-1); sl.matches(k) {
				return i, sl
			}
		}
	}
}

// position returns the index position that refers to slot i, whose key
// hashes to h; the caller holds the lock and knows the slot is live.
func (s *entryShard) position(h uint64, i uint32) uint64 {
	idx := s.index.Load()
	for j := idx.home(h); ; j = idx.next(j) {
		if idx.e[j].Load()&refMask == i+1 {
			return j
		}
	}
}

// midWrite, when a test sets it (before any goroutine uses a table), runs
// in the middle of writers' changes, to stretch the windows in which a
// reader could see a half-made change.
var midWrite func()

// beginWrite and endWrite bracket every change readers could see; the
// caller holds mu.
func (s *entryShard) beginWrite() { s.seq.BeginWrite() }
func (s *entryShard) endWrite()   { s.seq.EndWrite() }

// alloc returns a free slot number, growing the slab (and the wheel's
// links) by a chunk if none is free, or false if the shard holds maxSlots
// entries. The caller holds the lock; the slot is not yet reachable from
// the index.
func (s *entryShard) alloc() (uint32, bool) {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return uint32(i), true
	}
	if s.used >= maxSlots {
		return 0, false
	}
	chunks := *s.chunks.Load()
	if int(s.used>>slotChunkBits) >= len(chunks) {
		// Appending in place is safe: readers index only below the length
		// of the header they loaded, and a full array is copied (doubled)
		// rather than written, so the list grows in amortized O(1).
		grown := append(chunks, new([slotChunk]slot))
		s.chunks.Store(&grown)
		s.wheel.addChunk()
	}
	s.used++
	return uint32(s.used - 1), true
}

// reserve makes room in the index for one more entry, replacing it with
// a larger one if the entry would fill it past maxLoadNum/loadDen. The
// caller holds the lock, and the sequence is even: the new index is built
// while readers go on probing the old one, which no writer changes
// meanwhile, and it holds the same entries when it is swapped in, so the
// swap needs no sequence change. Building it reads every entry's key from
// its slot (a cache miss each): the shard's writers wait for that, its
// readers do not.
func (s *entryShard) reserve(hasher *tuple.Hasher) {
	old := s.index.Load()
	if uint64(s.n+1)*loadDen <= old.n*maxLoadNum {
		return
	}
	size := max(uint64(s.n+1)*loadDen/grownLoadNum+1, minIndex)
	idx := newEntryIndex(int(size))
	chunks := *s.chunks.Load()
	for i := range old.e {
		e := old.e[i].Load()
		if e == 0 {
			continue
		}
		k := slotAt(chunks, e&refMask-1).key()
		idx.put(hasher.Hash(k.tuple()), e)
		if midWrite != nil && i%64 == 0 {
			midWrite()
		}
	}
	s.index.Store(idx)
}

// insert adds an index entry for slot i, whose key hashes to h, into the
// room reserve made. The caller holds the lock and has made the sequence
// odd.
func (s *entryShard) insert(h uint64, i uint32) {
	s.index.Load().put(h, indexTag(h)|(i+1))
	s.n++
}

// remove deletes the index entry at position pos and frees its slot, by
// backward-shift deletion: later entries of the probe run move back into
// the hole when their home allows, so no tombstones build up under churn.
// The caller holds the lock, has made the sequence odd, and has taken the
// slot's timer off the wheel.
func (s *entryShard) remove(pos uint64, hasher *tuple.Hasher) {
	idx := s.index.Load()
	chunks := *s.chunks.Load()
	e := idx.e[pos].Load()
	s.free = append(s.free, int32(e&refMask-1))
	s.n--
	hole := pos
	for j := idx.next(pos); ; j = idx.next(j) {
		f := idx.e[j].Load()
		if f == 0 {
			break
		}
		k := slotAt(chunks, f&refMask-1).key()
		home := idx.home(hasher.Hash(k.tuple()))
		// The entry at j may fill the hole unless its home lies cyclically
		// in (hole, j]: then moving it before its home would hide it.
		if idx.dist(home, j) >= idx.dist(hole, j) {
			idx.e[hole].Store(f)
			hole = j
			if midWrite != nil {
				midWrite()
			}
		}
	}
	idx.e[hole].Store(0)
}
