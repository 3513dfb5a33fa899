package workload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbenchx/pgbenchx/input"
)

// Everything pgbenchx creates on a cluster lives in schema pgbenchx, which
// pgbenchx marks as its own when it creates it. Nothing outside it is read
// for the workload or changed, and a pgbenchx schema without the mark (a
// user's) is never written into or dropped.
const (
	// Schema is pgbenchx's own schema.
	Schema = "pgbenchx"
	// OrdersTable is the table the read queries scan and the write phase fills.
	OrdersTable = Schema + ".orders"
	// HeartbeatTable holds one row per load generator whose seq it bumps.
	HeartbeatTable = Schema + ".heartbeat"

	// SchemaMarker is the comment pgbenchx puts on the schema it creates;
	// a schema named pgbenchx whose comment is not exactly this is not ours.
	// env.SchemaMarker must hold the same text (a test in cmd/pgbenchx
	// checks that they agree).
	SchemaMarker = "pgbenchx: created by pgbenchx; pgbenchx clean drops it"

	// SchemaLockKey is the transaction-level advisory lock taken around
	// every check-and-create or drop of the schema, so that load generators
	// starting at once (and env verify) do not race. Its bytes spell
	// "pgbenchx"; env.SchemaLockKey is the same number.
	SchemaLockKey int64 = 0x706762656e636878
	// SeedLockKey is held while the orders table is counted and topped
	// up to --scale.
	SeedLockKey = SchemaLockKey + 1
)

// SchemaConn is what PrepareSchema and Clean need: a way to open a
// transaction of their own. *pgx.Conn, *pgxpool.Pool and *pgxpool.Conn
// satisfy it.
type SchemaConn interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// column is one column of a table as pgbenchx creates it.
type column struct {
	name    string
	typ     string // format_type() with search_path = pg_catalog
	notNull bool
	def     string // pg_get_expr() of the default; serialDefault for bigserial
}

// serialDefault stands for "nextval() of the sequence this column owns".
const serialDefault = "(serial)"

// tableSpec is one of our tables: how to create it and the shape it must
// have. Index definitions are pg_get_indexdef() output with
// search_path = pg_catalog, so they carry the index's name and the
// schema-qualified table: a user's index elsewhere can neither take the
// name (indexes live in their table's schema) nor pass for ours.
type tableSpec struct {
	name        string // unqualified, inside Schema
	create      string
	columns     []column
	constraints []string // "name definition", NOT NULL constraints aside
	indexes     []string
}

var ourTables = []tableSpec{
	{
		name: "orders",
		create: `CREATE TABLE pgbenchx.orders (
	id          bigserial CONSTRAINT orders_pkey PRIMARY KEY,
	customer_id integer NOT NULL,
	amount      numeric(10,2) NOT NULL,
	status      text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_created ON pgbenchx.orders USING btree (customer_id, created_at DESC);
CREATE INDEX orders_created ON pgbenchx.orders USING btree (created_at)`,
		columns: []column{
			{"id", "bigint", true, serialDefault},
			{"customer_id", "integer", true, ""},
			{"amount", "numeric(10,2)", true, ""},
			{"status", "text", true, ""},
			{"created_at", "timestamp with time zone", true, "now()"},
		},
		constraints: []string{"orders_pkey PRIMARY KEY (id)"},
		indexes: []string{
			"CREATE INDEX orders_created ON pgbenchx.orders USING btree (created_at)",
			"CREATE INDEX orders_customer_created ON pgbenchx.orders USING btree (customer_id, created_at DESC)",
			"CREATE UNIQUE INDEX orders_pkey ON pgbenchx.orders USING btree (id)",
		},
	},
	{
		name:   "heartbeat",
		create: `CREATE TABLE pgbenchx.heartbeat (id bigint CONSTRAINT heartbeat_pkey PRIMARY KEY, seq bigint NOT NULL, at timestamptz NOT NULL)`,
		columns: []column{
			{"id", "bigint", true, ""},
			{"seq", "bigint", true, ""},
			{"at", "timestamp with time zone", true, ""},
		},
		constraints: []string{"heartbeat_pkey PRIMARY KEY (id)"},
		indexes:     []string{"CREATE UNIQUE INDEX heartbeat_pkey ON pgbenchx.heartbeat USING btree (id)"},
	},
}

