package socktable

import (
	"strconv"

	"github.com/socktable/socktable/tuple"
)

// Outcome is what a stack does with a segment Deliver has demultiplexed.
type Outcome uint8

const (
	// Dropped: discard the segment and send nothing. Result.Reason says
	// why (a full queue, a segment no state accepts, a Demux closed).
	Dropped Outcome = iota
	// ToConn: the segment belongs to the established connection
	// Result.Conn (for an ICMP error, the connection that sent the quoted
	// segment): hand it to that connection's state machine.
	ToConn
	// Send: answer with Result.Reply and do nothing else. The socket
	// table answered on the stack's behalf: a SYN-ACK for a SYN a listener
	// took (from the SYN queue or as a SYN cookie), a TIME_WAIT entry's
	// ACK or RST, a request's retransmitted SYN-ACK, or the RST for a
	// segment no socket owns (RFC 9293 section 3.10.7.1).
	Send
	// Completed: the segment is the final ACK of a passive open, and the
	// listener Result.Listener has room for the connection. The stack
	// creates its connection from Result.Handshake and calls
	// Demux.Establish, which makes it the flow's owner and queues it for
	// accept; then the stack processes the segment on it (it may carry
	// data).
	Completed
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Dropped:
		return "dropped"
	case ToConn:
		return "to-conn"
	case Send:
		return "send"
	case Completed:
		return "completed"
	}
	return strconv.Itoa(int(o))
}

// Reason says which rule decided a Result: the path the segment took.
type Reason uint8

const (
	// ReasonEstablished: an established connection owns the segment.
	ReasonEstablished Reason = iota
	// ReasonSynQueued: a SYN to a listener created a request entry in the
	// SYN queue; Reply is its SYN-ACK.
	ReasonSynQueued
	// ReasonSynCookie: a SYN to a listener whose SYN queue was full (or
	// with SynCookiesAlways) is answered with a SYN cookie, keeping no
	// state; Reply is the SYN-ACK.
	ReasonSynCookie
	// ReasonRequest: a segment reached a request entry: a retransmitted
	// SYN (Reply re-sends the SYN-ACK), an out-of-window segment (Reply is
	// an ACK), or the final ACK (Outcome Completed).
	ReasonRequest
	// ReasonCookieACK: the final ACK of a valid SYN cookie (Outcome
	// Completed).
	ReasonCookieACK
	// ReasonTimeWait: a TIME_WAIT (or FIN_WAIT2) entry answered the
	// segment: an ACK, an RST, or nothing.
	ReasonTimeWait
	// ReasonNoSocket: no socket owns the segment; Reply is the RST RFC
	// 9293 section 3.10.7.1 prescribes (nothing for an arriving RST).
	ReasonNoSocket
	// ReasonListenerRST: a segment to a listener that is neither a SYN nor
	// an RST (an ACK with no request or valid cookie behind it) is
	// answered with an RST, as Linux's tcp_rcv_state_process does.
	ReasonListenerRST
	// ReasonBadCookie: an ACK to a listener that had recently sent
	// cookies failed the cookie check (SyncookiesFailed); Reply is the RST.
	ReasonBadCookie
	// ReasonBadACK: an ACK to a request entry that does not acknowledge
	// its SYN-ACK; Reply is the RST (the request stays).
	ReasonBadACK
	// ReasonEmbryonicReset: an in-window RST or SYN reached a request
	// entry, which is removed (Reply is an RST for the SYN, nothing for
	// the RST).
	ReasonEmbryonicReset
	// ReasonListenOverflow: the listener's accept queue was full: a SYN
	// is dropped (ListenOverflows, ListenDrops), a final ACK is dropped
	// with its request marked acked (tcp_abort_on_overflow=0) or answered
	// with an RST (=1).
	ReasonListenOverflow
	// ReasonSynQueueFull: the listener's SYN queue was full and SYN
	// cookies are off (TCPReqQFullDrop), or cookies are off and the queue
	// passed three quarters of tcp_max_syn_backlog.
	ReasonSynQueueFull
	// ReasonTableFull: the established table was at MaxEntries, so the
	// SYN could not be queued.
	ReasonTableFull
	// ReasonListenerIgnored: a segment a listener discards (an RST, a SYN
	// with FIN, a segment with neither SYN nor ACK).
	ReasonListenerIgnored
	// ReasonICMP: an ICMP error whose quoted flow has no connection, or
	// reached a TIME_WAIT entry or a listener, which ignore errors (a
	// request whose SYN-ACK it quotes is removed on a hard error).
	ReasonICMP
	// ReasonNotTCP: the segment is not TCP (nor an ICMP error about TCP).
	ReasonNotTCP
	// ReasonClosed: the Demux is closed.
	ReasonClosed
)

