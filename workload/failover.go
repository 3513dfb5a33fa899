package workload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/probe"
	"github.com/pgbenchx/pgbenchx/routing"
)

// The primary can change during a run (a failover): the writer, the
// heartbeat, the lag sampler and routing then move to the node that says
// it is out of recovery. These accessors are how the rest of the
// scenario reaches the primary; pmu guards what they return.

// w is the writer: a pool on the current primary.
func (s *Scenario) w() *pgxpool.Pool {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.writer
}

// prim is the index of the current primary.
func (s *Scenario) prim() int {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.primary
}

// outOfService are the nodes that left the cluster (the old primary after
// a failover): no reads, no lag samples, no waits.
func (s *Scenario) outOfService() uint64 {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.gone
}

// Rediscover asks every node in service whether it is in recovery, each
// with a deadline of its own, and when exactly one other node than the
// primary says it is not, makes it the primary: the writer, heartbeat,
// lag sampler and routing move to it, the old primary leaves service,
// and the write outage (from the last commit the old primary
// acknowledged to the first the new one does) is measured. It says
// whether the primary changed. Fault injection calls it after a failover;
// the background writer calls it when the primary stops answering.
func (s *Scenario) Rediscover(ctx context.Context) (bool, error) {
	s.redisc.Lock()
	defer s.redisc.Unlock()
	gone := s.outOfService()
	found := -1
	for i := range s.nodes {
		if gone&(1<<i) != 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		var inRecovery bool
		err := s.probes[i].QueryRow(qctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
		cancel()
		if err != nil || inRecovery {
			continue
		}
		if found >= 0 {
			// Two nodes take writes: report it, move nowhere.
			return false, fmt.Errorf("%s and %s both say they are out of recovery (split brain)", s.nodes[found].Name, s.nodes[i].Name)
		}
		found = i
	}
	old := s.prim()
	if found < 0 || found == old {
		return false, nil
	}
	// The last commit the old primary acknowledged, before anything moves.
	lastAck := s.lastAck()
	writer, err := s.writerPool(s.nodes[found])
	if err != nil {
		return false, err
	}
	s.pmu.Lock()
	oldWriter := s.writer
	s.writer, s.primary = writer, found
	s.gone |= 1 << old
	gone = s.gone
	s.nodes[found].Role = metrics.RolePrimary
	s.pmu.Unlock()
	go oldWriter.Close()

	switched := time.Now()
	if s.hb != nil {
		s.hb.Retarget(writer)
	}
	if s.lag != nil {
		var targets []probe.LagTarget
		for _, i := range s.standbys() {
			targets = append(targets, probe.LagTarget{Name: s.nodes[i].Name, Pool: s.probes[i]})
		}
		s.lag.Retarget(s.probes[found], targets)
	}
	if ph := s.current.Load(); ph != nil {
		ph.bal.SetRoles(found, gone)
	}
	go s.watchOutage(context.WithoutCancel(ctx), s.nodes[old].Name, s.nodes[found].Name, lastAck, switched)
	return true, nil
}

// lastAck is the newest commit the primary acknowledged: a heartbeat
// (every few ms) or a background write.
func (s *Scenario) lastAck() time.Time {
	var t time.Time
	if s.hb != nil {
		t = s.hb.LastCommit()
	}
	if ns := s.lastWriteAck.Load(); ns != 0 && time.Unix(0, ns).After(t) {
		t = time.Unix(0, ns)
	}
	return t
}

// watchOutage waits for the first commit the new primary acknowledges
// and records the outage; it gives up after a minute (then the outage is
// recorded as still open at that time).
func (s *Scenario) watchOutage(ctx context.Context, from, to string, lastAck, switched time.Time) {
	o := metrics.Outage{OldPrimary: from, NewPrimary: to, LastAck: lastAck.UTC()}
	deadline := switched.Add(time.Minute)
	for {
		if t := s.lastAck(); t.After(switched) {
			o.FirstAck = t.UTC()
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
	if !o.FirstAck.IsZero() && !o.LastAck.IsZero() {
		o.Seconds = o.FirstAck.Sub(o.LastAck).Seconds()
	}
	s.mu.Lock()
	s.outages = append(s.outages, o)
	s.mu.Unlock()
	detail := "no commit acknowledged within a minute"
	if o.Seconds > 0 {
		detail = fmt.Sprintf("writes unavailable for %s", time.Duration(o.Seconds*float64(time.Second)).Round(time.Millisecond))
	}
	s.Event("writes-resumed", to, detail)
}

// ack keeps the ids of rows the primary acknowledged: after a failover
// the run counts how many the new primary holds.
func (s *Scenario) ack(ids []int64) {
	s.lastWriteAck.Store(time.Now().UnixNano())
	s.ackMu.Lock()
	s.acked = append(s.acked, ids...)
	s.ackMu.Unlock()
}

func (s *Scenario) ackCount() int {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return len(s.acked)
}

// durability counts the acknowledged rows the current primary holds: a
// row acknowledged by an old primary and missing on the new one was lost
// in a failover (asynchronous replication can lose it; the run reports
// it, never hides it).
func (s *Scenario) durability(ctx context.Context) (*metrics.Durability, error) {
	s.ackMu.Lock()
	ids := append([]int64(nil), s.acked...)
	s.ackMu.Unlock()
	s.mu.Lock()
	outages := append([]metrics.Outage(nil), s.outages...)
	s.mu.Unlock()
	d := &metrics.Durability{AcknowledgedRows: int64(len(ids)), CheckedOn: s.nodes[s.prim()].Name, Outages: outages}
	const chunk = 50000
	var found int64
	for len(ids) > 0 {
		part := ids[:min(chunk, len(ids))]
		ids = ids[len(part):]
		cctx, cancel := context.WithTimeout(ctx, controlTimeout)
		var n int64
		err := s.w().QueryRow(cctx, `SELECT count(*) FROM `+OrdersTable+` WHERE id = ANY($1)`, part).Scan(&n)
		cancel()
		if err != nil {
			return d, fmt.Errorf("%s: counting acknowledged rows: %s", d.CheckedOn, s.redact(err.Error()))
		}
		found += n
	}
	d.RowsLost = d.AcknowledgedRows - found
	return d, nil
}

// writeFailed handles a failed write: when the primary seems gone, look
// for a new one (at most every half second).
func (s *Scenario) writeFailed(ctx context.Context, err error) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	if out, _ := classify(err, false); out != routing.ConnError {
		return
	}
	now := time.Now().UnixNano()
	if last := s.lastRediscover.Load(); now-last < int64(500*time.Millisecond) || !s.lastRediscover.CompareAndSwap(last, now) {
		return
	}
	_, _ = s.Rediscover(ctx)
}
