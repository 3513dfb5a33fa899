package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// Tables the workload owns; nothing else on a cluster is touched.
var Tables = []string{"orders", metrics.HeartbeatTable}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS orders (
	id          bigserial PRIMARY KEY,
	customer_id int NOT NULL,
	amount      numeric(10,2) NOT NULL,
	status      text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer_created ON orders (customer_id, created_at DESC);
CREATE INDEX IF NOT EXISTS orders_created ON orders (created_at);
CREATE TABLE IF NOT EXISTS ` + metrics.HeartbeatTable + ` (id bigint PRIMARY KEY, seq bigint NOT NULL, at timestamptz NOT NULL);`

// insertSQL adds $1 orders for customers 1..$2 in one statement.
const insertSQL = `INSERT INTO orders (customer_id, amount, status)
	SELECT 1 + floor(random() * $2)::int, round((random() * 1000)::numeric, 2),
	       (ARRAY['new','paid','shipped','delivered'])[1 + floor(random() * 4)::int]
	FROM generate_series(1, $1)`

func customers(scale int) int { return max(1, scale/10) }

// Setup creates the schema if absent, tops orders up to scale rows and
// waits until every standby has replayed it.
func Setup(ctx context.Context, primary *pgxpool.Pool, standbys []*pgxpool.Pool, scale int, heartbeatID int64) error {
	if _, err := primary.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("primary: create schema: %w", err)
	}
	if _, err := primary.Exec(ctx, `INSERT INTO `+metrics.HeartbeatTable+` VALUES ($1, 0, now()) ON CONFLICT (id) DO NOTHING`, heartbeatID); err != nil {
		return fmt.Errorf("primary: heartbeat row: %w", err)
	}
	var n int64
	if err := primary.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	if missing := int64(scale) - n; missing > 0 {
		if _, err := primary.Exec(ctx, insertSQL, missing, customers(scale)); err != nil {
			return fmt.Errorf("primary: seed orders: %w", err)
		}
		if _, err := primary.Exec(ctx, `ANALYZE orders`); err != nil {
			return fmt.Errorf("primary: analyze: %w", err)
		}
	}
	_, err := waitCaughtUp(ctx, primary, standbys, 5*time.Minute)
	return err
}

// insertLSN is the primary's WAL insert position as a number: read in its
// own statement after a commit, it is at or past that commit's record.
func insertLSN(ctx context.Context, primary *pgxpool.Pool) (uint64, error) {
	var lsn int64
	err := primary.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`).Scan(&lsn)
	return uint64(lsn), err
}

// waitCaughtUp waits until every standby has replayed the primary's
// current position and returns when each did, measured from the call.
func waitCaughtUp(ctx context.Context, primary *pgxpool.Pool, standbys []*pgxpool.Pool, limit time.Duration) ([]time.Duration, error) {
	lsn, err := insertLSN(ctx, primary)
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	return waitReplayed(ctx, standbys, lsn, time.Now(), limit)
}

// waitReplayed polls each standby, concurrently, until its replay LSN
// reaches lsn; the durations count from since. A standby that never does
// gets -1.
func waitReplayed(ctx context.Context, standbys []*pgxpool.Pool, lsn uint64, since time.Time, limit time.Duration) ([]time.Duration, error) {
	out := make([]time.Duration, len(standbys))
	errs := make([]error, len(standbys))
	var wg sync.WaitGroup
	for i, s := range standbys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = waitOne(ctx, s, lsn, since, limit)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func waitOne(ctx context.Context, s *pgxpool.Pool, lsn uint64, since time.Time, limit time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(limit)
	for {
		var r int64
		err := s.QueryRow(ctx, `SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint`).Scan(&r)
		if err == nil && uint64(r) >= lsn {
			return time.Since(since), nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("standby did not replay LSN %d within %s", lsn, limit)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
