package table_test

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/corpus"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The bind corpus: answers recorded from the real kernel by
// internal/kernelcorpus (see its doc comment for how the cases were made,
// and internal/corpus, which both import, for the format). Extra corpora
// in the same format, from other kernels, are named in
// SOCKTABLE_BIND_CORPUS (colon-separated paths).

// kernelCorpusDir is testdata/kernel, from this package's directory.
var kernelCorpusDir = filepath.Join("..", "testdata", "kernel")

// errnoName is the kernel's name for a Ports error.
func errnoName(err error) string {
	switch {
	case err == nil:
		return corpus.ResultOK
	case errors.Is(err, table.ErrAddrInUse):
		return "EADDRINUSE"
	case errors.Is(err, table.ErrInvalid):
		return "EINVAL"
	case errors.Is(err, table.ErrAddrNotAvail):
		return "EADDRNOTAVAIL"
	}
	return err.Error()
}

// corpusAddr is a corpus address (one the reader has checked) as a
// tuple.Addr.
func corpusAddr(t *testing.T, s string) tuple.Addr {
	ip, err := netip.ParseAddr(s)
	require.NoError(t, err)
	a, err := tuple.AddrFromNetIP(ip)
	require.NoError(t, err)
	return a
}

// bindRequest is the bind(2) the socket s made.
func bindRequest(t *testing.T, s *corpus.BindSock) table.BindRequest {
	return table.BindRequest{
		Family: s.Family, V6Only: s.V6Only != nil && *s.V6Only, Addr: corpusAddr(t, s.Addr),
		Port: uint16(s.Port), ReuseAddr: s.ReuseAddr, ReusePort: s.ReusePort, Owner: uint32(s.UID), Device: s.Device,
	}
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
func replayBind(t *testing.T, c *corpus.BindCase) []string {
	flows := flowSet{}
	ports, err := table.NewPorts(table.PortsOptions{Flows: flows})
	require.NoError(t, err)
	var diffs []string
	differ := func(i int, what, got, want string) {
		diffs = append(diffs, fmt.Sprintf("%s op %d %s: got %s, kernel %s", c.ID, i, what, got, want))
	}
	if pre := c.Prelude; pre != nil {
		l, err := ports.Bind(bindRequest(t, &pre.Listener))
		require.NoError(t, err, c.ID)
		require.NoError(t, ports.Listen(l), c.ID)
		child, err := ports.Inherit(l, corpusAddr(t, pre.ClientDst))
		require.NoError(t, err, c.ID)
		if pre.WhoClosedFirst == corpus.ClosedByServer {
			require.NoError(t, ports.TimeWait(child))
		} else {
			require.NoError(t, ports.Release(child))
		}
		require.NoError(t, ports.Release(l))
	}
	bindings := make([]*table.Binding, len(c.Ops))
	picked := map[int]int{} // port 0 binds: the port Ports picked → the op
	for i := range c.Ops {
		op := &c.Ops[i]
		if op.Action == corpus.ActionListen {
			b := bindings[op.Target]
			if b == nil {
				if op.Result != corpus.ResultSkippedNotBound {
					differ(i, "late listen", "target not bound", op.Result)
				}
				continue
			}
			if got := errnoName(ports.Listen(b)); got != op.Result {
				differ(i, "late listen", got, op.Result)
			}
			continue
		}
		b, err := ports.Bind(bindRequest(t, &op.BindSock))
		if got, want := errnoName(err), op.ResultAt(corpus.StageBind); got != want {
			differ(i, "bind", got, want)
		}
		if err != nil {
			continue
		}
		bindings[i] = b
		if op.Port == 0 {
			p := int(b.Port())
			if len(c.PortRange) == 2 && (p < c.PortRange[0] || p > c.PortRange[1]) {
				differ(i, "picked port", fmt.Sprint(p), fmt.Sprint(c.PortRange))
			}
			// The kernel never hands a port 0 bind a port another
			// socket of the case holds, whatever the flags.
			if j, ok := picked[p]; ok {
				differ(i, "picked port", fmt.Sprintf("%d, op %d's too", p, j), "a port of its own")
			}
			picked[p] = i
		}
		switch op.Action {
		case corpus.ActionBindListen:
			if got, want := errnoName(ports.Listen(b)), op.ResultAt(corpus.StageListen); got != want {
				differ(i, "listen", got, want)
			}
		case corpus.ActionBindConnect:
			dst := corpusAddr(t, op.ConnectAddr)
			remote := tuple.Endpoint{Addr: dst, Port: uint16(op.ConnectPort)}
			local := b.Addr()
			if local.IsUnspecified() {
				local = dst // loopback: the kernel routes from the destination address
			}
			_, err := ports.Connect(b, local, remote)
			if got, want := errnoName(err), op.ResultAt(corpus.StageConnect); got != want {
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
	for _, path := range corpus.BindFiles(kernelCorpusDir) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases, err := corpus.ReadBindCases(path)
			require.NoError(t, err)
			require.NotEmpty(t, cases, path)
			var diffs []string
			kinds := map[string]int{}
			for i := range cases {
				kinds[cases[i].Kind]++
				diffs = append(diffs, replayBind(t, &cases[i])...)
			}
			t.Logf("%s: %d cases %v, kernel %s", path, len(cases), kinds, cases[0].Kernel)
			requireKernelAgreement(t, diffs, 400)
		})
	}
}

// requireKernelAgreement fails t with the first show of a replay's
// disagreements with the kernel, if it has any.
func requireKernelAgreement(t *testing.T, diffs []string, show int) {
	t.Helper()
	if len(diffs) > 0 {
		t.Fatalf("%d disagreements with the kernel, first ones:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), show)], "\n"))
	}
}
