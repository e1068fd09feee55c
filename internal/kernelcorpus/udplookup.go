//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"errors"
	"fmt"
	"log"
	"syscall"
	"time"

	"github.com/socktable/socktable/internal/corpus"
)

// The UDP lookup corpus (udp-lookup.jsonl, -udp): which UDP socket
// receives a datagram. The TCP lookup scenarios' listener sets, bound as
// UDP sockets, and UDP's own questions: SO_REUSEADDR sockets sharing an
// address (the newest receives), connected sockets beside unconnected
// ones, and a connected member of a reuseport group. Each datagram comes
// from a fresh client socket bound to its source and connected to the
// destination, so that a port unreachable comes back as ECONNREFUSED.

// peerPortSlot marks, in a UDP scenario's listener, a connect to the
// case's peer: the first source address of the probe, on a port the case
// reserves; the case's even datagrams come from there.
const peerPortSlot = -1

// connectedTo returns l connected to the case's peer.
func connectedTo(l corpus.LookupListener) corpus.LookupListener {
	l.ConnectPort = peerPortSlot
	return l
}

// disconnectedL returns l disconnected (connect(2) with AF_UNSPEC) after
// its bind and connect.
func disconnectedL(l corpus.LookupListener) corpus.LookupListener {
	l.Disconnect = true
	return l
}

// onDevice returns l bound to interface index dev.
func onDevice(l corpus.LookupListener, dev int) corpus.LookupListener {
	l.Device = dev
	return l
}

// reuseAddr returns l with SO_REUSEADDR set.
func reuseAddr(l corpus.LookupListener) corpus.LookupListener {
	l.ReuseAddr = true
	return l
}

