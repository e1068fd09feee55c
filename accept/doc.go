// Package accept holds the accept queues of a stack: the FIFOs into which
// the receive path puts the connections whose handshake completed, and
// from which the application's accept() takes them.
//
// Queue is a bounded multi-producer multi-consumer ring after Dmitry
// Vyukov's bounded MPMC queue: each cell carries a sequence number that
// says whose turn it is, producers and consumers claim positions with one
// CAS on their own counter, and neither side takes a lock to move an item.
// TryEnqueue and TryDequeue never wait for room, an item or another call,
// and never allocate (they take a lock only to wake a goroutine parked on
// the other side); the receive
// path, which must not wait, uses TryEnqueue and treats ErrQueueFull as
// Linux treats a full backlog (drop the final ACK or reset, per
// tcp_abort_on_overflow). Dequeue is the blocking accept(): an empty
// consumer polls a few times, then parks until an item arrives, its
// context is done, or the queue is closed. Enqueue is its mirror for
// producers that may wait.
//
// Every type closes the same way. Close stops the structure: enqueues and
// accepts return ErrClosed from then on (TryDequeue reports false), even
// with items still queued, and every parked goroutine is woken; a second
// Close returns ErrClosed. Drain then hands back what is left, so that the
// caller can migrate or reset each connection (inet_csk_listen_stop): no
// connection whose enqueue returned nil is ever lost, and each is
// returned once, by an accept (a dequeue) or by Drain. Non-blocking calls
// are named Try…: they never wait for an item, for room, or for another
// call to finish (some take a short lock to wake a sleeper; their docs
// say which).
//
// Sharded is one listener's accept side split fastsocket-style (Lin et
// al., ASPLOS'16): a local Queue per shard (a core, or a NIC receive
// queue), which the receive path on that shard fills when an acceptor is
// bound to it, and a global Queue for the rest. The backlog is the
// listener's as a whole, with Linux's semantics (Backlog+1 connections,
// clamped by somaxconn; ErrBacklog beyond), kept exact without a counter
// every core writes: as credits each shard draws from a pool a batch at a
// time and its acceptors give back. A bound Acceptor takes from
// its local queue, then the global one (fastsocket looks at the global one
// first; local first keeps a connection on the core that completed its
// handshake); an unbound one takes from the global queue, then any local
// one. Nothing is stranded or lost: when a shard's last acceptor leaves,
// its connections move to the global queue and a sleeping acceptor is
// woken; an accept that races with Close puts back what it took; after
// Close, Drain hands back what is queued; MigrateEach passes each
// connection to the member of a reuseport group that the caller picks for
// it, by its own hash as Linux's reuseport_migrate_sock does (Migrate: to
// one member), and wakes that
// member's acceptors (Linux's tcp_migrate_req, whose missing wake-up was a
// kernel bug). Steer and SteerRSS pick a flow's shard, from its keyed hash
// (independently of the reuseport member the same hash picks) or from the
// NIC's Toeplitz hash (RSSHash), so that a handshake's packets stay on one
// shard; Depth and ShardDepth report, without a lock, how many connections
// the listener and one shard's queue hold, for load-aware choices.
//
// # Consistency
//
// The successful operations of a Queue are linearizable: an item is
// dequeued at most once, in the order in which the enqueues claimed their
// positions, and an enqueue that returned nil "synchronizes before" the
// dequeue (or Drain) that returns its item. The failures are weaker, as in
// every Vyukov ring: TryDequeue may report empty while an enqueue that
// claimed the head position has not yet published its item (items behind
// it may already be published), and TryEnqueue may report ErrQueueFull while a
// dequeue that claimed the oldest cell has not yet released it. Both
// windows last a few instructions unless the goroutine in them is
// preempted. Dequeue and Enqueue do not park across such a window: they
// wait for the in-flight call to finish instead. Close is not one atomic
// step: it closes the enqueue side, then the dequeue side, so a dequeue
// overlapping it may take an item after an enqueue overlapping it failed.
// Sharded's consistency is on its type.
package accept

import (
	"github.com/socktable/socktable/internal/errs"
)

// Sentinel errors of this package (the same values as socktable's, so
// errors.Is matches either name).
var (
	// ErrClosed: an enqueue, dequeue or accept after Close, or a second
	// Close.
	ErrClosed = errs.ErrClosed
	// ErrCapacity: a capacity out of range (see NewQueue).
	ErrCapacity = errs.ErrCapacity
	// ErrQueueFull: TryEnqueue on a full Queue.
	ErrQueueFull = errs.ErrQueueFull
	// ErrBacklog: a listener's accept backlog is full (the sharded accept
	// queues of part 2 report it).
	ErrBacklog = errs.ErrBacklog
)

// ErrEmpty is Acceptor.TryAccept's answer when no connection is queued
// for it on an open listener (a non-blocking accept()'s EAGAIN): not a
// failure, but a result to poll again on, or to block in Accept instead.
var ErrEmpty = errs.ErrEmpty
