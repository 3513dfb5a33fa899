package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// The charts of capacity.md: the latency knee of every series, and the
// capacity each standby count reached.

// capacityChart is one chart of capacity.md; a render returning nil has
// nothing to draw, and the chart is neither written nor linked.
type capacityChart struct {
	file, alt string
	render    func(*metrics.Capacity) ([]byte, error)
}

var capacityCharts = []capacityChart{
	{"capacity_knee.svg", "Read latency against offered rate, per standby count", CapacityKneeChart},
	{"capacity.svg", "Capacity per standby count", CapacityChart},
}

// capacityChartsOf are c's charts, ready to draw.
func capacityChartsOf(c *metrics.Capacity) []svgChart {
	out := make([]svgChart, len(capacityCharts))
	for i, ch := range capacityCharts {
		out[i] = svgChart{file: ch.file, alt: ch.alt, render: func() ([]byte, error) { return ch.render(c) }}
	}
	return out
}

// compactRate prints a rate to three significant figures with k or M, as
// a headline reads: 12100 is "12.1k". Rounding comes first, so 999.7
// becomes "1.00k", not "1000".
func compactRate(x float64) string {
	if !finite(x) {
		return "unknown"
	}
	if x == 0 {
		return "0"
	}
	mag := math.Floor(math.Log10(math.Abs(x)))
	scale := math.Pow(10, mag-2)
	r := math.Round(x/scale) * scale
	suffix, div := "", 1.0
	switch {
	case math.Abs(r) >= 1e6:
		suffix, div = "M", 1e6
	case math.Abs(r) >= 1e3:
		suffix, div = "k", 1e3
	}
	v := r / div
	prec := 0
	if a := math.Abs(v); a < 10 {
		prec = 2
	} else if a < 100 {
		prec = 1
	}
	return fmt.Sprintf("%.*f%s", prec, v, suffix)
}

// sloBound is the latency bound of an SLO: the percentile it bounds
// ("p99") and the bound in ms.
type sloBound struct {
	metric string
	ms     float64
	text   string // the condition as given, for the legend
}

// sloLatency finds the first unscoped latency-percentile bound of an SLO
// ("p99<5ms,errors<1%" gives p99 < 5 ms), read the way --threshold reads
// latencies (ms by default). Scoped conditions bound one node's figures,
// which the knee chart does not draw.
func sloLatency(slo string) (sloBound, bool) {
	for _, cond := range strings.Split(slo, ",") {
		cond = strings.TrimSpace(cond)
		if strings.Contains(cond, ":") {
			continue
		}
		var metric, rest string
		for _, op := range []string{"<=", "<"} {
			if m, r, ok := strings.Cut(cond, op); ok {
				metric, rest = strings.ToLower(strings.TrimSpace(m)), strings.TrimSpace(r)
				break
			}
		}
		if metric == "p99.9" {
			metric = "p999"
		}
		if !slices.Contains([]string{"p50", "p90", "p99", "p999"}, metric) {
			continue
		}
		v := gateValue.FindStringSubmatch(rest)
		if v == nil {
			continue
		}
		scale, ok := unitScale[kindLatency][strings.ToLower(v[2])]
		var x float64
		if _, err := fmt.Sscan(v[1], &x); err != nil || !ok || x <= 0 {
			continue
		}
		return sloBound{metric: metric, ms: x * scale, text: cond}, true
	}
	return sloBound{}, false
}

// stepLatency is one percentile of a step, by its SLO name.
func stepLatency(st metrics.CapacityStep, metric string) float64 {
	switch metric {
	case "p50":
		return st.P50MS
	case "p90":
		return st.P90MS
	case "p999":
		return st.P999MS
	}
	return st.P99MS
}

// percentileLabel is how the charts name a percentile.
func percentileLabel(metric string) string {
	if metric == "p999" {
		return "p99.9"
	}
	return metric
}

// countColor is a standby count's colour in both capacity charts: the
// palette's Nth colour for N standbys, grey for none (reads on the
// primary), keyed by the count so it never depends on what else ran.
func countColor(n int) color.RGBA {
	if n <= 0 {
		return primaryColor
	}
	return standbyColors[(n-1)%len(standbyColors)]
}

// seriesLabel names a series in a legend: the strategy is only added
// when several were searched, since otherwise it tells nothing.
func seriesLabel(s *metrics.CapacitySeries, several bool) string {
	l := fmt.Sprintf("%d %s", s.Standbys, plural(s.Standbys, "standby", "standbys"))
	if several {
		l += " " + s.Strategy
	}
	return l
}

var sloColor = rgb(0xB2182B)

