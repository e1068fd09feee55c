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
// Each group has a 16-byte metadata record, kept in its own dense array so
// that it stays in cache: one tag byte per slot and a sequence word. The
// slots, each a packed key and a value, live in a second array; a lookup
// touches the metadata (cache) and one slot (memory).
const (
	groupSlots = 8

	tagEmpty   = 0 // never used since the group was created or cleaned
	tagDeleted = 1 // tombstone: probes go on past it
	// Live tags are 2..255, from the low byte of the hash.

	lsb   = 0x0101010101010101
	low7  = 0x7f7f7f7f7f7f7f7f
	notLo = 0xfefefefefefefefe // clears bit 0 of every byte
)

// groupMeta is a group's metadata, 16 bytes, four to a cache line. tags
// holds one byte per slot (empty, deleted, or a live tag). seq is a
// sequence counter, odd while a writer is changing the group's tags or
// slots: readers take no lock, they read seq, then tags and slots, then
// seq again, and retry only if it moved. state holds the writers' lock
// and the group's reach (see below); it shares the line, so a write
// touches one line for all three. Holding the lock does not disturb
// readers: a writer may own a group for a whole find without a reader
// retrying.
//
// seq has 32 bits: a reader that saw it wrap back to the same value would
// have to stall for 2^31 writes to one group within one lookup.
type groupMeta struct {
	tags  atomic.Uint64 // written only by the lock holder, with seq odd
	seq   atomic.Uint32 // written only by the lock holder
	state atomic.Uint32 // lock bit, reach and displaced count; written only by the lock holder (or to take the lock)
}

// A group's state word packs three fields:
//
//   - bit 0: the writers' lock;
//   - bits 1-7: the reach of the group as a home: how many groups past it
//     the farthest entry homed here lies along its probe chain (0: all
//     are in the group itself), or reachUnknown;
//   - bits 8-31: how many entries homed here lie outside the group.
//
// The reach is what makes a miss cheap. A Swiss table's miss walks its
// chain to the first group with an empty slot, and at 7/8 load most
// groups are full: a million-entry table's misses visited four groups
// and matched a tag (a wasted slot read from memory) in one lookup of
// eight. Bounded by the reach, they visit two groups and match half as
// often. The reach only grows while entries leave the home group; it
// falls to 0 when the last of them is deleted (hence the count), and a
// resize recomputes it. Only a writer holding the home group's lock
// changes them, before it publishes an entry and after it removes one,
// so a reader that read the reach has a chain long enough for every
// entry present when it read it.
const (
	stateLocked    = 1
	reachShift     = 1
	reachUnknown   = 1<<7 - 1 // the reach overflowed: walk to an empty slot
	displacedShift = 8
	displacedMax   = 1<<24 - 1 // saturated: the count and reach stay fixed
)

// reachOf returns the groups a lookup of a key homed at a group with state
// w must visit at most, the home included (groups for an unknown reach).
func reachOf(w uint32, groups int) int {
	if r := int(w>>reachShift) & reachUnknown; r != reachUnknown {
		return r + 1
	}
	return groups
}

// withDisplaced returns state w after an entry homed at the group was
// placed depth groups along its chain (depth 1 is the home itself: no
// change).
func withDisplaced(w uint32, depth int) uint32 {
	n := w >> displacedShift
	if depth <= 1 || n == displacedMax {
		return w
	}
	r := max(w>>reachShift&reachUnknown, uint32(min(depth-1, reachUnknown)))
	if n+1 == displacedMax {
		r = reachUnknown // from now on no deeper entry could be noted
	}
	return (n+1)<<displacedShift | r<<reachShift | w&stateLocked
}

// withoutDisplaced returns state w after an entry homed at the group and
// lying depth groups along its chain was removed: the reach drops to 0
// with the last such entry.
func withoutDisplaced(w uint32, depth int) uint32 {
	n := w >> displacedShift
	switch {
	case depth <= 1 || n == displacedMax:
		return w
	case n <= 1:
		return w & stateLocked
	}
	return w - 1<<displacedShift
}

// key is a tuple packed into five words: the four address words and both
// ports: how slots store tuples (lookups compare with the Tuple itself,
// see matches).
type key [5]uint64

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
type slot[V comparable] struct {
	k [5]atomic.Uint64
	v V
}

// matches compares the slot's key with t's own fields rather than with a
// packed key: Tuple is small enough for the compiler to keep in registers,
// while the five-word key array goes through the stack (a hit in a small
// table took 25 ns that way, against 17 ns for a Go map).
func (s *slot[V]) matches(t *tuple.Tuple) bool {
	lh, ll := t.Local.Addr.Words()
	rh, rl := t.Remote.Addr.Words()
	return s.k[4].Load() == uint64(t.Local.Port)<<16|uint64(t.Remote.Port) &&
		s.k[3].Load() == rl && s.k[1].Load() == ll && s.k[2].Load() == rh && s.k[0].Load() == lh
}

func (s *slot[V]) loadKey() key {
	return key{s.k[0].Load(), s.k[1].Load(), s.k[2].Load(), s.k[3].Load(), s.k[4].Load()}
}

// storeKey writes k into the slot, skipping the words that already hold
// the right value: an atomic store is a locked instruction on amd64, and in
// a server's table most words repeat (an IPv4 address's high word is zero;
// a reused slot held a connection to the same local address).
func (s *slot[V]) storeKey(k *key) {
	for i := range k {
		if s.k[i].Load() != k[i] {
			s.k[i].Store(k[i])
		}
	}
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

// zeroBytes returns 0x80 in each byte of x that is zero, exactly (no false
// positives, unlike the cheaper borrow trick).
func zeroBytes(x uint64) uint64 { return ^(((x & low7) + low7) | x | low7) }

// matchTag marks the bytes of tags equal to tag.
func matchTag(tags, tag uint64) uint64 { return zeroBytes(tags ^ (lsb * tag)) }

// freeBytes marks empty and deleted bytes: the slots an insert may take.
func freeBytes(tags uint64) uint64 { return zeroBytes(tags & notLo) }

// emptyBytes marks never-used bytes. A group with one ends every probe
// chain that reaches it.
func emptyBytes(tags uint64) uint64 { return zeroBytes(tags) }

// firstByte is the index of the lowest marked byte.
func firstByte(marks uint64) int { return bits.TrailingZeros64(marks) >> 3 }

// setByte returns tags with byte i replaced by b.
func setByte(tags uint64, i int, b uint64) uint64 {
	shift := uint(i) * 8
	return tags&^(0xff<<shift) | b<<shift
}

func byteAt(tags uint64, i int) uint64 { return tags >> (uint(i) * 8) & 0xff }
