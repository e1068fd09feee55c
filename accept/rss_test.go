package accept

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

// The verification suite of Microsoft's RSS specification ("Verifying the
// RSS Hash Calculation"): destination, source, and the hashes over the
// addresses and ports with the default key.
func TestRSSHashVerificationSuite(t *testing.T) {
	for _, c := range []struct {
		dst, src string
		want     uint32
	}{
		{"161.142.100.80:1766", "66.9.149.187:2794", 0x51ccc178},
		{"65.69.140.83:4739", "199.92.111.2:14230", 0xc626b0ea},
		{"12.22.207.184:38024", "24.19.198.95:12898", 0x5c2b394a},
		{"209.142.163.6:2217", "38.27.205.30:48228", 0xafc7327f},
		{"202.188.127.2:1303", "153.39.163.191:44251", 0x10e828a2},
		{"[3ffe:2501:200:3::1]:1766", "[3ffe:2501:200:1fff::7]:2794", 0x40207d3d},
		{"[ff02::1]:4739", "[3ffe:501:8::260:97ff:fe40:efab]:14230", 0xdde51bbf},
		{"[fe80::200:f8ff:fe21:67cf]:38024", "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251", 0x02d1feef},
	} {
		tu := tuple.MustNew(c.dst, c.src) // Local is the destination
		require.Equal(t, c.want, RSSHash(DefaultRSSKey[:], tu), "%s -> %s", c.src, c.dst)
	}
	// The address-only hashes of the same suite, through Toeplitz.
	require.Equal(t, uint32(0x323e8fc2), Toeplitz(DefaultRSSKey[:], []byte{66, 9, 149, 187, 161, 142, 100, 80}))
	require.Zero(t, Toeplitz(DefaultRSSKey[:8], make([]byte, 8)), "key too short")
}
