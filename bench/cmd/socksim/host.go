package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/bench/internal/basedemux"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// conn is the simulated stack's connection: what it keeps per socket.
type conn struct {
	t    tuple.Tuple
	flow socktable.Flow
}

// errNoPort is a connect that found no free port (EADDRNOTAVAIL).
var errNoPort = errors.New("no free port")

// host is one implementation's TCP layer as the simulated stack drives it:
// socktable.Demux, or a baseline demux (bench/internal/basedemux). Worker
// w is the calling goroutine's index (its receive shard). The interface
// call costs every implementation the same nanosecond or two.
type host interface {
	// deliver demuxes one segment; deliverBatch a run of them into out.
	deliver(seg *tuple.Segment, w int) socktable.Result[conn]
	deliverBatch(segs []tuple.Segment, w int, out []socktable.Result[conn])
	// establish turns a Completed result into connection c and accepts
	// it (the listener's owner calls accept at once, as nginx does).
	establish(res *socktable.Result[conn], c *conn, w int) error
	// timeWait closes c into TIME_WAIT with the given state, at now.
	timeWait(c *conn, st timewait.State, now time.Duration) error
	// connect opens c from local to remote on an ephemeral port; start
	// seeds the baselines' port search. errNoPort when none is free.
	connect(c *conn, local tuple.Addr, remote tuple.Endpoint, start uint32) error
	// advance moves the simulated clock to now and expires what is due.
	advance(now time.Duration)
	// fill makes c an established connection untimed, as cheaply as the
	// implementation allows (socktable: the handshake; a baseline: a
	// direct insert). fillTimeWait makes c a TIME_WAIT entry at now.
	fill(c *conn, w int) error
	fillTimeWait(c *conn, st timewait.State, now time.Duration, w int) error
	// prefillConnect makes c a client connection of c.t closed into
	// TIME_WAIT at now, untimed (socktable: connect and close, on the
	// port its connect picks).
	prefillConnect(c *conn, st timewait.State, now time.Duration) error
	// census counts what the tables hold.
	census() census
	// counters returns the MIB counters (socktable only).
	counters() (socktable.Counters, bool)
	close()
}

// census is what a host's tables hold.
type census struct {
	Entries   int `json:"entries"`   // established table: connections and requests
	TimeWaits int `json:"timewaits"` // TIME_WAIT entries
}

// The simulated server and its peers.
var (
	serverAddr = tuple.MustAddr("192.0.2.1")
	upstream   = tuple.MustEndpoint("198.51.100.10:8080")
)

const (
	serverPort     uint16 = 443
	stuckPort      uint16 = 8080  // a listener whose application stopped accepting
	ephemeralLow   uint16 = 32768 // Linux's ip_local_port_range
	ephemeralHigh  uint16 = 60999
	stuckBacklog          = 128
	serverBacklog         = 4096 // somaxconn
	reuseportGroup        = 2
)

// tcpTimeWait is TIME_WAIT's length (TCP_TIMEWAIT_LEN).
const tcpTimeWait = 60 * time.Second

// newHost builds implementation impl, sized for n connections, with the
// scenario's listeners: a reuseport group on *:443 and the stuck *:8080.
func newHost(impl string, n, workers int) (host, error) {
	if impl != "socktable" {
		d, err := basedemux.New[conn](impl, n)
		if err != nil {
			return nil, err
		}
		d.Listen(tuple.Endpoint{Port: serverPort}, 1460, 65535)
		d.Listen(tuple.Endpoint{Port: stuckPort}, 1460, 65535)
		return &baseHost{d: d}, nil
	}
	clock := &timewait.ManualClock{}
	d, err := socktable.NewDemux[conn](socktable.Options{
		Clock: clock, Capacity: n, AcceptShards: workers,
		LocalAddrs: []tuple.Addr{serverAddr}, EphemeralLow: ephemeralLow, EphemeralHigh: ephemeralHigh,
	})
	if err != nil {
		return nil, err
	}
	h := &stHost{d: d, clock: clock, acceptors: make([][]*accept.Acceptor[socktable.Accepted[conn]], workers)}
	listen := func(port uint16, backlog int) (*socktable.Listener[conn], error) {
		b, err := d.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: port, ReusePort: true, Owner: 33})
		if err != nil {
			return nil, err
		}
		return d.Listen(b, socktable.ListenOptions{Backlog: backlog})
	}
	for range reuseportGroup {
		l, err := listen(serverPort, serverBacklog)
		if err != nil {
			d.Close()
			return nil, err
		}
		h.group = append(h.group, l)
		for w := range workers {
			a, err := l.Register(w)
			if err != nil {
				d.Close()
				return nil, err
			}
			h.acceptors[w] = append(h.acceptors[w], a)
		}
	}
	if _, err := listen(stuckPort, stuckBacklog); err != nil {
		d.Close()
		return nil, err
	}
	return h, nil
}

// stHost is socktable.Demux on a simulated clock.
type stHost struct {
	d         *socktable.Demux[conn]
	clock     *timewait.ManualClock
	group     []*socktable.Listener[conn]
	acceptors [][]*accept.Acceptor[socktable.Accepted[conn]] // [worker][group member]
}

func (h *stHost) deliver(seg *tuple.Segment, w int) socktable.Result[conn] {
	return h.d.Deliver(seg, 0, w)
}

