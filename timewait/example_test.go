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

// A TIME_WAIT table on a manual clock whose entries own a stack's port
// holds (a string here): a closed connection enters, a retransmitted FIN
// is re-ACKed, a new SYN that a listener takes replaces the entry in one
// step, and another entry expires after its 60 s, handing its owner to
// OnExpire.
func ExampleTable() {
	clock := &timewait.ManualClock{}
	tw, err := timewait.NewTable(timewait.TableOptions[string]{
		Clock: clock,
		OnExpire: func(tp tuple.Tuple, owner string) {
			fmt.Println("expired, release", owner) // no table lock is held here
		},
	})
	if err != nil {
		panic(err)
	}
	defer tw.Close()

	flow := tuple.MustNew("192.0.2.1:80", "198.51.100.7:40000")
	other := tuple.MustNew("192.0.2.1:80", "198.51.100.8:40000")
	for _, f := range []tuple.Tuple{flow, other} {
		if err := tw.Enter(f, timewait.State{RcvNxt: 1001, SndNxt: 5001, RcvWnd: 65535}, "port 80 of "+f.Remote.String()); err != nil {
			panic(err) // ErrTimeWaitFull: close without TIME_WAIT
		}
	}

	fin := tuple.Segment{Tuple: flow, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.FIN | tuple.ACK, Seq: 1000}
	reply, _, _ := tw.Process(flow, &fin)
	fmt.Printf("retransmitted FIN: %v seq=%d ack=%d, entry %v\n", reply.Verdict, reply.Seq, reply.Ack, reply.Fate)

	syn := tuple.Segment{Tuple: flow, Proto: tuple.ProtoTCP, Version: 4, Flags: tuple.SYN, Seq: 90000}
	reply, _, _ = tw.Process(flow, &syn)
	fmt.Printf("new SYN: %v isn=%d\n", reply.Verdict, reply.ISN)
	owner, replaced, err := tw.Replace(flow, func() error {
		return nil // the stack's insert of the new request into its established table
	})
	fmt.Println("replaced:", replaced, err, "release", owner)

	clock.Advance(65 * time.Second)
	tw.Advance()
	fmt.Println("after 65 s:", tw.Len(), tw.Stats().Expired)
	// Output:
	// retransmitted FIN: ack seq=5001 ack=1001, entry restarted
	// new SYN: new-syn isn=70538
	// replaced: true <nil> release port 80 of 198.51.100.7:40000
	// expired, release port 80 of 198.51.100.8:40000
	// after 65 s: 0 1
}
