package corpus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/socktable/socktable/tuple"
)

// ErrFlags reports a Packet's Flags that name a flag tuple.Flags does not
// know.
var ErrFlags = errors.New("corpus: unknown TCP flag")

// Packet is one TCP segment of a case, either way: a SegmentCase's Setup,
// and a Probe's Segment and Replies, are made of them.
type Packet struct {
	// Dir is "peer" (the recorder sent it to the kernel) or "kernel".
	Dir string `json:"dir"`
	// Flags are the header flags, spelled as tuple.Flags's String does
	// ("SYN|ACK", "none").
	Flags  string `json:"flags"`
	Seq    uint32 `json:"seq"`
	Ack    uint32 `json:"ack"`
	Window uint16 `json:"window"` // the raw window field, not scaled
	Len    int    `json:"len"`    // payload bytes
	// MSS and WScale are the options of that name, when present.
	MSS    *uint16 `json:"mss,omitempty"`
	WScale *uint8  `json:"wscale,omitempty"`
	// TS is the timestamp option, [TSval, TSecr], when present.
	TS []uint32 `json:"ts,omitempty"`
	// ClockMS is CLOCK_MONOTONIC in milliseconds, the clock the kernel's
	// TCP timestamps count (tcp_clock_ms): for a peer packet the time it
	// was written, twice; for a kernel packet [lo, hi], the time the packet
	// that made the kernel send it was written (or close(2) called) and the
	// time it was read, so the kernel's clock read lies in between.
	ClockMS [2]int64 `json:"clock_ms"`
}

// FlagBits parses Flags; an unknown name gives ErrFlags.
func (p *Packet) FlagBits() (tuple.Flags, error) {
	if p.Flags == "none" {
		return 0, nil
	}
	var f tuple.Flags
	for _, n := range strings.Split(p.Flags, "|") {
		bit := tuple.Flags(1)
		for ; bit != 0 && bit.String() != n; bit <<= 1 {
		}
		if bit == 0 {
			return 0, fmt.Errorf("%w: %q in %q", ErrFlags, n, p.Flags)
		}
		f |= bit
	}
	return f, nil
}

// Probe is one segment the peer sends once the entry exists, and what
// came of it.
type Probe struct {
	// Name says what the segment is, relative to the connection:
	// "ack@rcv_nxt", "syn@rcv_nxt+100000/ts+1000" and so on.
	Name string `json:"name"`
	// Role is "probe" (the segment the case is about), "cleanup" (an RST
	// the peer sends to drop the request socket a SYN-ACK reply made,
	// so that the kernel does not retransmit it) or "followup" (the
	// peer's FIN, sent last to tell whether the entry is still there: a
	// TIME_WAIT or FIN_WAIT2 entry answers it with an ACK; without one,
	// the listener or the no-socket path answers with an RST).
	Role    string `json:"role"`
	Segment Packet `json:"segment"`
	// Replies are the packets the kernel sent on the case's four-tuple
	// within the recorder's wait; empty means it sent none.
	Replies []Packet `json:"replies"`
	// Entry is what /proc/net/tcp holds for the four-tuple afterwards:
	// "TIME_WAIT" or "FIN_WAIT2" for a timewait mini socket (timer 3)
	// with that tw_substate, "socket STATE" for a full or request socket
	// (STATE as in include/net/tcp_states.h, "socket SYN_RECV" for a
	// request), "none" when nothing matches.
	Entry string `json:"entry"`
}

// SegmentCase is one line of timewait-segments.jsonl.
type SegmentCase struct {
	ID string `json:"id"`
	// Substate is the entry the close leaves, checked in /proc/net/tcp
	// before the first probe: "TIME_WAIT" or "FIN_WAIT2".
	Substate string `json:"substate"`
	// Close is how the peer answers the kernel's FIN: "fin-ack" (one
	// FIN|ACK acknowledging it: the full socket enters TIME_WAIT through
	// tcp_fin), "ack-fin" (an ACK, which makes a FIN_WAIT2 mini socket,
	// then a FIN|ACK, which turns it into TIME_WAIT), or "ack" (the ACK
	// only: the FIN_WAIT2 mini socket stays).
	Close string `json:"close"`
	// Sysctls are the namespace's values of net.ipv4.tcp_rfc1337,
	// tcp_invalid_ratelimit (ms), tcp_fin_timeout (s), tcp_timestamps and
	// tcp_window_scaling while the case ran.
	Sysctls map[string]int `json:"sysctls"`
	// Listener says whether the listener the connection came from was
	// still open when the probes arrived (a SYN that may reopen the
	// connection needs one).
	Listener bool `json:"listener"`
	// Local is the kernel's end, Remote the peer's, as addr:port.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// Setup is every packet of the handshake and the close, in order: the
	// peer's SYN, the kernel's SYN-ACK, the peer's ACK, the kernel's FIN
	// (after close(2) of the accepted socket) and the peer's answer to it
	// as Close says, with the kernel's ACK to the peer's FIN.
	Setup  []Packet `json:"setup"`
	Probes []Probe  `json:"probes"`
	Kernel string   `json:"kernel"`
}

// ReadSegmentCases reads a timewait-segments.jsonl file. A line that is
// not a SegmentCase gives an error wrapping ErrMalformed.
func ReadSegmentCases(path string) ([]SegmentCase, error) {
	return readLines[SegmentCase](path, nil)
}
