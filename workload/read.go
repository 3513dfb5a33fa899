package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/probe"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/script"
)

// lagView lets routing read the sampler's last round without knowing
// metrics: routing declares the interface, this adapter satisfies it.
type lagView struct{ s *probe.LagSampler }

func (v lagView) Lag(node string) (routing.Lag, bool) {
	snap := v.s.Latest()
	if snap == nil {
		return routing.Lag{}, false
	}
	n, ok := snap.Nodes[node]
	if !ok || !n.Known {
		return routing.Lag{}, false
	}
	// Limits are judged on the upper bound of the time lag: a standby that
	// may be past --max-lag gets no reads.
	return routing.Lag{Bytes: n.Bytes, BytesUnknown: !n.BytesKnown, Time: n.TimeUpper, TimeKnown: n.TimeKnown,
		ReplayLSN: n.ReplayLSN}, true
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
type LiveFunc func(strategy routing.Strategy, elapsed time.Duration, t metrics.Tick)

// phase is what the clients of one read phase share.
type phase struct {
	s            *Scenario
	bal          routing.Balancer
	observer     routing.ReplayObserver  // nil when the balancer has no use for it
	latencies    routing.LatencyObserver // nil when the balancer has no use for it (nearest has)
	r            *metrics.Recorder
	queries      *querySet
	sessionEvery int
	ryw, rywBad  atomic.Int64
	// measureFrom is when measuring began (unix ns, 0 during the warmup);
	// end is when the phase ended (0 while it runs). Reads cut off by the
	// end are recorded with the time they had reached at end.
	measureFrom atomic.Int64
	end         atomic.Int64
	// start is when the phase (its warmup) began: events before the
	// measured start get a negative time.
	start time.Time

	mu     sync.Mutex
	closed bool // its events were taken: later ones are the run's
	events []metrics.Event

	clients []*client
	// via is the index of the via: endpoint every read goes to, -1 when
	// the phase routes itself.
	via int
}

// abort cuts every client's read or wait short: the phase has ended
// (its end is stored, the clients' context cancelled). A read in flight
// fails at once and is recorded as cut off at the end.
func (ph *phase) abort() {
	for _, c := range ph.clients {
		for _, rc := range c.conns {
			if rc != nil {
				rc.abort()
			}
		}
		if c.timer != nil {
			c.timer.wake()
		}
	}
}

// event files e in the phase, timed from its measured start; false when
// the phase has closed and e belongs to the run.
func (ph *phase) event(e metrics.Event) bool {
	from := ph.start.Add(ph.s.Config.Warmup) // during the warmup: when measuring is due to start
	if ns := ph.measureFrom.Load(); ns != 0 {
		from = time.Unix(0, ns)
	}
	e.T = e.At.Sub(from).Seconds()
	ph.mu.Lock()
	defer ph.mu.Unlock()
	if ph.closed {
		return false
	}
	ph.events = append(ph.events, e)
	return true
}

// takeEvents closes the phase's timeline and returns it.
func (ph *phase) takeEvents() []metrics.Event {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	ph.closed = true
	return ph.events
}

// readPhase runs one strategy: warmup, then cfg.Duration measured, with
// background writes on the primary throughout. Whatever the nodes do, it
// returns promptly after the measured time: every read in flight then is
// cut off and recorded as unfinished.
func (s *Scenario) readPhase(ctx context.Context, strategy routing.Strategy, hooks Hooks) (*metrics.StrategyResult, error) {
	cfg, live := s.Config, hooks.Live
	names := make([]string, len(s.nodes))
	roles := make([]metrics.Role, len(s.nodes))
	for i, n := range s.nodes {
		names[i], roles[i] = n.Name, n.Role
	}
	rc := cfg.Routing(names, s.prim(), lagView{s.lag})
	via := -1
	if name, ok := routing.ViaName(strategy); ok {
		if via = s.viaIndex(name); via < 0 {
			return nil, fmt.Errorf("%s: no endpoint named %s (an env's proxy, or run --via %s=DSN)", strategy, name, name)
		}
		// Reads through it are counted on the node that served them; a
		// row of their own for those that could not be told.
		names = append(names, metrics.Unattributed)
		roles = append(roles, metrics.RoleUnknown)
	}
	// Ejections and readmissions are events: a reader sees when a node
	// left the read targets and when it was tried again.
	ejectFor := cfg.EjectFor
	if ejectFor == 0 {
		ejectFor = routing.DefaultEjectFor
	}
	rc.Ejections = func(i int, ejected bool) {
		if ejected {
			s.Event("ejected", names[i], fmt.Sprintf("a connection error: no reads for %s", ejectFor))
		} else {
			// The clients' connections there sat idle while it was out,
			// and a node that restarted meanwhile left them all dead:
			// each makes a new one at its next read there, as a pool
			// checking its idle connections would.
			s.connGen[i].Add(1)
			s.Event("readmitted", names[i], "its ejection ran out: tried again")
		}
	}
	bal, err := routing.New(strategy, rc)
	if err != nil {
		return nil, err
	}
	if gone := s.outOfService(); gone != 0 {
		bal.SetRoles(s.prim(), gone)
	}
	ph := &phase{s: s, bal: bal, r: metrics.NewRecorder(names, roles, cfg.kinds(), cfg.Rate > 0), queries: s.qs,
		sessionEvery: cfg.SessionWrites, via: via}
	ph.observer, _ = bal.(routing.ReplayObserver)
	ph.latencies, _ = bal.(routing.LatencyObserver)
	ph.start = time.Now()
	s.current.Store(ph)
	defer func() {
		// Events of a phase that ends without a result (interrupted in
		// its warmup) are the run's.
		s.current.Store(nil)
		for _, e := range ph.takeEvents() {
			s.runEvent(e)
		}
	}()
	if via >= 0 {
		ph.sessionEvery = 0 // no session writes: there is no primary to pick
	}
	if ph.sessionEvery == 0 && strategy == routing.Causal {
		ph.sessionEvery = CausalSessionEvery
	}
	if ph.sessionEvery > 0 {
		s.warn("%s: every %d operations each client writes a row on the primary and reads it back next (read-your-writes): those writes are not reads, and with --rate they take their share of the schedule", strategy, ph.sessionEvery)
	}

	// The clients stop when the phase says so, not when the caller's
	// context ends: on Ctrl-C too the phase first marks its end, so that
	// every read then in flight is recorded as cut off, not lost.
	cctx, stopClients := context.WithCancel(context.WithoutCancel(ctx))
	defer stopClients()
	var wg sync.WaitGroup
	var bgRows atomic.Int64
	// The clients wait for ready: an open loop's schedule starts once they
	// all run (and, without a warmup, once measuring is set up), or the
	// phase's own start-up would be charged to its first slots.
	ready := make(chan struct{})
	var start time.Time
	for c := 0; c < cfg.Clients; c++ {
		cl := &client{ph: ph, rec: ph.r.NewClient(), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(c))),
			conns: s.conns[c]}
		if cfg.Rate > 0 {
			cl.timer = newWaiter()
		}
		cl.states = make([]*script.State, len(s.qs.list))
		for k, q := range s.qs.list {
			if q.script != nil {
				cl.states[k] = q.script.NewState(cl.rng, q.builtins(c))
			}
		}
		ph.clients = append(ph.clients, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			if cfg.Rate > 0 {
				cl.openLoop(cctx, start, c)
			} else {
				cl.closedLoop(cctx)
			}
		}()
	}
	if cfg.WriteRate > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); <-ready; s.backgroundWrites(cctx, &bgRows, ph.r) }()
	}

	// Warmup, then measure: nothing before Start reaches a histogram. The
	// meters read the servers before the measured time starts, so their
	// round trips are not in it.
	var cpu *probe.CPUMeter
	var cost *probe.CostMeter
	var throttled0 map[string]float64
	startMeters := func() {
		bctx, bcancel := context.WithTimeout(ctx, s.brief())
		cost = probe.StartCost(bctx, s.probes[s.prim()], cfg.LocalProcesses)
		bcancel()
		if cfg.Throttled != nil {
			throttled0 = cfg.Throttled()
		}
		cpu = probe.StartCPU()
	}
	interrupted := false
	measure := func() time.Time {
		startMeters()
		now := time.Now()
		ph.r.Start(now)
		ph.measureFrom.Store(now.UnixNano())
		if hooks.Measuring != nil {
			hooks.Measuring(strategy, now)
		}
		return now
	}
	var measureStart time.Time
	if cfg.Warmup <= 0 {
		measureStart = measure()
		start = measureStart
	} else {
		start = time.Now()
	}
	close(ready)
	if cfg.Warmup > 0 {
		select {
		case <-ctx.Done():
			interrupted = true
		case <-time.After(cfg.Warmup):
		}
		if !interrupted {
			measureStart = measure()
		}
	}
	bgAtStart := bgRows.Load()
	if !interrupted {
		t := time.NewTicker(time.Second)
		end := time.After(cfg.Duration - time.Since(measureStart))
	loop:
		for {
			select {
			case <-ctx.Done():
				interrupted = true
				break loop
			case <-end:
				break loop
			case now := <-t.C:
				ph.r.Tick(now, s.lag.Current())
				if live != nil {
					if ticks := ph.r.Ticks(); len(ticks) > 0 {
						live(strategy, now.Sub(measureStart), ticks[len(ticks)-1])
					}
				}
			}
		}
		t.Stop()
	}
	end := time.Now()
	ph.end.Store(end.UnixNano())
	// Every read still running is cut off now: a client records it with
	// the latency it had reached at end, then stops. Nothing waits for a
	// node that does not answer.
	stopClients()
	ph.abort()
	wg.Wait()
	for _, c := range ph.clients {
		if c.timer != nil {
			c.timer.close()
		}
	}
	res := ph.r.Finish(string(strategy), end)
	if cpu == nil { // interrupted during warmup: nothing was measured
		return nil, context.Canceled
	}
	res.CPU = cpu.Stop()
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), s.brief())
	res.PrimaryCost = cost.Stop(bctx)
	bcancel()
	if cfg.Throttled != nil {
		res.ThrottledSec = map[string]float64{}
		for node, t := range cfg.Throttled() {
			res.ThrottledSec[node] = t - throttled0[node]
		}
	}
	res.Lag = s.lag.Samples(measureStart, end)
	res.TimeLagResolution = metrics.Duration(cfg.Heartbeat)
	s.current.Store(nil)
	res.Events = ph.takeEvents()
	res.RYWChecks, res.RYWViolation = ph.ryw.Load(), ph.rywBad.Load()
	res.BackgroundWrites = bgRows.Load() - bgAtStart
	if res.Unsent > 0 {
		s.warn("%s: %d open-loop reads fell due but were never sent (every client was busy): they are in the end-to-end latency with the time they had waited at the end", strategy, res.Unsent)
	}
	s.warnSlots(strategy, res.Lag)
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
	ph        *phase
	rec       *metrics.ClientRecorder
	rng       *rand.Rand
	conns     []*readConn // to each node, by index
	timer     *waiter     // open loop: how it waits for a slot
	ops       int
	states    []*script.State // by query kind: a pgbench script's variables, nil for other reads
	lastWrite int64           // id of this session's last written row (0 = none)
	lastLSN   uint64          // commit LSN of that write
	backoff   time.Duration
}

