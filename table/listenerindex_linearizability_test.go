package table

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/porctest"
	"github.com/socktable/socktable/tuple"
)

// The porcupine model of the listener index, per port: the listening
// sockets in the index's order. Every socket is SO_REUSEPORT with one
// owner, so all can listen at once, and Linux's answer is exact: in the
// bucket of the destination address, else in the wildcard bucket, the
// first listener (in order) that can take the connection wins, and the
// connection goes to some member of its group (which one depends on the
// flow hash, so the model accepts any). Concurrent Listen (bind + listen),
// Close and Lookup must behave as if run one at a time: a lookup never
// sees half of a change, nor a listener its Close already removed.

// lsSpecs are the sockets of one port: the SO_REUSEPORT specs of the rapid
// model; indexes 7 and 8 repeat 0 and 3, so some groups have two members.
var lsSpecs = append(modelListenSpecs[:7:7], modelListenSpecs[0], modelListenSpecs[3]) // the SO_REUSEPORT ones

var lsPorts = []uint16{80, 81}

type lsOpKind uint8

const (
	lsListen lsOpKind = iota
	lsClose
	lsLookup
)

type lsInput struct {
	op     lsOpKind
	port   uint16
	socket int        // lsListen, lsClose: index into lsSpecs
	dst    tuple.Addr // lsLookup
	device int        // lsLookup
}

type lsOutput struct {
	ok     bool
	socket int // lsLookup: the listener found, as an index into lsSpecs
}

// lsState is the port's listening sockets in the index's order.
type lsState struct {
	order [9]int8
	n     int8
}

func lsOwner(socket int, port uint16) bindOwner {
	req := lsSpecs[socket]
	req.Port = port
	return ownerOf(req)
}

func (s lsState) listening(socket int) bool {
	for _, o := range s.order[:s.n] {
		if int(o) == socket {
			return true
		}
	}
	return false
}

// listen adds socket where the index puts it: SO_REUSEPORT AF_INET6
// listeners at the tail of their bucket, others at the head. The order of
// sockets in different buckets does not matter, so one list serves all.
func (s lsState) listen(socket int, port uint16) lsState {
	if lsOwner(socket, port).family == 6 {
		s.order[s.n] = int8(socket)
	} else {
		copy(s.order[1:s.n+1], s.order[:s.n])
		s.order[0] = int8(socket)
	}
	s.n++
	return s
}

func (s lsState) close(socket int) lsState {
	var t lsState
	for _, o := range s.order[:s.n] {
		if int(o) != socket {
			t.order[t.n] = o
			t.n++
		}
	}
	return t
}

// answers returns the sockets a lookup may return (the winner's group),
// or nil if none listens.
func (s lsState) answers(port uint16, dst tuple.Addr, device int) []int {
	for _, exact := range []bool{true, false} {
		for _, o := range s.order[:s.n] {
			owner := lsOwner(int(o), port)
			if owner.addr.IsUnspecified() == exact || exact && owner.addr != dst {
				continue // another bucket
			}
			e := entryOf[int](&owner)
			if e.score(dst, device) == 0 {
				continue
			}
			var group []int
			for _, m := range s.order[:s.n] {
				if mo := lsOwner(int(m), port); sameGroup(&mo, &owner) {
					group = append(group, int(m))
				}
			}
			return group
		}
	}
	return nil
}

var listenerIndexModel = porcupine.Model{
	Init: func() any { return lsState{} },
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return porctest.PartitionBy(history, func(in any) uint16 { return in.(lsInput).port })
	},
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(lsState), input.(lsInput), output.(lsOutput)
		switch in.op {
		case lsListen:
			// Every socket is SO_REUSEPORT with one owner: it can always
			// bind and listen, unless it is listening already.
			if s.listening(in.socket) || !out.ok {
				return false, s
			}
			return true, s.listen(in.socket, in.port)
		case lsClose:
			if !s.listening(in.socket) || !out.ok {
				return false, s
			}
			return true, s.close(in.socket)
		case lsLookup:
			want := s.answers(in.port, in.dst, in.device)
			if !out.ok {
				return want == nil, s
			}
			for _, w := range want {
				if w == out.socket {
					return true, s
				}
			}
			return false, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(lsInput), output.(lsOutput)
		switch in.op {
		case lsListen:
			return fmt.Sprintf("listen %d:%d -> %v", in.socket, in.port, out.ok)
		case lsClose:
			return fmt.Sprintf("close %d:%d -> %v", in.socket, in.port, out.ok)
		}
		return fmt.Sprintf("lookup %v:%d dev %d -> %v %d", in.dst, in.port, in.device, out.ok, out.socket)
	},
}

func TestListenerIndexLinearizable(t *testing.T) {
	porctest.AtProcs(t, []int{1, 2, 4}, func(t *testing.T) {
		for round := range 10 {
			checkListenersLinearizable(t, uint64(round))
		}
	})
}

