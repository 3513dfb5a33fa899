package metrics

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadgenRun is one load generator's run: its own latencies, offset by
// seed so the generators' distributions differ and a wrong merge shows.
func loadgenRun(label string, seed int64, strategies ...string) (*Result, map[string][]int64) {
	values := map[string][]int64{} // strategy/node/kind -> every value recorded
	r := &Result{
		Schema: SchemaVersion, Label: label,
		StartedAt: time.Date(2025, 3, 14, 9, 0, int(seed), 0, time.UTC),
		Config:    Config{Clients: 8, Rate: 500},
		Environment: Environment{Standbys: 2, Nodes: []NodeInfo{
			{Name: "primary", Role: "primary"}, {Name: "standby1", Role: "standby"}, {Name: "standby2", Role: "standby"}}},
	}
	for _, s := range strategies {
		from := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
		sr := &StrategyResult{Strategy: s, Seconds: 10 + float64(seed), CPU: CPU{Cores: 8, LoadGenCores: 0.5, HostBusyCores: 3},
			MeasuredFrom: from, MeasuredTo: from.Add(time.Duration(10+seed) * time.Second), Failed: seed, Unsent: 1, NoTarget: 1}
		for ni, node := range []string{"primary", "standby1", "standby2"} {
			nr := &NodeResult{Node: node, Role: "standby", Kinds: map[string]*Hist{},
				Errors: map[string]int64{"client_timeout": seed}, ErrorSamples: map[string]string{"client_timeout": label},
				Retries: 2, StaleReads: seed, StaleChecked: 100, FailedLatency: NewHist()}
			nr.FailedLatency.RecordUS(1_000_000)
			for _, kind := range []string{"point", "range"} {
				h := NewHist()
				key := s + "/" + node + "/" + kind
				for i := range int64(200) {
					v := 100 + seed*37 + i*int64(ni+3)*11
					h.RecordUS(v)
					values[key] = append(values[key], v)
				}
				nr.Kinds[kind] = h
			}
			sr.Nodes = append(sr.Nodes, nr)
		}
		sr.CommitLatency = NewHist()
		for i := range seed * 10 {
			sr.CommitLatency.RecordUS(500 + i)
		}
		sr.Ticks = []Tick{{Second: 1, Queries: 10, P99MS: float64(seed)}, {Second: 2 + int(seed), Queries: 5, Errors: 1}}
		sr.Lag = []LagSample{{T: float64(seed), Node: "standby1"}}
		r.Strategies = append(r.Strategies, sr)
	}
	return r, values
}

func TestMergeRunsAddsHistogramsExactly(t *testing.T) {
	a, va := loadgenRun("hostA", 1, "round-robin", "lag-aware")
	b, vb := loadgenRun("hostB", 2, "lag-aware", "round-robin")
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Label != "merged" || m.Config.Clients != 16 || m.Config.Rate != 1000 {
		t.Errorf("label %q clients %d rate %v; want merged, 16, 1000", m.Label, m.Config.Clients, m.Config.Rate)
	}
	if len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "hostA") || !strings.Contains(m.Warnings[0], "hostB") {
		t.Errorf("warnings %q do not name the merged runs", m.Warnings)
	}
	for _, s := range m.Strategies {
		// 1200 reads in 11 s and 1200 in 12 s at once: the rates add up.
		if got, want := 2400/s.Seconds, 1200.0/11+1200.0/12; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: merged rate %v reads/s, want the sum of the runs' rates, %v", s.Strategy, got, want)
		}
		if s.Failed != 3 || s.Unsent != 2 || s.NoTarget != 2 || s.Reads().TotalCount() != 2400 {
			t.Errorf("%s: failed %d unsent %d no-target %d reads %d: want every counter summed", s.Strategy, s.Failed, s.Unsent, s.NoTarget, s.Reads().TotalCount())
		}
		if n := s.CommitLatency.TotalCount(); n != 30 {
			t.Errorf("%s: %d commits, want both runs' 10 + 20", s.Strategy, n)
		}
		if s.CPU.LoadGenCores != 1 || s.CPU.HostBusyCores != 3 {
			t.Errorf("%s: cpu %+v, want loadgen cores summed, host's from the first", s.Strategy, s.CPU)
		}
		if len(s.Lag) != 1 || s.Lag[0].T != 1 {
			t.Errorf("%s: lag %+v, want the first run's samples", s.Strategy, s.Lag)
		}
		wantTicks := []Tick{{Second: 1, Queries: 20, P99MS: 2}, {Second: 3, Queries: 5, Errors: 1}, {Second: 4, Queries: 5, Errors: 1}}
		if !slices.EqualFunc(s.Ticks, wantTicks, func(x, y Tick) bool {
			return x.Second == y.Second && x.Queries == y.Queries && x.Errors == y.Errors && x.P99MS == y.P99MS
		}) {
			t.Errorf("%s: ticks %+v, want %+v", s.Strategy, s.Ticks, wantTicks)
		}
		for _, n := range s.Nodes {
			if n.Errors["client_timeout"] != 3 || n.Retries != 4 || n.StaleReads != 3 || n.StaleChecked != 200 ||
				n.FailedLatency.TotalCount() != 2 || n.ErrorSamples["client_timeout"] != "hostA" {
				t.Errorf("%s/%s: counters %+v, want sums", s.Strategy, n.Node, n)
			}
			for kind, got := range n.Kinds {
				key := s.Strategy + "/" + n.Node + "/" + kind
				want := NewHist()
				for _, v := range append(slices.Clone(va[key]), vb[key]...) {
					want.RecordUS(v)
				}
				if got.TotalCount() != want.TotalCount() || got.TotalCount() != 400 {
					t.Errorf("%s: count %d, want %d", key, got.TotalCount(), want.TotalCount())
				}
				if !slices.Equal(got.Export().Counts, want.Export().Counts) {
					t.Errorf("%s: bucket counts differ from a histogram of every value", key)
				}
			}
		}
	}
	// The inputs stay as they were: merging twice gives the same counts.
	if n := a.Strategies[0].Nodes[1].Kinds["point"].TotalCount(); n != 200 {
		t.Errorf("merge modified its input: count %d", n)
	}
}

