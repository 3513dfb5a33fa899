package workload

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// WriteProgress is told how many rows are written so far.
type WriteProgress func(done, total int)

// writePhase inserts cfg.WriteRows rows on the primary in batches, then
// measures each standby's catch-up and checks row counts everywhere.
func (s *Scenario) writePhase(ctx context.Context, progress WriteProgress) (*metrics.WritePhase, error) {
	cfg := s.Config
	wp := &metrics.WritePhase{Batch: cfg.WriteBatch, RowCounts: map[string]int64{}, CommitLatency: metrics.NewHist()}
	start := time.Now()
	lastReport := start
	var lastCommit time.Time
	for done := 0; done < cfg.WriteRows; {
		n := min(cfg.WriteBatch, cfg.WriteRows-done)
		wctx, cancel := context.WithTimeout(ctx, controlTimeout)
		t0 := time.Now()
		_, err := s.w().Exec(wctx, insertSQL, n, customers(cfg.Scale))
		cancel()
		if err == nil {
			wp.CommitLatency.RecordUS(time.Since(t0).Microseconds())
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			wp.Errors++
			if wp.Errors > 10 {
				return wp, fmt.Errorf("primary: write phase: %s", s.redact(err.Error()))
			}
			continue
		}
		lastCommit = time.Now()
		done += n
		wp.Rows += int64(n)
		if progress != nil && (time.Since(lastReport) > 200*time.Millisecond || done == cfg.WriteRows) {
			progress(done, cfg.WriteRows)
			lastReport = time.Now()
		}
	}
	if wp.Rows == 0 {
		return wp, ctx.Err()
	}
	wp.Seconds = lastCommit.Sub(start).Seconds()
	if wp.Seconds > 0 {
		wp.RowsPerSec = float64(wp.Rows) / wp.Seconds
	}
	// Catch-up counts from the last commit; its LSN is read right after.
	lsn, err := insertLSN(ctx, s.w())
	if err != nil {
		return wp, fmt.Errorf("primary: %s", s.redact(err.Error()))
	}
	took, werr := s.waitReplayed(ctx, lsn, lastCommit, 2*time.Minute+s.MaxApplyDelay)
	if ctx.Err() != nil {
		return wp, ctx.Err()
	}
	end := time.Now()
	if s.lag != nil {
		// A round asked after catch-up closes the peak window.
		if s.lag.WaitRound(ctx, end, 4*s.Config.LagInterval+time.Second) {
			end = s.lag.Latest().At
		}
	}
	for k, i := range s.standbys() {
		node := s.nodes[i]
		cu := metrics.CatchUp{Node: node.Name, CatchUpMS: -1}
		if k < len(took) && took[k] >= 0 {
			cu.CatchUpMS = float64(took[k]) / float64(time.Millisecond)
		}
		if s.lag != nil {
			cu.PeakLagBytes, cu.PeakLagMS = s.lag.Peak(node.Name, start, end.Add(time.Millisecond))
		}
		wp.Standbys = append(wp.Standbys, cu)
	}
	if werr != nil {
		// A standby that fell silent or never caught up is reported, not a
		// reason to stop measuring the others.
		s.warn("write phase: %v", werr)
	}
	s.countRows(ctx, wp)
	return wp, nil
}

// countRows counts orders on every node that answers; a node that does
// not is left out of the comparison and named.
func (s *Scenario) countRows(ctx context.Context, wp *metrics.WritePhase) {
	counted := 0
	equal := true
	var want int64 = -1
	for i, node := range s.nodes {
		cctx, cancel := context.WithTimeout(ctx, controlTimeout)
		var n int64
		err := s.probes[i].QueryRow(cctx, `SELECT count(*) FROM `+OrdersTable).Scan(&n)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.warn("write phase: %s: could not count %s: %s", node.Name, OrdersTable, s.redact(err.Error()))
			}
			continue
		}
		counted++
		wp.RowCounts[node.Name] = n
		if want >= 0 && n != want {
			equal = false
		}
		want = n
	}
	wp.CountsEqual = equal && counted == len(s.nodes) // only once every node was counted
	if counted == len(s.nodes) && !equal {
		s.warn("%s row counts differ between nodes after the write phase: %v", OrdersTable, wp.RowCounts)
	}
}

// sessionWrite inserts one row on the primary and remembers its commit
// LSN (read after the commit) for causal routing of the next read. It has
// the reads' time limit; a failure is counted on the primary under
// "session_write" and its label, so a slow primary shows where the
// clients' time went.
func (c *client) sessionWrite(ctx context.Context) {
	s := c.ph.s
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if qt := s.Config.QueryTimeout; qt > 0 {
		wctx, cancel = context.WithTimeout(ctx, qt)
	}
	defer cancel()
	var id int64
	w := s.w()
	t0 := time.Now()
	err := w.QueryRow(wctx, `INSERT INTO `+OrdersTable+` (customer_id, amount, status) VALUES ($1, 1, 'session') RETURNING id`,
		1+c.rng.IntN(customers(s.Config.Scale))).Scan(&id)
	if err == nil {
		c.ph.r.Commit(time.Since(t0))
		s.ack([]int64{id})
	}
	var lsn uint64
	if err == nil {
		lsn, err = insertLSN(wctx, w)
	}
	if err != nil {
		if ctx.Err() == nil {
			_, label := classify(err, errors.Is(wctx.Err(), context.DeadlineExceeded))
			c.ph.r.Error(s.prim(), "session_write "+label, func() string { return s.sampleMessage(err) })
			s.writeFailed(ctx, err)
		}
		return
	}
	c.lastWrite, c.lastLSN = id, lsn
}

// backgroundWrites inserts WriteRate rows/s on the primary in small
// batches every 50 ms, so lag exists while reads run.
func (s *Scenario) backgroundWrites(ctx context.Context, rows *atomic.Int64, rec *metrics.Recorder) {
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
		wctx, cancel := context.WithTimeout(ctx, controlTimeout)
		t0 := time.Now()
		ids, err := s.insertReturning(wctx, n)
		cancel()
		if err == nil {
			if rec != nil {
				rec.Commit(time.Since(t0))
			}
			rows.Add(int64(n))
			s.ack(ids)
		} else if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			s.bgErrors.Add(1)
			s.writeFailed(ctx, err)
		}
	}
}

// insertReturning inserts n orders on the primary and returns their ids,
// the acknowledged rows a failover must not lose.
func (s *Scenario) insertReturning(ctx context.Context, n int) ([]int64, error) {
	rows, err := s.w().Query(ctx, insertSQL+` RETURNING id`, n, customers(s.Config.Scale))
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	return ids, rows.Err()
}
