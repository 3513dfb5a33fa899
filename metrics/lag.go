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
	Known     bool // the standby answered this sample
	Bytes     int64
	TimeKnown bool
	Time      time.Duration
	ReplayLSN uint64
}

// LagSnapshot is one sample round, published whole so readers (routing)
// see a consistent set without locks.
type LagSnapshot struct {
	At    time.Time
	Seq   uint64
	Nodes map[string]NodeLag
}

// LagTarget is a standby the sampler watches.
type LagTarget struct {
	Name string
	Pool *pgxpool.Pool
}

// LagSampler samples every standby's lag each interval. The primary's LSN
// is read once per round, before the standbys, and every standby of the
// round is compared with that one reading: two primary readings per figure
// would show false lag under WAL bursts.
type LagSampler struct {
	Primary  *pgxpool.Pool
	Standbys []LagTarget
	Interval time.Duration
	HB       *Heartbeat

	snap atomic.Pointer[LagSnapshot]
	seq  atomic.Uint64

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

// Sample takes one round now.
func (l *LagSampler) Sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(l.Interval*5, time.Second))
	defer cancel()
	type psr struct {
		replay *int64
		lagMS  *float64
	}
	var primaryLSN int64
	psrs := map[string]psr{}
	rows, err := l.Primary.Query(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,
		r.application_name, pg_wal_lsn_diff(r.replay_lsn, '0/0')::bigint, extract(epoch FROM r.replay_lag) * 1000
		FROM (SELECT 1) one LEFT JOIN pg_stat_replication r ON true`)
	primaryOK := err == nil
	if err == nil {
		for rows.Next() {
			var name *string
			var p psr
			if rows.Scan(&primaryLSN, &name, &p.replay, &p.lagMS) == nil && name != nil {
				psrs[*name] = p
			}
		}
		rows.Close()
		primaryOK = rows.Err() == nil
	}
	now := time.Now()
	type result struct {
		replay int64
		seq    int64
		err    error
	}
	res := make([]result, len(l.Standbys))
	var wg sync.WaitGroup
	for i, s := range l.Standbys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].err = s.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
				(SELECT seq FROM `+HeartbeatTable+` WHERE id = $1)`, l.hbID()).Scan(&res[i].replay, &res[i].seq)
		}()
	}
	wg.Wait()
	seen := time.Now()
	snap := &LagSnapshot{At: now, Nodes: make(map[string]NodeLag, len(l.Standbys))}
	l.mu.Lock()
	for i, s := range l.Standbys {
		var nl NodeLag
		sample := LagSample{Node: s.Name}
		if res[i].err == nil {
			nl.ReplayLSN = uint64(res[i].replay)
			if primaryOK {
				nl.Known = true
				nl.Bytes = max(0, primaryLSN-res[i].replay)
				b := nl.Bytes
				sample.Bytes = &b
			}
			if l.HB != nil {
				if d, ok := l.HB.Lag(res[i].seq, seen); ok {
					nl.TimeKnown, nl.Time = true, d
					ms := float64(d) / float64(time.Millisecond)
					sample.MS = &ms
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
