package socktable

import (
	"runtime"
	"sync/atomic"

	"github.com/socktable/socktable/internal/pshard"
)

// Counters are a Demux's event counts under Linux's MIB names (as nstat
// prints them, TcpExt…), so an operator reads them as on a Linux host,
// plus the segments Deliver handled by outcome. Each counts events since
// NewDemux.
type Counters struct {
	// ListenOverflows: a SYN or final ACK found the listener's accept
	// queue full (LINUX_MIB_LISTENOVERFLOWS).
	ListenOverflows uint64
	// ListenDrops: a SYN or final ACK to a listener dropped for any reason
	// (overflow, SYN queue full without cookies, table full)
	// (LINUX_MIB_LISTENDROPS).
	ListenDrops uint64
	// TCPReqQFullDrop: a SYN dropped because the SYN queue was full and
	// cookies are off.
	TCPReqQFullDrop uint64
	// TCPReqQFullDoCookies: a SYN answered with a cookie because the SYN
	// queue was full.
	TCPReqQFullDoCookies uint64
	// SyncookiesSent, SyncookiesRecv, SyncookiesFailed: cookies sent,
	// valid cookies received in final ACKs, and ACKs whose cookie failed
	// the check.
	SyncookiesSent, SyncookiesRecv, SyncookiesFailed uint64
	// TCPTimeWaitOverflow: a connection closed with no TIME_WAIT because
	// the TIME_WAIT table was at its cap (tcp_max_tw_buckets).
	TCPTimeWaitOverflow uint64
	// TW: TIME_WAIT entries that ran their full time.
	TW uint64
	// TWKilled: TIME_WAIT entries removed before their time by a segment
	// (an in-window RST, RFC 1337 off; a SYN a listener took over; an RST
	// answer in FIN_WAIT2).
	TWKilled uint64
	// TWRecycled: TIME_WAIT entries a connect() took over (tcp_tw_reuse,
	// or an explicitly bound port).
	TWRecycled uint64
	// EmbryonicRsts: request entries removed by an in-window RST or SYN
	// (LINUX_MIB_EMBRYONICRSTS).
	EmbryonicRsts uint64
	// RequestTimeouts: request entries that expired after their last
	// SYN-ACK retransmission went unanswered; SynAckRetrans: SYN-ACKs
	// retransmitted by the request timers (TCPSynRetrans).
	RequestTimeouts, SynAckRetrans uint64
	// Delivered: segments that went to a connection (ToConn) or
	// completed a handshake (Completed).
	Delivered uint64
	// Answered: segments answered on the stack's behalf with a SYN-ACK or
	// an ACK (Send without RST).
	Answered uint64
	// Resets: segments answered with an RST.
	Resets uint64
	// Dropped: segments dropped (Dropped).
	Dropped uint64
}

// counter indexes a count in a stripe.
type counter uint8

const (
	cListenOverflows counter = iota
	cListenDrops
	cReqQFullDrop
	cReqQFullDoCookies
	cCookiesSent
	cCookiesRecv
	cCookiesFailed
	cTimeWaitOverflow
	cTW
	cTWKilled
	cTWRecycled
	cEmbryonicRsts
	cRequestTimeouts
	cSynAckRetrans
	cDelivered
	cAnswered
	cResets
	cDropped
	// The UDPDemux's (which shares cDropped's meaning and stripe layout).
	cUDPInDatagrams
	cUDPNoPorts
	cUDPInICMPErrors
	numCounters
)

// stripe is one P's counts, on cache lines of its own, so that cores
// counting at line rate never share a line.
type stripe struct {
	c [numCounters]atomic.Uint64
	_ [(64 - int(numCounters)*8%64) % 64]byte
}

// stripedCounters is the Demux's counters: a bump adds to the stripe of
// the calling P (one uncontended atomic add), a read sums the stripes.
// Sums are exact: each event is counted once, in one stripe; a read that
// overlaps bumps sees each of them or not.
type stripedCounters struct {
	stripes []stripe
	mask    uint32
}

func newStripedCounters() stripedCounters {
	n := 1
	for n < min(runtime.GOMAXPROCS(0), pshard.Max) {
		n *= 2
	}
	return stripedCounters{stripes: make([]stripe, n), mask: uint32(n - 1)}
}

func (s *stripedCounters) add(c counter, n uint64) {
	s.stripes[pshard.Current()&s.mask].c[c].Add(n)
}

// addAt adds n to count c in the stripe of shard, the caller's receive
// shard (a core or queue, which keeps its stripe's line in its cache
// without asking the runtime which P it runs on), or of the caller's P
// for a negative shard.
func (s *stripedCounters) addAt(shard int, c counter, n uint64) {
	if shard < 0 {
		s.add(c, n)
		return
	}
	s.stripes[uint32(shard)&s.mask].c[c].Add(n)
}

func (s *stripedCounters) sum(c counter) uint64 {
	var t uint64
	for i := range s.stripes {
		t += s.stripes[i].c[c].Load()
	}
	return t
}

func (s *stripedCounters) snapshot() Counters {
	return Counters{
		ListenOverflows:      s.sum(cListenOverflows),
		ListenDrops:          s.sum(cListenDrops),
		TCPReqQFullDrop:      s.sum(cReqQFullDrop),
		TCPReqQFullDoCookies: s.sum(cReqQFullDoCookies),
		SyncookiesSent:       s.sum(cCookiesSent),
		SyncookiesRecv:       s.sum(cCookiesRecv),
		SyncookiesFailed:     s.sum(cCookiesFailed),
		TCPTimeWaitOverflow:  s.sum(cTimeWaitOverflow),
		TW:                   s.sum(cTW),
		TWKilled:             s.sum(cTWKilled),
		TWRecycled:           s.sum(cTWRecycled),
		EmbryonicRsts:        s.sum(cEmbryonicRsts),
		RequestTimeouts:      s.sum(cRequestTimeouts),
		SynAckRetrans:        s.sum(cSynAckRetrans),
		Delivered:            s.sum(cDelivered),
		Answered:             s.sum(cAnswered),
		Resets:               s.sum(cResets),
		Dropped:              s.sum(cDropped),
	}
}