// begin opens the transaction every schema operation runs in: catalog
// output fully qualified and no object resolved through the user's
// search_path, the primary checked, and the schema lock held until the end.
func begin(ctx context.Context, db SchemaConn) (pgx.Tx, error) {
	// Read committed whatever the server's default: each statement after
	// the lock must see what the generator before us committed.
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", Schema, err)
	}
	var standby bool
	_, err = tx.Exec(ctx, `SET LOCAL search_path = pg_catalog, pg_temp`)
	if err == nil {
		// A session holding our tables (a run in progress elsewhere, an
		// open transaction) must fail this in seconds, not hang it, and
		// not queue every reader of the table behind our DROP.
		_, err = tx.Exec(ctx, `SET LOCAL lock_timeout = '`+schemaLockWait.String()+`'`)
	}
	if err == nil {
		err = tx.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery()`).Scan(&standby)
	}
	if err == nil && standby {
		err = &input.Error{Flag: "primary", Value: "(a standby)", Accepted: "this server is in recovery: pgbenchx creates and drops its schema on the primary; give the primary's DSN"}
	}
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock($1)`, SchemaLockKey)
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		var bad *input.Error
		if errors.As(err, &bad) {
			return nil, err
		}
		return nil, fmt.Errorf("schema %s: %w", Schema, err)
	}
	return tx, nil
}

// schemaState finds schema pgbenchx: its oid (0 if absent), or a bad-input
// error if it exists without our mark.
func schemaState(ctx context.Context, tx pgx.Tx) (uint32, error) {
	var oid uint32
	var comment *string
	err := tx.QueryRow(ctx, `SELECT n.oid, pg_catalog.obj_description(n.oid, 'pg_namespace')
		FROM pg_catalog.pg_namespace n WHERE n.nspname = $1`, Schema).Scan(&oid, &comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up schema %s: %w", Schema, err)
	}
	if comment == nil || *comment != SchemaMarker {
		return 0, foreignSchemaError(comment)
	}
	return oid, nil
}

func foreignSchemaError(comment *string) error {
	mark := "it has no comment"
	if comment != nil {
		c := *comment
		if r := []rune(c); len(r) > 60 {
			c = string(r[:60]) + "..."
		}
		mark = fmt.Sprintf("its comment is %q", c)
	}
	return &input.Error{Flag: "primary", Value: "(schema " + Schema + ")",
		Accepted: fmt.Sprintf("this database has a schema named %s that pgbenchx did not create (%s, not pgbenchx's mark); "+
			"pgbenchx never writes into or drops a schema it did not create: rename yours (ALTER SCHEMA %s RENAME TO ...), "+
			"drop it if it is a leftover of yours, or point pgbenchx at another database", Schema, mark, Schema)}
}

