// Package errs defines every sentinel error of socktable exactly once.
//
// Users never import this package: each public package re-exports the
// sentinels its callers meet (tuple.ErrPort, rcu.ErrClosed, ...), and the
// re-exports are the same values, so errors.Is works across packages: an
// error from any package can be compared with the sentinel exported by any
// other. The root package's doc.go lists them all in one table.
package errs

import "errors"

// The sentinels, one per condition. Messages are prefixed "socktable:" so a
// logged error says where it came from.
var (
	// ErrClosed reports use of a structure after its Close.
	ErrClosed = errors.New("socktable: use of closed structure")

	// ErrInvalidAddr reports a zero or invalid address, an unspecified address
	// where a specific one is required, or mixed address families.
	ErrInvalidAddr = errors.New("socktable: invalid address")
	// ErrZone reports an IPv6 address carrying a zone: scope belongs in a
	// device index, not in the key.
	ErrZone = errors.New("socktable: zoned address not allowed in a key")
	// ErrPort reports port 0 where a real port is required.
	ErrPort = errors.New("socktable: port 0 not allowed")

	// ErrTruncated reports a packet shorter than its headers say it is.
	ErrTruncated = errors.New("socktable: truncated packet")
	// ErrMalformed reports a header whose fields contradict each other or the
	// protocol (bad version, bad length, bad option, v4-mapped IPv6 address).
	ErrMalformed = errors.New("socktable: malformed packet")
	// ErrFragment reports a non-first IP fragment: it carries no transport
	// header, so it has no four-tuple until reassembled.
	ErrFragment = errors.New("socktable: non-first fragment")
	// ErrProtocol reports a packet of a protocol socktable does not demultiplex
	// (neither TCP nor UDP, nor an ICMP error about one, nor an ICMP echo).
	ErrProtocol = errors.New("socktable: protocol not handled")

	// ErrExists reports an insert of a key that is already present.
	ErrExists = errors.New("socktable: key exists")
	// ErrTableFull reports an insert into a table holding its configured
	// MaxEntries (table.Established).
	ErrTableFull = errors.New("socktable: table at its entry limit")
	// ErrQueueFull reports a non-blocking enqueue on a queue holding its
	// capacity (accept.Queue).
	ErrQueueFull = errors.New("socktable: queue full")
	// ErrWheelFull reports a timer scheduled on a wheel shard that holds
	// its maximum of 2^24 timers (timewait.Wheel).
	ErrWheelFull = errors.New("socktable: timer wheel shard full")
	// ErrTimeWaitFull reports a TIME_WAIT table at its MaxBuckets cap
	// (Linux's tcp_max_tw_buckets): the caller closes the socket at once,
	// with no TIME_WAIT, as Linux does (TCPTimeWaitOverflow).
	ErrTimeWaitFull = errors.New("socktable: TIME_WAIT bucket limit reached")
	// ErrValueType reports a value type a lock-free table cannot store
	// atomically (see table.Established).
	ErrValueType = errors.New("socktable: value type must be a pointer or a pointer-free type of at most 8 bytes")

	// ErrAddrInUse reports a bind or listen that conflicts with a socket
	// already holding the address and port (EADDRINUSE).
	ErrAddrInUse = errors.New("socktable: address already in use")
	// ErrAddrNotAvail reports a bind to an address that is not local, or a
	// connect with no free four-tuple (EADDRNOTAVAIL).
	ErrAddrNotAvail = errors.New("socktable: address not available")
	// ErrInvalid reports a request Linux refuses with EINVAL (a v4-mapped
	// address on a v6only socket, an address of the wrong family, listen on
	// a connected socket) and other calls the library cannot carry out as
	// asked: a binding or shard of another table, an entry kind out of
	// range, tables that do not share one Hasher.
	ErrInvalid = errors.New("socktable: invalid argument")
	// ErrNoPorts reports an exhausted port range: no port could be picked.
	ErrNoPorts = errors.New("socktable: no free port in range")

	// ErrCapacity reports a capacity or size argument out of range.
	ErrCapacity = errors.New("socktable: capacity out of range")

	// ErrEmpty reports a non-blocking accept with no connection queued (a
	// non-blocking accept()'s EAGAIN): a result to poll again on, not a
	// failure (accept.Acceptor.TryAccept).
	ErrEmpty = errors.New("socktable: no connection queued")
	// ErrBacklog reports a listener whose accept backlog is full: the stack
	// drops the final ACK or resets, per tcp_abort_on_overflow.
	ErrBacklog = errors.New("socktable: accept backlog full")
)
