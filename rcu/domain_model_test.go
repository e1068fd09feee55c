package rcu_test

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/rcu"
)

// domainModel checks Domain and Recycler against the definition of a grace
// period, one step at a time: every reader remembers the objects that were
// reachable when it entered, and Reuse may never return one of them while
// that reader is inside. Stale readers (epoch loaded, increment delayed)
// are modelled with EnterWithEpoch.
type domainModel struct {
	d   *rcu.Domain
	rec *rcu.Recycler[int]

	live    []int          // published objects, reachable by new readers
	retired []int          // retirement order, not yet reused
	readers []*modelReader // inside a read section
	stale   []staleEnter   // loaded the epoch, not yet counted
	next    int            // next object id
	epoch   uint64         // last epoch seen, to check it only grows
	holds   map[int]int    // object -> readers that may hold it
	reader  *rcu.Reader    // one stripe-owning reader, shared by its sections
}

type modelReader struct {
	g       rcu.Guard
	mayHold []int
}

type staleEnter struct {
	stripe int
	epoch  uint64
}

const modelLimit = 1 << 12

func (m *domainModel) enterWith(g rcu.Guard) {
	r := &modelReader{g: g, mayHold: slices.Clone(m.live)}
	for _, x := range r.mayHold {
		m.holds[x]++
	}
	m.readers = append(m.readers, r)
}

func (m *domainModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"Enter": func(t *rapid.T) { m.enterWith(m.d.Enter()) },
		"ReaderEnter": func(t *rapid.T) {
			if m.reader == nil {
				m.reader = m.d.NewReader()
			}
			m.enterWith(m.reader.Enter())
		},
		"LoadEpoch": func(t *rapid.T) {
			m.stale = append(m.stale, staleEnter{stripe: rapid.IntRange(0, 63).Draw(t, "stripe"), epoch: m.d.Epoch()})
		},
		"FinishStaleEnter": func(t *rapid.T) {
			if len(m.stale) == 0 {
				t.Skip("no stale reader")
			}
			i := rapid.IntRange(0, len(m.stale)-1).Draw(t, "i")
			s := m.stale[i]
			m.stale = slices.Delete(m.stale, i, i+1)
			want := m.d.Epoch() == s.epoch
			g, ok := m.d.EnterWithEpoch(s.stripe, s.epoch)
			if ok != want {
				t.Fatalf("EnterWithEpoch(epoch %d) at epoch %d = %v", s.epoch, m.d.Epoch(), ok)
			}
			if ok {
				m.enterWith(g) // its loads come after the increment
			}
		},
		"Exit": func(t *rapid.T) {
			if len(m.readers) == 0 {
				t.Skip("no reader")
			}
			i := rapid.IntRange(0, len(m.readers)-1).Draw(t, "i")
			r := m.readers[i]
			r.g.Exit()
			for _, x := range r.mayHold {
				m.holds[x]--
			}
			m.readers = slices.Delete(m.readers, i, i+1)
		},
		"Publish": func(t *rapid.T) {
			m.live = append(m.live, m.next)
			m.next++
		},
		"Retire": func(t *rapid.T) {
			if len(m.live) == 0 || len(m.retired) == modelLimit {
				t.Skip("nothing to retire")
			}
			i := rapid.IntRange(0, len(m.live)-1).Draw(t, "i")
			x := m.live[i]
			m.live = slices.Delete(m.live, i, i+1)
			m.rec.Retire(x)
			m.retired = append(m.retired, x)
		},
		"Reuse": func(t *rapid.T) {
			x, ok := m.rec.Reuse()
			if !ok {
				if len(m.retired) > 0 && len(m.readers) == 0 {
					t.Fatalf("Reuse failed with no reader inside (retired %v)", m.retired)
				}
				return
			}
			if len(m.retired) == 0 || x != m.retired[0] {
				t.Fatalf("Reuse = %d, want the oldest retired of %v", x, m.retired)
			}
			if m.holds[x] > 0 {
				t.Fatalf("Reuse handed back %d while %d reader(s) that may hold it are inside", x, m.holds[x])
			}
			m.retired = m.retired[1:]
		},
		"TryAdvance": func(t *rapid.T) {
			ok := m.d.TryAdvance()
			if !ok && len(m.readers) == 0 {
				t.Fatalf("epoch stuck at %d with no reader inside", m.d.Epoch())
			}
		},
		"": func(t *rapid.T) {
			e := m.d.Epoch()
			if e < m.epoch {
				t.Fatalf("epoch went back from %d to %d", m.epoch, e)
			}
			m.epoch = e
			if got := m.rec.Len(); got != len(m.retired) {
				t.Fatalf("Len = %d, model has %d retired", got, len(m.retired))
			}
			var inside int64
			for p := range uint64(2) {
				inside += m.d.ActiveReaders(p)
			}
			if inside != int64(len(m.readers)) {
				t.Fatalf("%d readers counted, model has %d", inside, len(m.readers))
			}
		},
	}
}

func TestDomainModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := rcu.NewDomain()
		rec, err := rcu.NewRecycler[int](d, modelLimit)
		if err != nil {
			t.Fatal(err)
		}
		m := &domainModel{d: d, rec: rec, holds: map[int]int{}}
		t.Repeat(m.actions())
	})
}
