package table

import "unsafe"

// SetHashMask masks every hash the table computes: 0 sends every key to one
// home group with one tag (a fully degenerate hasher), a small mask to a
// few. Tests only; call before the table is used.
func (m *Established[V]) SetHashMask(mask uint64) { m.hashMask = mask }

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
