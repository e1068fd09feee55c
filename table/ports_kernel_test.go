package table_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The bind corpus: answers recorded from the real kernel by
// internal/kernelcorpus (see its doc comment for the format). Extra
// corpora in the same format, from other kernels, are named in
// SOCKTABLE_BIND_CORPUS (colon-separated paths).

type corpusSock struct {
	Family    int    `json:"family"`
	V6Only    *bool  `json:"v6only"`
	Addr      string `json:"addr"`
	Port      int    `json:"port"`
	ReuseAddr bool   `json:"reuseaddr"`
	ReusePort bool   `json:"reuseport"`
	UID       uint32 `json:"uid"`
	Action    string `json:"action"`
	ConnectTo []any  `json:"connect_to"`
	Result    string `json:"result"`
	Stage     string `json:"stage"`
	BoundPort int    `json:"bound_port"`
	Target    *int   `json:"target"`
}

type bindCase struct {
	ID      string       `json:"id"`
	Kind    string       `json:"kind"`
	Port    int          `json:"port"`
	Ops     []corpusSock `json:"ops"`
	Prelude *struct {
		Listener       corpusSock `json:"listener"`
		ClientDst      string     `json:"client_dst"`
		WhoClosedFirst string     `json:"who_closed_first"`
	} `json:"prelude"`
	PortRange []int  `json:"port_range"`
	Kernel    string `json:"kernel"`
}

// corpusFiles returns the committed corpus file and those named in env.
func corpusFiles(t *testing.T, committed, env string) []string {
	files := []string{filepath.Join("..", "testdata", "kernel", committed)}
	if extra := os.Getenv(env); extra != "" {
		files = append(files, strings.Split(extra, ":")...)
	}
	return files
}

func readCorpus[C any](t *testing.T, path string) []C {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var cases []C
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c C
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c), "%s: %s", path, sc.Text())
		cases = append(cases, c)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, cases, path)
	return cases
}

// errnoName is the kernel's name for a Ports error.
func errnoName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, table.ErrAddrInUse):
		return "EADDRINUSE"
	case errors.Is(err, table.ErrInvalid):
		return "EINVAL"
	case errors.Is(err, table.ErrAddrNotAvail):
		return "EADDRNOTAVAIL"
	}
	return err.Error()
}

func corpusAddr(t *testing.T, s string) tuple.Addr {
	a, err := tuple.AddrFromNetIP(netip.MustParseAddr(s))
	require.NoError(t, err)
	return a
}

func (s *corpusSock) request(t *testing.T) table.BindRequest {
	return table.BindRequest{
		Family: s.Family, V6Only: s.V6Only != nil && *s.V6Only, Addr: corpusAddr(t, s.Addr),
		Port: uint16(s.Port), ReuseAddr: s.ReuseAddr, ReusePort: s.ReusePort, Owner: s.UID,
	}
}

// expect is what the kernel answered at stage.
func (s *corpusSock) expect(stage string) string {
	if s.Stage == stage {
		return s.Result
	}
	return "ok"
}

// flowSet is a FlowChecker over the connections a replay has made.
type flowSet map[tuple.Tuple]bool

func (f flowSet) ClaimFlow(t tuple.Tuple, _ bool) table.FlowClaim {
	if f[t] {
		return table.FlowClaim{Verdict: table.FlowInUse}
	}
	return table.FlowClaim{}
}

// replayBind runs one recorded case against a fresh Ports and returns the
// disagreements.
func replayBind(t *testing.T, c *bindCase) []string {
	flows := flowSet{}
	ports, err := table.NewPorts(table.PortsOptions{Flows: flows})
	require.NoError(t, err)
	var diffs []string
	differ := func(i int, what, got, want string) {
		diffs = append(diffs, fmt.Sprintf("%s op %d %s: got %s, kernel %s", c.ID, i, what, got, want))
	}
	if pre := c.Prelude; pre != nil {
		l, err := ports.Bind(pre.Listener.request(t))
		require.NoError(t, err, c.ID)
		require.NoError(t, ports.Listen(l), c.ID)
		child, err := ports.Inherit(l, corpusAddr(t, pre.ClientDst))
		require.NoError(t, err, c.ID)
		if pre.WhoClosedFirst == "server" {
			require.NoError(t, ports.TimeWait(child))
		} else {
			require.NoError(t, ports.Release(child))
		}
		require.NoError(t, ports.Release(l))
	}
	bindings := make([]*table.Binding, len(c.Ops))
	for i := range c.Ops {
		op := &c.Ops[i]
		if op.Action == "listen" {
			b := bindings[*op.Target]
			if b == nil {
				if op.Result != "SKIPPED_TARGET_NOT_BOUND" {
					differ(i, "late listen", "target not bound", op.Result)
				}
				continue
			}
			if got := errnoName(ports.Listen(b)); got != op.Result {
				differ(i, "late listen", got, op.Result)
			}
			continue
		}
		b, err := ports.Bind(op.request(t))
		if got, want := errnoName(err), op.expect("bind"); got != want {
			differ(i, "bind", got, want)
		}
		if err != nil {
			continue
		}
		bindings[i] = b
		if op.Port == 0 {
			if p := int(b.Port()); len(c.PortRange) == 2 && (p < c.PortRange[0] || p > c.PortRange[1]) {
				differ(i, "picked port", fmt.Sprint(p), fmt.Sprint(c.PortRange))
			}
		}
		switch op.Action {
		case "bind+listen":
			if got, want := errnoName(ports.Listen(b)), op.expect("listen"); got != want {
				differ(i, "listen", got, want)
			}
		case "bind+connect":
			dst := corpusAddr(t, op.ConnectTo[0].(string))
			remote := tuple.Endpoint{Addr: dst, Port: uint16(op.ConnectTo[1].(float64))}
			local := b.Addr()
			if local.IsUnspecified() {
				local = dst // loopback: the kernel routes from the destination address
			}
			_, err := ports.Connect(b, local, remote)
			if got, want := errnoName(err), op.expect("connect"); got != want {
				differ(i, "connect", got, want)
			}
			if err == nil {
				flows[tuple.Tuple{Local: tuple.Endpoint{Addr: local, Port: b.Port()}, Remote: remote}] = true
			}
		}
	}
	return diffs
}

func TestPortsAgreeWithKernel(t *testing.T) {
	for _, path := range corpusFiles(t, "bind.jsonl", "SOCKTABLE_BIND_CORPUS") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases := readCorpus[bindCase](t, path)
			var diffs []string
			kinds := map[string]int{}
			for i := range cases {
				kinds[cases[i].Kind]++
				diffs = append(diffs, replayBind(t, &cases[i])...)
			}
			t.Logf("%s: %d cases %v, kernel %s", path, len(cases), kinds, cases[0].Kernel)
			if len(diffs) > 0 {
				show := diffs[:min(len(diffs), 400)]
				t.Fatalf("%d disagreements with the kernel, first ones:\n%s", len(diffs), strings.Join(show, "\n"))
			}
		})
	}
}
