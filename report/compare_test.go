package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// compareRuns are the stored fixtures: one local cluster measured with 1
// and then 2 standbys, two runs each, of round-robin and lag-aware.
var compareRuns = []string{"s1-r1", "s1-r2", "s2-r1", "s2-r2"}

// compareRun builds a fixture run with known histograms: per standby,
// queries spread evenly over a latency range, so the figures in the
// goldens can be checked by hand. rep shifts counts a little so repeats
// differ like real ones.
func compareRun(standbys, rep int) *metrics.Result {
	start := time.Date(2025, 3, 14, 10+standbys, 10*rep, 0, 0, time.UTC)
	r := &metrics.Result{
		Schema: metrics.SchemaVersion, Tool: "pgbenchx test",
		Label: fmt.Sprintf("s%d-r%d", standbys, rep), StartedAt: start, EndedAt: start.Add(10 * time.Second),
		Config: metrics.Config{Strategies: []string{"round-robin", "lag-aware"}, Duration: mdur(3 * time.Second),
			Clients: 4, Mix: map[string]int{"point": 1}, Scale: 1, LagInterval: mdur(time.Second), StaleSample: 1},
		Environment: metrics.Environment{Provider: "local", Name: "bench", ServerVersion: "17.2", Standbys: standbys,
			Cores: 8, Host: "bench-host", Nodes: []metrics.NodeInfo{{Name: "primary", Role: "primary"}}},
	}
	if standbys == 2 {
		r.Environment.CPUCaps = map[string]float64{"standby1": 0.5, "standby2": 0.5}
	}
	for i := 1; i <= standbys; i++ {
		r.Environment.Nodes = append(r.Environment.Nodes, metrics.NodeInfo{Name: fmt.Sprintf("standby%d", i), Role: "standby"})
	}
	for si, name := range r.Config.Strategies {
		s := &metrics.StrategyResult{Strategy: name, Seconds: 3,
			CPU: metrics.CPU{Cores: 8, LoadGenCores: 0.5 + 0.1*float64(si), HostBusyCores: 2 + float64(standbys),
				ServerCores: 1.5 + float64(standbys), HostSaturated: standbys == 2 && si == 0 && rep == 1}}
		s.Nodes = append(s.Nodes, &metrics.NodeResult{Node: "primary", Role: "primary", Kinds: map[string]*metrics.Hist{"point": metrics.NewHist()}})
		for i := 1; i <= standbys; i++ {
			node := fmt.Sprintf("standby%d", i)
			// lag-aware sends less to the lagging standby2, and sees
			// fewer stale reads for it.
			n := 150 + 10*rep + 40*(2-standbys)*(i-1)
			stale := int64(2 + rep)
			if si == 1 {
				n -= 20 * (i - 1)
				stale = int64(rep - 1)
			}
			lo := int64(400 + 100*standbys + 50*i)
			s.Nodes = append(s.Nodes, &metrics.NodeResult{Node: node, Role: "standby",
				Kinds:      map[string]*metrics.Hist{"point": hist(n, lo, 4*lo)},
				StaleReads: stale, StaleChecked: int64(n)})
			s.Lag = append(s.Lag,
				metrics.LagSample{T: 0.5, Node: node, Bytes: i64(int64(1024 * i * rep)), MS: f64(float64(i * rep))},
				metrics.LagSample{T: 1.5, Node: node, Bytes: i64(int64(4096 * i)), MS: f64(float64(3 * i))})
			if standbys == 2 {
				ws := 0.01 * float64(i)
				if i == 2 {
					ws = -1
				}
				s.PrimaryCost = append(s.PrimaryCost, metrics.StandbyCost{Node: node, WALBytesPerSec: 50000, WalsenderCores: ws})
				if s.ThrottledSec == nil {
					s.ThrottledSec = map[string]float64{}
				}
				s.ThrottledSec[node] = 0.4 * float64(rep)
			}
		}
		if standbys == 1 {
			s.PrimaryCost = []metrics.StandbyCost{{Node: "standby1", WALBytesPerSec: 50000, WalsenderCores: 0.01}}
		}
		s.Ticks = []metrics.Tick{{Second: 1, Queries: 100, P50MS: 1, P99MS: 2}, {Second: 2, Queries: 110, P50MS: 1, P99MS: 2}}
		r.Strategies = append(r.Strategies, s)
	}
	if rep == 2 && standbys == 2 {
		r.Strategies[1].Nodes[2].Errors = map[string]int64{"conflict": 2}
	}
	return r
}

