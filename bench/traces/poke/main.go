//go:build linux

// Command poke sends one IPv4 TCP segment from a raw socket, for
// capture.sh: segments a real client or server rarely sends (an ACK to a
// TIME_WAIT socket out of its window, an RST to one, an ACK to a listener
// with no request behind it), so that the capture holds the kernel's
// answers to them. It needs root (CAP_NET_RAW) and is meant for a network
// namespace's loopback.
//
//	poke -from 127.0.0.1:8080 -to 127.0.0.1:40001 -flags A -seq 12345 -ack 678
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
)

func main() {
	from := flag.String("from", "", "source address:port")
	to := flag.String("to", "", "destination address:port")
	flags := flag.String("flags", "A", "TCP flags: any of S, A, R, F, P")
	seq := flag.Uint("seq", 1, "sequence number")
	ack := flag.Uint("ack", 1, "acknowledgment number")
	flag.Parse()
	src, err1 := netip.ParseAddrPort(*from)
	dst, err2 := netip.ParseAddrPort(*to)
	if err1 != nil || err2 != nil || !src.Addr().Is4() || !dst.Addr().Is4() {
		fmt.Fprintln(os.Stderr, "poke: -from and -to must be IPv4 address:port")
		os.Exit(2)
	}
	var fl byte
	for _, c := range strings.ToUpper(*flags) {
		fl |= map[rune]byte{'F': 0x01, 'S': 0x02, 'R': 0x04, 'P': 0x08, 'A': 0x10}[c]
	}
	pkt := segment(src, dst, fl, uint32(*seq), uint32(*ack))
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		fmt.Fprintln(os.Stderr, "poke:", err)
		os.Exit(1)
	}
	defer syscall.Close(fd)
	if err := syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: dst.Addr().As4()}); err != nil {
		fmt.Fprintln(os.Stderr, "poke:", err)
		os.Exit(1)
	}
}

// segment builds the IPv4 packet: a 20-byte header (the kernel fills in
// its checksum) and a 20-byte TCP header with its checksum.
func segment(src, dst netip.AddrPort, flags byte, seq, ack uint32) []byte {
	p := make([]byte, 40)
	p[0], p[8], p[9] = 0x45, 64, syscall.IPPROTO_TCP
	binary.BigEndian.PutUint16(p[2:], 40)
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	t := p[20:]
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12], t[13] = 5<<4, flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	var sum uint32
	for i := 12; i < 20; i += 2 { // the pseudo-header's addresses
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	sum += syscall.IPPROTO_TCP + 20
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(t[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(t[16:], ^uint16(sum))
	return p
}