// CapacityKneeChart draws, as SVG, each series' read latency against the
// offered rate: the SLO's percentile solid (p99 when the SLO bounds none
// of p50, p90, p99, p99.9), p50 dashed, the SLO's bound as a horizontal
// line and each series' capacity ringed. One colour per standby count;
// with several strategies each keeps its glyph. The latency axis turns
// logarithmic when the values span more than two decades, as they do once
// a queue builds past the knee. It returns nil and no error when no step
// was measured.
func CapacityKneeChart(c *metrics.Capacity) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	bound, hasBound := sloLatency(c.SLO)
	solid, dashed := "p99", "p50"
	if hasBound {
		solid = bound.metric
	}
	if solid == "p50" {
		dashed = "p99"
	}
	several := len(capacityStrategies(c)) > 1
	lo, hi := math.Inf(1), 0.0
	var drawn []int
	for i, s := range c.Series {
		measured := false
		for _, st := range s.Steps {
			if st.Rate <= 0 || !finite(st.Rate) {
				continue
			}
			measured = true
			for _, v := range []float64{stepLatency(st, solid), stepLatency(st, dashed)} {
				if finite(v) && v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
		if measured {
			drawn = append(drawn, i)
		}
	}
	if len(drawn) == 0 {
		return nil, nil
	}
	if hasBound {
		lo, hi = min(lo, bound.ms), max(hi, bound.ms)
	}
	title := fmt.Sprintf("Read latency against offered rate (%s solid, %s dashed)", percentileLabel(solid), percentileLabel(dashed))
	p := newPlot(title, "offered rate (reads/s)", "latency (ms)", true)
	logScale := hi > 100*lo
	if logScale {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = "latency (ms, log scale)"
	}
	leg := newLegend()
	var rings plotter.XYs
	var ringColors []color.RGBA
	var ringTexts []string
	for _, i := range drawn {
		s := &c.Series[i]
		steps := slices.Clone(s.Steps)
		slices.SortStableFunc(steps, func(a, b metrics.CapacityStep) int {
			switch {
			case a.Rate < b.Rate:
				return -1
			case a.Rate > b.Rate:
				return 1
			}
			return 0
		})
		col := countColor(s.Standbys)
		glyph := draw.GlyphDrawer(draw.CircleGlyph{})
		if several {
			glyph = styleOf(s.Strategy).glyph
		}
		inLegend := false
		for _, metric := range []string{solid, dashed} {
			xys := kneePoints(steps, metric, logScale)
			if len(xys) == 0 {
				continue
			}
			line, dots, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			line.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.8)}
			dots.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3), Shape: glyph}
			if metric == dashed {
				line.LineStyle.Width = vg.Points(1.2)
				line.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				dots.GlyphStyle.Radius = vg.Points(2)
			}
			p.Add(line, dots)
			if !inLegend {
				inLegend = true
				leg.Add(seriesLabel(s, several), line, dots)
			}
		}
		if xy, txt, ok := capacityMark(c, s, solid, logScale); ok {
			rings = append(rings, xy)
			ringColors = append(ringColors, col)
			ringTexts = append(ringTexts, txt)
		}
	}
	// What the line styles mean, in grey: they are the same for every colour.
	for _, metric := range []string{solid, dashed} {
		l := &plotter.Line{LineStyle: draw.LineStyle{Color: primaryColor, Width: vg.Points(1.8)}}
		if metric == dashed {
			l.LineStyle.Width, l.LineStyle.Dashes = vg.Points(1.2), []vg.Length{vg.Points(5), vg.Points(3)}
		}
		leg.Add(percentileLabel(metric), l)
	}
	if len(rings) > 0 {
		if err := addCapacityRings(p, leg, rings, ringColors, ringTexts); err != nil {
			return nil, err
		}
	}
	if hasBound {
		f := plotter.NewFunction(func(float64) float64 { return bound.ms })
		f.LineStyle = draw.LineStyle{Color: sloColor, Width: vg.Points(1.4), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
		p.Add(f)
		leg.Add("SLO "+bound.text, f)
	}
	p.X.Min = 0
	p.X.Max *= 1.05
	if logScale {
		p.Y.Min = min(p.Y.Min, lo) / 1.5
		p.Y.Max = max(p.Y.Max, hi) * 1.5
	} else {
		// All zero (no read timed): an axis to 1 ms rather than none.
		p.Y.Min, p.Y.Max = 0, max(p.Y.Max, hi, 1/1.12)*1.12
	}
	return svgOf(p, leg)
}

// kneePoints are the steps' (rate, latency) points; a log axis cannot
// show a zero, so those are left out there rather than made up.
func kneePoints(steps []metrics.CapacityStep, metric string, logScale bool) plotter.XYs {
	var xys plotter.XYs
	for _, st := range steps {
		v := stepLatency(st, metric)
		if st.Rate <= 0 || !finite(st.Rate) || !finite(v) || (logScale && v <= 0) {
			continue
		}
		xys = append(xys, plotter.XY{X: st.Rate, Y: v})
	}
	return xys
}

