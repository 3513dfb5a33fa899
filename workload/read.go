package workload

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
)

// lagView lets routing read the sampler's last round without knowing
// metrics: routing declares the interface, this adapter satisfies it.
type lagView struct{ s *metrics.LagSampler }

func (v lagView) Lag(node string) (routing.Lag, bool) {
	snap := v.s.Latest()
	if snap == nil {
		return routing.Lag{}, false
	}
	n, ok := snap.Nodes[node]
	if !ok || !n.Known {
		return routing.Lag{}, false
	}
	return routing.Lag{Bytes: n.Bytes, Time: n.Time, TimeKnown: n.TimeKnown, ReplayLSN: n.ReplayLSN}, true
}

// Seq is the round of the snapshot Lag reads, not the sampler's counter,
// which moves just before a round is published.
func (v lagView) Seq() uint64 {
	if snap := v.s.Latest(); snap != nil {
		return snap.Seq
	}
	return 0
}

// LiveFunc is told one line a second while a read phase runs.
type LiveFunc func(strategy string, elapsed time.Duration, t metrics.Tick)

// readPhase runs one strategy: warmup, then cfg.Duration measured, with
// background writes on the primary throughout.
func (s *Scenario) readPhase(ctx context.Context, strategy string, live LiveFunc) (*metrics.StrategyResult, error) {
	cfg := s.Config
	names := make([]string, len(s.nodes))
	roles := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		names[i], roles[i] = n.Name, n.Role
	}
	bal, err := routing.New(routing.Strategy(strategy), routing.Config{
		Nodes: names, ReadPrimary: cfg.ReadPrimary, Weights: cfg.Weights,
		MaxLagBytes: cfg.MaxLagBytes, MaxLagTime: cfg.MaxLagTime, Fallback: routing.Fallback(cfg.LagFallback),
		EjectFor: cfg.EjectFor, Lag: lagView{s.lag},
	})
	if err != nil {
		return nil, err
	}
	queries := s.queries()
	observer, _ := bal.(routing.ReplayObserver)
	rec := metrics.NewRecorder(names, roles, cfg.kinds(), cfg.Rate > 0)
	sessionEvery := cfg.SessionWrites
	if sessionEvery == 0 && strategy == string(routing.Causal) {
		sessionEvery = 10
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var ryw, rywBad, bgRows atomic.Int64
	var noTarget atomic.Int64
	start := time.Now()
	clients := make([]*client, cfg.Clients)
	for c := 0; c < cfg.Clients; c++ {
		cl := &client{
			s: s, bal: bal, rec: rec.NewClient(), r: rec, queries: queries, sessionEvery: sessionEvery, observer: observer,
			rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(c))), ryw: &ryw, rywBad: &rywBad, noTarget: &noTarget,
		}
		clients[c] = cl
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Rate > 0 {
				cl.openLoop(ctx, start, c)
			} else {
				cl.closedLoop(ctx)
			}
		}()
	}
	if cfg.WriteRate > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.backgroundWrites(ctx, &bgRows) }()
	}

	// Warmup, then measure: nothing before Start reaches a histogram.
	var cpu *metrics.CPUMeter
	var cost *metrics.CostMeter
	var throttled0 map[string]float64
	interrupted := false
	select {
	case <-ctx.Done():
		interrupted = true
	case <-time.After(cfg.Warmup):
	}
	measureStart := time.Now()
	bgAtStart := bgRows.Load()
	if !interrupted {
		rec.Start(measureStart)
		cpu = metrics.StartCPU()
		cost = metrics.StartCost(ctx, s.writer, cfg.LocalProcesses)
		if cfg.Throttled != nil {
			throttled0 = cfg.Throttled()
		}
		t := time.NewTicker(time.Second)
		end := time.After(cfg.Duration)
	loop:
		for {
			select {
			case <-ctx.Done():
				interrupted = true
				break loop
			case <-end:
				break loop
			case now := <-t.C:
				b, ms := s.lag.Current()
				rec.Tick(now, b, ms)
				if live != nil {
					ticks := rec.Ticks()
					live(strategy, now.Sub(measureStart), ticks[len(ticks)-1])
				}
			}
		}
		t.Stop()
	}
	end := time.Now()
	// Queries still running at the end are the slowest of all: leaving them
	// out would bias the tail low and hide a node that hung. Each counts
	// with the latency it had reached; open-loop slots that fell due but
	// were never sent are counted apart.
	var unfinished, unsent int64
	for _, cl := range clients {
		if cl.finishAt(end) {
			unfinished++
		}
		unsent += cl.unsent(end)
	}
	res := rec.Finish(strategy, end)
	cancel()
	wg.Wait()
	if cpu == nil { // interrupted during warmup: nothing was measured
		return nil, context.Canceled
	}
	res.CPU = cpu.Stop()
	res.PrimaryCost = cost.Stop(context.WithoutCancel(ctx))
	if cfg.Throttled != nil {
		res.ThrottledSec = map[string]float64{}
		for node, t := range cfg.Throttled() {
			res.ThrottledSec[node] = t - throttled0[node]
		}
	}
	res.Lag = s.lag.Samples(measureStart, end)
	res.RYWChecks, res.RYWViolation = ryw.Load(), rywBad.Load()
	res.BackgroundWrites = bgRows.Load() - bgAtStart
	res.Unfinished, res.Unsent = unfinished, unsent
	if unsent > 0 {
		s.warn("%s: %d open-loop queries fell due but were never sent (every client was busy): their latency would have been at least the time left to the end", strategy, unsent)
	}
	res.NoTarget = noTarget.Load()
	if n := res.NoTarget; n > 0 {
		s.warn("%s: %d reads found no node to run on (every target ejected, or lag-aware with --lag-fallback error)", strategy, n)
	}
	if interrupted {
		return res, context.Canceled
	}
	return res, nil
}

