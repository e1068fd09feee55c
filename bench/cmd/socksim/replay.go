package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// A replay checks the Demux against the kernel that made a capture. The
// capture was taken on one host's loopback, so both ends of every flow are
// sockets of that one kernel, and one Demux stands for its whole TCP layer:
// each captured packet is delivered to it as arriving at its destination.
//
// The oracle is what the kernel did, read from the trace, never what the
// Demux says: a SYN answered with a SYN-ACK reached a listener, one
// answered with an RST found no socket, a socket enters TIME_WAIT when the
// kernel's would (its FIN acknowledged and the peer's received, as the
// active closer), a segment to a TIME_WAIT socket is answered as the
// kernel's next packet on the flow shows. The replayer drives the Demux's
// lifecycle calls at those moments, as a stack would (connect for a
// client's SYN, Establish for a completed handshake, TimeWait, Abort for an
// RST or the passive closer's last ACK), and compares each Result with the
// kernel's answer.
//
// The Demux chooses its own ISNs for the SYN-ACKs it answers with, so the
// replayer rewrites the acknowledgment number of every segment to a server
// socket by the difference between the kernel's ISN and the Demux's (as a
// client would have acknowledged the Demux's SYN-ACK). Nothing else is
// rewritten.

// listenerSpec is one entry of a capture's manifest (x.listeners.json).
type listenerSpec struct {
	Proto     string `json:"proto"`
	Addr      string `json:"addr"`
	Port      uint16 `json:"port"`
	ReusePort int    `json:"reuseport"` // the group's member count; 0 for none
	V6Only    bool   `json:"v6only"`
	Backlog   int    `json:"backlog"`
}

// verdict is what happened to one segment, in the terms both the kernel's
// reply and a Result can be read in.
type verdict uint8

const (
	vNone        verdict = iota
	vConn                // reached the destination socket's connection
	vListener            // a SYN a listener answered with a SYN-ACK
	vComplete            // the final ACK of a passive open
	vRequest             // reached a request entry (a retransmitted SYN, an RST)
	vTWAck               // a TIME_WAIT socket answered with an ACK
	vTWRst               // … with an RST
	vTWDrop              // … with nothing
	vTWTakeover          // a SYN that reopened a TIME_WAIT tuple (a listener answered)
	vNoSocket            // no socket: an RST sent
	vListenerRst         // a non-SYN segment to a listener: an RST sent
	vDrop                // dropped with nothing sent (a listener's full queue, an RST to nothing)
)

var verdictNames = [...]string{
	vNone: "none", vConn: "to-connection", vListener: "syn-to-listener", vComplete: "handshake-completed",
	vRequest: "to-request", vTWAck: "time-wait-ack", vTWRst: "time-wait-rst", vTWDrop: "time-wait-silent",
	vTWTakeover: "time-wait-takeover", vNoSocket: "no-socket-rst", vListenerRst: "listener-rst", vDrop: "dropped",
}

// String names the verdict as the report prints it.
func (v verdict) String() string { return verdictNames[v] }

// endState is the kernel's socket at one end of a flow, as the trace
// shows it.
type endState uint8

const (
	stNone     endState = iota // no socket
	stSynSent                  // a client's connect in progress
	stRequest                  // a server's request (SYN_RECV)
	stOpen                     // a connection (ESTABLISHED to LAST_ACK)
	stTimeWait                 // TIME_WAIT
)

// rconn is the replay stack's connection: the Demux's C.
type rconn struct {
	id   int
	flow socktable.Flow
}

// end is one socket of a flow and what the replayer tracks of it: the
// kernel's sequence numbers as this end sends them, and the close
// handshake.
type end struct {
	ep     tuple.Endpoint
	server bool
	state  endState
	conn   *rconn

	// offset is, for a server end, the kernel's ISN less the Demux's: the
	// peer's acknowledgments are rewritten by it, and this end's sequence
	// numbers told to the Demux (TimeWait) are the kernel's less it.
	offset uint32
	ourISS uint32

	sndNxt            uint32 // one past the last byte (or SYN, FIN) sent
	finSent, finAcked bool
	finSeq            uint32 // the FIN's sequence number
	activeCloser      bool   // sent its FIN before it received one
	rcvFin            bool
	rcvNxt            uint32 // the peer's next sequence number
	hasTS             bool
	tsRecent          uint32 // the peer's last TSval
}