func writeCompareFixtures(t *testing.T) {
	t.Helper()
	dir := filepath.Join("testdata", "compare")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range compareRuns {
		var standbys, rep int
		if _, err := fmt.Sscanf(name, "s%d-r%d", &standbys, &rep); err != nil {
			t.Fatal(err)
		}
		b, err := json.MarshalIndent(compareRun(standbys, rep), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func loadCompareFixtures(t *testing.T) []Sample {
	t.Helper()
	if *update {
		writeCompareFixtures(t)
	}
	var out []Sample
	for _, name := range compareRuns {
		r, err := metrics.Load(filepath.Join("testdata", "compare", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Sample{Label: name, Dir: "../" + name, Result: r})
	}
	return out
}

func TestCompareGolden(t *testing.T) {
	c, err := Compare(loadCompareFixtures(t))
	if err != nil {
		t.Fatal(err)
	}
	var md, csv, table bytes.Buffer
	if err := c.WriteMarkdown(&md, []string{"scaling.svg"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	golden(t, "compare/comparison.md", md.Bytes())
	golden(t, "compare/comparison.csv", csv.Bytes())
	golden(t, "compare/table.txt", table.Bytes())
	for _, want := range []string{"read scaling 1.", "co-location, not replica scaling",
		"not visible", "![scaling](scaling.svg)", "[s1-r1](../s1-r1/)", "All runs come from one cluster"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("comparison.md lacks %q", want)
		}
	}
}

// TestCompareMergesHistograms checks a cell's percentiles come from its
// repeats' histograms merged, and its qps is the mean of theirs.
func TestCompareMergesHistograms(t *testing.T) {
	a, b := compareRun(1, 1), compareRun(1, 2)
	c, err := Compare([]Sample{{Result: a}, {Result: b}})
	if err != nil {
		t.Fatal(err)
	}
	cell := c.Cell("round-robin", 1)
	h := metrics.NewHist()
	h.Add(a.Strategies[0].Total())
	h.Add(b.Strategies[0].Total())
	if got, want := cell.P99, h.Summary().P99; got != want {
		t.Errorf("p99 %v, want %v from the merged histogram", got, want)
	}
	qa, qb := strategyTotal(a.Strategies[0]).QPS, strategyTotal(b.Strategies[0]).QPS
	if got, want := cell.QPS, (qa+qb)/2; math.Abs(got-want) > 1e-9 {
		t.Errorf("qps %v, want the mean %v", got, want)
	}
	if c.Samples[0].Label != "s1-r1" {
		t.Errorf("unlabelled sample took label %q, want the run's", c.Samples[0].Label)
	}
}

// scaled is a run whose round-robin reads took secondsFor(qps) to serve
// 1000 queries, so its qps is what the test wants.
func scaled(standbys int, qps float64) Sample {
	r := compareRun(standbys, 1)
	r.Strategies = r.Strategies[:1]
	var n int64
	for _, node := range r.Strategies[0].Nodes {
		n += node.Total().TotalCount()
	}
	r.Strategies[0].Seconds = float64(n) / qps
	return Sample{Result: r}
}

func TestCompareSignificance(t *testing.T) {
	for _, c := range []struct {
		name      string
		one, two  []float64
		mark      string
		inHeading string
	}{
		{"clearly faster", []float64{100, 101, 99}, []float64{150, 151, 149}, "yes", "read scaling 1.50 ± 0.02 (2 vs 1 standbys, p<0.001)"},
		{"noise", []float64{100, 110, 90}, []float64{101, 109, 91}, "~", "read scaling 1.00 ± 0.13 ~ (2 vs 1 standbys, p=0.968: inside run-to-run noise)"},
		{"single runs", []float64{100}, []float64{142}, "n/a", "read scaling 1.42 (2 vs 1 standbys; 1 vs 1 runs: not tested)"},
		{"no spread", []float64{100, 100, 100}, []float64{150, 150, 150}, "n/a", "read scaling 1.50 (2 vs 1 standbys; 3 vs 3 runs, no run-to-run spread on either side: not tested)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var samples []Sample
			for _, q := range c.one {
				samples = append(samples, scaled(1, q))
			}
			for _, q := range c.two {
				samples = append(samples, scaled(2, q))
			}
			cmp, err := Compare(samples)
			if err != nil {
				t.Fatal(err)
			}
			f := cmp.Scaling()
			if len(f) != 1 || f[0].Sig.Mark() != c.mark {
				t.Fatalf("scaling %+v, want one factor marked %q", f, c.mark)
			}
			var md bytes.Buffer
			if err := cmp.WriteMarkdown(&md, nil); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(md.String(), c.inHeading) {
				t.Errorf("comparison.md lacks %q:\n%s", c.inHeading, md.String())
			}
			if len(c.one) == 1 && !strings.Contains(md.String(), "Single run per cell: deltas carry no significance test.") {
				t.Error("comparison.md does not say single runs carry no test")
			}
			pts := cmp.Points()
			if len(pts) != 2 || pts[0].Standbys != 1 || math.Abs(pts[1].QPS-meanOf(c.two)) > 1e-6 {
				t.Errorf("points %+v", pts)
			}
		})
	}
}

func TestCompareRejects(t *testing.T) {
	if _, err := Compare(nil); err == nil {
		t.Error("Compare(nil) succeeded")
	}
	if _, err := Compare([]Sample{{Label: "x"}}); err == nil {
		t.Error("a sample without a result was accepted")
	}
	r := compareRun(1, 1)
	r.Strategies = nil
	if _, err := Compare([]Sample{{Label: "write-only", Result: r}}); err == nil || !strings.Contains(err.Error(), "write-only") {
		t.Errorf("a run without reads: err %v, want it named", err)
	}
}

// TestWorkloadDiffs changes one setting at a time and checks the
// comparison names it, its values and which runs had each.
func TestWorkloadDiffs(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(r *metrics.Result)
		setting string
		want    string // the diff's line; "" when nothing differs
	}{
		{"same", func(*metrics.Result) {}, "", ""},
		{"clients", func(r *metrics.Result) { r.Config.Clients = 8 }, "clients", "clients: 4 in A, B; 8 in C"},
		{"open loop", func(r *metrics.Result) { r.Config.Rate = 500 }, "rate", "rate: closed loop in A, B; open loop at 500 queries/s in C"},
		{"mix", func(r *metrics.Result) { r.Config.Mix = map[string]int{"point": 80, "range": 20} }, "mix", "mix: point=1 in A, B; point=80,range=20 in C"},
		{"query file", func(r *metrics.Result) { r.Config.QueryFile = "q.sql" }, "query file", "query file: none in A, B; q.sql in C"},
		{"scale", func(r *metrics.Result) { r.Config.Scale = 100000 }, "scale", "scale: 1 row in A, B; 100,000 rows in C"},
		{"write rate", func(r *metrics.Result) { r.Config.WriteRate = 200 }, "write rate", "write rate: none in A, B; 200 rows/s in C"},
		{"duration", func(r *metrics.Result) { r.Config.Duration = mdur(30 * time.Second) }, "duration", "duration: 3s in A, B; 30s in C"},
		{"cpu caps", func(r *metrics.Result) { r.Environment.CPUCaps = map[string]float64{"standby1": 0.5} }, "CPU cap of standby1", "CPU cap of standby1: none in A, B; 0.5 cores in C"},
		{"settings", func(r *metrics.Result) { r.Environment.Settings = []string{"shared_buffers=1GB"} }, "server setting shared_buffers", "server setting shared_buffers: not set in A, B; 1GB in C"},
		{"server version", func(r *metrics.Result) { r.Environment.ServerVersion = "16.4" }, "server version", "server version: 17.2 in A, B; 16.4 in C"},
		{"provider", func(r *metrics.Result) { r.Environment.Provider = "docker" }, "provider", "provider: local in A, B; docker in C"},
		{"fast", func(r *metrics.Result) { r.Environment.Fast = true }, "fsync", "fsync: on in A, B; off (--fast) in C"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b, cc := compareRun(1, 1), compareRun(1, 2), compareRun(2, 1)
			cc.Environment.CPUCaps = nil
			c.change(cc)
			cmp, err := Compare([]Sample{{Label: "A", Result: a}, {Label: "B", Result: b}, {Label: "C", Result: cc}})
			if err != nil {
				t.Fatal(err)
			}
			diffs := cmp.WorkloadDiffs()
			var md, table bytes.Buffer
			if err := cmp.WriteMarkdown(&md, nil); err != nil {
				t.Fatal(err)
			}
			if err := cmp.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if len(diffs) != 0 {
					t.Errorf("diffs %v, want none", diffs)
				}
				if !strings.Contains(md.String(), "Every run had the same workload") || strings.Contains(table.String(), "warning") {
					t.Errorf("same workloads reported as different:\n%s\n%s", md.String(), table.String())
				}
				return
			}
			if len(diffs) != 1 || diffs[0].Setting != c.setting || diffs[0].String() != c.want {
				t.Fatalf("diffs %v, want one: %q", diffs, c.want)
			}
			if !strings.Contains(md.String(), "**The runs' workloads or settings differ**") || !strings.Contains(md.String(), "- "+c.want+"\n") {
				t.Errorf("comparison.md lacks the difference %q:\n%s", c.want, md.String())
			}
			if want := "warning: the runs' workloads or settings differ (" + c.setting + "): see comparison.md"; !strings.Contains(table.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, table.String())
			}
		})
	}
}

