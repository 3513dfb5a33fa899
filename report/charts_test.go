package report

import (
	"bytes"
	"encoding/xml"
	"flag"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pgbenchx/pgbenchx/metrics"
)

var chartsDir = flag.String("charts", "", "also write the test charts into this folder, to look at them")

// hexColor is how the SVG backend spells a colour.
func hexColor(c color.RGBA) string {
	const digits = "0123456789ABCDEF"
	b := []byte{'#', 0, 0, 0, 0, 0, 0}
	for i, v := range []uint8{c.R, c.G, c.B} {
		b[1+2*i], b[2+2*i] = digits[v>>4], digits[v&0xf]
	}
	return string(b)
}

// svgDoc checks b is one well-formed SVG document and returns the text of
// its <text> elements, which is where legend entries and labels end up.
func svgDoc(t *testing.T, name string, b []byte) []string {
	t.Helper()
	if len(b) == 0 {
		t.Fatalf("%s: no SVG", name)
	}
	if *chartsDir != "" {
		_ = os.WriteFile(filepath.Join(*chartsDir, name+".svg"), b, 0o644)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var texts []string
	var root string
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v", name, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			inText = el.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(el)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("%s: root element %q, want svg", name, root)
	}
	if !bytes.Contains(b, fontFallback) || bytes.Contains(b, fontFamily) {
		t.Errorf("%s: text without fallback fonts for viewers lacking Liberation Sans", name)
	}
	return texts
}

func TestNodeColors(t *testing.T) {
	for name, want := range map[string]string{
		"primary": "#666666", "standby1": "#0072B2", "standby2": "#E69F00", "standby3": "#009E73",
		"standby4": "#CC79A7", "standby5": "#56B4E9", "standby6": "#D55E00", "standby7": "#0072B2",
	} {
		if got := hexColor(NodeColor(name)); got != want {
			t.Errorf("NodeColor(%s) = %s, want %s", name, got, want)
		}
	}
	a, b := NodeColor("replica-a"), NodeColor(strings.Clone("replica-a"))
	if a != b || !slices.Contains(standbyColors, a) {
		t.Errorf("an unnumbered node's colour is %v, then %v: want one of the palette's, the same each time", a, b)
	}
	seen := map[color.RGBA]string{}
	for _, s := range []string{"random", "round-robin", "least-conn", "lag-aware", "causal", "nearest"} {
		c := StrategyColor(s)
		if other, ok := seen[c]; ok {
			t.Errorf("%s and %s share a colour", s, other)
		}
		seen[c] = s
	}
}

func TestLagChart(t *testing.T) {
	r := fixture()
	for _, unit := range []string{LagBytes, LagMS} {
		svg, err := LagChart(r, unit)
		if err != nil {
			t.Fatal(err)
		}
		texts := svgDoc(t, "lag_"+unit, svg)
		s := string(svg)
		for _, node := range []string{"standby1", "standby2"} {
			if n := countOf(texts, node); n != 1 {
				t.Errorf("lag %s: %d legend entries for %s, want 1", unit, n, node)
			}
			if !strings.Contains(s, hexColor(NodeColor(node))) {
				t.Errorf("lag %s: no line in %s's colour", unit, node)
			}
		}
		if countOf(texts, "primary") != 0 || strings.Contains(s, hexColor(NodeColor("primary"))) {
			t.Errorf("lag %s: the primary has a lag line", unit)
		}
		for _, strategy := range []string{"round-robin", "lag-aware"} {
			if countOf(texts, strategy) != 1 {
				t.Errorf("lag %s: strategy %s not marked", unit, strategy)
			}
		}
	}
	svg, _ := LagChart(r, LagBytes)
	if texts := svgDoc(t, "lag_bytes", svg); !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "(MiB)") }) {
		t.Errorf("1.5 MiB of lag not shown in MiB: %q", texts)
	}
	if _, err := LagChart(r, "furlongs"); err == nil {
		t.Error("an unknown unit was accepted")
	}
}

func countOf(texts []string, s string) int {
	n := 0
	for _, t := range texts {
		if t == s {
			n++
		}
	}
	return n
}

