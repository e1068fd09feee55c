// Package socktable is a library of lock-free concurrent socket-table data
// structures: the part of a TCP/IP stack that decides, for every arriving
// segment, which socket owns it.
//
// # What a socket table is
//
// A small stack finds the owner of a packet by scanning every socket: O(n),
// and under real load (tens of thousands of connections, TIME_WAIT and
// backlog entries) n is large. Linux instead keeps RCU-protected hash
// tables: an established table keyed by the four-tuple (which also holds
// TIME_WAIT and request sockets), a listener table searched by address and
// port with wildcard scoring and SO_REUSEPORT groups, and per-listener
// accept queues. socktable gives a Go stack the same parts, lock-free on
// the read side, with Linux's semantics.
//
// # Demultiplexing order
//
// For an arriving TCP segment a stack asks, in order (Linux's tcp_v4_rcv →
// __inet_lookup_skb):
//
//  1. the established table, by exact four-tuple: a full connection, or a
//     TIME_WAIT entry whose segment rules decide what happens
//     (RST, re-ACK, or a new SYN taking over the tuple);
//  2. the listener table, by (destination address, port) and then by
//     (wildcard, port): an exact-address listener beats a wildcard one,
//     then Linux's score orders the candidates, and a SO_REUSEPORT group
//     picks a member by flow hash;
//  3. after the handshake, the listener's accept queue, split per shard
//     with a global fallback (fastsocket's local and global queues).
//
// The tables are per protocol and per network namespace: a stack keeps one
// set for TCP and one for UDP in each namespace; the protocol is not part of
// the key.
//
// # Packages
//
//   - tuple: the four-tuple key (Addr, Endpoint, Tuple: pointer-free
//     values, IPv4 held v4-mapped), packet header parsing (Parse), and the
//     keyed Hasher one stack shares across all its tables.
//   - rcu: read-copy-update for Go: Pointer snapshots, a Domain of reader
//     critical sections with grace periods, and a Recycler for memory that
//     is reused rather than left to the garbage collector.
//   - table: Established, the four-tuple map (lock-free lookups, batch
//     lookups, online resize); Ports, the bind table (Linux's bind and
//     listen conflict rules, bind() and connect() port choice); Listeners,
//     the listener index (Linux's listener choice, SO_REUSEPORT groups).
//   - timewait: the hierarchical timer wheel and the TIME_WAIT table.
//   - accept: bounded MPMC queues and per-shard accept queues.
//   - fuzz and bench: fuzz targets and comparative benchmarks.
//
// # Concurrency vocabulary
//
// Every exported method states its guarantee with these words:
//
//   - Wait-free: finishes in a bounded number of its own steps whatever
//     other goroutines do.
//   - Lock-free: some goroutine always makes progress; a single call may
//     retry, but only because another call made progress (a writer changed
//     what it was reading).
//   - Blocking ("may block"): may wait for another goroutine (a mutex, a
//     grace period, an empty queue).
//   - Linearizable: each call appears to take effect at one instant between
//     its start and its return, so concurrent histories match some
//     sequential order. Where a method is weaker (iteration, a queue that
//     may report empty while an enqueue is in flight) its doc says exactly
//     how.
//   - Grace period: an interval in which every read-side critical section
//     that had begun before it has ended; memory may be reused only after
//     one (package rcu). Memory the garbage collector reclaims needs none.
//
// # Errors
//
// Each condition has one sentinel error across the library, defined once
// and re-exported where users meet it, so errors.Is works with any of the
// names. Lookups report absence with a bool, never an error.
//
//	Sentinel          Exported as                        Meaning
//	ErrInvalidAddr    socktable, tuple, table            zero/invalid address, wildcard in a connection, mixed families
//	ErrZone           socktable, tuple                   zoned IPv6 address in a key
//	ErrPort           socktable, tuple, table            port 0 where a port is required
//	ErrTruncated      socktable, tuple                   packet shorter than its headers
//	ErrMalformed      socktable, tuple                   inconsistent header fields, v4-mapped IPv6 header address
//	ErrFragment       socktable, tuple                   non-first IP fragment (no transport header)
//	ErrProtocol       socktable, tuple                   neither TCP nor UDP, nor an ICMP error about them
//	ErrCapacity       socktable, rcu, table, timewait,   capacity or limit out of range
//	                  accept
//	ErrClosed         socktable, table, timewait, accept use after Close
//	ErrExists         socktable, table, timewait         insert of a key already present (the duplicate-SYN race)
//	ErrFull           socktable, table, timewait, accept insert past a table's MaxEntries, a full queue or wheel shard
//	ErrValueType      socktable, table                   a value type that cannot be stored atomically
//	ErrAddrInUse      socktable, table                   bind or listen conflicts with a holder of the port (EADDRINUSE)
//	ErrAddrNotAvail   socktable, table                   non-local bind address, or no free four-tuple (EADDRNOTAVAIL)
//	ErrInvalid        socktable, table, accept           a request Linux refuses with EINVAL, a shard out of range
//	ErrNoPorts        socktable, table                   no free port in the range
//	ErrOverflow       socktable, timewait                TIME_WAIT table at MaxBuckets (tcp_max_tw_buckets)
//	ErrBacklog        socktable, accept                  accept backlog full (drop or reset per tcp_abort_on_overflow)
package socktable
