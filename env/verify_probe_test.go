package env_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

// workloadTables are the names cmd passes to Verify once the workload
// lives in schema pgbenchx.
var workloadTables = []string{"pgbenchx.orders", "pgbenchx.heartbeat"}

func verifyChecks(t *testing.T, c *env.Cluster) map[string]env.Check {
	t.Helper()
	out := map[string]env.Check{}
	for _, ch := range env.Verify(context.Background(), c, env.VerifyOptions{Tables: workloadTables}) {
		out[ch.Name] = ch
	}
	return out
}

// TestVerifyProbeInOurSchema: the probe lives in schema pgbenchx (created,
// marked, when absent), workload tables are counted once they exist and
// skipped before, and a pgbenchx schema someone else made gets nothing.
func TestVerifyProbeInOurSchema(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "probe", Standbys: 1, Fast: true})
	ctx := context.Background()
	primary := connect(t, &c.Primary)

	t.Run("before the workload ran", func(t *testing.T) {
		for name, ch := range verifyChecks(t, c) {
			if !ch.Pass {
				t.Errorf("verify %s failed on a fresh env: %s", name, ch.Detail)
			}
		}
		var comment string
		if err := primary.QueryRow(ctx, `SELECT obj_description('pgbenchx'::regnamespace, 'pg_namespace')`).Scan(&comment); err != nil || comment != env.SchemaMarker {
			t.Errorf("schema pgbenchx comment %q (%v), want the marker", comment, err)
		}
		if n := queryInt(t, primary, `SELECT count(*) FROM pgbenchx.probe`); n != 1000 {
			t.Errorf("pgbenchx.probe has %d rows, want 1000", n)
		}
		if n := queryInt(t, primary, `SELECT count(*) FROM pg_class WHERE relname LIKE '%probe%' AND relnamespace <> 'pgbenchx'::regnamespace AND relkind = 'r'`); n != 0 {
			t.Errorf("%d probe tables outside schema pgbenchx", n)
		}
	})

	t.Run("workload tables are counted, schema-qualified", func(t *testing.T) {
		if _, err := primary.Exec(ctx, `CREATE TABLE pgbenchx.orders (id int); INSERT INTO pgbenchx.orders SELECT generate_series(1, 42)`); err != nil {
			t.Fatal(err)
		}
		ch := verifyChecks(t, c)["rows"]
		if !ch.Pass || !strings.Contains(ch.Detail, "pgbenchx.orders") || strings.Contains(ch.Detail, "pgbenchx.heartbeat") {
			t.Errorf("rows: pass %v, %s", ch.Pass, ch.Detail)
		}
	})

	t.Run("a pgbenchx schema we did not create gets nothing", func(t *testing.T) {
		if _, err := primary.Exec(ctx, `DROP SCHEMA pgbenchx CASCADE; CREATE SCHEMA pgbenchx; CREATE TABLE pgbenchx.theirs (i int)`); err != nil {
			t.Fatal(err)
		}
		ch := verifyChecks(t, c)["rows"]
		if ch.Pass || !strings.Contains(ch.Detail, "did not create") {
			t.Errorf("rows: pass %v, %s; want a failure naming the foreign schema", ch.Pass, ch.Detail)
		}
		if n := queryInt(t, primary, `SELECT count(*) FROM pg_class WHERE relnamespace = 'pgbenchx'::regnamespace`); n != 1 {
			t.Errorf("%d relations in the user's schema pgbenchx, want only theirs", n)
		}
		if n := queryInt(t, primary, `SELECT count(*) FROM pg_description WHERE objoid = 'pgbenchx'::regnamespace`); n != 0 {
			t.Error("verify marked the user's schema")
		}
	})
}
