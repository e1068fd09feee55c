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
	// Closed reports use of a structure after its Close.
	Closed = errors.New("socktable: use of closed structure")

	// InvalidAddr reports a zero or invalid address, an unspecified address
	// where a specific one is required, or mixed address families.
	InvalidAddr = errors.New("socktable: invalid address")
	// Zone reports an IPv6 address carrying a zone: scope belongs in a
	// device index, not in the key.
	Zone = errors.New("socktable: zoned address not allowed in a key")
	// Port reports port 0 where a real port is required.
	Port = errors.New("socktable: port 0 not allowed")

	// Truncated reports a packet shorter than its headers say it is.
	Truncated = errors.New("socktable: truncated packet")
	// Malformed reports a header whose fields contradict each other or the
	// protocol (bad version, bad length, bad option, v4-mapped IPv6 address).
	Malformed = errors.New("socktable: malformed packet")
	// Fragment reports a non-first IP fragment: it carries no transport
	// header, so it has no four-tuple until reassembled.
	Fragment = errors.New("socktable: non-first fragment")
	// Protocol reports a packet of a protocol socktable does not demultiplex
	// (neither TCP nor UDP, nor an ICMP error about one).
	Protocol = errors.New("socktable: protocol not handled")

	// Capacity reports a capacity or size argument out of range.
	Capacity = errors.New("socktable: capacity out of range")
)
