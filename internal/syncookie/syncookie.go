// Package syncookie computes what a TCP listener needs without keeping
// state per SYN, as Linux does (net/ipv4/syncookies.c, secure_seq.c): SYN
// cookies, the initial sequence numbers of ordinary requests, and the
// per-host-pair timestamp offsets.
//
// A SYN cookie is an initial sequence number that carries the connection's
// MSS (an index into a table of common values, Linux's msstab) and the
// minute it was made, authenticated by a keyed PRF (SipHash-2-4) over the
// four-tuple and the peer's initial sequence number, exactly as Linux's
// secure_tcp_syn_cookie lays it out:
//
//	cookie = H0(tuple) + peerISN + count<<24 + (H1(tuple, count) + mssIndex) mod 2^24
//
// count is the time in minutes (mod 256); a cookie is valid in the minute
// it was made and the next (MAX_SYNCOOKIE_AGE). What a cookie cannot carry
// (window scale, SACK, ECN) rides in the low six bits of the SYN-ACK's
// timestamp, which the final ACK echoes (cookie_init_timestamp), so it is
// kept only for peers that use timestamps.
//
// A Jar holds the secrets, drawn from crypto/rand: one per Demux. Its
// methods are safe for concurrent use, wait-free and allocate nothing.
package syncookie

import (
	"time"

	"github.com/socktable/socktable/internal/siphash"
	"github.com/socktable/socktable/tuple"
)

const (
	// countBits is the number of the cookie's low bits that hold the
	// authenticated data; the count is in the bits above (COOKIEBITS).
	countBits = 24
	dataMask  = 1<<countBits - 1
	// maxAge is how many counts old a cookie may be (MAX_SYNCOOKIE_AGE):
	// made in this minute or the last.
	maxAge = 2
	// Period is the time a count lasts (TCP_SYNCOOKIE_PERIOD).
	Period = time.Minute
)

// msstab4 and msstab6 are Linux's MSS values a cookie can encode, for
// IPv4 (msstab) and IPv6 (msstab in syncookies.c's IPv6 twin: 1280, 1480,
// 1500 and 9000 less the IPv6 and TCP headers).
var (
	msstab4 = [4]uint16{536, 1300, 1440, 1460}
	msstab6 = [4]uint16{1220, 1420, 1440, 8940}
)

// MSSTable returns the MSS values a cookie encodes for t's family, in
// increasing order.
func MSSTable(t tuple.Tuple) [4]uint16 {
	if t.Is4() {
		return msstab4
	}
	return msstab6
}

// Jar holds the secrets of one stack's cookies, sequence numbers and
// timestamp offsets. Its zero value is not usable: use NewJar.
type Jar struct {
	cookie [2]siphash.Key // syncookie_secret[0], [1]
	isn    siphash.Key    // net_secret
	ts     siphash.Key    // ts_secret
}

// NewJar returns a Jar with secrets from crypto/rand.
func NewJar() *Jar {
	return &Jar{cookie: [2]siphash.Key{siphash.NewKey(), siphash.NewKey()}, isn: siphash.NewKey(), ts: siphash.NewKey()}
}

// hash is cookie_hash: SipHash under secret c of the tuple and count.
func (j *Jar) hash(t tuple.Tuple, count uint32, c int) uint32 {
	lh, ll := t.Local.Addr.Words()
	rh, rl := t.Remote.Addr.Words()
	ports := uint64(t.Remote.Port)<<48 | uint64(t.Local.Port)<<32 | uint64(count)
	k := j.cookie[c]
	return uint32(siphash.Words5(k.K0, k.K1, rh, rl, lh, ll, ports))
}

// count is tcp_cookie_time: the minute of now.
func count(now time.Duration) uint32 { return uint32(now / Period) }

// Cookie returns the SYN cookie for a SYN of flow t (Local is the
// listener's side) with initial sequence number peerISN and MSS option
// mss (536 for IPv4, 1220 for IPv6 if it had none), made at now on the
// stack's clock, and the MSS it encodes: the largest of MSSTable(t) not
// above mss, or the smallest, as Linux's __cookie_v4_init_sequence picks.
// The connection must use that MSS.
func (j *Jar) Cookie(t tuple.Tuple, peerISN uint32, mss uint16, now time.Duration) (uint32, uint16) {
	tab := MSSTable(t)
	i := len(tab) - 1
	for ; i > 0; i-- {
		if mss >= tab[i] {
			break
		}
	}
	c := count(now)
	cookie := j.hash(t, 0, 0) + peerISN + c<<countBits + (j.hash(t, c, 1)+uint32(i))&dataMask
	return cookie, tab[i]
}

