package routing

import (
	"math/bits"
	"math/rand/v2"
)

// random spreads reads at random, uniformly or by weight. The top-level
// math/rand/v2 functions draw from a per-thread generator: no lock, unlike a
// shared *rand.Rand.
type random struct {
	*base
	weights []float64 // nil: uniform; else by node index, and zero-weight nodes are not in targets
}

func (r *random) Pick(req Request) (int, error) {
	m := r.healthy(req.Exclude) & r.roles.Load().targets
	if m == 0 {
		return -1, ErrNoTarget
	}
	if r.weights == nil {
		return r.take(nthBit(m, rand.IntN(bits.OnesCount64(m))))
	}
	// Summing the healthy weights on every pick (at most 64 additions)
	// keeps an ejected node's share spread by weight over the others.
	var total float64
	for x := m; x != 0; x &= x - 1 {
		total += r.weights[lowest(x)]
	}
	left := rand.Float64() * total
	last := -1
	for x := m; x != 0; x &= x - 1 {
		last = lowest(x)
		if left -= r.weights[last]; left < 0 {
			break
		}
	}
	// Rounding can leave left a hair above zero after the last node: it is
	// the last node's share.
	return r.take(last)
}

// roundRobin takes the healthy targets in turn. The turn indexes the
// healthy set itself, not all targets, so an ejected node's share is spread
// evenly instead of falling on its successor.
type roundRobin struct{ *base }

func (r *roundRobin) Pick(req Request) (int, error) {
	m := r.healthy(req.Exclude) & r.roles.Load().targets
	k := bits.OnesCount64(m)
	if k == 0 {
		return -1, ErrNoTarget
	}
	return r.take(nthBit(m, int((r.turn.Add(1)-1)%uint64(k))))
}

// leastConn sends each read to the target with the fewest reads in flight
// from this process: the one most likely to answer soonest.
type leastConn struct{ *base }

func (l *leastConn) Pick(req Request) (int, error) {
	i := l.leastLoaded(l.healthy(req.Exclude) & l.roles.Load().targets)
	if i < 0 {
		return -1, ErrNoTarget
	}
	return l.take(i)
}
