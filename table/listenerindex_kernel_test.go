package table_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/corpus"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// The lookup corpus (see internal/kernelcorpus, and internal/corpus for
// the format): which listener the kernel delivered each connection to.
// Extra corpora: SOCKTABLE_LOOKUP_CORPUS.

// replayLookup checks every connection of a case: refused ones must find
// no listener; delivered ones must reach the listener the kernel chose or,
// when that one is in a SO_REUSEPORT group (whose member choice depends on
// the kernel's secret hash), a member of the same group.
func replayLookup(t *testing.T, c *corpus.LookupCase) []string {
	ports, err := table.NewPorts(table.PortsOptions{})
	require.NoError(t, err)
	idx, err := table.NewListenerIndex[int](ports, table.ListenerIndexOptions{})
	require.NoError(t, err)
	group := make([]int, len(c.Listeners)) // the index of the group's first member
	for i, ls := range c.Listeners {
		req := table.BindRequest{Family: ls.Family, V6Only: ls.V6Only != nil && *ls.V6Only,
			Addr: corpusAddr(t, ls.Addr), Port: uint16(ls.Port), ReuseAddr: ls.ReuseAddr, ReusePort: ls.ReusePort}
		b, err := ports.Bind(req)
		require.NoError(t, err, "%s listener %d", c.ID, i)
		_, err = idx.Listen(b, i)
		require.NoError(t, err, "%s listener %d", c.ID, i)
		group[i] = i
		for j := range i {
			if ls.ReusePort && c.Listeners[j].ReusePort && c.Listeners[j].Family == ls.Family &&
				c.Listeners[j].Addr == ls.Addr && (c.Listeners[j].V6Only == nil) == (ls.V6Only == nil) &&
				(ls.V6Only == nil || *ls.V6Only == *c.Listeners[j].V6Only) {
				group[i] = group[j]
				break
			}
		}
	}
	var diffs []string
	dst := tuple.Endpoint{Addr: corpusAddr(t, c.DstAddr), Port: uint16(c.DstPort)}
	for i, conn := range c.Connects {
		src := tuple.Endpoint{Addr: corpusAddr(t, conn.SrcAddr), Port: uint16(conn.SrcPort)}
		got, ok := lookupValue(idx, dst, src, 0)
		if want := conn.Result; want.Err != "" {
			if ok {
				diffs = append(diffs, fmt.Sprintf("%s connect %d: got listener %d, kernel %s", c.ID, i, got, want.Err))
			}
		} else if w := want.Listener; !ok || group[got] != group[w] {
			diffs = append(diffs, fmt.Sprintf("%s connect %d: got %d (found %v), kernel %d", c.ID, i, got, ok, w))
		}
	}
	return diffs
}

func TestListenerIndexAgreeWithKernel(t *testing.T) {
	for _, path := range corpus.LookupFiles(kernelCorpusDir) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases, err := corpus.ReadLookupCases(path)
			require.NoError(t, err)
			require.NotEmpty(t, cases, path)
			var diffs []string
			for i := range cases {
				diffs = append(diffs, replayLookup(t, &cases[i])...)
			}
			t.Logf("%s: %d cases, kernel %s", path, len(cases), cases[0].Kernel)
			requireKernelAgreement(t, diffs, 40)
		})
	}
}