func (c *client) closedLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if _, over := c.ph.cutOff(); over {
			return // the phase ended: a read due now is not measured
		}
		c.op(ctx, time.Now())
	}
}

// openLoop runs this client's share of a fixed schedule: slot k is due at
// start + k/rate, and latency counts from the due time, so a slow node's
// queueing is measured rather than hidden (no coordinated omission).
// Slots that fell due inside the measured window but were never sent are
// recorded when the phase ends, with the time they had waited by then.
func (c *client) openLoop(ctx context.Context, start time.Time, id int) {
	cfg := c.ph.s.Config
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	stride := int64(cfg.Clients)
	k := int64(id)
	for ; ctx.Err() == nil; k += stride {
		due := start.Add(time.Duration(k) * interval)
		if !c.timer.until(ctx, due) {
			c.unsent(start, interval, k, stride)
			return
		}
		if _, over := c.ph.cutOff(); over {
			break // the phase ended before this slot was sent
		}
		c.rec.Schedule(time.Since(due))
		c.op(ctx, due)
	}
	c.unsent(start, interval, k, stride)
}

// unsent records this client's slots from k on that fell due inside the
// measured window, before the phase's end, and were never sent.
func (c *client) unsent(start time.Time, interval time.Duration, k, stride int64) {
	endNs, fromNs := c.ph.end.Load(), c.ph.measureFrom.Load()
	if endNs == 0 || fromNs == 0 {
		return
	}
	end, from := time.Unix(0, endNs), time.Unix(0, fromNs)
	due := func(k int64) time.Time { return start.Add(time.Duration(k) * interval) }
	for due(k).Before(from) {
		k += stride
	}
	var n int64
	for due(k + n*stride).Before(end) {
		n++
	}
	c.ph.r.Unsent(due(k), time.Duration(stride)*interval, n, end)
}

