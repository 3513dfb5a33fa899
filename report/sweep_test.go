package report

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// sweep's golden files sit in testdata/sweep/.
func sweepGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden(t, "sweep/"+name, got)
}

// sweepPoint is a closed-loop point; its run folder is named after the
// level, as run --clients names them.
func sweepPoint(strategy string, clients int, qps, p50, p99 float64) metrics.SweepPoint {
	return metrics.SweepPoint{Strategy: strategy, Level: float64(clients), Clients: clients, QPS: qps,
		P50MS: p50, P90MS: (p50 + p99) / 2, P99MS: p99, P999MS: p99 * 1.8,
		StalePct: 0.5, Run: "20250314-092653-c" + levelCSV(float64(clients))}
}

// sweepFixture is a closed-loop sweep over 4, 8 and 16 clients of
// round-robin and a pooler-routed strategy whose name has a colon; the
// pooler saturates at 8 clients, and at 4 no read of it was checked.
func sweepFixture() *metrics.Sweep {
	start := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	pts := []metrics.SweepPoint{
		sweepPoint("round-robin", 4, 5210.4, 0.61, 1.9),
		sweepPoint("via:pgpool", 4, 3890.2, 0.82, 2.6),
		sweepPoint("round-robin", 8, 9875.1, 0.66, 2.4),
		sweepPoint("via:pgpool", 8, 6120.7, 1.05, 4.8),
		sweepPoint("round-robin", 16, 15230.9, 0.85, 3.9),
		sweepPoint("via:pgpool", 16, 6210.3, 2.31, 11.7),
	}
	pts[1].StalePct = -1
	pts[5].ErrorPct = 0.35
	return &metrics.Sweep{
		Schema: metrics.SweepSchemaVersion, Tool: "pgbenchx", Version: "v0.9.0",
		Command:   []string{"pgbenchx", "run", "--clients", "4,8,16", "--strategy", "round-robin,via:pgpool"},
		StartedAt: start, EndedAt: start.Add(6 * time.Minute),
		Dimension: "clients", Levels: []float64{4, 8, 16},
		Points: pts,
	}
}

func TestSweepGolden(t *testing.T) {
	s := sweepFixture()
	var charts []string
	for _, ch := range sweepCharts(s) {
		charts = append(charts, ch.file)
	}
	var b bytes.Buffer
	if err := writeSweepMD(&b, s, charts); err != nil {
		t.Fatal(err)
	}
	sweepGolden(t, "sweep.md", b.Bytes())
	b.Reset()
	if err := writeSweepCSV(&b, s); err != nil {
		t.Fatal(err)
	}
	sweepGolden(t, "sweep.csv", b.Bytes())
	b.Reset()
	if err := WriteSweepTable(&b, s); err != nil {
		t.Fatal(err)
	}
	sweepGolden(t, "table.txt", b.Bytes())
}

func TestWriteSweepTable(t *testing.T) {
	s := sweepFixture()
	var b bytes.Buffer
	if err := WriteSweepTable(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"strategy", "clients", "rate/s", "p99.9 ms", "stale %", "via:pgpool", "closed", "unknown", "15,230.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Grouped by strategy, lowest level first, whatever the measured order.
	rr4, rr16, pg4 := strings.Index(out, "5,210.4"), strings.Index(out, "15,230.9"), strings.Index(out, "3,890.2")
	if !(rr4 < rr16 && rr16 < pg4) {
		t.Errorf("rows out of order:\n%s", out)
	}

	// An open loop prints its rate instead of "closed".
	for i := range s.Points {
		s.Points[i].Rate = 2000
	}
	b.Reset()
	if err := WriteSweepTable(&b, s); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "closed") || !strings.Contains(out, "2,000") {
		t.Errorf("open-loop table:\n%s", out)
	}
	if err := WriteSweepTable(&b, nil); err == nil {
		t.Error("a nil sweep was accepted")
	}
}

