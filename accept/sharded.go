package accept

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/socktable/socktable/internal/errs"
	"github.com/socktable/socktable/tuple"
)

// ErrInvalid: a shard number out of range, or a Migrate to the listener
// itself or to nil.
var ErrInvalid = errs.ErrInvalid

// Unbound is the shard of an acceptor bound to no shard (an accept() on a
// thread not pinned to a core): it takes from the global queue, then from
// any shard's local queue.
const Unbound = -1

// DefaultSomaxconn is Linux's net.core.somaxconn since 5.4: the most a
// listen() backlog may ask for.
const DefaultSomaxconn = 4096

// Limits of ShardedOptions.
const (
	MaxShards    = 1024
	MaxSomaxconn = 1 << 24
)

// ShardedOptions configures a Sharded listener.
type ShardedOptions struct {
	// Shards is the number of shards (cores, or NIC receive queues); 0
	// means GOMAXPROCS. At most MaxShards.
	Shards int
	// Backlog is listen()'s backlog. As in Linux it is clamped to
	// Somaxconn, a negative value meaning Somaxconn (the kernel reads it
	// unsigned), and the listener then holds at most Backlog+1 connections
	// (sk_acceptq_is_full tests ">"): a backlog of 0 holds one.
	Backlog int
	// Somaxconn is net.core.somaxconn; 0 means DefaultSomaxconn. Negative
	// or above MaxSomaxconn is ErrCapacity.
	Somaxconn int
}

// Sharded is one listener's accept side, split fastsocket-style: a local
// queue per shard for the connections whose handshake completed on that
// shard, drained by acceptors bound to it, and a global queue for the
// rest, which any acceptor takes from. It keeps Linux's backlog limit for
// the listener as a whole and never loses a connection: when the last
// acceptor of a shard leaves, the shard's queued connections move to the
// global queue and a waiting acceptor is woken; after Close, Drain hands
// back whatever is queued, and MigrateEach (Migrate) passes it on to other
// listeners.
//
// Concurrency: every method is safe for concurrent use. TryEnqueue and
// an Accept or TryAccept that finds a connection queued are lock-free and
// allocate nothing: a few atomic operations on one queue and on a word of
// the shard's (the backlog is kept as credits the shards draw from a pool
// a batch at a time, so that the shards share no counter; see
// backlog.go), and one atomic load to see whether an acceptor sleeps;
// they take the listener's lock only to wake a sleeping acceptor that
// could take the connection, or (TryEnqueue) to move it to the global
// queue when the shard's last acceptor left meanwhile. A TryEnqueue that
// finds its shard and the pool out of credits searches every shard's
// before it reports ErrBacklog (O(Shards)); the search's verdict is kept
// until a credit comes back, so a flood of connections to a full listener
// pays it about once per Accept (more when refused TryEnqueue calls race
// each other), not once per connection. Accept blocks an acceptor with
// nothing to take, without spinning, until a TryEnqueue, a Migrate, a
// shard's drain or a connection put back gives it something, its context
// ends, or the listener closes. Register, an Acceptor's Close, Close,
// Drain, Migrate, MigrateEach and Len take the listener's lock (Close may
// also wait for calls in flight; see Close); Shards, Backlog, Overflows,
// Steer, SteerRSS, Depth and ShardDepth are wait-free. The backlog limit
// is exact: at no moment do more than Backlog+1 connections sit queued
// (migrations excepted, which Linux does not limit either).
//
// Linearizability (checked with porcupine in
// sharded_linearizability_test.go): successful TryEnqueue and accept calls
// are linearizable against a bag of queued connections, FIFO for one
// producer's connections to one queue. The failures have the slack of the
// queues underneath: an accept may find nothing while a TryEnqueue it
// overlaps is still publishing; ErrBacklog may come while overlapping
// calls hold credits they are about to give back (an accept its
// connection's, and, when the batch is more than one, which it is once
// Backlog+1 reaches 16×Shards, a batch on its way between a shard and the
// pool); a shard's queue that is momentarily full (its oldest cell not yet
// released) sends a connection to the global queue, where it may be taken
// before an older one. An accept that overlaps its acceptor's Close or
// the listener's holds the connection it took until it has seen the
// closed flag, then puts it back (see Acceptor): meanwhile other accepts
// do not see it, and the same producer's later connections may be taken
// first. A TryEnqueue that overlaps Close may succeed after a TryEnqueue
// that started later got ErrClosed (the closed flag is read before the
// credit); its connection is still taken by an accept or handed back by
// Drain, never lost.
//
// Memory: fixed at NewSharded, the cells of the queues (64 bytes each for
// a pointer T, see Queue): the global queue's 2×(Backlog+1) and each local
// queue's 2×(Backlog+1)/Shards (at least 16, at most Backlog+1), each
// rounded up to a power of two, and 256 bytes of words per shard. For a
// backlog of 4096 on 2 shards that is 2 MiB; on 16 shards, 1.5 MiB.
type Sharded[T any] struct {
	// Read on every call, written only by NewSharded and Close.
	shards   []localShard[T]
	global   *Queue[T]
	limit    int64 // Backlog + 1
	closed   atomic.Bool
	closedCh chan struct{}
	// closeDone is closed when the first Close has finished waiting, so
	// that a second Close returns only then (and a Drain after either
	// sees every connection left).
	closeDone chan struct{}
	_         [cacheLinePad - 56]byte // the fields above take 56 bytes

	backlog backlog // the limit, as credits the shards draw and give back

	overflows atomic.Uint64 // written only by TryEnqueue calls refused; a line of its own
	_         [cacheLinePad - 8]byte

	// mu guards registration, the parked lists, drains and Close.
	mu            sync.Mutex
	returned      []T          // connections taken by acceptors as Close ran, put back for Drain
	putBacks      atomic.Int32 // takes putting a connection back (see Acceptor.accept); Close waits for 0
	parkedUnbound []*Acceptor[T]
	parked        atomic.Int32 // acceptors parked, in all lists
	unboundParked atomic.Int32 // len(parkedUnbound), for lock-free checks
	next          int          // where the search for a parked bound acceptor starts
	nextHome      int          // the shard whose credits the next unbound acceptor gives back to

	beforeAnnounce func() // test hook: runs when acquire is about to announce a search; nil otherwise
}

