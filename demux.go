package socktable

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/socktable/socktable/internal/syncookie"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// SynCookies is net.ipv4.tcp_syncookies: when a listener answers a SYN
// with a SYN cookie instead of a request entry.
type SynCookies uint8

const (
	// SynCookiesOnOverflow (tcp_syncookies=1, Linux's default, and the
	// zero value): cookies when the listener's SYN queue is full.
	SynCookiesOnOverflow SynCookies = iota
	// SynCookiesOff (tcp_syncookies=0): a SYN to a full SYN queue is
	// dropped, and so is one from any peer once the queue passes three
	// quarters of MaxSynBacklog.
	SynCookiesOff
	// SynCookiesAlways (tcp_syncookies=2): every SYN is answered with a
	// cookie (except one taking a TIME_WAIT tuple over).
	SynCookiesAlways
)

// Defaults of the Linux sysctls Options carries.
const (
	// DefaultSynAckRetries is net.ipv4.tcp_synack_retries's default: a
	// request's SYN-ACK is retransmitted 5 times (after 1, 2, 4, 8 and 16
	// seconds) and the request expires 32 seconds after the last.
	DefaultSynAckRetries = 5
	// NoSynAckRetries sets tcp_synack_retries to 0 (Options'
	// SynAckRetries 0 means the default).
	NoSynAckRetries = -1
	// MaxSynAckRetries is the largest tcp_synack_retries Linux accepts.
	MaxSynAckRetries = 255
	// DefaultMaxSynBacklog is net.ipv4.tcp_max_syn_backlog's floor: Linux
	// sets it to max(128, established hash size / 128).
	DefaultMaxSynBacklog = 128

	// synAckTimeoutInit is TCP_TIMEOUT_INIT, the first SYN-ACK timeout;
	// each retransmission doubles it, up to synAckTimeoutMax (TCP_RTO_MAX).
	synAckTimeoutInit = time.Second
	synAckTimeoutMax  = 120 * time.Second
	// cookieValid is TCP_SYNCOOKIE_VALID: a listener checks the cookies
	// of ACKs for this long after it last sent one.
	cookieValid = 2 * time.Minute
)

// Options configures a Demux: the one Hasher and clock its parts share,
// each part's limits, and the Linux sysctls that decide its answers. The
// zero Options is a working demux with Linux's defaults.
type Options struct {
	// Hasher is the stack's keyed hasher, shared by every table; nil
	// means a new one keyed from crypto/rand.
	Hasher *tuple.Hasher
	// Clock is the stack's clock; nil means a timewait.SystemClock, on
	// which the TIME_WAIT table and the request timers run goroutines of
	// their own. With a timewait.ManualClock the caller calls Advance.
	Clock timewait.Clock

	// Capacity presizes the established table (connections and request
	// entries); MaxEntries, if positive, bounds it (a SYN beyond it is
	// dropped, a connect fails with ErrTableFull).
	Capacity, MaxEntries int
	// MaxTimeWait is net.ipv4.tcp_max_tw_buckets; 0 means the TIME_WAIT
	// table's default. At the cap a closing connection gets no TIME_WAIT
	// (TCPTimeWaitOverflow).
	MaxTimeWait int
	// TimeWaitLifetime, FinWait2Timeout, RFC1337, InvalidRateLimit and
	// TWReuse are the TIME_WAIT table's (timewait.TableOptions): the
	// TIME_WAIT length, net.ipv4.tcp_fin_timeout, tcp_rfc1337,
	// tcp_invalid_ratelimit and tcp_tw_reuse.
	TimeWaitLifetime, FinWait2Timeout time.Duration
	RFC1337                           bool
	InvalidRateLimit                  time.Duration
	TWReuse                           timewait.ReuseMode

	// LocalAddrs, EphemeralLow, EphemeralHigh and ReservedPorts configure
	// the bind table (table.PortsOptions): the host's addresses,
	// ip_local_port_range and ip_local_reserved_ports.
	LocalAddrs                  []tuple.Addr
	EphemeralLow, EphemeralHigh uint16
	ReservedPorts               []uint16
	// ListenerSlots sizes the listener index (table.ListenerIndexOptions).
	ListenerSlots int
	// AcceptShards is the number of shards of every listener's accept
	// queue (cores, or receive queues; see accept.Sharded); 0 means
	// GOMAXPROCS.
	AcceptShards int

	// SynCookies is net.ipv4.tcp_syncookies.
	SynCookies SynCookies
	// AbortOnOverflow is net.ipv4.tcp_abort_on_overflow: a final ACK that
	// finds the accept queue full is answered with an RST (true) instead
	// of being dropped with its request kept for the SYN-ACK to be
	// retransmitted (false, Linux's default).
	AbortOnOverflow bool
	// MigrateReq is net.ipv4.tcp_migrate_req: a closing SO_REUSEPORT
	// listener's queued and half-open connections migrate to another
	// member of its group (true) instead of coming back to be reset
	// (false, Linux's default).
	MigrateReq bool
	// Somaxconn is net.core.somaxconn, the cap on every listen backlog;
	// 0 means 4096 (accept.DefaultSomaxconn).
	Somaxconn int
	// MaxSynBacklog is net.ipv4.tcp_max_syn_backlog; 0 means
	// max(DefaultMaxSynBacklog, Capacity/128), as Linux sizes it. It
	// matters only with SynCookiesOff.
	MaxSynBacklog int
	// SynAckRetries is net.ipv4.tcp_synack_retries; 0 means
	// DefaultSynAckRetries, NoSynAckRetries means none.
	SynAckRetries int
	// SendSynAck, if set, is called when a request's timer retransmits
	// its SYN-ACK: the stack sends reply on flow t (Local to Remote). It
	// runs on the timer's goroutine (or Advance's), holding no lock of
	// the Demux, and may call any Demux method except Advance.
	SendSynAck func(t tuple.Tuple, reply Reply)
	// CheckHashes makes the tables verify every flow hash (a debug aid;
	// see table.EstablishedOptions).
	CheckHashes bool
}