func checkListenersLinearizable(t *testing.T, seed uint64) {
	const writers, readers, opsPerClient = 3, 2, 150
	ports, err := NewPorts(PortsOptions{})
	require.NoError(t, err)
	idx, err := NewListenerIndex[int](ports, ListenerIndexOptions{Slots: 4}) // few slots: chains of buckets
	require.NoError(t, err)
	sockets := len(lsSpecs) * len(lsPorts) // socket id: port index * len(lsSpecs) + spec
	rec := porctest.NewRecorder(writers + readers)
	var wg sync.WaitGroup
	listening := make(chan struct{}) // closed at the first listen: readers start then
	var once sync.Once
	var found atomic.Int64
	for c := range writers + readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := map[int]*Listener[int]{} // this writer's listening sockets
			if c >= writers {
				<-listening
			}
			r := porctest.NewRand(seed*7919 + uint64(c))
			// Readers go on past opsPerClient (within a bound) until one
			// of them found a listener: a history without is vacuous.
			for i := 0; i < opsPerClient || c >= writers && found.Load() == 0 && i < 20*opsPerClient; i++ {
				x := r.Next()
				var in lsInput
				var out lsOutput
				var call int64
				if c < writers {
					id := c + writers*int(x>>8%uint64((sockets+writers-1-c)/writers)) // ids ≡ c mod writers
					in.port, in.socket = lsPorts[id/len(lsSpecs)], id%len(lsSpecs)
					if l := held[id]; l != nil {
						in.op = lsClose
						call = rec.Call()
						out.ok = l.Close() == nil
						delete(held, id)
					} else {
						req := lsSpecs[in.socket]
						req.Port = in.port
						in.op = lsListen
						call = rec.Call()
						b, err := ports.Bind(req)
						if err == nil {
							var l *Listener[int]
							if l, err = idx.Listen(b, id); err == nil {
								held[id] = l
								once.Do(func() { close(listening) })
							}
						}
						out.ok = err == nil
					}
				} else {
					in.op = lsLookup
					in.port = lsPorts[x>>8%uint64(len(lsPorts))]
					in.dst = modelDsts[x>>12%uint64(len(modelDsts))]
					in.device = int(x >> 16 % 4)
					src := tuple.Endpoint{Addr: tuple.MustAddr("198.51.100.7"), Port: uint16(1024 + x>>20%512)}
					call = rec.Call()
					h, ok := idx.Lookup(tuple.Endpoint{Addr: in.dst, Port: in.port}, src, in.device)
					out = lsOutput{ok: ok}
					if ok {
						out.socket = h.Value() % len(lsSpecs)
					}
					if ok {
						found.Add(1)
					}
				}
				rec.Return(c, call, in, out)
				if x&3 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	require.Positive(t, found.Load(), "some lookups must find a listener")
	porctest.Check(t, listenerIndexModel, rec.History(), 10*time.Second)
}

// The model rejects what no correct index returns: a listener after its
// Close completed, and a wildcard listener while an exact one listens.
func TestListenerIndexModelCatchesStaleAnswers(t *testing.T) {
	dst := tuple.MustAddr("192.0.2.1")
	stale := []porcupine.Operation{
		{ClientId: 0, Input: lsInput{op: lsListen, port: 80, socket: 0}, Output: lsOutput{ok: true}, Call: 1, Return: 2},
		{ClientId: 0, Input: lsInput{op: lsClose, port: 80, socket: 0}, Output: lsOutput{ok: true}, Call: 3, Return: 4},
		{ClientId: 1, Input: lsInput{op: lsLookup, port: 80, dst: dst}, Output: lsOutput{ok: true, socket: 0}, Call: 5, Return: 6},
	}
	require.False(t, porcupine.CheckOperations(listenerIndexModel, stale))
	wildcard := []porcupine.Operation{
		{ClientId: 0, Input: lsInput{op: lsListen, port: 80, socket: 0}, Output: lsOutput{ok: true}, Call: 1, Return: 2},
		{ClientId: 0, Input: lsInput{op: lsListen, port: 80, socket: 1}, Output: lsOutput{ok: true}, Call: 3, Return: 4},
		{ClientId: 1, Input: lsInput{op: lsLookup, port: 80, dst: dst}, Output: lsOutput{ok: true, socket: 0}, Call: 5, Return: 6},
	}
	require.False(t, porcupine.CheckOperations(listenerIndexModel, wildcard))
	right := append(wildcard[:2:2], porcupine.Operation{ClientId: 1, Input: lsInput{op: lsLookup, port: 80, dst: dst},
		Output: lsOutput{ok: true, socket: 1}, Call: 5, Return: 6})
	require.True(t, porcupine.CheckOperations(listenerIndexModel, right))
}
