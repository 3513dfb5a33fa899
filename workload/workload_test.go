package workload_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

func testConfig(strategies ...routing.Strategy) workload.Config {
	mix, _ := workload.ParseMix("point=80,range=15,report=5")
	return workload.Config{
		Strategies: strategies, Duration: 3 * time.Second, Warmup: 500 * time.Millisecond, Clients: 4,
		Mix: mix, Scale: 2000, WriteRows: 1000, WriteBatch: 100, WriteRate: 200, MaxTries: 2,
		EjectFor: 5 * time.Second, MaxLagBytes: 1 << 20, MaxLagTime: 500 * time.Millisecond, LagFallback: routing.FallbackPrimary,
		LagInterval: 50 * time.Millisecond, Heartbeat: 50 * time.Millisecond, Settle: 30 * time.Second,
		LocalProcesses: true,
	}
}

// run builds an env and runs the scenario on it.
func run(t *testing.T, spec env.Spec, cfg workload.Config) *metrics.Result {
	t.Helper()
	c, _ := envtest.Up(t, spec)
	var nodes []workload.Node
	var maxDelay time.Duration
	for _, n := range c.Nodes() {
		nodes = append(nodes, workload.Node{Name: n.Name, Role: n.Role, DSN: n.DSN()})
		maxDelay = max(maxDelay, n.ApplyDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc, err := workload.New(ctx, nodes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.MaxApplyDelay = maxDelay
	res := &metrics.Result{}
	if err := sc.Run(ctx, res, workload.Hooks{}); err != nil {
		t.Fatal(err)
	}
	if res.Write == nil || !res.Write.CountsEqual || res.Write.Rows != int64(cfg.WriteRows) {
		t.Fatalf("write phase: %+v", res.Write)
	}
	for node, n := range res.Write.RowCounts {
		if n != int64(cfg.Scale+cfg.WriteRows) {
			t.Errorf("%s has %d orders, want %d", node, n, cfg.Scale+cfg.WriteRows)
		}
	}
	return res
}

func queries(sr *metrics.StrategyResult) map[string]int64 {
	out := map[string]int64{}
	for _, n := range sr.Nodes {
		out[n.Node] = n.Total().TotalCount()
	}
	return out
}

func share(sr *metrics.StrategyResult, node string) float64 {
	q := queries(sr)
	var total int64
	for _, v := range q {
		total += v
	}
	if total == 0 {
		return 0
	}
	return float64(q[node]) / float64(total)
}

func staleRate(sr *metrics.StrategyResult) float64 {
	var stale, checked int64
	for _, n := range sr.Nodes {
		stale += n.StaleReads
		checked += n.StaleChecked
	}
	if checked == 0 {
		return 0
	}
	return float64(stale) / float64(checked)
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	res := run(t, env.Spec{Name: "wrr", Standbys: 2, Fast: true}, testConfig("round-robin"))
	sr := res.Strategies[0]
	q := queries(sr)
	if q["primary"] != 0 {
		t.Errorf("primary served %d reads without --read-primary", q["primary"])
	}
	if q["standby1"] < 100 || q["standby2"] < 100 {
		t.Fatalf("too few reads to judge: %v", q)
	}
	if s := share(sr, "standby1"); s < 0.47 || s > 0.53 {
		t.Errorf("standby1 share %.3f, want 0.5 within 3 points (%v)", s, q)
	}
	if len(sr.Ticks) < 2 || len(sr.Lag) == 0 {
		t.Errorf("ticks %d, lag samples %d", len(sr.Ticks), len(sr.Lag))
	}
	// Background writes ran: each standby was sent WAL, and its walsender,
	// on this host, is visible.
	if len(sr.PrimaryCost) != 2 {
		t.Fatalf("primary cost %+v, want one entry per standby", sr.PrimaryCost)
	}
	for _, c := range sr.PrimaryCost {
		if c.WALBytesPerSec <= 0 || c.WalsenderCores < 0 {
			t.Errorf("%s: WAL %.0f B/s, walsender %.3f cores", c.Node, c.WALBytesPerSec, c.WalsenderCores)
		}
	}
}

func TestLagAwareAvoidsDelayedStandby(t *testing.T) {
	spec := env.Spec{Name: "wlag", Standbys: 2, Fast: true, ApplyDelay: map[string]time.Duration{"standby2": time.Second}}
	res := run(t, spec, testConfig("lag-aware", "round-robin"))
	la, rr := res.Strategies[0], res.Strategies[1]
	if s := share(la, "standby2"); s > 0.05 {
		t.Errorf("lag-aware sent %.1f%% of reads to the 1s-delayed standby2 (%v)", 100*s, queries(la))
	}
	if s := share(rr, "standby2"); s < 0.4 || s > 0.6 {
		t.Errorf("round-robin sent %.1f%% to standby2, want about half (%v)", 100*s, queries(rr))
	}
	if staleRate(la) >= staleRate(rr) {
		t.Errorf("stale rate lag-aware %.3f not below round-robin %.3f", staleRate(la), staleRate(rr))
	}
	var peak float64
	for _, cu := range res.Write.Standbys {
		if cu.Node == "standby2" {
			peak = cu.PeakLagMS
		}
	}
	if peak < 500 {
		t.Errorf("standby2 peak time lag in the write phase %.0fms, want about its 1s delay", peak)
	}
}

func TestCausalReadsYourWrites(t *testing.T) {
	spec := env.Spec{Name: "wcausal", Standbys: 2, Fast: true, ApplyDelay: map[string]time.Duration{"standby2": time.Second}}
	cfg := testConfig("causal", "round-robin")
	cfg.SessionWrites = 5
	res := run(t, spec, cfg)
	causal, rr := res.Strategies[0], res.Strategies[1]
	if causal.RYWChecks == 0 || causal.RYWViolation != 0 {
		t.Errorf("causal: %d of %d reads of the client's own last write missed it, want 0", causal.RYWViolation, causal.RYWChecks)
	}
	if rr.RYWViolation == 0 {
		t.Errorf("round-robin with a 1s-delayed standby never missed a client's own write (%d checks): the check cannot fail", rr.RYWChecks)
	}
}

func TestLeastConnFavoursFasterStandby(t *testing.T) {
	// The same query sleeps 5 ms on standby2 only (cluster_name names the
	// node): a slower node holds its queries longer, so least-conn, which
	// counts queries in flight, must send it fewer; round-robin cannot tell.
	cfg := testConfig("least-conn", "round-robin")
	cfg.Mix = []workload.Weighted{{Kind: "point", Weight: 0}}
	cfg.Custom = []workload.CustomQuery{{Name: "slow_on_standby2", Weight: 1,
		SQL: `SELECT pg_sleep(CASE WHEN current_setting('cluster_name') LIKE '%standby2' THEN 0.005 ELSE 0 END)`}}
	cfg.WriteRate = 0
	res := run(t, env.Spec{Name: "wlc", Standbys: 2, Fast: true}, cfg)
	lc, rr := res.Strategies[0], res.Strategies[1]
	if s := share(lc, "standby1"); s < 0.65 {
		t.Errorf("least-conn gave the fast standby1 %.1f%% of reads, want clearly more than half (%v)", 100*s, queries(lc))
	}
	if s := share(rr, "standby1"); s < 0.45 || s > 0.55 {
		t.Errorf("round-robin gave standby1 %.1f%%, want about half (%v)", 100*s, queries(rr))
	}
}

func TestSlowReadsTimeOutAndAreCounted(t *testing.T) {
	// Every read sleeps 200 ms under a 40 ms query timeout (statement_timeout
	// 30 ms): each is cancelled by the server, counted as a timeout on its
	// node and retried elsewhere; nothing crashes and none succeeds.
	cfg := testConfig("round-robin")
	cfg.Duration, cfg.Warmup, cfg.WriteRows, cfg.WriteRate = time.Second, 0, 0, 0
	cfg.QueryTimeout = 40 * time.Millisecond
	cfg.Mix = []workload.Weighted{{Kind: "point", Weight: 0}}
	cfg.Custom = []workload.CustomQuery{{Name: "slow", Weight: 1, SQL: `SELECT pg_sleep(0.2)`}}
	c, _ := envtest.Up(t, env.Spec{Name: "wto", Standbys: 2, Fast: true})
	var nodes []workload.Node
	for _, n := range c.Nodes() {
		nodes = append(nodes, workload.Node{Name: n.Name, Role: n.Role, DSN: n.DSN()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc, err := workload.New(ctx, nodes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	res := &metrics.Result{}
	if err := sc.Run(ctx, res, workload.Hooks{}); err != nil {
		t.Fatal(err)
	}
	sr := res.Strategies[0]
	var timeouts, retries, ok int64
	for _, n := range sr.Nodes {
		// The server cancels at its statement_timeout, just under ours.
		timeouts += n.Errors["57014 query_canceled"] + n.Errors[workload.LabelClientTimeout]
		retries += n.Retries
		ok += n.Total().TotalCount()
	}
	if timeouts == 0 || retries == 0 || sr.Failed == 0 {
		t.Errorf("timeouts %d, retries %d, failed reads %d: want all > 0", timeouts, retries, sr.Failed)
	}
	if ok != 0 {
		t.Errorf("%d reads recorded as successful although every one times out", ok)
	}
	// Every read is in the end-to-end histogram once: failed after two
	// tries, or cut off by the end.
	if got, want := sr.EndToEnd.TotalCount(), sr.Failed+sr.Unfinished; got != want {
		t.Errorf("end-to-end reads %d, want failed %d + unfinished %d", got, sr.Failed, sr.Unfinished)
	}
}

// TestLaterPhasesStartClean runs two strategies on the same connections:
// the first phase's end cuts its reads short through each socket's
// deadline, and the second phase's reads must not inherit it. Without a
// query timeout every try asks for the same (no) deadline, so only the
// phase end's mark makes it be set again; with one, each try's deadline
// is later than the last.
func TestLaterPhasesStartClean(t *testing.T) {
	for _, timeout := range []time.Duration{0, 2 * time.Second} {
		t.Run(timeout.String(), func(t *testing.T) {
			cfg := testConfig("round-robin", "random")
			cfg.Duration, cfg.Warmup, cfg.QueryTimeout = 2*time.Second, 0, timeout
			res := run(t, env.Spec{Name: "wphases", Standbys: 1, Fast: true}, cfg)
			for _, sr := range res.Strategies {
				var reads int64
				for _, n := range sr.Nodes {
					reads += n.Total().TotalCount()
					if len(n.Errors) > 0 {
						t.Errorf("%s on %s: errors %v", sr.Strategy, n.Node, n.Errors)
					}
				}
				if reads < 100 || sr.Failed != 0 {
					t.Errorf("%s: %d reads, %d failed", sr.Strategy, reads, sr.Failed)
				}
			}
		})
	}
}

// TestCutReadsAreCancelled ends a phase while every read is in a 30 s
// query: the reads are cut off (not counted as done or failed) and the
// server is asked to cancel them, so that no backend keeps working into
// whatever runs next.
func TestCutReadsAreCancelled(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "wcut", Standbys: 1, Fast: true})
	cfg := testConfig(routing.RoundRobin)
	cfg.Duration, cfg.Warmup, cfg.WriteRows, cfg.WriteRate, cfg.Clients, cfg.QueryTimeout = time.Second, 0, 0, 0, 2, 0
	// The warm-up read before the phase (id 1) does not sleep.
	cfg.Mix, cfg.Custom = nil, []workload.CustomQuery{{Name: "sleepy", Weight: 1, SQL: "SELECT pg_sleep(CASE WHEN $1 > 1 THEN 30 ELSE 0 END)"}}
	res, err := runWith(t, c, cfg, workload.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if sr := res.Strategies[0]; sr.Unfinished == 0 || sr.Failed != 0 {
		t.Fatalf("unfinished %d, failed %d: want the reads cut off", sr.Unfinished, sr.Failed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.Standbys[0].DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(CASE%' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d cut-off reads still running on the standby", n)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
