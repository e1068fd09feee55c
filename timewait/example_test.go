package timewait_test

import (
	"fmt"
	"time"

	"github.com/socktable/socktable/timewait"
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
