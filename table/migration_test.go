package table_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// migratingTable is a table whose resizes are migrations driven only by
// its writes and the test (no helper goroutine).
func migratingTable(t *testing.T, opts table.EstablishedOptions) *table.Established[int] {
	m := newTable[int](t, opts)
	m.SetBackgroundResize(false)
	return m
}

// requireExactlyOnce checks, in the middle of a migration or not, that
// every key of model is found with its value, by Lookup and by a count of
// the places it can be reached at (one), and that no other key is.
func requireExactlyOnce(t *testing.T, m *table.Established[int], model map[tuple.Tuple]int, msg string) {
	t.Helper()
	copies := m.Copies()
	for k, want := range model {
		v, ok := m.Lookup(k)
		require.True(t, ok, "%s: %v lost", msg, k)
		require.Equal(t, want, v, "%s: %v", msg, k)
		require.Equal(t, 1, copies[k], "%s: %v reachable %d times", msg, k, copies[k])
	}
	for k, n := range copies {
		if _, ok := model[k]; !ok {
			require.Zero(t, n, "%s: deleted %v still reachable", msg, k)
		}
	}
	require.Equal(t, len(model), m.Len(), msg)
	// LookupBatch agrees, over the moved homes and those not yet moved.
	keys := slices.Collect(maps.Keys(model))
	keys = append(keys, key(1<<22), key(1<<22+1)) // and two keys never inserted
	vals, found := make([]int, len(keys)), make([]bool, len(keys))
	m.LookupBatch(keys, vals, found)
	for i, k := range keys {
		want, ok := model[k]
		require.Equal(t, ok, found[i], "%s: LookupBatch of %v", msg, k)
		require.Equal(t, want, vals[i], "%s: LookupBatch of %v", msg, k)
	}
}

// TestMigrationEveryStep stops a growing and then a shrinking migration
// after every home it moves, and after every write made meanwhile, and
// checks that every key is found exactly once and no deleted one is.
func TestMigrationEveryStep(t *testing.T) {
	m := migratingTable(t, table.EstablishedOptions{})
	m.SetMigrateQuota(0) // writes move their own key's home only: the test takes every other step
	model := map[tuple.Tuple]int{}
	r := rand.New(rand.NewPCG(1, 2))
	migrations := 0
	for i := 0; migrations < 3; i++ {
		k := key(i)
		require.NoError(t, m.Insert(k, i))
		model[k] = i
		if m.HomesLeft() == 0 {
			continue
		}
		// A migration has begun: walk it a home at a time, with writes
		// of present and absent keys in between.
		migrations++
		steps := 0
		for m.HomesLeft() > 0 {
			requireExactlyOnce(t, m, model, "growing")
			switch j := r.IntN(4); j {
			case 0:
				k := key(r.IntN(i + 1))
				if _, ok := model[k]; ok {
					_, deleted := m.Delete(k)
					require.True(t, deleted)
					delete(model, k)
				}
			case 1:
				k := key(1<<20 + r.IntN(1000))
				if _, ok := model[k]; !ok {
					require.NoError(t, m.Insert(k, -1))
					model[k] = -1
				}
			case 2:
				for k, v := range model {
					require.True(t, m.CompareAndSwap(k, v, v+1))
					model[k] = v + 1
					break
				}
			}
			m.MigrationStep(1)
			steps++
			requireExactlyOnce(t, m, model, "growing, after a step")
		}
		require.Positive(t, steps)
		require.False(t, m.Stats().Migrating)
		requireExactlyOnce(t, m, model, "grown")
	}
	// Shrink: delete until a migration begins, then step it.
	shrinks := 0
	for k := range model {
		_, ok := m.Delete(k)
		require.True(t, ok)
		delete(model, k)
		for m.HomesLeft() > 0 {
			if m.Stats().Resizes > 0 && shrinks == 0 {
				shrinks++
			}
			requireExactlyOnce(t, m, model, "shrinking")
			m.MigrationStep(1)
		}
	}
	require.Positive(t, shrinks, "no shrinking migration ran")
	requireExactlyOnce(t, m, model, "emptied")
}

// TestMigrationWorkPerWriteIsBounded: a write moves at most its own key's
// home and MigrateQuota more, however large the table, through growth,
// churn and shrinking.
func TestMigrationWorkPerWriteIsBounded(t *testing.T) {
	m := migratingTable(t, table.EstablishedOptions{})
	moves := 0
	m.SetTestHook(func(p table.HookPoint) {
		if p == table.HookHomeMoved {
			moves++
		}
	})
	bound := 1 + table.MigrateQuota
	most, total, writes := 0, 0, 0
	write := func(f func()) {
		moves = 0
		f()
		most, total = max(most, moves), total+moves
		writes++
		require.LessOrEqual(t, moves, bound, "write %d moved %d homes", writes, moves)
	}
	n := 40000
	if testing.Short() || raceEnabled {
		n = 8000
	}
	for i := range n {
		write(func() { require.NoError(t, m.Insert(key6(i), i)) })
	}
	grown := m.Stats().Resizes
	require.Greater(t, grown, uint64(5))
	for i := range n {
		write(func() { m.Delete(key6(i)) })
		if i%16 == 0 {
			write(func() { require.NoError(t, m.Insert(key6(n+i), i)) })
		}
	}
	require.Greater(t, m.Stats().Resizes, grown, "no shrinking migration")
	require.Equal(t, bound, most, "some write moved its whole share")
	t.Logf("%d writes moved %d homes, at most %d in one", writes, total, most)
}

