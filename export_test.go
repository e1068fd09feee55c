package socktable

import "github.com/socktable/socktable/tuple"

// SetPause sets the test hook called at the transitions' midpoints, with
// the point's name.
func (d *Demux[C]) SetPause(f func(point string)) {
	names := [...]string{atTimeWaitEntered: "timewait-entered", atEstablishSwapped: "establish-swapped",
		atListenerUnindexed: "listener-unindexed", atConnectBound: "connect-bound"}
	d.pause = func(p transitionPoint) { f(names[p]) }
}

// EstablishedLookupHashed is the Demux's own established table's
// LookupHashed, for the facade benchmark's floor.
func (d *Demux[C]) EstablishedLookupHashed(h uint64, t tuple.Tuple) bool {
	_, ok := d.established.LookupHashed(h, t)
	return ok
}
