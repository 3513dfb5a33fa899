package probe

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// NodeLag is one standby's lag at the last sample.
type NodeLag struct {
	Known      bool // the standby answered (this round, or late for the last)
	BytesKnown bool // ... and the primary answered in the standby's round
	Bytes      int64
	TimeKnown  bool
	Time       time.Duration // lower bound of the time lag
	TimeUpper  time.Duration // upper bound
	ReplayLSN  uint64
}

// LagSnapshot is one sample round, published whole so readers (routing)
// see a consistent set without locks.
type LagSnapshot struct {
	At    time.Time
	Seq   uint64
	Nodes map[string]NodeLag
	// Slots is the WAL each standby's slot keeps on the primary, by
	// standby; nil when the primary did not answer.
	Slots map[string]int64
}

// LagTarget is a standby the sampler watches, through a pool of its own
// so that a stuck read pool never delays a sample.
type LagTarget struct {
	Name string
	Pool *pgxpool.Pool
}

// LagSampler samples every standby's lag each interval. The primary's LSN
// is read once per round, and every standby of the round is compared with
// that one reading: two primary readings per figure would show false lag
// under WAL bursts.
//
// Every node is asked at once, each with a deadline of its own: a round
// waits at most Wait for the answers, and a node that has not answered by
// then is unknown for that round and is asked again only once its
// question has ended (a slow node is not hammered). An answer that comes
// after its round closed is published in the next round, with its own
// times and its own round's primary reading: a slow but live standby (a
// CPU-capped one) is late, not unknown. A frozen node never delays
// another node's figures, and each standby's time lag is timed on its own
// answer.
type LagSampler struct {
	Primary  *pgxpool.Pool
	Standbys []LagTarget
	Interval time.Duration
	// Wait is how long a round waits for the answers; default the
	// interval, at least 100 ms.
	Wait time.Duration
	HB   *Heartbeat
	// HBTable is the heartbeat table the standbys are asked about.
	HBTable string

	snap atomic.Pointer[LagSnapshot]
	seq  atomic.Uint64

	// cfgMu guards Primary, Standbys and nodes, which Retarget changes
	// after a failover; a round works on the set it started with.
	cfgMu sync.Mutex
	nodes []nodeProbe // 0 the primary, i the standby i-1

	mu      sync.Mutex
	samples []timedSample
}

// nodeProbe is what the sampler keeps of one node between rounds.
type nodeProbe struct {
	busy atomic.Bool // a question is open
	late atomic.Pointer[lateAnswer]
}

type lateAnswer struct {
	a     standbyAnswer
	round *round
}

type timedSample struct {
	at time.Time
	s  metrics.LagSample
}

// round is one sampling round: its primary reading and the standbys'
// answers that came in before it closed.
type round struct {
	at time.Time

	mu         sync.Mutex
	closed     bool
	primaryOK  bool
	primaryLSN int64
	psrs       map[string]psr
	slots      map[string]int64 // WAL retained per standby's slot
	answers    []*standbyAnswer
}

func (l *LagSampler) hbID() int64 {
	if l.HB != nil {
		return l.HB.ID
	}
	return 1
}

func (l *LagSampler) wait() time.Duration {
	if l.Wait > 0 {
		return l.Wait
	}
	return max(l.Interval, 100*time.Millisecond)
}

// Latest is the last published round (nil before the first).
func (l *LagSampler) Latest() *LagSnapshot { return l.snap.Load() }

