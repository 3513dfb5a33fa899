package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
			if c.mark == "n/a" && !strings.Contains(md.String(), "Single run per cell: deltas carry no significance test.") {
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
