package workload_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/script"
	"github.com/pgbenchx/pgbenchx/workload"
)

// TestScriptsUnderEveryProtocol runs pgbench scripts as reads with each
// protocol: a script is one read on one node, its statements counted by
// the server too (pg_stat_user_tables.idx_scan on the standby that ran
// them); a script failing in a \set is the script's error, not the node's.
func TestScriptsUnderEveryProtocol(t *testing.T) {
	lookup, err := script.Parse("lookup", `\set id random(1, :scale)
BEGIN;
SELECT * FROM pgbenchx.orders WHERE id = :id;
SELECT count(*) FROM pgbenchx.orders WHERE id = :id AND id = :id;
END;
`)
	if err != nil {
		t.Fatal(err)
	}
	broken, err := script.Parse("broken", "\\set x 1 / (random(0, 0))\nSELECT :x;\n")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := envtest.Up(t, env.Spec{Name: "wscript", Standbys: 1, Fast: true})
	idxScans := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.Standbys[0].DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		// No table yet (before the first run made it): no scans.
		var n int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_tables WHERE schemaname = 'pgbenchx' AND relname = 'orders'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, protocol := range workload.Protocols {
		t.Run(protocol, func(t *testing.T) {
			cfg := testConfig(routing.RoundRobin)
			cfg.Duration, cfg.Warmup, cfg.WriteRows, cfg.WriteRate, cfg.Clients = 2*time.Second, 0, 0, 0, 2
			cfg.Mix, cfg.Protocol = nil, protocol
			cfg.Scripts = []workload.ScriptFile{{Path: "lookup.sql", Weight: 9, Script: lookup}, {Path: "broken.sql", Weight: 1, Script: broken}}
			before := idxScans()
			res, err := runWith(t, c, cfg, workload.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			sb := res.Strategies[0].Nodes[1]
			if sb.Node != "standby1" {
				t.Fatalf("node order: %s", sb.Node)
			}
			ok := sb.Kinds["lookup"].TotalCount()
			if ok < 100 {
				t.Fatalf("%d lookup scripts ran on standby1", ok)
			}
			if sb.Errors[workload.LabelScriptError] == 0 {
				t.Errorf("the broken script's \\set failed no read: errors %v", sb.Errors)
			}
			for label, n := range sb.Errors {
				if label != workload.LabelScriptError {
					t.Errorf("%d errors %q besides the script's own", n, label)
				}
			}
			for _, e := range res.Strategies[0].Events {
				if e.Kind == "ejected" {
					t.Errorf("a script's error ejected a node: %v", e)
				}
			}
			if sb.StaleChecked != 0 {
				t.Errorf("%d scripts checked for staleness: they report no heartbeat", sb.StaleChecked)
			}
			// Each lookup scans the index twice (two statements), the
			// warm-up runs once per connection. A backend reports its
			// scans when it ends (or after 10 s idle): runWith closed the
			// clients' connections.
			deadline := time.Now().Add(5 * time.Second)
			for {
				scans := idxScans() - before
				if scans >= 2*ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("standby1 counted %d index scans, want at least %d (2 per recorded lookup)", scans, 2*ok)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