// cutOff is the phase's end if it has come: a read interrupted by it is
// recorded as unfinished, at the time it had reached then.
func (ph *phase) cutOff() (time.Time, bool) {
	if e := ph.end.Load(); e != 0 {
		return time.Unix(0, e), true
	}
	return time.Time{}, false
}

// op runs one operation: a session write every sessionEvery ops, else a
// read from the mix (the read right after a session write reads that row).
func (c *client) op(ctx context.Context, due time.Time) {
	ph := c.ph
	c.ops++
	if ph.sessionEvery > 0 && c.ops%ph.sessionEvery == 0 {
		c.sessionWrite(ctx)
		return
	}
	q, kind := ph.queries.pick(c.rng)
	var arg int64
	checkRYW := false
	if c.lastWrite > 0 && ph.queries.point != nil {
		q, kind, arg, checkRYW = ph.queries.point, ph.queries.pointKind, c.lastWrite, true
		c.lastWrite = 0
	} else if q.arg != nil {
		arg = q.arg(c.rng)
	}
	hb := ph.s.hb
	req := routing.Request{MinLSN: c.lastLSN}
	timeout := ph.s.Config.QueryTimeout
	from := due // a first try counts from the read's due time, a retry from its own start
	for try := 1; ; try++ {
		node, err := ph.bal.Pick(req)
		if err != nil {
			now := time.Now()
			if end, over := ph.cutOff(); over {
				c.unfinished(end, due)
				return
			}
			c.rec.Read(now.Sub(due))
			ph.r.Failed(try == 1)
			if try == 1 {
				c.pause(ctx)
			}
			return
		}
		if ph.via < 0 {
			c.backoff = 0 // a via: endpoint is always picked: reset on success below
		}
		start := time.Now()
		hbAtStart, hbFresh := hb.Latest(), hb.Fresh(start)
		var deadline time.Time
		if timeout > 0 {
			deadline = start.Add(timeout)
		}
		var rr readResult
		var qerr error
		conn, rn := node, node // the connection used, the row it is counted on
		if ph.via >= 0 {
			conn = len(ph.s.nodes) + ph.via
		}
		if _, over := ph.cutOff(); over {
			qerr = errNotConnected // the phase ended before this try began
		} else {
			rr, qerr = c.conns[conn].run(ctx, q, kind, arg, deadline, c.states[kind])
		}
		if ph.via >= 0 {
			rn = ph.s.serving(rr)
		}
		now := time.Now()
		timedOut := qerr != nil && !deadline.IsZero() && !now.Before(deadline)
		if qerr == nil {
			c.backoff = 0
			ph.bal.Done(node, routing.OK)
			st := metrics.Unchecked
			if q.builtin && rr.seq >= 0 && hbFresh {
				st = metrics.Fresh
				if rr.seq < hbAtStart {
					st = metrics.Stale
				}
			}
			c.rec.Attempt(rn, kind, now.Sub(from), true, try > 1, st)
			c.rec.Read(now.Sub(due))
			if ph.latencies != nil {
				ph.latencies.ObserveLatency(node, now.Sub(start))
			}
			if rr.replay > 0 && ph.observer != nil {
				ph.observer.ObserveReplay(node, rr.replay)
			}
			if checkRYW && ph.r.Measuring() {
				ph.ryw.Add(1)
				if !rr.found {
					ph.rywBad.Add(1)
				}
			}
			return
		}
		if end, over := ph.cutOff(); over || ctx.Err() != nil {
			// Cut off by the phase's end (or Ctrl-C): not the node's fault,
			// and neither a success nor a failure.
			ph.bal.Done(node, routing.Failed)
			if over {
				c.rec.Attempt(rn, kind, end.Sub(from), false, try > 1, metrics.Unchecked)
				c.unfinished(end, due)
			}
			return
		}
		outcome, label := classify(qerr, timedOut)
		if ph.latencies != nil && timedOut {
			// A read that timed out says the node is slow as surely as a
			// slow success does; a fast failure says nothing of its speed.
			ph.latencies.ObserveLatency(node, now.Sub(start))
		}
		ph.bal.Done(node, outcome)
		c.rec.Attempt(rn, kind, now.Sub(from), false, try > 1, metrics.Unchecked)
		ph.r.Error(rn, label, func() string { return ph.s.sampleMessage(qerr) })
		if ph.via >= 0 && outcome == routing.ConnError {
			// The one endpoint refuses (a proxy restarting): back off as
			// when every node is ejected, or a closed loop spins on it.
			c.pause(ctx)
		}
		if try >= ph.s.Config.MaxTries {
			c.rec.Read(now.Sub(due))
			ph.r.Failed(false)
			return
		}
		req.Exclude |= 1 << uint(node)
		from = now
	}
}

