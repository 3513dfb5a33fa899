package routing

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// lagCache copies each new sample round of a LagView into the nodes'
// atomics, so that picks never call the view: a view lookup is a map read
// by name, and there are far more picks than rounds.
type lagCache struct {
	b    *base
	view LagView
	// seen is 1 + the Seq of the last round read, 0 before the first.
	seen atomic.Uint64
	// in is the standbys lag-aware may read from (judge's verdicts).
	in atomic.Uint64
	// mu is taken with TryLock only on the pick path: the goroutine that
	// loses the race keeps using the previous round rather than waiting.
	mu    sync.Mutex
	judge *hysteresis // nil for causal, which needs no verdict
}

// sync reads the view again if a round was published since the last read.
func (c *lagCache) sync() {
	if c.view.Seq()+1 != c.seen.Load() && c.mu.TryLock() {
		c.read()
		c.mu.Unlock()
	}
}

// read copies the current round; c.mu must be held.
func (c *lagCache) read() {
	if c.view.Seq()+1 == c.seen.Load() {
		return // another goroutine read this round while we waited for mu
	}
	var in uint64
	for m := c.b.roles.Load().standbys; m != 0; m &= m - 1 {
		i := lowest(m)
		l, ok := c.view.Lag(c.b.names[i])
		n := &c.b.nodes[i]
		if ok && !l.BytesUnknown {
			n.lagBytes.Store(l.Bytes)
		} else {
			n.lagBytes.Store(unknownBytes)
		}
		if ok {
			raise(&n.replayLSN, l.ReplayLSN) // a read may have seen later

		} else {
			n.replayLSN.Store(0)
		}
		if c.judge != nil && c.judge.observe(i, l, ok) {
			in |= 1 << i
		}
	}
	c.in.Store(in)
	// Seq read after the samples: if a round landed meanwhile, part of what
	// we read is from it, and marking it seen keeps hysteresis from counting
	// those samples twice (at worst a round is skipped, never doubled).
	c.seen.Store(c.view.Seq() + 1)
}

// hysteresis decides which standbys are within the max lag. A standby
// changes side only after K consecutive samples on the other side, so one
// near the limit does not flap in and out every 100 ms and whipsaw its
// cache and connection pool.
type hysteresis struct {
	maxBytes int64
	maxTime  time.Duration
	k        int
	started  []bool // a known sample has been seen
	in       []bool
	streak   []int // consecutive samples disagreeing with in
}

func (h *hysteresis) within(l Lag, ok bool) bool {
	switch {
	case !ok:
		return false
	case h.maxBytes > 0 && (l.BytesUnknown || l.Bytes > h.maxBytes):
		return false
	case h.maxTime > 0 && (!l.TimeKnown || l.Time > h.maxTime):
		return false
	}
	return true
}

// observe takes standby i's sample of a new round and returns whether i is in.
func (h *hysteresis) observe(i int, l Lag, ok bool) bool {
	w := h.within(l, ok)
	switch {
	case !h.started[i]:
		// The first known sample decides at once: starting every standby
		// out would send a run's first K rounds to the fallback.
		if ok {
			h.started[i], h.in[i], h.streak[i] = true, w, 0
		}
	case w == h.in[i]:
		h.streak[i] = 0
	default:
		if h.streak[i]++; h.streak[i] >= h.k {
			h.in[i], h.streak[i] = w, 0
		}
	}
	return h.in[i]
}

// lagAware reads from standbys within the max lag, least loaded first.
type lagAware struct {
	*base
	lags     *lagCache
	fallback Fallback
}

