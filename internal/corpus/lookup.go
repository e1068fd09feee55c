package corpus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// NotAccepted is the LookupResult.Err of a connection that connect(2)
// reported made but that no listener's accept(2) returned within the
// recorder's wait. It should never appear.
const NotAccepted = "NOT_ACCEPTED"

// NotReceived is the LookupResult.Err of a UDP datagram that no socket of
// the case received and that drew no ICMP error to the sender either.
const NotReceived = "NOT_RECEIVED"

// LookupListener is one listener of a LookupCase: an AF_INET or AF_INET6
// socket of uid 0, bound to Addr:Port with the flags shown, listening.
type LookupListener struct {
	Family    int    `json:"family"`    // 4 (AF_INET) or 6 (AF_INET6)
	V6Only    *bool  `json:"v6only"`    // IPV6_V6ONLY for family 6; nil (JSON null) for family 4
	Addr      string `json:"addr"`      // the bound address, in the family's own form
	Port      int    `json:"port"`      // the bound port: the case's DstPort
	ReusePort bool   `json:"reuseport"` // SO_REUSEPORT, set before bind(2)
	ReuseAddr bool   `json:"reuseaddr"` // SO_REUSEADDR, set before bind(2)
	// Device is, in a UDP case, the interface index the socket was bound
	// to (SO_BINDTOIFINDEX, before bind(2)); 0, absent in JSON, for none.
	Device int `json:"device,omitempty"`
	// ConnectAddr and ConnectPort are, for a UDP case, the peer a socket
	// was connected to after its bind (connect(2)); empty for an
	// unconnected socket and for TCP.
	ConnectAddr string `json:"connect_addr,omitempty"`
	ConnectPort int    `json:"connect_port,omitempty"`
	// ConnectedAddr is the socket's address getsockname(2) gave after
	// that connect: the bound one, or for a socket bound to a wildcard,
	// the source its route chose (the kernel's rehash).
	ConnectedAddr string `json:"connected_addr,omitempty"`
	// Disconnect marks, in a UDP case, a socket disconnected (connect(2)
	// with AF_UNSPEC) after its bind and connect, if any; its address
	// getsockname(2) gave then is DisconnectedAddr.
	Disconnect       bool   `json:"disconnect,omitempty"`
	DisconnectedAddr string `json:"disconnected_addr,omitempty"`
}

// BindSock is how the listener's socket was made and bound (as uid 0).
func (l *LookupListener) BindSock() BindSock {
	return BindSock{Family: l.Family, V6Only: l.V6Only, Addr: l.Addr, Port: l.Port, ReuseAddr: l.ReuseAddr, ReusePort: l.ReusePort, Device: l.Device}
}

// LookupResult is where a LookupConnect went: to listener Listener, or,
// when Err is set, to no listener. In JSON it is the listener's index (a
// number) or Err (a string).
type LookupResult struct {
	// Listener is the index into LookupCase.Listeners of the listener
	// whose accept(2) returned the connection; 0 when Err is set.
	Listener int
	// Err is connect(2)'s errno name ("ECONNREFUSED"), or NotAccepted;
	// empty when a listener accepted the connection.
	Err string
}

// MarshalJSON writes Err as a string when it is set, else Listener as a
// number.
func (r LookupResult) MarshalJSON() ([]byte, error) {
	if r.Err != "" {
		return json.Marshal(r.Err)
	}
	return json.Marshal(r.Listener)
}

// UnmarshalJSON reads an integer listener index or a non-empty error
// name; anything else (null, a fraction, "") is an error.
func (r *LookupResult) UnmarshalJSON(b []byte) error {
	*r = LookupResult{}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &r.Err); err != nil {
			return err
		}
		if r.Err == "" {
			return errors.New("empty result")
		}
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return errors.New("null result")
	}
	if err := json.Unmarshal(b, &r.Listener); err != nil {
		return fmt.Errorf("result %s: %w", b, err)
	}
	return nil
}

// LookupConnect is one connection of a LookupCase: a client of the case's
// ClientFamily bound to SrcAddr:SrcPort connects to DstAddr:DstPort, and
// Result says which listener accepted it.
type LookupConnect struct {
	SrcAddr string       `json:"src_addr"`
	SrcPort int          `json:"src_port"`
	Result  LookupResult `json:"result"`
}

// LookupCase is one line of lookup.jsonl: listeners created and listening
// in order on one port, then connections made to it one at a time, each
// closed with a RST (on both ends) before the next, so that every
// connection finds the listeners as the case built them and nothing else.
//
// Which member of a SO_REUSEPORT group takes a connection depends on a
// per-boot secret of the kernel's: compare group membership and spread,
// never which member took which connection.
type LookupCase struct {
	ID string `json:"id"` // scenario/v<client family>-<dst addr>
	// Proto is ProtoUDP for a UDP case (udp-lookup.jsonl: the listeners
	// are bound UDP sockets, each connect is one datagram sent from a
	// socket connected to the destination, and the result is the socket
	// that received it, ECONNREFUSED for the ICMP port unreachable, or
	// NotReceived); empty for TCP.
	Proto        string           `json:"proto,omitempty"`
	Listeners    []LookupListener `json:"listeners"`
	ClientFamily int              `json:"client_family"` // 4 or 6: the clients' socket family
	DstAddr      string           `json:"dst_addr"`      // in the client family's form ("::ffff:127.0.0.1" for a v4-mapped client)
	DstPort      int              `json:"dst_port"`
	Connects     []LookupConnect  `json:"connects"`
	// InDevice is, in a UDP case, the interface index the datagrams
	// arrived on (loopback's), for the sockets bound to a device; 0,
	// absent in JSON, in TCP cases.
	InDevice int    `json:"in_device,omitempty"`
	Kernel   string `json:"kernel"` // what uname -r printed
}