// TestLagUnknownIsAGap: a nil sample breaks the line and is never a 0.
func TestLagUnknownIsAGap(t *testing.T) {
	r := fixture()
	get, _ := lagValue(LagBytes)
	segs, marks, end := lagSeries(r, get)
	// round-robin standby2: 4096, unknown, 2048; then lag-aware, offset by
	// round-robin's 3 s, in a segment of its own.
	want := [][]float64{{0.1, 4096}, {2.1, 2048}, {3.1, 8192, 5.1, 1536 * 1024}}
	got := segs["standby2"]
	if len(got) != len(want) {
		t.Fatalf("standby2 segments %v, want %v", got, want)
	}
	for i, seg := range got {
		var flat []float64
		for _, pt := range seg {
			flat = append(flat, pt.X, pt.Y)
		}
		if !slices.EqualFunc(flat, want[i], func(a, b float64) bool { return a > b-1e-9 && a < b+1e-9 }) {
			t.Errorf("segment %d = %v, want %v", i, flat, want[i])
		}
	}
	want2 := []phaseMark{{0, "round-robin", false}, {1.5, "freeze standby2", true}, {2.9, "thaw standby2", true}, {3, "lag-aware", false}}
	if !slices.Equal(marks, want2) || end != 6 {
		t.Errorf("marks %v, end %v; want %v, end at 6 s: the events in round-robin's stretch, lag-aware at 3 s", marks, end, want2)
	}

	// A standby that never answered gets a legend entry saying so, and no
	// line: its colour appears nowhere.
	for _, s := range r.Strategies {
		for i := range s.Lag {
			if s.Lag[i].Node == "standby2" {
				s.Lag[i].Bytes = nil
			}
		}
	}
	svg, err := LagChart(r, LagBytes)
	if err != nil {
		t.Fatal(err)
	}
	texts := svgDoc(t, "lag_unknown", svg)
	if !slices.Contains(texts, "standby2: no known sample") {
		t.Errorf("no legend entry for the silent standby2: %q", texts)
	}
	if strings.Contains(string(svg), hexColor(NodeColor("standby2"))) {
		t.Error("standby2 has a line although none of its samples is known")
	}
	if segs, _, _ := lagSeries(r, get); len(segs["standby2"]) != 0 {
		t.Errorf("standby2 has points from unknown samples: %v", segs["standby2"])
	}

	// Nothing known at all: no chart, and report.md does not link one.
	for _, s := range r.Strategies {
		for i := range s.Lag {
			s.Lag[i].Bytes = nil
		}
	}
	if svg, err := LagChart(r, LagBytes); svg != nil || err != nil {
		t.Errorf("LagChart without a known sample = %d bytes, %v; want nil, nil", len(svg), err)
	}
	if slices.Contains(ChartFiles(r), "lag_bytes.svg") {
		t.Error("lag_bytes.svg listed without a known sample")
	}
}

func TestLatencyChart(t *testing.T) {
	r := fixture()
	r.Strategies[0].EndToEnd = hist(700, 400, 5000) // within two decades
	svg, err := LatencyChart(r)
	if err != nil {
		t.Fatal(err)
	}
	texts := svgDoc(t, "latency", svg)
	for _, s := range r.Strategies {
		if countOf(texts, s.Strategy) != 1 {
			t.Errorf("no legend entry for %s: %q", s.Strategy, texts)
		}
		if !strings.Contains(string(svg), hexColor(StrategyColor(s.Strategy))) {
			t.Errorf("no series in %s's colour", s.Strategy)
		}
	}
	for _, p := range percentileNames {
		if !slices.Contains(texts, p) {
			t.Errorf("no %s on the axis", p)
		}
	}
	if !slices.Contains(texts, "latency (ms)") {
		t.Errorf("latency axis not labelled in ms: %q", texts)
	}

	// p50 0.5 ms and p99.9 well over 50 ms: more than two decades.
	r.Strategies[0].EndToEnd.Add(hist(20, 200_000, 400_000))
	svg, err = LatencyChart(r)
	if err != nil {
		t.Fatal(err)
	}
	if texts := svgDoc(t, "latency_log", svg); !slices.Contains(texts, "latency (ms, log scale)") {
		t.Errorf("no log scale over three decades: %q", texts)
	}
}

