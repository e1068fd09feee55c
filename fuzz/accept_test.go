package fuzz

import (
	"errors"
	"testing"

	"github.com/socktable/socktable/accept"
)

// FuzzAccept runs a program of Enqueue, Register, TryAccept, acceptor
// Close, Migrate and Close decoded from the fuzzer's bytes against two
// Sharded listeners of a reuseport group, and checks that nothing panics,
// every error is a sentinel, no connection is lost or duplicated (each one
// enqueued is, at every step, queued in exactly one listener, or was
// accepted or handed back exactly once), Len counts the queued ones, and
// the backlog limit holds except through Migrate.
func FuzzAccept(f *testing.F) {
	f.Add([]byte{3, 2, 0, 0, 0, 1, 1, 0, 2, 0, 2, 0, 4, 0})
	f.Add([]byte{1, 0, 1, 0, 0, 0, 0, 1, 0, 2, 3, 0, 5, 0, 2, 1})
	f.Add([]byte{2, 5, 0, 0, 0, 1, 0, 0, 6, 0, 0, 1, 2, 0})
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
		where := map[int]int{} // queued connection -> its listener
		done := map[int]bool{} // accepted or handed back
		migrated := [2]bool{}  // a listener got connections by Migrate
		var accs [2][]*accept.Acceptor[int]
		next := 0
		finish := func(v int) {
			if _, ok := where[v]; !ok || done[v] {
				t.Fatalf("connection %d came out but is not queued (done=%v)", v, done[v])
			}
			delete(where, v)
			done[v] = true
		}
		for i := 0; i+1 < len(program); i += 2 {
			op, arg := program[i], int(program[i+1])
			li := int(op>>4) & 1
			l := ls[li]
			switch op % 7 {
			case 0, 1: // Enqueue
				next++
				err := l.TryEnqueue(arg%(shards+1), next)
				switch {
				case err == nil:
					where[next] = li
				case errors.Is(err, accept.ErrBacklog), errors.Is(err, accept.ErrInvalid), errors.Is(err, accept.ErrClosed):
				default:
					t.Fatalf("Enqueue: %v", err)
				}
			case 2: // Register
				a, err := l.Register(arg%(shards+1) - 1)
				if err == nil {
					accs[li] = append(accs[li], a)
				} else if !errors.Is(err, accept.ErrClosed) && !errors.Is(err, accept.ErrInvalid) {
					t.Fatalf("Register: %v", err)
				}
			case 3, 4: // TryAccept
				if len(accs[li]) > 0 {
					if v, err := accs[li][arg%len(accs[li])].TryAccept(); err == nil {
						if where[v] != li {
							t.Fatalf("listener %d accepted %d, queued in %d", li, v, where[v])
						}
						finish(v)
					}
				}
			case 5: // acceptor Close
				if len(accs[li]) > 0 {
					if err := accs[li][arg%len(accs[li])].Close(); err != nil && !errors.Is(err, accept.ErrClosed) {
						t.Fatalf("Acceptor.Close: %v", err)
					}
				}
			case 6: // Close or Migrate
				if arg%2 == 0 {
					if err := l.Close(); err != nil && !errors.Is(err, accept.ErrClosed) {
						t.Fatalf("Close: %v", err)
					}
					for _, v := range l.Drain() {
						finish(v)
					}
					break
				}
				before := map[int]bool{}
				for v, at := range where {
					if at == li {
						before[v] = true
					}
				}
				rest, err := l.Migrate(ls[1-li])
				if err != nil && !errors.Is(err, accept.ErrClosed) {
					t.Fatalf("Migrate: %v", err)
				}
				for _, v := range rest {
					finish(v)
					delete(before, v)
				}
				for v := range before {
					where[v] = 1 - li
				}
				migrated[1-li] = true
			}
			for li, l := range ls {
				n := 0
				for _, at := range where {
					if at == li {
						n++
					}
				}
				if l.Len() != n {
					t.Fatalf("listener %d: Len %d, %d queued", li, l.Len(), n)
				}
				if !migrated[li] && n > l.Backlog() {
					t.Fatalf("listener %d holds %d, backlog %d", li, n, l.Backlog())
				}
			}
		}
	})
}