// TestWorkloadDiffsCapsPerNode: a node only some runs have (standby2 with
// 2 standbys) is compared among those runs, so the same --cpus on 1 and 2
// standbys is no difference.
func TestWorkloadDiffsCapsPerNode(t *testing.T) {
	a, b := compareRun(1, 1), compareRun(2, 1)
	a.Environment.CPUCaps = map[string]float64{"standby1": 0.5}
	b.Environment.CPUCaps = map[string]float64{"standby1": 0.5, "standby2": 0.5}
	c, err := Compare([]Sample{{Result: a}, {Result: b}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.WorkloadDiffs(); len(d) != 0 {
		t.Errorf("diffs %v, want none", d)
	}
	b.Environment.CPUCaps["standby1"] = 1
	delete(b.Environment.CPUCaps, "standby2")
	c, err = Compare([]Sample{{Result: a}, {Result: b}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.WorkloadDiffs(); len(d) != 1 || d[0].String() != "CPU cap of standby1: 0.5 cores in s1-r1; 1 core in s2-r1" {
		t.Errorf("diffs %v, want standby1's cap only", d)
	}
}

// TestCompareOpenLoop: open-loop runs get no read-scaling factor (their
// qps is what --rate asked for), and every output says why.
func TestCompareOpenLoop(t *testing.T) {
	for _, c := range []struct {
		name         string
		rate1, rate2 float64
		refused      bool
		why          string
	}{
		{"closed loop", 0, 0, false, ""},
		{"both open", 100, 100, true, "open-loop runs (--rate 100): their qps is set by --rate, not by the cluster"},
		{"one open", 0, 250, true, "open-loop runs (--rate 250)"},
		{"different rates", 100, 200, true, "(--rate 100, 200)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := scaled(1, 100), scaled(2, 160)
			a.Result.Config.Rate, b.Result.Config.Rate = c.rate1, c.rate2
			cmp, err := Compare([]Sample{a, b})
			if err != nil {
				t.Fatal(err)
			}
			f, no := cmp.Scaling(), cmp.NoScaling()
			if !c.refused {
				if len(f) != 1 || len(no) != 0 {
					t.Fatalf("closed loop: factors %+v, refused %+v", f, no)
				}
				return
			}
			if len(f) != 0 || len(no) != 1 || !strings.Contains(no[0].Why, c.why) || no[0].Standbys != 2 || no[0].BaseStandbys != 1 {
				t.Fatalf("factors %+v, refused %+v, want none and one refusal saying %q", f, no, c.why)
			}
			if math.IsNaN(no[0].P99.Change) {
				t.Error("latency changes should still compare on open-loop runs")
			}
			var md, csvb, table bytes.Buffer
			if err := cmp.WriteMarkdown(&md, nil); err != nil {
				t.Fatal(err)
			}
			if err := cmp.WriteCSV(&csvb); err != nil {
				t.Fatal(err)
			}
			if err := cmp.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if want := "- **round-robin**: no read-scaling factor (2 vs 1 standbys): " + no[0].Why + "; p50 "; !strings.Contains(md.String(), want) {
				t.Errorf("comparison.md lacks %q:\n%s", want, md.String())
			}
			if strings.Contains(md.String(), "read scaling 1.") {
				t.Errorf("comparison.md gives a factor:\n%s", md.String())
			}
			if !strings.Contains(table.String(), "n/a") || !strings.Contains(table.String(), "scaling n/a: "+no[0].Why) {
				t.Errorf("table does not say why:\n%s", table.String())
			}
			rows, err := csv.NewReader(&csvb).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			col := slices.Index(rows[0], "scaling")
			for _, row := range rows[1:] {
				if row[col] != "" || row[col+1] != "" {
					t.Errorf("csv row %q has a scaling factor", row)
				}
			}
		})
	}
}

// TestCompareJudgesEveryRead: a cell's latency is its reads end to end, so
// a read that failed after 10 s shows in compare as it does in the run's
// own report, and a threshold on it fails in both.
func TestCompareJudgesEveryRead(t *testing.T) {
	a, b := fixture(), fixture()
	b.Environment.Standbys = 1
	a.Strategies[0].EndToEnd.Add(hist(1, 10_000_000, 10_000_001))
	c, err := Compare([]Sample{{Label: "a", Result: a}, {Label: "b", Result: b}})
	if err != nil {
		t.Fatal(err)
	}
	cell := c.Cell("round-robin", 2)
	if cell == nil || cell.Max < 9_000 {
		t.Fatalf("round-robin's cell max %v ms, want the 10 s failed read", cell)
	}
	for _, v := range c.Check(mustGates(t, "round-robin:max<100ms,standby2:max<100ms", GateOnComparison)) {
		if v.Pass && strings.HasPrefix(v.Scope, "round-robin") {
			t.Errorf("%s @ %s passed with %v: the slow read and standby2's 1 s timeouts must fail it", v.Gate.Text, v.Scope, v.Measured)
		}
	}
}

// TestCompareModes checks runs of different replication modes are cells
// of their own, compared side by side: never pooled as repeats, strategy
// deltas within a mode, and what sync cost the commits shown per cell.
func TestCompareModes(t *testing.T) {
	var samples []Sample
	for _, m := range []struct {
		mode, rule string
		commitUS   int64
	}{
		{"async, commit on", "", 1000},
		{"sync ANY 1 (standby1, standby2), commit remote_apply", "ANY 1 (standby1, standby2)", 2500},
	} {
		for rep := 1; rep <= 2; rep++ {
			r := compareRun(2, rep)
			r.Config.Mode = m.mode
			r.Environment.SynchronousStandbyNames = m.rule
			for _, s := range r.Strategies {
				s.CommitLatency = hist(300, m.commitUS, m.commitUS+200)
				if m.rule != "" {
					s.RYWChecks = 100
				} else {
					s.RYWChecks, s.RYWViolation = 100, 7
				}
			}
			samples = append(samples, Sample{Label: fmt.Sprintf("%s-r%d", m.mode[:4], rep), Result: r})
		}
	}
	c, err := Compare(samples)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Modes) != 2 || len(c.Cells) != 4 {
		t.Fatalf("modes %q, %d cells; want 2 modes, 4 cells", c.Modes, len(c.Cells))
	}
	for _, cell := range c.Cells {
		if len(cell.Repeats) != 2 {
			t.Errorf("%s: %d repeats, want 2 (modes pooled?)", cell.Name, len(cell.Repeats))
		}
		if !strings.Contains(cell.Name, "["+cell.Mode+"]") {
			t.Errorf("cell name %q does not name its mode %q", cell.Name, cell.Mode)
		}
		if w := cell.Writes; !w.Known || w.Commits != 600 || math.IsNaN(w.CommitP50) {
			t.Errorf("%s: write figures %+v, want 600 commits with a p50", cell.Name, w)
		}
	}
	async, sync := c.cellIn(c.Modes[0], "lag-aware", 2), c.cellIn(c.Modes[1], "lag-aware", 2)
	if !(sync.Writes.CommitP50 > 2*async.Writes.CommitP50) {
		t.Errorf("commit p50 sync %.3f vs async %.3f: want sync above twice async", sync.Writes.CommitP50, async.Writes.CommitP50)
	}
	if d := c.StrategyDeltas(); len(d) != 2 || d[0].Mode == d[1].Mode {
		t.Errorf("strategy deltas %+v: want one per mode", d)
	}
	var md, csvb bytes.Buffer
	if err := c.WriteMarkdown(&md, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteCSV(&csvb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Replication modes", "Replication modes: async, commit on; sync ANY 1",
		"| 2 | sync ANY 1 (standby1, standby2), commit remote_apply | lag-aware | 600 | 2.",
		"| 2 | async, commit on | lag-aware | 600 | 1.", "14 of 200 (7.00%)", "0 of 200 (0.00%)",
		"| lag-aware [async, commit on] | 2 |",
		"- **sync ANY 1 (standby1, standby2), commit remote_apply** vs async, commit on, 2 standbys: commit p50 2.599 ms vs 1.099 (+136.5%)",
		"read-your-writes violations 0.00% vs 7.00%"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("comparison.md lacks %q:\n%s", want, md.String())
		}
	}
	rows, err := csv.NewReader(&csvb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	mode := slices.Index(rows[0], "mode")
	if mode < 0 || rows[1][mode] != "async, commit on" || rows[len(rows)-1][mode] != c.Modes[1] {
		t.Errorf("comparison.csv mode column: %q", rows)
	}
}