// udpScenarios are UDP's own lookup questions, beside the TCP ones.
func udpScenarios() []scenario {
	all4 := []probe{probe4Lo, probe4Other}
	ra4any, ra4lo := reuseAddr(ln(v4Any, false)), reuseAddr(ln(v4Lo, false))
	return []scenario{
		{"udp-reuseaddr-pair-v4-exact", cat(one(ra4lo), one(ra4lo)), all4},
		{"udp-reuseaddr-pair-v4-any", cat(one(ra4any), one(ra4any)), all4},
		{"udp-reuseaddr-triple-v4-exact", cat(one(ra4lo), one(ra4lo), one(ra4lo)), all4},
		{"udp-reuseaddr-exact-then-any", cat(one(ra4lo), one(ra4any)), all4},
		{"udp-reuseaddr-any-then-exact", cat(one(ra4any), one(ra4lo)), all4},
		{"udp-reuseaddr-dual-then-v4", cat(one(reuseAddr(ln(dualAny, false))), one(ra4any)), []probe{probe4Lo, probe6Lo}},
		{"udp-reuseaddr-v4-then-dual", cat(one(ra4any), one(reuseAddr(ln(dualAny, false)))), []probe{probe4Lo, probe6Lo}},
		{"udp-connected-then-any", cat(one(connectedTo(ra4lo)), one(ra4any)), all4},
		{"udp-any-then-connected", cat(one(ra4any), one(connectedTo(ra4lo))), all4},
		{"udp-connected-any-then-exact", cat(one(connectedTo(ra4any)), one(ra4lo)), all4},
		{"udp-exact-then-connected-any", cat(one(ra4lo), one(connectedTo(ra4any))), all4},
		{"udp-connected-v6", cat(one(connectedTo(reuseAddr(ln(dualLo, false)))), one(reuseAddr(ln(dualAny, false)))), []probe{probe6Lo}},
		{"udp-connected-alone", one(connectedTo(ln(v4Lo, false))), all4},
		{"udp-group2-one-connected", cat(one(connectedTo(ln(v4Any, true))), one(ln(v4Any, true))), []probe{probe4Lo}},
		{"udp-group3-one-connected", cat(one(ln(v4Any, true)), one(connectedTo(ln(v4Any, true))), one(ln(v4Any, true))), []probe{probe4Lo}},
		{"udp-group2-v6-one-connected", cat(one(ln(dualAny, true)), one(connectedTo(ln(dualAny, true)))), []probe{probe6Lo, probe4Lo}},
		// A wildcard member that connects takes the route's source and
		// leaves its group; a socket then bound to that source with
		// SO_REUSEPORT joins it, not the wildcard's group.
		{"udp-group2-connected-any-then-exact", cat(one(connectedTo(ln(v4Any, true))), one(ln(v4Any, true)), one(ln(v4Lo, true))), all4},
		{"udp-group2-any-connected-then-exact", cat(one(ln(v4Any, true)), one(connectedTo(ln(v4Any, true))), one(ln(v4Lo, true))), all4},
		{"udp-group2-v6-any-connected-then-exact", cat(one(ln(dualAny, true)), one(connectedTo(ln(dualAny, true))), one(ln(dualMapLo, true)), one(ln(dualLo, true))),
			[]probe{probe4Lo, probe4Other, probe6Lo}},
		// Disconnects: a wildcard socket gets its wildcard back at the
		// head of the chain, outside any group (the rehash detaches even
		// a member that never connected); a specific address stays.
		{"udp-disconnected-any-then-exact", cat(one(disconnectedL(connectedTo(ra4any))), one(ra4lo)), all4},
		{"udp-exact-then-disconnected-any", cat(one(ra4lo), one(disconnectedL(connectedTo(ra4any)))), all4},
		{"udp-disconnected-exact", cat(one(disconnectedL(connectedTo(ra4lo))), one(ra4any)), all4},
		{"udp-any-then-disconnected-any", cat(one(ra4any), one(disconnectedL(connectedTo(ra4any)))), all4},
		{"udp-disconnected-any-then-any", cat(one(disconnectedL(connectedTo(ra4any))), one(ra4any)), all4},
		{"udp-group2-second-disconnected", cat(one(ln(v4Any, true)), one(disconnectedL(ln(v4Any, true)))), []probe{probe4Lo}},
		{"udp-group2-first-disconnected", cat(one(disconnectedL(ln(v4Any, true))), one(ln(v4Any, true))), []probe{probe4Lo}},
		{"udp-group3-connected-disconnected", cat(one(ln(v4Any, true)), one(disconnectedL(connectedTo(ln(v4Any, true)))), one(ln(v4Any, true))), []probe{probe4Lo}},
		{"udp-group2-v6-second-disconnected", cat(one(ln(dualAny, true)), one(disconnectedL(ln(dualAny, true)))), []probe{probe6Lo, probe4Lo}},
		{"udp-group2-v6-first-disconnected", cat(one(disconnectedL(ln(dualAny, true))), one(ln(dualAny, true))), []probe{probe6Lo, probe4Lo}},
		{"udp-group2-v6-second-connected-disconnected", cat(one(ln(dualAny, true)), one(disconnectedL(connectedTo(ln(dualAny, true))))), []probe{probe6Lo, probe4Lo}},
		{"udp-group2-v6-connected-disconnected", cat(one(disconnectedL(connectedTo(ln(dualAny, true)))), one(ln(dualAny, true))), []probe{probe6Lo, probe4Lo}},
		// Devices: a socket bound to the datagrams' device outscores one
		// bound to none; one bound to another device takes nothing; the
		// exact address's pass comes before the wildcard's whatever the
		// device; a disconnect drops the device.
		{"udp-dev-lo-then-none", cat(one(onDevice(ra4any, ifLo)), one(ra4any)), all4},
		{"udp-dev-none-then-lo", cat(one(ra4any), one(onDevice(ra4any, ifLo))), all4},
		{"udp-dev-other-alone", one(onDevice(ra4any, ifOther)), all4},
		{"udp-dev-other-then-none", cat(one(onDevice(ra4any, ifOther)), one(ra4any)), all4},
		{"udp-dev-none-then-other", cat(one(ra4any), one(onDevice(ra4any, ifOther))), all4},
		{"udp-dev-exact-none-any-lo", cat(one(ra4lo), one(onDevice(ra4any, ifLo))), all4},
		{"udp-dev-lo-disconnected-then-none", cat(one(disconnectedL(onDevice(ra4any, ifLo))), one(ra4any)), all4},
		{"udp-dev-none-then-lo-disconnected", cat(one(ra4any), one(disconnectedL(onDevice(ra4any, ifLo)))), all4},
		{"udp-dev-v6-lo-then-none", cat(one(onDevice(reuseAddr(ln(dualAny, false)), ifLo)), one(reuseAddr(ln(dualAny, false)))), []probe{probe6Lo, probe4Lo}},
		// A group met first in the chain answers at once when none of
		// its members ever connected: a device-bound socket met later,
		// with the higher score, does not get the datagram.
		{"udp-dev-lo-then-group2", cat(one(onDevice(ln(v4Any, true), ifLo)), group(v4Any, 2)), []probe{probe4Lo}},
		{"udp-dev-group2-then-lo", cat(group(v4Any, 2), one(onDevice(ln(v4Any, true), ifLo))), []probe{probe4Lo}},
		{"udp-dev-group2-v6-then-lo", cat(group(dualAny, 2), one(onDevice(ln(dualAny, true), ifLo))), []probe{probe6Lo, probe4Lo}},
		{"udp-dev-lo-group2", cat(one(onDevice(ln(v4Any, true), ifLo)), one(onDevice(ln(v4Any, true), ifLo)), one(ln(v4Any, true))), []probe{probe4Lo}},
		// Two sockets connected on one four-tuple: the most recently
		// connected takes its datagrams (hash4 is added to at its head),
		// though IPv6 SO_REUSEPORT sockets sit in bind order in the
		// chain. A connected socket bound to a device is in hash4 too,
		// ahead of a group met first in the chain.
		{"udp-connected-pair-v6-reuseport", cat(one(connectedTo(reuseAddr(ln(dualLo, true)))), one(connectedTo(reuseAddr(ln(dualLo, true))))), []probe{probe6Lo}},
		{"udp-connected-pair-v4", cat(one(connectedTo(ra4lo)), one(connectedTo(ra4lo))), []probe{probe4Lo}},
		{"udp-connected-pair-then-unconnected", cat(one(connectedTo(ra4lo)), one(connectedTo(ra4lo)), one(ra4lo)), []probe{probe4Lo}},
		{"udp-dev-connected-then-group2", cat(one(connectedTo(onDevice(ln(v4Lo, true), ifLo))), group(v4Lo, 2)), []probe{probe4Lo}},
		{"udp-group2-exact-connected-disconnected", cat(one(disconnectedL(connectedTo(ln(v4Lo, true)))), one(ln(v4Lo, true))), []probe{probe4Lo}},
	}
}

