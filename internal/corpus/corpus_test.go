package corpus

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// kernelDir is testdata/kernel, from this package's directory.
var kernelDir = filepath.Join("..", "..", "testdata", "kernel")

// requireRoundTrip checks that the committed corpus file reads back and
// that encoding each case again as the recorder does (an Encoder that does
// not escape HTML, one Encode a line) gives back its line byte for byte:
// the schema is the one the corpus was recorded with.
func requireRoundTrip[C any](t *testing.T, path string, read func(string) ([]C, error)) []C {
	t.Helper()
	cases, err := read(path)
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	require.NotEmpty(t, cases)
	require.Len(t, cases, len(lines))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range cases {
		b.Reset()
		require.NoError(t, enc.Encode(&cases[i]))
		require.Equal(t, string(lines[i]), b.String(), "line %d", i+1)
	}
	return cases
}

// requireMalformed writes each line to a file of its own, after good (a
// valid line), and checks that read rejects it with ErrMalformed, naming
// the line; it first checks that good alone reads.
func requireMalformed[C any](t *testing.T, read func(string) ([]C, error), good string, bad map[string]string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	cases, err := read(write("good.jsonl", good+"\n"))
	require.NoError(t, err)
	require.Len(t, cases, 1)
	for name, line := range bad {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, good, line, "the edit must change the line")
			p := write(strings.ReplaceAll(name, "/", "_")+".jsonl", good+"\n"+line+"\n")
			_, err := read(p)
			require.ErrorIs(t, err, ErrMalformed)
			require.ErrorContains(t, err, p+":2:")
		})
	}
}

// edit returns s with old replaced by new exactly once.
func edit(t *testing.T, s, old, new string) string {
	t.Helper()
	require.Equal(t, 1, strings.Count(s, old), "%q in %s", old, s)
	return strings.Replace(s, old, new, 1)
}

func TestReadMissingFile(t *testing.T) {
	_, err := ReadBindCases(filepath.Join(t.TempDir(), "none.jsonl"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NotErrorIs(t, err, ErrMalformed)
}

func TestFilesExtraCorpora(t *testing.T) {
	t.Setenv(BindCorpusEnv, "")
	t.Setenv(LookupCorpusEnv, "")
	require.Equal(t, []string{filepath.Join("d", BindFile)}, BindFiles("d"))
	require.Equal(t, []string{filepath.Join("d", LookupFile)}, LookupFiles("d"))
	t.Setenv(BindCorpusEnv, "/a/bind.jsonl:b.jsonl::")
	t.Setenv(LookupCorpusEnv, "/c/lookup.jsonl")
	require.Equal(t, []string{filepath.Join("d", BindFile), "/a/bind.jsonl", "b.jsonl"}, BindFiles("d"))
	require.Equal(t, []string{filepath.Join("d", LookupFile), "/c/lookup.jsonl"}, LookupFiles("d"))
}
