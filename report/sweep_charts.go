package report

import (
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// The charts of sweep.md: achieved reads/s against the level for every
// strategy, and per strategy its latency against the level, labelled with
// what it achieved there: the two halves of a saturation point.

// sweepChart is one chart of sweep.md; a render returning nil has nothing
// to draw, and the chart is neither written nor linked.
type sweepChart = svgChart

// sweepQPSFile is the shared throughput chart.
const sweepQPSFile = "sweep_qps.svg"

// sweepCharts lists the charts of s: the shared throughput chart, then
// one latency chart per strategy in the order first measured.
func sweepCharts(s *metrics.Sweep) []sweepChart {
	a := axisOf(s)
	out := []sweepChart{{sweepQPSFile, "Achieved reads/s against " + a.name + ", per strategy",
		func() ([]byte, error) { return SweepQPSChart(s) }}}
	// "qps" is taken by the shared chart: a strategy of that name must
	// not overwrite it.
	used := map[string]bool{"qps": true}
	for _, strat := range sweepStrategies(s) {
		out = append(out, sweepChart{"sweep_" + uniqueFileName(fileSafe(strat), used) + ".svg",
			"Read latency of " + orDash(strat) + " against " + a.name,
			func() ([]byte, error) { return SweepLatencyChart(s, strat) }})
	}
	return out
}

// fileSafe makes a strategy name a file name that every filesystem and
// Markdown viewer takes as is: "via:pgpool" becomes "via-pgpool" (a colon
// is illegal on Windows and reads as a URL scheme in a link).
func fileSafe(name string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, name)
	if safe == "" {
		return "strategy"
	}
	return safe
}

// uniqueFileName numbers a name already taken, so two strategies that
// differ only in what fileSafe replaced ("via:x", "via-x"), or in case on
// a case-insensitive filesystem, do not overwrite each other's chart.
func uniqueFileName(name string, used map[string]bool) string {
	out := name
	for i := 2; used[strings.ToLower(out)]; i++ {
		out = name + "-" + strconv.Itoa(i)
	}
	used[strings.ToLower(out)] = true
	return out
}

// sweepScale is the axes every chart of a sweep shares, so flipping
// between the strategies' latency charts compares like with like.
type sweepScale struct {
	levels     []float64
	xLog       bool
	xMin, xMax float64
	yLog       bool
	yLo, yHi   float64 // latencies drawn, ms
}

// scaleOf picks the axes. The level axis turns logarithmic when the
// levels span more than a decade (4 to 256 clients would crowd the low
// ones into a corner); the latency axis when the values span more than
// two, as they do once a queue builds, like the capacity knee chart.
func scaleOf(s *metrics.Sweep) sweepScale {
	var sc sweepScale
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range sweepLevels(s) {
		if finite(l) && l > 0 {
			sc.levels = append(sc.levels, l)
			lo, hi = min(lo, l), max(hi, l)
		}
	}
	if len(sc.levels) > 0 {
		sc.xLog = hi > 10*lo
		if sc.xLog {
			sc.xMin, sc.xMax = lo/1.25, hi*1.25
		} else {
			sc.xMin, sc.xMax = 0, hi*1.05
		}
	}
	sc.yLo, sc.yHi = math.Inf(1), 0
	for _, p := range s.Points {
		for _, v := range []float64{p.P50MS, p.P99MS} {
			if finite(v) && v > 0 {
				sc.yLo, sc.yHi = min(sc.yLo, v), max(sc.yHi, v)
			}
		}
	}
	sc.yLog = sc.yHi > 100*sc.yLo
	return sc
}

// xOK is whether a level can be placed: a log axis cannot show zero.
func (sc sweepScale) xOK(x float64) bool { return finite(x) && x > 0 }

// yOK is whether a latency can be drawn; on a log axis a zero is left
// out rather than made up.
func (sc sweepScale) yOK(y float64) bool { return finite(y) && y >= 0 && (!sc.yLog || y > 0) }

