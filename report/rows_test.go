package report

import (
	"math"
	"testing"

	"github.com/pgbenchx/pgbenchx/metrics"
)

func TestRowsShareSumsTo100(t *testing.T) {
	sums := map[string]float64{}
	for _, row := range Rows(fixture()) {
		sums[row.Strategy] += row.SharePct
	}
	if len(sums) != 2 {
		t.Fatalf("rows cover %d strategies, want 2", len(sums))
	}
	for s, sum := range sums {
		if math.Abs(sum-100) > 1e-9 {
			t.Errorf("%s: shares sum to %v, want 100", s, sum)
		}
	}
}

func TestRowsEveryNodeIncludingIdle(t *testing.T) {
	rows := Rows(fixture())
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 2 strategies x 3 nodes", len(rows))
	}
	idle := rows[0]
	if idle.Node != "primary" || idle.Queries != 0 || idle.SharePct != 0 {
		t.Fatalf("first row %+v, want round-robin's idle primary", idle)
	}
	if !math.IsNaN(idle.P50) || !math.IsNaN(idle.Max) {
		t.Errorf("a node without queries has percentiles %v/%v, want unknown", idle.P50, idle.Max)
	}
	for _, row := range rows {
		if row.Role == metrics.RolePrimary && !math.IsNaN(row.LagBytesAvg+row.LagBytesMax+row.LagMSAvg+row.LagMSMax) {
			t.Errorf("%s/%s: the primary has lag %+v", row.Strategy, row.Node, row)
		}
	}
}

func TestRowsLagSkipsUnknownSamples(t *testing.T) {
	row := Rows(fixture())[2] // round-robin standby2: 4096, unknown, 2048
	if row.Node != "standby2" || row.LagBytesAvg != 3072 || row.LagBytesMax != 4096 {
		t.Errorf("%s lag bytes avg %v max %v, want 3072 and 4096 (unknown left out, not 0)", row.Node, row.LagBytesAvg, row.LagBytesMax)
	}
}

// Two nodes with disjoint latencies: 100 queries at 1 ms and 300 at 10 ms.
// Over all 400 queries the median is 10 ms; the mean of the two medians,
// 5.5 ms, is a latency no query had.
func TestPercentilesFromMergedHistograms(t *testing.T) {
	fast, slow := metrics.NewHist(), metrics.NewHist()
	for range 100 {
		fast.RecordUS(1000)
	}
	for range 300 {
		slow.RecordUS(10000)
	}
	s := &metrics.StrategyResult{Strategy: "random", Seconds: 2, Nodes: []*metrics.NodeResult{
		{Node: "standby1", Role: "standby", Kinds: map[string]*metrics.Hist{"point": fast}},
		{Node: "standby2", Role: "standby", Kinds: map[string]*metrics.Hist{"point": slow}},
	}}
	merged := metrics.NewHist()
	merged.Add(fast)
	merged.Add(slow)
	want := merged.Summary().P50

	rows := strategyRows(s)
	mean := (rows[0].P50 + rows[1].P50) / 2
	got := strategyTotal(s)
	if got.P50 != want {
		t.Errorf("strategy p50 %v ms, want %v ms from the merged histogram", got.P50, want)
	}
	if got.P50 == mean {
		t.Errorf("strategy p50 %v ms is the mean of the nodes' p50s", got.P50)
	}
	if got.Queries != 400 || got.QPS != 200 {
		t.Errorf("total %d queries, %v qps, want 400 and 200", got.Queries, got.QPS)
	}
	if rows[0].SharePct != 25 || rows[1].SharePct != 75 {
		t.Errorf("shares %v/%v, want 25/75", rows[0].SharePct, rows[1].SharePct)
	}

	// The same holds inside a node, across query kinds.
	one := &metrics.StrategyResult{Strategy: "random", Seconds: 1, Nodes: []*metrics.NodeResult{
		{Node: "standby1", Role: "standby", Kinds: map[string]*metrics.Hist{"point": fast, "range": slow}},
	}}
	if p := strategyRows(one)[0].P50; p != want {
		t.Errorf("node p50 over two kinds %v ms, want %v ms", p, want)
	}
}

func TestStrategyWithoutTimeHasNoRates(t *testing.T) {
	r := fixture()
	r.Strategies[0].Seconds = 0
	for _, row := range Rows(r)[:3] {
		if !math.IsNaN(row.QPS) {
			t.Errorf("%s: qps %v over 0 s, want unknown", row.Node, row.QPS)
		}
	}
}

func TestNaturalOrder(t *testing.T) {
	names := []string{"standby10", "standby2", "replica", "standby1"}
	sortNatural(names)
	want := []string{"replica", "standby1", "standby2", "standby10"}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("got %v, want %v", names, want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {1.5 * 1024 * 1024, "1.5 MiB"},
		{3 << 30, "3.0 GiB"}, {math.NaN(), "-"},
	} {
		if got := humanBytes(c.in); got != c.want {
			t.Errorf("humanBytes(%v) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := count(1234567); got != "1,234,567" {
		t.Errorf("count = %q", got)
	}
	if got := num(-12345.678, 1); got != "-12,345.7" {
		t.Errorf("num = %q", got)
	}
}