// reset readies the end for a new connection on the same tuple.
func (e *end) reset() {
	*e = end{ep: e.ep, server: e.server}
}

// rflow is a flow: a client end (the one that sent the first SYN) and a
// server end.
type rflow struct {
	client, server *end
	name           string
	// seed: the flow's first packet was not a SYN; it was open before the
	// capture began, and is seeded as established at that packet.
	seed bool
}

// disagreement is one segment the Demux answered otherwise than the
// kernel.
type disagreement struct {
	Packet int    `json:"packet"`
	Flow   string `json:"flow"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Why    string `json:"why,omitempty"`
}

// replayReport is what a replay found.
type replayReport struct {
	File           string         `json:"file"`
	Frames         int            `json:"frames"`
	Segments       int            `json:"segments"`
	Flows          int            `json:"flows"`
	Seeded         int            `json:"seeded"` // flows open before the capture began
	Listeners      int            `json:"listeners"`
	Agreed         int            `json:"agreed"`
	Misdirected    int            `json:"misdirected"`
	Skipped        map[string]int `json:"skipped"`
	Verdicts       map[string]int `json:"verdicts"` // agreed segments by verdict
	Disagreements  []disagreement `json:"disagreements,omitempty"`
	SegmentsPerSec float64        `json:"segments_per_sec"`
	RateNote       string         `json:"rate_note"`
	// Rates is segments/s of the replay's script by implementation
	// (socktable's is SegmentsPerSec); CheckedPerSec the checked replay's
	// own pace, its bookkeeping included.
	Rates         map[string]float64 `json:"rates"`
	DeliverRates  map[string]float64 `json:"deliver_rates"`
	CheckedPerSec float64            `json:"checked_per_sec"`
	Counters      socktable.Counters
}

// maxDisagreements bounds the report's list (the count is exact).
const maxDisagreements = 50

// replayer holds one replay's Demux and flows.
type replayer struct {
	d         *socktable.Demux[rconn]
	clock     *timewait.ManualClock
	pkts      []packet
	next      []int // the next packet of the same flow, -1 for none
	flows     map[tuple.Tuple]*rflow
	listeners map[tuple.Endpoint]int // a listener's endpoint to its group
	groupOf   map[*socktable.Listener[rconn]]int
	acceptors map[*socktable.Listener[rconn]]*accept.Acceptor[socktable.Accepted[rconn]]
	conns     int
	rep       *replayReport
	script    script // what the replay did, for the rate runs
}

// replyWindow is how soon after a segment the kernel's answer must come to
// count as its answer: on loopback it comes at once, in the same softirq.
const replyWindow = 100 * time.Millisecond

// replayFile replays a capture with its manifest (x.listeners.json beside
// x.pcap or x.pcapng, gzipped or not); without one, the listeners are the
// endpoints that sent SYN-ACKs.
func replayFile(path string) (*replayReport, error) {
	c, err := readCapture(path)
	if err != nil {
		return nil, err
	}
	specs, err := readManifest(manifestPath(path))
	switch {
	case errors.Is(err, os.ErrNotExist):
		specs = listenersFromSynAcks(c.packets)
	case err != nil:
		return nil, err
	}
	rep, err := replay(c, specs)
	if err != nil {
		return nil, err
	}
	rep.File = path
	return rep, nil
}

// manifestPath is x.listeners.json for x.pcap, x.pcapng and their .gz.
func manifestPath(capturePath string) string {
	p := strings.TrimSuffix(capturePath, ".gz")
	for _, ext := range []string{".pcapng", ".pcap"} {
		if strings.HasSuffix(p, ext) {
			return strings.TrimSuffix(p, ext) + ".listeners.json"
		}
	}
	return p + ".listeners.json"
}

func readManifest(path string) ([]listenerSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var specs []listenerSpec
	if err := json.Unmarshal(b, &specs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, s := range specs {
		if s.Proto != "" && s.Proto != "tcp" {
			return nil, fmt.Errorf("%s: proto %q: only tcp listeners are replayed", path, s.Proto)
		}
		if s.Port == 0 || s.ReusePort < 0 {
			return nil, fmt.Errorf("%s: listener %s:%d: port 0 or a negative reuseport count", path, s.Addr, s.Port)
		}
	}
	return specs, nil
}

// listenersFromSynAcks guesses the listeners of a capture with no
// manifest: every endpoint that answered a SYN with a SYN-ACK, none of
// them in a reuseport group.
func listenersFromSynAcks(pkts []packet) []listenerSpec {
	seen := map[tuple.Endpoint]bool{}
	var specs []listenerSpec
	for _, p := range pkts {
		if p.seg.Flags&(tuple.SYN|tuple.ACK) != tuple.SYN|tuple.ACK {
			continue
		}
		src := p.seg.Tuple.Remote
		if seen[src] {
			continue
		}
		seen[src] = true
		specs = append(specs, listenerSpec{Proto: "tcp", Addr: src.Addr.String(), Port: src.Port, Backlog: 4096,
			V6Only: !src.Addr.Is4()})
	}
	return specs
}

// replay runs the capture's segments through a fresh Demux holding the
// manifest's listeners, checked against the kernel's replies, then times
// the replay's script through every implementation.
func replay(c *capture, specs []listenerSpec) (*replayReport, error) {
	r, err := newCheckedReplay(c, specs)
	if err != nil {
		return nil, err
	}
	whole, delivering, err := replayRates(&r.script, specs, r.rep.Counters)
	if err != nil {
		return nil, err
	}
	r.rep.Rates, r.rep.DeliverRates = whole, delivering
	r.rep.SegmentsPerSec = whole["socktable"]
	r.rep.RateNote = "one goroutine, DeliverBatch runs of up to 16 segments and the lifecycle calls between them, " +
		"replayed from a script of the checked replay on a fresh demux (no checking); rates has the baselines, " +
		"deliver_rates the same runs counting only the time in DeliverBatch"
	return r.rep, nil
}

// newCheckedReplay replays the capture, checking every segment, and
// returns the replayer with its report and script (its Demux closed).
func newCheckedReplay(c *capture, specs []listenerSpec) (*replayer, error) {
	clock := &timewait.ManualClock{}
	d, err := socktable.NewDemux[rconn](socktable.Options{Clock: clock, Capacity: 1 << 12, AcceptShards: 1})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	r := &replayer{d: d, clock: clock, pkts: c.packets, flows: map[tuple.Tuple]*rflow{},
		listeners: map[tuple.Endpoint]int{}, groupOf: map[*socktable.Listener[rconn]]int{},
		acceptors: map[*socktable.Listener[rconn]]*accept.Acceptor[socktable.Accepted[rconn]]{},
		rep:       &replayReport{Frames: c.frames, Skipped: map[string]int{}, Verdicts: map[string]int{}}}
	for k, v := range c.skipped {
		r.rep.Skipped[k] += v
	}
	for g, s := range specs {
		if err := r.listen(g, s); err != nil {
			return nil, err
		}
	}
	r.linkFlows()
	start := time.Now()
	for i := range r.pkts {
		r.step(i)
	}
	elapsed := time.Since(start)
	r.rep.Segments = len(r.pkts)
	r.rep.Flows = len(r.flows)
	r.rep.Counters = d.Counters()
	r.rep.CheckedPerSec = float64(len(r.pkts)) / elapsed.Seconds()
	return r, nil
}

// listen makes listener group g: s.ReusePort members (one without
// SO_REUSEPORT), of one owner.
func (r *replayer) listen(g int, s listenerSpec) error {
	addr, err := specAddr(s)
	if err != nil {
		return err
	}
	family := 6
	if addr.Is4() {
		family = 4
	}
	for range max(s.ReusePort, 1) {
		b, err := r.d.Bind(table.BindRequest{Family: family, V6Only: s.V6Only, Addr: addr, Port: s.Port,
			ReusePort: s.ReusePort > 0, Owner: 1})
		if err != nil {
			return fmt.Errorf("listener %s:%d: %w", s.Addr, s.Port, err)
		}
		l, err := r.d.Listen(b, socktable.ListenOptions{Backlog: s.Backlog})
		if err != nil {
			return fmt.Errorf("listener %s:%d: %w", s.Addr, s.Port, err)
		}
		a, err := l.Register(accept.Unbound)
		if err != nil {
			return err
		}
		r.groupOf[l], r.acceptors[l] = g, a
		r.rep.Listeners++
	}
	r.listeners[tuple.Endpoint{Addr: addr, Port: s.Port}] = g
	return nil
}

// specAddr is a manifest listener's address.
func specAddr(s listenerSpec) (tuple.Addr, error) {
	ip, err := netip.ParseAddr(s.Addr)
	if err != nil {
		return tuple.Addr{}, fmt.Errorf("listener %q: %w", s.Addr, err)
	}
	addr, err := tuple.AddrFromNetIP(ip)
	if err != nil {
		return tuple.Addr{}, fmt.Errorf("listener %q: %w", s.Addr, err)
	}
	return addr, nil
}

// pairKey names a flow whichever way a packet goes.
func pairKey(t tuple.Tuple) tuple.Tuple {
	if t.Local.AddrPort().Compare(t.Remote.AddrPort()) <= 0 {
		return t
	}
	return tuple.Tuple{Local: t.Remote, Remote: t.Local}
}

// linkFlows finds, for each packet, the next packet of its flow.
func (r *replayer) linkFlows() {
	r.next = make([]int, len(r.pkts))
	last := map[tuple.Tuple]int{}
	for i := len(r.pkts) - 1; i >= 0; i-- {
		k := pairKey(r.pkts[i].seg.Tuple)
		if j, ok := last[k]; ok {
			r.next[i] = j
		} else {
			r.next[i] = -1
		}
		last[k] = i
	}
}

// reply returns the kernel's answer to packet i: the flow's next packet,
// if it goes the other way and comes within replyWindow.
func (r *replayer) reply(i int) (*tuple.Segment, bool) {
	j := r.next[i]
	if j < 0 || r.pkts[j].at-r.pkts[i].at > replyWindow || r.pkts[j].seg.Tuple.Local != r.pkts[i].seg.Tuple.Remote {
		return nil, false
	}
	return &r.pkts[j].seg, true
}

// flowOf returns packet seg's flow, the end it arrives at and the end
// that sent it, making the flow at its first packet: the server end is a
// SYN's destination, else the listener's end, else a SYN-ACK's source,
// else (a stray segment) the destination.
func (r *replayer) flowOf(seg *tuple.Segment) (f *rflow, dst, src *end) {
	t := seg.Tuple
	if f := r.flows[t]; f != nil { // arriving at the server end
		return f, f.server, f.client
	}
	if f := r.flows[tuple.Tuple{Local: t.Remote, Remote: t.Local}]; f != nil {
		return f, f.client, f.server
	}
	serverIsDst := false
	_, dstListens := r.listeners[t.Local]
	_, srcListens := r.listeners[t.Remote]
	switch {
	case seg.Flags&(tuple.SYN|tuple.ACK) == tuple.SYN:
		serverIsDst = true
	case dstListens:
		serverIsDst = true
	case srcListens:
	case seg.Flags&(tuple.SYN|tuple.ACK) == tuple.SYN|tuple.ACK:
	default:
		serverIsDst = true // a stray segment between two non-listeners: the kernel's reply decides
	}
	f = &rflow{seed: seg.Flags&tuple.SYN == 0}
	if serverIsDst {
		f.server, f.client = &end{ep: t.Local, server: true}, &end{ep: t.Remote}
	} else {
		f.server, f.client = &end{ep: t.Remote, server: true}, &end{ep: t.Local}
	}
	f.name = f.client.ep.String() + " > " + f.server.ep.String()
	r.flows[tuple.Tuple{Local: f.server.ep, Remote: f.client.ep}] = f
	if serverIsDst {
		return f, f.server, f.client
	}
	return f, f.client, f.server
}

// step replays packet i.
func (r *replayer) step(i int) {
	p := &r.pkts[i]
	r.clock.Set(p.at)
	r.d.Advance()
	seg := p.seg
	f, dst, src := r.flowOf(&seg)
	if f.seed {
		// Open before the capture, unless the kernel resets it at once
		// (a stray segment, which no socket owns).
		f.seed = false
		if rep, ok := r.reply(i); seg.Flags&tuple.RST == 0 && !(ok && rep.Flags&tuple.RST != 0) {
			r.seed(i, f, &seg)
		}
	}
	r.beforeSend(i, f, dst, src, &seg)
	want, ok := r.expect(i, dst, &seg)
	if !ok {
		r.rep.Skipped[skipNoOracle]++
		r.track(i, f, dst, src, &seg, socktable.Result[rconn]{})
		return
	}
	in := seg
	op := scriptOp{kind: opDeliver, at: r.pkts[i].at, seg: seg}
	if dst.server && in.Flags&tuple.ACK != 0 {
		in.Ack -= dst.offset // acknowledging the Demux's ISN, as the client would have
		op.rewrite = r.script.endID(dst)
	}
	r.script.add(op)
	res := r.d.Deliver(&in, 0, 0)
	r.check(i, f, dst, want, res)
	r.track(i, f, dst, src, &seg, res)
}

// beforeSend applies what sending seg tells of its sender's socket before
// it arrives: a client's first SYN means a connect, an RST that the socket
// is gone.
func (r *replayer) beforeSend(i int, f *rflow, dst, src *end, seg *tuple.Segment) {
	switch {
	case seg.Flags&tuple.RST != 0:
		if src.state == stOpen || src.state == stSynSent {
			r.abort(src)
		}
	case seg.Flags&(tuple.SYN|tuple.ACK) == tuple.SYN && src == f.client && src.state != stSynSent:
		if src.state == stOpen {
			r.abort(src) // a SYN on a tuple the kernel had let go of without a trace of it
		}
		r.connect(i, f, src, seg.Seq)
	}
}

// seed opens a flow that was established before the capture began, at its
// first packet seg: the client's side connected, the server's through a
// handshake made up for it (a SYN and the final ACK delivered to the
// Demux), with the sequence numbers seg shows. A flow whose server end is
// no listener of the manifest is not seeded (its segments then find no
// socket, as the kernel's replies will tell).
func (r *replayer) seed(i int, f *rflow, seg *tuple.Segment) {
	if _, ok := r.listeners[f.server.ep]; !ok {
		return
	}
	// The client's next sequence number and the server's, in the kernel's
	// spaces, as this packet shows them.
	var clientSeq, serverSeq uint32
	if seg.Tuple.Local == f.server.ep {
		clientSeq, serverSeq = seg.Seq, seg.Ack
	} else {
		clientSeq, serverSeq = seg.Ack, seg.Seq
	}
	r.connect(i, f, f.client, clientSeq-1)
	t := tuple.Tuple{Local: f.server.ep, Remote: f.client.ep}
	syn := tuple.Segment{Tuple: t, Proto: tuple.ProtoTCP, Version: seg.Version, Flags: tuple.SYN, Seq: clientSeq - 1,
		Window: 65535, HasTimestamps: seg.HasTimestamps, TSval: seg.TSval}
	s := f.server
	at := r.pkts[i].at
	r.script.add(scriptOp{kind: opDeliver, at: at, seg: syn, synOf: r.script.endID(s)})
	res := r.d.Deliver(&syn, 0, 0)
	if res.Outcome != socktable.Send || res.Reply.Flags&tuple.SYN == 0 {
		return
	}
	ack := syn
	ack.Flags, ack.Seq, ack.Ack = tuple.ACK, clientSeq, res.Reply.Seq+1
	s.state, s.ourISS, s.offset = stRequest, res.Reply.Seq, serverSeq-(res.Reply.Seq+1)
	r.script.add(scriptOp{kind: opOffset, at: at, end: r.script.endID(s), kernelISS: serverSeq - 1})
	kernelAck := ack
	kernelAck.Ack = serverSeq
	r.script.add(scriptOp{kind: opDeliver, at: at, seg: kernelAck, rewrite: r.script.endID(s)})
	res = r.d.Deliver(&ack, 0, 0)
	if res.Outcome == socktable.Completed {
		r.establish(s, res)
	}
	s.state, s.sndNxt, s.rcvNxt = stOpen, serverSeq, clientSeq
	c := f.client
	c.state, c.sndNxt, c.rcvNxt = stOpen, clientSeq, serverSeq
	r.rep.Seeded++
}

// connect opens the client end's connection from the port the kernel
// chose: bound explicitly (SO_REUSEADDR, so that the end's own TIME_WAIT
// tuple does not refuse the bind) and connected, which takes the
// TIME_WAIT tuple over as an explicitly bound connect does — the kernel's
// own choice (tcp_tw_reuse) having been made already.
func (r *replayer) connect(i int, f *rflow, e *end, iss uint32) {
	family := 6
	if e.ep.Addr.Is4() {
		family = 4
	}
	e.reset()
	e.state = stSynSent
	e.sndNxt = iss + 1
	r.script.add(scriptOp{kind: opConnect, at: r.pkts[i].at, end: r.script.endID(e),
		t: tuple.Tuple{Local: e.ep, Remote: f.server.ep}, family: family})
	r.conns++
	c := &rconn{id: r.conns}
	b, err := r.d.Bind(table.BindRequest{Family: family, Addr: e.ep.Addr, Port: e.ep.Port, ReuseAddr: true, Owner: 2})
	if err == nil {
		c.flow, err = r.d.ConnectBound(b, e.ep.Addr, f.server.ep, c)
		if err != nil {
			_ = r.d.Ports().Release(b)
		}
	}
	if err != nil {
		r.disagree(r.pkts[i].index, f, "connect", "refused", err.Error())
		return
	}
	e.conn = c
}

// abort ends an end's connection at once (an RST sent or received, or a
// passive close's last ACK).
func (r *replayer) abort(e *end) {
	if e.conn != nil {
		r.script.add(scriptOp{kind: opAbort, at: r.clock.Now(), end: r.script.endID(e)})
		_ = r.d.Abort(e.conn.flow, e.conn)
	}
	e.state, e.conn = stNone, nil
}

// expect reads the kernel's verdict on a segment arriving at dst: from
// dst's socket as the trace has made it, and for the cases where that
// does not decide, from the kernel's reply. false when the trace does not
// say (no reply where one decides).
func (r *replayer) expect(i int, dst *end, seg *tuple.Segment) (verdict, bool) {
	f := seg.Flags
	switch dst.state {
	case stOpen, stSynSent:
		return vConn, true
	case stRequest:
		if f&(tuple.SYN|tuple.RST) == 0 && f&tuple.ACK != 0 && seg.Ack == dst.sndNxt {
			return vComplete, true
		}
		return vRequest, true
	case stTimeWait:
		rep, ok := r.reply(i)
		switch {
		case !ok:
			return vTWDrop, true
		case rep.Flags&tuple.RST != 0:
			return vTWRst, true
		case rep.Flags&tuple.SYN != 0 && f&tuple.SYN != 0:
			return vTWTakeover, true
		case rep.Flags&tuple.ACK != 0:
			return vTWAck, true
		}
		return vTWDrop, true
	}
	// No socket of dst's own: a listener's, or none. The kernel's reply
	// tells which, whatever the manifest says (a listener it lacks shows
	// as a SYN-ACK the Demux cannot give).
	_, listening := r.listeners[dst.ep]
	listening = listening && dst.server
	rep, replied := r.reply(i)
	switch {
	case f&tuple.RST != 0:
		return vDrop, true // neither a listener nor no socket answers an RST
	case f&(tuple.SYN|tuple.ACK) == tuple.SYN:
		switch {
		case replied && rep.Flags&(tuple.SYN|tuple.ACK) == tuple.SYN|tuple.ACK:
			return vListener, true
		case replied && rep.Flags&tuple.RST != 0:
			return vNoSocket, true
		case !replied && listening:
			return vDrop, true // a full queue: the kernel said nothing
		}
	case replied && rep.Flags&tuple.RST != 0:
		if listening {
			return vListenerRst, true
		}
		return vNoSocket, true
	}
	return vNone, false
}

// classify reads a Result as a verdict.
func classify(res socktable.Result[rconn]) verdict {
	switch res.Outcome {
	case socktable.ToConn:
		return vConn
	case socktable.Completed:
		return vComplete
	}
	switch res.Reason {
	case socktable.ReasonSynQueued, socktable.ReasonSynCookie:
		return vListener
	case socktable.ReasonRequest, socktable.ReasonEmbryonicReset, socktable.ReasonBadACK:
		return vRequest
	case socktable.ReasonTimeWait:
		switch {
		case res.Reply.Flags&tuple.RST != 0:
			return vTWRst
		case res.Reply.Flags&tuple.ACK != 0:
			return vTWAck
		}
		return vTWDrop
	case socktable.ReasonNoSocket:
		if res.Reply.Flags&tuple.RST != 0 {
			return vNoSocket
		}
		return vDrop
	case socktable.ReasonListenerRST, socktable.ReasonBadCookie:
		return vListenerRst
	}
	return vDrop
}

// check compares the Demux's answer with the kernel's.
func (r *replayer) check(i int, f *rflow, dst *end, want verdict, res socktable.Result[rconn]) {
	got := classify(res)
	if want == vTWTakeover && got == vListener {
		got = vTWTakeover
	}
	why := ""
	switch {
	case got != want:
		why = res.Reason.String()
	case got == vConn && (dst.conn == nil || res.Conn != dst.conn):
		why = "another connection's owner"
	case (got == vListener || got == vTWTakeover) && r.groupOf[res.Listener] != r.listeners[dst.ep]:
		why = "a listener of another group"
	case got == vTWAck:
		if rep, ok := r.reply(i); ok && rep.Ack != res.Reply.Ack {
			why = fmt.Sprintf("acknowledges %d, the kernel %d", res.Reply.Ack, rep.Ack)
		}
	}
	if why != "" {
		r.disagree(r.pkts[i].index, f, want.String(), got.String(), why)
		return
	}
	r.rep.Agreed++
	r.rep.Verdicts[want.String()]++
}

func (r *replayer) disagree(packet int, f *rflow, want, got, why string) {
	r.rep.Misdirected++
	if len(r.rep.Disagreements) < maxDisagreements {
		r.rep.Disagreements = append(r.rep.Disagreements, disagreement{Packet: packet, Flow: f.name, Want: want, Got: got, Why: why})
	}
}

// track moves the flow's ends as the kernel's sockets moved on this
// segment: the handshake's steps, the sequence numbers and FINs, TIME_WAIT
// when the active closer has its FIN acknowledged and the peer's in hand,
// the end of the passive closer, and an RST's.
func (r *replayer) track(i int, f *rflow, dst, src *end, seg *tuple.Segment, res socktable.Result[rconn]) {
	fl := seg.Flags
	if fl&tuple.RST != 0 {
		switch dst.state {
		case stOpen, stSynSent:
			r.abort(dst)
		case stRequest: // the Demux removed the request itself, as the kernel did
			dst.state = stNone
		case stTimeWait:
			// The kernel kills a TIME_WAIT socket only for an RST at
			// exactly rcv_nxt (tcp_timewait_state_process, tcp_rfc1337
			// off); any other RST it ignores. The trace shows neither, so
			// the rule is the kernel's, read from its source.
			if seg.Seq == dst.rcvNxt {
				dst.state = stNone
			}
		}
		return
	}
	// The sender's sequence space.
	endSeq := seg.Seq + uint32(seg.PayloadLen)
	if fl&tuple.SYN != 0 {
		endSeq++
	}
	if fl&tuple.FIN != 0 {
		src.finSent, src.finSeq = true, endSeq
		// A FIN that does not acknowledge the peer's was sent before its
		// sender took the peer's in (FIN_WAIT1; in a simultaneous close
		// both ends are so, and both end in TIME_WAIT); one that does is
		// the passive closer's (LAST_ACK).
		src.activeCloser = !(dst.finSent && fl&tuple.ACK != 0 && !seqAfter(dst.finSeq+1, seg.Ack))
		endSeq++
	}
	if seqAfter(endSeq, src.sndNxt) || src.sndNxt == 0 {
		src.sndNxt = endSeq
	}
	switch {
	case fl&(tuple.SYN|tuple.ACK) == tuple.SYN && dst.server:
		// A SYN the kernel answered with a SYN-ACK: a request, fresh (a
		// TIME_WAIT tuple taken over starts a new connection).
		if rep, ok := r.reply(i); ok && rep.Flags&(tuple.SYN|tuple.ACK) == tuple.SYN|tuple.ACK &&
			(dst.state == stNone || dst.state == stTimeWait) {
			dst.reset()
			dst.state = stRequest
			dst.rcvNxt = seg.Seq + 1
			if res.Outcome == socktable.Send && res.Reply.Flags&tuple.SYN != 0 {
				dst.ourISS = res.Reply.Seq
				if op := r.script.last(); op != nil {
					op.synOf = r.script.endID(dst)
				}
			}
		}
	case fl&(tuple.SYN|tuple.ACK) == tuple.SYN|tuple.ACK && src.server:
		// The kernel's SYN-ACK: its ISN, against which the client's ACKs
		// are rewritten.
		src.offset = seg.Seq - src.ourISS
		r.script.add(scriptOp{kind: opOffset, at: r.pkts[i].at, end: r.script.endID(src), kernelISS: seg.Seq})
		if dst.state == stSynSent {
			dst.state = stOpen
		}
	case dst.state == stRequest && fl&tuple.ACK != 0 && fl&tuple.SYN == 0 && seg.Ack == dst.sndNxt:
		dst.state = stOpen // the kernel's child socket
		if res.Outcome == socktable.Completed {
			r.establish(dst, res)
		}
	}
	if fl&tuple.ACK != 0 && dst.finSent && !seqAfter(dst.finSeq+1, seg.Ack) {
		dst.finAcked = true
	}
	if seqAfter(endSeq, dst.rcvNxt) || dst.rcvNxt == 0 {
		dst.rcvNxt = endSeq
	}
	if fl&tuple.FIN != 0 {
		dst.rcvFin = true
	}
	if seg.HasTimestamps {
		dst.hasTS, dst.tsRecent = true, seg.TSval
	}
	if dst.state == stOpen && dst.finSent && dst.finAcked && dst.rcvFin {
		if dst.activeCloser {
			r.timeWait(dst)
		} else {
			r.abort(dst) // LAST_ACK's ACK: the socket is gone, no TIME_WAIT
		}
	}
}

// establish makes the connection a completed handshake yields, and
// accepts it at once (the trace's server accepted promptly).
func (r *replayer) establish(e *end, res socktable.Result[rconn]) {
	if op := r.script.last(); op != nil {
		op.establishAt = r.script.endID(e)
	}
	r.conns++
	c := &rconn{id: r.conns}
	fl, err := r.d.Establish(&res.Handshake, c)
	if err != nil {
		return
	}
	c.flow, e.conn = fl, c
	if a := r.acceptors[res.Handshake.Listener]; a != nil {
		_, _ = a.TryAccept()
	}
}

// timeWait closes the end's connection into TIME_WAIT with the kernel's
// sequence state, in the Demux's sequence space.
func (r *replayer) timeWait(e *end) {
	e.state = stTimeWait
	if e.conn == nil {
		return
	}
	st := timewait.State{RcvNxt: e.rcvNxt, SndNxt: e.finSeq + 1 - e.offset, RcvWnd: 65535,
		HasTimestamps: e.hasTS, TSRecent: e.tsRecent, TSRecentStamp: r.clock.Now()}
	kernel := st
	kernel.SndNxt = e.finSeq + 1
	r.script.add(scriptOp{kind: opTimeWait, at: r.clock.Now(), end: r.script.endID(e), st: kernel})
	_ = r.d.TimeWait(e.conn.flow, e.conn, st)
	e.conn = nil
}

// seqAfter reports a after b in sequence space.
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }
