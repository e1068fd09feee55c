package socktable_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/accept"
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// child is an accepted connection waiting in a listener's accept queue.
type child struct{ flow tuple.Tuple }

// member is what a stack indexes each listener with: its accept queue.
type member struct{ queue *accept.Sharded[*child] }

// A SO_REUSEPORT member closes with connections queued: the listener index
// names, for each, the member that takes it over (Listener.Successor, by
// the connection's flow hash over the members left, Linux's
// reuseport_migrate_sock: the member the flow's later segments reach), and
// the accept side moves it there (Sharded.MigrateEach), waking that
// member's acceptors. Nothing is lost: every connection is migrated or,
// with no member left, handed back for a reset.
func TestListenerCloseMigratesQueuedConnections(t *testing.T) {
	hasher := tuple.NewHasher()
	ports, err := table.NewPorts(table.PortsOptions{Hasher: hasher})
	require.NoError(t, err)
	idx, err := table.NewListenerIndex[*member](ports, table.ListenerIndexOptions{})
	require.NoError(t, err)
	var listeners []*table.Listener[*member]
	for range 3 {
		q, err := accept.NewSharded[*child](accept.ShardedOptions{Shards: 2, Backlog: 1000})
		require.NoError(t, err)
		b, err := ports.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443, ReusePort: true})
		require.NoError(t, err)
		l, err := idx.Listen(b, &member{queue: q})
		require.NoError(t, err)
		listeners = append(listeners, l)
	}
	// Connections land on the member the SYN's flow hash picked.
	dst := tuple.MustEndpoint("192.0.2.1:443")
	queued := map[*table.Listener[*member]]int{}
	for i := range 900 {
		src := tuple.Endpoint{Addr: tuple.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: uint16(2000 + i)}
		flow := tuple.Tuple{Local: dst, Remote: src}
		h := hasher.Hash(flow)
		l, ok := idx.LookupHashed(h, dst, src, 0)
		require.True(t, ok)
		require.NoError(t, l.Value().queue.TryEnqueue(l.Value().queue.Steer(h), &child{flow: flow}))
		queued[l]++
	}
	closing := listeners[0]
	require.Equal(t, queued[closing], closing.Value().queue.Depth())

	migrate := func(l *table.Listener[*member]) []*child {
		require.NoError(t, l.Close()) // no new SYN reaches it from here on
		reset, err := l.Value().queue.MigrateEach(func(c *child) *accept.Sharded[*child] {
			h := hasher.Hash(c.flow)
			s, ok := l.Successor(h)
			if !ok {
				return nil // no member left: the connection is reset
			}
			if now, _ := idx.LookupHashed(h, c.flow.Local, c.flow.Remote, 0); now != s {
				t.Errorf("flow %v migrates to %p, but its segments now reach %p", c.flow, s, now)
			}
			return s.Value().queue
		})
		require.NoError(t, err)
		return reset
	}
	require.Empty(t, migrate(closing), "two members are left to take them")
	total := 0
	for _, l := range listeners[1:] {
		got := l.Value().queue.Depth()
		require.GreaterOrEqual(t, got, queued[l])
		total += got
	}
	require.Equal(t, 900, total, "every connection is queued somewhere, once")

	// Then the others go: the last has no successor, and its connections
	// come back for a reset (as inet_child_forget does).
	require.Empty(t, migrate(listeners[1]))
	require.Equal(t, 900, listeners[2].Value().queue.Depth())
	reset := migrate(listeners[2])
	require.Len(t, reset, 900)
	_, err = ports.Bind(table.BindRequest{Family: 4, Addr: tuple.IPv4Unspecified(), Port: 443})
	require.NoError(t, err, "closing the listeners released the port")
}
