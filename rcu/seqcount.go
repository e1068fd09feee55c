package rcu

import (
	"runtime"
	"sync/atomic"
)

// SeqCount is a sequence counter (a seqlock's read side without the lock):
// writers, serialized by a lock of their own, bracket each change with
// BeginWrite and EndWrite, which leave the count odd while the change is in
// progress; readers take a snapshot of the count with BeginRead, read the
// protected data, and keep what they read only if ReadOK then reports that
// no writer ran meanwhile. It is the read side the library's tables stand
// on where a reader must see several words of one moment (a bucket pair, a
// record), as gVisor's sync.SeqCount and Linux's seqcount_t are.
//
// Readers DO NOT BLOCK writers and never write shared memory; a writer
// never waits for readers. A reader MAY RETRY: it runs again whenever a
// writer changed the data while it read, and BeginRead waits while a
// writer is in the middle of a change. So reads are not lock-free in the
// strict sense: a writer preempted between BeginWrite and EndWrite holds
// every reader of the same count back until it runs again (BeginRead
// spins a little, then yields its P to give the writer a chance to run).
// Writes are wait-free; their serialization is the caller's lock.
//
// The race-detector caveat, once for the whole library: a reader reads the
// protected data while a writer may be changing it, and only afterwards
// learns (ReadOK) whether to throw what it read away. In Go that is a data
// race unless every protected word is read and written with sync/atomic
// operations (or is immutable once published): plain reads would be
// reported by the race detector, and the memory model gives them no
// meaning at all. Every table that uses a SeqCount keeps its protected
// words in atomic types. A reader must also not act on what it read (follow
// a pointer, index a slice) in a way that can fault on a torn value before
// ReadOK says it was consistent, or must bound such uses (see, for
// instance, the slot bounds checks of the TIME_WAIT table).
//
// Compared with an rcu.Pointer to an immutable snapshot: a SeqCount lets
// writers change data in place, with no allocation per change, at the price
// of readers that may retry. Compared with sync.RWMutex: readers write no
// shared line (an RWMutex's reader count bounces between cores).
//
// The zero SeqCount is ready to use. A SeqCount must not be copied after
// first use.
type SeqCount struct {
	seq atomic.Uint64
}

// SeqEpoch is a snapshot of a SeqCount taken by BeginRead, to be checked
// with ReadOK.
type SeqEpoch uint64

// seqSpins is how many times BeginRead polls an odd count before it
// yields its P: a writer's change is a few stores, but it may have been
// preempted mid-change.
const seqSpins = 16

// BeginRead waits until no writer is in the middle of a change and returns
// the count, for ReadOK. It allocates nothing; its fast path (no writer
// mid-change) is one atomic load, inlined into the caller.
func (s *SeqCount) BeginRead() SeqEpoch {
	if e := s.seq.Load(); e&1 == 0 {
		return SeqEpoch(e)
	}
	return s.beginReadSlow()
}

// beginReadSlow is BeginRead while a writer is mid-change: it spins a
// little, then yields its P each time it finds the count still odd.
//
//go:noinline
func (s *SeqCount) beginReadSlow() SeqEpoch {
	for spins := 0; ; spins++ {
		if e := s.seq.Load(); e&1 == 0 {
			return SeqEpoch(e)
		}
		if spins >= seqSpins {
			runtime.Gosched() // the writer may be descheduled
		}
	}
}

// TryBeginRead returns the count and true if no writer is in the middle of
// a change, without waiting; false otherwise.
func (s *SeqCount) TryBeginRead() (SeqEpoch, bool) {
	e := s.seq.Load()
	return SeqEpoch(e), e&1 == 0
}

// ReadOK reports whether no writer has begun a change since BeginRead
// returned e: then everything read in between belongs to one moment. It is
// wait-free.
func (s *SeqCount) ReadOK(e SeqEpoch) bool { return s.seq.Load() == uint64(e) }

// BeginWrite marks the start of a change; the count is odd until EndWrite.
// Writers must be serialized by the caller (a mutex, or being the only
// writer). BeginWrite must not be called again before EndWrite.
func (s *SeqCount) BeginWrite() {
	if s.seq.Add(1)&1 == 0 {
		panic("socktable/rcu: SeqCount.BeginWrite during a write: writers are not serialized")
	}
}

// EndWrite marks the end of the change BeginWrite began.
func (s *SeqCount) EndWrite() {
	if s.seq.Add(1)&1 != 0 {
		panic("socktable/rcu: SeqCount.EndWrite without BeginWrite")
	}
}