var reasonNames = [...]string{
	ReasonEstablished:     "established",
	ReasonSynQueued:       "syn-queued",
	ReasonSynCookie:       "syn-cookie",
	ReasonRequest:         "request",
	ReasonCookieACK:       "cookie-ack",
	ReasonTimeWait:        "time-wait",
	ReasonNoSocket:        "no-socket",
	ReasonListenerRST:     "listener-rst",
	ReasonBadCookie:       "bad-cookie",
	ReasonBadACK:          "bad-ack",
	ReasonEmbryonicReset:  "embryonic-reset",
	ReasonListenOverflow:  "listen-overflow",
	ReasonSynQueueFull:    "syn-queue-full",
	ReasonTableFull:       "table-full",
	ReasonListenerIgnored: "listener-ignored",
	ReasonICMP:            "icmp",
	ReasonNotTCP:          "not-tcp",
	ReasonClosed:          "closed",
}

// String returns the reason's name.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return strconv.Itoa(int(r))
}

// Reply is a segment the stack sends on the socket table's behalf, from
// the arriving segment's Local end to its Remote end. Flags is 0 when
// there is nothing to send.
type Reply struct {
	// Flags are the segment's flags: SYN|ACK, ACK, RST or RST|ACK.
	Flags tuple.Flags
	// Seq and Ack are its sequence and acknowledgment numbers.
	Seq, Ack uint32
	// Window is the window field as sent: for an ACK from TIME_WAIT,
	// already scaled down by the connection's shift; for a SYN-ACK, the
	// listener's window (never scaled in a SYN-ACK, RFC 7323 section 2.2).
	Window uint16
	// MSS is a SYN-ACK's maximum segment size option: the listener's.
	MSS uint16
	// WScale is a SYN-ACK's window scale option, sent if HasWScale (the
	// SYN offered scaling).
	WScale    uint8
	HasWScale bool
	// SACKPermitted asks the SYN-ACK to carry SACK-permitted (the SYN did).
	SACKPermitted bool
	// Timestamps asks for a timestamp option with TSval and TSecr.
	Timestamps   bool
	TSval, TSecr uint32
}

// Handshake is what a stack needs to create the connection a completed
// passive open makes: the negotiated parameters of its SYN and SYN-ACK.
// It is filled for Outcome Completed and passed back to Demux.Establish.
type Handshake[C any] struct {
	// Tuple is the connection's four-tuple.
	Tuple tuple.Tuple
	// ISS is our initial sequence number, IRS the peer's: the connection
	// starts with snd.nxt = ISS+1 and rcv.nxt = IRS+1.
	ISS, IRS uint32
	// MSS is the peer's maximum segment size: from its SYN's option (the
	// family's default if it sent none), or for a SYN cookie the largest
	// entry of Linux's MSS table not above it.
	MSS uint16
	// WScale is the peer's window scale shift, if HasWScale; the
	// connection then uses the listener's shift for its own window.
	WScale    uint8
	HasWScale bool
	// SACKPermitted: both ends may send SACK blocks.
	SACKPermitted bool
	// Timestamps: the connection uses TCP timestamps; TSRecent is the
	// peer's latest TSval, TSOffset ours (TSval = milliseconds on the
	// Demux's clock + TSOffset).
	Timestamps         bool
	TSRecent, TSOffset uint32
	// Cookie reports a connection made from a SYN cookie (no request
	// entry was kept).
	Cookie bool
	// Listener is the listener the connection is accepted on.
	Listener *Listener[C]

	hash  uint64
	shard int
	req   *request[C]
	gen   uint32
}

// Result is what Deliver decided for one segment: a small value with no
// pointers to fresh memory (Deliver allocates nothing).
type Result[C any] struct {
	// Outcome is what to do.
	Outcome Outcome
	// Reason is the rule that decided it.
	Reason Reason
	// Conn is the connection that owns the segment (Outcome ToConn).
	Conn *C
	// Listener is the listener the segment reached (a SYN answered, a
	// final ACK, an overflow), or nil.
	Listener *Listener[C]
	// Reply is the segment to send (Outcome Send, and some Dropped).
	Reply Reply
	// Handshake describes the new connection (Outcome Completed).
	Handshake Handshake[C]
}
