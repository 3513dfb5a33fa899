package bench_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
)

// faultConfig is a short round-robin run with background writes.
func faultConfig(faults ...string) bench.Config {
	cfg := bench.Default()
	w := &cfg.Workload
	w.Strategies = []routing.Strategy{routing.RoundRobin}
	w.Duration, w.Warmup, w.Clients = 8*time.Second, 500*time.Millisecond, 4
	w.Scale, w.WriteRows, w.WriteRate = 1000, 0, 300
	w.QueryTimeout, w.EjectFor = time.Second, time.Second
	for _, f := range faults {
		fault, err := bench.ParseFault(f)
		if err != nil {
			panic(err)
		}
		cfg.Faults = append(cfg.Faults, fault)
	}
	return cfg
}

func measure(t *testing.T, c *env.Cluster, cfg bench.Config) *metrics.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := bench.Measure(ctx, bench.Describe(c), cfg, bench.Hooks{})
	if err != nil {
		t.Fatalf("measure: %v (warnings %q)", err, res.Warnings)
	}
	return res
}

// nodeQueries sums a node's successful reads over the ticks of seconds
// [from, to].
func nodeQueries(sr *metrics.StrategyResult, node string, from, to int) int64 {
	var n int64
	for _, tk := range sr.Ticks {
		if tk.Second >= from && tk.Second <= to {
			n += tk.NodeQueries[node]
		}
	}
	return n
}

func hasEvent(sr *metrics.StrategyResult, kind, node string) bool {
	for _, e := range sr.Events {
		if e.Kind == kind && e.Node == node {
			return true
		}
	}
	return false
}

// TestKillRestartStandby kills standby2 a second into the measured time
// and starts it again two seconds later: its errors are on it, standby1
// serves meanwhile, and standby2 is readmitted and serves again.
func TestKillRestartStandby(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "fkill", Standbys: 2, Fast: true})
	// Back before its ejection runs out: each client's connection there
	// is dead when it is readmitted.
	cfg := faultConfig("1s:kill:standby2", "1500ms:restart:standby2")
	cfg.Workload.EjectFor = 3 * time.Second
	res := measure(t, c, cfg)
	sr := res.Strategies[0]
	for _, k := range []string{"kill", "kill-done", "ejected", "restart", "restart-done", "readmitted"} {
		if !hasEvent(sr, k, "standby2") {
			t.Errorf("no %s event on standby2: %+v", k, sr.Events)
		}
	}
	var errs int64
	for _, n := range sr.Nodes {
		if n.Node == "standby2" {
			for _, v := range n.Errors {
				errs += v
			}
		}
	}
	if errs == 0 {
		t.Errorf("no error counted on standby2 after it was killed")
	}
	if n := nodeQueries(sr, "standby1", 2, 3); n == 0 {
		t.Errorf("standby1 served nothing while standby2 was down: ticks %+v", sr.Ticks)
	}
	// Restarted at 1.5s, readmitted 3s after its last error: it serves
	// again by the last seconds.
	if n := nodeQueries(sr, "standby2", 6, 8); n == 0 {
		t.Errorf("standby2 served nothing after its restart: ticks %+v", sr.Ticks)
	}
	if sr.Failed != 0 {
		t.Errorf("%d reads failed on every try: a second try on standby1 should have served them", sr.Failed)
	}
	// Once it is back, the first readmission holds: the clients' dead
	// connections from before the kill are replaced, not each failed once
	// (and each failure ejecting it again).
	var up time.Time
	readmitted := false
	for _, e := range sr.Events {
		switch {
		case e.Node != "standby2":
		case e.Kind == "restart-done":
			up = e.At
		case e.Kind == "readmitted" && !up.IsZero():
			readmitted = true
		case e.Kind == "ejected" && readmitted:
			t.Errorf("standby2 ejected again at %.1fs after its readmission following the restart: %+v", e.T, sr.Events)
		}
	}
}