func (h *stHost) deliverBatch(segs []tuple.Segment, w int, out []socktable.Result[conn]) {
	h.d.DeliverBatch(segs, 0, w, out)
}

func (h *stHost) establish(res *socktable.Result[conn], c *conn, w int) error {
	flow, err := h.d.Establish(&res.Handshake, c)
	if err != nil {
		return err
	}
	c.flow, c.t = flow, flow.Tuple
	for i, l := range h.group {
		if l == res.Handshake.Listener {
			if _, err := h.acceptors[w][i].TryAccept(); err != nil {
				return fmt.Errorf("accept: %w", err)
			}
			return nil
		}
	}
	return nil // the stuck listener: nobody accepts
}

func (h *stHost) timeWait(c *conn, st timewait.State, _ time.Duration) error {
	return h.d.TimeWait(c.flow, c, st)
}

func (h *stHost) connect(c *conn, local tuple.Addr, remote tuple.Endpoint, _ uint32) error {
	flow, err := h.d.Connect(table.ConnectRequest{Family: 4, Local: local, Remote: remote}, c)
	if errors.Is(err, table.ErrAddrNotAvail) || errors.Is(err, table.ErrNoPorts) {
		return errNoPort
	}
	if err != nil {
		return err
	}
	c.flow, c.t = flow, flow.Tuple
	return nil
}

func (h *stHost) advance(now time.Duration) {
	h.clock.Set(now)
	h.d.Advance()
}

// fill runs c's handshake: SYN, final ACK, Establish, accept.
func (h *stHost) fill(c *conn, w int) error {
	var segs [2]tuple.Segment
	_, err := handshake(h, c, w, segs[:], nil)
	return err
}

func (h *stHost) fillTimeWait(c *conn, st timewait.State, _ time.Duration, w int) error {
	if err := h.fill(c, w); err != nil {
		return err
	}
	return h.d.TimeWait(c.flow, c, st)
}

func (h *stHost) prefillConnect(c *conn, st timewait.State, now time.Duration) error {
	if err := h.connect(c, c.t.Local.Addr, c.t.Remote, 0); err != nil {
		return err
	}
	return h.timeWait(c, st, now)
}

func (h *stHost) census() census {
	return census{Entries: h.d.EstablishedStats().Entries, TimeWaits: h.d.TimeWaitTable().Len()}
}

func (h *stHost) counters() (socktable.Counters, bool) { return h.d.Counters(), true }
func (h *stHost) close()                               { _ = h.d.Close() }

// baseHost is a baseline demux; its TIME_WAIT entries expire by a sweep of
// the simulated clock.
type baseHost struct {
	d *basedemux.Demux[conn]
}

func (h *baseHost) deliver(seg *tuple.Segment, _ int) socktable.Result[conn] {
	return h.d.Deliver(seg)
}

func (h *baseHost) deliverBatch(segs []tuple.Segment, _ int, out []socktable.Result[conn]) {
	for i := range segs {
		out[i] = h.d.Deliver(&segs[i])
	}
}

func (h *baseHost) establish(res *socktable.Result[conn], c *conn, _ int) error {
	if !h.d.Establish(res.Handshake.Tuple, c) {
		return errors.New("establish: the request is gone")
	}
	c.t = res.Handshake.Tuple
	return nil
}

func (h *baseHost) timeWait(c *conn, st timewait.State, now time.Duration) error {
	if !h.d.TimeWait(c.t, c, baseState(st), now+tcpTimeWait) {
		return errors.New("timewait: the connection is gone")
	}
	return nil
}

func (h *baseHost) connect(c *conn, local tuple.Addr, remote tuple.Endpoint, start uint32) error {
	t, ok := h.d.Connect(local, remote, ephemeralLow, ephemeralHigh, start, c)
	if !ok {
		return errNoPort
	}
	c.t = t
	return nil
}

func (h *baseHost) advance(now time.Duration) { h.d.Expire(now) }

func (h *baseHost) fill(c *conn, _ int) error {
	h.d.Fill(c.t, c)
	return nil
}

func (h *baseHost) fillTimeWait(c *conn, st timewait.State, now time.Duration, _ int) error {
	h.d.FillTimeWait(c.t, baseState(st), now+tcpTimeWait)
	return nil
}

func (h *baseHost) prefillConnect(c *conn, st timewait.State, now time.Duration) error {
	h.d.FillTimeWait(c.t, baseState(st), now+tcpTimeWait)
	return nil
}

func (h *baseHost) census() census {
	return census{Entries: h.d.Entries(), TimeWaits: h.d.TimeWaits()}
}

func (h *baseHost) counters() (socktable.Counters, bool) { return socktable.Counters{}, false }
func (h *baseHost) close()                               {}

func baseState(st timewait.State) basedemux.TimeWaitState {
	return basedemux.TimeWaitState{RcvNxt: st.RcvNxt, SndNxt: st.SndNxt, Window: uint16(min(st.RcvWnd, 65535))}
}

// segment builds a segment of flow t (Local is the host's end).
func segment(t tuple.Tuple, flags tuple.Flags, seq, ack uint32, payload int) tuple.Segment {
	return tuple.Segment{Tuple: t, Proto: tuple.ProtoTCP, Version: 4, Flags: flags, Seq: seq, Ack: ack,
		Window: 65535, PayloadLen: uint16(payload)}
}

// clientISN is the ISN every simulated client uses: the demux's answers do
// not depend on it.
const clientISN = 1000
