package fuzz

import (
	"errors"
	"testing"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// udpFuzzSock is FuzzUDPDemux's socket.
type udpFuzzSock struct {
	b        *table.UDPBinding[*udpFuzzSock]
	released bool
	// peerLeft is the peer address an AF_INET6 socket still holds after a
	// disconnect (valid when hasPeerLeft): it then takes IPv6 datagrams
	// from that address only.
	peerLeft    tuple.Addr
	hasPeerLeft bool
}

// udpFuzzAddrs are the bind addresses FuzzUDPDemux draws from: IPv4 and
// IPv6 wildcards and specifics and a v4-mapped one.
var udpFuzzAddrs = []struct {
	family int
	v6only bool
	addr   string
}{
	{4, false, "0.0.0.0"}, {4, false, "192.0.2.1"}, {4, false, "192.0.2.2"},
	{6, false, "::"}, {6, true, "::"}, {6, false, "2001:db8::1"}, {6, false, "::ffff:192.0.2.1"},
}

// udpFuzzPeers are the remote ends datagrams come from and sockets connect
// to.
var udpFuzzPeers = []tuple.Endpoint{
	tuple.MustEndpoint("198.51.100.1:4000"), tuple.MustEndpoint("198.51.100.2:4000"),
	tuple.MustEndpoint("[2001:db8::9]:4000"),
}

// FuzzUDPDemux runs a program of binds (address, port 1-3, SO_REUSEADDR,
// SO_REUSEPORT, owner), connects, releases, disconnects and datagrams against a
// UDPDemux, and checks every answer: nothing panics; a datagram goes only
// to a socket not released, on its destination port, whose address and
// peer admit it; a socket connected to exactly the datagram's source and
// destination takes it; a port with no socket gets the port unreachable
// (or a drop for multicast); every bind error is a sentinel.
func FuzzUDPDemux(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 3, 0, 0, 0, 2, 1, 0, 0})
	f.Add([]byte{0, 3, 1, 2, 0, 3, 1, 2, 1, 0, 0, 0, 3, 0, 1, 1, 3, 1, 2, 0})
	f.Add([]byte{0, 1, 2, 1, 1, 0, 2, 0, 3, 2, 2, 0, 3, 5, 0, 2})
	// A dual-stack socket connects over IPv6 and disconnects, beside an
	// unconnected one; datagrams from its old peer and from another.
	f.Add([]byte{0, 3, 0, 1, 0, 3, 0, 1, 1, 0, 2, 0, 2, 0, 0, 4, 3, 0, 2, 0, 3, 0, 5, 0})
	f.Fuzz(func(t *testing.T, program []byte) {
		d, err := socktable.NewUDPDemux[udpFuzzSock](socktable.UDPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var socks []*udpFuzzSock
		at := func(i int) byte {
			if i < len(program) {
				return program[i]
			}
			return 0
		}
		for pc := 0; pc < len(program); pc += 4 {
			op, a, b, c := at(pc)%4, int(at(pc+1)), int(at(pc+2)), at(pc+3)
			switch op {
			case 0: // bind
				ad := udpFuzzAddrs[a%len(udpFuzzAddrs)]
				req := table.BindRequest{Family: ad.family, V6Only: ad.v6only, Addr: tuple.MustAddr(ad.addr),
					Port: uint16(1 + b%3), ReuseAddr: c&1 != 0, ReusePort: c&2 != 0, Owner: uint32(c >> 2 & 1)}
				s := &udpFuzzSock{}
				bd, err := d.Bind(req, s)
				if err != nil {
					if !isSentinel(err) {
						t.Fatalf("bind %+v: %v", req, err)
					}
					continue
				}
				s.b = bd
				socks = append(socks, s)
			case 1: // connect
				if len(socks) == 0 {
					continue
				}
				s := socks[a%len(socks)]
				peer := udpFuzzPeers[b%len(udpFuzzPeers)]
				local := s.b.Addr()
				if local.IsUnspecified() {
					local = tuple.MustAddr("192.0.2.1")
					if !peer.Addr.Is4() {
						local = tuple.MustAddr("2001:db8::1")
					}
				}
				err := s.b.Connect(local, peer)
				if err != nil && !isSentinel(err) {
					t.Fatalf("connect: %v", err)
				}
				if err == nil {
					s.hasPeerLeft = false
				}
			case 2: // release, or with c&4 a disconnect
				if len(socks) == 0 {
					continue
				}
				s := socks[a%len(socks)]
				if c&4 != 0 {
					remote := s.b.Remote()
					released, err := s.b.Disconnect()
					if s.released != (err != nil) || released {
						t.Fatalf("disconnect of a socket released %v: %v, released %v", s.released, err, released)
					}
					if err == nil && s.b.Family() == 6 && remote.Port != 0 {
						s.peerLeft, s.hasPeerLeft = remote.Addr, true
					}
					continue
				}
				err := s.b.Release()
				if s.released != (err != nil) {
					t.Fatalf("release of a socket released %v: %v", s.released, err)
				}
				s.released = true
			case 3: // a datagram
				peer := udpFuzzPeers[b%len(udpFuzzPeers)]
				dst := tuple.Endpoint{Addr: tuple.MustAddr("192.0.2.1"), Port: uint16(1 + a%4)}
				switch {
				case !peer.Addr.Is4():
					dst.Addr = tuple.MustAddr("2001:db8::1")
				case c&1 != 0:
					dst.Addr = tuple.MustAddr("192.0.2.2")
				case c&2 != 0:
					dst.Addr = tuple.MustAddr("224.0.0.9")
				}
				seg := tuple.Segment{Tuple: tuple.Tuple{Local: dst, Remote: peer}, Proto: tuple.ProtoUDP, Version: 4}
				if !dst.Addr.Is4() {
					seg.Version = 6
				}
				checkUDPDatagram(t, d, &seg, socks)
			}
		}
	})
}

