package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tables the workload writes: env verify compares their row counts on
// every node.
var Tables = []string{OrdersTable, HeartbeatTable}

// insertSQL adds $1 orders for customers 1..$2 in one statement.
const insertSQL = `INSERT INTO ` + OrdersTable + ` (customer_id, amount, status)
	SELECT 1 + floor(random() * $2)::int, round((random() * 1000)::numeric, 2),
	       (ARRAY['new','paid','shipped','delivered'])[1 + floor(random() * 4)::int]
	FROM generate_series(1, $1)`

func customers(scale int) int { return max(1, scale/10) }

// seed adds this run's heartbeat row, tops orders up to scale rows and
// waits until every standby has replayed it. A standby that does not
// answer fails the run here, before anything is measured.
func (s *Scenario) seed(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, controlTimeout)
	_, err := s.w().Exec(cctx, `INSERT INTO `+HeartbeatTable+` VALUES ($1, 0, now()) ON CONFLICT (id) DO NOTHING`, s.hbID)
	cancel()
	if err != nil {
		return fmt.Errorf("primary: %s", s.redact(err.Error()))
	}
	// Counted and topped up under a lock: load generators starting at
	// once (run --start-at on several machines) would each add what is
	// missing, and seed twice the scale.
	// Read committed whatever the server's default: the count must see a
	// seed committed while this transaction waited for the lock.
	tx, err := s.w().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("primary: %s", s.redact(err.Error()))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var n int64
	if _, err = tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock($1)`, SeedLockKey); err == nil {
		err = tx.QueryRow(ctx, `SELECT count(*) FROM `+OrdersTable).Scan(&n)
	}
	if err != nil {
		return fmt.Errorf("primary: %s", s.redact(err.Error()))
	}
	missing := int64(s.Config.Scale) - n
	if missing > 0 {
		if _, err := tx.Exec(ctx, insertSQL, missing, customers(s.Config.Scale)); err != nil {
			return fmt.Errorf("primary: seed %s: %s", OrdersTable, s.redact(err.Error()))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("primary: seed %s: %s", OrdersTable, s.redact(err.Error()))
	}
	if missing > 0 {
		if _, err := s.w().Exec(ctx, `ANALYZE `+OrdersTable); err != nil {
			return fmt.Errorf("primary: analyze: %s", s.redact(err.Error()))
		}
	}
	_, err = s.waitCaughtUp(ctx, 5*time.Minute+s.MaxApplyDelay)
	return err
}

// insertLSN is the primary's WAL insert position as a number: read in its
// own statement after a commit, it is at or past that commit's record.
func insertLSN(ctx context.Context, primary *pgxpool.Pool) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	var lsn int64
	err := primary.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`).Scan(&lsn)
	return uint64(lsn), err
}

// waitCaughtUp waits until every standby has replayed the primary's
// current position and returns when each did, measured from the call.
func (s *Scenario) waitCaughtUp(ctx context.Context, limit time.Duration) ([]time.Duration, error) {
	lsn, err := insertLSN(ctx, s.w())
	if err != nil {
		return nil, fmt.Errorf("primary: %s", s.redact(err.Error()))
	}
	return s.waitReplayed(ctx, lsn, time.Now(), limit)
}

// waitReplayed polls each standby (in s.standbys() order), concurrently,
// until its replay LSN reaches lsn; the durations count from since. A standby that never does
// within limit, or stops answering, gets -1 and its error, named.
func (s *Scenario) waitReplayed(ctx context.Context, lsn uint64, since time.Time, limit time.Duration) ([]time.Duration, error) {
	standbys := s.standbys()
	out := make([]time.Duration, len(standbys))
	errs := make([]error, len(standbys))
	var wg sync.WaitGroup
	for k, i := range standbys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[k], errs[k] = waitOne(ctx, s.probes[i], lsn, since, limit)
			if errs[k] != nil && !errors.Is(errs[k], context.Canceled) {
				errs[k] = fmt.Errorf("%s: %s", s.nodes[i].Name, s.redact(errs[k].Error()))
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// notAnswering is how long a standby may go without answering a poll
// before it is given up on: a frozen node must not hold a run for the
// whole catch-up limit, which is for slow replay, not silence.
const notAnswering = 3 * time.Second

func waitOne(ctx context.Context, p *pgxpool.Pool, lsn uint64, since time.Time, limit time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(limit)
	lastAnswer := time.Now()
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		var r int64
		err := p.QueryRow(qctx, `SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint`).Scan(&r)
		cancel()
		switch {
		case ctx.Err() != nil:
			return -1, ctx.Err()
		case err == nil && uint64(r) >= lsn:
			return time.Since(since), nil
		case err == nil:
			lastAnswer = time.Now()
		case time.Since(lastAnswer) > notAnswering:
			return -1, fmt.Errorf("does not answer (%v)", err)
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("did not replay LSN %d within %s", lsn, limit)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