// Check reports whether cookie (the final ACK's acknowledgment number
// less one) is one Cookie made for flow t and peerISN (the ACK's
// sequence number less one) in this minute or the last, as of now, and
// returns the MSS it encodes (check_tcp_syn_cookie, __cookie_v4_check).
// A forged cookie passes with probability about 2^-22 (a 24-bit MAC that
// two counts may match, of which four data values are valid).
func (j *Jar) Check(t tuple.Tuple, peerISN, cookie uint32, now time.Duration) (uint16, bool) {
	c := count(now)
	cookie -= j.hash(t, 0, 0) + peerISN
	diff := (c - cookie>>countBits) & (1<<(32-countBits) - 1)
	if diff >= maxAge {
		return 0, false
	}
	i := (cookie - j.hash(t, c-diff, 1)) & dataMask
	tab := MSSTable(t)
	if i >= uint32(len(tab)) {
		return 0, false
	}
	return tab[i], true
}

// ISN returns the initial sequence number of a connection on t made at
// now (Linux's secure_tcp_seq): a keyed hash of the four-tuple plus the
// clock in 64 ns units, so that a new incarnation of a tuple starts above
// the old one's numbers (RFC 6528) and no one can predict another tuple's.
func (j *Jar) ISN(t tuple.Tuple, now time.Duration) uint32 {
	lh, ll := t.Local.Addr.Words()
	rh, rl := t.Remote.Addr.Words()
	ports := uint64(t.Remote.Port)<<16 | uint64(t.Local.Port)
	return uint32(siphash.Words5(j.isn.K0, j.isn.K1, rh, rl, lh, ll, ports)) + uint32(uint64(now)>>6)
}

// TSOffset returns the offset added to the timestamps of connections
// between t's two addresses (Linux's secure_tcp_ts_off): a keyed hash of
// the address pair, so the peer cannot learn the stack's clock, and the
// same for every connection between two hosts, which keeps their
// timestamps monotonic across connections for PAWS.
func (j *Jar) TSOffset(t tuple.Tuple) uint32 {
	lh, ll := t.Local.Addr.Words()
	rh, rl := t.Remote.Addr.Words()
	return uint32(siphash.Words5(j.ts.K0, j.ts.K1, lh, ll, rh, rl, 0))
}

// Options are the SYN's options a cookie's timestamp carries.
type Options struct {
	// HasWScale says the SYN offered window scaling, WScale its shift
	// (0-14).
	HasWScale bool
	WScale    uint8
	// SACK says the SYN offered SACK; ECN that it asked for ECN.
	SACK, ECN bool
}

// The low bits of a cookie's timestamp (TSBITS, TS_OPT_*).
const (
	tsBits        = 6
	tsOptWScale   = 0xf // the window scale, or 0xf for none
	tsOptSACK     = 1 << 4
	tsOptECN      = 1 << 5
	tsOptionsMask = 1<<tsBits - 1
)

// EncodeTS returns the TSval (before the flow's TSOffset is added) of a
// SYN-ACK carrying a cookie, at timestamp clock ts: ts with its low six
// bits replaced by o, stepped back one period if that made it larger, so
// the clock never appears to run ahead (cookie_init_timestamp). A WScale
// above 14 is sent as 14, RFC 7323's limit.
func EncodeTS(ts uint32, o Options) uint32 {
	opts := uint32(tsOptWScale)
	if o.HasWScale {
		opts = uint32(min(o.WScale, tuple.MaxWindowScale))
	}
	if o.SACK {
		opts |= tsOptSACK
	}
	if o.ECN {
		opts |= tsOptECN
	}
	v := ts&^tsOptionsMask | opts
	if v > ts {
		v -= 1 << tsBits
	}
	return v
}

// DecodeTS returns the options in the echoed timestamp of a cookie's
// final ACK, its TSecr less the flow's TSOffset (cookie_timestamp_decode).
func DecodeTS(tsecr uint32) Options {
	o := Options{SACK: tsecr&tsOptSACK != 0, ECN: tsecr&tsOptECN != 0}
	if ws := tsecr & tsOptWScale; ws != tsOptWScale {
		o.HasWScale, o.WScale = true, uint8(ws) // 0-14
	}
	return o
}
