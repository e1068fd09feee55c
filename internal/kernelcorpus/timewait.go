//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/socktable/socktable/internal/corpus"
)

// twVariant is where a timewait case's listener sits, where the client
// connects to, and which addresses the ops then bind: the TIME_WAIT
// socket's own address and the wildcard of the ops' family.
type twVariant struct {
	listener addrSpec
	dst      string
	opAddrs  []addrSpec
}

// twVariants covers an exact IPv4 listener, an IPv4 wildcard listener
// (the TIME_WAIT is then bound to the specific address the client
// reached), and a dual-stack listener reached over IPv6 and over IPv4
// (the latter leaves an AF_INET6 TIME_WAIT with a v4-mapped address).
var twVariants = []twVariant{
	{v4Lo, "127.0.0.1", []addrSpec{v4Lo, v4Any}},
	{v4Any, "127.0.0.1", []addrSpec{v4Lo, v4Any}},
	{dualAny, "::1", []addrSpec{dualLo, dualAny}},
	{dualAny, "127.0.0.1", []addrSpec{v4Lo, v4Any}},
}

// timewaitCases returns the TIME_WAIT grid: variant × listener flags ×
// listener owner × who closes first × op address × op flags × op owner,
// each case a single bind+listen op (its bind answer is the bind-only
// answer).
func timewaitCases() []corpus.BindCase {
	var cases []corpus.BindCase
	for _, v := range twVariants {
		for _, lf := range flagSets {
			for _, luid := range []int{0, 1000} {
				for _, who := range []string{corpus.ClosedByServer, corpus.ClosedByClient} {
					for _, oa := range v.opAddrs {
						for _, of := range flagSets {
							for _, ouid := range []int{0, 1000} {
								l := sockKind{v.listener, lf}.op(luid, corpus.ActionBindListen, false).BindSock
								cases = append(cases, corpus.BindCase{
									ID:      fmt.Sprintf("tw-%04d", len(cases)),
									Kind:    corpus.KindTimewait,
									Prelude: &corpus.Prelude{Listener: l, ClientDst: v.dst, WhoClosedFirst: who},
									Ops:     []corpus.BindOp{sockKind{oa, of}.op(ouid, corpus.ActionBindListen, false)},
								})
							}
						}
					}
				}
			}
		}
	}
	return cases
}

// runTimewait makes the prelude's TIME_WAIT on port, checks that it is
// there, and runs the ops against it. It reports false, having run no op,
// when the expected TIME_WAIT did not show up.
func (r *runner) runTimewait(c *corpus.BindCase, port int) bool {
	p := c.Prelude
	p.Listener.Port = port
	lfd, err := openBound(p.Listener, true)
	if err != nil {
		log.Fatalf("%s: listener bind: %v", c.ID, err)
	}
	asUID(p.Listener.UID, func() { err = syscall.Listen(lfd, backlog) })
	if err != nil {
		log.Fatalf("%s: listener listen: %v", c.ID, err)
	}
	family := 4
	if strings.Contains(p.ClientDst, ":") {
		family = 6
	}
	cfd := newSocket(family, false)
	if err := syscall.Connect(cfd, sockaddr(family, p.ClientDst, port)); err != nil {
		log.Fatalf("%s: client connect: %v", c.ID, err)
	}
	a, ok := acceptWait([]int{lfd})
	if !ok {
		log.Fatalf("%s: connection never reached the accept queue", c.ID)
	}
	// A plain close by the side that closes first is what leaves the
	// TIME_WAIT; the other side's close completes the handshake.
	if p.WhoClosedFirst == corpus.ClosedByServer {
		closeFD(a.fd)
		closeFD(cfd)
	} else {
		closeFD(cfd)
		closeFD(a.fd)
	}
	closeFD(lfd)
	if !waitTimeWait(port, p.WhoClosedFirst) {
		return false
	}
	r.runOps(c.Ops, port)
	return true
}

// waitTimeWait reports whether the namespace holds the TIME_WAIT a
// timewait case expects on port: the server's (local port == port), or
// the client's (remote port == port, and nothing left on port itself).
// The last FIN exchange on loopback may still be in flight when close
// returns, so it looks a few times before giving up.
func waitTimeWait(port int, who string) bool {
	for range 50 {
		found, busy := false, false
		for _, e := range procTCP() {
			if e.local == port {
				busy = true
			}
			if e.state != tcpTimeWait {
				continue
			}
			if (who == corpus.ClosedByServer && e.local == port) || (who == corpus.ClosedByClient && e.remote == port) {
				found = true
			}
		}
		if found && (who == corpus.ClosedByServer || !busy) {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

// tcpTimeWait is TCP_TIME_WAIT in /proc/net/tcp's st column.
const tcpTimeWait = 0x06

// procEntry is one socket of /proc/net/tcp or /proc/net/tcp6.
type procEntry struct {
	local, remote int // ports
	state         int
}

// procTCP lists the TCP sockets of the generator's network namespace,
// IPv4 and IPv6 tables both: an AF_INET6 socket carrying IPv4 traffic
// shows up in tcp6 with a v4-mapped address.
func procTCP() []procEntry {
	var es []procEntry
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			log.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// "sl local_address rem_address st ...", addresses as HEX:PORT.
			fs := strings.Fields(sc.Text())
			if len(fs) < 4 {
				continue
			}
			es = append(es, procEntry{hexPort(fs[1]), hexPort(fs[2]), int(parseHex(fs[3]))})
		}
		if err := sc.Err(); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		f.Close()
	}
	return es
}

// hexPort returns the port of a /proc/net/tcp address ("0100007F:2710").
func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	return int(parseHex(addr[i+1:]))
}

// parseHex parses a hexadecimal /proc field, fatally if it is not one:
// a format change must not turn into silently wrong ports.
func parseHex(s string) uint64 {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		log.Fatalf("/proc/net/tcp: %q: %v", s, err)
	}
	return v
}
