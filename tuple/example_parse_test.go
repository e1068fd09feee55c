package tuple_test

import (
	"errors"
	"fmt"

	"github.com/socktable/socktable/tuple"
)

// A TCP SYN from 192.0.2.1:40000 to this host, 198.51.100.2:80, with the
// MSS and timestamp options, as it arrives after the Ethernet header.
func ExampleParse() {
	packet := []byte{
		// IPv4: version 4, IHL 5, total length 56, DF, TTL 64, TCP,
		// header checksum (not checked).
		0x45, 0x00, 0x00, 0x38, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x4e, 0x89,
		192, 0, 2, 1, // source
		198, 51, 100, 2, // destination
		// TCP: ports 40000 -> 80, seq 1000, ack 0, data offset 9, SYN,
		// window 64240, checksum and urgent pointer (not checked).
		0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
		0x90, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x30, 0x39, 0x00, 0x00, 0x00, 0x00, // NOP NOP TS 12345 0
	}
	seg, err := tuple.Parse(packet)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(seg.Tuple)
	fmt.Println(seg.Proto, seg.Flags, "seq", seg.Seq, "win", seg.Window, "tsval", seg.TSval, "payload", seg.PayloadLen)

	// A packet cut short is refused with a sentinel error.
	_, err = tuple.Parse(packet[:40])
	fmt.Println(errors.Is(err, tuple.ErrTruncated))
	// Output:
	// local 198.51.100.2:80 remote 192.0.2.1:40000
	// TCP SYN seq 1000 win 64240 tsval 12345 payload 0
	// true
}

// A capture cut at a snap length of 54 bytes keeps the headers of a
// full-sized TCP data segment but not its payload: Parse refuses the
// buffer, ParseHeaders reads the headers and takes the payload length from
// the IP header.
func ExampleParseHeaders() {
	packet := []byte{
		// IPv4: total length 1500, DF, TTL 64, TCP.
		0x45, 0x00, 0x05, 0xdc, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
		192, 0, 2, 1, // source
		198, 51, 100, 2, // destination
		// TCP: ports 40000 -> 443, seq 1001, ack 5001, data offset 8, ACK,
		// window 502, then NOP NOP TS 12346 777.
		0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe9, 0x00, 0x00, 0x13, 0x89,
		0x80, 0x10, 0x01, 0xf6, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x30, 0x3a, 0x00, 0x00, 0x03, 0x09,
		// The capture stops 2 bytes into the payload.
		'G', 'E',
	}
	_, err := tuple.Parse(packet)
	fmt.Println(err)
	seg, err := tuple.ParseHeaders(packet)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(seg.Tuple)
	fmt.Println(seg.Flags, "payload", seg.PayloadLen, "headers only", seg.HeadersOnly)
	// Output:
	// socktable: truncated packet
	// local 198.51.100.2:443 remote 192.0.2.1:40000
	// ACK payload 1448 headers only true
}
