package timewait

import (
	"strconv"
	"time"

	"github.com/socktable/socktable/tuple"
)

// ReuseMode is net.ipv4.tcp_tw_reuse: whether connect() may take over the
// four-tuple of a TIME_WAIT entry, rather than pick another port or fail,
// when the port was chosen by the stack (an ephemeral port). A connection
// from an explicitly bound port may take over an entry whatever the mode.
type ReuseMode uint8

const (
	// ReuseOff (0): never for an ephemeral port.
	ReuseOff ReuseMode = 0
	// ReuseOn (1): for any flow, once the entry is older than ReuseDelay.
	ReuseOn ReuseMode = 1
	// ReuseLoopback (2), Linux's default: as ReuseOn, but only for flows
	// with a loopback address at either end (127.0.0.0/8, ::1, or
	// v4-mapped loopback). Linux also counts a socket bound to the lo
	// device; entries here carry no device.
	ReuseLoopback ReuseMode = 2
)

// String returns "off", "on", "loopback", or the number of another value
// (which behaves as ReuseOn, as any value other than 0 and 2 would in the
// kernel, though its sysctl refuses them).
func (m ReuseMode) String() string {
	switch m {
	case ReuseOff:
		return "off"
	case ReuseOn:
		return "on"
	case ReuseLoopback:
		return "loopback"
	}
	return "ReuseMode(" + strconv.Itoa(int(m)) + ")"
}

// ReuseDelay is how long after entering TIME_WAIT an entry becomes
// reusable under tcp_tw_reuse: Linux's net.ipv4.tcp_tw_reuse_delay default
// of 1 s, long enough for a peer ticking its timestamp clock at the slowest
// rate RFC 7323 allows (1 Hz) to have ticked, so that PAWS tells the new
// connection's segments from the old one's. It is fixed here; Linux (6.14
// and later) lets it be tuned.
const ReuseDelay = time.Second

// reusable is Linux's tcp_twsk_unique: whether a new connection on the
// entry's four-tuple t may replace the entry, and if so the write_seq (ISN)
// it must use, tw_snd_nxt + 65537 (never 0), beyond every sequence number
// the old incarnation sent. A connection that reuses the entry also
// inherits its timestamps (r.tsRecent, r.tsRecentStamp), so that PAWS
// protects it from the old incarnation's segments; the caller copies them.
//
// The entry must use timestamps: without them PAWS cannot tell the two
// incarnations apart. Then explicitBind (the connecting socket's local
// port was bound by the application, Linux's twp == NULL path) is enough
// on its own, whatever mode says. Otherwise the entry must be in true
// TIME_WAIT (Linux 6.12 stopped reusing orphaned FIN_WAIT2 entries, whose
// peer may still be sending), mode must allow the flow (ReuseLoopback
// needs a loopback address at either end of t), and more than ReuseDelay
// must have passed since the entry entered TIME_WAIT (now, on the table's
// clock, compared by signed difference as the kernel's time_after32 does).
//
// Judgment call: the kernel lets an explicitly bound port take over a
// FinWait2 entry too (its FIN_WAIT2 check only clears the sysctl's value),
// and so does reusable, to stay the kernel's twin.
//
// It allocates nothing, never panics, and does not change the entry.
func (r *record) reusable(t tuple.Tuple, now time.Duration, mode ReuseMode, explicitBind bool) (ok bool, writeSeq uint32) {
	if r == nil || r.flags&recTimestamps == 0 {
		return false, 0
	}
	if !explicitBind && !r.reuseAllowed(t, now, mode) {
		return false, 0
	}
	return true, r.nextISN()
}

// reuseAllowed is the sysctl half of tcp_twsk_unique.
func (r *record) reuseAllowed(t tuple.Tuple, now time.Duration, mode ReuseMode) bool {
	if r.substate == FinWait2 {
		return false
	}
	switch mode {
	case ReuseOff:
		return false
	case ReuseLoopback:
		if !t.Local.Addr.IsLoopback() && !t.Remote.Addr.IsLoopback() {
			return false
		}
	}
	return now-r.entryStamp > ReuseDelay
}
