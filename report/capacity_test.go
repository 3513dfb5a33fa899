package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// capacity's golden files sit in testdata/capacity/.
func capacityGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden(t, "capacity/"+name, got)
}

// step is a measured rate; failed conditions make it a failing one.
func step(phase string, rate, achieved, p50, p99 float64, failed ...string) metrics.CapacityStep {
	return metrics.CapacityStep{Phase: phase, Rate: rate, Achieved: achieved,
		P50MS: p50, P90MS: (p50 + p99) / 2, P99MS: p99, P999MS: p99 * 1.8,
		StalePct: 0.25, ScheduleLagP99MS: 0.05 + rate/1e6, Pass: len(failed) == 0, Failed: failed}
}

// capacityFixture is two searches of round-robin, with one and two
// standbys: each ramps until a step fails, then bisects to within 5%.
func capacityFixture() *metrics.Capacity {
	start := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	one := []metrics.CapacityStep{
		step("ramp", 1000, 999.8, 0.41, 1.8),
		step("ramp", 2000, 1999.6, 0.43, 2.1),
		step("ramp", 4000, 3998.9, 0.47, 2.9),
		step("ramp", 8000, 7996.1, 0.55, 4.1),
		step("ramp", 16000, 11850.4, 38.2, 230.5, "p99 230.5ms >= 5ms"),
		step("bisect", 12000, 11995.3, 0.71, 4.6),
		step("bisect", 14000, 13120.7, 2.4, 9.8, "p99 9.8ms >= 5ms"),
		step("bisect", 13000, 12988.2, 0.93, 5.4, "p99 5.4ms >= 5ms"),
		step("bisect", 12500, 12490.2, 0.82, 4.9),
	}
	one[1].StalePct = -1 // no read of this step was checked
	one[4].ErrorPct = 1.25
	one[4].ScheduleLagP99MS = 12.5
	one[4].Failed = append(one[4].Failed, "errors 1.25% >= 1%")
	two := []metrics.CapacityStep{
		step("ramp", 1000, 999.9, 0.40, 1.7),
		step("ramp", 2000, 1999.7, 0.41, 1.9),
		step("ramp", 4000, 3999.0, 0.44, 2.4),
		step("ramp", 8000, 7998.5, 0.49, 3.1),
		step("ramp", 16000, 15990.8, 0.62, 4.0),
		step("ramp", 32000, 24410.6, 51.7, 310.2, "p99 310.2ms >= 5ms"),
		step("bisect", 24000, 23985.4, 0.88, 4.7),
		step("bisect", 28000, 26904.1, 4.1, 18.3, "p99 18.3ms >= 5ms"),
		step("bisect", 26000, 25870.5, 1.6, 7.2, "p99 7.2ms >= 5ms"),
		step("bisect", 25000, 24940.3, 1.1, 5.6, "p99 5.6ms >= 5ms"),
	}
	return &metrics.Capacity{
		Schema: metrics.CapacitySchemaVersion, Tool: "pgbenchx", Version: "v0.9.0",
		Command:   []string{"pgbenchx", "capacity", "--standbys", "1,2", "--slo", "p99<5ms", "--mix", "point=80,range=20", "--primary", "postgres://bench:xxxxx@h/db"},
		StartedAt: start, EndedAt: start.Add(9 * time.Minute),
		SLO: "p99<5ms", Precision: 0.05,
		StepDuration: mdur(10 * time.Second), StepWarmup: mdur(2 * time.Second),
		Clients: 32, Mix: map[string]int{"point": 80, "range": 20},
		Cores: 8, Colocated: true,
		Series: []metrics.CapacitySeries{
			{Standbys: 1, Strategy: "round-robin", Found: true, Capacity: 12500, Limit: 13000, Achieved: 12490.2, Steps: one},
			{Standbys: 2, Strategy: "round-robin", Found: true, Capacity: 24000, Limit: 25000, Achieved: 23985.4, Steps: two},
		},
	}
}

func TestCapacityGolden(t *testing.T) {
	c := capacityFixture()
	var b bytes.Buffer
	if err := writeCapacityMD(&b, c, []string{"capacity_knee.svg", "capacity.svg"}); err != nil {
		t.Fatal(err)
	}
	capacityGolden(t, "capacity.md", b.Bytes())
	b.Reset()
	if err := writeCapacityCSV(&b, c); err != nil {
		t.Fatal(err)
	}
	capacityGolden(t, "capacity.csv", b.Bytes())
	b.Reset()
	if err := writeCapacitySummaryCSV(&b, c); err != nil {
		t.Fatal(err)
	}
	capacityGolden(t, "capacity_summary.csv", b.Bytes())
}