// PrepareSchema makes sure schema pgbenchx and its tables exist, with
// exactly the shape pgbenchx creates, on the primary; the scenario calls it
// before seeding. It creates the schema (marked as ours) when absent and
// refuses, as bad input and before writing anything, a pgbenchx schema it
// did not create. A table of ours whose shape is wrong (columns, types,
// NOT NULL, defaults, keys, indexes by definition, triggers, persistence)
// is dropped and created again, its rows with it: it is ours. Notes say
// what was created or rebuilt, for the run to report. Safe to call from
// several load generators at once: all of it runs under SchemaLockKey.
func PrepareSchema(ctx context.Context, primary SchemaConn) (notes []string, err error) {
	defer func() { err = explainLockTimeout(err) }()
	tx, err := begin(ctx, primary)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	nsp, err := schemaState(ctx, tx)
	if err != nil {
		return nil, err
	}
	fresh := nsp == 0
	if fresh {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA pgbenchx`); err != nil {
			return nil, fmt.Errorf("create schema %s: %w", Schema, err)
		}
		if _, err := tx.Exec(ctx, `COMMENT ON SCHEMA pgbenchx IS `+quoteLiteral(SchemaMarker)); err != nil {
			return nil, fmt.Errorf("mark schema %s: %w", Schema, err)
		}
		if nsp, err = schemaState(ctx, tx); err != nil {
			return nil, err
		}
	}
	var created []string
	for _, spec := range ourTables {
		qualified := Schema + "." + spec.name
		rel, problems, err := checkShape(ctx, tx, nsp, spec)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", qualified, err)
		}
		switch {
		case rel == nil:
			created = append(created, qualified)
		case len(problems) > 0:
			rows, err := dropRelation(ctx, tx, nsp, rel, problems)
			if err != nil {
				return nil, err
			}
			what := "the " + relkindName(rel.kind) + " was dropped"
			switch {
			case rows == 1:
				what = "its 1 row was dropped"
			case rows >= 0:
				what = fmt.Sprintf("its %d rows were dropped", rows)
			}
			notes = append(notes, fmt.Sprintf("rebuilt %s: its shape was not the one pgbenchx creates (%s); %s",
				qualified, strings.Join(problems, "; "), what))
		default:
			continue
		}
		if _, err := tx.Exec(ctx, spec.create); err != nil {
			return nil, fmt.Errorf("create %s: %w", qualified, err)
		}
		// What we just made must pass our own check, or every run would
		// rebuild it: say so rather than loop silently.
		if _, problems, err := checkShape(ctx, tx, nsp, spec); err != nil {
			return nil, fmt.Errorf("check %s: %w", qualified, err)
		} else if len(problems) > 0 {
			notes = append(notes, fmt.Sprintf("%s as created does not match pgbenchx's shape check (a bug, please report it): %s",
				qualified, strings.Join(problems, "; ")))
		}
	}
	if fresh {
		notes = append([]string{fmt.Sprintf("created schema %s, marked as pgbenchx's own ('pgbenchx clean' drops it), with tables %s",
			Schema, strings.Join(created, ", "))}, notes...)
	} else if len(created) > 0 {
		notes = append([]string{"created table " + strings.Join(created, ", ") + " (it was missing from schema " + Schema + ")"}, notes...)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("schema %s: commit: %w", Schema, err)
	}
	return notes, nil
}

// dropRelation drops what sits at one of our names, after checking that
// nothing outside our schema depends on anything in it. It returns how
// many rows went (-1 if it held no rows to count).
func dropRelation(ctx context.Context, tx pgx.Tx, nsp uint32, rel *relation, problems []string) (int64, error) {
	qualified := Schema + "." + rel.name
	why := fmt.Sprintf("%s must be rebuilt (%s), but ", qualified, strings.Join(problems, "; "))
	if err := refuseOutsideDependents(ctx, tx, nsp, why); err != nil {
		return 0, err
	}
	var n int64 = -1
	if rel.kind == "r" || rel.kind == "p" || rel.kind == "m" {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{Schema, rel.name}.Sanitize()).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s before rebuilding it: %w", qualified, err)
		}
	}
	kinds := map[string]string{"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "S": "SEQUENCE", "i": "INDEX", "I": "INDEX", "c": "TYPE"}
	kw, ok := kinds[rel.kind]
	if !ok {
		return 0, fmt.Errorf("%s is a %s: pgbenchx cannot rebuild it; drop it yourself (or run pgbenchx clean)", qualified, relkindName(rel.kind))
	}
	// No CASCADE: should anything still depend on it, fail and say so.
	if _, err := tx.Exec(ctx, `DROP `+kw+` `+pgx.Identifier{Schema, rel.name}.Sanitize()); err != nil {
		return 0, fmt.Errorf("drop %s to rebuild it: %w", qualified, err)
	}
	return n, nil
}

// refuseOutsideDependents fails, as bad input, when an object outside our
// schema depends on one inside it (a user's view on pgbenchx.orders, a
// foreign key to it, a default calling its sequence, a column of its row
// type): dropping ours would drop or change theirs.
func refuseOutsideDependents(ctx context.Context, tx pgx.Tx, nsp uint32, why string) error {
	deps, err := strs(ctx, tx, outsideDependentsSQL, nsp)
	if err != nil {
		return fmt.Errorf("look for objects that depend on schema %s: %w", Schema, err)
	}
	if len(deps) == 0 {
		return nil
	}
	list := deps
	if len(list) > 5 {
		list = append(slices.Clone(list[:5]), fmt.Sprintf("and %d more", len(deps)-5))
	}
	return &input.Error{Flag: "primary", Value: "(schema " + Schema + ")",
		Accepted: fmt.Sprintf("%sobjects outside schema %s depend on pgbenchx's objects in it (%s); pgbenchx changes nothing outside its schema, so it drops nothing they need: drop or change them first",
			why, Schema, strings.Join(list, "; "))}
}

// outsideDependentsSQL lists objects outside schema $1 that depend on a
// relation, type or function inside it. An object whose schema it cannot
// tell counts as outside: when in doubt, refuse.
const outsideDependentsSQL = `
WITH ours AS (
	SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS cls, oid FROM pg_catalog.pg_class WHERE relnamespace = $1
	UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid FROM pg_catalog.pg_type WHERE typnamespace = $1
	UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, oid FROM pg_catalog.pg_proc WHERE pronamespace = $1
), deps AS (
	SELECT DISTINCT d.classid, d.objid FROM pg_catalog.pg_depend d
	JOIN ours o ON d.refclassid = o.cls AND d.refobjid = o.oid
	WHERE d.deptype IN ('n', 'a', 'P', 'S')
)
SELECT CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
		THEN (SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, r.ev_class, 0) FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
		ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END
FROM deps d
WHERE coalesce(CASE d.classid
	WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = d.objid)
	WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.objid)
	WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.objid)
	WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = d.objid)
	WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN (SELECT stxnamespace FROM pg_catalog.pg_statistic_ext WHERE oid = d.objid)
	WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)
	WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid WHERE t.oid = d.objid)
	WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid WHERE a.oid = d.objid)
	WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE p.oid = d.objid)
	END, 0) <> $1
