package routing

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// node is the per-node state every Pick and Done touches. It fills a cache
// line so that clients hammering different nodes do not contend on one.
type node struct {
	inflight   atomic.Int64
	ejectUntil atomic.Int64  // nanoseconds since base.start; meaningful only while the node's bit is set in base.ejected
	lagBytes   atomic.Int64  // last sampled Bytes, unknownBytes when unknown (lag-aware)
	replayLSN  atomic.Uint64 // highest ReplayLSN known (sampled or observed), 0 when unknown (causal; LSN 0 is never valid)
	latencyNS  atomic.Int64  // EWMA of its reads' latency, 0 until the first (nearest)
	exploredAt atomic.Int64  // when nearest last tried it regardless, ns since base.start
	_          [16]byte
}

const unknownBytes = math.MinInt64

// base holds what all strategies share: node states, ejections and the
// rotation counter. The strategies embed it and add only Pick.
type base struct {
	names       []string
	nodes       []node
	all         uint64 // every node
	readPrimary bool   // the primary is a read target too
	never       uint64 // nodes never read from (a zero weight)
	// roles is who is primary, standby and read target now: swapped
	// whole when a failover changes them (SetRoles), read once per pick.
	roles    atomic.Pointer[roles]
	ejected  atomic.Uint64
	ejectFor time.Duration
	now      func() time.Time
	// ejections is told of ejections and readmissions (Config.Ejections).
	ejections func(node int, ejected bool)
	// start anchors ejection deadlines: durations since it use the monotonic
	// clock, so a wall-clock step cannot eject a node for an hour.
	start time.Time
	// turn is written by every pick of the strategies that rotate: alone
	// on its cache line, so that the read-mostly fields above (roles,
	// ejected, read on every pick) are not invalidated on the other core
	// each time.
	_    [64]byte
	turn atomic.Uint64
	_    [56]byte
}

// roles is one assignment of the nodes.
type roles struct {
	primary  int    // index of the primary
	pbit     uint64 // its bit
	standbys uint64 // every node in service but the primary
	targets  uint64 // the nodes reads normally go to
}

// setRoles makes primary the primary and takes the nodes of gone out of
// service (neither standbys nor targets).
func (b *base) setRoles(primary int, gone uint64) {
	r := &roles{primary: primary, pbit: 1 << primary}
	r.standbys = b.all &^ r.pbit &^ gone
	r.targets = r.standbys
	if b.readPrimary {
		r.targets |= r.pbit
	}
	r.targets &^= b.never
	b.roles.Store(r)
}

// SetRoles tells the balancer that node primary is the primary now and
// that the nodes in gone (a bitmask of indexes, e.g. the old primary
// after a failover) are out of service until told otherwise. Picks made
// after it return use the new roles; a pick in flight finishes as it
// began.
func (b *base) SetRoles(primary int, gone uint64) {
	if primary >= 0 && primary < len(b.nodes) {
		b.setRoles(primary, gone)
	}
}

// ReplayObserver learns a standby's replay position from the reads
// themselves. Replay only moves forward, so a position a read saw is a
// lower bound for the standby from then on - fresher than the last lag
// round (100 ms old at worst), which lets causal use a standby within
// milliseconds of a client's write instead of falling back to the primary.
type ReplayObserver interface {
	ObserveReplay(node int, lsn uint64)
}

var _ ReplayObserver = (*base)(nil)

// ObserveReplay raises the node's known replay LSN to lsn.
func (b *base) ObserveReplay(i int, lsn uint64) {
	if i != b.roles.Load().primary && i >= 0 && i < len(b.nodes) {
		raise(&b.nodes[i].replayLSN, lsn)
	}
}

// raise stores v if it is above the current value, without a lock.
func raise(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Done ends a pick. Only a connection-class failure ejects: a query that
// failed on a healthy node (a recovery conflict) says nothing about the node.
func (b *base) Done(i int, o Outcome) {
	n := &b.nodes[i]
	n.inflight.Add(-1)
	if o == ConnError {
		n.ejectUntil.Store(int64(b.now().Sub(b.start) + b.ejectFor))
		// After the deadline, so that whoever sees the bit sees the deadline.
		if old := b.ejected.Or(1 << i); old&(1<<i) == 0 && b.ejections != nil {
			b.ejections(i, true)
		}
	}
}

// InFlight returns the node's picked-but-not-done queries.
func (b *base) InFlight(i int) int64 { return b.nodes[i].inflight.Load() }

func (b *base) take(i int) (int, error) {
	b.nodes[i].inflight.Add(1)
	return i, nil
}

// healthy returns every node that is neither excluded nor ejected. When no
// node is ejected, which is nearly always, it costs one atomic load and
// never reads the clock.
func (b *base) healthy(exclude uint64) uint64 {
	m := b.all &^ exclude
	if e := b.ejected.Load() & m; e != 0 {
		m &^= b.stillEjected(e)
	}
	return m
}

// stillEjected returns the nodes of hint whose ejection has not expired and
// clears the others from b.ejected, so that they are tried again.
func (b *base) stillEjected(hint uint64) uint64 {
	now := int64(b.now().Sub(b.start))
	var out uint64
	for ; hint != 0; hint &= hint - 1 {
		i := lowest(hint)
		bit := uint64(1) << i
		if b.nodes[i].ejectUntil.Load() > now {
			out |= bit
			continue
		}
		old := b.ejected.And(^bit)
		// A ConnError may have set a new deadline and its bit between our
		// load and our And, and the And just erased that bit: look again.
		if b.nodes[i].ejectUntil.Load() > now {
			b.ejected.Or(bit)
			out |= bit
			continue
		}
		if old&bit != 0 && b.ejections != nil {
			b.ejections(i, false)
		}
	}
	return out
}

// leastLoaded returns the node of m with the fewest in-flight queries, or
// -1 when m is empty. The scan starts at a rotating member of m and keeps
// the first minimum, so nodes with equal load take turns instead of the
// lowest index taking every tie.
func (b *base) leastLoaded(m uint64) int {
	k := bits.OnesCount64(m)
	switch k {
	case 0:
		return -1
	case 1:
		return lowest(m)
	}
	s := nthBit(m, int(b.turn.Add(1)%uint64(k)))
	best, load := -1, int64(math.MaxInt64)
	for r := bits.RotateLeft64(m, -s); r != 0; r &= r - 1 {
		i := (lowest(r) + s) & 63
		if l := b.nodes[i].inflight.Load(); l < load {
			best, load = i, l
		}
	}
	return best
}

// nthBit returns the index of the n-th (from 0) set bit of m; m must have
// more than n bits set.
func nthBit(m uint64, n int) int {
	for ; n > 0; n-- {
		m &= m - 1
	}
	return lowest(m)
}

func lowest(m uint64) int { return bits.TrailingZeros64(m) }
