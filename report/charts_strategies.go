package report

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pgbenchx/pgbenchx/metrics"
)

var percentileNames = []string{"p50", "p90", "p99", "p99.9"}

// LatencyChart draws each strategy's read latency at p50, p90, p99 and
// p99.9 as SVG, from the strategy's end-to-end histogram (every read once,
// failed and retried ones included). The latency axis turns logarithmic when the values span more
// than two decades, or p50 would sit flat on the floor under p99.9. It
// returns nil and no error when no strategy served a read.
func LatencyChart(r *metrics.Result) ([]byte, error) {
	if r == nil || !hasReads(r) {
		return nil, nil
	}
	type series struct {
		name string
		ms   []float64
	}
	var all []series
	var idle []string
	lo, hi := math.Inf(1), 0.0
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		p50, p90, p99, p999, _ := percentiles(s.Reads())
		ms := []float64{p50, p90, p99, p999}
		if !slices.ContainsFunc(ms, func(v float64) bool { return finite(v) && v > 0 }) {
			idle = append(idle, s.Strategy)
			continue
		}
		for _, v := range ms {
			lo, hi = min(lo, v), max(hi, v)
		}
		all = append(all, series{s.Strategy, ms})
	}
	p := newPlot("Read latency percentiles per strategy (every read, end to end)", "percentile", "latency (ms)", true)
	p.NominalX(percentileNames...)
	logScale := hi > 100*lo
	if logScale {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = "latency (ms, log scale)"
	}
	leg := newLegend()
	for _, s := range all {
		xys := make(plotter.XYs, len(s.ms))
		for i, v := range s.ms {
			xys[i] = plotter.XY{X: float64(i), Y: v}
		}
		line, dots, err := strategyLine(s.name, xys)
		if err != nil {
			return nil, err
		}
		p.Add(line, dots)
		leg.Add(s.name, line, dots)
	}
	for _, name := range idle {
		leg.Add(name + ": no reads")
	}
	p.X.Min, p.X.Max = -0.3, float64(len(percentileNames))-0.7
	// Headroom, so the highest point does not sit on the frame.
	if logScale {
		p.Y.Max *= 1.5
	} else {
		p.Y.Min, p.Y.Max = 0, p.Y.Max*1.08
	}
	return svgOf(p, leg)
}

// ShareChart draws, as SVG, the share of each strategy's successful reads
// that each node served: one group of bars per strategy, one bar per node
// in the node's colour. It returns nil and no error when no strategy
// served a read.
func ShareChart(r *metrics.Result) ([]byte, error) {
	if r == nil || !hasReads(r) {
		return nil, nil
	}
	var strats []*metrics.StrategyResult
	for _, s := range r.Strategies {
		if s != nil {
			strats = append(strats, s)
		}
	}
	var nodes []string
	share := map[string][]float64{}
	ticks := make([]string, len(strats))
	for i, s := range strats {
		ticks[i] = s.Strategy
		if strategyTotal(s).Queries == 0 {
			ticks[i] += " (no reads)"
		}
		for _, row := range strategyRows(s) {
			if share[row.Node] == nil {
				share[row.Node] = make([]float64, len(strats))
				nodes = append(nodes, row.Node)
			}
			// A node a strategy never used served 0% of its reads; a
			// strategy with no reads at all shows no bars, and says so.
			if finite(row.SharePct) {
				share[row.Node][i] += row.SharePct
			}
		}
	}
	slices.SortFunc(nodes, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == primaryNode || (b != primaryNode && naturalLess(a, b)):
			return -1
		}
		return 1
	})

	// No vertical grid: its lines would run through each group's middle bar.
	p := newPlot("Share of successful reads per node, by strategy", "strategy", "share of reads (%)", false)
	p.NominalX(ticks...)
	leg := newLegend()
	bars := make([]*plotter.BarChart, len(nodes))
	for j, n := range nodes {
		b, err := plotter.NewBarChart(plotter.Values(share[n]), 1)
		if err != nil {
			return nil, err
		}
		b.Color = NodeColor(n)
		b.LineStyle.Width = 0
		bars[j] = b
		leg.Add(n, b)
	}
	// Bar widths are lengths on the page, not data units: share the
	// width one strategy gets between its bars, leaving a gap per group.
	dataWidth := chartWidth - legendWidth(leg) - vg.Points(70)
	width := min(dataWidth/vg.Length(len(strats))*0.8/vg.Length(len(nodes)), vg.Points(48))
	for j, b := range bars {
		b.Width = width
		b.Offset = (vg.Length(j) - vg.Length(len(nodes)-1)/2) * width
		p.Add(b)
		// Values on the bars only when they fit above them.
		if width >= vg.Points(18) {
			l, err := shareLabels(share[nodes[j]], b.Offset)
			if err != nil {
				return nil, err
			}
			p.Add(l)
		}
	}
	p.X.Min, p.X.Max = -0.5, float64(len(strats))-0.5
	p.Y.Min, p.Y.Max = 0, 108
	return svgOf(p, leg)
}

