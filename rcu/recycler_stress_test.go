package rcu_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/rcu"
)

// node is a recycled object. While published, check == ^value. The writer
// poisons a node the moment it gets it back from Reuse, before rewriting
// it: a reader that ever sees the poison, or a broken check, held a node
// across its reuse. plain is written without atomics on reuse and read by
// readers: under -race, the race detector itself reports any reuse that is
// not ordered after every reader's Exit.
type node struct {
	value atomic.Uint64
	check atomic.Uint64
	plain uint64
}

const poison = 0xdeaddeaddeaddead

func TestNoReaderSeesARecycledObject(t *testing.T) {
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("gomaxprocs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			stressRecycling(t, 4, 20000)
		})
	}
}

// TestNoReaderSeesARecycledObjectWithStaleReaders widens the window in which
// a reader has loaded the epoch but not yet announced itself.
func TestNoReaderSeesARecycledObjectWithStaleReaders(t *testing.T) {
	var n atomic.Uint32
	rcu.SetEnterHook(func() {
		if n.Add(1)%3 == 0 {
			runtime.Gosched()
		}
	})
	defer rcu.SetEnterHook(nil)
	stressRecycling(t, 4, 10000)
}

func stressRecycling(t *testing.T, readers, writes int) {
	if testing.Short() {
		writes /= 4
	}
	d := rcu.NewDomain()
	rec, err := rcu.NewRecycler[*node](d, 64)
	require.NoError(t, err)
	var head rcu.Pointer[node]
	first := new(node)
	first.check.Store(^uint64(0))
	head.Publish(first)

	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enter := d.Enter
			if r%2 == 1 {
				enter = d.NewReader().Enter // half the readers own a stripe
			}
			for i := 0; !stop.Load(); i++ {
				g := enter()
				n := head.Load()
				v := n.value.Load()
				p := n.plain
				if i%8 == r%8 {
					runtime.Gosched() // hold the node across a writer's turn
				}
				v2, c := n.value.Load(), n.check.Load()
				p2 := n.plain
				g.Exit()
				if !assert.NotEqual(t, uint64(poison), v2, "read a node after it was handed back for reuse") ||
					!assert.Equal(t, v, v2, "node rewritten while a reader held it") ||
					!assert.Equal(t, ^v2, c, "torn node") ||
					!assert.Equal(t, p, p2, "node rewritten while a reader held it") {
					stop.Store(true)
					return
				}
				reads.Add(1)
			}
		}()
	}

	reused := 0
	for i := uint64(1); i <= uint64(writes) && !stop.Load(); i++ {
		n, ok := rec.Reuse()
		if ok {
			reused++
			n.value.Store(poison) // poison first: a reader still holding it would see this
			n.check.Store(poison)
			n.plain = poison
		} else {
			n = new(node)
		}
		n.plain = i
		n.check.Store(^i)
		n.value.Store(i)
		old := head.Swap(n)
		rec.Retire(old)
		if i%64 == 0 {
			runtime.Gosched() // let readers run on one P
		}
	}
	stop.Store(true)
	wg.Wait()
	require.Positive(t, reads.Load())
	require.Greater(t, reused, writes/10, "objects were rarely recycled: the test proved little")
	t.Logf("%d writes, %d reused, %d dropped, %d reads", writes, reused, rec.Dropped(), reads.Load())
}
