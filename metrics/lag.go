package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// NodeLag is one standby's lag at the last sample.
type NodeLag struct {
	Known     bool // the standby (and the primary) answered this round
	Bytes     int64
	TimeKnown bool
	Time      time.Duration // lower bound of the time lag
	TimeUpper time.Duration // upper bound
	ReplayLSN uint64
}

// LagSnapshot is one sample round, published whole so readers (routing)
// see a consistent set without locks.
type LagSnapshot struct {
	At    time.Time
	Seq   uint64
	Nodes map[string]NodeLag
}

// LagTarget is a standby the sampler watches, through a pool of its own
// so that a stuck read pool never delays a sample.
type LagTarget struct {
	Name string
	Pool *pgxpool.Pool
}

// LagSampler samples every standby's lag each interval. The primary's LSN
// is read once per round, before the standbys, and every standby of the
// round is compared with that one reading: two primary readings per figure
// would show false lag under WAL bursts.
//
// Each node is asked with a deadline of its own: a round waits at most
// Wait for an answer, and a node that has not answered by then is unknown
// for that round and asked again only once its question has ended (it is
// given a longer deadline, so a slow node is not hammered). A frozen node
// therefore never delays another node's figures, and each standby's time
// lag is timed on its own answer.
type LagSampler struct {
	Primary  *pgxpool.Pool
	Standbys []LagTarget
	Interval time.Duration
	// Wait is how long a round waits for a node; default the interval, at
	// least 100 ms.
	Wait time.Duration
	HB   *Heartbeat
	// HBTable is the heartbeat table the standbys are asked about.
	HBTable string

	snap atomic.Pointer[LagSnapshot]
	seq  atomic.Uint64
	busy []atomic.Bool // by node: 0 the primary, i the standby i-1
	once sync.Once

	mu      sync.Mutex
	samples []timedSample
}

type timedSample struct {
	at time.Time
	s  LagSample
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

// Run samples until ctx ends.
func (l *LagSampler) Run(ctx context.Context) {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for {
		l.Sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ask runs q against node i of l unless its previous question is still
// open, and waits for the answer at most until the round's end. q gets a
// context with a longer deadline of its own; an answer that arrives after
// the round's end is dropped. ok is false when node i is unknown for this
// round.
func ask[T any](ctx context.Context, l *LagSampler, i int, roundEnd time.Time, q func(context.Context) (T, error)) (v T, ok bool) {
	if !l.busy[i].CompareAndSwap(false, true) {
		return v, false
	}
	type answer struct {
		v   T
		err error
	}
	done := make(chan answer, 1)
	go func() {
		defer l.busy[i].Store(false)
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(10*l.wait(), 2*time.Second))
		defer cancel()
		v, err := q(qctx)
		done <- answer{v, err}
	}()
	t := time.NewTimer(time.Until(roundEnd))
	defer t.Stop()
	select {
	case a := <-done:
		return a.v, a.err == nil
	case <-t.C:
	case <-ctx.Done():
	}
	return v, false
}

type psr struct {
	replay *int64
	lagMS  *float64
}

type standbyAnswer struct {
	replay, seq, latest int64
	send, recv          time.Time
}

// Sample takes one round now.
func (l *LagSampler) Sample(ctx context.Context) {
	l.once.Do(func() { l.busy = make([]atomic.Bool, 1+len(l.Standbys)) })
	now := time.Now()
	type primaryAnswer struct {
		lsn  int64
		psrs map[string]psr
	}
	pa, primaryOK := ask(ctx, l, 0, now.Add(l.wait()), func(ctx context.Context) (primaryAnswer, error) {
		a := primaryAnswer{psrs: map[string]psr{}}
		rows, err := l.Primary.Query(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,
			r.application_name, pg_wal_lsn_diff(r.replay_lsn, '0/0')::bigint, extract(epoch FROM r.replay_lag) * 1000
			FROM (SELECT 1) one LEFT JOIN pg_stat_replication r ON true`)
		if err != nil {
			return a, err
		}
		for rows.Next() {
			var name *string
			var p psr
			if err := rows.Scan(&a.lsn, &name, &p.replay, &p.lagMS); err == nil && name != nil {
				a.psrs[*name] = p
			}
		}
		rows.Close()
		return a, rows.Err()
	})
	primaryLSN, psrs := pa.lsn, pa.psrs
	answers := make([]standbyAnswer, len(l.Standbys))
	oks := make([]bool, len(l.Standbys))
	roundEnd := time.Now().Add(l.wait())
	var wg sync.WaitGroup
	for i, s := range l.Standbys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], oks[i] = ask(ctx, l, i+1, roundEnd, func(ctx context.Context) (standbyAnswer, error) {
				var a standbyAnswer
				a.send = time.Now()
				if l.HB != nil {
					a.latest = l.HB.Latest()
				}
				err := s.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
					(SELECT seq FROM `+l.HBTable+` WHERE id = $1)`, l.hbID()).Scan(&a.replay, &a.seq)
				a.recv = time.Now()
				return a, err
			})
		}()
	}
	wg.Wait()
	snap := &LagSnapshot{At: now, Nodes: make(map[string]NodeLag, len(l.Standbys))}
	l.mu.Lock()
	for i, s := range l.Standbys {
		var nl NodeLag
		sample := LagSample{Node: s.Name}
		if a := answers[i]; oks[i] {
			nl.ReplayLSN = uint64(a.replay)
			if primaryOK {
				nl.Known = true
				nl.Bytes = max(0, primaryLSN-a.replay)
				b := nl.Bytes
				sample.Bytes = &b
			}
			if l.HB != nil {
				if lo, hi, ok := l.HB.Lag(a.seq, a.latest, a.send, a.recv); ok {
					nl.TimeKnown, nl.Time, nl.TimeUpper = true, lo, hi
					ms, msHi := float64(lo)/float64(time.Millisecond), float64(hi)/float64(time.Millisecond)
					sample.MS, sample.MSUpper = &ms, &msHi
				}
			}
		}
		if p, ok := psrs[s.Name]; ok {
			if p.replay != nil && primaryOK {
				b := max(0, primaryLSN-*p.replay)
				sample.PSRBytes = &b
			}
			sample.ReplayLag = p.lagMS
		}
		snap.Nodes[s.Name] = nl
		l.samples = append(l.samples, timedSample{now, sample})
	}
	l.mu.Unlock()
	snap.Seq = l.seq.Add(1)
	l.snap.Store(snap)
}

// Samples returns the samples taken in [from, to), their T relative to from.
func (l *LagSampler) Samples(from, to time.Time) []LagSample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LagSample
	for _, ts := range l.samples {
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
func (l *LagSampler) Current() (map[string]int64, map[string]float64) {
	snap := l.Latest()
	if snap == nil {
		return nil, nil
	}
	b, ms := map[string]int64{}, map[string]float64{}
	for name, n := range snap.Nodes {
		if n.Known {
			b[name] = n.Bytes
		}
		if n.TimeKnown {
			ms[name] = float64(n.Time) / float64(time.Millisecond)
		}
	}
	return b, ms
}
