package table

import (
	"unsafe"

	"github.com/socktable/socktable/tuple"
)

// SetHashMask masks every hash the table computes: 0 sends every key to one
// home group with one tag (a fully degenerate hasher), a small mask to a
// few. Tests only; call before the table is used.
func (m *Established[V]) SetHashMask(mask uint64) { m.hashMask = mask }

// HookPoint names a moment in a write where SetTestHook's function runs.
type HookPoint = hookPoint

const (
	HookInsertReserved  = hookInsertReserved  // with MaxEntries: counted, not yet visible
	HookDeleteUncounted = hookDeleteUncounted // with MaxEntries: invisible, still counted
	HookLimitWait       = hookLimitWait       // an Insert at MaxEntries waits for a write in flight
	HookKindChanging    = hookKindChanging    // a CompareAndSwapKind stored the value, not yet the kind
	HookKindWait        = hookKindWait        // a LookupKind waits for a kind change
	HookHomeMoved       = hookHomeMoved       // a migration moved one home group
	HookHelperLinking   = hookHelperLinking   // the migration helper has the next table, not yet linked
	HookAwaitNext       = hookAwaitNext       // an insert at the load limit, or with a full chain, waits for the next table
)

// SetBackgroundResize(false) makes every resize allocate its table in the
// writer that begins it, and leaves the moves to writers (and to
// MigrationStep): no helper goroutine, so a test decides every step. Call
// before the table is used.
func (m *Established[V]) SetBackgroundResize(on bool) { m.background = on }

// MigrateQuota is the homes a write moves besides its own key's.
const MigrateQuota = migrateQuota

// SetMigrateQuota sets the homes a write moves besides its own key's (0:
// its own only). Call before the table is used.
func (m *Established[V]) SetMigrateQuota(n int) { m.quota = n }

// MigrationStep moves up to n more homes of the migration in progress, in
// the cursor's order, as n writes' shares would, and reports whether homes
// are left at the cursor (false also when no migration runs).
func (m *Established[V]) MigrationStep(n int) bool {
	tb := m.table.Load()
	if tb.next.Load() == nil {
		return false
	}
	return m.helpMigration(tb, n)
}

// HomesLeft returns the homes of the migration in progress not moved yet,
// 0 when none runs.
func (m *Established[V]) HomesLeft() int {
	tb := m.table.Load()
	if tb.next.Load() == nil {
		return 0
	}
	return tb.groups - int(tb.moved.Load())
}

// Copies counts, for every key, the places its entry can be reached at:
// live slots holding it in the old table whose home there has not moved,
// plus live slots holding it anywhere in the next one (or in the table,
// when no migration runs). A table that neither loses nor duplicates an
// entry counts 1 for each present key, and no absent key, at every step of
// a migration. Call with no write in flight.
func (m *Established[V]) Copies() map[tuple.Tuple]int {
	tb := m.table.Load()
	n := map[tuple.Tuple]int{}
	count := func(x *etable[V], unmovedOnly bool) {
		for g := range x.groups {
			tags := x.meta[g].tags.Load()
			for i := range groupSlots {
				if byteAt(tags, i) < 2 {
					continue
				}
				k, _, ok := x.slots[g*groupSlots+i].loadLive(m.mode)
				if !ok {
					continue
				}
				if h, _ := x.home(m.hashKey(&k)); unmovedOnly && x.meta[h].tags.Load() >= movedWord {
					continue
				}
				n[k.tuple()]++
			}
		}
	}
	nt := tb.next.Load()
	count(tb, nt != nil)
	if nt != nil {
		count(nt, false)
	}
	return n
}

// FinishMigration completes the migration in progress, if any, as All
// does before it iterates.
func (m *Established[V]) FinishMigration() {
	if tb := m.table.Load(); tb.next.Load() != nil {
		m.completeMigration(tb)
	}
}

// SetTestHook makes the table call f at each HookPoint (f may block, to
// stall a writer there). Call before the table is used.
func (m *Established[V]) SetTestHook(f func(HookPoint)) { m.hook = f }

// Groups returns the number of groups of the current table.
func (m *Established[V]) Groups() int { return m.table.Load().groups }

// SlotSize reports the bytes of one slot, for the memory tests.
func SlotSize[V comparable]() int { return int(unsafe.Sizeof(slot[V]{})) }

// SlotCount returns the listener index's current number of hash slots.
func (l *ListenerIndex[V]) SlotCount() int { return len(l.slots.Load().slots) }

// PortClasses returns the number of holder classes on port: the records a
// Bind or Listen of the port compares with.
func (p *Ports) PortClasses(port uint16) int {
	s := p.stripe(port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.ports[port]; e != nil {
		return len(e.classes)
	}
	return 0
}

// HomeGroup returns the home group of t in the current table: writers of
// keys with one home share its lock.
func (m *Established[V]) HomeGroup(t tuple.Tuple) int {
	g, _ := m.table.Load().home(m.hasher.Hash(t) & m.hashMask)
	return g
}

// UDPScanUnindexed is UDPPorts.LookupValue with every port's snapshot
// scanned in full, every socket scored (no address index, no key
// arrays): the reference the index and the keys are tested against.
func (p *UDPPorts[V]) UDPScanUnindexed(t tuple.Tuple, device int) (V, bool) {
	h := p.hasher.Hash(t)
	if v, ok := p.conns.LookupHashed(h, t); ok {
		return v, true
	}
	var zero V
	blk := p.dir[t.Local.Port>>8].Load()
	if blk == nil {
		return zero, false
	}
	snap := blk[t.Local.Port&255].Load()
	if snap == nil {
		return zero, false
	}
	best := snap.best(&t, device, udpScanAll)
	if best == nil {
		return zero, false
	}
	v, _ := best.receiver(h)
	return v, true
}