// capacityMark is where a series' capacity sits on the knee: its
// passing step at the capacity rate, labelled with the rate.
func capacityMark(c *metrics.Capacity, s *metrics.CapacitySeries, metric string, logScale bool) (plotter.XY, string, bool) {
	st := statusOf(c, s)
	if st.kind != capExact && st.kind != capLowerBound {
		return plotter.XY{}, "", false
	}
	for _, step := range s.Steps {
		v := stepLatency(step, metric)
		if step.Pass && step.Rate == s.Capacity && finite(v) && (!logScale || v > 0) {
			txt := compactRate(s.Capacity)
			if st.kind == capLowerBound {
				txt = "≥ " + txt
			}
			return plotter.XY{X: step.Rate, Y: v}, txt, true
		}
	}
	return plotter.XY{}, "", false
}

// addCapacityRings rings each capacity point in its series' colour, with
// the rate above it, and explains the ring once in the legend.
func addCapacityRings(p *plot.Plot, leg *plot.Legend, xys plotter.XYs, cols []color.RGBA, texts []string) error {
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return err
	}
	sc.GlyphStyleFunc = func(i int) draw.GlyphStyle {
		return draw.GlyphStyle{Color: cols[i], Radius: vg.Points(7), Shape: draw.RingGlyph{}}
	}
	p.Add(sc)
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i] = text.Style{Color: cols[i], Font: chartFont(9), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
	}
	labels.Offset = vg.Point{Y: vg.Points(9)}
	p.Add(labels)
	leg.Add("capacity", &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: primaryColor, Radius: vg.Points(5), Shape: draw.RingGlyph{}}})
	return nil
}

// CapacityChart draws, as SVG, the capacity each standby count reached:
// one group of bars per strategy, one bar per count in the count's
// colour, labelled with the rate and its factor over the fewest
// standbys. A lower bound reads "≥"; a count whose capacity was not found
// gets no bar, only the words. It returns nil and no error when no series
// was measured.
func CapacityChart(c *metrics.Capacity) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	strategies := capacityStrategies(c)
	var counts []int
	for _, s := range c.Series {
		if len(s.Steps) > 0 {
			counts = append(counts, s.Standbys)
		}
	}
	counts = sortedCopy(counts)
	if len(counts) == 0 {
		return nil, nil
	}
	factors := capacityFactors(c)
	// One bar per (strategy, count); a repeated pair keeps its first series.
	type bar struct {
		v    float64
		text string
	}
	bars := make([][]bar, len(counts)) // [count][strategy]
	top := 0.0
	for j, n := range counts {
		bars[j] = make([]bar, len(strategies))
		for k, strat := range strategies {
			for _, i := range seriesByStandbys(c, strat) {
				s := &c.Series[i]
				if s.Standbys != n || len(s.Steps) == 0 {
					continue
				}
				b := bar{text: "not found"}
				switch st := statusOf(c, s); st.kind {
				case capExact:
					b = bar{s.Capacity, compactRate(s.Capacity)}
				case capLowerBound:
					b = bar{s.Capacity, "≥ " + compactRate(s.Capacity)}
				}
				if f := factors[i]; f.ok {
					b.text += "\n" + f.String()
				}
				top = max(top, b.v)
				bars[j][k] = b
				break
			}
		}
	}
	p := newPlot("Capacity per standby count (highest offered rate meeting "+orDash(c.SLO)+")", "strategy", "capacity (reads/s)", false)
	p.NominalX(strategies...)
	leg := newLegend()
	dataWidth := chartWidth - vg.Points(200)
	width := min(dataWidth/vg.Length(len(strategies))*0.8/vg.Length(len(counts)), vg.Points(56))
	for j, n := range counts {
		vals := make(plotter.Values, len(strategies))
		var xys plotter.XYs
		var texts []string
		for k, b := range bars[j] {
			vals[k] = b.v
			if b.text != "" {
				xys = append(xys, plotter.XY{X: float64(k), Y: b.v})
				texts = append(texts, b.text)
			}
		}
		bc, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		bc.Color = countColor(n)
		bc.LineStyle.Width = 0
		bc.Offset = (vg.Length(j) - vg.Length(len(counts)-1)/2) * width
		p.Add(bc)
		leg.Add(fmt.Sprintf("%d %s", n, plural(n, "standby", "standbys")), bc)
		if len(xys) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
			if err != nil {
				return nil, err
			}
			for i := range l.TextStyle {
				l.TextStyle[i] = text.Style{Color: rgb(0x333333), Font: chartFont(8), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
			}
			l.Offset = vg.Point{X: bc.Offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	p.X.Min, p.X.Max = -0.5, float64(len(strategies))-0.5
	p.Y.Min = 0
	if top > 0 {
		p.Y.Max = top * 1.2
	} else {
		p.Y.Max = 1 // nothing found anywhere: an empty axis, the words say why
	}
	return svgOf(p, leg)
}
