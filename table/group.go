package table

import (
	"math/bits"
	"reflect"
	"sync/atomic"
	"unsafe"

	"github.com/socktable/socktable/internal/typeinfo"
	"github.com/socktable/socktable/tuple"
)

// The table is an array of groups of groupSlots slots (Swiss-table style).
// Each group has one 8-byte metadata word, kept in a dense array of its
// own so that it stays in cache: a tag byte per slot, and a control byte
// with the writers' lock and the group's reach. The slots, each a packed
// key and a value, live in a second array; a lookup touches the metadata
// (cache) and one slot (memory).
//
// Seven slots rather than Swiss tables' eight, so that the control byte
// fits: everything a reader needs from a group is one atomic load, and the
// metadata costs 8/7 of a byte per slot. A million-entry table's metadata
// is then 1.3 MB, against 2.4 MB with a 16-byte record of tags, sequence
// and lock: on this project's reference VM, where little beyond a core's
// 1 MB L2 cache stays resident while lookups stream slots from memory, a
// hit whose metadata missed the cache cost two memory latencies instead of
// one, and half the footprint misses half as often.
const (
	groupSlots = 7

	tagEmpty   = 0 // never used since the group was created or cleaned
	tagDeleted = 1 // tombstone: probes go on past it
	// Live tags are 2..255, from the low byte of the hash.

	lsb        = 0x0001010101010101 // one in each tag byte
	low7       = 0x7f7f7f7f7f7f7f7f
	notLo      = 0xfefefefefefefefe // clears bit 0 of every byte
	tagMarks   = 0x0080808080808080 // the high bit of each tag byte
	tagsMask   = 1<<(8*groupSlots) - 1
	lockedBit  = 1 << (8 * groupSlots) // the control byte's bit 0: a writer holds the group
	reachShift = 8*groupSlots + 1
	// reachUnknown: the reach overflowed its field; walk to an empty slot.
	reachUnknown = 1<<7 - 2
	// reachMoved marks a home group whose entries a migration has moved
	// to the next table (see etable.next): its word then also keeps the
	// lock bit for good. movedWord is the smallest word carrying it, so a
	// reader tells a moved home with one comparison.
	reachMoved = 1<<7 - 1
	movedWord  = uint64(reachMoved) << reachShift
)

// groupMeta is a group's metadata word:
//
//   - bytes 0-6: one tag per slot (empty, deleted, or a live tag);
//   - byte 7, bit 0: the writers' lock;
//   - byte 7, bits 1-7: the group's reach as a home: how many groups past
//     it, along its probe chain, the farthest entry homed here lies (0: all
//     are in the group itself), or reachUnknown; or reachMoved, once a
//     migration has moved the entries homed here to the next table.
//
// Only a writer holding the lock stores the word (or takes the lock with
// a compare-and-swap); readers only load it. A reader needs no sequence
// check on the group: each slot carries its own version (see slot).
//
// The reach is what makes a miss cheap. A Swiss table's miss walks its
// chain to the first group with an empty slot, and at 7/8 load most
// groups are full: a million-entry table's misses visited four groups and
// matched a tag (a wasted slot read from memory) in one lookup of eight.
// Bounded by the reach, they visit two groups and match half as often.
// The reach only grows while entries homed here
// lie outside the group (counted in etable.displaced); it falls to 0 with
// the last of them, and a resize recomputes it. Only a writer holding the
// home group's lock changes it, before it publishes an entry and after it
// removes one, so a reader that read the reach has a chain long enough
// for every entry present when it read it.
type groupMeta struct {
	tags atomic.Uint64
}

// reachOf returns the groups a lookup of a key homed at a group with
// metadata w must visit at most, the home included (groups for an unknown
// reach).
func reachOf(w uint64, groups int) int {
	if r := int(w >> reachShift); r != reachUnknown {
		return r + 1
	}
	return groups
}

// withReach returns w with its reach extended to cover an entry depth
// groups along its chain (depth 1 is the home itself).
func withReach(w uint64, depth int) uint64 {
	r := max(w>>reachShift, uint64(min(depth-1, reachUnknown)))
	return w&(1<<reachShift-1) | r<<reachShift
}

// withoutReach returns w with its reach back to 0: no entry homed here
// lies outside the group.
func withoutReach(w uint64) uint64 { return w & (1<<reachShift - 1) }

// key is a tuple packed into five words: the four address words and, in
// the fifth, both ports in the low 32 bits; a slot also keeps its live bit,
// its entry's kind and its version in the fifth word's high bits (see
// slot). Lookups compare with the Tuple itself, see holds.
type key [5]uint64

// The fifth word of a slot:
//
//   - bits 0-31: the ports (local << 16 | remote);
//   - bit 32: live, the slot holds an entry;
//   - bits 33-34: the entry's Kind;
//   - bit 35: changing, a kind change is between its stores;
//   - bits 36-63: the version, 28 bits, wrapping.
const (
	portsMask      = 1<<32 - 1
	slotLive       = 1 << 32
	kindShift      = 33
	slotKind       = uint64(MaxKind) << kindShift
	slotChanging   = 1 << 35
	slotVersionOne = 1 << 36
)