func shareLabels(pcts []float64, offset vg.Length) (*plotter.Labels, error) {
	xys := make(plotter.XYs, len(pcts))
	texts := make([]string, len(pcts))
	for i, v := range pcts {
		xys[i] = plotter.XY{X: float64(i), Y: v}
		texts[i] = fmt.Sprintf("%.0f%%", v)
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i] = text.Style{Color: rgb(0x333333), Font: chartFont(8),
			Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
	}
	l.Offset = vg.Point{X: offset, Y: vg.Points(2)}
	return l, nil
}

// ScalingPoint is one strategy's read throughput with a given number of
// standbys, as a matrix of runs measures it.
type ScalingPoint struct {
	Strategy string
	Standbys int
	QPS      float64
	Err      float64 // spread over repeated runs, 0 if none
}

// errXYs feeds plotter.NewYErrorBars, which wants both in one value.
type errXYs struct {
	plotter.XYs
	plotter.YErrors
}

// ScalingChart draws read throughput against the number of standbys as
// SVG, one line per strategy, with error bars where a point has a
// spread. Points with an unknown QPS are left out. It returns nil and no
// error when there is no point to draw.
func ScalingChart(points []ScalingPoint) ([]byte, error) {
	by := map[string][]ScalingPoint{}
	var order []string
	var counts []int
	spread := false
	for _, pt := range points {
		if !finite(pt.QPS) {
			continue
		}
		if by[pt.Strategy] == nil {
			order = append(order, pt.Strategy)
		}
		by[pt.Strategy] = append(by[pt.Strategy], pt)
		counts = append(counts, pt.Standbys)
		spread = spread || (finite(pt.Err) && pt.Err > 0)
	}
	if len(order) == 0 {
		return nil, nil
	}
	title := "Read throughput by number of standbys"
	if spread {
		title += " (bars: spread over repeats)"
	}
	p := newPlot(title, "standbys (count)", "read throughput (queries/s)", true)
	leg := newLegend()
	for _, name := range order {
		pts := by[name]
		slices.SortStableFunc(pts, func(a, b ScalingPoint) int { return a.Standbys - b.Standbys })
		xys := make(plotter.XYs, len(pts))
		var bars errXYs
		for i, pt := range pts {
			xys[i] = plotter.XY{X: float64(pt.Standbys), Y: pt.QPS}
			if finite(pt.Err) && pt.Err > 0 {
				bars.XYs = append(bars.XYs, xys[i])
				bars.YErrors = append(bars.YErrors, struct{ Low, High float64 }{pt.Err, pt.Err})
			}
		}
		line, dots, err := strategyLine(name, xys)
		if err != nil {
			return nil, err
		}
		p.Add(line, dots)
		if len(bars.XYs) > 0 {
			eb, err := plotter.NewYErrorBars(bars)
			if err != nil {
				return nil, err
			}
			eb.LineStyle = draw.LineStyle{Color: styleOf(name).color, Width: vg.Points(1.2)}
			p.Add(eb)
		}
		leg.Add(name, line, dots)
	}
	cs := sortedCopy(counts)
	ticks := make([]plot.Tick, len(cs))
	for i, c := range cs {
		ticks[i] = plot.Tick{Value: float64(c), Label: fmt.Sprint(c)}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = float64(cs[0])-0.5, float64(cs[len(cs)-1])+0.5
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.08
	return svgOf(p, leg)
}