// Demux is a TCP demultiplexer core: the socket tables a TCP/IP stack asks,
// for every arriving segment, which socket owns it, composed in Linux's
// order (see the package documentation), with the SYN queue, SYN cookies,
// TIME_WAIT and accept queues the answers need. C is the stack's
// connection type; the Demux keeps *C handles.
//
// A Demux composes one table.Established (connections and request
// entries), one timewait.Table whose entries own their ports' bindings,
// one table.Ports with its table.ListenerIndex, and per listener an
// accept.Sharded, all sharing one tuple.Hasher and one clock. Deliver
// hashes each segment once and passes the hash to every table.
//
// # Transitions
//
// Every lifecycle call is atomic as a concurrent Deliver sees it: a
// segment finds the flow's owner in exactly one place at every moment,
// never in none and never in two.
//
//   - Listen indexes a listener (listen(2)'s conflict re-check included);
//     Listener.Close removes it and migrates or hands back what it held.
//   - A SYN to a listener inserts a request entry into the established
//     table (or, in the TIME_WAIT table's Replace, in the step that
//     removes a TIME_WAIT entry); its final ACK yields a Handshake, and
//     Establish swaps the request for the stack's connection in one
//     compare-and-swap, then queues it for accept.
//   - Connect picks the port and inserts the connection; TimeWait enters
//     the TIME_WAIT entry before the connection leaves the established
//     table; Abort deletes it at once.
//
// # Concurrency
//
// All methods are safe for concurrent use. Deliver on an established
// connection is lock-free (one hash, one lookup of the established table,
// one striped counter); the other paths may block briefly on a request's
// lock, a TIME_WAIT shard or a table group. Deliver allocates nothing once
// the established table is sized and the request slab warm.
type Demux[C any] struct {
	hasher      *tuple.Hasher
	clock       timewait.Clock
	established *table.Established[unsafe.Pointer]
	timeWait    *timewait.Table[*table.Binding]
	ports       *table.Ports
	listeners   *table.ListenerIndex[*Listener[C]]
	flows       *Flows[unsafe.Pointer]
	timers      *timewait.Wheel
	jar         *syncookie.Jar
	requests    *requestSlab[C]
	stats       stripedCounters

	cookies         SynCookies
	abortOnOverflow bool
	migrateReq      bool
	somaxconn       int
	maxSynBacklog   int
	synAckRetries   int
	acceptShards    int
	sendSynAck      func(tuple.Tuple, Reply)

	// closing serializes the calls that end a connection (TimeWait,
	// Abort, and the removal of a closing listener's or a failed
	// enqueue's connections), striped by flow hash: of two racing ends of
	// one connection exactly one succeeds, and it moves the flow to
	// TIME_WAIT or nowhere in one piece. Deliver never takes it.
	closing [closeStripes]paddedMutex

	// pause, set by tests only, is called at the midpoints of the
	// transitions (see transitionPoint), so a test can run a Deliver
	// there: the deterministic interleavings of every transition.
	pause func(transitionPoint)

	closeMu  sync.Mutex
	shutting atomic.Bool // Shutdown runs: listeners close without migrating
	closed   atomic.Bool
}

