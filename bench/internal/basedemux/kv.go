package basedemux

import (
	"sync"

	xsync3 "github.com/puzpuzpuz/xsync/v3"
)

// kv is one table of a baseline design.
type kv[K comparable, V comparable] interface {
	get(k K) (V, bool)
	// insert stores v if k is absent.
	insert(k K, v V) bool
	// swap replaces old by v if k maps to old.
	swap(k K, old, v V) bool
	// remove deletes k if it maps to v.
	remove(k K, v V) bool
	// fill stores v for a k the caller knows is absent, with no check
	// where the design's check is a scan (the linear one's).
	fill(k K, v V)
	// size counts the entries.
	size() int
}

// linearKV is a slice scanned on every lookup, behind an RWMutex so that
// writers may run beside the readers.
type linearKV[K comparable, V comparable] struct {
	mu   sync.RWMutex
	keys []K
	vals []V
}

func (m *linearKV[K, V]) find(k K) int {
	for i := range m.keys {
		if m.keys[i] == k {
			return i
		}
	}
	return -1
}

func (m *linearKV[K, V]) get(k K) (V, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if i := m.find(k); i >= 0 {
		return m.vals[i], true
	}
	var zero V
	return zero, false
}

func (m *linearKV[K, V]) insert(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.find(k) >= 0 {
		return false
	}
	m.keys, m.vals = append(m.keys, k), append(m.vals, v)
	return true
}

func (m *linearKV[K, V]) swap(k K, old, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(k); i >= 0 && m.vals[i] == old {
		m.vals[i] = v
		return true
	}
	return false
}

func (m *linearKV[K, V]) remove(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(k)
	if i < 0 || m.vals[i] != v {
		return false
	}
	last := len(m.keys) - 1
	m.keys[i], m.vals[i] = m.keys[last], m.vals[last]
	var zero V
	m.vals[last] = zero
	m.keys, m.vals = m.keys[:last], m.vals[:last]
	return true
}

func (m *linearKV[K, V]) fill(k K, v V) {
	m.mu.Lock()
	m.keys, m.vals = append(m.keys, k), append(m.vals, v)
	m.mu.Unlock()
}

func (m *linearKV[K, V]) size() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.keys)
}

// rwKV is gVisor's design: a Go map behind a sync.RWMutex.
type rwKV[K comparable, V comparable] struct {
	mu sync.RWMutex
	m  map[K]V
}

func (m *rwKV[K, V]) get(k K) (V, bool) {
	m.mu.RLock()
	v, ok := m.m[k]
	m.mu.RUnlock()
	return v, ok
}

func (m *rwKV[K, V]) insert(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[k]; ok {
		return false
	}
	m.m[k] = v
	return true
}

func (m *rwKV[K, V]) swap(k K, old, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.m[k]; ok && cur == old {
		m.m[k] = v
		return true
	}
	return false
}

func (m *rwKV[K, V]) remove(k K, v V) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.m[k]; ok && cur == v {
		delete(m.m, k)
		return true
	}
	return false
}

func (m *rwKV[K, V]) fill(k K, v V) { m.insert(k, v) }

func (m *rwKV[K, V]) size() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

// syncKV is a sync.Map.
type syncKV[K comparable, V comparable] struct{ m sync.Map }

func (m *syncKV[K, V]) get(k K) (V, bool) {
	v, ok := m.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (m *syncKV[K, V]) insert(k K, v V) bool {
	_, loaded := m.m.LoadOrStore(k, v)
	return !loaded
}

func (m *syncKV[K, V]) swap(k K, old, v V) bool { return m.m.CompareAndSwap(k, old, v) }
func (m *syncKV[K, V]) remove(k K, v V) bool    { return m.m.CompareAndDelete(k, v) }

func (m *syncKV[K, V]) fill(k K, v V) { m.m.Store(k, v) }

func (m *syncKV[K, V]) size() int {
	n := 0
	m.m.Range(func(any, any) bool { n++; return true })
	return n
}

// xsyncKV is xsync v3's MapOf.
type xsyncKV[K comparable, V comparable] struct{ m *xsync3.MapOf[K, V] }

func (m *xsyncKV[K, V]) get(k K) (V, bool) { return m.m.Load(k) }

func (m *xsyncKV[K, V]) insert(k K, v V) bool {
	_, loaded := m.m.LoadOrStore(k, v)
	return !loaded
}

func (m *xsyncKV[K, V]) swap(k K, old, v V) bool {
	done := false
	m.m.Compute(k, func(cur V, loaded bool) (V, bool) {
		if loaded && cur == old {
			done = true
			return v, false
		}
		return cur, !loaded
	})
	return done
}

func (m *xsyncKV[K, V]) remove(k K, v V) bool {
	done := false
	m.m.Compute(k, func(cur V, loaded bool) (V, bool) {
		done = loaded && cur == v
		return cur, done || !loaded
	})
	return done
}

func (m *xsyncKV[K, V]) fill(k K, v V) { m.m.Store(k, v) }
func (m *xsyncKV[K, V]) size() int     { return m.m.Size() }

// newKV returns an empty table of design impl, presized for n where the
// design allows.
func newKV[K comparable, V comparable](impl string, n int) kv[K, V] {
	switch impl {
	case "linear":
		return &linearKV[K, V]{keys: make([]K, 0, n), vals: make([]V, 0, n)}
	case "rwmutex":
		return &rwKV[K, V]{m: make(map[K]V, n)}
	case "syncmap":
		return &syncKV[K, V]{}
	case "xsync":
		return &xsyncKV[K, V]{m: xsync3.NewMapOf[K, V](xsync3.WithPresize(n))}
	}
	panic("unknown design " + impl)
}