func TestCapacityHeadline(t *testing.T) {
	notFound := func(c *metrics.Capacity) {
		s := &c.Series[0]
		s.Found, s.Capacity, s.Limit, s.Achieved = false, 0, 1000, 0
	}
	ceiling := func(c *metrics.Capacity) { c.Series[1].Limit = 0 }
	for _, tc := range []struct {
		name string
		edit func(*metrics.Capacity)
		want []string
	}{
		{"found", nil, []string{"capacity at p99<5ms: 1 standby 12.5k reads/s, 2 standbys 24.0k (1.92x)"}},
		// The base unknown: no factor, and no claim about the ratio.
		{"not found", notFound, []string{"capacity at p99<5ms: 1 standby not found (below 1.00k reads/s), 2 standbys 24.0k"}},
		{"ceiling", ceiling, []string{"capacity at p99<5ms: 1 standby 12.5k reads/s, 2 standbys ≥ 24.0k (ceiling, ≥ 1.92x)"}},
		{"base at ceiling", func(c *metrics.Capacity) { c.Series[0].Limit = 0 },
			[]string{"capacity at p99<5ms: 1 standby ≥ 12.5k reads/s (ceiling), 2 standbys 24.0k"}},
		{"stopped early", func(c *metrics.Capacity) { ceiling(c); c.Series[1].Error = "standby2: connection refused" },
			[]string{"capacity at p99<5ms: 1 standby 12.5k reads/s, 2 standbys ≥ 24.0k (stopped early, ≥ 1.92x)"}},
		{"interrupted", func(c *metrics.Capacity) { ceiling(c); c.Interrupted = true },
			[]string{"capacity at p99<5ms: 1 standby 12.5k reads/s, 2 standbys ≥ 24.0k (stopped early, ≥ 1.92x)"}},
		{"several strategies", func(c *metrics.Capacity) {
			lc := c.Series[0]
			lc.Strategy, lc.Capacity, lc.Limit = "least-conn", 13000, 13500
			lc2 := c.Series[1]
			lc2.Strategy, lc2.Capacity, lc2.Limit = "least-conn", 27300, 28000
			// Measured 2 standbys first: the headline still goes by count.
			c.Series = append(c.Series, lc2, lc)
		}, []string{
			"round-robin: capacity at p99<5ms: 1 standby 12.5k reads/s, 2 standbys 24.0k (1.92x)",
			"least-conn: capacity at p99<5ms: 1 standby 13.0k reads/s, 2 standbys 27.3k (2.10x)",
		}},
		{"no series", func(c *metrics.Capacity) { c.Series = nil }, []string{"capacity at p99<5ms: nothing measured"}},
		{"no steps", func(c *metrics.Capacity) { c.Series = c.Series[:1]; c.Series[0].Steps = nil; c.Series[0].Found = false },
			[]string{"capacity at p99<5ms: 1 standby unknown (nothing measured)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := capacityFixture()
			if tc.edit != nil {
				tc.edit(c)
			}
			if got := CapacityHeadline(c); !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}

func TestCompactRate(t *testing.T) {
	for x, want := range map[float64]string{
		0: "0", 85.46: "85.5", 850: "850", 999.7: "1.00k", 1234: "1.23k",
		12100: "12.1k", 123456: "123k", 1.5e6: "1.50M",
	} {
		if got := compactRate(x); got != want {
			t.Errorf("compactRate(%v) = %q, want %q", x, got, want)
		}
	}
}

func TestSLOLatency(t *testing.T) {
	for slo, want := range map[string]sloBound{
		"p99<5ms":                 {"p99", 5, "p99<5ms"},
		"errors<1%, p999<=250us":  {"p999", 0.25, "p999<=250us"},
		"standby1:p99<1ms,p90<2s": {"p90", 2000, "p90<2s"},
		"p99.9<3":                 {"p999", 3, "p99.9<3"},
		"errors<1%":               {},
		"max<5ms":                 {},
		"":                        {},
	} {
		got, ok := sloLatency(slo)
		if ok != (want.metric != "") || got != want {
			t.Errorf("sloLatency(%q) = %+v, %v; want %+v", slo, got, ok, want)
		}
	}
}

func TestCapacityCharts(t *testing.T) {
	c := capacityFixture()
	knee, err := CapacityKneeChart(c)
	if err != nil {
		t.Fatal(err)
	}
	texts := svgDoc(t, "capacity_knee", knee)
	for _, want := range []string{"SLO p99<5ms", "1 standby", "2 standbys", "p99", "p50", "capacity", "12.5k", "24.0k"} {
		if !slices.Contains(texts, want) {
			t.Errorf("capacity_knee.svg: no text %q in %q", want, texts)
		}
	}
	bars, err := CapacityChart(c)
	if err != nil {
		t.Fatal(err)
	}
	texts = svgDoc(t, "capacity", bars)
	for _, want := range []string{"1 standby", "2 standbys", "round-robin", "12.5k", "1.92x"} {
		if !slices.Contains(texts, want) {
			t.Errorf("capacity.svg: no text %q in %q", want, texts)
		}
	}

	// Several strategies: each series is named with its strategy, and a
	// count not found still shows, in words.
	c.Series = append(c.Series, c.Series[0])
	c.Series[2].Strategy, c.Series[2].Found, c.Series[2].Limit = "least-conn", false, 1000
	knee, err = CapacityKneeChart(c)
	if err != nil {
		t.Fatal(err)
	}
	if texts := svgDoc(t, "capacity_knee_strategies", knee); !slices.Contains(texts, "1 standby least-conn") {
		t.Errorf("capacity_knee.svg with two strategies: no series label %q in %q", "1 standby least-conn", texts)
	}
	bars, err = CapacityChart(c)
	if err != nil {
		t.Fatal(err)
	}
	if texts := svgDoc(t, "capacity_strategies", bars); !slices.Contains(texts, "not found") || !slices.Contains(texts, "least-conn") {
		t.Errorf("capacity.svg with two strategies: %q", texts)
	}

	// Nothing measured: nothing to draw, and no error.
	for _, f := range []func(*metrics.Capacity) ([]byte, error){CapacityKneeChart, CapacityChart} {
		if b, err := f(&metrics.Capacity{SLO: "p99<5ms"}); b != nil || err != nil {
			t.Errorf("empty capacity: %d bytes, %v; want none", len(b), err)
		}
	}
}

func TestWriteCapacity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "capacity")
	c := capacityFixture()
	paths, err := WriteCapacity(dir, c, []string{FormatJSON, FormatCSV, FormatMD})
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
	want := []string{"capacity.json", "capacity.csv", "capacity_summary.csv", "capacity_knee.svg", "capacity.svg", "capacity.md"}
	if !slices.Equal(names, want) {
		t.Errorf("wrote %q, want %q", names, want)
	}
	md, err := os.ReadFile(filepath.Join(dir, "capacity.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(md), "# pgbenchx capacity\n\n"+CapacityHeadline(c)[0]+"\n") {
		t.Errorf("capacity.md does not open with the headline:\n%s", md)
	}
	for _, link := range []string{"(capacity_knee.svg)", "(capacity.svg)"} {
		if !strings.Contains(string(md), link) {
			t.Errorf("capacity.md does not link %s", link)
		}
	}

	only := t.TempDir()
	paths, err = WriteCapacity(only, c, []string{FormatCSV})
	if err != nil || len(paths) != 2 {
		t.Errorf("csv only: wrote %q, %v; want capacity.csv and capacity_summary.csv", paths, err)
	}
	if _, err := WriteCapacity(only, c, []string{"xml"}); err == nil {
		t.Error("an unknown format was accepted")
	}
	if _, err := WriteCapacity(only, nil, []string{FormatMD}); err == nil {
		t.Error("a nil capacity was accepted")
	}
}

func TestCapacityCaveats(t *testing.T) {
	c := capacityFixture()
	c.CPUCaps = map[string]float64{"primary": 1, "standby1": 0.5, "standby2": 0.5}
	c.Series[0].Steps[4].ThrottledSec = map[string]float64{"standby1": 3.25, "primary": 0.1}
	var b bytes.Buffer
	if err := writeCapacityMD(&b, c, nil); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"primary=1,standby1=0.5,standby2=0.5",
		"throttles a node for the rest of its 100 ms period",
		"| throttled s |",
		"primary 0.10, standby1 3.25",
		"The load generator, uncapped, still shared this host's 8 cores",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("capacity.md with caps lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Cap the nodes with --cpus") || strings.Contains(md, "## Charts") {
		t.Errorf("capacity.md with caps still says to cap, or links charts it was not given:\n%s", md)
	}

	c.Colocated, c.CPUCaps = false, nil
	b.Reset()
	if err := writeCapacityMD(&b, c, nil); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); strings.Contains(md, "cores, so the figure") || strings.Contains(md, "CFS") {
		t.Errorf("separate machines, uncapped: no caveat expected:\n%s", md)
	}
}

func TestLoadCapacity(t *testing.T) {
	dir := t.TempDir()
	c := capacityFixture()
	c.Series[0].Steps[0].ThrottledSec = map[string]float64{"standby1": 0.5}
	if _, err := WriteCapacity(dir, c, []string{FormatJSON}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "capacity.json")
	got, err := LoadCapacity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the capacity:\ngot  %+v\nwant %+v", got, c)
	}

	for name, body := range map[string]string{
		"newer schema": `{"schema": 99, "series": []}`,
		"no schema":    `{"series": []}`,
		"run.json":     `{"schema": 1, "strategies": []}`,
		"not json":     `schema: 1`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCapacity(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// A caller that left Schema unset still writes a readable file.
	c.Schema = 0
	if _, err := WriteCapacity(dir, c, []string{FormatJSON}); err != nil {
		t.Fatal(err)
	}
	if c.Schema != 0 {
		t.Error("WriteCapacity changed its argument's schema")
	}
	var raw struct{ Schema int }
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &raw); err != nil || raw.Schema != metrics.CapacitySchemaVersion {
		t.Errorf("capacity.json schema %d (%v), want %d", raw.Schema, err, metrics.CapacitySchemaVersion)
	}
}
