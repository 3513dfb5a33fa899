package bench_test

import (
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
)

// TestSlowLinkRun reads from a standby behind a 30 ms link: round-robin
// pays the link on its reads there (p50 up by the delay, run.json names
// the link), and lag-aware (whose limit the link's lag passes) and
// nearest (whose reads there are slow) send it next to nothing.
func TestSlowLinkRun(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "fslow", Standbys: 2, Fast: true,
		NetLinks: map[string]env.Link{"standby2": {Delay: 30 * time.Millisecond}}})
	cfg := faultConfig()
	cfg.Workload.Strategies = []routing.Strategy{routing.RoundRobin, routing.LagAware, routing.Nearest}
	cfg.Workload.Duration, cfg.Workload.MaxLagTime = 2*time.Second, 10*time.Millisecond
	res := measure(t, c, cfg)
	if got := res.Environment.NetLinks["standby2"]; got != "+30ms round trip" {
		t.Errorf("run.json net_links standby2 = %q", got)
	}
	p50 := func(sr *metrics.StrategyResult, node string) float64 {
		for _, n := range sr.Nodes {
			if n.Node == node {
				return float64(n.Total().ValueAtQuantile(50)) / 1000
			}
		}
		t.Fatalf("%s: no %s", sr.Strategy, node)
		return 0
	}
	rr := res.Strategies[0]
	// Its replication crosses the link too: while writes run, its time
	// lag reaches past standby1's by about the link's one-way delay.
	maxLag := func(node string) float64 {
		var m float64
		for _, l := range rr.Lag {
			if l.Node == node && l.MSUpper != nil {
				m = max(m, *l.MSUpper)
			}
		}
		return m
	}
	if a, b := maxLag("standby1"), maxLag("standby2"); b < a+10 {
		t.Errorf("largest time lag: standby1 %.1f ms, standby2 %.1f ms: want standby2's at least 10 ms more", a, b)
	}
	if a, b := p50(rr, "standby1"), p50(rr, "standby2"); b-a < 25 {
		t.Errorf("round-robin p50: standby1 %.3f ms, standby2 %.3f ms: want standby2 at least 25 ms above", a, b)
	}
	share := func(sr *metrics.StrategyResult, node string) float64 {
		var mine, all int64
		for _, n := range sr.Nodes {
			all += n.Total().TotalCount()
			if n.Node == node {
				mine = n.Total().TotalCount()
			}
		}
		return float64(mine) / float64(all)
	}
	for _, sr := range res.Strategies[1:] {
		if s := share(sr, "standby2"); s > 0.05 {
			t.Errorf("%s sent %.1f%% of its reads over the slow link, want under 5%%", sr.Strategy, 100*s)
		}
	}
}

// TestPartitionRun cuts standby2's link for two seconds mid-run: its
// reads time out there (and go elsewhere on their second try), and once
// healed it is readmitted and serves again.
func TestPartitionRun(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "fpart", Standbys: 2, Fast: true,
		NetLinks: map[string]env.Link{"standby2": {Delay: time.Millisecond}}})
	cfg := faultConfig("1s:partition:standby2", "3s:heal:standby2")
	cfg.Workload.Duration, cfg.Workload.QueryTimeout = 7*time.Second, 300*time.Millisecond
	res := measure(t, c, cfg)
	sr := res.Strategies[0]
	for _, k := range []string{"partition", "partition-done", "heal", "heal-done", "ejected"} {
		if !hasEvent(sr, k, "standby2") {
			t.Errorf("no %s event on standby2: %+v", k, sr.Events)
		}
	}
	var errs int64
	for _, n := range sr.Nodes {
		if n.Node == "standby2" {
			errs = n.Errors["client_timeout"]
		}
	}
	if errs == 0 {
		t.Errorf("no read timed out on standby2 while its link was cut")
	}
	if n := nodeQueries(sr, "standby2", 6, 7); n == 0 {
		t.Errorf("standby2 served nothing after its link healed: ticks %+v", sr.Ticks)
	}
	if sr.Failed != 0 {
		t.Errorf("%d reads failed on every try: standby1 should have served them", sr.Failed)
	}
}
