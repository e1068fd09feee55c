package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/socktable/socktable/tuple"
)

// packet is one captured TCP segment, parsed as the host that received it
// sees it (Local is its destination), at its time since the capture's
// first packet.
type packet struct {
	at  time.Duration
	seg tuple.Segment
	// index is the packet's number in the capture, from 1 as Wireshark
	// counts, for the report's list of disagreements.
	index int
}

// capture is what readCapture keeps of a file: its TCP segments in order,
// and the packets it skipped, by reason.
type capture struct {
	packets []packet
	frames  int
	skipped map[string]int
}

// Reasons a captured frame is not replayed.
const (
	skipLinkType  = "link-type" // a link layer the reader does not strip
	skipNotIP     = "not-ip"    // an Ethernet or SLL frame of another protocol (ARP, …)
	skipNotTCP    = "not-tcp"   // UDP, ICMP echo, an ICMP error about UDP
	skipTruncated = "truncated" // cut before the end of its TCP header
	skipMalformed = "malformed" // headers no stack would accept
	skipFragment  = "fragment"  // a later IP fragment (no ports)
	skipNoOracle  = "no-oracle" // no kernel reply in the trace says what the answer was
	skipUnknown   = "unknown-flow"
)

// readCapture reads a pcap or pcapng file, gzipped or not (told by the
// first bytes, not the name), and parses each frame's TCP segment with
// tuple.ParseHeaders: a capture cut at a short snap length keeps its
// headers, which is all the demux reads.
func readCapture(path string) (*capture, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeCapture(f, path)
}

// decodeCapture is readCapture of an open file, named path in errors.
func decodeCapture(in io.Reader, path string) (*capture, error) {
	r := bufio.NewReaderSize(in, 1<<16)
	if magic, _ := r.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = bufio.NewReaderSize(zr, 1<<16)
	}
	src, err := openPackets(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &capture{skipped: map[string]int{}}
	var first time.Time
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: frame %d: %w", path, c.frames+1, err)
		}
		c.frames++
		if c.frames == 1 {
			first = ci.Timestamp
		}
		ip, reason := stripLink(src.LinkType(), data)
		if reason != "" {
			c.skipped[reason]++
			continue
		}
		seg, err := tuple.ParseHeaders(ip)
		switch {
		case errors.Is(err, tuple.ErrTruncated):
			c.skipped[skipTruncated]++
			continue
		case errors.Is(err, tuple.ErrFragment):
			c.skipped[skipFragment]++
			continue
		case errors.Is(err, tuple.ErrProtocol):
			c.skipped[skipNotTCP]++
			continue
		case err != nil:
			c.skipped[skipMalformed]++
			continue
		case seg.Proto != tuple.ProtoTCP || seg.ICMP.Kind != tuple.ICMPNone:
			// ICMP errors about TCP flows are real traffic, but the trace's
			// kernel answers them with nothing to compare: skipped.
			c.skipped[skipNotTCP]++
			continue
		}
		c.packets = append(c.packets, packet{at: ci.Timestamp.Sub(first), seg: seg, index: c.frames})
	}
	return c, nil
}

// packetSource is what pcapgo's two readers share.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// openPackets picks the pcap or the pcapng reader by the file's magic.
func openPackets(r *bufio.Reader) (packetSource, error) {
	magic, err := r.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture: %w", err)
	}
	if binary.BigEndian.Uint32(magic) == 0x0a0d0d0a { // a pcapng section header block
		ng, err := pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, err
		}
		return ng, nil
	}
	p, err := pcapgo.NewReader(r)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// stripLink returns the IP packet a frame carries, or why there is none.
func stripLink(lt layers.LinkType, frame []byte) ([]byte, string) {
	switch lt {
	case layers.LinkTypeEthernet:
		if len(frame) < 14 {
			return nil, skipTruncated
		}
		et, p := binary.BigEndian.Uint16(frame[12:]), frame[14:]
		for et == 0x8100 || et == 0x88a8 { // VLAN tags
			if len(p) < 4 {
				return nil, skipTruncated
			}
			et, p = binary.BigEndian.Uint16(p[2:]), p[4:]
		}
		return ipOf(et, p)
	case layers.LinkTypeLinuxSLL: // tcpdump -i any, cooked v1: protocol at 14
		if len(frame) < 16 {
			return nil, skipTruncated
		}
		return ipOf(binary.BigEndian.Uint16(frame[14:]), frame[16:])
	case layers.LinkTypeLinuxSLL2: // cooked v2: protocol at 0, 20 bytes
		if len(frame) < 20 {
			return nil, skipTruncated
		}
		return ipOf(binary.BigEndian.Uint16(frame), frame[20:])
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12: // 12: DLT_RAW on OpenBSD
		return frame, ""
	case layers.LinkTypeNull, layers.LinkTypeLoop: // BSD loopback: a 4-byte family
		if len(frame) < 4 {
			return nil, skipTruncated
		}
		return frame[4:], ""
	}
	return nil, skipLinkType
}

func ipOf(ethertype uint16, p []byte) ([]byte, string) {
	if ethertype != 0x0800 && ethertype != 0x86dd {
		return nil, skipNotIP
	}
	return p, ""
}
