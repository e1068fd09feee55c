package socktable

import (
	"iter"
	"time"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// The dumps are what ss(8) shows, as iterators. Like every iterator of the
// library, none is a consistent snapshot of the Demux, none yields an item
// twice, and yield may call back into the Demux.

// ListenerInfo is one listener as `ss -lt` shows it.
type ListenerInfo[C any] struct {
	Listener *Listener[C]
	// Local is the address and port it listens on.
	Local tuple.Endpoint
	// AcceptQueue is the number of connections waiting for accept (ss's
	// Recv-Q), Backlog the listen backlog (its Send-Q): it holds at most
	// Backlog+1.
	AcceptQueue, Backlog int
	// SynQueue is the number of its request entries.
	SynQueue int
}

// Listeners yields every listener, SO_REUSEPORT members one by one.
func (d *Demux[C]) Listeners() iter.Seq[ListenerInfo[C]] {
	return func(yield func(ListenerInfo[C]) bool) {
		for ep, hl := range d.listeners.All() {
			l := hl.Value()
			if !yield(ListenerInfo[C]{Listener: l, Local: ep, AcceptQueue: l.queue.Depth(),
				Backlog: l.backlog, SynQueue: l.SynQueueLen()}) {
				return
			}
		}
	}
}

// Connections yields every established connection (including those
// queued for accept and active opens not yet answered) with its four-tuple.
func (d *Demux[C]) Connections() iter.Seq2[tuple.Tuple, *C] {
	return func(yield func(tuple.Tuple, *C) bool) {
		for t, p := range d.established.All() {
			// All does not say an entry's kind: ask for it.
			if q, k, ok := d.established.LookupKind(t); !ok || q != p || k != table.KindConn {
				continue
			}
			if !yield(t, (*C)(p)) {
				return
			}
		}
	}
}

// RequestInfo is one request entry of a SYN queue (`ss -t state
// syn-recv`).
type RequestInfo[C any] struct {
	Tuple    tuple.Tuple
	Listener *Listener[C]
	// ISS and IRS are our and the peer's initial sequence numbers.
	ISS, IRS uint32
	// Retransmits counts the SYN-ACK timer's firings.
	Retransmits int
	// Acked: its final ACK came while the accept queue was full.
	Acked bool
}

// Requests yields every request entry.
func (d *Demux[C]) Requests() iter.Seq[RequestInfo[C]] {
	return func(yield func(RequestInfo[C]) bool) {
		var buf []RequestInfo[C]
		// Copy under each request's lock, yield outside every lock.
		for r := range d.requests.all() {
			buf = append(buf, RequestInfo[C]{Tuple: r.tuple, Listener: r.listener, ISS: r.iss, IRS: r.irs,
				Retransmits: int(r.timeouts), Acked: r.acked})
		}
		for _, ri := range buf {
			if !yield(ri) {
				return
			}
		}
	}
}

// TimeWaitInfo is one TIME_WAIT (or FIN_WAIT2) entry (`ss -to state
// time-wait`).
type TimeWaitInfo struct {
	Tuple tuple.Tuple
	State timewait.State
	// Remaining is the time left before the entry expires (0 if due).
	Remaining time.Duration
}

// TimeWaits yields every TIME_WAIT and FIN_WAIT2 entry.
func (d *Demux[C]) TimeWaits() iter.Seq[TimeWaitInfo] {
	return func(yield func(TimeWaitInfo) bool) {
		now := d.clock.Now()
		for e := range d.timeWait.Entries() {
			if !yield(TimeWaitInfo{Tuple: e.Tuple, State: e.State, Remaining: max(e.Expires-now, 0)}) {
				return
			}
		}
	}
}

// Bindings yields every port binding: bound, listening, connected and
// TIME_WAIT sockets (Ports.All).
func (d *Demux[C]) Bindings() iter.Seq2[tuple.Endpoint, *table.Binding] { return d.ports.All() }