// applyX sets the level axis: its scale, range and a tick at each level.
func (sc sweepScale) applyX(p *plot.Plot, a sweepAxis) {
	p.X.Label.Text = a.label
	if sc.xLog {
		p.X.Scale = plot.LogScale{}
		p.X.Label.Text += ", log scale"
	}
	p.X.Tick.Marker = levelTicks{levels: sc.levels, log: sc.xLog}
	p.X.Min, p.X.Max = sc.xMin, sc.xMax
}

// levelTicks marks the levels themselves, which is what a reader looks
// up, labelling each unless it would touch the last one labelled. Past a
// dozen levels it falls back on round numbers.
type levelTicks struct {
	levels []float64
	log    bool
}

// minLabelGap is the least distance between labelled levels, as a share
// of the axis: about a "16,000" in tick font on a chart this wide.
const minLabelGap = 0.08

func (t levelTicks) Ticks(lo, hi float64) []plot.Tick {
	if len(t.levels) == 0 || len(t.levels) > 12 || !(hi > lo) {
		if t.log {
			return plot.LogTicks{Prec: -1}.Ticks(lo, hi)
		}
		return niceTicks{}.Ticks(lo, hi)
	}
	pos := func(v float64) float64 {
		if t.log {
			return (math.Log(v) - math.Log(lo)) / (math.Log(hi) - math.Log(lo))
		}
		return (v - lo) / (hi - lo)
	}
	var ticks []plot.Tick
	last := math.Inf(-1)
	for _, l := range t.levels {
		if l < lo || l > hi {
			continue
		}
		tk := plot.Tick{Value: l}
		if x := pos(l); x-last >= minLabelGap {
			tk.Label, last = levelText(l), x
		}
		ticks = append(ticks, tk)
	}
	return ticks
}

// achievedLabel is a point's reads/s as its label reads, "12.1k/s";
// "unknown" alone, since a unit after it would read as a figure.
func achievedLabel(qps float64) string {
	if !finite(qps) || qps < 0 {
		return "unknown"
	}
	return compactRate(qps) + "/s"
}

var dashedLatency = []vg.Length{vg.Points(5), vg.Points(3)}

// SweepLatencyChart draws, as SVG, one strategy's read latency against
// the level: p99 solid, p50 dashed, in the strategy's colour, each p99
// point labelled with the reads/s achieved there, so where latency takes
// off can be read against where throughput stopped growing. Every
// strategy's chart shares the same axes. It returns nil and no error
// when the strategy has nothing to draw.
func SweepLatencyChart(s *metrics.Sweep, strategy string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	sc := scaleOf(s)
	var p99, p50, at plotter.XYs
	var labels []string
	for _, pt := range strategyPoints(s, strategy) {
		if !sc.xOK(pt.Level) {
			continue
		}
		ok99, ok50 := sc.yOK(pt.P99MS), sc.yOK(pt.P50MS)
		if ok99 {
			p99 = append(p99, plotter.XY{X: pt.Level, Y: pt.P99MS})
		}
		if ok50 {
			p50 = append(p50, plotter.XY{X: pt.Level, Y: pt.P50MS})
		}
		// The label sits on p99, or on p50 where p99 is missing.
		if ok99 || ok50 {
			y := pt.P99MS
			if !ok99 {
				y = pt.P50MS
			}
			at = append(at, plotter.XY{X: pt.Level, Y: y})
			labels = append(labels, achievedLabel(pt.QPS))
		}
	}
	if len(at) == 0 {
		return nil, nil
	}
	a := axisOf(s)
	p := newPlot(orDash(strategy)+": read latency against "+a.name, a.label, "latency (ms)", true)
	sc.applyX(p, a)
	if sc.yLog {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = "latency (ms, log scale)"
	}
	st := styleOf(strategy)
	leg := newLegend()
	for _, c := range []struct {
		name   string
		xys    plotter.XYs
		dashed bool
	}{{"p99", p99, false}, {"p50", p50, true}} {
		if len(c.xys) == 0 {
			continue
		}
		line, dots, err := plotter.NewLinePoints(c.xys)
		if err != nil {
			return nil, err
		}
		line.LineStyle = draw.LineStyle{Color: st.color, Width: vg.Points(1.8)}
		dots.GlyphStyle = draw.GlyphStyle{Color: st.color, Radius: vg.Points(3), Shape: st.glyph}
		if c.dashed {
			line.LineStyle.Width, line.LineStyle.Dashes = vg.Points(1.2), dashedLatency
			dots.GlyphStyle.Radius = vg.Points(2)
		}
		p.Add(line, dots)
		leg.Add(c.name, line, dots)
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: at, Labels: labels})
	if err != nil {
		return nil, err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i] = text.Style{Color: rgb(0x333333), Font: chartFont(8), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
	}
	lb.Offset = vg.Point{Y: vg.Points(6)}
	p.Add(lb)
	// No thumbnail: the entry explains the labels, it draws nothing.
	leg.Add("labels: reads/s achieved")
	if sc.yLog {
		p.Y.Min, p.Y.Max = sc.yLo/1.5, sc.yHi*2 // room for the labels above the top point
	} else {
		// All zero (no read timed): an axis to 1 ms rather than none.
		p.Y.Min, p.Y.Max = 0, max(sc.yHi, 1/1.15)*1.15
	}
	return svgOf(p, leg)
}

