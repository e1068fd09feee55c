package socktable

import (
	"sync/atomic"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// UDPDemux is a UDP demultiplexer core: the table a stack asks, for every
// arriving datagram, which socket receives it, by Linux's UDP rules (a
// socket of its own per protocol, as Linux keeps per-protocol tables).
// C is the stack's socket type; the UDPDemux keeps *C handles.
//
// It composes one table.UDPPorts (bind rules and the lookup, agreeing
// with the kernel corpora in testdata/kernel) with the counters: Bind
// binds a socket, the returned binding's Connect, Disconnect (connect(2)
// with AF_UNSPEC) and Release change it, and Deliver finds the receiver: a connected socket for its
// peer, the best-scoring bound socket of the destination address, then
// of the wildcard, a reuseport group's member by flow hash; no socket
// means the ICMP port unreachable to send. ICMP errors reach the socket
// that sent the datagram they quote.
//
// All methods are safe for concurrent use. Deliver is lock-free and
// allocates nothing; binds, connects and releases take the table's one
// mutex. There is no TIME_WAIT and no accept queue in UDP.
type UDPDemux[C any] struct {
	ports  *table.UDPPorts[*C]
	stats  stripedCounters
	closed atomic.Bool
}

// UDPOptions configures a UDPDemux: the stack's one Hasher (nil: a new
// one keyed from crypto/rand), the host's addresses and the ephemeral
// range (table.UDPPortsOptions).
type UDPOptions struct {
	Hasher                      *tuple.Hasher
	LocalAddrs                  []tuple.Addr
	EphemeralLow, EphemeralHigh uint16
}

// NewUDPDemux returns an empty UDP demux. It returns ErrInvalid for a bad
// ephemeral range.
func NewUDPDemux[C any](opts UDPOptions) (*UDPDemux[C], error) {
	p, err := table.NewUDPPorts[*C](table.UDPPortsOptions{Hasher: opts.Hasher, LocalAddrs: opts.LocalAddrs,
		EphemeralLow: opts.EphemeralLow, EphemeralHigh: opts.EphemeralHigh})
	if err != nil {
		return nil, err
	}
	return &UDPDemux[C]{ports: p, stats: newStripedCounters()}, nil
}

// Bind binds socket c (bind(2); port 0 picks one). It returns ErrInvalid
// for a nil c, and the errors of table.UDPPorts.Bind (ErrAddrInUse,
// ErrNoPorts, ErrInvalid, ErrAddrNotAvail, ErrClosed).
func (d *UDPDemux[C]) Bind(req table.BindRequest, c *C) (*table.UDPBinding[*C], error) {
	if c == nil {
		return nil, ErrInvalid
	}
	return d.ports.Bind(req, c)
}

// Ports is the UDP table the demux composes.
func (d *UDPDemux[C]) Ports() *table.UDPPorts[*C] { return d.ports }

// UDPReply is the ICMP message to send back for a datagram no socket
// takes: port unreachable, type 3 code 3 for IPv4, type 1 code 4 for
// IPv6.
type UDPReply struct {
	Type, Code uint8
}

// UDPResult is Deliver's answer.
type UDPResult[C any] struct {
	// Outcome is ToConn (the datagram, or an ICMP error about one the
	// socket sent, goes to Conn), Send (answer with Reply: no socket
	// has the port) or Dropped (not UDP, no socket and no answer — a
	// broadcast, multicast or ICMP error — or after Close).
	Outcome Outcome
	Conn    *C
	// ICMP reports that the segment is an ICMP error for Conn (its
	// ICMPInfo says which).
	ICMP  bool
	Reply UDPReply
}

// Deliver demultiplexes one UDP datagram (or ICMP error quoting one)
// received on device and shard (the caller's receive queue, which picks
// the counters' stripe). It is lock-free and allocates nothing.
func (d *UDPDemux[C]) Deliver(seg *tuple.Segment, device, shard int) (res UDPResult[C]) {
	if seg.Proto != tuple.ProtoUDP || d.closed.Load() {
		d.stats.addAt(shard, cDropped, 1)
		return res
	}
	c, ok := d.ports.LookupValue(seg.Tuple, device)
	if ok {
		res.Outcome, res.Conn, res.ICMP = ToConn, c, seg.IsICMPError()
		if res.ICMP {
			d.stats.addAt(shard, cUDPInICMPErrors, 1)
		} else {
			d.stats.addAt(shard, cUDPInDatagrams, 1)
		}
		return res
	}
	if seg.IsICMPError() || !unicast(seg.Tuple.Local.Addr) {
		d.stats.addAt(shard, cDropped, 1)
		return res
	}
	d.stats.addAt(shard, cUDPNoPorts, 1)
	res.Outcome = Send
	if seg.Tuple.Local.Addr.Is4() {
		res.Reply = UDPReply{Type: 3, Code: 3}
	} else {
		res.Reply = UDPReply{Type: 1, Code: 4}
	}
	return res
}

// unicast reports whether a is neither a broadcast nor a multicast
// address: Linux answers only unicast datagrams with a port unreachable
// (__udp4_lib_rcv's PACKET_HOST check, RFC 1122 3.2.2).
func unicast(a tuple.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return b[0] < 224 && b != [4]byte{255, 255, 255, 255}
	}
	return a.As16()[0] != 0xff
}

// UDPCounters are a UDPDemux's counts under Linux's MIB names (Udp: as
// nstat prints them), since NewUDPDemux.
type UDPCounters struct {
	// InDatagrams: datagrams delivered to a socket (UDP_MIB_INDATAGRAMS).
	InDatagrams uint64
	// NoPorts: datagrams to a port no socket has, answered with a port
	// unreachable (UDP_MIB_NOPORTS).
	NoPorts uint64
	// InICMPErrors: ICMP errors delivered to the socket that sent the
	// datagram they quote.
	InICMPErrors uint64
	// Dropped: segments dropped (not UDP, no socket for a broadcast,
	// multicast or ICMP error, after Close).
	Dropped uint64
}

// Counters returns the counts; each is exact, the set read field by field.
func (d *UDPDemux[C]) Counters() UDPCounters {
	return UDPCounters{InDatagrams: d.stats.sum(cUDPInDatagrams), NoPorts: d.stats.sum(cUDPNoPorts),
		InICMPErrors: d.stats.sum(cUDPInICMPErrors), Dropped: d.stats.sum(cDropped)}
}

// Close closes the demux: Deliver drops everything and the table refuses
// every change (ErrClosed). It returns ErrClosed if called twice.
func (d *UDPDemux[C]) Close() error {
	if d.closed.Swap(true) {
		return ErrClosed
	}
	return d.ports.Close()
}
