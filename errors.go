package socktable

import "github.com/socktable/socktable/internal/errs"

// The library's sentinel errors, re-exported for users of the root
// package. Each is the same value as the one exported by the package that
// returns it (tuple.ErrPort == socktable.ErrPort), so errors.Is matches
// either name. See the table in the package documentation.
var (
	// ErrInvalidAddr: a zero or invalid address, an unspecified address in a
	// connection tuple, or mixed address families.
	ErrInvalidAddr = errs.ErrInvalidAddr
	// ErrZone: an IPv6 address with a zone used as a key.
	ErrZone = errs.ErrZone
	// ErrPort: port 0 where a port is required.
	ErrPort = errs.ErrPort
	// ErrTruncated: a packet shorter than its headers say.
	ErrTruncated = errs.ErrTruncated
	// ErrMalformed: inconsistent header fields.
	ErrMalformed = errs.ErrMalformed
	// ErrFragment: a non-first IP fragment.
	ErrFragment = errs.ErrFragment
	// ErrProtocol: a packet of a protocol socktable does not demultiplex.
	ErrProtocol = errs.ErrProtocol
	// ErrCapacity: a capacity or limit out of range.
	ErrCapacity = errs.ErrCapacity
	// ErrTimeWaitFull: a TIME_WAIT table at its MaxBuckets cap
	// (tcp_max_tw_buckets); close at once, with no TIME_WAIT.
	ErrTimeWaitFull = errs.ErrTimeWaitFull
	// ErrBacklog: a listener's accept backlog is full.
	ErrBacklog = errs.ErrBacklog
	// ErrClosed: use of a structure after its Close.
	ErrClosed = errs.ErrClosed
	// ErrExists: an insert of a key already present.
	ErrExists = errs.ErrExists
	// ErrTableFull: an insert into a table at its MaxEntries.
	ErrTableFull = errs.ErrTableFull
	// ErrQueueFull: a non-blocking enqueue on a full queue.
	ErrQueueFull = errs.ErrQueueFull
	// ErrWheelFull: a timer on a wheel shard holding its 2^24 timers.
	ErrWheelFull = errs.ErrWheelFull
	// ErrEmpty: a non-blocking accept with nothing queued.
	ErrEmpty = errs.ErrEmpty
	// ErrAddrInUse: a bind or listen conflicting with a holder of the port.
	ErrAddrInUse = errs.ErrAddrInUse
	// ErrAddrNotAvail: a non-local bind address, or no free four-tuple.
	ErrAddrNotAvail = errs.ErrAddrNotAvail
	// ErrInvalid: a request Linux refuses with EINVAL.
	ErrInvalid = errs.ErrInvalid
	// ErrNoPorts: no free port in the range.
	ErrNoPorts = errs.ErrNoPorts
	// ErrValueType: a value type a lock-free table cannot store atomically.
	ErrValueType = errs.ErrValueType
)
