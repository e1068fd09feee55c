//go:build !race

package syncookie_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/syncookie"
)

// The per-SYN paths allocate nothing (the race detector's instrumentation
// does, hence the build tag).
func TestJarNoAllocs(t *testing.T) {
	j := syncookie.NewJar()
	var sink uint32
	require.Zero(t, testing.AllocsPerRun(100, func() {
		c, mss := j.Cookie(flow6, sink, 1460, time.Hour)
		got, ok := j.Check(flow6, sink, c, time.Hour)
		if ok && got == mss {
			sink++
		}
		sink += j.ISN(flow4, time.Hour) + j.TSOffset(flow4)
		sink += syncookie.EncodeTS(sink, syncookie.Options{SACK: true})
		if syncookie.DecodeTS(sink).SACK {
			sink++
		}
	}))
}