func TestShareChart(t *testing.T) {
	r := fixture()
	svg, err := ShareChart(r)
	if err != nil {
		t.Fatal(err)
	}
	texts := svgDoc(t, "share", svg)
	for _, node := range []string{"primary", "standby1", "standby2"} {
		if countOf(texts, node) != 1 {
			t.Errorf("no single legend entry for %s: %q", node, texts)
		}
		if !strings.Contains(string(svg), hexColor(NodeColor(node))) {
			t.Errorf("no bar in %s's colour", node)
		}
	}
	// lag-aware sent 88.57% of its reads to standby1.
	if !slices.Contains(texts, "89%") {
		t.Errorf("bar values missing: %q", texts)
	}
}

func TestScalingChart(t *testing.T) {
	if svg, err := ScalingChart(nil); svg != nil || err != nil {
		t.Errorf("ScalingChart(nil) = %d bytes, %v; want nil, nil", len(svg), err)
	}
	pts := []ScalingPoint{
		{"least-conn", 2, 1900, 60}, {"least-conn", 1, 1000, 0}, {"least-conn", 3, 2600, 0},
		{"round-robin", 1, 950, 0}, {"round-robin", 2, 1700, 0}, {"round-robin", 3, 2300, 120},
	}
	svg, err := ScalingChart(pts)
	if err != nil {
		t.Fatal(err)
	}
	texts := svgDoc(t, "scaling", svg)
	for _, s := range []string{"least-conn", "round-robin"} {
		if countOf(texts, s) != 1 || !strings.Contains(string(svg), hexColor(StrategyColor(s))) {
			t.Errorf("%s: no single legend entry or no series in its colour", s)
		}
	}
	for _, tick := range []string{"1", "2", "3"} {
		if !slices.Contains(texts, tick) {
			t.Errorf("no tick for %s standbys", tick)
		}
	}
	if pts[0].Standbys != 2 {
		t.Error("ScalingChart reordered its caller's points")
	}
}

// TestWriteCharts: every chart lands in the folder, and report.md links
// each chart file there and no other.
func TestWriteCharts(t *testing.T) {
	dir := t.TempDir()
	r := fixture()
	names, err := WriteCharts(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lag_bytes.svg", "lag_ms.svg", "slot_bytes.svg", "throughput.svg", "latency_time.svg", "latency.svg", "share.svg"}
	if !slices.Equal(names, want) || !slices.Equal(ChartFiles(r), want) {
		t.Errorf("wrote %v, ChartFiles %v; want %v", names, ChartFiles(r), want)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		svgDoc(t, "file_"+strings.TrimSuffix(n, ".svg"), b)
	}

	if _, err := WriteRun(dir, r, []string{FormatMD}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`!\[[^\]]+\]\(([^)]+)\)`).FindAllStringSubmatch(string(md), -1)
	var linked []string
	for _, l := range links {
		linked = append(linked, l[1])
		if _, err := os.Stat(filepath.Join(dir, l[1])); err != nil {
			t.Errorf("report.md links %s: %v", l[1], err)
		}
	}
	svgs, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	if len(svgs) != len(linked) {
		t.Errorf("report.md links %v, the folder holds %v", linked, svgs)
	}
	if !strings.Contains(string(md), "![Replica lag (bytes)](lag_bytes.svg)") {
		t.Error("report.md lacks the lag chart link")
	}

	// A run with no standby and no read: no chart, no Charts section.
	empty := &metrics.Result{Schema: metrics.SchemaVersion, Environment: metrics.Environment{
		Nodes: []metrics.NodeInfo{{Name: "primary", Role: "primary"}}}}
	dir = t.TempDir()
	if names, err := WriteCharts(dir, empty); err != nil || len(names) != 0 {
		t.Errorf("WriteCharts(empty run) = %v, %v; want nothing", names, err)
	}
	if md := string(render(t, WriteMarkdown, empty)); strings.Contains(md, "## Charts") {
		t.Error("report.md of a run without data has a Charts section")
	}
}
