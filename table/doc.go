// Package table holds socktable's tables: Established, the four-tuple map
// every arriving segment is looked up in first; later the bind table and
// the listener index.
//
// All tables are keyed by tuple values, hashed with the stack's shared
// keyed tuple.Hasher, read lock-free and written under fine-grained locks
// that writers to different buckets do not share.
package table

import "github.com/socktable/socktable/internal/errs"

// Sentinel errors of this package, shared with the rest of socktable (the
// same values as socktable.ErrExists and so on).
var (
	// ErrExists: Insert of a tuple that is already in the table.
	ErrExists = errs.ErrExists
	// ErrFull: Insert past Options.MaxEntries.
	ErrFull = errs.ErrFull
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
)
