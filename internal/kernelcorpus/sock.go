//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"github.com/socktable/socktable/internal/corpus"
)

// soReusePort is SO_REUSEPORT, which package syscall does not define. 15 is
// the asm-generic value every architecture this file builds for uses; the
// mips family (0x200) is excluded by the build constraint for that reason.
const soReusePort = 0xf

// backlog is the listen backlog of every socket the generator listens on.
// No case fills an accept queue, so any value above the few connections a
// case makes would do.
const backlog = 128

// boolPtr returns a pointer to a fresh copy of b, for corpus.BindSock.V6Only.
func boolPtr(b bool) *bool { return &b }

// asUID runs f with the effective uid set to uid, and restores euid 0
// afterwards. A socket's owner (sk_uid, which SO_REUSEPORT compares) is the
// creator's fsuid, which follows the euid; the real and saved uids stay 0
// so that the way back is allowed. Go applies setresuid to every thread of
// the process (since Go 1.16), so it does not matter which thread f runs
// on. All of f runs under uid, not only socket(2), because that is what an
// unprivileged program does; ports are >= 1024, so no capability is needed.
func asUID(uid int, f func()) {
	if uid == 0 {
		f()
		return
	}
	if err := syscall.Setresuid(-1, uid, 0); err != nil {
		log.Fatalf("setresuid(-1, %d, 0): %v", uid, err)
	}
	defer func() {
		// Running on as uid 1000 would make every later "uid 0" socket a
		// lie, so a failed restore ends the run.
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			log.Fatalf("setresuid(-1, 0, -1): %v", err)
		}
	}()
	f()
}

// sockaddr builds the address for bind(2) or connect(2) on a socket of the
// given family. A family 6 address keeps its form: ::ffff:a.b.c.d stays a
// v4-mapped IPv6 address, which is what the kernel has to judge.
func sockaddr(family int, addr string, port int) syscall.Sockaddr {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		log.Fatalf("bad address %q: %v", addr, err)
	}
	switch {
	case family == 4 && ip.Is4():
		return &syscall.SockaddrInet4{Port: port, Addr: ip.As4()}
	case family == 6 && ip.Is6():
		return &syscall.SockaddrInet6{Port: port, Addr: ip.As16()}
	}
	log.Fatalf("address %q is not of family %d", addr, family)
	return nil
}

// afOf maps the corpus's family number to the socket(2) domain.
func afOf(family int) int {
	if family == 4 {
		return syscall.AF_INET
	}
	return syscall.AF_INET6
}

// newSocket creates a TCP socket of the given family. Failure is the
// generator's problem, not an answer of interest, so it is fatal.
func newSocket(family int, nonblock bool) int {
	return newSocketType(family, syscall.SOCK_STREAM, nonblock)
}

// newSocketType creates a socket of the given family and type
// (SOCK_STREAM, SOCK_DGRAM), fatally on failure.
func newSocketType(family, sockType int, nonblock bool) int {
	typ := sockType | syscall.SOCK_CLOEXEC
	if nonblock {
		typ |= syscall.SOCK_NONBLOCK
	}
	fd, err := syscall.Socket(afOf(family), typ, 0)
	if err != nil {
		log.Fatalf("socket(family %d): %v", family, err)
	}
	return fd
}

// setFlag sets a boolean socket option, fatally on failure.
func setFlag(fd, level, opt int, on bool) {
	v := 0
	if on {
		v = 1
	}
	if err := syscall.SetsockoptInt(fd, level, opt, v); err != nil {
		log.Fatalf("setsockopt(%d, %d) = %d: %v", level, opt, v, err)
	}
}

// openBound creates the socket s describes, as s.UID, and binds it. It
// returns the socket, or -1 and the kernel's bind error, having closed the
// socket: a failed bind leaves nothing a later op could see.
func openBound(s corpus.BindSock, nonblock bool) (fd int, bindErr error) {
	return openBoundOpts(s, syscall.SOCK_STREAM, nonblock)
}

// openBoundType is openBound for a socket of type sockType (SOCK_DGRAM for
// the UDP corpus), blocking.
func openBoundType(s corpus.BindSock, sockType int) (fd int, bindErr error) {
	return openBoundOpts(s, sockType, false)
}

func openBoundOpts(s corpus.BindSock, sockType int, nonblock bool) (fd int, bindErr error) {
	asUID(s.UID, func() {
		fd = newSocketType(s.Family, sockType, nonblock)
		setFlag(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, s.ReuseAddr)
		setFlag(fd, syscall.SOL_SOCKET, soReusePort, s.ReusePort)
		if s.Family == 6 {
			// Set explicitly, both ways, so that the answers do not
			// depend on the net.ipv6.bindv6only sysctl.
			setFlag(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, *s.V6Only)
		}
		if s.Device != 0 {
			if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, soBindToIfindex, s.Device); err != nil {
				log.Fatalf("SO_BINDTOIFINDEX %d (uid %d): %v", s.Device, s.UID, err)
			}
		}
		bindErr = syscall.Bind(fd, sockaddr(s.Family, s.Addr, s.Port))
	})
	if bindErr != nil {
		closeFD(fd)
		return -1, bindErr
	}
	return fd, nil
}

