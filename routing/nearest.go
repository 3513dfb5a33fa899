package routing

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyObserver learns how long each read on a node took: nearest
// routes by it. The caller tells it of every read that succeeded on the
// node, and of every one that timed out there.
type LatencyObserver interface {
	ObserveLatency(node int, d time.Duration)
}

var _ LatencyObserver = (*nearest)(nil)

// nearest sends each read to the target answering soonest, as drivers'
// latency-aware policies do (and Finagle's peak-EWMA balancer): an
// exponentially weighted moving average of each node's read latency,
// times its reads in flight plus one, so that the fastest node is not
// piled on until it is slow. A node with no latency yet goes first.
// Every target is tried again at most once per exploreEach (looked at
// every exploreEvery picks, so the clock is read rarely), and the latency
// that read sees replaces the node's average: a node once slow (a link
// that recovered) is taken back at once; still slow, it stays out, having
// cost a few reads a second whatever the read rate.
type nearest struct {
	*base
	explored atomic.Uint64 // nodes whose next latency replaces their average
}

// ewmaShift weighs a new latency 1/8 against the average: a few dozen
// reads move it, one slow read does not.
const ewmaShift = 3

// exploreEvery is how often a pick looks whether a target is due to be
// tried again; exploreEach how often each is.
const (
	exploreEvery = 64
	exploreEach  = 250 * time.Millisecond
)

func (r *nearest) Pick(req Request) (int, error) {
	m := r.healthy(req.Exclude) & r.roles.Load().targets
	if m == 0 {
		return -1, ErrNoTarget
	}
	turn := r.turn.Add(1)
	if turn%exploreEvery == 0 {
		i := nthBit(m, int((turn/exploreEvery)%uint64(bits.OnesCount64(m))))
		now := int64(r.now().Sub(r.start))
		last := &r.nodes[i].exploredAt
		if at := last.Load(); now-at >= int64(exploreEach) && last.CompareAndSwap(at, now) {
			r.explored.Or(1 << i)
			return r.take(i)
		}
	}
	best, cost := -1, math.Inf(1)
	var unmeasured uint64
	for x := m; x != 0; x &= x - 1 {
		i := lowest(x)
		ns := r.nodes[i].latencyNS.Load()
		if ns == 0 {
			unmeasured |= 1 << i
			continue
		}
		if c := float64(ns) * float64(r.nodes[i].inflight.Load()+1); c < cost {
			best, cost = i, c
		}
	}
	if unmeasured != 0 { // measured first, in turn
		return r.take(nthBit(unmeasured, int(turn%uint64(bits.OnesCount64(unmeasured)))))
	}
	return r.take(best)
}

// ObserveLatency folds d into node i's average. Concurrent updates may
// lose one another's step: the average is a hint, not a count.
func (r *nearest) ObserveLatency(i int, d time.Duration) {
	if i < 0 || i >= len(r.nodes) {
		return
	}
	ns := max(int64(d), 1)
	a := &r.nodes[i].latencyNS
	if old := a.Load(); old == 0 || r.explored.And(^(uint64(1)<<i))&(1<<i) != 0 {
		a.Store(ns)
	} else {
		a.Store(old + (ns-old)>>ewmaShift)
	}
}
