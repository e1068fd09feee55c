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
//     request entry of the SYN queue (table.Established keeps both, told
//     apart by a kind stored in the slot, so a hit stays one memory miss);
//  2. the TIME_WAIT table, whose segment rules decide what happens (a
//     re-ACK, an RST, or a new SYN that a listener takes over in one step:
//     timewait.Table.Replace);
//  3. the listener index, by (destination address, port) and then by
//     (wildcard, port): an exact-address listener beats a wildcard one,
//     then Linux's score orders the candidates, and a SO_REUSEPORT group
//     picks a member by flow hash;
//  4. after the handshake, the listener's accept queue, split per shard
//     with a global fallback (fastsocket's local and global queues).
//
// The tables are per protocol and per network namespace (or VRF): a stack
// keeps one set for TCP and one for UDP in each; neither the protocol nor
// the device is part of a four-tuple key (the listener index, which
// matches SO_BINDTODEVICE, takes the receiving device as an argument).
//
// # Composing the parts
//
// A stack composes the packages with three things shared:
//
//   - One tuple.Hasher, its secret from crypto/rand, given to every table.
//     The stack hashes each segment's flow once and passes the hash to the
//     …Hashed calls of the established table, the TIME_WAIT table and the
//     listener index (which also draws the SO_REUSEPORT member from it),
//     and to accept.Sharded.Steer, whose choice (tuple.Steer) is
//     independent of the member's (tuple.Shard). Every table exposes its
//     Hasher; constructors that take tables together (NewFlows,
//     table.NewListenerIndex) refuse tables with different ones.
//   - One clock, a timewait.Clock, given to every part that needs time.
//   - One registry of ports: table.Ports holds every socket's port from
//     bind() until it and its TIME_WAIT are gone. The listener index is
//     attached to it; a TIME_WAIT entry owns its connection's Binding
//     (timewait.Table[*table.Binding]), and whoever removes the entry —
//     its expiry (OnExpire), a segment, Kill, a takeover — receives the
//     Binding and releases it, exactly once. Flows is connect()'s question
//     to the established and TIME_WAIT tables, through which Ports takes a
//     TIME_WAIT tuple over (tcp_tw_reuse) in the same call that picks the
//     port.
//
// # The Demux
//
// Demux is that composition, done once: a stack builds it from one Options
// (one Hasher, one clock, each part's limits, Linux's sysctls) and calls
// Deliver for every arriving segment and the lifecycle calls (Listen,
// Establish, Connect, TimeWait, Abort, Listener.Close, Shutdown) at every
// socket transition. Deliver follows the order above, hashing each flow
// once, keeps the SYN queue as Linux does (request entries in the
// established table, SYN-ACK timers, SYN cookies when it is full), and
// answers for the stack where the tables are the whole answer (SYN-ACKs,
// TIME_WAIT's ACKs and RSTs, the RST for a segment no socket owns). Its
// Counters carry Linux's MIB names; its dumps (Listeners, Connections,
// Requests, TimeWaits, Bindings) are what ss shows. The parts stay
// reachable for what it does not wrap (Ports, ListenerIndex,
// TimeWaitTable).
//
// UDPDemux is the UDP one, over table.UDPPorts: Bind of the stack's
// socket, the binding's Connect, Disconnect and Release, and Deliver for every
// datagram, in Linux's UDP order (a connected socket for its peer, then
// the bound sockets of the destination address by compute_score, then
// the wildcard's, a SO_REUSEPORT group's member by flow hash; no socket:
// the ICMP port unreachable to send), with the Udp MIB counters.
//
// # Lock order
//
// The library's locks are taken in this order, never the reverse:
//
//  0. a Demux close stripe (TimeWait, Abort and the ends of connections
//     Listener.Close forgets: one per flow-hash stripe, taken with no
//     other lock held, so that two ends of one connection serialize), and
//     a Demux request entry's lock (Deliver on a request, Establish, the
//     request timers, Listener.Close), which may be held while any lock
//     below is taken: a SYN taking a TIME_WAIT tuple over inserts its
//     request in the TIME_WAIT table's Replace, and Establish takes a
//     port stripe (Ports.Inherit) and a table group;
//  1. the listener index's mutex (table.ListenerIndex: Listen, Close);
//  2. the TIME_WAIT table's expiry mutex (held while OnExpire runs);
//  3. a port stripe of table.Ports (every Ports method; Connect and
//     ConnectAny call the FlowChecker with it held);
//  4. what a FlowChecker takes: the established table's group locks, a
//     TIME_WAIT shard's lock.
//
// Nothing that holds a TIME_WAIT shard's lock takes a port stripe: the
// TIME_WAIT table collects expired entries under the shard's lock and
// hands their owners to OnExpire after dropping it, and a takeover hands
// the owner back to Ports, which releases it under the stripe it already
// holds. A TIME_WAIT shard's lock may be held while the established
// table's group locks are taken (Replace and Claim run the caller's
// insert under it: the Demux's connect inserts its connection that way,
// under the port stripe and the shard's lock, so the tuple check and the
// insert are one step). Helpers that run with a lock held are named …Locked.
//
// # Packages
//
//   - tuple: the four-tuple key (Addr, Endpoint, Tuple: pointer-free
//     values, IPv4 held v4-mapped), packet header parsing (Parse,
//     ParseHeaders; TCP, UDP, ICMP errors and echo), and the keyed Hasher
//     one stack shares across all its tables.
//   - rcu: read-copy-update for Go: Pointer snapshots, SeqCount (the
//     sequence count the tables' read sides stand on), a Domain of reader
//     critical sections with grace periods, and a Recycler for memory that
//     is reused rather than left to the garbage collector.
//   - table: Established, the four-tuple map (lock-free and batch lookups,
//     online resize, a kind per entry); Ports, the bind table (Linux's bind
//     and listen conflict rules, bind() and connect() port choice);
//     ListenerIndex, the listener index (Linux's listener choice,
//     SO_REUSEPORT groups); UDPPorts, UDP's bind table and lookup.
//   - timewait: the hierarchical timer wheel (Wheel), the clocks, and the
//     TIME_WAIT table (Table).
//   - accept: bounded MPMC queues (Queue) and per-shard accept queues
//     (Sharded, Acceptor).
//   - this package: Demux, the TCP demultiplexer core composed of the
//     parts; UDPDemux, the UDP one; the shared sentinel errors; and Flows,
//     connect()'s FlowChecker over the established and TIME_WAIT tables.
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
//   - Retries and yields (readers under an rcu.SeqCount): takes no lock
//     and writes no shared memory, but a writer preempted in the middle of
//     a change holds it back until the writer runs again: not lock-free in
//     the strict sense.
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
// Every structure has a Close: after it, calls return ErrClosed (lookups
// report a miss), and a second Close returns ErrClosed. Queued items come
// back through a documented call (accept's Drain; a TIME_WAIT table's
// owners through OnExpire), never through Close's result. A non-blocking
// call is named Try…. Iterators are iter.Seq2 over a table's key and
// value (All): none sees a consistent snapshot, none yields an item
// twice, and yield may call back into the table.
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
//	ErrProtocol       socktable, tuple                   neither TCP nor UDP, an ICMP error about them, nor an echo
//	ErrCapacity       socktable, rcu, table, timewait,   capacity or limit out of range
//	                  accept
//	ErrClosed         socktable, table, timewait, accept use after Close, a second Close
//	ErrExists         socktable, table, timewait         insert of a key already present (the duplicate-SYN race)
//	ErrTableFull      socktable, table                   insert into an established table at its MaxEntries
//	ErrQueueFull      socktable, accept                  non-blocking enqueue on a full Queue
//	ErrWheelFull      socktable, timewait                timer on a wheel shard holding 2^24 timers
//	ErrTimeWaitFull   socktable, timewait                TIME_WAIT table at MaxBuckets (tcp_max_tw_buckets)
//	ErrBacklog        socktable, accept                  accept backlog full (drop or reset per tcp_abort_on_overflow)
//	ErrEmpty          socktable, accept                  non-blocking accept with nothing queued (EAGAIN)
//	ErrValueType      socktable, table                   a value type that cannot be stored atomically
//	ErrAddrInUse      socktable, table                   bind or listen conflicts with a holder of the port (EADDRINUSE)
//	ErrAddrNotAvail   socktable, table                   non-local bind address, or no free four-tuple (EADDRNOTAVAIL)
//	ErrInvalid        socktable, table, accept           a request Linux refuses with EINVAL; another table's binding or
//	                                                     shard; an entry kind out of range; tables with different Hashers
//	ErrNoPorts        socktable, table                   no free port in the range for bind(0)
package socktable
