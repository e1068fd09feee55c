//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"fmt"
	"log"
	"syscall"

	"github.com/socktable/socktable/internal/corpus"
)

// The cases are corpus.LookupCase values: internal/corpus declares the
// schema of lookup.jsonl, which the replay test reads with it.

// probe is a kind of client: its family, where it connects, and the source
// addresses it binds in turn.
type probe struct {
	family int
	dst    string
	srcs   []string
}

// The probes the scenarios use. Two source addresses each, so that the
// reuseport hash sees more than the source port change.
var (
	probe4Lo     = probe{4, "127.0.0.1", []string{"127.0.0.1", "127.0.0.5"}}
	probe4Other  = probe{4, "127.0.0.2", []string{"127.0.0.1", "127.0.0.5"}}
	probe6Lo     = probe{6, "::1", []string{"::1", "2001:db8::1"}}
	probe6Other  = probe{6, "2001:db8::1", []string{"::1", "2001:db8::1"}}
	probe6Mapped = probe{6, "::ffff:127.0.0.1", []string{"::ffff:127.0.0.1", "::ffff:127.0.0.5"}}
)

// Connections per case: enough for a reuseport case to show which members
// take traffic and roughly how evenly; a handful otherwise, since without
// reuseport every connection must go the same way.
const (
	connectsReusePort = 64
	connectsPlain     = 4
)

// scenario is a set of listeners and the probes tried against them; each
// probe becomes one lookup case, with fresh listeners on a fresh port.
type scenario struct {
	name      string
	listeners []corpus.LookupListener
	probes    []probe
}

// ln returns a listener on a, with SO_REUSEPORT set as rp.
func ln(a addrSpec, rp bool) corpus.LookupListener {
	return corpus.LookupListener{Family: a.family, V6Only: a.v6only, Addr: a.addr, ReusePort: rp}
}

// group returns n SO_REUSEPORT listeners on a: one reuseport group.
func group(a addrSpec, n int) []corpus.LookupListener {
	ls := make([]corpus.LookupListener, n)
	for i := range ls {
		ls[i] = ln(a, true)
	}
	return ls
}

// cat concatenates listener lists, to spell creation orders.
func cat(lists ...[]corpus.LookupListener) []corpus.LookupListener {
	var ls []corpus.LookupListener
	for _, l := range lists {
		ls = append(ls, l...)
	}
	return ls
}

// one wraps a single listener as a list.
func one(l corpus.LookupListener) []corpus.LookupListener { return []corpus.LookupListener{l} }

