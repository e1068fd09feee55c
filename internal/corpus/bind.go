package corpus

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
)

// The kinds of a BindCase.
const (
	// KindPair is two socket ops: the second does bind+listen, so that its
	// bind answer is the bind-only answer and the listen answer comes
	// with it.
	KindPair = "pair"
	// KindSequence is 3 or 4 ops, late listens among them.
	KindSequence = "sequence"
	// KindTimewait is one op meeting the TIME_WAIT socket its Prelude made.
	KindTimewait = "timewait"
	// KindPort0 binds port 0: the kernel picks the port, so a replay can
	// check only the results, that each BoundPort lies within PortRange,
	// and that no two sockets of the case got the same port.
	KindPort0 = "port0"
)

// The actions of a BindOp. The first three make a fresh socket, as the
// op's BindSock says, and bind it; ActionListen makes none.
const (
	ActionBind        = "bind"
	ActionBindListen  = "bind+listen"  // bind(2), then listen(2)
	ActionBindConnect = "bind+connect" // bind(2), then connect(2) to ConnectAddr:ConnectPort
	ActionListen      = "listen"       // a late listen(2) on the socket of op Target
)

// The stages of a BindOp: the syscall that failed.
const (
	StageBind    = "bind"
	StageListen  = "listen"
	StageConnect = "connect"
)

// The results of a BindOp that are not errno names ("EADDRINUSE").
const (
	// ResultOK is every syscall of the op succeeding.
	ResultOK = "ok"
	// ResultSkippedNotBound is a late listen whose target's bind had
	// failed, so that there was no socket to listen on.
	ResultSkippedNotBound = "SKIPPED_TARGET_NOT_BOUND"
)

// Who closes a KindTimewait case's connection first (Prelude.WhoClosedFirst).
const (
	// ClosedByServer is the accepted socket, bound to the case's port,
	// closing first: the TIME_WAIT is on the port.
	ClosedByServer = "server"
	// ClosedByClient is the client, on an ephemeral port, closing first:
	// the port is left with nothing, which makes the case a control.
	ClosedByClient = "client"
)

// BindSock is how a socket of a bind case is made and where it is bound:
// the socket fields of a BindOp, and a Prelude's listener.
type BindSock struct {
	Family    int    `json:"family"`    // 4 (AF_INET) or 6 (AF_INET6)
	V6Only    *bool  `json:"v6only"`    // IPV6_V6ONLY for family 6; nil (JSON null) for family 4
	Addr      string `json:"addr"`      // the address passed to bind(2), in the family's own form ("::ffff:127.0.0.1" stays v4-mapped)
	Port      int    `json:"port"`      // the port passed to bind(2)
	ReuseAddr bool   `json:"reuseaddr"` // SO_REUSEADDR, set before bind(2)
	ReusePort bool   `json:"reuseport"` // SO_REUSEPORT, set before bind(2)
	UID       int    `json:"uid"`       // the owner: the euid the socket is created, bound and used under (0 or 1000)
	// Device is the interface index the socket was bound to with
	// SO_BINDTOIFINDEX before bind(2) (SO_BINDTODEVICE by index); 0, and
	// absent in JSON, for none.
	Device int `json:"device,omitempty"`
}

// BindOp is one op of a BindCase, in one of two shapes. A socket op
// (ActionBind, ActionBindListen, ActionBindConnect) makes a fresh socket
// as its BindSock says, binds it and then listens or connects; in JSON its
// BindSock's fields come first, "v6only" always among them (null for
// family 4). A late listen (ActionListen) calls listen(2) on the socket of
// the earlier socket op Target, and its JSON is only
// {"action","target","result",["stage"]}: its BindSock, ConnectAddr,
// ConnectPort and BoundPort are zero. One struct with omitempty tags
// cannot write both shapes, so BindOp has its own MarshalJSON and
// UnmarshalJSON.
//
// Every socket stays open until the case ends, whatever its op's result:
// a socket whose listen or connect failed stays bound.
type BindOp struct {
	BindSock
	Action string
	// ConnectAddr and ConnectPort are where a bind+connect op connects,
	// "connect_to": [addr, port] in JSON: a helper listener of the
	// recorder's, on a port no case uses, which is not an op. They are
	// zero for any other action.
	ConnectAddr string
	ConnectPort int
	// Target is the 0-based index of the op whose socket a late listen
	// listens on: always an earlier socket op.
	Target int
	// Result is ResultOK, the failing syscall's errno name
	// ("EADDRINUSE"), or, for a late listen, ResultSkippedNotBound.
	Result string
	// Stage is the failing syscall (StageBind, StageListen,
	// StageConnect); empty when Result is ResultOK or
	// ResultSkippedNotBound.
	Stage string
	// BoundPort is the port getsockname(2) reported after a successful
	// bind (the one the kernel picked, for port 0); 0 when the bind
	// failed.
	BoundPort int
	// Disconnect marks a UDP socket op whose socket, once its bind (and
	// connect) succeeded, was disconnected: connect(2) with AF_UNSPEC.
	// AfterAddr and AfterPort are what getsockname(2) reported then
	// ("after_disconnect": [addr, port]): port 0 for a socket the
	// disconnect unhashed. All three are zero for other ops; a failed
	// op's socket was not disconnected and has no AfterAddr.
	Disconnect bool
	AfterAddr  string
	AfterPort  int
}

