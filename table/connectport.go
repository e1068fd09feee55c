package table

import (
	"math/rand/v2"

	"github.com/socktable/socktable/internal/siphash"
	"github.com/socktable/socktable/tuple"
)

// perturbSize is the size of RFC 6056 Algorithm 4's perturbation table:
// 2^16 entries, as Linux has used since the RFC's 2^10 proved attackable
// (the "DNS cache poisoning via port prediction" work, 2022).
const perturbSize = 1 << 16

// ConnectRequest is a connect(2) on a socket with no local port: the
// socket's family and options, the source address the stack routed it
// from, and the destination.
type ConnectRequest struct {
	// Family, V6Only, ReuseAddr, ReusePort, Owner and Device are as in
	// BindRequest.
	Family               int
	V6Only               bool
	ReuseAddr, ReusePort bool
	Owner                uint32
	Device               int
	// Local is the source address (specific; for family 6 an IPv4 Addr is
	// v4-mapped). Remote is the destination.
	Local  tuple.Addr
	Remote tuple.Endpoint
	// Shards, if above 1, asks for a port whose flow hash (the stack's
	// Hasher over the connection's tuple, scaled with tuple.Shard) lands
	// on Shard, so the replies arrive on the shard that connected
	// (fastsocket's Receive Flow Deliver).
	Shards, Shard int
	// Flows, if set, is asked in place of PortsOptions.Flows whether a
	// four-tuple is free: a checker for this one connection, which
	// inserts it into the stack's established table in the same step
	// (see FlowChecker and ConnectWith). A FlowClaim.Err from it ends the
	// search with that error.
	Flows FlowChecker
}

// ConnectAny picks a local port for a connection and binds it, as
// connect() does for a socket not bound to a port (__inet_hash_connect,
// RFC 6056 Algorithm 4): the search starts at a keyed offset per (source,
// destination address, destination port) plus a perturbation entry, takes
// ports of the range's low parity first, skips ports bound by Bind (any
// address) and reserved ports, and accepts a port that ConnectAny picked
// for other connections if the four-tuple is free: no connection Ports
// knows of and, if PortsOptions.Flows is set, the checker grants it
// (taking a TIME_WAIT entry over when tcp_tw_reuse allows: the port was
// not bound explicitly). On success the perturbation entry advances, so
// the next connection to the same destination starts elsewhere. It
// returns the connected binding, the four-tuple it chose, and what the
// connection inherits if it took a TIME_WAIT tuple over, in one call.
//
// Like Linux, it tries every port of the preferred parity before the
// other one, so once more than half the range is in use towards a
// destination a connect passes over half the range; used ports cost a bit
// test on lock-free bitmaps (see portMaps), not a locked walk.
//
// It returns ErrAddrNotAvail when no port in the range will do (Linux's
// EADDRNOTAVAIL), ErrInvalid for a bad family, a wildcard Local, a Local
// of the wrong family, or a Shard out of range, and ErrClosed after Close.
func (p *Ports) ConnectAny(req ConnectRequest) (ConnectResult, error) {
	if p.closed.Load() {
		return ConnectResult{}, ErrClosed
	}
	breq := BindRequest{Family: req.Family, V6Only: req.V6Only, Addr: req.Local, ReuseAddr: req.ReuseAddr,
		ReusePort: req.ReusePort, Owner: req.Owner, Device: req.Device}
	if err := p.validate(&breq); err != nil {
		return ConnectResult{}, err
	}
	if req.Local.IsUnspecified() || (req.Shards > 1 && (req.Shard < 0 || req.Shard >= req.Shards)) {
		return ConnectResult{}, ErrInvalid
	}
	o := ownerOf(breq)
	o.state, o.autobound = StateConnected, true
	low := int(p.low)
	remaining := int(p.high) - low + 1
	const step = 2
	portOffset := p.portOffset(req.Local, req.Remote)
	index := portOffset & (perturbSize - 1)
	offset := (uint64(p.perturb[index].Load()) + portOffset>>32) % uint64(remaining)
	offset &^= 1 // the range's low parity first; bind() prefers the other
	dest := p.destBits(req.Local, req.Remote, false)
	for parity := 0; parity < 2 && (parity == 0 || remaining > 1); parity++ {
		port := low + int(offset)
		for i := 0; i < remaining; i, port = i+step, port+step {
			if port >= low+remaining {
				port -= remaining
			}
			// Bit tests first: a port bound by bind(), or with a live
			// connection to this destination, is passed over unlocked.
			if j := port - low; testBit(p.maps.bound, j) || (dest != nil && testBit(dest, j)) ||
				p.isReserved(uint16(port)) || !p.shardOK(&req, uint16(port)) {
				continue
			}
			res, ok, err := p.tryConnectPort(o, req.Remote, uint16(port), req.Flows)
			if err != nil {
				return ConnectResult{}, err
			}
			if ok {
				bump := max(i, rand.IntN(8)*2) + step
				p.perturb[index].Add(uint32(bump))
				return res, nil
			}
		}
		offset++
	}
	return ConnectResult{}, ErrAddrNotAvail
}

// portOffset is RFC 6056's F(local address, remote address, remote port,
// secret): SipHash-2-4 under the table's own secret, as Linux's
// secure_ipv4_port_ephemeral is. The offsets are seen by the peer (they
// are the source ports), so F must be a pseudorandom function: from the
// ports it sees, no one may predict the ports towards another
// destination. tuple.Hasher is keyed but not a PRF, and its key serves
// the tables. The low 16 bits pick the perturbation entry, the high 32
// the offset, as in Linux.
func (p *Ports) portOffset(local tuple.Addr, remote tuple.Endpoint) uint64 {
	lh, ll := local.Words()
	rh, rl := remote.Addr.Words()
	return siphash.Words5(p.offsetKey.K0, p.offsetKey.K1, lh, ll, rh, rl, uint64(remote.Port))
}

// shardOK reports whether a connection from port lands on req's shard:
// the shard the stack steers its received segments to (tuple.Steer of the
// flow hash, as accept.Sharded.Steer does), so that the replies to an
// active open arrive on the shard that opened it (fastsocket's Receive
// Flow Deliver).
func (p *Ports) shardOK(req *ConnectRequest, port uint16) bool {
	if req.Shards <= 1 {
		return true
	}
	t := tuple.Tuple{Local: tuple.Endpoint{Addr: req.Local, Port: port}, Remote: req.Remote}
	return tuple.Steer(p.hasher.Hash(t), req.Shards) == req.Shard
}

// tryConnectPort adds a connection with the fields of o to remote on port
// if the port's holders were all placed by ConnectAny and the four-tuple
// is free (see claimLocked).
func (p *Ports) tryConnectPort(o bindOwner, remote tuple.Endpoint, port uint16, flows FlowChecker) (ConnectResult, bool, error) {
	s := p.stripe(port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return ConnectResult{}, false, ErrClosed
	}
	if e := s.ports[port]; e != nil && e.bound > 0 {
		return ConnectResult{}, false, nil // a bind()-created bucket: connect() skips it
	}
	t := tuple.Tuple{Local: tuple.Endpoint{Addr: o.addr, Port: port}, Remote: remote}
	claim, ok := p.claimLocked(s, t, false, flows)
	if !ok {
		return ConnectResult{}, false, claim.Err
	}
	o.port = port
	b := &Binding{ports: p, port: port}
	p.addLocked(s, b, o)
	return p.connectLocked(s, b, t, claim), true, nil
}
