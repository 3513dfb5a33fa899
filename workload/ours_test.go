package workload_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/workload"
)

// ourIndexes are the index definitions PrepareSchema must leave on
// pgbenchx.orders, as pg_get_indexdef prints them.
var ourIndexes = []string{
	"CREATE INDEX orders_created ON pgbenchx.orders USING btree (created_at)",
	"CREATE INDEX orders_customer_created ON pgbenchx.orders USING btree (customer_id, created_at DESC)",
	"CREATE UNIQUE INDEX orders_pkey ON pgbenchx.orders USING btree (id)",
}

// freshDB creates a database of its own on the cluster's primary, so each
// subtest starts from an empty catalog, and returns a pool on it.
func freshDB(t *testing.T, c *env.Cluster, name string) (*pgxpool.Pool, env.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, c.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	n := c.Primary
	n.Database = name
	pool, err := pgxpool.New(ctx, n.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, n
}

func mustExec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func strings_(t *testing.T, db *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func indexDefs(t *testing.T, db *pgxpool.Pool, table string) []string {
	t.Helper()
	return strings_(t, db, `SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`, table)
}

func schemaExists(t *testing.T, db *pgxpool.Pool) bool {
	t.Helper()
	return count(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbenchx'`) == 1
}

func prepare(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	notes, err := workload.PrepareSchema(context.Background(), db)
	if err != nil {
		t.Fatalf("PrepareSchema: %v", err)
	}
	return notes
}

// userTable is what a user's table looks like from outside: identity,
// contents and indexes.
type userTable struct {
	oid     uint32
	rows    int64
	digest  string
	indexes []string
}

func snapshot(t *testing.T, db *pgxpool.Pool, table string) userTable {
	t.Helper()
	var s userTable
	err := db.QueryRow(context.Background(), `SELECT $1::regclass::oid, count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '')
		FROM `+table+` x`, table).Scan(&s.oid, &s.rows, &s.digest)
	if err != nil {
		t.Fatalf("snapshot %s: %v", table, err)
	}
	s.indexes = indexDefs(t, db, table)
	return s
}

func requireBadInput(t *testing.T, err error, want string) {
	t.Helper()
	var bi interface{ BadInput() }
	var ie *input.Error
	if !errors.As(err, &bi) || !errors.As(err, &ie) {
		t.Fatalf("error %v (%T): want a bad-input *input.Error", err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

// TestOurSchema runs against one real cluster; each subtest has a database
// of its own.
func TestOurSchema(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "ours", Standbys: 1, Fast: true})
	ctx := context.Background()

	t.Run("a user's tables and indexes named like ours are left alone", func(t *testing.T) {
		db, _ := freshDB(t, c, "users")
		// The user's own orders in public: same columns, indexes with our
		// index names, one index of their own, rows.
		mustExec(t, db, `CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer_id int NOT NULL,
			amount numeric(10,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
		mustExec(t, db, `CREATE INDEX orders_customer_created ON public.orders (status)`)
		mustExec(t, db, `CREATE INDEX orders_created ON public.orders (amount)`)
		mustExec(t, db, `CREATE INDEX users_own ON public.orders (customer_id)`)
		mustExec(t, db, `INSERT INTO public.orders (customer_id, amount, status) SELECT g, g, 'mine' FROM generate_series(1, 500) g`)
		mustExec(t, db, `CREATE TABLE public.heartbeat (id bigint PRIMARY KEY, seq bigint NOT NULL, at timestamptz NOT NULL)`)
		mustExec(t, db, `INSERT INTO public.heartbeat VALUES (1, 7, now())`)
		before := map[string]userTable{"public.orders": snapshot(t, db, "public.orders"), "public.heartbeat": snapshot(t, db, "public.heartbeat")}
		unchanged := func(when string) {
			t.Helper()
			for table, b := range before {
				if a := snapshot(t, db, table); a.oid != b.oid || a.rows != b.rows || a.digest != b.digest || !slices.Equal(a.indexes, b.indexes) {
					t.Errorf("%s: %s changed:\nbefore %+v\nafter  %+v", when, table, b, a)
				}
			}
		}

		notes := prepare(t, db)
		t.Logf("notes: %q", notes)
		if len(notes) != 1 || !strings.Contains(notes[0], "created schema pgbenchx") {
			t.Errorf("notes %q: want one saying the schema was created", notes)
		}
		unchanged("after PrepareSchema")
		if got := indexDefs(t, db, workload.OrdersTable); !slices.Equal(got, ourIndexes) {
			t.Errorf("pgbenchx.orders indexes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(ourIndexes, "\n"))
		}
		if got := indexDefs(t, db, workload.HeartbeatTable); !slices.Equal(got, []string{"CREATE UNIQUE INDEX heartbeat_pkey ON pgbenchx.heartbeat USING btree (id)"}) {
			t.Errorf("pgbenchx.heartbeat indexes: %q", got)
		}
		var comment string
		if err := db.QueryRow(ctx, `SELECT obj_description('pgbenchx'::regnamespace, 'pg_namespace')`).Scan(&comment); err != nil || comment != workload.SchemaMarker {
			t.Errorf("schema comment %q (%v), want the marker", comment, err)
		}

		// Ours keeps its rows from one run to the next when its shape is right.
		mustExec(t, db, `INSERT INTO `+workload.OrdersTable+` (customer_id, amount, status) SELECT g, g, 'new' FROM generate_series(1, 10) g`)
		if notes := prepare(t, db); len(notes) != 0 {
			t.Errorf("second PrepareSchema: notes %q, want none", notes)
		}
		if n := count(t, db, `SELECT count(*) FROM `+workload.OrdersTable); n != 10 {
			t.Errorf("pgbenchx.orders has %d rows after a second PrepareSchema, want 10", n)
		}
		unchanged("after a second PrepareSchema")

		dropped, err := workload.Clean(ctx, db)
		if err != nil || !dropped {
			t.Fatalf("Clean: %v, %v", dropped, err)
		}
		if schemaExists(t, db) {
			t.Error("schema pgbenchx still there after Clean")
		}
		unchanged("after Clean")
		if dropped, err := workload.Clean(ctx, db); err != nil || dropped {
			t.Errorf("Clean with nothing to drop: %v, %v; want false, nil", dropped, err)
		}
	})

	t.Run("a pgbenchx schema we did not create is refused and left untouched", func(t *testing.T) {
		db, _ := freshDB(t, c, "foreign")
		mustExec(t, db, `CREATE SCHEMA pgbenchx`)
		mustExec(t, db, `CREATE TABLE pgbenchx.orders (id int)`)
		mustExec(t, db, `INSERT INTO pgbenchx.orders VALUES (1), (2), (3)`)
		state := func() string {
			return fmt.Sprint(strings_(t, db, `SELECT relname::text FROM pg_class WHERE relnamespace = 'pgbenchx'::regnamespace ORDER BY 1`),
				count(t, db, `SELECT count(*) FROM pgbenchx.orders`),
				strings_(t, db, `SELECT coalesce(obj_description('pgbenchx'::regnamespace, 'pg_namespace'), '(none)')`))
		}
		before := state()
		for _, comment := range []string{"", "my own schema"} {
			if comment != "" {
				mustExec(t, db, `COMMENT ON SCHEMA pgbenchx IS 'my own schema'`)
				before = state()
			}
			_, err := workload.PrepareSchema(ctx, db)
			requireBadInput(t, err, "did not create")
			t.Logf("error: %v", err)
			if comment != "" && !strings.Contains(err.Error(), comment) {
				t.Errorf("error %q does not quote the comment it found", err)
			}
			dropped, err := workload.Clean(ctx, db)
			requireBadInput(t, err, "did not create")
			if dropped {
				t.Error("Clean says it dropped a schema it refused")
			}
			if after := state(); after != before {
				t.Errorf("the user's schema changed: %s -> %s", before, after)
			}
		}
	})

	t.Run("a table of ours of the wrong shape is rebuilt", func(t *testing.T) {
		for i, tt := range []struct {
			name, mutate, table, want string
		}{
			{"missing index", `DROP INDEX pgbenchx.orders_created`, "orders",
				`index "CREATE INDEX orders_created ON pgbenchx.orders USING btree (created_at)" is missing`},
			{"index named ours on other columns", `DROP INDEX pgbenchx.orders_created; CREATE INDEX orders_created ON pgbenchx.orders (status)`, "orders",
				`index "CREATE INDEX orders_created ON pgbenchx.orders USING btree (status)" is not pgbenchx's`},
			{"other column type", `ALTER TABLE pgbenchx.orders ALTER amount TYPE double precision`, "orders",
				"column amount is double precision NOT NULL, want numeric(10,2) NOT NULL"},
			{"extra column", `ALTER TABLE pgbenchx.orders ADD COLUMN note text`, "orders", "extra column note"},
			{"missing column default", `ALTER TABLE pgbenchx.orders ALTER created_at DROP DEFAULT`, "orders", "column created_at"},
			{"primary key dropped", `ALTER TABLE pgbenchx.orders DROP CONSTRAINT orders_pkey`, "orders", "constraint"},
			{"unlogged", `ALTER TABLE pgbenchx.orders SET UNLOGGED`, "orders", "UNLOGGED"},
			{"a trigger", `CREATE FUNCTION pgbenchx.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
				CREATE TRIGGER t BEFORE INSERT ON pgbenchx.orders FOR EACH ROW EXECUTE FUNCTION pgbenchx.f()`, "orders", "trigger t"},
			{"a view in its place", `DROP TABLE pgbenchx.orders; CREATE VIEW pgbenchx.orders AS SELECT 1 AS id`, "orders", "view"},
			{"nullable heartbeat column", `ALTER TABLE pgbenchx.heartbeat ALTER seq DROP NOT NULL`, "heartbeat", "column seq"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				db, _ := freshDB(t, c, fmt.Sprintf("shape%d", i))
				prepare(t, db)
				mustExec(t, db, `INSERT INTO pgbenchx.orders (customer_id, amount, status) SELECT g, g, 'new' FROM generate_series(1, 50) g`)
				mustExec(t, db, `INSERT INTO pgbenchx.heartbeat VALUES (1, 1, now())`)
				mustExec(t, db, tt.mutate)
				notes := prepare(t, db)
				t.Logf("notes: %q", notes)
				if len(notes) != 1 || !strings.Contains(notes[0], "rebuilt pgbenchx."+tt.table) || !strings.Contains(notes[0], tt.want) {
					t.Fatalf("notes %q: want one saying pgbenchx.%s was rebuilt because %s", notes, tt.table, tt.want)
				}
				if again := prepare(t, db); len(again) != 0 {
					t.Errorf("after the rebuild the shape is still not right: %q", again)
				}
				if got := indexDefs(t, db, workload.OrdersTable); !slices.Equal(got, ourIndexes) {
					t.Errorf("pgbenchx.orders indexes after rebuild: %q", got)
				}
				// Only the table of the wrong shape lost its rows.
				wantOrders, wantBeats := int64(0), int64(1)
				if tt.table == "heartbeat" {
					wantOrders, wantBeats = 50, 0
				}
				if n := count(t, db, `SELECT count(*) FROM pgbenchx.orders`); n != wantOrders {
					t.Errorf("pgbenchx.orders has %d rows, want %d", n, wantOrders)
				}
				if n := count(t, db, `SELECT count(*) FROM pgbenchx.heartbeat`); n != wantBeats {
					t.Errorf("pgbenchx.heartbeat has %d rows, want %d", n, wantBeats)
				}
				if strings.Contains(tt.name, "view") {
					return
				}
				if !strings.Contains(notes[0], "50 rows were dropped") && tt.table == "orders" {
					t.Errorf("note %q does not say how many rows went", notes[0])
				}
			})
		}
	})

	t.Run("nothing outside our schema is dropped or changed", func(t *testing.T) {
		db, _ := freshDB(t, c, "deps")
		prepare(t, db)
		mustExec(t, db, `CREATE VIEW public.recent AS SELECT * FROM pgbenchx.orders`)
		dropped, err := workload.Clean(ctx, db)
		requireBadInput(t, err, "view public.recent")
		t.Logf("error: %v", err)
		if dropped || !schemaExists(t, db) {
			t.Fatal("Clean dropped our schema although a user's view depends on it")
		}
		// A rebuild would drop the view too: refused, nothing changed.
		mustExec(t, db, `DROP INDEX pgbenchx.orders_created`)
		_, err = workload.PrepareSchema(ctx, db)
		requireBadInput(t, err, "view public.recent")
		if n := count(t, db, `SELECT count(*) FROM pg_class WHERE relname = 'recent' AND relnamespace = 'public'::regnamespace`); n != 1 {
			t.Error("the user's view is gone")
		}
		if n := count(t, db, `SELECT count(*) FROM pg_class WHERE relname = 'orders_created' AND relnamespace = 'pgbenchx'::regnamespace`); n != 0 {
			t.Error("PrepareSchema changed our table although it refused")
		}
		// A foreign key and a default that use our objects count too.
		mustExec(t, db, `DROP VIEW public.recent`)
		mustExec(t, db, `CREATE TABLE public.refs (o bigint REFERENCES pgbenchx.orders (id), n bigint DEFAULT nextval('pgbenchx.orders_id_seq'))`)
		_, err = workload.Clean(ctx, db)
		requireBadInput(t, err, "public.refs")
		mustExec(t, db, `DROP TABLE public.refs`)
		if dropped, err := workload.Clean(ctx, db); err != nil || !dropped {
			t.Fatalf("Clean once nothing depends on ours: %v, %v", dropped, err)
		}
	})

	t.Run("load generators starting at once", func(t *testing.T) {
		db, node := freshDB(t, c, "concurrent")
		// A server whose default is repeatable read must not make a
		// generator miss the schema another one just created.
		mustExec(t, db, `ALTER DATABASE concurrent SET default_transaction_isolation = 'repeatable read'`)
		const n = 4
		conns := make([]*pgx.Conn, n)
		for i := range conns {
			conn, err := pgx.Connect(ctx, node.DSN())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			conns[i] = conn
		}
		notes := make([][]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				notes[i], errs[i] = workload.PrepareSchema(ctx, conns[i])
			}()
		}
		close(start)
		wg.Wait()
		created := 0
		for i := range errs {
			if errs[i] != nil {
				t.Errorf("generator %d: %v", i, errs[i])
			}
			if len(notes[i]) > 0 {
				created++
				if !strings.Contains(notes[i][0], "created schema") {
					t.Errorf("generator %d: notes %q", i, notes[i])
				}
			}
		}
		if created != 1 {
			t.Errorf("%d generators say they created the schema, want 1: %q", created, notes)
		}
	})

	t.Run("a standby is refused", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, c.Standbys[0].DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_, err = workload.Clean(ctx, conn)
		var bi interface{ BadInput() }
		if !errors.As(err, &bi) || !strings.Contains(err.Error(), "standby") {
			t.Errorf("Clean on a standby: %v; want bad input naming the standby", err)
		}
	})
}
