package env

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Check is one success criterion of the lab and its verdict.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// Everything pgbenchx creates on a cluster lives in its own schema, marked
// as its own when created; env cannot import workload, so the schema's
// name, mark and lock are repeated here and a test in cmd/pgbenchx checks
// that both packages agree.
const (
	// Schema is pgbenchx's own schema (workload.Schema).
	Schema = "pgbenchx"
	// SchemaMarker is the comment on a schema pgbenchx created
	// (workload.SchemaMarker): a pgbenchx schema without it is a user's,
	// and Verify writes nothing into it.
	SchemaMarker = "pgbenchx: created by pgbenchx; pgbenchx clean drops it"
	// SchemaLockKey is the transaction-level advisory lock held while the
	// schema is checked and created (workload.SchemaLockKey).
	SchemaLockKey int64 = 0x706762656e636878
	// ProbeTable is the table Verify writes on the primary and counts on
	// every standby.
	ProbeTable = Schema + ".probe"
)

// probeRows is how many rows Verify writes each time.
const probeRows = 1000

// VerifyOptions adds checks that depend on what ran on the cluster.
type VerifyOptions struct {
	// Tables whose row counts must be equal on every node (a workload's
	// tables, once it has run).
	Tables []string
}

// Verify runs the success criteria of the manual lab. Every check runs
// even when an earlier one fails, so one report names every problem.
func Verify(ctx context.Context, c *Cluster, opts ...VerifyOptions) []Check {
	var o VerifyOptions
	for _, x := range opts {
		o.Tables = append(o.Tables, x.Tables...)
	}
	conns, errs := connectAll(ctx, c)
	defer closeAll(ctx, conns)
	var checks []Check
	if len(errs) > 0 {
		checks = append(checks, Check{"connect", false, joinErrs(errs)})
	}
	st := status(ctx, c, conns, errs)
	checks = append(checks, checkStreaming(c, st), checkSlots(c, st), checkRecovery(c, st))
	checks = append(checks, checkRows(ctx, c, conns, o.Tables))
	checks = append(checks, checkReadOnly(ctx, c, conns), checkLag(c, st))
	return checks
}

func joinErrs(errs map[string]error) string {
	var parts []string
	for _, e := range errs {
		parts = append(parts, e.Error())
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func standbyStatus(st []NodeStatus) []NodeStatus {
	var out []NodeStatus
	for _, s := range st {
		if s.Role == RoleStandby {
			out = append(out, s)
		}
	}
	return out
}

func checkStreaming(c *Cluster, st []NodeStatus) Check {
	ch := Check{Name: "streaming", Pass: true}
	var parts []string
	for _, s := range standbyStatus(st) {
		if s.State != "streaming" {
			ch.Pass = false
		}
		parts = append(parts, fmt.Sprintf("%s %s from %s", s.Node, s.State, s.Upstream))
	}
	ch.Detail = fmt.Sprintf("%d standbys in pg_stat_replication: %s", len(c.Standbys), strings.Join(parts, ", "))
	if len(c.Standbys) == 0 {
		ch.Detail = "no standbys in this env"
	}
	return ch
}

func checkSlots(c *Cluster, st []NodeStatus) Check {
	ch := Check{Name: "slots", Pass: true}
	var parts []string
	for _, s := range standbyStatus(st) {
		n, _ := c.Node(s.Node)
		state := "missing"
		if s.SlotActive != nil {
			state = "inactive"
			if *s.SlotActive {
				state = "active"
			}
		}
		if state != "active" {
			ch.Pass = false
		}
		parts = append(parts, fmt.Sprintf("%s on %s %s", n.Slot, s.Upstream, state))
	}
	ch.Detail = "one slot per standby: " + dashIfEmpty(strings.Join(parts, ", "))
	return ch
}

func checkRecovery(c *Cluster, st []NodeStatus) Check {
	ch := Check{Name: "recovery", Pass: true}
	var parts []string
	for _, s := range st {
		want := s.Role == RoleStandby
		got := "unknown"
		if s.InRecovery != nil {
			got = fmt.Sprint(*s.InRecovery)
			if *s.InRecovery != want {
				ch.Pass = false
			}
		} else {
			ch.Pass = false
		}
		parts = append(parts, fmt.Sprintf("%s %s", s.Node, got))
	}
	ch.Detail = "pg_is_in_recovery(): " + strings.Join(parts, ", ")
	return ch
}

// checkRows writes probe rows on the primary, waits until every standby
// has replayed that commit's LSN, then compares row counts.
func checkRows(ctx context.Context, c *Cluster, conns map[string]*pgx.Conn, tables []string) Check {
	ch := Check{Name: "rows"}
	pc := conns[c.Primary.Name]
	if pc == nil {
		ch.Detail = "primary unreachable"
		return ch
	}
	var lsn string
	err := writeProbe(ctx, pc)
	if err == nil {
		err = pc.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn)
	}
	if err != nil {
		ch.Detail = fmt.Sprintf("primary: write probe rows: %v", err)
		return ch
	}
	// Delayed standbys replay late by design: wait for them, with margin.
	var maxDelay time.Duration
	for _, d := range c.ApplyDelays() {
		maxDelay = max(maxDelay, d)
	}
	limit := 30*time.Second + maxDelay
	// A workload's tables count once it has run; before, they are absent.
	present := []string{ProbeTable}
	for _, t := range tables {
		var ok bool
		if err := pc.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, tableIdent(t)).Scan(&ok); err == nil && ok {
			present = append(present, t)
		}
	}
	tables = present
	want := map[string]int64{}
	for _, t := range tables {
		var n int64
		if err := pc.QueryRow(ctx, `SELECT count(*) FROM `+tableIdent(t)).Scan(&n); err != nil {
			ch.Detail = fmt.Sprintf("primary: count %s: %v", t, err)
			return ch
		}
		want[t] = n
	}
	ch.Pass = true
	var parts []string
	for _, s := range c.Standbys {
		conn := conns[s.Name]
		if conn == nil {
			ch.Pass = false
			parts = append(parts, s.Name+" unreachable")
			continue
		}
		took, err := waitReplayed(ctx, conn, lsn, limit)
		if err != nil {
			ch.Pass = false
			parts = append(parts, fmt.Sprintf("%s: %v", s.Name, err))
			continue
		}
		for _, t := range tables {
			var n int64
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tableIdent(t)).Scan(&n); err != nil || n != want[t] {
				ch.Pass = false
				parts = append(parts, fmt.Sprintf("%s: %s has %d rows, primary %d (%v)", s.Name, t, n, want[t], err))
			}
		}
		parts = append(parts, fmt.Sprintf("%s replayed in %s", s.Name, took.Round(time.Millisecond)))
	}
	ch.Detail = fmt.Sprintf("%d rows written to %s on the primary; counts of %s equal on every standby: %s",
		probeRows, ProbeTable, strings.Join(tables, ", "), dashIfEmpty(strings.Join(parts, ", ")))
	if !ch.Pass {
		ch.Detail = strings.Replace(ch.Detail, "equal on every standby", "compared", 1)
	}
	return ch
}

