package timewait_test

import (
	"fmt"
	"time"

	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// A wheel driven by a manual clock: two timers, one cancelled, one
// rescheduled; expiry hands the survivors to one handler in a batch.
func ExampleWheel() {
	clock := &timewait.ManualClock{}
	w, err := timewait.NewWheel(timewait.WheelOptions{
		Clock: clock,
		Expire: func(batch []timewait.Expired) {
			for _, e := range batch {
				fmt.Printf("at %v: timer %d\n", clock.Now(), e.Data)
			}
		},
	})
	if err != nil {
		panic(err)
	}
	defer w.Close()

	a, _ := w.ScheduleAfter(10*time.Millisecond, 1)
	b, _ := w.ScheduleAfter(20*time.Millisecond, 2)
	w.ScheduleAfter(30*time.Millisecond, 3)
	w.Cancel(a)
	w.Reschedule(b, 40*time.Millisecond)
	fmt.Println("pending:", w.Len())

	for range 5 {
		clock.Advance(10 * time.Millisecond)
		w.Advance()
	}
	fmt.Println("pending:", w.Len())
	// Output:
	// pending: 2
	// at 30ms: timer 3
	// at 40ms: timer 2
	// pending: 0
}

// A TIME_WAIT table on a manual clock: a closed connection enters, a
// retransmitted FIN is re-ACKed, a new SYN may take the four-tuple over,
// and the entry expires after its 60 s.
func ExampleTable() {
	clock := &timewait.ManualClock{}
	tw, err := timewait.New(timewait.Options{Clock: clock})
	if err != nil {
		panic(err)
	}
	defer tw.Close()

	flow := tuple.MustNew("192.0.2.1:80", "198.51.100.7:40000")
	if err := tw.Enter(flow, timewait.State{RcvNxt: 1001, SndNxt: 5001, RcvWnd: 65535}); err != nil {
		panic(err) // ErrTimeWaitFull: close without TIME_WAIT
	}

	fin := tuple.Segment{Tuple: flow, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.FIN | tuple.ACK, Seq: 1000}
	reply, _ := tw.Process(flow, &fin)
	fmt.Printf("retransmitted FIN: %v seq=%d ack=%d\n", reply.Verdict, reply.Seq, reply.Ack)

	syn := tuple.Segment{Tuple: flow, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, Seq: 90000}
	reply, _ = tw.Process(flow, &syn)
	fmt.Printf("new SYN: %v isn=%d\n", reply.Verdict, reply.ISN)

	clock.Advance(65 * time.Second)
	tw.Advance()
	_, ok := tw.Lookup(flow)
	fmt.Println("after 65 s:", ok, tw.Stats().Expired)
	// Output:
	// retransmitted FIN: ack seq=5001 ack=1001
	// new SYN: new-syn isn=70538
	// after 65 s: false 1
}
