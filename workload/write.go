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
	wp := &metrics.WritePhase{Batch: cfg.WriteBatch, RowCounts: map[string]int64{}}
	start := time.Now()
	lastReport := start
	var lastCommit time.Time
	for done := 0; done < cfg.WriteRows; {
		n := min(cfg.WriteBatch, cfg.WriteRows-done)
		if _, err := s.writer.Exec(ctx, insertSQL, n, customers(cfg.Scale)); err != nil {
			if ctx.Err() != nil {
				break
			}
			wp.Errors++
			if wp.Errors > 10 {
				return wp, fmt.Errorf("primary: write phase: %w", err)
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
	lsn, err := insertLSN(ctx, s.writer)
	if err != nil {
		return wp, fmt.Errorf("primary: %w", err)
	}
	took, werr := waitReplayed(ctx, s.pools[1:], lsn, lastCommit, 2*time.Minute+s.MaxApplyDelay)
	end := time.Now()
	if s.lag != nil {
		s.lag.Sample(ctx) // a last sample at catch-up, so the peak window is closed
	}
	for i, node := range s.nodes[1:] {
		cu := metrics.CatchUp{Node: node.Name, CatchUpMS: -1}
		if i < len(took) && took[i] >= 0 {
			cu.CatchUpMS = float64(took[i]) / float64(time.Millisecond)
		}
		if s.lag != nil {
			cu.PeakLagBytes, cu.PeakLagMS = s.lag.Peak(node.Name, start, end.Add(time.Millisecond))
		}
		wp.Standbys = append(wp.Standbys, cu)
	}
	if werr != nil {
		return wp, werr
	}
	equal := true
	var want int64 = -1
	for i, node := range s.nodes {
		var n int64
		if err := s.pools[i].QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil {
			return wp, fmt.Errorf("%s: count orders: %w", node.Name, err)
		}
		wp.RowCounts[node.Name] = n
		if want >= 0 && n != want {
			equal = false
		}
		want = n
	}
	wp.CountsEqual = equal // only once every node was counted
	return wp, nil
}
