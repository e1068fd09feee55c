//go:build !race

package rcu_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

// The race detector changes allocation counts, so these run without -race
// only (CI runs them in a separate step).

func TestEnterExitAllocateNothing(t *testing.T) {
	d := rcu.NewDomain()
	require.Zero(t, testing.AllocsPerRun(1000, func() { d.Enter().Exit() }))
	r := d.NewReader()
	require.Zero(t, testing.AllocsPerRun(1000, func() { r.Enter().Exit() }))
}

func TestRecyclerSteadyStateAllocatesNothing(t *testing.T) {
	d := rcu.NewDomain()
	r, err := rcu.NewRecycler[*config](d, 64)
	require.NoError(t, err)
	objs := []*config{{}, {}, {}}
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		r.Retire(objs[i%3])
		i++
		if x, ok := r.Reuse(); ok {
			objs[i%3] = x
		}
	}))
}

func TestPointerAllocatesNothing(t *testing.T) {
	var p rcu.Pointer[config]
	v := &config{}
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		p.Publish(v)
		_ = p.Load()
		p.CompareAndPublish(v, v)
	}))
}