func TestSweepRate(t *testing.T) {
	s := sweepFixture()
	s.Dimension, s.Levels = "rate", []float64{2000, 4000, 8000}
	for i := range s.Points {
		p := &s.Points[i]
		p.Level, p.Rate, p.Clients = 2000*float64(int(1)<<(i/2)), 2000*float64(int(1)<<(i/2)), 32
	}
	if got, want := SweepTitle(s), "offered rate: 2,000, 4,000, 8,000 reads/s"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	var b bytes.Buffer
	if err := writeSweepMD(&b, s, nil); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"# pgbenchx sweep over offered rate: 2,000, 4,000, 8,000 reads/s\n", "| strategy | offered/s | qps |",
		"Every level ran 32 clients.", "Open loop:", "| via:pgpool | 8,000 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("rate sweep.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Closed loop:") || strings.Contains(md, "## Charts") {
		t.Errorf("rate sweep.md speaks of a closed loop, or links charts it was not given:\n%s", md)
	}
	// The offered rate is drawn with what was achieved.
	svg, err := SweepQPSChart(s)
	if err != nil {
		t.Fatal(err)
	}
	if texts := svgDoc(t, "sweep_qps_rate", svg); !slices.Contains(texts, "offered") || !slices.Contains(texts, "8,000") {
		t.Errorf("sweep_qps.svg of a rate sweep: %q", texts)
	}

	// Clients varying within a rate sweep get a column of their own.
	s.Points[0].Clients = 16
	b.Reset()
	if err := writeSweepMD(&b, s, nil); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); !strings.Contains(md, "| strategy | offered/s | clients | qps |") || strings.Contains(md, "Every level ran") {
		t.Errorf("rate sweep.md with varying clients:\n%s", md)
	}
}

func TestSweepMissing(t *testing.T) {
	s := sweepFixture()
	s.Points = s.Points[:5] // via:pgpool at 16 never ran
	s.Interrupted = true
	var b bytes.Buffer
	if err := writeSweepMD(&b, s, nil); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"Not measured: via:pgpool at clients 16.", "the sweep was interrupted"} {
		if !strings.Contains(md, want) {
			t.Errorf("sweep.md lacks %q:\n%s", want, md)
		}
	}
}

func TestSweepCharts(t *testing.T) {
	s := sweepFixture()
	var files []string
	for _, ch := range sweepCharts(s) {
		files = append(files, ch.file)
	}
	if want := []string{"sweep_qps.svg", "sweep_round-robin.svg", "sweep_via-pgpool.svg"}; !slices.Equal(files, want) {
		t.Errorf("chart files %q, want %q", files, want)
	}
	svg, err := SweepLatencyChart(s, "via:pgpool")
	if err != nil {
		t.Fatal(err)
	}
	texts := svgDoc(t, "sweep_via-pgpool", svg)
	for _, want := range []string{"via:pgpool: read latency against clients", "p99", "p50", "4", "8", "16", "6.12k/s", "labels: reads/s achieved"} {
		if !slices.Contains(texts, want) {
			t.Errorf("sweep_via-pgpool.svg: no text %q in %q", want, texts)
		}
	}
	svg, err = SweepQPSChart(s)
	if err != nil {
		t.Fatal(err)
	}
	texts = svgDoc(t, "sweep_qps", svg)
	for _, want := range []string{"round-robin", "via:pgpool"} {
		if !slices.Contains(texts, want) {
			t.Errorf("sweep_qps.svg: no text %q in %q", want, texts)
		}
	}
	if slices.Contains(texts, "offered") {
		t.Errorf("sweep_qps.svg of a closed loop draws an offered rate: %q", texts)
	}

	// Latencies over two decades apart: a log axis; levels over one: too.
	s.Points[5].P99MS = 480
	s.Levels = []float64{4, 16, 64}
	for i := range s.Points {
		s.Points[i].Level = s.Levels[i/2]
	}
	if sc := scaleOf(s); !sc.yLog || !sc.xLog {
		t.Errorf("scale %+v, want both axes logarithmic", sc)
	}
	svg, err = SweepLatencyChart(s, "via:pgpool")
	if err != nil {
		t.Fatal(err)
	}
	if texts := svgDoc(t, "sweep_via-pgpool_log", svg); !slices.Contains(texts, "latency (ms, log scale)") {
		t.Errorf("log sweep chart: %q", texts)
	}

	// Nothing to draw: no chart, and no error.
	for _, f := range []func() ([]byte, error){
		func() ([]byte, error) { return SweepQPSChart(&metrics.Sweep{Dimension: "clients"}) },
		func() ([]byte, error) { return SweepLatencyChart(s, "nearest") },
		func() ([]byte, error) { return SweepLatencyChart(nil, "nearest") },
	} {
		if b, err := f(); b != nil || err != nil {
			t.Errorf("nothing to draw: %d bytes, %v; want none", len(b), err)
		}
	}
}