// kindOf returns the Kind in a slot's fifth word.
func kindOf(w uint64) Kind { return Kind(w & slotKind >> kindShift) }

func packKey(t tuple.Tuple) key {
	lh, ll := t.Local.Addr.Words()
	rh, rl := t.Remote.Addr.Words()
	return key{lh, ll, rh, rl, uint64(t.Local.Port)<<16 | uint64(t.Remote.Port)}
}

func (k *key) tuple() tuple.Tuple {
	return tuple.Tuple{
		Local:  tuple.Endpoint{Addr: tuple.AddrFromWords(k[0], k[1]), Port: uint16(k[4] >> 16)},
		Remote: tuple.Endpoint{Addr: tuple.AddrFromWords(k[2], k[3]), Port: uint16(k[4])},
	}
}

// slot holds one entry. Its words are read by lock-free readers, so every
// access is atomic; v is accessed through loadValue and storeValue.
//
// The fifth key word is also the slot's seqlock: besides the ports it has
// a live bit, the entry's kind and a version, and every change of the
// slot's entry (activate, retire, a kind change) rewrites it with the next
// version. A reader loads it first, then the key and the value, then loads
// it again: if it did not move and was live, the key, the kind and the
// value it read belonged together while the entry was present. A replaced
// value with its kind unchanged (CompareAndSwap) needs no new version: it
// is one atomic word, and either value was the entry's at the time read.
//
// A kind change replaces two words, the value and the kind, and readers
// of the pair must never see one without the other. The writer first sets
// the changing bit, then stores the value, then stores the word with the
// new kind, the changing bit clear and the next version
// (beginKindChange, endKindChange). A reader that wants the kind
// (LookupKind) and read the changing bit looks again, so it waits out the
// change: two stores by a writer that holds the group's locks, and never
// waits for anything itself. A reader that wants only the value (Lookup)
// ignores the bit: the value word alone is atomic, old or new. No reader
// could decide the pair without waiting: whatever order the two words are
// stored in, a reader between the stores finds one old and one new.
//
// The version has 28 bits. Every step of it is a write made under the
// group's lock (an insert, a delete or a kind change of this one slot), and
// a reader compares two loads of the word a few instructions apart: to be
// fooled it would have to stall between them while 2^28 such writes, a
// quarter of a billion, hit that one slot, and then find the word at the
// very value it left.
type slot[V comparable] struct {
	k [5]atomic.Uint64
	v V
}

// holds reports whether the slot holds t as a live entry, and returns the
// fifth key word it read, which the caller compares after reading the
// value. It compares with t's own fields rather than with a packed key:
// Tuple is small enough for the compiler to keep in registers, while the
// five-word key array goes through the stack (which made a cache-resident
// hit slower than a Go map's).
func (s *slot[V]) holds(t *tuple.Tuple) (uint64, bool) {
	w := s.k[4].Load()
	lh, ll := t.Local.Addr.Words()
	rh, rl := t.Remote.Addr.Words()
	return w, w&(slotLive|portsMask) == slotLive|uint64(t.Local.Port)<<16|uint64(t.Remote.Port) &&
		s.k[3].Load() == rl && s.k[1].Load() == ll && s.k[2].Load() == rh && s.k[0].Load() == lh
}

// loadLive reads the slot's entry for a reader that is not looking for a
// particular key (All, a resize). It reports false if the slot held no
// entry or changed while it read. The key's fifth word keeps the ports
// and the entry's kind.
func (s *slot[V]) loadLive(mode valueMode) (key, V, bool) {
	w := s.k[4].Load()
	k := key{s.k[0].Load(), s.k[1].Load(), s.k[2].Load(), s.k[3].Load(), w & (portsMask | slotKind)}
	v := loadValue(mode, s)
	return k, v, w&slotLive != 0 && s.k[4].Load() == w
}

// fillKey stores k and v in the slot, which holds no entry: readers that
// reach it skip it until activate. Key words that already hold the right
// value are not stored: an atomic store is a locked instruction on amd64,
// and in a server's table most words repeat (an IPv4 address's high word
// is zero; a reused slot held a connection to the same local address).
func (s *slot[V]) fillKey(mode valueMode, k *key, v V) {
	for i := range 4 {
		if s.k[i].Load() != k[i] {
			s.k[i].Store(k[i])
		}
	}
	storeValue(mode, s, v)
}

// activate makes the entry fillKey stored live, with the next version,
// the ports and the kind in word: the moment an insert takes effect. The
// writer stores the slot's tag before it, so a lookup that finds the slot
// live also finds its tag (a live slot without its tag would be seen by a
// reader holding an older tags word, whose hit a later reader's miss
// would contradict).
func (s *slot[V]) activate(word uint64) {
	w := s.k[4].Load()
	s.k[4].Store(w&^(slotVersionOne-1) + slotVersionOne | slotLive | word&(portsMask|slotKind))
}