// TestMigrationLookupsAndWritesRace runs lookups, batches and All
// against writers whose keys drive the table through migrations, with
// the background helper, and checks every result against each writer's
// own keys.
func TestMigrationLookupsAndWritesRace(t *testing.T) {
	m := newTable[int](t, table.EstablishedOptions{})
	const writers = 4
	span := 6000
	if raceEnabled {
		span = 1500
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // All and batches, meanwhile: no tuple twice, values in range
		defer close(readerDone)
		keys := make([]tuple.Tuple, 32)
		vals := make([]int, 32)
		found := make([]bool, 32)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			seen := map[tuple.Tuple]bool{}
			for k := range m.All() {
				if seen[k] {
					t.Errorf("All yielded %v twice", k)
					return
				}
				seen[k] = true
			}
			for j := range keys {
				keys[j] = key(j * 7919 % (writers * span))
			}
			m.LookupBatch(keys, vals, found)
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			model := map[int]int{}
			for step := range 60000 {
				k := w*span + r.IntN(span/(1+step/20000%2*3)) // grow, then shrink, then grow
				switch op := r.IntN(8); {
				case op < 3:
					_, had := model[k]
					err := m.Insert(key(k), step)
					if had == (err == nil) {
						t.Errorf("writer %d step %d: insert of %d: %v, present %v", w, step, k, err, had)
						return
					}
					if !had {
						model[k] = step
					}
				case op < 6:
					v, ok := m.Delete(key(k))
					want, had := model[k]
					if ok != had || had && v != want {
						t.Errorf("writer %d step %d: delete of %d: %v %v, want %v %v", w, step, k, v, ok, want, had)
						return
					}
					delete(model, k)
				default:
					v, ok := m.Lookup(key(k))
					want, had := model[k]
					if ok != had || had && v != want {
						t.Errorf("writer %d step %d: lookup of %d: %v %v, want %v %v", w, step, k, v, ok, want, had)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	require.Greater(t, m.Stats().Resizes, uint64(4))
}

// TestMigrationCloseMidway: Close during a migration stops it; every
// later call sees a closed table.
func TestMigrationCloseMidway(t *testing.T) {
	m := migratingTable(t, table.EstablishedOptions{})
	m.SetMigrateQuota(0)
	i := 0
	for ; m.HomesLeft() == 0; i++ {
		require.NoError(t, m.Insert(key(i), i))
	}
	require.True(t, m.Stats().Migrating)
	require.NoError(t, m.Close())
	require.ErrorIs(t, m.Insert(key(i+1), 0), table.ErrClosed)
	_, ok := m.Lookup(key(0))
	require.False(t, ok)
	_, ok = m.Delete(key(0))
	require.False(t, ok)
	require.False(t, m.MigrationStep(10))
	require.ErrorIs(t, m.Close(), table.ErrClosed)
}

// TestStopWritersToResize keeps the old resize as an option: no
// migration is ever in progress, and the table still grows and shrinks.
func TestStopWritersToResize(t *testing.T) {
	m := newTable[int](t, table.EstablishedOptions{StopWritersToResize: true})
	for i := range 5000 {
		require.NoError(t, m.Insert(key(i), i))
		require.False(t, m.Stats().Migrating)
	}
	require.Greater(t, m.Stats().Resizes, uint64(3))
	for i := range 5000 {
		v, ok := m.Delete(key(i))
		require.True(t, ok)
		require.Equal(t, i, v)
	}
	require.LessOrEqual(t, m.Groups(), 16)
}

// TestInsertsWaitForTheHelperAtTheLoadLimit holds the migration helper
// after it allocated the next table, before it links it, and checks that
// inserts fill the old table to its load limit (7/8) and then wait,
// rather than crowd it on towards full (where every probe chain, and so
// every lookup and move, runs on for thousands of groups); released, the
// helper links the table and the waiting inserts go on into it.
func TestInsertsWaitForTheHelperAtTheLoadLimit(t *testing.T) {
	m := newTable[int](t, table.EstablishedOptions{Capacity: 3000}) // past the size a writer allocates for itself
	parked, release := make(chan struct{}), make(chan struct{})
	waiting := make(chan struct{}, 1)
	var once sync.Once
	m.SetTestHook(func(p table.HookPoint) {
		switch p {
		case table.HookHelperLinking:
			once.Do(func() { // the first migration only
				close(parked)
				<-release
			})
		case table.HookAwaitNext:
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})
	const total = 8000 // more than the old table holds
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range total {
			if err := m.Insert(key(j), j); err != nil {
				panic(err)
			}
		}
	}()
	deadline := time.After(time.Minute) // a deadline for a failure, not a wait for success
	select {
	case <-parked:
	case <-done:
		t.Fatal("no migration began")
	case <-deadline:
		t.Fatal("no migration began")
	}
	select {
	case <-waiting:
	case <-done:
		t.Fatal("the inserts filled the old table past its load limit while the helper held the next one")
	case <-deadline:
		close(release)
		t.Fatal("the inserts neither waited nor finished")
	}
	st := m.Stats()
	require.False(t, st.Migrating, "the next table was linked")
	// The limit is checked when an insert fills a group's last empty slot
	// (when chains lengthen), so the few inserts between two such fills
	// may pass it; without the wait the table filled to 1.
	require.LessOrEqual(t, st.LoadFactor, 7.0/8+0.01, "the old table was filled past its load limit")
	close(release)
	<-done
	m.FinishMigration()
	for j := range total {
		v, ok := m.Lookup(key(j))
		require.True(t, ok, "key %d", j)
		require.Equal(t, j, v)
	}
}