// udpLookupCases expands the TCP scenarios and UDP's into UDP cases.
func udpLookupCases() []corpus.LookupCase {
	var cases []corpus.LookupCase
	for _, s := range append(scenarios(), udpScenarios()...) {
		for _, p := range s.probes {
			ls := make([]corpus.LookupListener, len(s.listeners))
			copy(ls, s.listeners)
			cases = append(cases, corpus.LookupCase{
				ID:           fmt.Sprintf("udp/%s/v%d-%s", s.name, p.family, p.dst),
				Proto:        corpus.ProtoUDP,
				Listeners:    ls,
				ClientFamily: p.family,
				DstAddr:      p.dst,
				Connects:     make([]corpus.LookupConnect, connectsFor(ls)),
				InDevice:     ifLo,
			})
		}
	}
	return cases
}

// runUDPLookup binds the case's sockets on a fresh port (connecting those
// marked to the case's peer), sends its datagrams, and records which
// socket received each. It reports the error of the first socket that
// could not bind or connect, having recorded nothing; the caller skips
// the case.
func (r *runner) runUDPLookup(c *corpus.LookupCase) error {
	port := r.port()
	c.DstPort = port
	srcs := srcsFor(c)
	peerPort := r.port()
	var fds []int
	defer func() { closeFDs(fds) }()
	for i := range c.Listeners {
		l := &c.Listeners[i]
		l.Port = port
		s := l.BindSock()
		fd, err := openBoundType(s, syscall.SOCK_DGRAM)
		if err != nil {
			return fmt.Errorf("socket %d (%s) bind: %s", i, l.Addr, errName(err))
		}
		fds = append(fds, fd)
		if l.ConnectPort == peerPortSlot {
			l.ConnectAddr, l.ConnectPort = peerAddrFor(l.Family, srcs[0]), peerPort
			if err := syscall.Connect(fd, sockaddr(l.Family, l.ConnectAddr, peerPort)); err != nil {
				return fmt.Errorf("socket %d (%s) connect to %s:%d: %s", i, l.Addr, l.ConnectAddr, peerPort, errName(err))
			}
			l.ConnectedAddr = localAddr(fd)
		}
		if l.Disconnect {
			if err := disconnect(fd); err != nil {
				return fmt.Errorf("socket %d (%s) disconnect: %s", i, l.Addr, errName(err))
			}
			l.DisconnectedAddr = localAddr(fd)
		}
	}
	for i := range c.Connects {
		cn := &c.Connects[i]
		cn.SrcAddr, cn.SrcPort = srcs[i%len(srcs)], r.port()
		if i%2 == 0 {
			cn.SrcAddr, cn.SrcPort = srcs[0], peerPort
		}
		cn.Result = sendOnce(c.ClientFamily, cn.SrcAddr, cn.SrcPort, c.DstAddr, port, fds)
	}
	return nil
}