// scenarios lists the listener-choice questions, in a fixed order. Pairs
// of listeners that could not both listen without SO_REUSEPORT (a
// specific and a wildcard, or 0.0.0.0 and dual-stack ::) set it on both;
// they are then two groups of one.
func scenarios() []scenario {
	all4 := []probe{probe4Lo, probe4Other}
	mixed := []probe{probe4Lo, probe6Lo, probe6Mapped}
	return []scenario{
		// Single listeners: who they accept at all.
		{"v4-any", one(ln(v4Any, false)), []probe{probe4Lo, probe4Other, probe6Lo, probe6Mapped}},
		{"v4-exact", one(ln(v4Lo, false)), all4},
		{"dual-any", one(ln(dualAny, false)), []probe{probe4Lo, probe6Lo, probe6Other, probe6Mapped}},
		{"v6only-any", one(ln(v6Any, false)), mixed},
		{"v6only-exact", one(ln(v6Lo, false)), []probe{probe6Lo, probe6Other}},
		{"mapped-any", one(ln(dualMapAny, false)), []probe{probe4Lo, probe4Other, probe6Lo, probe6Mapped}},
		{"mapped-exact", one(ln(dualMapLo, false)), []probe{probe4Lo, probe4Other, probe6Lo, probe6Mapped}},
		// Exact against wildcard, in both creation orders.
		{"v4-any-then-exact", cat(one(ln(v4Any, true)), one(ln(v4Lo, true))), all4},
		{"v4-exact-then-any", cat(one(ln(v4Lo, true)), one(ln(v4Any, true))), all4},
		{"v6-any-then-exact", cat(one(ln(dualAny, true)), one(ln(dualLo, true))), []probe{probe6Lo, probe6Other, probe4Lo}},
		{"v6-exact-then-any", cat(one(ln(dualLo, true)), one(ln(dualAny, true))), []probe{probe6Lo, probe6Other, probe4Lo}},
		{"v6only-any-then-exact", cat(one(ln(v6Any, true)), one(ln(v6Lo, true))), []probe{probe6Lo, probe6Other}},
		{"v4-exact-then-dual-any", cat(one(ln(v4Lo, true)), one(ln(dualAny, true))), []probe{probe4Lo, probe4Other, probe6Lo}},
		{"dual-any-then-v4-exact", cat(one(ln(dualAny, true)), one(ln(v4Lo, true))), []probe{probe4Lo, probe4Other, probe6Lo}},
		{"mapped-exact-then-v4-any", cat(one(ln(dualMapLo, true)), one(ln(v4Any, true))), all4},
		{"v4-any-then-mapped-exact", cat(one(ln(v4Any, true)), one(ln(dualMapLo, true))), all4},
		// AF_INET against AF_INET6 wildcards.
		{"dual-any-then-v4-any", cat(one(ln(dualAny, true)), one(ln(v4Any, true))), mixed},
		{"v4-any-then-dual-any", cat(one(ln(v4Any, true)), one(ln(dualAny, true))), mixed},
		{"v6only-any-then-v4-any", cat(one(ln(v6Any, false)), one(ln(v4Any, false))), mixed},
		{"v4-any-then-v6only-any", cat(one(ln(v4Any, false)), one(ln(v6Any, false))), mixed},
		{"mapped-any-then-v6only-any", cat(one(ln(dualMapAny, false)), one(ln(v6Any, false))), mixed},
		{"v6only-any-then-mapped-any", cat(one(ln(v6Any, false)), one(ln(dualMapAny, false))), mixed},
		{"mapped-any-then-dual-any", cat(one(ln(dualMapAny, true)), one(ln(dualAny, true))), mixed},
		{"dual-any-then-mapped-any", cat(one(ln(dualAny, true)), one(ln(dualMapAny, true))), mixed},
		{"dual-any-then-v6only-any", cat(one(ln(dualAny, true)), one(ln(v6Any, true))), mixed},
		{"v6only-any-then-dual-any", cat(one(ln(v6Any, true)), one(ln(dualAny, true))), mixed},
		// One reuseport group.
		{"group2-v4-any", group(v4Any, 2), []probe{probe4Lo}},
		{"group3-v4-any", group(v4Any, 3), []probe{probe4Lo}},
		{"group4-v4-any", group(v4Any, 4), []probe{probe4Lo}},
		{"group2-v4-exact", group(v4Lo, 2), []probe{probe4Lo}},
		{"group4-v4-exact", group(v4Lo, 4), []probe{probe4Lo}},
		{"group3-dual-any", group(dualAny, 3), []probe{probe4Lo, probe6Lo}},
		{"group3-v6only-any", group(v6Any, 3), []probe{probe6Lo}},
		{"group2-v6-exact", group(dualLo, 2), []probe{probe6Lo}},
		{"group2-mapped-any", group(dualMapAny, 2), []probe{probe4Lo}},
		{"group2-v4-any-reuseaddr", []corpus.LookupListener{
			{Family: 4, Addr: "0.0.0.0", ReusePort: true, ReuseAddr: true},
			{Family: 4, Addr: "0.0.0.0", ReusePort: true, ReuseAddr: true},
		}, []probe{probe4Lo}},
		// Two groups: traffic must stay inside one of them.
		{"groups-v4-any-then-exact", cat(group(v4Any, 2), group(v4Lo, 2)), all4},
		{"groups-v4-exact-then-any", cat(group(v4Lo, 2), group(v4Any, 2)), all4},
		{"groups-v4-any-exact-interleaved", cat(one(ln(v4Any, true)), one(ln(v4Lo, true)), one(ln(v4Any, true)), one(ln(v4Lo, true))), all4},
		{"groups-v4-any-then-dual-any", cat(group(v4Any, 2), group(dualAny, 2)), mixed},
		{"groups-dual-any-then-v4-any", cat(group(dualAny, 2), group(v4Any, 2)), mixed},
		{"groups-dual-v4-any-interleaved", cat(one(ln(dualAny, true)), one(ln(v4Any, true)), one(ln(dualAny, true)), one(ln(v4Any, true))), mixed},
		{"groups-dual-any-then-v6only-any", cat(group(dualAny, 2), group(v6Any, 2)), mixed},
		{"groups-v6only-any-then-dual-any", cat(group(v6Any, 2), group(dualAny, 2)), mixed},
		{"groups-v6-exact-then-any", cat(group(dualLo, 2), group(dualAny, 2)), []probe{probe6Lo, probe6Other}},
		{"groups-v6-any-then-exact", cat(group(dualAny, 2), group(dualLo, 2)), []probe{probe6Lo, probe6Other}},
		{"group3-v4-any-and-other-exact", cat(group(v4Any, 3), one(ln(v4Other, true))), all4},
	}
}

