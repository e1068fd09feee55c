package fuzz

import (
	"errors"
	"testing"

	"github.com/socktable/socktable/accept"
)

// FuzzAccept runs a program of TryEnqueue, Register, TryAccept, acceptor
// Close, Close, Drain, Migrate and MigrateEach decoded from the fuzzer's
// bytes against two Sharded listeners of a reuseport group, and checks
// that nothing panics, every error is a sentinel, TryAccept tells a
// closed acceptor or listener (ErrClosed) from an empty one (ErrEmpty), no
// connection is lost or duplicated (each one enqueued is, at every step,
// queued in exactly one listener, or was accepted, drained or handed back
// for a reset exactly once), Drain returns exactly what is queued, Len and
// Depth count it, and the backlog admits exactly Backlog connections
// (Drain on an open listener gives their credits back) except through a
// migration.
func FuzzAccept(f *testing.F) {
	f.Add([]byte{3, 2, 0, 0, 0, 1, 1, 0, 2, 0, 2, 0, 4, 0})
	f.Add([]byte{1, 0, 1, 0, 0, 0, 0, 1, 0, 2, 3, 0, 5, 0, 2, 1})
	f.Add([]byte{2, 5, 0, 0, 0, 1, 0, 0, 6, 0, 0, 1, 2, 0})
	f.Add([]byte{2, 9, 0, 0, 0, 1, 0, 2, 0, 3, 18, 1, 7, 1, 19, 0, 20, 0})    // MigrateEach, then accepts in the other listener
	f.Add([]byte{1, 4, 2, 0, 0, 0, 0, 0, 5, 0, 3, 0, 6, 1, 6, 0, 3, 0, 6, 1}) // acceptor Close, Drain open, Close, Drain
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) < 2 {
			return
		}
		shards := 1 + int(program[0]%4)
		backlog := int(program[1]%20) - 1 // -1: somaxconn
		program = program[2:]
		var ls [2]*accept.Sharded[int]
		for i := range ls {
			l, err := accept.NewSharded[int](accept.ShardedOptions{Shards: shards, Backlog: backlog, Somaxconn: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ls[i] = l
		}
		type acc struct {
			a      *accept.Acceptor[int]
			closed bool
		}
		where := map[int]int{} // queued connection -> its listener
		done := map[int]bool{} // accepted, drained or handed back
		closed := [2]bool{}
		migrated := [2]bool{} // a listener got connections by a migration
		var accs [2][]*acc
		next := 0
		finish := func(li, v int) {
			if at, ok := where[v]; !ok || done[v] || at != li {
				t.Fatalf("connection %d came out of listener %d but is not queued there (queued: %v, in %d; done=%v)", v, li, ok, at, done[v])
			}
			delete(where, v)
			done[v] = true
		}
		// migrate checks a Migrate or MigrateEach of listener li whose
		// targets are to(v), given its result.
		migrate := func(li int, to func(v int) int, rest []int, err error) {
			if closed[li] {
				if !errors.Is(err, accept.ErrClosed) || rest != nil {
					t.Fatalf("migration of a closed listener: %v, %v", rest, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("migration: %v", err)
			}
			closed[li] = true
			reset := map[int]bool{}
			for _, v := range rest {
				reset[v] = true
				finish(li, v)
			}
			for v, at := range where {
				if at != li {
					continue
				}
				target := to(v)
				if target != 1-li || closed[target] {
					t.Fatalf("connection %d migrated to listener %d (closed: %v)", v, target, target >= 0 && closed[target])
				}
				where[v] = target
				migrated[target] = true
			}
		}
		for i := 0; i+1 < len(program); i += 2 {
			op, arg := program[i], int(program[i+1])
			li := int(op>>4) & 1
			l := ls[li]
			switch op % 8 {
			case 0, 1: // TryEnqueue
				next++
				err := l.TryEnqueue(arg%(shards+1), next)
				switch {
				case err == nil:
					if closed[li] {
						t.Fatalf("TryEnqueue on a closed listener")
					}
					where[next] = li
				case errors.Is(err, accept.ErrBacklog):
					n := 0
					for _, at := range where {
						if at == li {
							n++
						}
					}
					if !migrated[li] && n < l.Backlog() {
						t.Fatalf("ErrBacklog with %d of %d queued", n, l.Backlog()) // a credit lost
					}
				case errors.Is(err, accept.ErrInvalid), errors.Is(err, accept.ErrClosed):
				default:
					t.Fatalf("TryEnqueue: %v", err)
				}
			case 2: // Register
				a, err := l.Register(arg%(shards+1) - 1)
				if err == nil {
					accs[li] = append(accs[li], &acc{a: a})
				} else if !errors.Is(err, accept.ErrClosed) && !errors.Is(err, accept.ErrInvalid) {
					t.Fatalf("Register: %v", err)
				}
			case 3, 4: // TryAccept
				if len(accs[li]) == 0 {
					break
				}
				a := accs[li][arg%len(accs[li])]
				v, err := a.a.TryAccept()
				switch {
				case a.closed || closed[li]:
					if !errors.Is(err, accept.ErrClosed) {
						t.Fatalf("TryAccept after Close: %d, %v", v, err)
					}
				case err == nil:
					finish(li, v)
				case !errors.Is(err, accept.ErrEmpty):
					t.Fatalf("TryAccept: %v", err)
				}
			case 5: // acceptor Close
				if len(accs[li]) == 0 {
					break
				}
				a := accs[li][arg%len(accs[li])]
				if err := a.a.Close(); a.closed != errors.Is(err, accept.ErrClosed) || !a.closed && err != nil {
					t.Fatalf("Acceptor.Close: %v (closed before: %v)", err, a.closed)
				}
				a.closed = true
			case 6: // Close or Drain
				if arg%2 == 0 {
					if err := l.Close(); closed[li] != errors.Is(err, accept.ErrClosed) || !closed[li] && err != nil {
						t.Fatalf("Close: %v (closed before: %v)", err, closed[li])
					}
					closed[li] = true
					break
				}
				for _, v := range l.Drain() {
					finish(li, v)
				}
				for v, at := range where {
					if at == li {
						t.Fatalf("Drain left connection %d queued", v)
					}
				}
			case 7: // Migrate or MigrateEach
				other := ls[1-li]
				if arg%3 == 0 {
					rest, err := l.Migrate(other)
					migrate(li, func(int) int { return 1 - li }, rest, err)
					break
				}
				// By the connection: the other member, no one, or itself.
				pick := func(v int) int { return []int{1 - li, -1, li}[(v+arg)%3] }
				rest, err := l.MigrateEach(func(v int) *accept.Sharded[int] {
					if p := pick(v); p >= 0 {
						return ls[p]
					}
					return nil
				})
				migrate(li, pick, rest, err)
			}
			for li, l := range ls {
				n := 0
				for _, at := range where {
					if at == li {
						n++
					}
				}
				if l.Len() != n || l.Depth() != n {
					t.Fatalf("listener %d: Len %d, Depth %d, %d queued", li, l.Len(), l.Depth(), n)
				}
				local := 0
				for s := range shards {
					local += l.ShardDepth(s)
				}
				if local > n {
					t.Fatalf("listener %d: local queues hold %d of %d", li, local, n)
				}
				if !migrated[li] && n > l.Backlog() {
					t.Fatalf("listener %d holds %d, backlog %d", li, n, l.Backlog())
				}
			}
		}
	})
}
