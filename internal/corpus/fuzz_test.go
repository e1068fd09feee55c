package corpus

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// addLines seeds f with every n-th line of a committed corpus file.
func addLines(f *testing.F, name string, n int) {
	file, err := os.Open(filepath.Join(kernelDir, name))
	require.NoError(f, err)
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i%n == 0 {
			f.Add(append([]byte(nil), sc.Bytes()...))
		}
	}
	require.NoError(f, sc.Err())
}

// fuzzLine checks the reader's contract on any line: it never panics; a
// line it accepts encodes again into a line it accepts, which reads back
// as the same case (the schema is a fixed point after one round trip).
func fuzzLine[C any](t *testing.T, line []byte, check func(*C) error) {
	c, err := parseLine(line, check)
	if err != nil {
		return
	}
	b, err := json.Marshal(&c)
	require.NoError(t, err)
	again, err := parseLine(b, check)
	require.NoError(t, err, "%s", b)
	require.Equal(t, c, again)
}

func FuzzBindLine(f *testing.F) {
	addLines(f, BindFile, 97)
	for _, l := range []string{goodSeq, goodTW, goodPort0} {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) { fuzzLine(t, line, (*BindCase).check) })
}

func FuzzLookupLine(f *testing.F) {
	addLines(f, LookupFile, 7)
	f.Add([]byte(goodLookup))
	f.Fuzz(func(t *testing.T, line []byte) { fuzzLine(t, line, (*LookupCase).check) })
}