// NewDemux returns an empty Demux. It returns ErrCapacity for a negative
// or out-of-range limit or sysctl (the parts' own checks included) and
// ErrInvalid for an unknown SynCookies mode.
func NewDemux[C any](opts Options) (*Demux[C], error) {
	if opts.SynCookies > SynCookiesAlways {
		return nil, ErrInvalid
	}
	if opts.Capacity < 0 || opts.MaxEntries < 0 || opts.MaxSynBacklog < 0 || opts.AcceptShards < 0 ||
		opts.SynAckRetries < NoSynAckRetries || opts.SynAckRetries > MaxSynAckRetries {
		return nil, ErrCapacity
	}
	d := &Demux[C]{
		hasher: opts.Hasher, clock: opts.Clock,
		cookies: opts.SynCookies, abortOnOverflow: opts.AbortOnOverflow, migrateReq: opts.MigrateReq,
		somaxconn: opts.Somaxconn, maxSynBacklog: opts.MaxSynBacklog, synAckRetries: opts.SynAckRetries,
		acceptShards: opts.AcceptShards, sendSynAck: opts.SendSynAck,
		requests: newRequestSlab[C](), stats: newStripedCounters(), jar: syncookie.NewJar(),
	}
	if d.hasher == nil {
		d.hasher = tuple.NewHasher()
	}
	if d.clock == nil {
		d.clock = timewait.NewSystemClock()
	}
	switch d.synAckRetries {
	case 0:
		d.synAckRetries = DefaultSynAckRetries
	case NoSynAckRetries:
		d.synAckRetries = 0
	}
	if d.maxSynBacklog == 0 {
		d.maxSynBacklog = max(DefaultMaxSynBacklog, opts.Capacity/128)
	}
	var err error
	d.established, err = table.NewEstablished[unsafe.Pointer](table.EstablishedOptions{
		Capacity: opts.Capacity, MaxEntries: opts.MaxEntries, Hasher: d.hasher, CheckHashes: opts.CheckHashes})
	if err != nil {
		return nil, err
	}
	d.timeWait, err = timewait.NewTable(timewait.TableOptions[*table.Binding]{
		Lifetime: opts.TimeWaitLifetime, FinWait2Timeout: opts.FinWait2Timeout, MaxBuckets: opts.MaxTimeWait,
		RFC1337: opts.RFC1337, InvalidRateLimit: opts.InvalidRateLimit, Reuse: opts.TWReuse,
		Clock: d.clock, Hasher: d.hasher, OnExpire: d.timeWaitExpired})
	if err != nil {
		return nil, err
	}
	d.flows, err = NewFlows(d.established, d.timeWait)
	if err != nil {
		return nil, err
	}
	d.ports, err = table.NewPorts(table.PortsOptions{LocalAddrs: opts.LocalAddrs,
		EphemeralLow: opts.EphemeralLow, EphemeralHigh: opts.EphemeralHigh, Reserved: opts.ReservedPorts,
		Flows: recycleCounter[C]{d}, Hasher: d.hasher})
	if err != nil {
		_ = d.timeWait.Close()
		return nil, err
	}
	d.listeners, err = table.NewListenerIndex[*Listener[C]](d.ports, table.ListenerIndexOptions{
		Slots: opts.ListenerSlots, Hasher: d.hasher})
	if err != nil {
		_ = d.timeWait.Close()
		_ = d.ports.Close()
		return nil, err
	}
	d.timers, err = timewait.NewWheel(timewait.WheelOptions{Clock: d.clock, Expire: d.requestTimers})
	if err != nil {
		_ = d.timeWait.Close()
		_ = d.ports.Close()
		return nil, err
	}
	return d, nil
}

const closeStripes = 64

// transitionPoint names a midpoint of a transition, where a concurrent
// Deliver must still find the flow's owner in exactly one place.
type transitionPoint uint8

const (
	// atTimeWaitEntered: TimeWait has entered the TIME_WAIT entry; the
	// connection is still in the established table.
	atTimeWaitEntered transitionPoint = iota
	// atEstablishSwapped: Establish has swapped the request for the
	// connection; it is not yet queued for accept.
	atEstablishSwapped
	// atListenerUnindexed: Listener.Close has taken the listener out of
	// the index; its queues are not yet migrated or drained.
	atListenerUnindexed
	// atConnectBound: Connect has its port and tuple, under the port's
	// lock and the TIME_WAIT shard's; the connection is not yet in the
	// established table. (A Deliver that finds no TIME_WAIT entry takes
	// neither lock.)
	atConnectBound
)