ORDER BY 1`

// Clean drops schema pgbenchx and everything in it, if pgbenchx created it
// (dropped is then true). It does nothing when there is no such schema,
// and refuses, as bad input and without changing anything, a pgbenchx
// schema without pgbenchx's mark or one that objects outside it depend
// on. It touches nothing else.
func Clean(ctx context.Context, primary SchemaConn) (dropped bool, err error) {
	tx, err := begin(ctx, primary)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	nsp, err := schemaState(ctx, tx)
	if err != nil || nsp == 0 {
		return false, err
	}
	if err := refuseOutsideDependents(ctx, tx, nsp, ""); err != nil {
		return false, err
	}
	// CASCADE drops what is inside the schema; nothing outside depends on
	// it (checked above, under the lock, in this transaction).
	if _, err := tx.Exec(ctx, `DROP SCHEMA pgbenchx CASCADE`); err != nil {
		return false, fmt.Errorf("drop schema %s: %w", Schema, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("drop schema %s: commit: %w", Schema, err)
	}
	return true, nil
}

// schemaLockWait is how long a schema operation waits for a lock.
const schemaLockWait = 30 * time.Second

// explainLockTimeout words a lock_timeout (55P03) for the user.
func explainLockTimeout(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
		return fmt.Errorf("schema %s: waited %s for a lock another session holds on it (a run in progress, or an open transaction on its tables): %w", Schema, schemaLockWait, err)
	}
	return err
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