// Run samples until ctx ends. Rounds never overlap: Run is the only
// caller of sample.
func (l *LagSampler) Run(ctx context.Context) {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for {
		l.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WaitRound waits until a round that began after t is published, or
// until limit passes or ctx ends; it says whether one was.
func (l *LagSampler) WaitRound(ctx context.Context, t time.Time, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if s := l.Latest(); s != nil && s.At.After(t) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type psr struct {
	replay *int64
	lagMS  *float64
}

type standbyAnswer struct {
	replay, seq, latest int64
	send, recv          time.Time
}

// ask runs q on node i unless its last question is still open; q gets a
// longer deadline of its own than the round's wait, and files its answer
// itself (in its round, or as late). It returns false when node i was not
// asked.
func (l *LagSampler) ask(ctx context.Context, nodes []nodeProbe, i int, wg *sync.WaitGroup, q func(context.Context) error) bool {
	n := &nodes[i]
	if !n.busy.CompareAndSwap(false, true) {
		return false
	}
	wg.Add(1)
	go func() {
		defer n.busy.Store(false)
		defer wg.Done()
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(10*l.wait(), 2*time.Second))
		defer cancel()
		_ = q(qctx)
	}()
	return true
}

// Retarget makes the sampler watch another set of nodes from its next
// round on: after a failover, the new primary and the standbys that
// follow it.
func (l *LagSampler) Retarget(primary *pgxpool.Pool, standbys []LagTarget) {
	l.cfgMu.Lock()
	defer l.cfgMu.Unlock()
	l.Primary, l.Standbys = primary, standbys
	l.nodes = make([]nodeProbe, 1+len(standbys))
}

// sample takes one round now.
func (l *LagSampler) sample(ctx context.Context) {
	l.cfgMu.Lock()
	if len(l.nodes) != 1+len(l.Standbys) {
		l.nodes = make([]nodeProbe, 1+len(l.Standbys))
	}
	primary, standbys, nodes := l.Primary, l.Standbys, l.nodes
	l.cfgMu.Unlock()
	rd := &round{at: time.Now(), answers: make([]*standbyAnswer, len(standbys))}
	var wg sync.WaitGroup
	l.ask(ctx, nodes, 0, &wg, func(ctx context.Context) error {
		rows, err := primary.Query(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,
			r.application_name, pg_wal_lsn_diff(r.replay_lsn, '0/0')::bigint, extract(epoch FROM r.replay_lag) * 1000
			FROM (SELECT 1) one LEFT JOIN pg_stat_replication r ON true`)
		if err != nil {
			return err
		}
		var lsn int64
		got := map[string]psr{}
		for rows.Next() {
			var name *string
			var p psr
			if err := rows.Scan(&lsn, &name, &p.replay, &p.lagMS); err == nil && name != nil {
				got[*name] = p
			}
		}
		rows.Close()
		if rows.Err() != nil {
			return rows.Err()
		}
		// Best effort: a slot query that fails or runs late costs the
		// round its slot figures (unknown), never the lag it measured.
		slots, err := l.slots(ctx, primary)
		if err != nil {
			slots = nil
		}
		// A late primary answer still serves its round's late standbys.
		rd.mu.Lock()
		rd.primaryOK, rd.primaryLSN, rd.psrs, rd.slots = true, lsn, got, slots
		rd.mu.Unlock()
		return nil
	})
	for i, s := range standbys {
		l.ask(ctx, nodes, i+1, &wg, func(ctx context.Context) error {
			var a standbyAnswer
			a.send = time.Now()
			if l.HB != nil {
				a.latest = l.HB.Latest()
			}
			err := s.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
				(SELECT seq FROM `+l.HBTable+` WHERE id = $1)`, l.hbID()).Scan(&a.replay, &a.seq)
			a.recv = time.Now()
			if err != nil {
				return err
			}
			rd.mu.Lock()
			if rd.closed {
				nodes[i+1].late.Store(&lateAnswer{a, rd})
			} else {
				rd.answers[i] = &a
			}
			rd.mu.Unlock()
			return nil
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(l.wait())
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	rd.mu.Lock()
	rd.closed = true
	rd.mu.Unlock()
	l.publish(rd, standbys, nodes)
}

// slots reads the WAL each physical slot keeps on the primary, by the
// standby it serves: the one streaming through it (pg_stat_replication),
// else the standby whose name the slot carries (an env's standbyN_slot):
// a slot matters most while its standby is away.
func (l *LagSampler) slots(ctx context.Context, primary *pgxpool.Pool) (map[string]int64, error) {
	rows, err := primary.Query(ctx, `SELECT s.slot_name, r.application_name,
		pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.restart_lsn)::bigint
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_type = 'physical' AND s.restart_lsn IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var slot string
		var app *string
		var kept int64
		if err := rows.Scan(&slot, &app, &kept); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(slot, "_slot")
		if app != nil && *app != "" {
			name = *app
		}
		out[name] = max(0, kept)
	}
	return out, rows.Err()
}

// figures turns a standby's answer into its lag, against the primary
// reading of the round it was asked in.
func (l *LagSampler) figures(name string, a standbyAnswer, of *round) (NodeLag, metrics.LagSample) {
	nl := NodeLag{Known: true, ReplayLSN: uint64(a.replay)}
	sample := metrics.LagSample{Node: name}
	of.mu.Lock()
	primaryOK, primaryLSN, p, hasPSR := of.primaryOK, of.primaryLSN, psr{}, false
	if of.psrs != nil {
		p, hasPSR = of.psrs[name]
	}
	of.mu.Unlock()
	if primaryOK {
		nl.BytesKnown = true
		nl.Bytes = max(0, primaryLSN-a.replay)
		b := nl.Bytes
		sample.Bytes = &b
		if hasPSR && p.replay != nil {
			pb := max(0, primaryLSN-*p.replay)
			sample.PSRBytes = &pb
		}
	}
	if hasPSR {
		sample.ReplayLag = p.lagMS
	}
	sample.SlotBytes = slotOf(of, name)
	if l.HB != nil {
		if lo, hi, ok := l.HB.Lag(a.seq, a.latest, a.send, a.recv); ok {
			nl.TimeKnown, nl.Time, nl.TimeUpper = true, lo, hi
			ms, msHi := float64(lo)/float64(time.Millisecond), float64(hi)/float64(time.Millisecond)
			sample.MS, sample.MSUpper = &ms, &msHi
		}
	}
	return nl, sample
}

// publish makes a closed round what routing and the reports see: each
// standby's answer of this round, else a late answer of an earlier one,
// else unknown.
func (l *LagSampler) publish(rd *round, standbys []LagTarget, nodes []nodeProbe) {
	snap := &LagSnapshot{At: rd.at, Nodes: make(map[string]NodeLag, len(standbys))}
	l.mu.Lock()
	for i, s := range standbys {
		var nl NodeLag
		sample := metrics.LagSample{Node: s.Name}
		at := rd.at
		if a := rd.answers[i]; a != nil {
			nl, sample = l.figures(s.Name, *a, rd)
		} else if la := nodes[i+1].late.Swap(nil); la != nil {
			nl, sample = l.figures(s.Name, la.a, la.round)
			at = la.round.at
		} else {
			rd.mu.Lock()
			if p, ok := rd.psrs[s.Name]; ok {
				sample.ReplayLag = p.lagMS
			}
			rd.mu.Unlock()
			// A standby that does not answer still has a slot: what it
			// costs the primary is known.
			sample.SlotBytes = slotOf(rd, s.Name)
		}
		snap.Nodes[s.Name] = nl
		l.samples = append(l.samples, timedSample{at, sample})
	}
	l.mu.Unlock()
	rd.mu.Lock()
	snap.Slots = rd.slots
	rd.mu.Unlock()
	snap.Seq = l.seq.Add(1)
	l.snap.Store(snap)
}

// Samples returns the samples taken in [from, to), their T relative to
// from, in the order they were asked (a late answer is published a round
// later than it was asked).
func (l *LagSampler) Samples(from, to time.Time) []metrics.LagSample {
	l.mu.Lock()
	all := slices.Clone(l.samples)
	l.mu.Unlock()
	slices.SortStableFunc(all, func(a, b timedSample) int { return a.at.Compare(b.at) })
	var out []metrics.LagSample
	for _, ts := range all {
		if !ts.at.Before(from) && ts.at.Before(to) {
			s := ts.s
			s.T = ts.at.Sub(from).Seconds()
			out = append(out, s)
		}
	}
	return out
}

// Peak is a node's largest known lag in [from, to); -1 when no sample of
// that kind was known (a standby that never answered has no peak, not 0).
// The time peak is the largest lower bound: the lag the standby certainly
// had.
func (l *LagSampler) Peak(node string, from, to time.Time) (bytes int64, ms float64) {
	bytes, ms = -1, -1
	for _, s := range l.Samples(from, to) {
		if s.Node != node {
			continue
		}
		if s.Bytes != nil {
			bytes = max(bytes, *s.Bytes)
		}
		if s.MS != nil {
			ms = max(ms, *s.MS)
		}
	}
	return bytes, ms
}

// Current returns the last round's lag per standby, for live lines and
// the per-second time series.
func (l *LagSampler) Current() metrics.TickLag {
	snap := l.Latest()
	if snap == nil {
		return metrics.TickLag{}
	}
	out := metrics.TickLag{Bytes: map[string]int64{}, MS: map[string]float64{}}
	for name, n := range snap.Nodes {
		if n.BytesKnown {
			out.Bytes[name] = n.Bytes
		}
		if n.TimeKnown {
			out.MS[name] = float64(n.Time) / float64(time.Millisecond)
		}
	}
	if len(snap.Slots) > 0 {
		out.Slots = maps.Clone(snap.Slots)
	}
	return out
}

// slotOf is the WAL the standby's slot kept in the round, nil if unknown.
func slotOf(rd *round, name string) *int64 {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if v, ok := rd.slots[name]; ok {
		return &v
	}
	return nil
}
