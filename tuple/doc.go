// Package tuple defines the key every socktable table uses: the four-tuple
// of a connection (local address and port, remote address and port), and
// the tools around it: conversion from net/netip, packet header parsing
// (Parse, and ParseHeaders for buffers cut after the headers) and keyed
// hashing (Hasher).
//
// # Values, not pointers
//
// Addr, Endpoint and Tuple are small comparable values with no pointers
// inside (Tuple is 48 bytes). They can be used as map keys, compared with
// ==, copied freely, and stored by the million in tables the garbage
// collector never has to scan.
//
// # One key for IPv4 and IPv6
//
// An Addr always holds 16 bytes; an IPv4 address is held in its v4-mapped
// form (::ffff:a.b.c.d), so a dual-stack IPv6 socket connected to an IPv4
// peer and an arriving IPv4 packet produce the same Tuple and the same hash
// (Linux's sk_ehashfn reaches the same result by hashing v4-mapped sockets
// with the IPv4 function). Converting back to netip returns IPv4 addresses
// unmapped (Addr.NetIP).
//
// # Errors
//
// Bad input is reported with sentinel errors that work with errors.Is:
// ErrInvalidAddr, ErrZone, ErrPort for keys; ErrTruncated, ErrMalformed,
// ErrFragment and ErrProtocol for packets. They are the same values as the
// ones re-exported by the other socktable packages.
package tuple

import "github.com/socktable/socktable/internal/errs"

// Sentinel errors returned by this package. They are shared with the rest
// of socktable: errors.Is(err, tuple.ErrPort) holds for an ErrPort returned
// by any package.
var (
	// ErrInvalidAddr: a zero or invalid netip.Addr, an unspecified address in
	// a connection tuple, or local and remote of different families.
	ErrInvalidAddr = errs.ErrInvalidAddr
	// ErrZone: an IPv6 address with a zone (fe80::1%eth0). The scope belongs
	// in a device index beside the key, not in the key.
	ErrZone = errs.ErrZone
	// ErrPort: port 0 in a connection tuple or in a packet header.
	ErrPort = errs.ErrPort
	// ErrTruncated: the packet ends before its headers do.
	ErrTruncated = errs.ErrTruncated
	// ErrMalformed: inconsistent header fields (version, lengths),
	// or an IPv6 header carrying a v4-mapped address, which would alias an
	// IPv4 flow.
	ErrMalformed = errs.ErrMalformed
	// ErrFragment: a non-first IPv4 or IPv6 fragment, which has no
	// transport header until reassembly.
	ErrFragment = errs.ErrFragment
	// ErrProtocol: a packet that is neither TCP nor UDP, nor an ICMP or
	// ICMPv6 error quoting a TCP or UDP packet, nor an ICMP or ICMPv6 echo
	// request or reply (router and neighbour discovery, for instance).
	ErrProtocol = errs.ErrProtocol
)