func (c *client) unfinished(end, due time.Time) {
	c.rec.Read(end.Sub(due))
	c.ph.r.Unfinished()
}

// pause backs a client off after a read found no node to run on, so that
// a closed loop does not spin while every node is ejected: 1 ms, doubling
// to 100 ms, until a pick succeeds again.
func (c *client) pause(ctx context.Context) {
	c.backoff = min(max(2*c.backoff, time.Millisecond), 100*time.Millisecond)
	t := time.NewTimer(c.backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// warnSlots warns of each standby whose slot kept more WAL on the primary
// than --slot-warn during the phase: the lab guide's "> 1 GB retained:
// INVESTIGATE".
func (s *Scenario) warnSlots(strategy routing.Strategy, lag []metrics.LagSample) {
	if s.Config.SlotWarn <= 0 {
		return
	}
	most := map[string]int64{}
	var names []string
	for _, l := range lag {
		if l.SlotBytes == nil || *l.SlotBytes <= s.Config.SlotWarn {
			continue
		}
		if _, seen := most[l.Node]; !seen {
			names = append(names, l.Node)
		}
		most[l.Node] = max(most[l.Node], *l.SlotBytes)
	}
	for _, n := range names {
		s.warn("%s: %s's slot made the primary keep up to %.2f GiB of WAL, over --slot-warn %.2f GiB: a standby down, frozen or far behind costs the primary disk (the lab guide: investigate)",
			strategy, n, float64(most[n])/(1<<30), float64(s.Config.SlotWarn)/(1<<30))
	}
}
