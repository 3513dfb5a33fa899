package workload

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
)

// Every built-in read returns, first, the heartbeat seq its snapshot saw:
// the same statement, so the same snapshot as the rows it reads. That is
// how a read is judged stale. Second comes the node's replay position (0 on
// the primary), which tells causal routing how far a standby has got
// without waiting for the next lag sample.
const readHead = `SELECT h.seq, coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint, `

var builtinSQL = map[string]string{
	"point": readHead + `o.id IS NOT NULL FROM ` + metrics.HeartbeatTable + ` h
		LEFT JOIN orders o ON o.id = $1 WHERE h.id = $HB`,
	"range": readHead + `o.id, o.amount::float8 FROM ` + metrics.HeartbeatTable + ` h
		LEFT JOIN LATERAL (SELECT id, amount FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20) o ON true
		WHERE h.id = $HB`,
	"report": readHead + `r.n, r.total FROM ` + metrics.HeartbeatTable + ` h,
		LATERAL (SELECT count(*) AS n, coalesce(sum(amount), 0)::float8 AS total FROM orders
		         WHERE id > (SELECT max(id) FROM orders) - 1000) r
		WHERE h.id = $HB`,
}

// query is one prepared read: pgx prepares and caches each statement per
// connection on first use, so the hot path sends only Bind/Execute.
type query struct {
	kind    string
	sql     string
	builtin bool
	arg     func(r *rand.Rand) any
}

// readResult is what a built-in read reports besides its rows.
type readResult struct {
	seq    int64  // heartbeat seq seen, -1 if the query does not report it
	replay uint64 // the node's replay LSN during the read, 0 if unknown
	found  bool   // point read: the row exists
}

// run executes q.
func (q *query) run(ctx context.Context, pool *pgxpool.Pool, arg any) (res readResult, err error) {
	var rows pgx.Rows
	if arg != nil {
		rows, err = pool.Query(ctx, q.sql, arg)
	} else {
		rows, err = pool.Query(ctx, q.sql)
	}
	res.seq = -1
	if err != nil {
		return res, err
	}
	first := true
	for rows.Next() {
		if first && q.builtin {
			var s, r int64
			var f bool
			var scanErr error
			if q.kind == "point" {
				scanErr = rows.Scan(&s, &r, &f)
			} else {
				scanErr = rows.Scan(&s, &r, nil, nil)
			}
			if scanErr == nil {
				res = readResult{seq: s, replay: uint64(r), found: f}
			}
		}
		first = false
	}
	rows.Close()
	return res, rows.Err()
}

// querySet is the mix, ready to draw from.
type querySet struct {
	list      []*query
	cum       []int
	total     int
	point     *query
	pointKind int
}

func (qs *querySet) pick(r *rand.Rand) (*query, int) {
	x := r.IntN(qs.total)
	for i, c := range qs.cum {
		if x < c {
			return qs.list[i], i
		}
	}
	return qs.list[len(qs.list)-1], len(qs.list) - 1
}

// queries builds the query set in the order of cfg.kinds().
func (s *Scenario) queries() *querySet {
	qs := &querySet{}
	add := func(q *query, w int) {
		qs.total += w
		qs.list = append(qs.list, q)
		qs.cum = append(qs.cum, qs.total)
	}
	for _, m := range s.Config.Mix {
		// The heartbeat row is fixed for the run: a literal, not a second
		// bind parameter on every read.
		sql := strings.ReplaceAll(builtinSQL[m.Kind], "$HB", strconv.FormatInt(s.hbID, 10))
		q := &query{kind: m.Kind, sql: sql, builtin: true}
		switch m.Kind {
		case "point":
			q.arg = func(r *rand.Rand) any { return 1 + r.Int64N(max(1, s.maxID.Load())) }
			qs.point, qs.pointKind = q, len(qs.list)
		case "range":
			q.arg = func(r *rand.Rand) any { return 1 + r.IntN(customers(s.Config.Scale)) }
		}
		add(q, m.Weight)
	}
	for _, c := range s.Config.Custom {
		q := &query{kind: c.Name, sql: c.SQL}
		if usesParam(c.SQL) {
			q.arg = func(r *rand.Rand) any { return 1 + r.Int64N(max(1, s.maxID.Load())) }
		}
		add(q, c.Weight)
	}
	return qs
}

func usesParam(sql string) bool {
	for i := 0; i+1 < len(sql); i++ {
		if sql[i] == '$' && sql[i+1] == '1' {
			return true
		}
	}
	return false
}

// classify maps a query error to routing's outcome and our error class.
func classify(err error) (routing.Outcome, string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "40001":
			return routing.Failed, metrics.ErrConflict
		case pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" || pgErr.Code[:2] == "08":
			return routing.ConnError, metrics.ErrConnection
		case pgErr.Code == "57014":
			return routing.Failed, metrics.ErrTimeout
		}
		return routing.Failed, metrics.ErrQuery
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return routing.ConnError, metrics.ErrTimeout
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) || errors.As(err, &netErr) || errors.Is(err, net.ErrClosed) {
		return routing.ConnError, metrics.ErrConnection
	}
	// Anything else without a SQLSTATE is the connection failing.
	return routing.ConnError, metrics.ErrConnection
}
