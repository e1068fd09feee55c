package socktable_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// httpConn is the example stack's connection.
type httpConn struct {
	flow socktable.Flow
	iss  uint32
}

// A server-side TCP demux in a few calls: a listener on port 80, a
// client's handshake, its request, the close into TIME_WAIT, and a SYN to
// a port nobody listens on. The packets are IPv4 as they arrive from
// 198.51.100.7; the client's ACKs acknowledge our SYN-ACK, so the example
// writes our ISN+1 into their acknowledgment field, as the client would.
func ExampleDemux() {
	clock := &timewait.ManualClock{}
	d, _ := socktable.NewDemux[httpConn](socktable.Options{Clock: clock})
	defer d.Close()
	b, _ := d.Bind(table.BindRequest{Family: 4, Addr: tuple.MustAddr("192.0.2.1"), Port: 80})
	l, _ := d.Listen(b, socktable.ListenOptions{Backlog: 128})
	acceptor, _ := l.Register(accept.Unbound)

	var iss uint32
	deliver := func(name, packet string) socktable.Result[httpConn] {
		p, _ := hex.DecodeString(packet)
		if binary.BigEndian.Uint32(p[28:]) == 0 && p[33]&0x10 != 0 { // an ACK: of our SYN-ACK
			binary.BigEndian.PutUint32(p[28:], iss+1)
		}
		seg, err := tuple.Parse(p)
		if err != nil {
			panic(err)
		}
		res := d.Deliver(&seg, 0, 0)
		fmt.Printf("%-8s %-9s %-16s send %v\n", name, res.Outcome, res.Reason, res.Reply.Flags)
		return res
	}

	res := deliver("SYN", "4500002c0000000040068e90c6336407c0000201c7380050000003e8000000006002faf000000000020405b4")
	iss = res.Reply.Seq
	res = deliver("ACK", "450000280000000040068e94c6336407c0000201c7380050000003e9000000005010faf000000000")
	// The handshake completed: the stack makes its connection.
	c := &httpConn{iss: res.Handshake.ISS}
	c.flow, _ = d.Establish(&res.Handshake, c)
	accepted, _ := acceptor.TryAccept()
	fmt.Println("accepted", accepted.Conn == c, "from", accepted.Flow.Tuple.Remote)

	res = deliver("GET", "4500003a0000000040068e82c6336407c0000201c7380050000003e9000000005018faf000000000474554202f20485454502f312e300d0a0d0a")
	fmt.Println("to our connection:", res.Conn == c)

	// The server answers and closes first; after the FIN exchange the
	// connection leaves for TIME_WAIT, which answers the client's
	// retransmitted FIN from then on.
	_ = d.TimeWait(c.flow, c, timewait.State{RcvNxt: 1020, SndNxt: c.iss + 1 + 512, RcvWnd: 65535})
	deliver("FIN", "450000280000000040068e94c6336407c0000201c7380050000003fb000000005011faf000000000")
	deliver("SYN:81", "450000280000000040068e94c6336407c0000201c7380051000007d0000000005002faf000000000")

	clock.Advance(timewait.TimeWaitLen + 5e9)
	d.Advance()
	cs := d.Counters()
	fmt.Println("TIME_WAIT expired:", cs.TW, "delivered:", cs.Delivered, "answered:", cs.Answered, "resets:", cs.Resets)
	// Output:
	// SYN      send      syn-queued       send SYN|ACK
	// ACK      completed request          send none
	// accepted true from 198.51.100.7:51000
	// GET      to-conn   established      send none
	// to our connection: true
	// FIN      send      time-wait        send ACK
	// SYN:81   send      no-socket        send RST|ACK
	// TIME_WAIT expired: 1 delivered: 2 answered: 2 resets: 1
}
