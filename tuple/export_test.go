package tuple

// NewHasherForTest returns a Hasher with a fixed key derived from seed, so
// distribution tests are deterministic. Production code gets its key from
// crypto/rand only.
func NewHasherForTest(seed uint64) *Hasher {
	var b [64]byte
	x := seed
	for i := 0; i < 64; i += 8 {
		v := splitmix64(&x)
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return newHasherFromBytes(b)
}

func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