func newLagAware(b *base, cfg Config) (Balancer, error) {
	if cfg.Lag == nil {
		return nil, errors.New("routing: lag-aware needs a LagView (Config.Lag)")
	}
	switch {
	case cfg.MaxLagBytes < 0 || cfg.MaxLagTime < 0:
		return nil, &input.Error{Flag: "max-lag", Value: fmt.Sprintf("%dB,%v", cfg.MaxLagBytes, cfg.MaxLagTime),
			Reason: "limits must be > 0", Accepted: acceptedMaxLag}
	case cfg.MaxLagBytes == 0 && cfg.MaxLagTime == 0:
		return nil, &input.Error{Flag: "max-lag", Reason: "lag-aware needs a byte limit, a time limit or both",
			Accepted: acceptedMaxLag}
	case cfg.Hysteresis < 0:
		return nil, fmt.Errorf("routing: Hysteresis %d: must be >= 0 (0 = %d, 1 = none)", cfg.Hysteresis, DefaultHysteresis)
	}
	fb := cfg.Fallback
	if fb == "" {
		fb = FallbackPrimary
	}
	switch fb {
	case FallbackPrimary, FallbackLeastLagged, FallbackError:
	default:
		return nil, &input.Error{Flag: "lag-fallback", Value: string(fb), Accepted: acceptedFallbacks}
	}
	k := cfg.Hysteresis
	if k == 0 {
		k = DefaultHysteresis
	}
	n := len(b.nodes)
	h := &hysteresis{maxBytes: cfg.MaxLagBytes, maxTime: cfg.MaxLagTime, k: k,
		started: make([]bool, n), in: make([]bool, n), streak: make([]int, n)}
	return &lagAware{base: b, lags: newLagCache(b, cfg.Lag, h), fallback: fb}, nil
}

func newLagCache(b *base, v LagView, h *hysteresis) *lagCache {
	c := &lagCache{b: b, view: v, judge: h}
	for i := range b.nodes {
		b.nodes[i].lagBytes.Store(unknownBytes)
	}
	// Read the current round now so the first picks of a run, which all
	// race for mu, do not go to the fallback for lack of a verdict.
	c.mu.Lock()
	c.read()
	c.mu.Unlock()
	return c
}

func (l *lagAware) Pick(req Request) (int, error) {
	l.lags.sync()
	rs := l.roles.Load()
	h := l.healthy(req.Exclude)
	if i := l.leastLoaded(h & (l.lags.in.Load()&rs.standbys | rs.targets&rs.pbit)); i >= 0 {
		return l.take(i)
	}
	switch l.fallback {
	case FallbackError:
		return -1, ErrNoTarget
	case FallbackLeastLagged:
		if i := l.leastLagged(h & rs.standbys); i >= 0 {
			return l.take(i)
		}
	}
	if h&rs.pbit == 0 {
		return -1, ErrNoTarget
	}
	return l.take(rs.primary)
}

// leastLagged returns the standby of m with the smallest known byte lag
// (ties to the least loaded), or -1 if no lag in m is known.
func (l *lagAware) leastLagged(m uint64) int {
	best := -1
	var bestBytes, bestLoad int64
	for ; m != 0; m &= m - 1 {
		i := lowest(m)
		b := l.nodes[i].lagBytes.Load()
		if b == unknownBytes {
			continue
		}
		load := l.nodes[i].inflight.Load()
		if best < 0 || b < bestBytes || b == bestBytes && load < bestLoad {
			best, bestBytes, bestLoad = i, b, load
		}
	}
	return best
}

// causal gives read-your-writes: a client's read goes to a standby that has
// replayed the client's last write, else to the primary.
type causal struct {
	*base
	lags *lagCache
}

func newCausal(b *base, cfg Config) (Balancer, error) {
	if cfg.Lag == nil {
		return nil, errors.New("routing: causal needs a LagView (Config.Lag)")
	}
	return &causal{base: b, lags: newLagCache(b, cfg.Lag, nil)}, nil
}

func (c *causal) Pick(req Request) (int, error) {
	rs := c.roles.Load()
	h := c.healthy(req.Exclude)
	m := h & rs.standbys
	if req.MinLSN != 0 {
		// A client that has not written yet can read anywhere; one that has
		// needs a standby known to have replayed its write. Unknown replay
		// LSNs are stored as 0, which is below every MinLSN.
		c.lags.sync()
		var ok uint64
		for x := m; x != 0; x &= x - 1 {
			if i := lowest(x); c.nodes[i].replayLSN.Load() >= req.MinLSN {
				ok |= 1 << i
			}
		}
		m = ok
	}
	if i := c.leastLoaded(m | h&rs.targets&rs.pbit); i >= 0 {
		return c.take(i)
	}
	if h&rs.pbit == 0 {
		return -1, ErrNoTarget
	}
	return c.take(rs.primary)
}