func TestMergeRejects(t *testing.T) {
	a, _ := loadgenRun("a", 1, "round-robin", "lag-aware")
	b, _ := loadgenRun("b", 2, "round-robin")
	c, _ := loadgenRun("c", 3, "round-robin", "lag-aware")
	c.Environment.Nodes = c.Environment.Nodes[:2]
	c.Strategies[0].Nodes = c.Strategies[0].Nodes[:2]
	c.Strategies[1].Nodes = c.Strategies[1].Nodes[:2]
	d, _ := loadgenRun("d", 4, "round-robin", "lag-aware")
	d.Schema = SchemaVersion + 1
	for _, tc := range []struct {
		name string
		runs []*Result
		want string
	}{
		{"one run", []*Result{a}, "at least 2"},
		{"strategies", []*Result{a, b}, "strategies"},
		{"nodes", []*Result{a, c}, "nodes"},
		{"schema", []*Result{a, d}, "schema"},
		{"nil", []*Result{a, nil}, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(tc.runs...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err %v, want one line mentioning %q", err, tc.want)
			}
		})
	}
}

func TestMergeLinesUpByWallClockAndRefusesRunsApart(t *testing.T) {
	a, _ := loadgenRun("a", 1, "round-robin")
	b, _ := loadgenRun("b", 2, "round-robin")
	// b began measuring 1 s after a (a: 0-11 s, b: 1-12 s): its second 1
	// is a's second 2.
	b.Strategies[0].MeasuredFrom = b.Strategies[0].MeasuredFrom.Add(time.Second)
	b.Strategies[0].MeasuredTo = a.Strategies[0].MeasuredTo.Add(time.Second)
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Strategies[0]
	if got, want := 2400/s.Seconds, 1200.0/11+1200.0/12; math.Abs(got-want) > 1e-9 {
		t.Errorf("merged rate %v reads/s, want the sum of the runs' rates, %v", got, want)
	}
	var secs []int
	for _, tk := range s.Ticks {
		secs = append(secs, tk.Second)
	}
	// a ticked seconds 1 and 3, b seconds 1 and 4 of its own window.
	if !slices.Equal(secs, []int{1, 2, 3, 5}) {
		t.Errorf("merged seconds %v, want [1 2 3 5]", secs)
	}
	// Together for 9 s of 14: merged, and said so.
	b.Strategies[0].MeasuredFrom = a.Strategies[0].MeasuredFrom.Add(2 * time.Second)
	b.Strategies[0].MeasuredTo = a.Strategies[0].MeasuredTo.Add(3 * time.Second)
	if m, err := Merge(a, b); err != nil || !slices.ContainsFunc(m.Warnings, func(w string) bool { return strings.Contains(w, "64%") }) {
		t.Errorf("merge of runs together for 64%% of the time: %v, warnings %q; want a warning saying so", err, m.Warnings)
	}
	// Together for 4 s of 19: each generator's load would be spread thin.
	b.Strategies[0].MeasuredFrom = a.Strategies[0].MeasuredFrom.Add(7 * time.Second)
	b.Strategies[0].MeasuredTo = a.Strategies[0].MeasuredTo.Add(8 * time.Second)
	if _, err := Merge(a, b); err == nil || !strings.Contains(err.Error(), "together for only") {
		t.Errorf("merge of runs mostly apart: %v, want a refusal", err)
	}
	// A run measured after the other had ended is refused.
	b.Strategies[0].MeasuredFrom = a.Strategies[0].MeasuredTo.Add(time.Minute)
	b.Strategies[0].MeasuredTo = b.Strategies[0].MeasuredFrom.Add(12 * time.Second)
	if _, err := Merge(a, b); err == nil || !strings.Contains(err.Error(), "different times") {
		t.Errorf("merge of runs a minute apart: %v, want a refusal", err)
	}
}

func TestMergeRefusesAnotherWorkload(t *testing.T) {
	base := Config{Mix: map[string]int{"point": 80, "range": 20}, Duration: Duration(time.Second), Clients: 8}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"more clients and rate are fine", func(c *Config) { c.Clients = 16 }, ""},
		{"open vs closed loop", func(c *Config) { c.Rate = 100 }, "open loop"},
		{"another mix", func(c *Config) { c.Mix = map[string]int{"point": 100} }, "mix"},
		{"another duration", func(c *Config) { c.Duration = Duration(2 * time.Second) }, "duration"},
		{"another synchronous_commit", func(c *Config) { c.Commit = "remote_apply" }, "synchronous_commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base
			b.Mix = maps.Clone(base.Mix)
			tt.edit(&b)
			if got := workloadDiff(base, b); !strings.Contains(got, tt.want) || (tt.want == "") != (got == "") {
				t.Errorf("workloadDiff = %q, want %q", got, tt.want)
			}
		})
	}
}