// localShard is one shard's accept side.
type localShard[T any] struct {
	q         *Queue[T]
	credits   atomic.Int64 // backlog credits for this shard's TryEnqueue calls (see backlog)
	acceptors atomic.Int32 // bound acceptors alive
	nParked   atomic.Int32 // len(parked), for lock-free checks
	parked    []*Acceptor[T]
	_         [cacheLinePad - 48]byte

	// returned holds the credits given back by the acceptors whose home
	// this shard is: on a line apart from credits, so that a connection's
	// two accounting steps do not pull one line between the core that
	// queued it and the core that accepted it.
	returned atomic.Int64
	_        [cacheLinePad - 8]byte
}

// NewSharded returns an empty listener accept side. It returns
// ErrCapacity for Shards or Somaxconn out of range.
func NewSharded[T any](opts ShardedOptions) (*Sharded[T], error) {
	if opts.Shards < 0 || opts.Shards > MaxShards || opts.Somaxconn < 0 || opts.Somaxconn > MaxSomaxconn {
		return nil, ErrCapacity
	}
	n := opts.Shards
	if n == 0 {
		n = min(runtime.GOMAXPROCS(0), MaxShards)
	}
	somax := opts.Somaxconn
	if somax == 0 {
		somax = DefaultSomaxconn
	}
	backlog := opts.Backlog
	if backlog < 0 || backlog > somax {
		backlog = somax
	}
	s := &Sharded[T]{shards: make([]localShard[T], n), limit: int64(backlog) + 1, closedCh: make(chan struct{}),
		closeDone: make(chan struct{})}
	// The global queue can hold two backlogs: the listener's own, and one
	// migrated in from a closing member of its group (which Linux does
	// not count against the backlog). A local queue holds twice a shard's
	// share of the backlog (at least 16); past that, connections go to
	// the global queue. So memory stays about four backlogs' worth of
	// cells however many shards there are.
	var err error
	if s.global, err = NewQueue[T](int(2 * s.limit)); err != nil {
		return nil, err
	}
	local := int(min(s.limit, max(16, 2*s.limit/int64(n))))
	for i := range s.shards {
		if s.shards[i].q, err = NewQueue[T](local); err != nil {
			return nil, err
		}
	}
	s.initBacklog()
	return s, nil
}