func TestSweepChartFileNames(t *testing.T) {
	s := &metrics.Sweep{Dimension: "clients"}
	for _, strat := range []string{"via:x", "via-x", "Via-X", "qps", "a/../b", ""} {
		s.Points = append(s.Points, metrics.SweepPoint{Strategy: strat, Level: 4, Clients: 4})
	}
	var files []string
	for _, ch := range sweepCharts(s) {
		files = append(files, ch.file)
	}
	want := []string{"sweep_qps.svg", "sweep_via-x.svg", "sweep_via-x-2.svg", "sweep_Via-X-3.svg", "sweep_qps-2.svg", "sweep_a-..-b.svg", "sweep_strategy.svg"}
	if !slices.Equal(files, want) {
		t.Errorf("chart files\n  %q\nwant\n  %q", files, want)
	}
}

func TestRunLink(t *testing.T) {
	for run, want := range map[string]string{
		"":                     "-",
		"20250314-092653-c4":   "[20250314-092653-c4](20250314-092653-c4/report.md)",
		"via:pgpool-c8":        "[via:pgpool-c8](./via:pgpool-c8/report.md)",
		"levels/rate 2000 (a)": "[levels/rate 2000 (a)](levels/rate%202000%20%28a%29/report.md)",
	} {
		if got := runLink(run); got != want {
			t.Errorf("runLink(%q) = %q, want %q", run, got, want)
		}
	}
}

func TestWriteSweep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sweep")
	s := sweepFixture()
	paths, err := WriteSweep(dir, s, []string{FormatJSON, FormatCSV, FormatMD})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, want a non-empty file", p, err)
		}
		names = append(names, filepath.Base(p))
	}
	want := []string{"sweep.json", "sweep.csv", "sweep_qps.svg", "sweep_round-robin.svg", "sweep_via-pgpool.svg", "sweep.md"}
	if !slices.Equal(names, want) {
		t.Errorf("wrote %q, want %q", names, want)
	}
	md, err := os.ReadFile(filepath.Join(dir, "sweep.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(md), "# pgbenchx sweep over clients: 4, 8, 16\n") {
		t.Errorf("sweep.md does not open with what varied:\n%s", md)
	}
	for _, link := range want[2:5] {
		if !strings.Contains(string(md), "("+link+")") {
			t.Errorf("sweep.md does not link %s", link)
		}
	}

	only := t.TempDir()
	paths, err = WriteSweep(only, s, []string{FormatCSV})
	if err != nil || len(paths) != 1 || filepath.Base(paths[0]) != "sweep.csv" {
		t.Errorf("csv only: wrote %q, %v; want sweep.csv", paths, err)
	}
	if _, err := WriteSweep(only, s, []string{"xml"}); err == nil {
		t.Error("an unknown format was accepted")
	}
	if _, err := WriteSweep(only, s, nil); err == nil {
		t.Error("no format was accepted")
	}
	if _, err := WriteSweep(only, nil, []string{FormatMD}); err == nil {
		t.Error("a nil sweep was accepted")
	}
}

func TestLoadSweep(t *testing.T) {
	dir := t.TempDir()
	s := sweepFixture()
	s.Warnings = []string{"standby2 lagged 2s at 16 clients"}
	if _, err := WriteSweep(dir, s, []string{FormatJSON}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sweep.json")
	got, err := LoadSweep(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip changed the sweep:\ngot  %+v\nwant %+v", got, s)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("{\n  \"schema\": 1,\n")) {
		t.Errorf("sweep.json is not indented by 2:\n%.80s", b)
	}

	for name, body := range map[string]string{
		"newer schema":  `{"schema": 99, "dimension": "clients", "points": []}`,
		"no schema":     `{"dimension": "clients", "points": []}`,
		"run.json":      `{"schema": 1, "strategies": []}`,
		"capacity.json": `{"schema": 1, "series": []}`,
		"no dimension":  `{"schema": 1, "points": []}`,
		"not json":      `schema: 1`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".bad")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSweep(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadSweep(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file was accepted")
	}

	// A caller that left Schema unset still writes a readable file.
	s.Schema = 0
	if _, err := WriteSweep(dir, s, []string{FormatJSON}); err != nil {
		t.Fatal(err)
	}
	if s.Schema != 0 {
		t.Error("WriteSweep changed its argument's schema")
	}
	var raw struct{ Schema int }
	b, _ = os.ReadFile(path)
	if err := json.Unmarshal(b, &raw); err != nil || raw.Schema != metrics.SweepSchemaVersion {
		t.Errorf("sweep.json schema %d (%v), want %d", raw.Schema, err, metrics.SweepSchemaVersion)
	}
}

func TestAchievedLabel(t *testing.T) {
	for qps, want := range map[float64]string{0: "0/s", 6120.7: "6.12k/s", math.NaN(): "unknown", -1: "unknown"} {
		if got := achievedLabel(qps); got != want {
			t.Errorf("achievedLabel(%v) = %q, want %q", qps, got, want)
		}
	}
}
