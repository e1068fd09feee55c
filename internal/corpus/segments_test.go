package corpus

import (
	"bytes"
	"encoding/json"
	"os"
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
	path := filepath.Join("..", "..", "testdata", "kernel", "timewait-segments.jsonl")
	cases, err := ReadSegmentCases(path)
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	require.Len(t, cases, len(lines))
	for i, c := range cases {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(c))
		require.Equal(t, string(lines[i]), b.String(), c.ID)
		for _, p := range c.Setup {
			_, err := p.FlagBits()
			require.NoError(t, err, c.ID)
		}
	}
}