// ResultAt returns what the kernel answered at stage: Result if the op
// failed there, ResultOK otherwise.
func (o *BindOp) ResultAt(stage string) string {
	if o.Stage == stage {
		return o.Result
	}
	return ResultOK
}

// hostPort is the JSON [addr, port] of a connect target.
type hostPort struct {
	addr string
	port int
}

// MarshalJSON writes h as the array [addr, port].
func (h hostPort) MarshalJSON() ([]byte, error) { return json.Marshal([]any{h.addr, h.port}) }

// UnmarshalJSON reads the array [addr, port]: exactly a string and a
// number.
func (h *hostPort) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != 2 {
		return fmt.Errorf("connect_to has %d elements, not [addr, port]", len(raw))
	}
	if err := json.Unmarshal(raw[0], &h.addr); err != nil {
		return fmt.Errorf("connect_to address: %w", err)
	}
	if err := json.Unmarshal(raw[1], &h.port); err != nil {
		return fmt.Errorf("connect_to port: %w", err)
	}
	return nil
}

// bindOpJSON is a socket op's JSON, and, for decoding, every field either
// shape may hold (Target is a pointer to tell whether it was there).
type bindOpJSON struct {
	BindSock
	Action    string    `json:"action"`
	ConnectTo *hostPort `json:"connect_to,omitempty"`
	Target    *int      `json:"target,omitempty"`
	Result    string    `json:"result"`
	Stage     string    `json:"stage,omitempty"`
	BoundPort int       `json:"bound_port,omitempty"`
	// Disconnect and After are BindOp's Disconnect, AfterAddr and
	// AfterPort.
	Disconnect bool      `json:"disconnect,omitempty"`
	After      *hostPort `json:"after_disconnect,omitempty"`
}

// listenOpJSON is a late listen's JSON.
type listenOpJSON struct {
	Action string `json:"action"`
	Target int    `json:"target"`
	Result string `json:"result"`
	Stage  string `json:"stage,omitempty"`
}