// SweepQPSChart draws, as SVG, the reads/s each strategy achieved against
// the level, one line per strategy in its fixed style. In an open loop
// the offered rate is drawn too, grey and dashed: where a strategy falls
// below it, the cluster stopped keeping up. It returns nil and no error
// when no point has a level and a throughput to draw.
func SweepQPSChart(s *metrics.Sweep) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	sc := scaleOf(s)
	a := axisOf(s)
	p := newPlot("Achieved reads/s against "+a.name, a.label, "achieved (reads/s)", true)
	leg := newLegend()
	top, drawn := 0.0, 0
	for _, strat := range sweepStrategies(s) {
		var xys plotter.XYs
		for _, pt := range strategyPoints(s, strat) {
			if sc.xOK(pt.Level) && finite(pt.QPS) && pt.QPS >= 0 {
				xys = append(xys, plotter.XY{X: pt.Level, Y: pt.QPS})
				top = max(top, pt.QPS)
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, dots, err := strategyLine(strat, xys)
		if err != nil {
			return nil, err
		}
		p.Add(line, dots)
		leg.Add(orDash(strat), line, dots)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	if offered := offeredLine(s, sc); len(offered) > 0 {
		l, err := plotter.NewLine(offered)
		if err != nil {
			return nil, err
		}
		l.LineStyle = draw.LineStyle{Color: primaryColor, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
		p.Add(l)
		leg.Add("offered", l)
		for _, xy := range offered {
			top = max(top, xy.Y)
		}
	}
	sc.applyX(p, a)
	p.Y.Min = 0
	p.Y.Max = max(top, 1) * 1.1
	return svgOf(p, leg)
}

// offeredLine is the offered rate across the levels, when every point
// ran an open loop: the levels themselves in a rate sweep, or the one
// rate a clients sweep offered at each. Nothing for a closed loop, which
// offers no rate, or for rates that differ within a clients sweep.
func offeredLine(s *metrics.Sweep, sc sweepScale) plotter.XYs {
	if closed, open := loops(s); closed || !open || len(sc.levels) == 0 {
		return nil
	}
	var xys plotter.XYs
	if s.Dimension == sweepRate {
		for _, l := range sc.levels {
			xys = append(xys, plotter.XY{X: l, Y: l})
		}
		return xys
	}
	_, rate, same := constantOther(s)
	if !same || !finite(rate) {
		return nil
	}
	return plotter.XYs{{X: sc.levels[0], Y: rate}, {X: sc.levels[len(sc.levels)-1], Y: rate}}
}