func (d *Demux[C]) at(p transitionPoint) {
	if d.pause != nil {
		d.pause(p)
	}
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte
}

// closeLock returns the closing stripe of flow hash h.
func (d *Demux[C]) closeLock(h uint64) *sync.Mutex { return &d.closing[h%closeStripes].Mutex }

// recycleCounter is connect()'s FlowChecker: Flows, counting the
// TIME_WAIT entries it takes over (TWRecycled).
type recycleCounter[C any] struct{ d *Demux[C] }

// ClaimFlow implements table.FlowChecker: Flows.ClaimFlow, counting a
// takeover.
func (r recycleCounter[C]) ClaimFlow(t tuple.Tuple, explicitBind bool) table.FlowClaim {
	c := r.d.flows.ClaimFlow(t, explicitBind)
	if c.Verdict == table.FlowTakenOver {
		r.d.stats.add(cTWRecycled, 1)
	}
	return c
}

// timeWaitExpired is the TIME_WAIT table's OnExpire: the entry's binding
// goes back to the bind table.
func (d *Demux[C]) timeWaitExpired(_ tuple.Tuple, b *table.Binding) {
	d.stats.add(cTW, 1)
	_ = d.ports.Release(b)
}

// Hasher returns the Hasher every table of the Demux shares.
func (d *Demux[C]) Hasher() *tuple.Hasher { return d.hasher }

// Clock returns the Demux's clock.
func (d *Demux[C]) Clock() timewait.Clock { return d.clock }

// Ports returns the bind table, for what the Demux does not wrap (Bind of
// a socket that will connect, Release of one that never did, its All).
// Listening and connecting go through the Demux.
func (d *Demux[C]) Ports() *table.Ports { return d.ports }

// ListenerIndex returns the listener index, for its SetSelector and
// SetLoad (a SO_REUSEPORT program, load-aware member choice) and All.
func (d *Demux[C]) ListenerIndex() *table.ListenerIndex[*Listener[C]] { return d.listeners }

// TimeWaitTable returns the TIME_WAIT table, whose entries own their
// ports' bindings, for its Stats and All. Entering and ending TIME_WAIT
// go through the Demux (TimeWait, Deliver), which keeps the bindings.
func (d *Demux[C]) TimeWaitTable() *timewait.Table[*table.Binding] { return d.timeWait }

// EstablishedStats returns the established table's occupancy and memory
// (connections and request entries together).
func (d *Demux[C]) EstablishedStats() table.EstablishedStats { return d.established.Stats() }

// Counters returns the Demux's counters, each exact: an event counted by
// a call that returned before Counters began is included.
func (d *Demux[C]) Counters() Counters { return d.stats.snapshot() }

// ISN returns the initial sequence number for a new connection on t
// (Linux's secure_tcp_seq: a keyed hash of the tuple plus a clock that
// advances every 64 ns), for the stack's active opens; Deliver picks the
// ISNs of passive ones.
func (d *Demux[C]) ISN(t tuple.Tuple) uint32 { return d.jar.ISN(t, d.clock.Now()) }

// TSOffset returns the offset of t's TCP timestamps (Linux's
// secure_tcp_ts_off): a connection's TSval is TSClock() + TSOffset(t).
func (d *Demux[C]) TSOffset(t tuple.Tuple) uint32 { return d.jar.TSOffset(t) }

// TSClock returns the timestamp clock, milliseconds on the Demux's clock.
func (d *Demux[C]) TSClock() uint32 { return uint32(d.clock.Now() / time.Millisecond) }

// Advance runs the timers that came due on a manual clock: TIME_WAIT
// expiry and the request timers (SYN-ACK retransmission and expiry). With
// a SystemClock the parts run their own tickers and Advance need not be
// called. It returns the number of timers handled. Calls are serialized.
func (d *Demux[C]) Advance() int {
	return d.timeWait.Advance() + d.timers.Advance()
}

// Close shuts the Demux down at once: it closes every listener (their
// queued connections are lost to it; use Shutdown to get them back), stops
// the timers and closes the tables. Later calls return ErrClosed (Deliver:
// Dropped with ReasonClosed). A second Close returns ErrClosed.
func (d *Demux[C]) Close() error {
	_, err := d.Shutdown()
	return err
}
