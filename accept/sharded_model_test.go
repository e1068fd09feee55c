package accept

import (
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// shardedModel is Sharded as plain slices, one operation at a time: the
// routing, accept order, backlog and drain rules written out directly.
type shardedModel struct {
	limit, localCap int
	locals          [][]int
	global          []int
	acceptors       []int // bound acceptors alive per shard
	closed          bool
	overflows       uint64
}

type modelAcceptor struct {
	shard, next int
	closed      bool
}

func (m *shardedModel) queued() int {
	n := len(m.global)
	for _, l := range m.locals {
		n += len(l)
	}
	return n
}

func (m *shardedModel) enqueue(shard, item int) error {
	switch {
	case shard < 0 || shard >= len(m.locals):
		return ErrInvalid
	case m.closed:
		return ErrClosed
	case m.queued() >= m.limit:
		m.overflows++
		return ErrBacklog
	case m.acceptors[shard] > 0 && len(m.locals[shard]) < m.localCap:
		m.locals[shard] = append(m.locals[shard], item)
	default:
		m.global = append(m.global, item)
	}
	return nil
}

func take(q *[]int) (int, bool) {
	if len(*q) == 0 {
		return 0, false
	}
	v := (*q)[0]
	*q = (*q)[1:]
	return v, true
}

func (m *shardedModel) tryAccept(a *modelAcceptor) (int, bool) {
	if m.closed || a.closed {
		return 0, false // what is queued is Drain's
	}
	if a.shard != Unbound {
		if v, ok := take(&m.locals[a.shard]); ok {
			return v, true
		}
	}
	if v, ok := take(&m.global); ok {
		return v, true
	}
	for range m.locals {
		i := a.next
		a.next = (a.next + 1) % len(m.locals)
		if i != a.shard && (a.shard == Unbound || m.acceptors[i] == 0) {
			if v, ok := take(&m.locals[i]); ok {
				return v, true
			}
		}
	}
	return 0, false
}

func (m *shardedModel) closeAcceptor(a *modelAcceptor) {
	a.closed = true
	if a.shard == Unbound {
		return
	}
	m.acceptors[a.shard]--
	if m.acceptors[a.shard] == 0 && !m.closed {
		for len(m.locals[a.shard]) > 0 && len(m.global) < 2*m.limit {
			v, _ := take(&m.locals[a.shard])
			m.global = append(m.global, v)
		}
	}
}

// drain is Drain: the global queue's connections, then each shard's.
func (m *shardedModel) drain() []int {
	var out []int
	out = append(out, m.global...)
	for _, l := range m.locals {
		out = append(out, l...)
	}
	m.global, m.locals = nil, make([][]int, len(m.locals))
	return out
}

// Sharded agrees with the model on every answer under random TryEnqueue,
// Register, TryAccept, acceptor Close, listener Close and Drain.
func TestShardedMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		shards := rapid.IntRange(1, 4).Draw(t, "shards")
		backlog := rapid.IntRange(0, 40).Draw(t, "backlog")
		s, err := NewSharded[int](ShardedOptions{Shards: shards, Backlog: backlog})
		require.NoError(t, err)
		defer s.Close()
		limit := backlog + 1
		m := &shardedModel{limit: limit, localCap: min(limit, max(16, 2*limit/shards)),
			locals: make([][]int, shards), acceptors: make([]int, shards)}
		var accs []*Acceptor[int]
		var maccs []*modelAcceptor
		item := 0
		t.Repeat(map[string]func(*rapid.T){
			"enqueue": func(t *rapid.T) {
				shard := rapid.IntRange(-1, shards).Draw(t, "shard")
				item++
				require.Equal(t, m.enqueue(shard, item), s.TryEnqueue(shard, item))
			},
			"register": func(t *rapid.T) {
				shard := rapid.IntRange(Unbound, shards-1).Draw(t, "shard")
				a, err := s.Register(shard)
				if m.closed {
					require.ErrorIs(t, err, ErrClosed)
					return
				}
				require.NoError(t, err)
				if shard != Unbound {
					m.acceptors[shard]++
				}
				accs, maccs = append(accs, a), append(maccs, &modelAcceptor{shard: shard})
			},
			"accept": func(t *rapid.T) {
				if len(accs) == 0 {
					t.Skip()
				}
				i := rapid.IntRange(0, len(accs)-1).Draw(t, "acceptor")
				v, err := accs[i].TryAccept()
				mv, mok := m.tryAccept(maccs[i])
				switch {
				case mok:
					require.NoError(t, err)
				case m.closed || maccs[i].closed:
					require.ErrorIs(t, err, ErrClosed)
				default:
					require.ErrorIs(t, err, ErrEmpty)
				}
				require.Equal(t, mv, v)
			},
			"closeAcceptor": func(t *rapid.T) {
				if len(accs) == 0 {
					t.Skip()
				}
				i := rapid.IntRange(0, len(accs)-1).Draw(t, "acceptor")
				err := accs[i].Close()
				if maccs[i].closed {
					require.ErrorIs(t, err, ErrClosed)
					return
				}
				require.NoError(t, err)
				m.closeAcceptor(maccs[i])
			},
			"close": func(t *rapid.T) {
				if rapid.IntRange(0, 9).Draw(t, "rarely") != 0 {
					t.Skip()
				}
				err := s.Close()
				if m.closed {
					require.ErrorIs(t, err, ErrClosed)
					return
				}
				require.NoError(t, err)
				m.closed = true
			},
			"drain": func(t *rapid.T) {
				if !m.closed && rapid.IntRange(0, 4).Draw(t, "rarely") != 0 {
					t.Skip("on an open listener now and then")
				}
				require.Equal(t, m.drain(), s.Drain())
			},
			"": func(t *rapid.T) {
				require.Equal(t, m.queued(), s.Len())
				require.Equal(t, m.queued(), s.Depth(), "exact with no call running")
				require.Equal(t, m.queued() >= m.limit, s.Full(), "exact with no call running")
				require.Equal(t, m.overflows, s.Overflows())
				for i := range shards {
					require.Equal(t, len(m.locals[i]), s.ShardDepth(i))
				}
			},
		})
	})
}
