package socktable

import (
	"sync/atomic"
	"time"

	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// ListenOptions are a listener's listen(2) backlog and what its SYN-ACKs
// announce.
type ListenOptions struct {
	// Backlog is listen(2)'s backlog, capped at Options.Somaxconn (a
	// negative value meaning Somaxconn): the listener holds at most
	// Backlog+1 connections waiting for accept, and as many request
	// entries in its SYN queue (Linux's sk_max_ack_backlog bounds both).
	Backlog int
	// MSS is the maximum segment size its SYN-ACKs announce; 0 means 1460
	// for IPv4 flows and 1440 for IPv6 ones (an Ethernet MTU).
	MSS uint16
	// Window is the receive window its SYN-ACKs announce (never scaled in
	// a SYN-ACK); 0 means 65535.
	Window uint16
	// WScale is the window scale shift it announces to peers that offer
	// scaling, 0 to 14.
	WScale uint8
	// Shards is the number of accept shards; 0 means Options.AcceptShards.
	Shards int
}

// Accepted is a connection waiting in a listener's accept queue: the
// stack's handle and its Flow (which TimeWait and Abort take).
type Accepted[C any] struct {
	Conn *C
	Flow Flow
}

// HalfOpen is a request entry a closing listener removed: the stack sends
// it an RST with sequence number Seq (our ISN + 1), so that the peer,
// which may believe itself connected, learns it is not.
type HalfOpen struct {
	Tuple tuple.Tuple
	Seq   uint32
}

// Orphans is what a closing listener could not hand to another member of
// its SO_REUSEPORT group: with tcp_migrate_req off, everything it held.
// The Demux has removed each from its tables (and released its port);
// the stack resets them.
type Orphans[C any] struct {
	// Conns were queued for accept.
	Conns []Accepted[C]
	// Requests were half-open: in the SYN queue.
	Requests []HalfOpen
}

// Listener is a listening socket of a Demux: its place in the listener
// index, its accept queue and its SYN queue's count.
type Listener[C any] struct {
	d       *Demux[C]
	binding *table.Binding
	entry   atomic.Pointer[table.Listener[*Listener[C]]]
	queue   *accept.Sharded[Accepted[C]]
	mss4    uint16
	mss6    uint16
	window  uint16
	wscale  uint8
	// backlog is sk_max_ack_backlog: the listen backlog after clamping.
	// The accept queue holds backlog+1 connections, the SYN queue
	// backlog requests.
	backlog int

	// qlen counts its request entries (Linux's reqsk_queue_len), young
	// those whose timer has not fired yet.
	qlen, young atomic.Int32
	// lastCookie is when it last sent a SYN cookie (nanoseconds on the
	// clock, +1; 0 for never): it checks ACKs for cookies for
	// cookieValid after that (Linux's tcp_synq_no_recent_overflow).
	lastCookie atomic.Int64
	closed     atomic.Bool
}

// Bind reserves a port for a socket: bind(2), Ports.Bind (the socket may
// then Listen or ConnectBound).
func (d *Demux[C]) Bind(req table.BindRequest) (*table.Binding, error) { return d.ports.Bind(req) }

// Listen makes b, a binding from Ports().Bind, a listener: listen(2). It
// creates the listener's accept queue, indexes it (joining a SO_REUSEPORT
// group if b's options match one: the same owner only) and re-checks the
// bind conflicts listen(2) re-checks, in one step. It returns
// ErrAddrInUse for that conflict, ErrInvalid for a nil binding, one of
// another Demux or a listening one, or a WScale above 14, ErrCapacity for
// a bad Shards, and ErrClosed after Close.
func (d *Demux[C]) Listen(b *table.Binding, o ListenOptions) (*Listener[C], error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	if b == nil || o.WScale > tuple.MaxWindowScale {
		return nil, ErrInvalid
	}
	shards := o.Shards
	if shards == 0 {
		shards = d.acceptShards
	}
	q, err := accept.NewSharded[Accepted[C]](accept.ShardedOptions{Shards: shards, Backlog: o.Backlog, Somaxconn: d.somaxconn})
	if err != nil {
		return nil, err
	}
	l := &Listener[C]{d: d, binding: b, queue: q, mss4: o.MSS, mss6: o.MSS, window: o.Window, wscale: o.WScale,
		backlog: q.Backlog() - 1}
	if o.MSS == 0 {
		l.mss4, l.mss6 = 1460, 1440
	}
	if l.window == 0 {
		l.window = 65535
	}
	e, err := d.listeners.Listen(b, l)
	if err != nil {
		_ = q.Close()
		return nil, err
	}
	l.entry.Store(e)
	return l, nil
}

// Binding returns the listener's binding.
func (l *Listener[C]) Binding() *table.Binding { return l.binding }

// Register adds an acceptor of the listener, bound to shard (or
// accept.Unbound): accept(2) on it returns the listener's connections,
// each an Accepted. See accept.Sharded.Register.
func (l *Listener[C]) Register(shard int) (*accept.Acceptor[Accepted[C]], error) {
	return l.queue.Register(shard)
}

// Queue returns the listener's accept queue, for its Depth, ShardDepth,
// Overflows and Steer.
func (l *Listener[C]) Queue() *accept.Sharded[Accepted[C]] { return l.queue }

// SynQueueLen returns the number of request entries the listener holds.
func (l *Listener[C]) SynQueueLen() int { return int(l.qlen.Load()) }

// Closed reports whether Close has been called.
func (l *Listener[C]) Closed() bool { return l.closed.Load() }

// acceptFull reports Linux's sk_acceptq_is_full: more connections queued
// than the backlog (the queue's limit, backlog+1, reached). One atomic
// load until the listener is nearly full (Sharded.Full).
func (l *Listener[C]) acceptFull() bool { return l.queue.Full() }

// synQueueFull reports inet_csk_reqsk_queue_is_full.
func (l *Listener[C]) synQueueFull() bool { return int(l.qlen.Load()) >= l.backlog }

// noteCookie records that a cookie was sent at now.
func (l *Listener[C]) noteCookie(now time.Duration) {
	if int64(now)+1 != l.lastCookie.Load() {
		l.lastCookie.Store(int64(now) + 1)
	}
}

// recentCookies reports whether the listener sent a cookie within
// cookieValid of now.
func (l *Listener[C]) recentCookies(now time.Duration) bool {
	last := l.lastCookie.Load()
	return last != 0 && int64(now)+1-last <= int64(cookieValid)
}

func (l *Listener[C]) mss(t tuple.Tuple) uint16 {
	if t.Is4() {
		return l.mss4
	}
	return l.mss6
}

// successor returns the member of l's SO_REUSEPORT group that takes over
// flow hash h after l closed, if tcp_migrate_req allows migration.
func (l *Listener[C]) successor(h uint64) (*Listener[C], bool) {
	if !l.d.migrateReq || l.d.shutting.Load() {
		return nil, false
	}
	s, ok := l.entry.Load().Successor(h)
	if !ok {
		return nil, false
	}
	return s.Value(), true
}

// Close stops the listener (close(2) on a listening socket): it leaves
// the listener index and its group and releases its binding, in one step,
// so no later SYN reaches it; then each connection it held, queued for
// accept or half-open in its SYN queue, migrates to the member of its
// SO_REUSEPORT group that the connection's flow hash picks (with
// tcp_migrate_req; the member's acceptors are woken) or comes back in
// Orphans, removed from the Demux's tables, for the stack to reset. None
// is lost. Requests created by SYNs that raced with Close are handled the
// same way when their final ACK or timer comes (Linux does the same).
//
// A second Close returns ErrClosed. Close may block (it waits for
// enqueues in flight, see accept.Sharded.Close) and allocates the slices
// it returns.
func (l *Listener[C]) Close() (Orphans[C], error) {
	var o Orphans[C]
	if !l.closed.CompareAndSwap(false, true) {
		return o, ErrClosed
	}
	d := l.d
	_ = l.entry.Load().Close() // ErrClosed only if the Demux closed it first
	d.at(atListenerUnindexed)
	var conns []Accepted[C]
	if d.migrateReq && !d.shutting.Load() {
		conns, _ = l.queue.MigrateEach(func(a Accepted[C]) *accept.Sharded[Accepted[C]] {
			if s, ok := l.successor(a.Flow.hash); ok {
				return s.queue
			}
			return nil
		})
	} else {
		_ = l.queue.Close()
		conns = l.queue.Drain()
	}
	for _, a := range conns {
		d.forget(a)
	}
	o.Conns = conns
	var freed []*request[C]
	for r := range d.requests.all() {
		if r.listener != l {
			continue
		}
		if s, ok := l.successor(r.hash); ok {
			r.moveLocked(s)
			continue
		}
		o.Requests = append(o.Requests, HalfOpen{Tuple: r.tuple, Seq: r.iss + 1})
		d.removeRequestLocked(r, true)
		freed = append(freed, r)
	}
	for _, r := range freed {
		d.requests.put(r)
	}
	return o, nil
}

// forget removes an orphaned connection from the tables and releases its
// port: the stack resets it.
func (d *Demux[C]) forget(a Accepted[C]) { d.endConn(a.Flow, a.Conn) }

// moveLocked hands r to listener s (migration), with its counts.
func (r *request[C]) moveLocked(s *Listener[C]) {
	r.listener.qlen.Add(-1)
	s.qlen.Add(1)
	if r.timeouts == 0 {
		r.listener.young.Add(-1)
		s.young.Add(1)
	}
	r.listener = s
}
