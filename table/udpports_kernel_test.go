package table_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/corpus"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The UDP bind corpus (testdata/kernel/udp-bind.jsonl, recorded by
// internal/kernelcorpus -udp; more in SOCKTABLE_UDP_BIND_CORPUS): every
// bind and connect answer of UDPPorts must be the kernel's.

// replayUDPBind runs one recorded UDP case against a fresh UDPPorts and
// returns the disagreements.
func replayUDPBind(t *testing.T, c *corpus.BindCase) []string {
	ports, err := table.NewUDPPorts(table.UDPPortsOptions{})
	require.NoError(t, err)
	var diffs []string
	differ := func(i int, what, got, want string) {
		diffs = append(diffs, fmt.Sprintf("%s op %d %s: got %s, kernel %s", c.ID, i, what, got, want))
	}
	picked := map[int]int{}
	for i := range c.Ops {
		op := &c.Ops[i]
		b, err := ports.Bind(bindRequest(t, &op.BindSock))
		if got, want := errnoName(err), op.ResultAt(corpus.StageBind); got != want {
			differ(i, "bind", got, want)
		}
		if err != nil {
			continue
		}
		if op.Port == 0 {
			p := int(b.Port())
			if len(c.PortRange) == 2 && (p < c.PortRange[0] || p > c.PortRange[1]) {
				differ(i, "picked port", fmt.Sprint(p), fmt.Sprint(c.PortRange))
			}
			if j, ok := picked[p]; ok {
				differ(i, "picked port", fmt.Sprintf("%d, op %d's too", p, j), "a port of its own")
			}
			picked[p] = i
		}
		if op.Action == corpus.ActionBindConnect {
			dst := corpusAddr(t, op.ConnectAddr)
			local := b.Addr()
			if local.IsUnspecified() {
				local = dst // loopback: the kernel routes from the destination address
			}
			err := b.Connect(local, tuple.Endpoint{Addr: dst, Port: uint16(op.ConnectPort)})
			if got, want := errnoName(err), op.ResultAt(corpus.StageConnect); got != want {
				differ(i, "connect", got, want)
			}
		}
	}
	return diffs
}

func TestUDPPortsAgreeWithKernel(t *testing.T) {
	for _, path := range corpus.UDPBindFiles(kernelCorpusDir) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases, err := corpus.ReadBindCases(path)
			require.NoError(t, err)
			require.NotEmpty(t, cases, path)
			var diffs []string
			for i := range cases {
				require.Equal(t, corpus.ProtoUDP, cases[i].Proto, cases[i].ID)
				diffs = append(diffs, replayUDPBind(t, &cases[i])...)
			}
			t.Logf("%s: %d cases, kernel %s", path, len(cases), cases[0].Kernel)
			if len(diffs) > 0 {
				show := diffs[:min(len(diffs), 60)]
				t.Fatalf("%d disagreements with the kernel, first ones:\n%s", len(diffs), strings.Join(show, "\n"))
			}
		})
	}
}
