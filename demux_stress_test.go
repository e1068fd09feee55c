package socktable_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable"
	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// Many connections open, exchange and close on all cores, each final ACK
// delivered twice at once: every handshake completes exactly once, and
// every completed connection is accepted or still queued when the
// listeners close (exactly-once accounting); every data segment reaches
// its connection while it is open, and none after it closed.
func TestDemuxStress(t *testing.T) {
	h := newDemux(t, socktable.Options{Capacity: 1 << 14})
	d := h.d
	var ls []*socktable.Listener[tconn]
	for range 2 {
		ls = append(ls, h.listen("0.0.0.0", 80, socktable.ListenOptions{Backlog: 1 << 14, Shards: 2}, true))
	}
	var accepted atomic.Int64
	var acceptors sync.WaitGroup
	for _, l := range ls {
		acc, err := l.Register(accept.Unbound)
		require.NoError(t, err)
		acceptors.Add(1)
		go func() {
			defer acceptors.Done()
			for {
				if _, err := acc.Accept(context.Background()); err != nil {
					return
				}
				accepted.Add(1)
			}
		}()
	}

	workers := 2 * runtime.GOMAXPROCS(0)
	const perWorker = 300
	var established, failures atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				remote := tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, byte(w), 0, 1}), Port: uint16(1024 + i)}
				tp := tuple.Tuple{Local: tuple.MustEndpoint("192.0.2.1:80"), Remote: remote}
				syn := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, Seq: 100}
				res := d.Deliver(&syn, 0, w)
				if res.Reason != socktable.ReasonSynQueued {
					failures.Add(1)
					t.Errorf("SYN %v: %v", tp, res.Reason)
					return
				}
				ack := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK, Seq: 101, Ack: res.Reply.Seq + 1}
				// The final ACK twice at once (a duplicate): one completes.
				var wins atomic.Int32
				var owner atomic.Pointer[tconn]
				var pair sync.WaitGroup
				for range 2 {
					pair.Add(1)
					go func() {
						defer pair.Done()
						for {
							r := d.Deliver(&ack, 0, w)
							switch r.Outcome {
							case socktable.ToConn:
								return // the other one won
							case socktable.Completed:
								c := &tconn{id: i}
								f, err := d.Establish(&r.Handshake, c)
								if errors.Is(err, socktable.ErrExists) {
									continue // deliver again: it finds the winner
								}
								if err != nil {
									t.Errorf("Establish %v: %v", tp, err)
									return
								}
								c.flow = f
								owner.Store(c)
								wins.Add(1)
								return
							default:
								t.Errorf("final ACK %v: %v %v", tp, r.Outcome, r.Reason)
								return
							}
						}
					}()
				}
				pair.Wait()
				if wins.Load() != 1 {
					t.Errorf("%v completed %d times", tp, wins.Load())
					return
				}
				established.Add(1)
				c := owner.Load()
				data := ack
				data.PayloadLen = 10
				if r := d.Deliver(&data, 0, w); r.Outcome != socktable.ToConn || r.Conn != c {
					t.Errorf("data %v: %v %v", tp, r.Outcome, r.Reason)
				}
				if i%2 == 0 {
					if err := d.TimeWait(c.flow, c, timewait.State{RcvNxt: 111, SndNxt: res.Reply.Seq + 1}); err != nil {
						t.Errorf("TimeWait: %v", err)
					}
					if r := d.Deliver(&data, 0, w); r.Reason != socktable.ReasonTimeWait {
						t.Errorf("after TimeWait %v: %v", tp, r.Reason)
					}
				} else {
					if err := d.Abort(c.flow, c); err != nil {
						t.Errorf("Abort: %v", err)
					}
					if r := d.Deliver(&data, 0, w); r.Outcome == socktable.ToConn {
						t.Errorf("after Abort %v: still delivered", tp)
					}
				}
			}
		}()
	}
	wg.Wait()
	o, err := d.Shutdown()
	require.NoError(t, err)
	acceptors.Wait()
	require.Zero(t, failures.Load())
	require.Equal(t, int64(workers*perWorker), established.Load())
	require.Equal(t, established.Load(), accepted.Load()+int64(len(o.Conns)),
		"every connection accepted or handed back, once")
	require.Empty(t, o.Requests)
}

// A SO_REUSEPORT member closes while handshakes run on all cores: every
// handshake ends accepted (by a member, migrated or not), handed back by
// Close (Orphans), refused by Establish (ErrClosed: the stack resets it),
// or answered with an RST (its request went with the listener): nothing is
// lost and nothing counted twice.
func TestDemuxListenerCloseUnderLoad(t *testing.T) {
	for _, migrate := range []bool{false, true} {
		name := "migrate=false"
		if migrate {
			name = "migrate=true"
		}
		t.Run(name, func(t *testing.T) {
			h := newDemux(t, socktable.Options{Capacity: 1 << 12, MigrateReq: migrate, Somaxconn: 1 << 14})
			d := h.d
			var ls []*socktable.Listener[tconn]
			for range 3 {
				ls = append(ls, h.listen("0.0.0.0", 80, socktable.ListenOptions{Backlog: 1 << 14, Shards: 2}, true))
			}
			workers := 2 * runtime.GOMAXPROCS(0)
			const perWorker = 200
			var completed, refused, reset atomic.Int64
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := range perWorker {
						tp := tuple.Tuple{Local: tuple.MustEndpoint("192.0.2.1:80"),
							Remote: tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, byte(w), 0, 1}), Port: uint16(1024 + i)}}
						syn := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, Seq: 100}
						res := d.Deliver(&syn, 0, w)
						if res.Reason != socktable.ReasonSynQueued {
							t.Errorf("SYN %v: %v", tp, res.Reason)
							return
						}
						ack := tuple.Segment{Tuple: tp, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.ACK, Seq: 101, Ack: res.Reply.Seq + 1}
						r := d.Deliver(&ack, 0, w)
						switch {
						case r.Outcome == socktable.Completed:
							_, err := d.Establish(&r.Handshake, &tconn{id: w<<16 | i})
							switch {
							case err == nil:
								completed.Add(1)
							case errors.Is(err, socktable.ErrClosed):
								refused.Add(1)
							default:
								t.Errorf("Establish %v: %v", tp, err)
							}
						case r.Reply.Flags&tuple.RST != 0:
							reset.Add(1)
						default:
							t.Errorf("final ACK %v: %v %v", tp, r.Outcome, r.Reason)
						}
					}
				}()
			}
			close(start)
			o, err := ls[0].Close()
			require.NoError(t, err)
			wg.Wait()
			// Accept everything left on the members.
			accepted := int64(0)
			for _, l := range ls[1:] {
				acc, err := l.Register(accept.Unbound)
				require.NoError(t, err)
				for {
					if _, err := acc.TryAccept(); err != nil {
						break
					}
					accepted++
				}
			}
			total := int64(workers * perWorker)
			require.Equal(t, total, completed.Load()+refused.Load()+reset.Load())
			require.Equal(t, completed.Load(), accepted+int64(len(o.Conns)),
				"every completed connection accepted or handed back, once")
			// A request Close handed back is reset by the stack, and its
			// final ACK then finds no socket: counted once, in reset.
			require.LessOrEqual(t, int64(len(o.Requests)), reset.Load())
			if migrate {
				require.Zero(t, reset.Load()+refused.Load(), "with migration nothing is reset")
				require.Empty(t, o.Conns)
				require.Empty(t, o.Requests)
			}
		})
	}
}