// TestFailoverUnderWrites promotes standby1 while the background writer
// writes: the writer moves to it, standby2 follows its timeline, the env
// is left consistent, the outage is measured and the rows lost agree with
// the new primary's table.
func TestFailoverUnderWrites(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "ffo", Standbys: 2, Fast: true})
	cfg := faultConfig("2s:failover:standby1")
	res := measure(t, c, cfg)
	sr := res.Strategies[0]

	if c.Primary.Name != "standby1" {
		t.Fatalf("the env's primary is %s after the failover, want standby1", c.Primary.Name)
	}
	if len(res.Failovers) != 1 || res.Failovers[0].AllStreamingMS < 0 {
		t.Fatalf("failovers %+v: want one, every standby following", res.Failovers)
	}
	d := res.Durability
	if d == nil || d.AcknowledgedRows == 0 || len(d.Outages) != 1 {
		t.Fatalf("durability %+v: want acknowledged rows and one outage", d)
	}
	o := d.Outages[0]
	if o.OldPrimary != "primary" || o.NewPrimary != "standby1" || o.Seconds <= 0 || o.Seconds > 30 {
		t.Errorf("outage %+v", o)
	}
	t.Logf("write unavailability %.1f ms; %d acknowledged, %d lost; %+v", o.Seconds*1000, d.AcknowledgedRows, d.RowsLost, res.Failovers[0])
	ctx := context.Background()
	checks := env.Verify(ctx, c)
	for _, ch := range checks {
		if !ch.Pass {
			t.Errorf("env verify after the failover: %s: %s", ch.Name, ch.Detail)
		}
	}
	conn, err := pgx.Connect(ctx, c.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var streaming int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = 'standby2'`).Scan(&streaming); err != nil {
		t.Fatal(err)
	}
	if streaming != 1 {
		t.Errorf("standby2 does not stream from standby1")
	}
	// The rows the run wrote while reading are the ids above the seed:
	// every acknowledged one that survived is there, plus at most the
	// writes in flight when the primary died (committed, never
	// acknowledged: a batch of the background writer).
	var written int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pgbenchx.orders WHERE id > $1`, cfg.Workload.Scale).Scan(&written); err != nil {
		t.Fatal(err)
	}
	kept := d.AcknowledgedRows - d.RowsLost
	if d.RowsLost < 0 || written < kept || written > kept+int64(cfg.Workload.WriteRate) {
		t.Errorf("the new primary holds %d rows written by the run; the run says %d acknowledged, %d lost", written, d.AcknowledgedRows, d.RowsLost)
	}
	// Routing learnt the roles: once promoted, standby1 gets no reads
	// (no --read-primary); standby2 serves them.
	if n := nodeQueries(sr, "standby1", 5, 8); n != 0 {
		t.Errorf("standby1 served %d reads as the primary", n)
	}
	if n := nodeQueries(sr, "standby2", 5, 8); n == 0 {
		t.Errorf("standby2 served nothing after the failover")
	}
	if !hasEvent(sr, "writes-resumed", "standby1") {
		t.Errorf("no writes-resumed event: %+v", sr.Events)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "fault") {
			t.Errorf("warning: %s", w)
		}
	}
}

// TestSyncFailoverLosesNothing fails over onto the synchronous standby of
// a FIRST 1 env under writes: every acknowledged row is on it, and the new
// primary waits for the standby that remains.
func TestSyncFailoverLosesNothing(t *testing.T) {
	rule, err := env.ParseSync("FIRST 1 (standby1)")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := envtest.Up(t, env.Spec{Name: "fsfo", Standbys: 2, Fast: true, Sync: rule})
	res := measure(t, c, faultConfig("2s:failover:standby1"))
	d := res.Durability
	if d == nil || d.AcknowledgedRows == 0 || len(res.Failovers) != 1 {
		t.Fatalf("durability %+v, failovers %+v", d, res.Failovers)
	}
	t.Logf("%d acknowledged, %d lost; %+v", d.AcknowledgedRows, d.RowsLost, res.Failovers[0])
	if d.RowsLost != 0 {
		t.Errorf("%d of %d acknowledged rows lost failing over onto the synchronous standby", d.RowsLost, d.AcknowledgedRows)
	}
	if got := res.Failovers[0].SynchronousStandbyNames; got != "FIRST 1 (standby2)" || c.Sync != got {
		t.Errorf("the new primary's rule: %q (state %q), want FIRST 1 (standby2)", got, c.Sync)
	}
}

// TestSocketRun reads through the nodes' Unix sockets: run.json says so,
// its DSNs name the socket folder and no password, and reads succeed.
func TestSocketRun(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "fsock", Standbys: 1, Fast: true})
	target := bench.Describe(c)
	if err := target.ViaSockets(); err != nil {
		t.Fatal(err)
	}
	cfg := faultConfig()
	cfg.Workload.Duration, cfg.Workload.WriteRate = time.Second, 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Measure(ctx, target, cfg, bench.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Environment.UnixSocket {
		t.Error("run.json does not say the reads went through Unix sockets")
	}
	for _, n := range res.Environment.Nodes {
		if !strings.Contains(n.DSN, "host="+url.QueryEscape(c.Primary.SocketDir)) || strings.Contains(n.DSN, c.Primary.Password) {
			t.Errorf("%s: DSN %q: want the socket folder, no password", n.Name, n.DSN)
		}
	}
	if n := res.Strategies[0].Total().TotalCount(); n == 0 {
		t.Error("no read succeeded through the sockets")
	}
}