// lookupCases expands the scenarios into cases, one per probe.
func lookupCases() []corpus.LookupCase {
	var cases []corpus.LookupCase
	for _, s := range scenarios() {
		for _, p := range s.probes {
			ls := make([]corpus.LookupListener, len(s.listeners))
			copy(ls, s.listeners)
			cases = append(cases, corpus.LookupCase{
				ID:           fmt.Sprintf("%s/v%d-%s", s.name, p.family, p.dst),
				Listeners:    ls,
				ClientFamily: p.family,
				DstAddr:      p.dst,
				Connects:     make([]corpus.LookupConnect, connectsFor(ls)),
			})
		}
	}
	return cases
}

// connectsFor returns how many connections a case with listeners ls makes.
func connectsFor(ls []corpus.LookupListener) int {
	for _, l := range ls {
		if l.ReusePort {
			return connectsReusePort
		}
	}
	return connectsPlain
}

// srcsFor returns the source addresses of the probe a case was made from.
func srcsFor(c *corpus.LookupCase) []string {
	for _, p := range []probe{probe4Lo, probe4Other, probe6Lo, probe6Other, probe6Mapped} {
		if p.family == c.ClientFamily && p.dst == c.DstAddr {
			return p.srcs
		}
	}
	log.Fatalf("%s: no probe", c.ID)
	return nil
}

// runLookup creates the case's listeners on a fresh port, makes its
// connections from fresh source ports, and records where each went. It
// reports the error of the first listener that could not bind or listen,
// having recorded nothing; the caller skips the case.
func (r *runner) runLookup(c *corpus.LookupCase) error {
	port := r.port()
	c.DstPort = port
	var fds []int
	defer func() { closeFDs(fds) }()
	for i := range c.Listeners {
		l := &c.Listeners[i]
		l.Port = port
		s := l.BindSock()
		fd, err := openBound(s, true)
		if err != nil {
			return fmt.Errorf("listener %d (%s) bind: %s", i, l.Addr, errName(err))
		}
		fds = append(fds, fd)
		if err := syscall.Listen(fd, backlog); err != nil {
			return fmt.Errorf("listener %d (%s) listen: %s", i, l.Addr, errName(err))
		}
	}
	srcs := srcsFor(c)
	for i := range c.Connects {
		cn := &c.Connects[i]
		cn.SrcAddr, cn.SrcPort = srcs[i%len(srcs)], r.port()
		cn.Result = connectOnce(c.ClientFamily, cn.SrcAddr, cn.SrcPort, c.DstAddr, port, fds)
	}
	return nil
}

// connectOnce connects from src:sport to dst:dport and returns the index
// of the listener (among fds) that accepted the connection, or the name of
// the connect error, as a corpus.LookupResult. Both ends are closed with a RST, leaving no
// TIME_WAIT: the next connection must find the listeners as the case
// built them and nothing else.
func connectOnce(family int, src string, sport int, dst string, dport int, fds []int) corpus.LookupResult {
	cfd := newSocket(family, false)
	if err := syscall.Bind(cfd, sockaddr(family, src, sport)); err != nil {
		log.Fatalf("client bind %s:%d: %v", src, sport, err)
	}
	if err := syscall.Connect(cfd, sockaddr(family, dst, dport)); err != nil {
		closeFD(cfd)
		return corpus.LookupResult{Err: errName(err)}
	}
	a, ok := acceptWait(fds)
	if !ok {
		closeRST(cfd)
		return corpus.LookupResult{Err: corpus.NotAccepted}
	}
	closeRST(a.fd)
	closeRST(cfd)
	return corpus.LookupResult{Listener: a.index}
}