// client is one load-generating goroutine.
type client struct {
	s            *Scenario
	bal          routing.Balancer
	rec          *metrics.ClientRecorder
	r            *metrics.Recorder
	queries      *querySet
	rng          *rand.Rand
	sessionEvery int
	ops          int
	lastWrite    int64  // id of this session's last written row (0 = none)
	lastLSN      uint64 // commit LSN of that write
	ryw, rywBad  *atomic.Int64
	noTarget     *atomic.Int64
	observer     routing.ReplayObserver // nil when the balancer has no use for it

	// The read in flight: its due time (unix ns, 0 when idle), node and
	// kind. Whoever swaps the due time to 0 records it: the client when
	// the read ends, or the phase's end if the read is still running.
	inflight     atomic.Int64
	inflightNode atomic.Int32
	inflightKind atomic.Int32
	// Open loop: the next slot not yet started, and the slot interval.
	pending  atomic.Int64
	start    time.Time
	interval time.Duration
	stride   int64
}

// finishAt records a read still in flight at end with the latency it has
// reached, and reports whether there was one.
func (c *client) finishAt(end time.Time) bool {
	due := c.inflight.Swap(0)
	if due == 0 {
		return false
	}
	c.rec.Record(int(c.inflightNode.Load()), int(c.inflightKind.Load()), end.Sub(time.Unix(0, due)))
	return true
}

// unsent counts this client's open-loop slots due before end that it never
// started.
func (c *client) unsent(end time.Time) int64 {
	if c.stride == 0 {
		return 0
	}
	var n int64
	for k := c.pending.Load(); c.start.Add(time.Duration(k) * c.interval).Before(end); k += c.stride {
		n++
	}
	return n
}

func (c *client) closedLoop(ctx context.Context) {
	for ctx.Err() == nil {
		c.op(ctx, time.Now())
	}
}

