package socktable

import (
	"github.com/socktable/socktable/table"
	"github.com/socktable/socktable/timewait"
	"github.com/socktable/socktable/tuple"
)

// Flows answers connect()'s question — may a new connection use this
// four-tuple? — from a stack's established and TIME_WAIT tables, for its
// bind table: pass it as table.PortsOptions.Flows. It is the
// table.FlowChecker a stack composes from the parts:
//
//   - a tuple in the established table is in use (FlowInUse);
//   - a tuple with a TIME_WAIT entry is taken over when Linux's
//     tcp_twsk_unique allows it (the TIME_WAIT table's Reuse mode, or an
//     explicitly bound port), in one step under the entry's lock: the entry
//     is removed and its owner, the *table.Binding that held the port for
//     it, goes back to Ports, which releases it under the port lock it
//     already holds (FlowTakenOver, with the Reuse the connection
//     inherits); otherwise the tuple is in use;
//   - any other tuple is free.
//
// The TIME_WAIT table's entries own the bindings Ports.TimeWait parked
// (timewait.Table[*table.Binding]); its OnExpire releases them
// (Ports.Release) when their entries expire, so that whichever way an
// entry goes — expiry, a takeover here, a kill — its binding is released
// exactly once.
//
// ClaimFlow hashes the tuple once, for both tables. It runs with a port
// stripe of Ports locked and takes the TIME_WAIT table's shard lock (a
// takeover) after it: the library's lock order (see the package
// documentation). It never blocks on anything else.
type Flows[C comparable] struct {
	established *table.Established[C]
	timeWait    *timewait.Table[*table.Binding]
	hasher      *tuple.Hasher
}

// NewFlows returns the FlowChecker over established and timeWait. It
// returns ErrInvalid if either is nil or the two do not share one Hasher
// (one flow hash serves every table of a stack; a hash from another
// Hasher would miss every entry).
func NewFlows[C comparable](established *table.Established[C], timeWait *timewait.Table[*table.Binding]) (*Flows[C], error) {
	if established == nil || timeWait == nil || established.Hasher() != timeWait.Hasher() {
		return nil, ErrInvalid
	}
	return &Flows[C]{established: established, timeWait: timeWait, hasher: established.Hasher()}, nil
}

// ClaimFlow implements table.FlowChecker (see Flows). It allocates nothing.
func (f *Flows[C]) ClaimFlow(t tuple.Tuple, explicitBind bool) table.FlowClaim {
	h := f.hasher.Hash(t)
	if _, ok := f.established.LookupHashed(h, t); ok {
		return table.FlowClaim{Verdict: table.FlowInUse}
	}
	// Most tuples have no TIME_WAIT entry: a lock-free read says so. An
	// entry is taken over under its lock; one that went between the two
	// (it expired) leaves the tuple free.
	for range 2 {
		if _, ok := f.timeWait.LookupHashed(h, t); !ok {
			return table.FlowClaim{}
		}
		if r, owner, ok := f.timeWait.TakeOverHashed(h, t, explicitBind); ok {
			return table.FlowClaim{Verdict: table.FlowTakenOver, Owner: owner,
				Reuse: table.Reuse{WriteSeq: r.WriteSeq, TSRecent: r.TSRecent, TSRecentStamp: r.TSRecentStamp}}
		}
	}
	// The entry stays and may not be taken over (or a new one came as
	// the last went: in use either way).
	return table.FlowClaim{Verdict: table.FlowInUse}
}