// checkUDPDatagram delivers seg and checks the answer against the sockets.
func checkUDPDatagram(t *testing.T, d *socktable.UDPDemux[udpFuzzSock], seg *tuple.Segment, socks []*udpFuzzSock) {
	t.Helper()
	res := d.Deliver(seg, 0, 0)
	ft := seg.Tuple
	var exact *udpFuzzSock // the live socket connected on exactly this four-tuple, if one
	live := false          // a live socket on the port that could take it
	for _, s := range socks {
		if s.released || s.b.Port() != ft.Local.Port {
			continue
		}
		if s.b.Remote() == ft.Remote && s.b.Addr() == ft.Local.Addr && exact == nil {
			exact = s
		}
		if admits(s, ft) {
			live = true
		}
	}
	switch res.Outcome {
	case socktable.ToConn:
		s := res.Conn
		if s == nil || s.released || s.b.Port() != ft.Local.Port || !admits(s, ft) && !pickedFor(s, ft, socks) {
			t.Fatalf("%v went to %+v, which cannot take it", ft, s)
		}
		if exact != nil && s.b.Remote() != ft.Remote {
			t.Fatalf("%v went to an unconnected socket past the one connected on it", ft)
		}
	case socktable.Send:
		if live {
			t.Fatalf("%v: port unreachable while a socket could take it", ft)
		}
	case socktable.Dropped:
		if live || ft.Local.Addr.Is4() && ft.Local.Addr.As4()[0] < 224 {
			t.Fatalf("%v dropped (a socket could take it: %v)", ft, live)
		}
	}
}

// admits reports whether socket s's address, family and peer let it take
// a datagram of ft (not which of several wins).
func admits(s *udpFuzzSock, ft tuple.Tuple) bool {
	addr := s.b.Addr()
	if r := s.b.Remote(); r.Port != 0 && r != ft.Remote {
		return false
	}
	dst := ft.Local.Addr
	if s.hasPeerLeft && !dst.Is4() && ft.Remote.Addr != s.peerLeft {
		return false
	}
	if dst.Is4() {
		if !addr.Is4() && !addr.IsUnspecified() {
			return false // a specific IPv6 address
		}
		if !addr.Is4() && addr.IsUnspecified() && v6only(s) {
			return false
		}
		return addr == dst || addr.IsUnspecified()
	}
	if addr.Is4() || family(s) == 4 {
		return false
	}
	return addr == dst || addr.IsUnspecified()
}

// pickedFor reports whether s may have been handed ft by its SO_REUSEPORT
// group: an unconnected member of a live socket's group that admits ft.
// The kernel's pick does not rescore the member it picks, so a member
// that would turn ft down itself (the peer address a disconnect left)
// takes it.
func pickedFor(s *udpFuzzSock, ft tuple.Tuple, socks []*udpFuzzSock) bool {
	if s.b.Remote().Port != 0 {
		return false
	}
	for _, o := range socks {
		if o != s && !o.released && o.b.Port() == ft.Local.Port && admits(o, ft) && o.b.SameGroup(s.b) {
			return true
		}
	}
	return false
}

// v6only and family are the bound socket's options.
func v6only(s *udpFuzzSock) bool { return s.b.V6Only() }
func family(s *udpFuzzSock) int  { return s.b.Family() }

// isSentinel reports whether err is one of the errors a bind or connect
// may return.
func isSentinel(err error) bool {
	for _, s := range []error{table.ErrAddrInUse, table.ErrInvalid, table.ErrNoPorts, table.ErrAddrNotAvail, table.ErrClosed} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
