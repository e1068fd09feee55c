// Package corpus is the schema of the kernel corpora in testdata/kernel:
// the JSON lines internal/kernelcorpus records and the replay tests read,
// declared once so that the two cannot drift apart. It holds the bind
// corpus, bind.jsonl (one BindCase a line), the UDP bind corpus,
// udp-bind.jsonl (BindCases of proto udp), the lookup corpus,
// lookup.jsonl (one LookupCase a line), and the TIME_WAIT segment corpus,
// timewait-segments.jsonl (one SegmentCase a line).
//
// The recorder writes each case with an encoding/json Encoder that does
// not escape HTML, one Encode call a line; the readers decode a line
// strictly (no unknown fields, nothing after the object) and reject one
// that breaks the schema with an error wrapping ErrMalformed, so that a
// replay test never has to guard against a line that would make it
// index out of range. Only the recorder and tests import the package.
package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The corpus files in testdata/kernel.
const (
	BindFile     = "bind.jsonl"
	LookupFile   = "lookup.jsonl"
	SegmentsFile = "timewait-segments.jsonl"
	// UDPBindFile is the UDP bind corpus: BindCases with Proto ProtoUDP;
	// UDPLookupFile the UDP lookup corpus: LookupCases with Proto
	// ProtoUDP.
	UDPBindFile   = "udp-bind.jsonl"
	UDPLookupFile = "udp-lookup.jsonl"
)

// The environment variables that name extra corpora, recorded from other
// kernels, for the replay tests to read beside the committed one: each
// holds a colon-separated list of paths.
const (
	BindCorpusEnv      = "SOCKTABLE_BIND_CORPUS"
	LookupCorpusEnv    = "SOCKTABLE_LOOKUP_CORPUS"
	UDPBindCorpusEnv   = "SOCKTABLE_UDP_BIND_CORPUS"
	UDPLookupCorpusEnv = "SOCKTABLE_UDP_LOOKUP_CORPUS"
)

// ErrMalformed reports a corpus line that is not JSON, has a field the
// schema does not know, or breaks one of the schema's rules (an unknown
// action, a late listen of an op that is not an earlier socket op, a
// result naming a listener the case does not have, an address that does
// not parse, and so on).
var ErrMalformed = errors.New("corpus: malformed line")

// BindFiles returns the committed bind corpus in dir (dir/bind.jsonl)
// followed by the paths BindCorpusEnv names, in order; empty elements of
// the list are skipped.
func BindFiles(dir string) []string { return files(dir, BindFile, BindCorpusEnv) }

// UDPBindFiles returns the committed UDP bind corpus in dir
// (dir/udp-bind.jsonl) followed by the paths UDPBindCorpusEnv names.
func UDPBindFiles(dir string) []string { return files(dir, UDPBindFile, UDPBindCorpusEnv) }

// UDPLookupFiles returns the committed UDP lookup corpus in dir
// (dir/udp-lookup.jsonl) followed by the paths UDPLookupCorpusEnv names.
func UDPLookupFiles(dir string) []string { return files(dir, UDPLookupFile, UDPLookupCorpusEnv) }

// LookupFiles returns the committed lookup corpus in dir
// (dir/lookup.jsonl) followed by the paths LookupCorpusEnv names, in
// order; empty elements of the list are skipped.
func LookupFiles(dir string) []string { return files(dir, LookupFile, LookupCorpusEnv) }

func files(dir, name, env string) []string {
	paths := []string{filepath.Join(dir, name)}
	for _, p := range strings.Split(os.Getenv(env), ":") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// readLines reads a JSON-lines file of C values, decoding each line
// strictly and then checking it with check (nil for none). Any decoding
// or check failure is an error wrapping ErrMalformed and naming the line.
func readLines[C any](path string, check func(*C) error) ([]C, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []C
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		c, err := parseLine(sc.Bytes(), check)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %w", ErrMalformed, path, line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cases, nil
}

// ParseBindLine reads one line of the bind corpus as ReadBindCases does
// (strict decoding, then the schema's rules); its error does not wrap
// ErrMalformed. For the fuzz targets.
func ParseBindLine(line []byte) (BindCase, error) { return parseLine(line, (*BindCase).check) }

// ParseLookupLine reads one line of the lookup corpus as ReadLookupCases
// does. For the fuzz targets.
func ParseLookupLine(line []byte) (LookupCase, error) { return parseLine(line, (*LookupCase).check) }

// parseLine decodes one line strictly and checks it with check (nil for
// none).
func parseLine[C any](b []byte, check func(*C) error) (C, error) {
	var c C
	err := decodeStrict(b, &c)
	if err == nil && check != nil {
		err = check(&c)
	}
	return c, err
}

// decodeStrict decodes the one JSON value in b into v, refusing unknown
// fields and anything after the value.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty line")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// checkFamily checks a corpus family number: 4 (AF_INET) or 6 (AF_INET6).
func checkFamily(family int) error {
	if family != 4 && family != 6 {
		return fmt.Errorf("family %d, not 4 or 6", family)
	}
	return nil
}

// checkAddr checks that s is an address of the family, in the form the
// recorder passes to the kernel: dotted IPv4 for family 4, any IPv6 form
// (v4-mapped included) for family 6, never with a zone.
func checkAddr(family int, s string) error {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return err
	case a.Zone() != "":
		return fmt.Errorf("address %q has a zone", s)
	case family == 4 && !a.Is4(), family == 6 && !a.Is6():
		return fmt.Errorf("address %q is not of family %d", s, family)
	}
	return nil
}

// checkV6Only checks that v6only is set exactly for family 6.
func checkV6Only(family int, v6only *bool) error {
	if (family == 6) != (v6only != nil) {
		return fmt.Errorf("family %d with v6only %s", family, fmtBool(v6only))
	}
	return nil
}

func fmtBool(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}

// checkPort checks a port field: 0 to 65535.
func checkPort(what string, p int) error {
	if p < 0 || p > 65535 {
		return fmt.Errorf("%s %d out of range", what, p)
	}
	return nil
}
