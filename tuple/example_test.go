package tuple_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/socktable/socktable/tuple"
)

// A connection's key from netip values. An IPv4 peer of a dual-stack
// socket (seen as ::ffff:a.b.c.d) and a plain IPv4 packet give one key.
func ExampleNew() {
	t, err := tuple.New(netip.MustParseAddrPort("10.0.0.1:443"), netip.MustParseAddrPort("[::ffff:192.0.2.7]:51000"))
	if err != nil {
		panic(err)
	}
	fmt.Println(t)
	fmt.Println(t == tuple.MustNew("10.0.0.1:443", "192.0.2.7:51000"))

	_, err = tuple.New(netip.MustParseAddrPort("10.0.0.1:443"), netip.MustParseAddrPort("192.0.2.7:0"))
	fmt.Println(errors.Is(err, tuple.ErrPort))
	// Output:
	// local 10.0.0.1:443 remote 192.0.2.7:51000
	// true
	// true
}

// One Hasher per stack: hash a flow once, then use the value for the table
// bucket (low bits) and for the shard (Shard, high bits).
func ExampleHasher() {
	h := tuple.NewHasher() // keyed from crypto/rand
	t := tuple.MustNew("10.0.0.1:443", "192.0.2.7:51000")
	hash := h.Hash(t)
	bucket := hash & (1<<16 - 1)
	shard := tuple.Shard(hash, 8)
	fmt.Println(hash == h.Hash(t), bucket < 1<<16, shard >= 0 && shard < 8)
	// Output: true true true
}

// Addr converts back to netip with IPv4 unmapped.
func ExampleAddr_NetIP() {
	a, _ := tuple.AddrFromNetIP(netip.MustParseAddr("::ffff:198.51.100.1"))
	b := a.As16()
	fmt.Println(a.Is4(), a.NetIP(), b[10:12])
	// Output: true 198.51.100.1 [255 255]
}