// peerAddrFor spells the peer address src (in the client family's form)
// in the form a socket of family needs to connect to it: an AF_INET6
// socket reaches an IPv4 peer through its v4-mapped form.
func peerAddrFor(family int, src string) string {
	if family == 6 {
		switch src {
		case "127.0.0.1", "127.0.0.5":
			return "::ffff:" + src
		}
	}
	if family == 4 && len(src) > 7 && src[:7] == "::ffff:" {
		return src[7:]
	}
	return src
}

// sendOnce sends one datagram from src:sport to dst:dport and returns the
// index of the socket among fds that received it, or ECONNREFUSED (the
// port unreachable that came back), or NotReceived.
func sendOnce(family int, src string, sport int, dst string, dport int, fds []int) corpus.LookupResult {
	cfd := newSocketType(family, syscall.SOCK_DGRAM, true)
	defer closeFD(cfd)
	setFlag(cfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, true) // the peer port is reused datagram after datagram
	if err := syscall.Bind(cfd, sockaddr(family, src, sport)); err != nil {
		log.Fatalf("client bind %s:%d: %v", src, sport, err)
	}
	if err := syscall.Connect(cfd, sockaddr(family, dst, dport)); err != nil {
		return corpus.LookupResult{Err: errName(err)}
	}
	if _, err := syscall.Write(cfd, []byte{1}); err != nil {
		return corpus.LookupResult{Err: errName(err)}
	}
	buf := make([]byte, 16)
	deadline := time.Now().Add(acceptPatience)
	for {
		for i, fd := range fds {
			_, _, err := syscall.Recvfrom(fd, buf, syscall.MSG_DONTWAIT)
			if err == nil {
				return corpus.LookupResult{Listener: i}
			}
			if !errors.Is(err, syscall.EAGAIN) {
				log.Fatalf("recvfrom: %v", err)
			}
		}
		if _, _, err := syscall.Recvfrom(cfd, buf, syscall.MSG_DONTWAIT); err != nil && !errors.Is(err, syscall.EAGAIN) {
			return corpus.LookupResult{Err: errName(err)}
		}
		if time.Now().After(deadline) {
			return corpus.LookupResult{Err: corpus.NotReceived}
		}
		time.Sleep(time.Millisecond)
	}
}