// openLoop runs this client's share of a fixed schedule: slot k is due at
// start + k/rate, and latency counts from the due time, so a slow node's
// queueing is measured rather than hidden (no coordinated omission).
func (c *client) openLoop(ctx context.Context, start time.Time, id int) {
	cfg := c.s.Config
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	c.start, c.interval, c.stride = start, interval, int64(cfg.Clients)
	for k := int64(id); ctx.Err() == nil; k += int64(cfg.Clients) {
		c.pending.Store(k)
		due := start.Add(time.Duration(k) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		c.rec.RecordSchedule(time.Since(due))
		c.pending.Store(k + int64(cfg.Clients))
		c.op(ctx, due)
	}
}

// op runs one operation: a session write every sessionEvery ops, else a
// read from the mix (the read right after a session write reads that row).
func (c *client) op(ctx context.Context, due time.Time) {
	c.ops++
	if c.sessionEvery > 0 && c.ops%c.sessionEvery == 0 {
		c.sessionWrite(ctx)
		return
	}
	q, kind := c.queries.pick(c.rng)
	var arg any
	checkRYW := false
	if c.lastWrite > 0 {
		q, kind, arg, checkRYW = c.queries.point, c.queries.pointKind, c.lastWrite, true
		c.lastWrite = 0
	} else if q.arg != nil {
		arg = q.arg(c.rng)
	}
	hbAtStart, hbFresh := c.s.hb.Latest(), c.s.hb.Fresh(due)
	req := routing.Request{MinLSN: c.lastLSN}
	dueNs := due.UnixNano()
	c.inflightKind.Store(int32(kind))
	c.inflight.Store(dueNs)
	defer c.inflight.CompareAndSwap(dueNs, 0)
	for try := 1; ; try++ {
		node, err := c.bal.Pick(req)
		if err != nil {
			if c.r.Measuring() {
				c.noTarget.Add(1)
			}
			return
		}
		c.inflightNode.Store(int32(node))
		rr, qerr := q.run(ctx, c.s.pools[node], arg)
		if qerr == nil {
			c.bal.Done(node, routing.OK)
			if c.inflight.CompareAndSwap(dueNs, 0) {
				c.rec.Record(node, kind, time.Since(due))
			}
			if rr.replay > 0 && c.observer != nil {
				c.observer.ObserveReplay(node, rr.replay)
			}
			if q.builtin && rr.seq >= 0 && hbFresh {
				c.r.Stale(node, rr.seq < hbAtStart)
			}
			if checkRYW && c.r.Measuring() {
				c.ryw.Add(1)
				if !rr.found {
					c.rywBad.Add(1)
				}
			}
			return
		}
		outcome, class := classify(qerr)
		c.bal.Done(node, outcome)
		if ctx.Err() != nil {
			return // shutting down: not the node's fault
		}
		c.r.Error(node, class)
		if try >= c.s.Config.MaxTries {
			return
		}
		c.r.Retry(node)
		req.Exclude |= 1 << uint(node)
	}
}

// sessionWrite inserts one row on the primary and remembers its commit
// LSN (read after the commit) for causal routing of the next read.
func (c *client) sessionWrite(ctx context.Context) {
	var id int64
	err := c.s.writer.QueryRow(ctx, `INSERT INTO orders (customer_id, amount, status) VALUES ($1, 1, 'session') RETURNING id`,
		1+c.rng.IntN(customers(c.s.Config.Scale))).Scan(&id)
	if err != nil {
		return
	}
	lsn, err := insertLSN(ctx, c.s.writer)
	if err != nil {
		return
	}
	c.lastWrite, c.lastLSN = id, lsn
}

// backgroundWrites inserts WriteRate rows/s on the primary in small
// batches every 50 ms, so lag exists while reads run.
func (s *Scenario) backgroundWrites(ctx context.Context, rows *atomic.Int64) {
	const every = 50 * time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	var owed float64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		owed += s.Config.WriteRate * every.Seconds()
		n := int(owed)
		if n == 0 {
			continue
		}
		owed -= float64(n)
		if _, err := s.writer.Exec(ctx, insertSQL, n, customers(s.Config.Scale)); err == nil {
			rows.Add(int64(n))
		} else if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			s.bgErrors.Add(1)
		}
	}
}
