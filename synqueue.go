package socktable

import (
	"github.com/socktable/socktable/timewait"
)

// requestTimers is the request timers' Expire (Linux's
// reqsk_timer_handler): each due request retransmits its SYN-ACK and
// doubles its timeout, until tcp_synack_retries timeouts have passed;
// then it expires. When the listener's SYN queue is more than half full,
// requests that already timed out once get fewer retries, in proportion
// to how many of the queue are young (never fewer than 2), so that old
// requests of a SYN flood make room for new ones, as Linux's
// "reserve half of room for young embryos" does.
func (d *Demux[C]) requestTimers(batch []timewait.Expired) {
	for _, e := range batch {
		index, gen := splitTimerData(e.Data)
		r := d.requests.at(index)
		if r == nil {
			continue
		}
		r.mu.Lock()
		if !r.live || r.gen != gen {
			r.mu.Unlock()
			continue
		}
		l := r.listener
		if l.closed.Load() {
			s, ok := l.successor(r.hash)
			if !ok {
				d.removeRequestLocked(r, false)
				r.mu.Unlock()
				d.requests.put(r)
				continue
			}
			r.moveLocked(s)
			l = s
		}
		retries := d.synAckRetries
		if qlen := int(l.qlen.Load()); qlen<<1 > max(8, l.backlog) {
			young := int(l.young.Load()) << 1
			for retries > 2 && qlen >= young {
				retries--
				young <<= 1
			}
		}
		if int(r.timeouts) >= retries {
			d.stats.add(cRequestTimeouts, 1)
			d.removeRequestLocked(r, false)
			r.mu.Unlock()
			d.requests.put(r)
			continue
		}
		if r.timeouts == 0 {
			l.young.Add(-1)
		}
		if r.timeouts < 255 {
			r.timeouts++
		}
		timeout := synAckTimeoutMax
		if r.timeouts < 8 {
			timeout = min(synAckTimeoutInit<<r.timeouts, synAckTimeoutMax)
		}
		timer, err := d.timers.Schedule(d.clock.Now()+timeout, timerData(r.index, r.gen))
		if err != nil { // the wheel is closed or full: the request cannot wait
			d.removeRequestLocked(r, false)
			r.mu.Unlock()
			d.requests.put(r)
			continue
		}
		r.timer = timer
		d.stats.add(cSynAckRetrans, 1)
		t, reply := r.tuple, r.synAckLocked(d.TSClock())
		r.mu.Unlock()
		if d.sendSynAck != nil {
			d.sendSynAck(t, reply)
		}
	}
}
