// Package table holds socktable's tables: Established, the four-tuple map
// every arriving segment is looked up in first (full connections and the
// SYN queue's request entries, told apart by a kind per entry); Ports, the
// bind table that decides port sharing as Linux does; and ListenerIndex,
// the listener index with Linux's scoring and SO_REUSEPORT groups, whose
// entries are Listeners; and UDPPorts, UDP's bind table and datagram
// lookup (Linux's udp_lib_get_port and __udp4_lib_lookup, with their own
// rules), whose connected sockets sit in an Established of their own.
//
// Ports and ListenerIndex form one registry: NewListenerIndex attaches the
// index to its Ports, and from then on a socket listens only through
// ListenerIndex.Listen, in one step for both, and stops only through its
// Listener's Close (a port manager and an endpoint table kept apart drift
// apart, as gVisor's did).
//
// All tables are keyed by tuple values, hashed with the stack's one keyed
// tuple.Hasher (each exposes it: Hasher), read without locks and written
// under fine-grained locks that writers to different buckets do not share.
// Their lookups take a hash the stack computed once per segment (the
// …Hashed forms). The lock order they follow with the other packages is
// written once, in the root package's documentation.
//
// LookupBatch and the rehash prefetch with one small assembly routine on
// amd64 and arm64; elsewhere, or with the purego build tag, they run
// without prefetching and give the same results.
package table

import "github.com/socktable/socktable/internal/errs"

// Sentinel errors of this package, shared with the rest of socktable (the
// same values as socktable.ErrExists and so on).
var (
	// ErrExists: Insert of a tuple that is already in the table.
	ErrExists = errs.ErrExists
	// ErrTableFull: Insert into an Established table holding
	// EstablishedOptions.MaxEntries entries.
	ErrTableFull = errs.ErrTableFull
	// ErrClosed: a write after Close.
	ErrClosed = errs.ErrClosed
	// ErrCapacity: a negative Capacity or MaxEntries.
	ErrCapacity = errs.ErrCapacity
	// ErrValueType: a value type the table cannot store atomically.
	ErrValueType = errs.ErrValueType
	// ErrInvalidAddr and ErrPort: an Insert of a tuple that is not a valid
	// connection key (see tuple.Tuple.Validate).
	ErrInvalidAddr = errs.ErrInvalidAddr
	ErrPort        = errs.ErrPort

	// ErrAddrInUse: Ports.Bind or Ports.Listen conflicting with a holder
	// of the port (EADDRINUSE).
	ErrAddrInUse = errs.ErrAddrInUse
	// ErrAddrNotAvail: Ports.Bind to an address not in
	// PortsOptions.LocalAddrs, or a Ports.Connect with no free four-tuple
	// (EADDRNOTAVAIL).
	ErrAddrNotAvail = errs.ErrAddrNotAvail
	// ErrInvalid: a request Linux refuses with EINVAL (see Ports.Bind),
	// or one that would split the listener registry (see Ports.Listen).
	ErrInvalid = errs.ErrInvalid
	// ErrNoPorts: Ports.Bind to port 0 found no free port in the range.
	ErrNoPorts = errs.ErrNoPorts
)
