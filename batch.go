package socktable

import (
	"unsafe"

	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/tuple"
)

// minBatch is the shortest run DeliverBatch looks up together; shorter
// ones go through Deliver one by one. Measured on a 1,000-connection
// Demux (established hits, 2 vCPUs): one segment cost 105 ns through the
// batch path and 42 ns through Deliver, three 157 ns and 113 ns, four
// about the same, eight 295 ns and 340 ns. Short runs are what a stack
// delivers between lifecycle calls (a replay of nginx's close-per-request
// traffic averages two segments a run).
const minBatch = 4

// batchLen is how many segments DeliverBatch looks up together: enough
// for the established table's batch lookup to overlap their memory
// misses, few enough for its arrays to stay on the stack.
const batchLen = 16

// DeliverBatch demultiplexes a burst of segments received together on
// device and shard (a receive queue's poll), as Deliver would one by one,
// and stores the results in out: out[i] is segs[i]'s. It returns the
// number handled, min(len(segs), len(out)).
//
// It hashes every segment first and looks their flows up in the
// established table together (table.Established.LookupBatchHashed), so
// that the memory misses of the lookups overlap instead of following one
// another: at tables larger than the caches, established hits cost a
// fraction of Deliver's each. Segments that miss, or are not plain TCP,
// go on as in Deliver, in order; a burst of fewer than four segments goes
// through Deliver itself, which is faster for so few. The guarantees are
// Deliver's, segment by segment; it allocates nothing.
func (d *Demux[C]) DeliverBatch(segs []tuple.Segment, device, shard int, out []Result[C]) int {
	n := min(len(segs), len(out))
	if n < minBatch {
		for i := range n {
			out[i] = d.Deliver(&segs[i], device, shard)
		}
		return n
	}
	var (
		hashes [batchLen]uint64
		keys   [batchLen]tuple.Tuple
		vals   [batchLen]unsafe.Pointer
		kinds  [batchLen]table.Kind
		found  [batchLen]bool
	)
	for base := 0; base < n; base += batchLen {
		m := min(batchLen, n-base)
		for i := range m {
			s := &segs[base+i]
			keys[i] = s.Tuple
			hashes[i] = d.hasher.Hash(s.Tuple)
		}
		d.established.LookupBatchHashed(hashes[:m], keys[:m], vals[:m], kinds[:m], found[:m])
		hits := uint64(0)
		for i := range m {
			s, res := &segs[base+i], &out[base+i]
			*res = Result[C]{}
			if s.Proto != tuple.ProtoTCP || s.ICMP.Kind != tuple.ICMPNone {
				d.deliverOther(s, res)
				d.count(res, shard)
				continue
			}
			if found[i] && kinds[i] == table.KindConn {
				res.Outcome, res.Reason, res.Conn = ToConn, ReasonEstablished, (*C)(vals[i])
				hits++
				continue
			}
			d.deliverSlow(s, hashes[i], vals[i], kinds[i], found[i], device, shard, res)
			d.count(res, shard)
		}
		if hits > 0 {
			d.stats.addAt(shard, cDelivered, hits)
		}
	}
	return n
}