// Shards returns the number of shards.
func (s *Sharded[T]) Shards() int { return len(s.shards) }

// Backlog returns the most connections the listener holds: Backlog+1
// after clamping.
func (s *Sharded[T]) Backlog() int { return int(s.limit) }

// TryEnqueue queues a connection whose handshake completed on shard: in
// the shard's local queue if an acceptor is bound to it (and the local
// queue has room), else in the global queue, and wakes an acceptor that
// sleeps. It returns ErrBacklog when Backlog+1 connections are queued (the
// stack then drops the final ACK, or resets if tcp_abort_on_overflow;
// Overflows counts it, as Linux's ListenOverflows), ErrInvalid for a shard
// out of range, and ErrClosed after Close (or a migration, which closes).
//
// It never waits for an acceptor, and never allocates: the receive path's
// call. It takes the listener's lock in two cases only: to wake a
// parked acceptor that could take the connection (while none is parked,
// that costs one atomic load), and to move the connection to the global
// queue when the shard's last acceptor left while it was being queued.
// Finding a credit is lock-free, O(1) while the backlog has room and
// O(Shards) near the limit (see Sharded).
func (s *Sharded[T]) TryEnqueue(shard int, item T) error {
	if uint(shard) >= uint(len(s.shards)) {
		return ErrInvalid
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.acquire(shard) {
		s.overflows.Add(1)
		return ErrBacklog
	}
	sh := &s.shards[shard]
	if sh.acceptors.Load() > 0 && sh.q.TryEnqueue(item) == nil {
		if sh.acceptors.Load() == 0 {
			// The shard's last acceptor left after the check above; its
			// drain may have run before the item landed: drain again.
			s.drain(sh)
		} else {
			s.wakeFor(sh)
		}
		return nil
	}
	if err := s.global.TryEnqueue(item); err != nil {
		s.release(sh)
		if err == ErrQueueFull { // an instant of a dequeue in flight on a full ring: see drain
			s.overflows.Add(1)
			return ErrBacklog
		}
		return err
	}
	s.wakeFor(nil)
	return nil
}

// Steer returns the shard for a flow: a flow's packets (the SYN, the final
// ACK) must reach the same shard, so that the connection is queued where
// its handshake ran. flowHash is the flow's keyed hash (tuple.Hasher.Hash),
// the one table.ListenerIndex also picks the flow's SO_REUSEPORT member from
// (with tuple.Shard, from its high bits); Steer uses tuple.Steer, which
// reads other bits, so that the shard is independent of the member: each
// member's flows spread over all of its shards. It is wait-free.
func (s *Sharded[T]) Steer(flowHash uint64) int { return tuple.Steer(flowHash, len(s.shards)) }

// SteerRSS returns the shard for a flow whose NIC computed RSS hash is
// rssHash (Toeplitz, see RSSHash), the way the NIC picks its receive
// queue: the hash's low 7 bits index a 128-entry indirection table filled
// round robin (ethtool's default), so shard i is receive queue i when the
// shards match the NIC's queues. It is wait-free.
func (s *Sharded[T]) SteerRSS(rssHash uint32) int {
	return int(rssHash&(RSSIndirectionSize-1)) % len(s.shards)
}

// Register adds an acceptor bound to shard, or to no shard with Unbound.
// It returns ErrInvalid for another shard number out of range and
// ErrClosed after Close.
func (s *Sharded[T]) Register(shard int) (*Acceptor[T], error) {
	if shard != Unbound && uint(shard) >= uint(len(s.shards)) {
		return nil, ErrInvalid
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	a := &Acceptor[T]{s: s, shard: shard, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if shard != Unbound {
		s.shards[shard].acceptors.Add(1)
		a.home = &s.shards[shard]
	} else {
		// Unbound acceptors give their credits back to the shards in
		// turn, so that no one shard's word takes every return.
		a.home = &s.shards[s.nextHome]
		s.nextHome = (s.nextHome + 1) % len(s.shards)
	}
	return a, nil
}

// Depth returns the number of connections queued in the listener, all
// its queues together, without a lock: what a load-aware choice among
// reuseport members compares (Linux's sk_ack_backlog). It reads each
// local queue's length, then the global queue's: 2×(Shards+1) atomic
// loads, of words the producers and consumers write. It is wait-free.
// While no call runs it is exact (it does not count connections put back
// by takes that raced with Close: Len does). Under concurrency it is
// approximate: each queue's length is within the calls running on it
// (see Queue.Len), the queues are read one after another, and a shard
// whose last acceptor leaves moves its connections to the global queue,
// which a Depth reading meanwhile may count twice. It is always between 0
// and twice the queues' capacities.
func (s *Sharded[T]) Depth() int {
	n := 0
	for i := range s.shards {
		n += s.shards[i].q.Len()
	}
	return n + s.global.Len()
}

// Full reports whether the listener holds Backlog+1 connections, its
// limit (Linux's sk_acceptq_is_full, which a SYN checks before it makes a
// request). While the credit pool has credits left, which it does until
// the listener is nearly full (see backlog), it answers with one atomic
// load: a free credit means room. Past that point, or with connections
// migrated in over the limit, it counts the queues (Depth: O(Shards)).
// It is wait-free. While no call runs it is exact; under concurrency it
// is as approximate as Depth.
func (s *Sharded[T]) Full() bool {
	if s.backlog.pool.Load() > 0 && s.backlog.extra.Load() == 0 {
		return false
	}
	return int64(s.Depth()) >= s.limit
}

// ShardDepth returns the number of connections queued in shard's local
// queue (0 for a shard out of range), as Queue.Len counts them: what a
// load-aware choice among a listener's shards compares. It is wait-free
// (two atomic loads).
func (s *Sharded[T]) ShardDepth(shard int) int {
	if uint(shard) >= uint(len(s.shards)) {
		return 0
	}
	return s.shards[shard].q.Len()
}

// Len returns the number of connections queued in all queues: the sum of
// their lengths, read one queue after another under the listener's lock
// (so that no drain moves connections between the queues meanwhile).
// While TryEnqueue calls and Accepts run it is approximate, off by at most their
// number; it is exact while none does. O(Shards).
func (s *Sharded[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.global.Len() + len(s.returned)
	for i := range s.shards {
		n += s.shards[i].q.Len()
	}
	return n
}

// Overflows returns how many TryEnqueue calls found the backlog full. It
// is wait-free (one atomic load).
func (s *Sharded[T]) Overflows() uint64 { return s.overflows.Load() }

// Close stops the listener: later TryEnqueue and Register calls return
// ErrClosed, and every acceptor's Accept and TryAccept return ErrClosed,
// even with connections queued: Drain hands those back, for the caller to
// reset as Linux does to a closing listener's children (or to migrate).
// Close takes the listener's lock, and waits (yielding its P) for enqueues
// and takes in flight: an enqueue that claimed its place in a queue
// before Close publishes its connection, and an acceptor's take that
// raced with Close puts its connection back (see Acceptor), before Close
// returns. A second Close waits for the first to finish, then returns
// ErrClosed, so that a Drain after either Close finds every connection
// left.
func (s *Sharded[T]) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		<-s.closeDone // the first Close's guarantees hold when this one returns
		return ErrClosed
	}
	defer close(s.closeDone)
	close(s.closedCh)
	_ = s.global.Close() // cannot fail: only Close closes the queues, once
	for i := range s.shards {
		_ = s.shards[i].q.Close()
	}
	s.mu.Unlock()
	// An acceptor may have claimed a connection in a queue before it
	// closed, and not yet checked the closed flags (see Acceptor.accept):
	// once every such cell is released, each such take either checked
	// before the flag was set, and so came before Close, or is counted in
	// putBacks, and then Close waits for its connection to be in
	// returned. A take that starts later finds the queues closed.
	s.global.waitDequeues()
	for i := range s.shards {
		s.shards[i].q.waitDequeues()
	}
	for s.putBacks.Load() != 0 {
		runtime.Gosched()
	}
	return nil
}

// Drain removes and returns the connections queued: the global queue's
// first, then each shard's, then those put back by acceptors whose takes
// raced with Close. After Close has returned, they are every connection
// the listener still holds, so that with the connections the Accepts
// returned they are every connection a TryEnqueue admitted, each exactly
// once. On an open listener Drain takes what it finds, stopping in each
// queue at a connection whose TryEnqueue is still publishing it, and each
// connection it takes gives its backlog credit back, as an accepted one
// does. Drain takes the listener's lock, is O(Shards) plus the number of
// connections, and allocates the slice it returns (nil if none).
func (s *Sharded[T]) Drain() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	closed := s.closed.Load()
	items := s.global.Drain()
	if !closed {
		for range items {
			s.release(&s.shards[0])
		}
	}
	for i := range s.shards {
		local := s.shards[i].q.Drain()
		if !closed {
			for range local {
				s.release(&s.shards[i])
			}
		}
		items = append(items, local...)
	}
	items = append(items, s.returned...)
	s.returned = nil
	return items
}

// Migrate is MigrateEach with one target for every connection: to,
// another member of s's reuseport group. It returns ErrInvalid, closing
// nothing, if to is s or nil.
func (s *Sharded[T]) Migrate(to *Sharded[T]) ([]T, error) {
	if to == nil || to == s {
		return nil, ErrInvalid
	}
	return s.MigrateEach(func(T) *Sharded[T] { return to })
}

// MigrateEach closes s and hands each of its queued connections to the
// listener target returns for it: as Linux's reuseport_migrate_sock picks
// a member of the closing listener's reuseport group for each child by
// the child's own hash (tcp_migrate_req), target would pick by the
// connection's flow hash. A connection goes to its target's global queue,
// and a sleeping acceptor of the target is woken for it (the wake-up
// Linux once forgot). It takes one of the target's backlog credits if
// one is free, and is otherwise admitted over the backlog (Linux does not
// check it either) while fewer than Backlog+1 connections are over it,
// so that at most two backlogs are ever queued in a listener. The
// connections with no target (nil), or whose target is closed (s itself
// included) or two backlogs full, are returned, in Drain's order, for the
// caller to reset. MigrateEach returns ErrClosed, doing nothing, if s was
// already closed.
//
// MigrateEach may block as Close does. It calls target once per
// connection, on the calling goroutine, holding no lock: target may call
// the listeners' methods (Depth, say). Connections taken by accepts of s
// that raced with the Close are migrated too (see Drain). It allocates
// the slice of connections Drain returns.
func (s *Sharded[T]) MigrateEach(target func(item T) *Sharded[T]) ([]T, error) {
	if err := s.Close(); err != nil {
		return nil, err
	}
	items := s.Drain()
	reset := items[:0] // overwrites the prefix already migrated
	for _, item := range items {
		if to := target(item); to == nil || !to.migrateIn(item) {
			reset = append(reset, item)
		}
	}
	clear(items[len(reset):]) // let the GC have the migrated ones
	if len(reset) == 0 {
		return nil, nil
	}
	return reset, nil
}

// migrateIn queues a connection migrated in from a closing listener (see
// MigrateEach), reporting false if s cannot take it.
func (s *Sharded[T]) migrateIn(item T) bool {
	if !s.reserveMigrated() {
		return false
	}
	// The global queue has room (it holds two backlogs, and the
	// reservation keeps s within that), but may look full for an instant
	// while an accept of its oldest connection is in flight: Enqueue
	// waits that out. It fails only if s closed meanwhile.
	if s.global.Enqueue(context.Background(), item) != nil {
		s.unreserveMigrated()
		return false
	}
	s.wakeFor(nil)
	return true
}

// drain moves shard sh's queued connections to the global queue, when its
// last acceptor has left, and wakes as many sleeping acceptors.
func (s *Sharded[T]) drain(sh *localShard[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sh.acceptors.Load() == 0 {
		item, ok := sh.q.TryDequeue()
		if !ok {
			return
		}
		// The global queue has room: it holds 2×Backlog, and no more than
		// that many connections are ever queued in the listener (TryEnqueue
		// stops at Backlog, Migrate at 2×Backlog). TryEnqueue can still
		// report it full for an instant while a dequeue of its oldest cell
		// is in flight; Enqueue waits that out. It cannot be closed: Close
		// holds the lock.
		if err := s.global.Enqueue(context.Background(), item); err != nil {
			panic("socktable/accept: the global queue refused a drained connection: " + err.Error())
		}
		s.wakeLocked(nil)
	}
}

// wakeFor wakes one sleeping acceptor for a connection just queued in sh's
// local queue (nil: the global queue), if any sleeps: for a local queue,
// one bound to it, else an unbound one (which takes from any local queue);
// for the global queue, an unbound one, else any. A shard with no acceptor
// left counts as the global queue: any acceptor takes from it. Its fast
// path is one atomic load.
func (s *Sharded[T]) wakeFor(sh *localShard[T]) {
	if sh == nil || sh.acceptors.Load() == 0 {
		if s.parked.Load() == 0 {
			return
		}
	} else if sh.nParked.Load() == 0 && s.unboundParked.Load() == 0 {
		return // no sleeper could take it: the shard's acceptors are busy
	}
	s.mu.Lock()
	s.wakeLocked(sh)
	s.mu.Unlock()
}

func (s *Sharded[T]) wakeLocked(sh *localShard[T]) {
	var a *Acceptor[T]
	switch {
	case sh != nil && len(sh.parked) > 0:
		a = pop(&sh.parked)
		sh.nParked.Add(-1)
	case len(s.parkedUnbound) > 0:
		a = pop(&s.parkedUnbound)
		s.unboundParked.Add(-1)
	case sh == nil || sh.acceptors.Load() == 0:
		for range s.shards {
			if l := &s.shards[s.next]; len(l.parked) > 0 {
				a = pop(&l.parked)
				l.nParked.Add(-1)
			}
			s.next = (s.next + 1) % len(s.shards)
			if a != nil {
				break
			}
		}
	}
	if a == nil {
		return
	}
	a.parked = false
	s.parked.Add(-1)
	a.wake <- struct{}{} // cannot block: a parked acceptor's wake channel is empty
}

// pop removes and returns the acceptor that has slept longest.
func pop[T any](l *[]*Acceptor[T]) *Acceptor[T] {
	a := (*l)[0]
	copy(*l, (*l)[1:])
	(*l)[len(*l)-1] = nil
	*l = (*l)[:len(*l)-1]
	return a
}

// remove removes a from list l, reporting whether it was there.
func remove[T any](l *[]*Acceptor[T], a *Acceptor[T]) bool {
	for i, b := range *l {
		if b == a {
			copy((*l)[i:], (*l)[i+1:])
			(*l)[len(*l)-1] = nil
			*l = (*l)[:len(*l)-1]
			return true
		}
	}
	return false
}
