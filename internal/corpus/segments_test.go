package corpus

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/tuple"
)

func TestFlagBits(t *testing.T) {
	for _, f := range []tuple.Flags{0, tuple.SYN, tuple.SYN | tuple.ACK, tuple.FIN | tuple.PSH | tuple.ACK, 0xff} {
		p := Packet{Flags: f.String()}
		got, err := p.FlagBits()
		require.NoError(t, err)
		require.Equal(t, f, got)
	}
	_, err := (&Packet{Flags: "SYN|BOGUS"}).FlagBits()
	require.ErrorIs(t, err, ErrFlags)
}

// The recorded corpus reads back, and encoding a case again as the
// recorder does gives back its line byte for byte: the schema is the one
// the corpus was recorded with.
func TestReadSegmentCasesRoundTrip(t *testing.T) {
	cases := requireRoundTrip(t, filepath.Join(kernelDir, SegmentsFile), ReadSegmentCases)
	for _, c := range cases {
		for _, p := range c.Setup {
			_, err := p.FlagBits()
			require.NoError(t, err, c.ID)
		}
	}
}

func TestReadSegmentCasesMalformed(t *testing.T) {
	good := `{"id":"x","substate":"TIME_WAIT","close":"fin-ack","sysctls":{"tcp_rfc1337":0},"listener":true,"local":"10.77.0.1:10000","remote":"10.77.0.2:20000","setup":[],"probes":[],"kernel":"k"}`
	requireMalformed(t, ReadSegmentCases, good, map[string]string{
		"not json":      `{"id":`,
		"empty line":    ``,
		"unknown field": edit(t, good, `"listener":true`, `"listener":true,"listner":false`),
		"trailing data": good + ` {}`,
		"wrong type":    edit(t, good, `"listener":true`, `"listener":"yes"`),
	})
}
