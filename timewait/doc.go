// Package timewait holds the TIME_WAIT machinery: Table, the TIME_WAIT
// entries of a stack keyed by four-tuple, which answers the segments that
// reach them by Linux's rules (tcp_timewait_state_process) and decides
// which may be taken over by a new connection (tcp_twsk_unique); and Wheel,
// the hierarchical timer wheel that expires them, with O(1) schedule,
// cancel and reschedule that allocates nothing in steady state.
//
// # The table
//
// A stack closing a connection calls Table.Enter with the connection's
// sequence and timestamp state and the value the entry is to own (what
// the stack holds on the entry's behalf: the bind table's hold on its
// local port, say), and drops the full socket: the entry is a 72-byte
// pointer-free slot, a 16-byte timer link and its owner. The demux looks
// a segment's four-tuple up in the established table first and, on a
// miss, calls Table.Process, which says what to answer (an ACK, an RST,
// nothing) or that a SYN may open a new connection (VerdictNewSYN with the
// ISN to use), and what became of the entry (Reply.Fate). The entry
// leaves when its timer fires, when a segment kills it, or at once when
// the stack calls Kill, TakeOver (a connect reusing the four-tuple) or
// Replace (a listener taking the new SYN: the stack's insert of the new
// connection and the entry's removal in one step); whichever removes it
// receives its owner, exactly once, expiry through TableOptions.OnExpire.
// There is no sweep over the table, so a flow known to be gone costs
// nothing later.
//
// The stack hashes a segment's four-tuple once, with its one
// tuple.Hasher, for all its tables: the …Hashed methods take that hash.
// It passes its one Clock to every part that keeps time, so the times
// in State and Reuse are on one time line.
//
// Why a table of its own rather than the established table, where Linux
// keeps its timewait sockets: the established table stores the stack's
// values (a *Conn, say) and a TIME_WAIT entry is a record of about 36
// bytes that must change under its lock as segments arrive, which no
// 8-byte value slot can hold; and an entry must carry its key anyway, to
// be removed when its timer fires, so keeping it in its own slot with a
// 4-byte index reference costs about 94 bytes an entry (plus its owner)
// where an established-table entry plus a keyed record would cost about
// 170. The price is a second lookup on the established miss path (a SYN
// for a listener, or a segment for a TIME_WAIT entry), which the demux
// pays only for those segments.
//
// # The wheel
//
// Wheel follows Linux's timer wheel since 4.8 (kernel/time/timer.c): levels
// of 64 buckets, each level 8 times coarser than the one below, and no
// cascading. A timer goes straight to the level whose buckets are as fine
// as its distance allows and fires from there, up to one bucket late; it is
// never moved down as its time approaches. Networking timers are mostly
// cancelled before they fire (a retransmission timer per segment, a
// keepalive per connection), so cascading, which moves every timer several
// times, is work thrown away; and a TIME_WAIT entry can fire a second late
// without harm. Only a timer beyond the top level's reach is moved: it
// waits in the top level's farthest bucket and is placed again from there,
// so it never fires early.
//
// Lateness, with a tick of g (WheelOptions.Tick): a timer due d ticks
// ahead sits in a level k no coarser than the first with d ≤ 62·8^k, and
// fires less than 8^k ticks after its due tick (its due time rounded up to
// the level's granularity; never early):
//
//	level  granularity  reach (62·8^k ticks, 1 ms tick)  lateness below
//	0      1 tick       62 ms                            1 ms
//	1      8 ticks      496 ms                           8 ms
//	2      64           4 s                              64 ms
//	3      512          32 s                             512 ms
//	4      4096         4.2 min                          4.1 s (a 60 s TIME_WAIT timer)
//	5      32768        34 min                           33 s
//	6      262144       4.5 h                            4.4 min
//	7      2097152      36 h                             35 min
//	8      16777216     12 days                          4.7 h
//
// Beyond the top level's reach a timer waits in its farthest bucket and is
// placed again when that bucket comes due, as often as needed.
package timewait
