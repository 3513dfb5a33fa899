package workload

import (
	"context"
	"fmt"
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
