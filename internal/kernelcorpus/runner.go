//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"errors"
	"log"
	"syscall"
	"time"

	"github.com/socktable/socktable/internal/corpus"
)

// Port plan. Every case gets ports of its own, counted up from firstPort,
// so no case meets a socket (or a TIME_WAIT) of another. All of them lie
// below the default ephemeral range (32768-60999), so neither connect(2)
// nor bind-to-port-0 can take one first; helperPort lies below them all.
const (
	helperPort = 9000
	firstPort  = 10000
)

// runner runs cases and hands out their ports. It is used by one
// goroutine only.
type runner struct {
	nextPort int // next unused case port
	portEnd  int // first port the plan must not reach: ip_local_port_range's low end

	// helpers are the listeners bind+connect ops connect to, by family:
	// AF_INET on 127.0.0.1:helperPort (also reached through
	// ::ffff:127.0.0.1) and a v6only AF_INET6 on [::1]:helperPort. They
	// are not ops: they live for the whole run, on a port no case uses.
	helper4, helper6 int
}

// newRunner opens the helper listeners. portEnd is the low end of the
// ephemeral range; case ports must stay below it.
func newRunner(portEnd int) *runner {
	r := &runner{nextPort: firstPort, portEnd: portEnd}
	r.helper4 = openHelper(corpus.BindSock{Family: 4, Addr: "127.0.0.1", Port: helperPort})
	r.helper6 = openHelper(corpus.BindSock{Family: 6, V6Only: boolPtr(true), Addr: "::1", Port: helperPort})
	return r
}

// openHelper opens a non-blocking listener for the generator's own use.
func openHelper(s corpus.BindSock) int {
	fd, err := openBound(s, true)
	if err != nil {
		log.Fatalf("helper listener %s:%d: %v", s.Addr, s.Port, err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		log.Fatalf("helper listener %s:%d: listen: %v", s.Addr, s.Port, err)
	}
	return fd
}

// close closes the helper listeners.
func (r *runner) close() {
	closeFD(r.helper4)
	closeFD(r.helper6)
}

// port returns a port no earlier case has used.
func (r *runner) port() int {
	if r.nextPort >= r.portEnd {
		log.Fatalf("out of case ports: reached %d, the ephemeral range starts there", r.portEnd)
	}
	p := r.nextPort
	r.nextPort++
	return p
}

// acceptHelper accepts the connection a bind+connect op just made to the
// helper at addr, and returns the accepted socket.
func (r *runner) acceptHelper(addr string) int {
	fd := r.helper6
	if addr == "127.0.0.1" || addr == "::ffff:127.0.0.1" {
		fd = r.helper4
	}
	a, ok := acceptWait([]int{fd})
	if !ok {
		log.Fatalf("connection to helper %s:%d never reached its accept queue", addr, helperPort)
	}
	return a.fd
}

// accepted is a connection taken off one of several listeners.
type accepted struct {
	fd    int // the accepted socket
	index int // which listener it came from
}

// acceptWait polls the non-blocking listeners fds, in order, until one
// returns a connection. A connect(2) on loopback returns once the SYN-ACK
// is in, and the final ACK that queues the child is normally handled
// before that; the bounded retry only covers the rare case where it is
// not. It gives up after about acceptPatience.
func acceptWait(fds []int) (accepted, bool) {
	deadline := time.Now().Add(acceptPatience)
	for {
		for i, fd := range fds {
			nfd, _, err := syscall.Accept4(fd, syscall.SOCK_CLOEXEC)
			if err == nil {
				return accepted{nfd, i}, true
			}
			if !errors.Is(err, syscall.EAGAIN) {
				log.Fatalf("accept: %v", err)
			}
		}
		if time.Now().After(deadline) {
			return accepted{}, false
		}
		time.Sleep(time.Millisecond)
	}
}

// acceptPatience bounds acceptWait: far longer than loopback needs, and
// short enough that a lost connection costs the run little.
const acceptPatience = 200 * time.Millisecond
