package rcu

// Test hooks into the epoch machinery.

// SetEnterHook installs f between Enter's epoch load and its increment
// (nil removes it). Tests only; not safe to change while readers run.
func SetEnterHook(f func()) { enterHook = f }

// SetWaitHook installs f where Synchronize is about to wait for readers.
func SetWaitHook(f func()) { waitHook = f }

// TryAdvance exposes one non-blocking attempt to advance the epoch.
func (d *Domain) TryAdvance() bool { return d.tryAdvance() }

// NumStripes returns the number of reader stripes.
func (d *Domain) NumStripes() int { return len(d.stripes) }

// EnterWithEpoch finishes an Enter whose epoch load returned e, in stripe
// i: a reader that loaded the epoch long ago and only now increments. It
// fails (false) if the epoch has moved, as Enter's retry would.
func (d *Domain) EnterWithEpoch(i int, e uint64) (Guard, bool) {
	return d.enterAt(&d.stripes[i&int(d.mask)], e)
}

// ActiveReaders sums the reader counts of one parity across stripes.
func (d *Domain) ActiveReaders(parity uint64) int64 {
	var n int64
	for i := range d.stripes {
		n += d.stripes[i].active[parity&1].Load()
	}
	return n
}

// Stripe is the padded stripe type, for its size test.
type Stripe = stripe
