package fuzz

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/corpus"
)

// The kernel corpora's line readers (internal/corpus), which the replay
// tests and every corpus recorded on another kernel go through.

// addCorpusLines seeds f with every n-th line of a committed corpus file.
func addCorpusLines(f *testing.F, name string, n int) {
	file, err := os.Open(filepath.Join("..", "testdata", "kernel", name))
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

// fuzzCorpusLine checks a reader's contract on any line: it never panics;
// a line it accepts encodes again into a line it accepts, which reads back
// as the same case (the schema is a fixed point after one round trip).
func fuzzCorpusLine[C any](t *testing.T, line []byte, parse func([]byte) (C, error)) {
	c, err := parse(line)
	if err != nil {
		return
	}
	b, err := json.Marshal(&c)
	require.NoError(t, err)
	again, err := parse(b)
	require.NoError(t, err, "%s", b)
	require.Equal(t, c, again)
}

func FuzzBindCorpusLine(f *testing.F) {
	addCorpusLines(f, corpus.BindFile, 97)
	f.Fuzz(func(t *testing.T, line []byte) { fuzzCorpusLine(t, line, corpus.ParseBindLine) })
}

func FuzzLookupCorpusLine(f *testing.F) {
	addCorpusLines(f, corpus.LookupFile, 7)
	f.Fuzz(func(t *testing.T, line []byte) { fuzzCorpusLine(t, line, corpus.ParseLookupLine) })
}
