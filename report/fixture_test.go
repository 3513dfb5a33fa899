package report

import (
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// hist records n values spread evenly over [lo, hi) microseconds: known
// inputs, so the percentiles in the golden files can be checked by hand.
func hist(n int, lo, hi int64) *metrics.Hist {
	h := metrics.NewHist()
	for i := range n {
		h.RecordUS(lo + (hi-lo)*int64(i)/int64(n))
	}
	return h
}

func i64(v int64) *int64                    { return &v }
func f64(v float64) *float64                { return &v }
func mdur(d time.Duration) metrics.Duration { return metrics.Duration(d) }

// rrReads is round-robin's end-to-end histogram, made of what its nodes
// saw: 700 successful reads, 2 of them retried after standby2's 1 s
// timeouts (their whole time), 1 read that failed on both tries, 1 cut off
// by the end, 2 open-loop slots never sent.
func rrReads() *metrics.Hist {
	h := hist(698, 400, 5000)
	h.Add(hist(2, 1_000_500, 1_001_000)) // retried: the timeout, then a fast try
	h.Add(hist(1, 1_000_900, 1_001_000)) // failed: timed out, then refused
	h.Add(hist(1, 300_000, 300_001))     // cut off at the end
	h.Add(hist(2, 40_000, 50_000))       // never sent
	return h
}

// fixture is a small run of two strategies over a primary and two
// standbys, with every kind of value the renderers must handle: a node
// that served nothing, unknown lag samples, errors, retries, stale reads.
func fixture() *metrics.Result {
	start := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	nodes := []metrics.NodeInfo{
		{Name: "primary", Role: "primary", DSN: "postgres://bench:xxxxx@127.0.0.1:54320/bench"},
		{Name: "standby1", Role: "standby", DSN: "postgres://bench:xxxxx@127.0.0.1:54321/bench"},
		{Name: "standby2", Role: "standby", DSN: "postgres://bench:xxxxx@127.0.0.1:54322/bench"},
	}
	rr := &metrics.StrategyResult{
		Strategy: "round-robin",
		Seconds:  3,
		Nodes: []*metrics.NodeResult{
			{Node: "primary", Role: "primary", Kinds: map[string]*metrics.Hist{"point": metrics.NewHist()}},
			{Node: "standby1", Role: "standby", Kinds: map[string]*metrics.Hist{
				"point": hist(300, 400, 800), "range": hist(60, 2000, 4000)},
				Retries: 2, StaleReads: 3, StaleChecked: 360},
			{Node: "standby2", Role: "standby", Kinds: map[string]*metrics.Hist{
				"point": hist(290, 500, 1000), "range": hist(50, 2500, 5000)},
				FailedLatency: hist(3, 1_000_000, 1_000_100),
				Errors:        map[string]int64{"recovery_conflict": 2, "client_timeout": 1},
				ErrorSamples: map[string]string{"recovery_conflict": "ERROR: canceling statement due to conflict with recovery (SQLSTATE 40001)",
					"client_timeout": "timeout: context deadline exceeded"},
				StaleReads: 17, StaleChecked: 340},
		},
		EndToEnd:          rrReads(),
		Failed:            1,
		Unfinished:        1,
		Unsent:            2,
		TimeLagResolution: mdur(10 * time.Millisecond),
		Events: []metrics.Event{{At: start.Add(6500 * time.Millisecond), T: 1.5, Kind: "freeze", Node: "standby2"},
			{At: start.Add(7900 * time.Millisecond), T: 2.9, Kind: "thaw", Node: "standby2", Detail: "by hand"}},
		MeasuredFrom: start.Add(5 * time.Second),
		MeasuredTo:   start.Add(8 * time.Second),
		ScheduleLag:  hist(700, 10, 210),
		Ticks: []metrics.Tick{
			{Second: 1, At: time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC), Queries: 230, Failed: 1, P50MS: 0.71, P99MS: 3.9,
				NodeQueries: map[string]int64{"primary": 0, "standby1": 120, "standby2": 110}, NodeErrors: map[string]int64{},
				LagBytes: map[string]int64{"standby1": 0, "standby2": 4096}, LagMS: map[string]float64{"standby1": 0.4, "standby2": 21.5}},
			{Second: 2, Queries: 240, Errors: 3, P50MS: 0.69, P99MS: 4.1,
				NodeQueries: map[string]int64{"primary": 0, "standby1": 130, "standby2": 110}, NodeErrors: map[string]int64{"standby2": 3},
				SlotBytes: map[string]int64{"standby1": 200, "standby2": 1 << 30},
				LagBytes:  map[string]int64{"standby1": 512}, LagMS: map[string]float64{"standby1": 0.6, "standby2": 20.25}},
			{Second: 3, Queries: 230, P50MS: 0.7, P99MS: 4.0,
				LagBytes: map[string]int64{"standby1": 0, "standby2": 2048}, LagMS: map[string]float64{"standby1": 0.5, "standby2": 20.0}},
		},
		Lag: []metrics.LagSample{
			{T: 0.1, Node: "standby1", Bytes: i64(0), MS: f64(0.4), MSUpper: f64(10.4), ReplayLag: f64(1.2), SlotBytes: i64(200)},
			{T: 0.1, Node: "standby2", Bytes: i64(4096), MS: f64(21.5), MSUpper: f64(31.5), ReplayLag: f64(120), PSRBytes: i64(6000), SlotBytes: i64(6100)},
			{T: 1.1, Node: "standby1", Bytes: i64(512), MS: f64(0.6), MSUpper: f64(10.6)},
			{T: 1.1, Node: "standby2", Bytes: nil, MS: f64(20.25), MSUpper: f64(30.25), ReplayLag: f64(118), SlotBytes: i64(1 << 30)},
			{T: 2.1, Node: "standby1", Bytes: i64(0), MS: f64(0.5), MSUpper: f64(10.5), ReplayLag: f64(2.5)},
			{T: 2.1, Node: "standby2", Bytes: i64(2048), MS: f64(20.0), MSUpper: f64(30.0)},
		},
		CPU:              metrics.CPU{Cores: 4, LoadGenCores: 0.82, HostBusyCores: 2.4},
		BackgroundWrites: 150,
		CommitLatency:    hist(60, 900, 2500),
	}
	la := &metrics.StrategyResult{
		Strategy: "lag-aware",
		Seconds:  3,
		Nodes: []*metrics.NodeResult{
			{Node: "primary", Role: "primary", Kinds: map[string]*metrics.Hist{"point": hist(40, 300, 600)}},
			{Node: "standby1", Role: "standby", Kinds: map[string]*metrics.Hist{
				"point": hist(520, 400, 800), "range": hist(100, 2000, 4000)},
				StaleReads: 1, StaleChecked: 620},
			{Node: "standby2", Role: "standby", Kinds: map[string]*metrics.Hist{"point": hist(40, 500, 1000)},
				StaleChecked: 40},
		},
		ScheduleLag: hist(700, 10, 110),
		Ticks: []metrics.Tick{
			{Second: 1, Queries: 233, P50MS: 0.62, P99MS: 3.5,
				LagBytes: map[string]int64{"standby1": 0, "standby2": 8192}, LagMS: map[string]float64{"standby1": 0.3, "standby2": 22}},
			{Second: 2, Queries: 234, P50MS: 0.61, P99MS: 3.6},
			{Second: 3, Queries: 233, P50MS: 0.6, P99MS: 3.4,
				LagBytes: map[string]int64{"standby1": 0, "standby2": 1536 * 1024}, LagMS: map[string]float64{"standby1": 0.3, "standby2": 640}},
		},
		Lag: []metrics.LagSample{
			{T: 0.1, Node: "standby1", Bytes: i64(0), MS: f64(0.3)},
			{T: 0.1, Node: "standby2", Bytes: i64(8192), MS: f64(22)},
			{T: 2.1, Node: "standby1", Bytes: i64(0), MS: f64(0.3)},
			{T: 2.1, Node: "standby2", Bytes: i64(1536 * 1024), MS: f64(640)},
		},
		CPU:              metrics.CPU{Cores: 4, LoadGenCores: 0.9, HostBusyCores: 3.8, HostSaturated: true},
		BackgroundWrites: 151,
	}
	return &metrics.Result{
		Schema:    metrics.SchemaVersion,
		Tool:      "pgbenchx test",
		Label:     "fixture",
		StartedAt: start,
		EndedAt:   start.Add(75 * time.Second),
		Config: metrics.Config{
			Strategies: []string{"round-robin", "lag-aware"},
			Duration:   mdur(3 * time.Second), Warmup: mdur(time.Second), Clients: 8, Rate: 700,
			Mix:   map[string]int{"point": 85, "range": 15},
			Scale: 1, WriteRows: 10000, WriteBatch: 500, WriteRate: 50,
			MaxLagBytes: 1 << 20, MaxLagTime: mdur(500 * time.Millisecond), LagFallback: "primary",
			MaxTries: 2, EjectFor: mdur(5 * time.Second), LagInterval: mdur(100 * time.Millisecond),
			Heartbeat: mdur(10 * time.Millisecond), StaleSample: 1, Commit: "on",
			Faults: []string{"2s:failover:standby1"},
		},
		Environment: metrics.Environment{
			Provider: "local", Name: "default", ServerVersion: "17.2", Standbys: 2, Topology: "star",
			ApplyDelays: map[string]string{"standby2": "20ms"}, Fast: true, Cores: 4, Nodes: nodes,
			SynchronousStandbyNames: "ANY 1 (standby1, standby2)",
		},
		Write: &metrics.WritePhase{
			Rows: 10000, Batch: 500, Seconds: 2.5, RowsPerSec: 4000,
			Standbys: []metrics.CatchUp{
				{Node: "standby1", CatchUpMS: 3.2, PeakLagBytes: 180 * 1024, PeakLagMS: 4.5},
				{Node: "standby2", CatchUpMS: 27.9, PeakLagBytes: 2*1024*1024 + 300*1024, PeakLagMS: 31.2},
			},
			RowCounts:     map[string]int64{"primary": 10000, "standby1": 10000, "standby2": 10000},
			CountsEqual:   true,
			CommitLatency: hist(20, 3000, 9000),
		},
		Durability: &metrics.Durability{AcknowledgedRows: 10301, RowsLost: 7, CheckedOn: "standby1",
			Outages: []metrics.Outage{{OldPrimary: "primary", NewPrimary: "standby1",
				LastAck: start.Add(7100 * time.Millisecond), FirstAck: start.Add(7412500 * time.Microsecond), Seconds: 0.3125}}},
		Failovers: []metrics.Failover{{At: start.Add(7150 * time.Millisecond), OldPrimary: "primary", NewPrimary: "standby1",
			PromoteMS: 180.5, AllStreamingMS: 1250, SynchronousStandbyNames: "ANY 1 (standby2)",
			Followers: []metrics.Follower{{Node: "standby2", How: "repointed", StreamingMS: 1250}}}},
		Strategies: []*metrics.StrategyResult{rr, la},
		Warnings: []string{
			"standby2: 1 lag sample unanswered during round-robin",
			"lag-aware: the host was saturated (3.8 of 4 cores busy): every node shares these cores, so this measures co-location, not what another replica adds",
		},
	}
}