// MarshalJSON writes the op in the shape its Action calls for.
func (o BindOp) MarshalJSON() ([]byte, error) {
	if o.Action == ActionListen {
		return json.Marshal(listenOpJSON{o.Action, o.Target, o.Result, o.Stage})
	}
	w := bindOpJSON{BindSock: o.BindSock, Action: o.Action, Result: o.Result, Stage: o.Stage, BoundPort: o.BoundPort, Disconnect: o.Disconnect}
	if o.Action == ActionBindConnect {
		w.ConnectTo = &hostPort{o.ConnectAddr, o.ConnectPort}
	}
	if o.Disconnect && o.Result == ResultOK {
		w.After = &hostPort{o.AfterAddr, o.AfterPort}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads either shape, strictly: no unknown fields, a late
// listen with its "target" and no socket fields, a socket op without a
// "target", and "connect_to" exactly on a bind+connect.
func (o *BindOp) UnmarshalJSON(b []byte) error {
	var w bindOpJSON
	if err := decodeStrict(b, &w); err != nil {
		return err
	}
	*o = BindOp{BindSock: w.BindSock, Action: w.Action, Result: w.Result, Stage: w.Stage, BoundPort: w.BoundPort, Disconnect: w.Disconnect}
	if (w.After != nil) != (w.Disconnect && w.Result == ResultOK) {
		return fmt.Errorf("after_disconnect %v on an op with disconnect %v and result %s", w.After != nil, w.Disconnect, w.Result)
	}
	if w.After != nil {
		o.AfterAddr, o.AfterPort = w.After.addr, w.After.port
	}
	switch w.Action {
	case ActionListen:
		if w.Target == nil {
			return errors.New("late listen without a target")
		}
		if w.BindSock != (BindSock{}) || w.ConnectTo != nil || w.BoundPort != 0 || w.Disconnect {
			return errors.New("late listen with socket fields")
		}
		o.Target = *w.Target
	case ActionBind, ActionBindListen, ActionBindConnect:
		if w.Target != nil {
			return fmt.Errorf("%s op with a target", w.Action)
		}
		if (w.ConnectTo != nil) != (w.Action == ActionBindConnect) {
			return fmt.Errorf("%s op with connect_to %v", w.Action, w.ConnectTo != nil)
		}
		if w.ConnectTo != nil {
			o.ConnectAddr, o.ConnectPort = w.ConnectTo.addr, w.ConnectTo.port
		}
	default:
		return fmt.Errorf("unknown action %q", w.Action)
	}
	return nil
}

// Prelude is how a KindTimewait case made its TIME_WAIT socket before its
// op ran: a listener as Listener says (bound to the case's port, and
// listening), a client of ClientDst's family connecting to ClientDst on
// that port, the connection accepted, then closed by WhoClosedFirst
// first and the other side next, and the listener closed. The TIME_WAIT
// was seen in /proc/net/tcp before the op ran; a case where it did not
// appear is not in the corpus.
type Prelude struct {
	Listener       BindSock `json:"listener"`
	ClientDst      string   `json:"client_dst"`
	WhoClosedFirst string   `json:"who_closed_first"` // ClosedByServer or ClosedByClient
}

// The protocols of a BindCase.
const (
	// ProtoTCP is TCP sockets (SOCK_STREAM), the cases of bind.jsonl; a
	// case with no proto field is TCP.
	ProtoTCP = "tcp"
	// ProtoUDP is UDP sockets (SOCK_DGRAM), the cases of udp-bind.jsonl:
	// bind and bind+connect only (UDP has no listen), each maybe
	// followed by a disconnect, kinds pair, sequence and port0 (no
	// TIME_WAIT).
	ProtoUDP = "udp"
)

// BindCase is one line of bind.jsonl or udp-bind.jsonl: ops run in order
// against one port, each socket op on a fresh socket, every socket open
// until the case ends.
type BindCase struct {
	ID string `json:"id"`
	// Proto is ProtoUDP for a UDP case; empty (or ProtoTCP) for TCP.
	Proto string `json:"proto,omitempty"`
	Kind  string `json:"kind"` // KindPair, KindSequence, KindTimewait or KindPort0
	// Port is the port every socket op binds (a port no other case
	// uses); 0 for KindPort0.
	Port    int      `json:"port"`
	Ops     []BindOp `json:"ops"`
	Prelude *Prelude `json:"prelude,omitempty"` // KindTimewait only
	// PortRange is the namespace's ip_local_port_range, [lo, hi], which
	// the kernel picks a port 0 bind's port from; KindPort0 only.
	PortRange []int  `json:"port_range,omitempty"`
	Kernel    string `json:"kernel"` // what uname -r printed
}

// ReadBindCases reads a bind.jsonl file. A line that is not a BindCase,
// or breaks its rules, gives an error wrapping ErrMalformed.
func ReadBindCases(path string) ([]BindCase, error) {
	return readLines(path, (*BindCase).check)
}

// check checks what decoding does not: values and the rules between ops.
func (c *BindCase) check() error {
	if c.ID == "" {
		return errors.New("no id")
	}
	if !slices.Contains([]string{KindPair, KindSequence, KindTimewait, KindPort0}, c.Kind) {
		return fmt.Errorf("%s: unknown kind %q", c.ID, c.Kind)
	}
	switch c.Proto {
	case "", ProtoTCP:
		for i, o := range c.Ops {
			if o.Disconnect {
				return fmt.Errorf("%s op %d: a tcp disconnect (udp only)", c.ID, i)
			}
		}
	case ProtoUDP:
		if c.Kind == KindTimewait {
			return fmt.Errorf("%s: a udp case of kind %s", c.ID, c.Kind)
		}
		for i, o := range c.Ops {
			if o.Action != ActionBind && o.Action != ActionBindConnect {
				return fmt.Errorf("%s op %d: a udp %s op (udp binds and connects only)", c.ID, i, o.Action)
			}
		}
	default:
		return fmt.Errorf("%s: unknown proto %q", c.ID, c.Proto)
	}
	if c.Kernel == "" {
		return fmt.Errorf("%s: no kernel", c.ID)
	}
	if err := checkPort("port", c.Port); err != nil {
		return fmt.Errorf("%s: %w", c.ID, err)
	}
	if len(c.Ops) == 0 {
		return fmt.Errorf("%s: no ops", c.ID)
	}
	if (c.Prelude != nil) != (c.Kind == KindTimewait) {
		return fmt.Errorf("%s: kind %s with prelude %v", c.ID, c.Kind, c.Prelude != nil)
	}
	if p := c.Prelude; p != nil {
		if err := p.Listener.check(); err != nil {
			return fmt.Errorf("%s: prelude listener: %w", c.ID, err)
		}
		if a, err := netip.ParseAddr(p.ClientDst); err != nil || a.Zone() != "" {
			return fmt.Errorf("%s: prelude client_dst %q", c.ID, p.ClientDst)
		}
		if p.WhoClosedFirst != ClosedByServer && p.WhoClosedFirst != ClosedByClient {
			return fmt.Errorf("%s: prelude who_closed_first %q", c.ID, p.WhoClosedFirst)
		}
	}
	if (c.PortRange != nil) != (c.Kind == KindPort0) {
		return fmt.Errorf("%s: kind %s with port_range %v", c.ID, c.Kind, c.PortRange)
	}
	if r := c.PortRange; r != nil && (len(r) != 2 || r[0] < 1 || r[0] > r[1] || r[1] > 65535) {
		return fmt.Errorf("%s: port_range %v", c.ID, r)
	}
	for i := range c.Ops {
		if err := c.checkOp(i); err != nil {
			return fmt.Errorf("%s op %d: %w", c.ID, i, err)
		}
	}
	return nil
}

// stagesOf lists the stages at which each action can fail.
var stagesOf = map[string][]string{
	ActionBind:        {StageBind},
	ActionBindListen:  {StageBind, StageListen},
	ActionBindConnect: {StageBind, StageConnect},
	ActionListen:      {StageListen},
}

// checkOp checks op i of c.
func (c *BindCase) checkOp(i int) error {
	o := &c.Ops[i]
	switch {
	case o.Result == "":
		return errors.New("no result")
	case o.Result == ResultOK || o.Result == ResultSkippedNotBound:
		if o.Stage != "" {
			return fmt.Errorf("result %s at stage %q", o.Result, o.Stage)
		}
		if o.Result == ResultSkippedNotBound && o.Action != ActionListen {
			return fmt.Errorf("%s op with result %s", o.Action, o.Result)
		}
	case !slices.Contains(stagesOf[o.Action], o.Stage):
		return fmt.Errorf("%s op failed at stage %q", o.Action, o.Stage)
	}
	if o.Action == ActionListen {
		if o.Target < 0 || o.Target >= i || c.Ops[o.Target].Action == ActionListen {
			return fmt.Errorf("late listen target %d is not an earlier socket op", o.Target)
		}
		return nil
	}
	if err := o.BindSock.check(); err != nil {
		return err
	}
	if err := checkPort("bound_port", o.BoundPort); err != nil {
		return err
	}
	if o.Action == ActionBindConnect {
		if err := checkAddr(o.Family, o.ConnectAddr); err != nil {
			return fmt.Errorf("connect_to: %w", err)
		}
		if o.ConnectPort < 1 || o.ConnectPort > 65535 {
			return fmt.Errorf("connect_to port %d out of range", o.ConnectPort)
		}
	}
	if o.Disconnect && o.Result == ResultOK {
		if err := checkAddr(o.Family, o.AfterAddr); err != nil {
			return fmt.Errorf("after_disconnect: %w", err)
		}
		if o.AfterPort < 0 || o.AfterPort > 65535 {
			return fmt.Errorf("after_disconnect port %d out of range", o.AfterPort)
		}
	}
	return nil
}

// check checks a socket's fields.
func (s *BindSock) check() error {
	if err := checkFamily(s.Family); err != nil {
		return err
	}
	if err := checkV6Only(s.Family, s.V6Only); err != nil {
		return err
	}
	if err := checkAddr(s.Family, s.Addr); err != nil {
		return err
	}
	if err := checkPort("port", s.Port); err != nil {
		return err
	}
	if s.UID < 0 || int64(s.UID) > math.MaxUint32 {
		return fmt.Errorf("uid %d out of range", s.UID)
	}
	if s.Device < 0 || int64(s.Device) > math.MaxInt32 {
		return fmt.Errorf("device %d out of range", s.Device)
	}
	return nil
}
