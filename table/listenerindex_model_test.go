package table

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/socktable/socktable/tuple"
)

// listenersModel runs random Listen, Close and Lookup against Listeners
// and a sequential model: the live listeners in a plain list. A lookup's
// answer must be a live listener of the right tier (the exact-address
// listeners, else the wildcard ones) that can take the connection, scoring
// as high as any other there unless it is in a SO_REUSEPORT group; and
// there must be none exactly when no live listener can take it. Scores
// come from the same function the index uses: scoring itself is held to
// the kernel corpus and TestListenersChoice; this checks the buckets,
// tiers, groups and copy-on-write updates around it.
type listenersModel struct {
	ports *Ports
	idx   *ListenerIndex[int]
	live  []*Listener[int]
	next  int
}

var modelListenSpecs = []BindRequest{
	{Family: 4, Addr: tuple.IPv4Unspecified(), ReusePort: true},
	{Family: 4, Addr: tuple.MustAddr("192.0.2.1"), ReusePort: true},
	{Family: 4, Addr: tuple.IPv4Unspecified(), ReusePort: true, Device: 2},
	{Family: 6, Addr: tuple.IPv6Unspecified(), ReusePort: true},
	{Family: 6, V6Only: true, Addr: tuple.IPv6Unspecified(), ReusePort: true, Device: 3},
	{Family: 6, Addr: tuple.MustAddr("2001:db8::1"), ReusePort: true},
	{Family: 6, Addr: tuple.MustAddr("192.0.2.1"), ReusePort: true},
	{Family: 4, Addr: tuple.IPv4Unspecified(), Device: 1},
	{Family: 6, V6Only: true, Addr: tuple.MustAddr("2001:db8::1")},
}

var modelDsts = []tuple.Addr{
	tuple.MustAddr("192.0.2.1"), tuple.MustAddr("192.0.2.2"), tuple.MustAddr("2001:db8::1"), tuple.MustAddr("2001:db8::2"),
}

func (s *listenersModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"Listen": func(t *rapid.T) {
			req := modelListenSpecs[rapid.IntRange(0, len(modelListenSpecs)-1).Draw(t, "spec")]
			req.Port = uint16(rapid.IntRange(80, 81).Draw(t, "port"))
			b, err := s.ports.Bind(req)
			if errors.Is(err, ErrAddrInUse) {
				return
			}
			if err != nil {
				t.Fatalf("Bind: %v", err)
			}
			l, err := s.idx.Listen(b, s.next)
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			s.next++
			s.live = append(s.live, l)
		},
		"Close": func(t *rapid.T) {
			if len(s.live) == 0 {
				return
			}
			i := rapid.IntRange(0, len(s.live)-1).Draw(t, "close")
			if err := s.live[i].Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s.live = append(s.live[:i], s.live[i+1:]...)
		},
		"Lookup": func(t *rapid.T) {
			dst := tuple.Endpoint{Addr: modelDsts[rapid.IntRange(0, len(modelDsts)-1).Draw(t, "dst")],
				Port: uint16(rapid.IntRange(80, 81).Draw(t, "dport"))}
			src := tuple.Endpoint{Addr: tuple.MustAddr("198.51.100.7"), Port: uint16(rapid.IntRange(1024, 1100).Draw(t, "sport"))}
			device := rapid.IntRange(0, 3).Draw(t, "device")
			// The model: the best score in the exact tier, else the wildcard one.
			best, tierExact := 0, false
			for _, exact := range []bool{true, false} {
				for _, l := range s.live {
					e := entryOf[int](&l.owner)
					if l.owner.port == dst.Port && l.owner.addr.IsUnspecified() != exact {
						best = max(best, e.score(dst.Addr, device))
					}
				}
				if best > 0 {
					tierExact = exact
					break
				}
			}
			h, ok := s.idx.Lookup(dst, src, device)
			if ok != (best > 0) {
				t.Fatalf("Lookup %v dev %d: found %v, model best score %d", dst, device, ok, best)
			}
			if !ok {
				return
			}
			for _, l := range s.live {
				if l != h {
					continue
				}
				// A lower score than the best is right only for a
				// SO_REUSEPORT listener: Linux returns a member of the
				// first group that raises the score, scanning no further.
				e := entryOf[int](&l.owner)
				score := e.score(dst.Addr, device)
				if l.owner.port != dst.Port || l.owner.addr.IsUnspecified() == tierExact || score == 0 ||
					(score < best && !l.owner.reusePort) {
					t.Fatalf("Lookup %v dev %d: listener %+v, model tier exact=%v best %d", dst, device, l.owner, tierExact, best)
				}
				return
			}
			t.Fatalf("Lookup returned %d, not a live listener", h.Value())
		},
	}
}

func TestListenerIndexModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ports, err := NewPorts(PortsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		idx, err := NewListenerIndex[int](ports, ListenerIndexOptions{Slots: 4})
		if err != nil {
			t.Fatal(err)
		}
		s := &listenersModel{ports: ports, idx: idx}
		t.Repeat(s.actions())
	})
}