// retire ends the slot's entry: a new version without the live bit, then
// the value dropped for the garbage collector. Readers that read the old
// version retry. The writer clears the slot's tag first: that is the
// moment a delete takes effect.
func (s *slot[V]) retire(mode valueMode) {
	w := s.k[4].Load()
	s.k[4].Store(w&^(slotVersionOne-1) + slotVersionOne | w&portsMask)
	var zero V
	storeValue(mode, s, zero)
}

// beginKindChange marks the live slot, whose fifth word is w, as changing
// its value and kind: readers of the pair wait until endKindChange. The
// writer holds the slot's group locks and stores the new value between
// the two.
func (s *slot[V]) beginKindChange(w uint64) { s.k[4].Store(w | slotChanging) }

// endKindChange publishes kind k with the next version and ends the
// change begun from word w. The value stored just before is the moment the
// change takes effect: a reader of the value alone sees it from then on,
// and a reader of the pair sees it only with k.
func (s *slot[V]) endKindChange(w uint64, k Kind) {
	// w has no changing bit; the version is the word's top field, so it
	// wraps by itself.
	s.k[4].Store((w+slotVersionOne)&^slotKind | uint64(k)<<kindShift)
}

// fill writes an entry into a slot of a table no reader can see yet (a
// resize's new table): plain stores, ordered before any reader's loads by
// the atomic store that publishes the table.
func (s *slot[V]) fill(k *key, v V) {
	words := (*key)(unsafe.Pointer(&s.k))
	*words = *k
	words[4] = k[4]&(portsMask|slotKind) | slotLive
	s.v = v
}

// valueMode says how a V is read and written atomically.
type valueMode uint8

const (
	valuePointer valueMode = iota // pointer-shaped V: atomic pointer ops (the GC sees it)
	valueWord                     // pointer-free V of 1..8 bytes: one atomic 64-bit word
	valueEmpty                    // zero-size V: nothing to store
)

// modeOf classifies V. Values must be read by lock-free readers without a
// data race, so they are stored with one atomic operation: that allows a
// pointer (or map, chan, func: one pointer word) or a pointer-free value of
// at most 8 bytes. A pointer-free V shorter than 8 bytes sits at offset 40
// of a 48-byte slot, so the 8-byte word stays inside the slot.
func modeOf[V comparable]() (valueMode, error) {
	typ := reflect.TypeFor[V]()
	switch typ.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Chan, reflect.Func:
		return valuePointer, nil
	}
	switch size := typ.Size(); {
	case size == 0:
		return valueEmpty, nil
	case size <= 8 && !typeinfo.HasPointers(typ):
		return valueWord, nil
	}
	return 0, ErrValueType
}

func loadValue[V comparable](mode valueMode, s *slot[V]) V {
	var v V
	switch mode {
	case valuePointer:
		p := atomic.LoadPointer((*unsafe.Pointer)(unsafe.Pointer(&s.v)))
		v = *(*V)(unsafe.Pointer(&p))
	case valueWord:
		w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.v)))
		v = *(*V)(unsafe.Pointer(&w))
	}
	return v
}

func storeValue[V comparable](mode valueMode, s *slot[V], v V) {
	switch mode {
	case valuePointer:
		atomic.StorePointer((*unsafe.Pointer)(unsafe.Pointer(&s.v)), *(*unsafe.Pointer)(unsafe.Pointer(&v)))
	case valueWord:
		var w uint64
		*(*V)(unsafe.Pointer(&w)) = v
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&s.v)), w)
	}
}

// tagOf derives a slot tag from the hash's low byte (the group index uses
// the high bits, through tuple.Shard). 0 and 1 are reserved.
func tagOf(h uint64) uint64 {
	t := h & 0xff
	if t < 2 {
		t += 2
	}
	return t
}

// zeroBytes returns 0x80 in each tag byte of x that is zero, exactly (no
// false positives, unlike the cheaper borrow trick); the control byte is
// never marked.
func zeroBytes(x uint64) uint64 { return ^(((x & low7) + low7) | x | low7) & tagMarks }

// matchTag marks the tag bytes of w equal to tag.
func matchTag(w, tag uint64) uint64 { return zeroBytes(w ^ (lsb * tag)) }

// freeBytes marks empty and deleted tags: the slots an insert may take.
func freeBytes(w uint64) uint64 { return zeroBytes(w & notLo) }

// emptyBytes marks never-used tags. A group with one ends every probe
// chain that reaches it.
func emptyBytes(w uint64) uint64 { return zeroBytes(w) }

// firstByte is the index of the lowest marked byte.
func firstByte(marks uint64) int { return bits.TrailingZeros64(marks) >> 3 }

// setByte returns w with tag byte i replaced by b.
func setByte(w uint64, i int, b uint64) uint64 {
	shift := uint(i) * 8
	return w&^(0xff<<shift) | b<<shift
}

func byteAt(w uint64, i int) uint64 { return w >> (uint(i) * 8) & 0xff }