// tableIdent quotes a table name given as "table" or "schema.table".
func tableIdent(t string) string { return pgx.Identifier(strings.Split(t, ".")).Sanitize() }

// writeProbe (re)creates the probe table in pgbenchx's schema, creating
// the schema, marked as pgbenchx's, when absent, and fills it, all in one
// transaction under the schema lock. A pgbenchx schema without the mark is
// a user's: nothing is written into it.
func writeProbe(ctx context.Context, pc *pgx.Conn) error {
	// Read committed whatever the server's default: after the lock, see
	// what a load generator creating the schema just committed.
	tx, err := pc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SET LOCAL search_path = pg_catalog, pg_temp`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock($1)`, SchemaLockKey); err != nil {
		return err
	}
	var comment *string
	err = tx.QueryRow(ctx, `SELECT pg_catalog.obj_description(oid, 'pg_namespace') FROM pg_catalog.pg_namespace WHERE nspname = $1`, Schema).Scan(&comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+Schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `COMMENT ON SCHEMA `+Schema+` IS '`+strings.ReplaceAll(SchemaMarker, "'", "''")+`'`); err != nil {
			return err
		}
	case err != nil:
		return err
	case comment == nil || *comment != SchemaMarker:
		return fmt.Errorf("this database has a schema named %s that pgbenchx did not create (no pgbenchx mark on it): "+
			"pgbenchx writes nothing into it; rename or drop it to verify here", Schema)
	}
	// Ours: a probe table of another shape is simply made again.
	if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+ProbeTable); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE `+ProbeTable+` (id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+ProbeTable+` (id) SELECT generate_series(1, $1)`, probeRows); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// waitReplayed polls a standby until it has replayed lsn.
func waitReplayed(ctx context.Context, conn *pgx.Conn, lsn string, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&done); err != nil {
			return 0, err
		}
		if done {
			return time.Since(t0), nil
		}
		if time.Since(t0) > limit {
			return 0, fmt.Errorf("has not replayed %s after %s", lsn, limit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func checkReadOnly(ctx context.Context, c *Cluster, conns map[string]*pgx.Conn) Check {
	ch := Check{Name: "read-only", Pass: true}
	var parts []string
	for _, s := range c.Standbys {
		conn := conns[s.Name]
		if conn == nil {
			ch.Pass = false
			parts = append(parts, s.Name+" unreachable")
			continue
		}
		_, err := conn.Exec(ctx, `INSERT INTO `+ProbeTable+` (id) VALUES (-1)`)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "25006" {
			parts = append(parts, s.Name+" rejected INSERT (25006)")
			continue
		}
		ch.Pass = false
		if err == nil {
			parts = append(parts, s.Name+" ACCEPTED an INSERT")
		} else {
			parts = append(parts, fmt.Sprintf("%s failed otherwise: %v", s.Name, err))
		}
	}
	ch.Detail = dashIfEmpty(strings.Join(parts, ", "))
	return ch
}

func checkLag(c *Cluster, st []NodeStatus) Check {
	ch := Check{Name: "lag", Pass: true}
	var parts []string
	for _, s := range standbyStatus(st) {
		b, t := "unknown", "unknown (idle)"
		if s.LagBytes != nil {
			b = FormatBytes(*s.LagBytes)
		} else {
			ch.Pass = false
		}
		if s.ReplayLagMS != nil {
			t = fmt.Sprintf("%.1fms", *s.ReplayLagMS)
		}
		parts = append(parts, fmt.Sprintf("%s %s behind, replay_lag %s", s.Node, b, t))
	}
	ch.Detail = dashIfEmpty(strings.Join(parts, "; "))
	return ch
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// FormatBytes prints a byte count with a binary unit.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		suffix = s
		if f < unit && f > -unit {
			break
		}
	}
	return fmt.Sprintf("%.1f %s", f, suffix)
}
