package socktable

// SetPause sets the test hook called at the transitions' midpoints, with
// the point's name.
func (d *Demux[C]) SetPause(f func(point string)) {
	names := [...]string{atTimeWaitEntered: "timewait-entered", atEstablishSwapped: "establish-swapped",
		atListenerUnindexed: "listener-unindexed", atConnectBound: "connect-bound"}
	d.pause = func(p transitionPoint) { f(names[p]) }
}
