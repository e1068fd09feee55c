package main

import (
	"sync"

	xsync3 "github.com/puzpuzpuz/xsync/v3"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// sock stands for a stack's socket.
type sock struct{ id int }

// owners is what the simulator asks of each design: find a segment's
// owner, add and remove sockets. The interface call costs the same for all
// designs, a nanosecond or two, small beside what is measured.
type owners interface {
	lookup(t tuple.Tuple) (*sock, bool)
	insert(t tuple.Tuple, s *sock)
	remove(t tuple.Tuple)
}

// designs in display order; newDesign builds one presized for n sockets.
var designs = []string{"socktable", "linear", "rwmutex", "syncmap", "xsync"}

func newDesign(name string, n int, h *tuple.Hasher) owners {
	switch name {
	case "socktable":
		m, err := table.NewEstablished[*sock](table.EstablishedOptions{Capacity: n, Hasher: h})
		if err != nil {
			panic(err) // Capacity is never negative here
		}
		return stOwners{m}
	case "linear":
		return &linearOwners{}
	case "rwmutex":
		return &rwOwners{m: make(map[tuple.Tuple]*sock, n)}
	case "syncmap":
		return &syncOwners{}
	default:
		return x3Owners{xsync3.NewMapOf[tuple.Tuple, *sock](xsync3.WithPresize(n))}
	}
}

type stOwners struct{ m *table.Established[*sock] }

func (o stOwners) lookup(t tuple.Tuple) (*sock, bool) { return o.m.Lookup(t) }
func (o stOwners) insert(t tuple.Tuple, s *sock)      { _ = o.m.Insert(t, s) }
func (o stOwners) remove(t tuple.Tuple)               { o.m.Delete(t) }

// linearOwners is the design of small stacks (smoltcp, early Asterinas):
// every socket in one list, scanned for each segment.
type linearOwners struct {
	mu    sync.RWMutex
	socks []linearEntry
}

type linearEntry struct {
	t tuple.Tuple
	s *sock
}

func (o *linearOwners) lookup(t tuple.Tuple) (*sock, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for i := range o.socks {
		if o.socks[i].t == t {
			return o.socks[i].s, true
		}
	}
	return nil, false
}

func (o *linearOwners) insert(t tuple.Tuple, s *sock) {
	o.mu.Lock()
	o.socks = append(o.socks, linearEntry{t, s})
	o.mu.Unlock()
}

func (o *linearOwners) remove(t tuple.Tuple) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.socks {
		if o.socks[i].t == t {
			last := len(o.socks) - 1
			o.socks[i] = o.socks[last]
			o.socks = o.socks[:last]
			return
		}
	}
}

// rwOwners is gVisor's design: a map behind a RWMutex.
type rwOwners struct {
	mu sync.RWMutex
	m  map[tuple.Tuple]*sock
}

func (o *rwOwners) lookup(t tuple.Tuple) (*sock, bool) {
	o.mu.RLock()
	s, ok := o.m[t]
	o.mu.RUnlock()
	return s, ok
}

func (o *rwOwners) insert(t tuple.Tuple, s *sock) {
	o.mu.Lock()
	o.m[t] = s
	o.mu.Unlock()
}

func (o *rwOwners) remove(t tuple.Tuple) {
	o.mu.Lock()
	delete(o.m, t)
	o.mu.Unlock()
}

type syncOwners struct{ m sync.Map }

func (o *syncOwners) lookup(t tuple.Tuple) (*sock, bool) {
	v, ok := o.m.Load(t)
	if !ok {
		return nil, false
	}
	return v.(*sock), true
}
func (o *syncOwners) insert(t tuple.Tuple, s *sock) { o.m.Store(t, s) }
func (o *syncOwners) remove(t tuple.Tuple)          { o.m.Delete(t) }

type x3Owners struct {
	m *xsync3.MapOf[tuple.Tuple, *sock]
}

func (o x3Owners) lookup(t tuple.Tuple) (*sock, bool) { return o.m.Load(t) }
func (o x3Owners) insert(t tuple.Tuple, s *sock)      { o.m.Store(t, s) }
func (o x3Owners) remove(t tuple.Tuple)               { o.m.Delete(t) }