// localPort returns the port getsockname(2) reports for fd.
func localPort(fd int) int {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		log.Fatalf("getsockname: %v", err)
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return sa.Port
	case *syscall.SockaddrInet6:
		return sa.Port
	}
	log.Fatalf("getsockname: unexpected %T", sa)
	return 0
}

// localAddr returns the address getsockname(2) reports for fd, in the
// form the corpus spells addresses (an AF_INET6 socket's v4-mapped
// address as ::ffff:a.b.c.d).
func localAddr(fd int) string {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		log.Fatalf("getsockname: %v", err)
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr).String()
	case *syscall.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).String()
	}
	log.Fatalf("getsockname: unexpected %T", sa)
	return ""
}

// disconnect calls connect(2) on fd with an AF_UNSPEC address, which
// dissolves a datagram socket's association (udp_disconnect); package
// syscall has no Sockaddr for AF_UNSPEC, so the call is made raw, with a
// zeroed sockaddr (sa_family 0) of sockaddr_in's size.
func disconnect(fd int) error {
	var sa [16]byte // sa_family AF_UNSPEC = 0
	if _, _, errno := syscall.Syscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa))); errno != 0 {
		return errno
	}
	return nil
}

// soBindToIfindex is SO_BINDTOIFINDEX (Linux 5.0), SO_BINDTODEVICE by
// interface index, which package syscall does not define.
const soBindToIfindex = 62

// The interfaces the UDP device cases bind to: loopback, which every
// datagram arrives on, and a TUN device no datagram crosses (-udp makes
// it; in a fresh namespace it gets the next index, which main checks).
const (
	ifLo    = 1
	ifOther = 2
)

// makeDevice creates the TUN device udpDevName for the UDP device cases,
// down and without addresses (a socket may bind to it all the same), and
// returns its descriptor, which keeps it alive.
func makeDevice() int {
	fd := createTun(udpDevName, 0)
	ifc, err := net.InterfaceByName(udpDevName)
	if err != nil || ifc.Index != ifOther {
		log.Fatalf("%s: index %v (%v), want %d", udpDevName, ifc, err, ifOther)
	}
	return fd
}

// createTun opens /dev/net/tun with openFlags added and makes it the
// TUN device name (IFF_TUN, no packet information header), fatally on
// failure.
func createTun(name string, openFlags int) int {
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC|openFlags, 0)
	if err != nil {
		log.Fatalf("open /dev/net/tun: %v", err)
	}
	var ifr ifreq
	copy(ifr.name[:], name)
	ifr.flags = syscall.IFF_TUN | syscall.IFF_NO_PI
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TUNSETIFF, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		log.Fatalf("TUNSETIFF %s: %v", name, errno)
	}
	return fd
}

// udpDevName is the device makeDevice creates.
const udpDevName = "stdev0"

// closeFD closes fd; a failed close means the generator lost track of its
// sockets, so it is fatal.
func closeFD(fd int) {
	if err := syscall.Close(fd); err != nil {
		log.Fatalf("close(%d): %v", fd, err)
	}
}

// closeFDs closes every socket of fds: the sockets a case opened, at
// its end.
func closeFDs(fds []int) {
	for _, fd := range fds {
		closeFD(fd)
	}
}

// closeRST closes a connected socket with SO_LINGER 0, so that it sends a
// RST and leaves no TIME_WAIT or FIN_WAIT2 behind. The generator uses it
// only where a TIME_WAIT is not the point: the namespace then holds no
// leftovers that a later case or a /proc scan would have to step around.
func closeRST(fd int) {
	l := syscall.Linger{Onoff: 1, Linger: 0}
	if err := syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &l); err != nil {
		log.Fatalf("SO_LINGER: %v", err)
	}
	closeFD(fd)
}

// errnoNames spells the errors a case can produce the way the corpus
// does: as the C constant's name.
var errnoNames = map[syscall.Errno]string{
	syscall.EACCES:        "EACCES",
	syscall.EADDRINUSE:    "EADDRINUSE",
	syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.EAFNOSUPPORT:  "EAFNOSUPPORT",
	syscall.EAGAIN:        "EAGAIN",
	syscall.ECONNREFUSED:  "ECONNREFUSED",
	syscall.ECONNRESET:    "ECONNRESET",
	syscall.EHOSTUNREACH:  "EHOSTUNREACH",
	syscall.EINPROGRESS:   "EINPROGRESS",
	syscall.EINVAL:        "EINVAL",
	syscall.EISCONN:       "EISCONN",
	syscall.ENETUNREACH:   "ENETUNREACH",
	syscall.EOPNOTSUPP:    "EOPNOTSUPP",
	syscall.EPERM:         "EPERM",
	syscall.ETIMEDOUT:     "ETIMEDOUT",
}

// errName returns the corpus spelling of a syscall error. An errno missing
// from errnoNames is still recorded, with its number, rather than dropped:
// it is exactly the kind of surprise the corpus exists to catch.
func errName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name, ok := errnoNames[errno]; ok {
			return name
		}
		return fmt.Sprintf("errno%d", int(errno))
	}
	return err.Error()
}
