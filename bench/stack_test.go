package bench_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

func needBinaries(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if _, err := exec.LookPath("/usr/sbin/" + n); err != nil {
				t.Skipf("%s is not installed (make deps installs it)", n)
			}
		}
	}
}

// orderScans is each node's count of index scans of pgbenchx.orders, as
// the server keeps it (0 before the table exists).
func orderScans(t *testing.T, c *env.Cluster) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, n := range c.Nodes() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, n.DSN())
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var scans int64
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_tables WHERE schemaname = 'pgbenchx' AND relname = 'orders'`).Scan(&scans)
		conn.Close(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out[n.Name] = scans
	}
	return out
}

// TestViaPgpoolAttribution reads through pgpool-II in front of an env:
// the reads land on the standbys, and pgbenchx's count of the reads each
// node served (told by the port each answer names) agrees with the
// servers' own index scan counters within a few percent.
func TestViaPgpoolAttribution(t *testing.T) {
	needBinaries(t, "pgpool", "haproxy")
	c, _ := envtest.Up(t, env.Spec{Name: "bpgpool", Standbys: 2, Fast: true,
		Proxies: []env.ProxySpec{{Kind: env.ProxyPgpool, Options: map[string]string{}}, {Kind: env.ProxyHAProxy, Options: map[string]string{}}}})
	cfg := faultConfig()
	w := &cfg.Workload
	w.Strategies = []routing.Strategy{routing.Via("pgpool"), routing.Via("haproxy")}
	w.Duration, w.Warmup, w.WriteRate, w.Protocol = 3*time.Second, 0, 0, "extended" // parsed every time: pgpool balances each statement; no warmup: its reads scan too
	w.Mix = []workload.Weighted{{Kind: "point", Weight: 1}}                         // one index scan each
	// Schema and warm-ups first, so that the counters' deltas cover the
	// measured reads (and the warm-ups of the run below, a few dozen).
	measure(t, c, cfg)
	before := orderScans(t, c)
	res := measure(t, c, cfg)
	var recorded = map[string]int64{}
	for _, sr := range res.Strategies {
		for _, n := range sr.Nodes {
			recorded[n.Node] += n.Attempts().TotalCount()
			if n.Node == metrics.Unattributed && n.Total().TotalCount() > 0 {
				t.Errorf("%s: %d point reads unattributed: every answer names its node", sr.Strategy, n.Total().TotalCount())
			}
		}
		if sr.Strategy == "via:haproxy" || sr.Strategy == "via:pgpool" {
			var standbys, all int64
			for _, n := range sr.Nodes {
				all += n.Total().TotalCount()
				if n.Role == metrics.RoleStandby {
					standbys += n.Total().TotalCount()
				}
			}
			if all < 500 || standbys < all*9/10 {
				t.Errorf("%s: %d of %d reads on standbys", sr.Strategy, standbys, all)
			}
		}
	}
	// A backend reports its scans when it ends or after 10 s idle, and
	// pgpool keeps its backends connected: poll until they agree.
	deadline := time.Now().Add(25 * time.Second)
	for {
		after := orderScans(t, c)
		off := ""
		for _, node := range []string{"standby1", "standby2"} {
			got, want := after[node]-before[node], recorded[node]
			// The run's own warm-ups (a read per connection and kind) are
			// scans it did not record: allow them and 3%.
			if want < 200 || got < want || float64(got-want) > 0.03*float64(want)+64 {
				off += node + " "
			}
		}
		if off == "" {
			t.Logf("index scans on standby1/standby2: %d/%d, reads recorded there: %d/%d",
				after["standby1"]-before["standby1"], after["standby2"]-before["standby2"], recorded["standby1"], recorded["standby2"])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers' index scans %v - %v vs recorded reads %v: %sdisagree", after, before, recorded, off)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPatroniStackFailover runs reads through a Patroni stack's HAProxy
// while the leader is killed: Patroni elects another, the run goes on,
// the report names the new primary and Patroni's own failover time, and
// no acknowledged write is lost.
func TestPatroniStackFailover(t *testing.T) {
	needBinaries(t, "patroni", "etcd", "haproxy")
	c, _ := envtest.Up(t, env.Spec{Name: "bpatroni", Standbys: 2, Fast: true, Stack: env.StackPatroni})
	old := c.Primary.Name
	cfg := faultConfig("2s:failover:standby1")
	cfg.Workload.Strategies = []routing.Strategy{routing.Via("haproxy")}
	cfg.Workload.Duration = 18 * time.Second // Patroni's election waits out its ttl (10 s)
	res := measure(t, c, cfg)
	if len(res.Failovers) != 1 {
		t.Fatalf("failovers %+v, warnings %q", res.Failovers, res.Warnings)
	}
	f := res.Failovers[0]
	if f.OldPrimary != old || f.NewPrimary == old || f.PromoteMS <= 0 {
		t.Errorf("failover %+v", f)
	}
	sr := res.Strategies[0]
	last := len(sr.Ticks)
	var after int64
	for _, tk := range sr.Ticks[last-3:] {
		after += tk.Queries
	}
	if after == 0 {
		t.Errorf("no reads in the last 3 seconds, after the election: ticks %+v", sr.Ticks)
	}
	if d := res.Durability; d == nil || d.RowsLost != 0 || d.AcknowledgedRows == 0 || d.CheckedOn != f.NewPrimary {
		t.Errorf("durability %+v", d)
	}
}
