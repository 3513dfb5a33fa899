package report

import (
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// The timeline charts draw the per-second series (what timeseries.csv
// holds) on the same measured-time axis as the lag charts, with the same
// strategy and event marks: a reader sees a node stop serving when it is
// killed, the reads move to the others, and the latency of the seconds in
// between.

// tickSeries lays the strategies' seconds end to end; each tick sits at
// the end of its second. get returns the series a tick adds to (by
// name) with their values.
func tickSeries(r *metrics.Result, get func(metrics.Tick) map[string]float64) (series map[string]plotter.XYs, marks []phaseMark, end float64) {
	series = map[string]plotter.XYs{}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		marks = append(marks, strategyMarks(s, end)...)
		for _, t := range s.Ticks {
			for name, v := range get(t) {
				series[name] = append(series[name], plotter.XY{X: end + float64(t.Second), Y: v})
			}
		}
		end += max(s.Seconds, float64(len(s.Ticks)))
	}
	return series, marks, end
}

// strategyMarks are a strategy's start and its events, at offset end.
func strategyMarks(s *metrics.StrategyResult, end float64) []phaseMark {
	out := []phaseMark{{at: end, name: s.Strategy}}
	for _, e := range s.Events {
		// The warmup and the time after the end are not on the axis:
		// such an event sits at the edge of its strategy's stretch.
		t := min(max(e.T, 0), max(s.Seconds, 0))
		// Kind and node only: the detail is for the reports' text.
		out = append(out, phaseMark{at: end + t, name: strings.TrimSpace(e.Kind + " " + e.Node), event: true})
	}
	return out
}

func hasTicks(r *metrics.Result) bool {
	for _, s := range r.Strategies {
		if s != nil && len(s.Ticks) > 0 {
			return true
		}
	}
	return false
}

// ThroughputChart draws successful reads per second, in all and per node
// that served any, over the measured time.
func ThroughputChart(r *metrics.Result) ([]byte, error) {
	if r == nil || !hasTicks(r) {
		return nil, nil
	}
	const all = "all nodes"
	series, marks, end := tickSeries(r, func(t metrics.Tick) map[string]float64 {
		m := map[string]float64{all: float64(t.Queries)}
		for n, q := range t.NodeQueries {
			m[n] = float64(q)
		}
		return m
	})
	p := newPlot("Reads per second, in all and per node", "measured time since the first read phase began (s, warmups left out)", "successful reads per second", true)
	leg := newLegend()
	names := append([]string{all}, mentioned(r, true)...)
	var maxY float64
	for _, name := range names {
		xys := series[name]
		served := false
		for _, pt := range xys {
			maxY = max(maxY, pt.Y)
			served = served || pt.Y > 0
		}
		if !served {
			continue
		}
		col := NodeColor(name)
		width := vg.Points(1.5)
		if name == all {
			col, width = rgb(0x222222), vg.Points(2)
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.LineStyle = draw.LineStyle{Color: col, Width: width}
		p.Add(line)
		leg.Add(name, line)
	}
	return finishTimeline(p, leg, marks, end, maxY)
}

// LatencyTimeChart draws each second's p50 and p99 of the reads that
// ended in it, end to end, over the measured time.
func LatencyTimeChart(r *metrics.Result) ([]byte, error) {
	if r == nil || !hasTicks(r) {
		return nil, nil
	}
	series, marks, end := tickSeries(r, func(t metrics.Tick) map[string]float64 {
		if t.Queries == 0 && t.Errors == 0 && t.Failed == 0 {
			return nil // no read ended: no percentile, not 0
		}
		return map[string]float64{"p50": t.P50MS, "p99": t.P99MS}
	})
	p := newPlot("Read latency per second, end to end", "measured time since the first read phase began (s, warmups left out)", "latency (ms)", true)
	leg := newLegend()
	var maxY float64
	for i, name := range []string{"p50", "p99"} {
		xys := series[name]
		if len(xys) == 0 {
			continue
		}
		for _, pt := range xys {
			maxY = max(maxY, pt.Y)
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.LineStyle = draw.LineStyle{Color: standbyColors[i%len(standbyColors)], Width: vg.Points(1.5)}
		p.Add(line)
		leg.Add(name, line)
	}
	return finishTimeline(p, leg, marks, end, maxY)
}

// finishTimeline sets the axes as the lag charts do, adds the marks and
// renders.
func finishTimeline(p *plot.Plot, leg *plot.Legend, marks []phaseMark, end, maxY float64) ([]byte, error) {
	if maxY <= 0 {
		maxY = 1
	}
	p.X.Min, p.X.Max = 0, max(end, p.X.Max)
	// Headroom above the data for the strategy names.
	p.Y.Min, p.Y.Max = 0, maxY*1.15
	p.Add(phaseMarks(marks))
	return svgOf(p, leg)
}