// ReadLookupCases reads a lookup.jsonl file. A line that is not a
// LookupCase, or breaks its rules, gives an error wrapping ErrMalformed.
func ReadLookupCases(path string) ([]LookupCase, error) {
	return readLines(path, (*LookupCase).check)
}

// check checks what decoding does not.
func (c *LookupCase) check() error {
	if c.ID == "" {
		return errors.New("no id")
	}
	if c.Kernel == "" {
		return fmt.Errorf("%s: no kernel", c.ID)
	}
	if len(c.Listeners) == 0 {
		return fmt.Errorf("%s: no listeners", c.ID)
	}
	if c.Proto != "" && c.Proto != ProtoTCP && c.Proto != ProtoUDP {
		return fmt.Errorf("%s: unknown proto %q", c.ID, c.Proto)
	}
	if c.Proto != ProtoUDP && c.InDevice != 0 {
		return fmt.Errorf("%s: in_device in a %q case", c.ID, c.Proto)
	}
	if c.InDevice < 0 || int64(c.InDevice) > math.MaxInt32 {
		return fmt.Errorf("%s: in_device %d out of range", c.ID, c.InDevice)
	}
	for i, l := range c.Listeners {
		if err := l.check(); err != nil {
			return fmt.Errorf("%s listener %d: %w", c.ID, i, err)
		}
		if l.Device != 0 && c.Proto != ProtoUDP {
			return fmt.Errorf("%s listener %d: a device in a %q case", c.ID, i, c.Proto)
		}
		if l.ConnectAddr != "" || l.ConnectPort != 0 {
			if c.Proto != ProtoUDP {
				return fmt.Errorf("%s listener %d: a connected listener in a %q case", c.ID, i, c.Proto)
			}
			if err := checkAddr(l.Family, l.ConnectAddr); err != nil {
				return fmt.Errorf("%s listener %d: connect_addr: %w", c.ID, i, err)
			}
			if err := checkPort("connect_port", l.ConnectPort); err != nil || l.ConnectPort == 0 {
				return fmt.Errorf("%s listener %d: connect_port %d", c.ID, i, l.ConnectPort)
			}
			if err := checkAddr(l.Family, l.ConnectedAddr); err != nil {
				return fmt.Errorf("%s listener %d: connected_addr: %w", c.ID, i, err)
			}
		} else if l.ConnectedAddr != "" {
			return fmt.Errorf("%s listener %d: connected_addr without a connect", c.ID, i)
		}
		if l.Disconnect {
			if c.Proto != ProtoUDP {
				return fmt.Errorf("%s listener %d: a disconnected listener in a %q case", c.ID, i, c.Proto)
			}
			if err := checkAddr(l.Family, l.DisconnectedAddr); err != nil {
				return fmt.Errorf("%s listener %d: disconnected_addr: %w", c.ID, i, err)
			}
		} else if l.DisconnectedAddr != "" {
			return fmt.Errorf("%s listener %d: disconnected_addr without a disconnect", c.ID, i)
		}
	}
	if err := checkFamily(c.ClientFamily); err != nil {
		return fmt.Errorf("%s: client_family: %w", c.ID, err)
	}
	if err := checkAddr(c.ClientFamily, c.DstAddr); err != nil {
		return fmt.Errorf("%s: dst_addr: %w", c.ID, err)
	}
	if err := checkPort("dst_port", c.DstPort); err != nil {
		return fmt.Errorf("%s: %w", c.ID, err)
	}
	for i, cn := range c.Connects {
		if err := checkAddr(c.ClientFamily, cn.SrcAddr); err != nil {
			return fmt.Errorf("%s connect %d: src_addr: %w", c.ID, i, err)
		}
		if err := checkPort("src_port", cn.SrcPort); err != nil {
			return fmt.Errorf("%s connect %d: %w", c.ID, i, err)
		}
		if r := cn.Result; r.Err == "" && (r.Listener < 0 || r.Listener >= len(c.Listeners)) {
			return fmt.Errorf("%s connect %d: result %d names no listener", c.ID, i, r.Listener)
		}
	}
	return nil
}

// check checks a listener's fields.
func (l *LookupListener) check() error {
	if err := checkFamily(l.Family); err != nil {
		return err
	}
	if err := checkV6Only(l.Family, l.V6Only); err != nil {
		return err
	}
	if err := checkAddr(l.Family, l.Addr); err != nil {
		return err
	}
	if l.Device < 0 || int64(l.Device) > math.MaxInt32 {
		return fmt.Errorf("device %d out of range", l.Device)
	}
	return checkPort("port", l.Port)
}
