package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// Units LagChart draws.
const (
	LagBytes = "bytes"
	LagMS    = "ms"
	// LagSlot is the WAL each standby's slot made the primary keep.
	LagSlot = "slot"
)

// runChart is one chart of a run folder. has decides from the Result
// alone whether there is anything to draw, so WriteMarkdown links exactly
// the charts WriteRun writes without looking at the folder.
type runChart struct {
	file, alt string
	has       func(*metrics.Result) bool
	render    func(*metrics.Result) ([]byte, error)
}

var runCharts = []runChart{
	{"lag_bytes.svg", "Replica lag (bytes)",
		func(r *metrics.Result) bool { return hasLag(r, LagBytes) },
		func(r *metrics.Result) ([]byte, error) { return LagChart(r, LagBytes) }},
	{"lag_ms.svg", "Replica lag (ms)",
		func(r *metrics.Result) bool { return hasLag(r, LagMS) },
		func(r *metrics.Result) ([]byte, error) { return LagChart(r, LagMS) }},
	{"slot_bytes.svg", "WAL kept on the primary by each standby's slot",
		func(r *metrics.Result) bool { return hasLag(r, LagSlot) },
		func(r *metrics.Result) ([]byte, error) { return LagChart(r, LagSlot) }},
	{"throughput.svg", "Reads per second, per node, with the events", hasTicks, ThroughputChart},
	{"latency_time.svg", "Read latency per second, with the events", hasTicks, LatencyTimeChart},
	{"latency.svg", "Latency percentiles per strategy", hasReads, LatencyChart},
	{"share.svg", "Read share per node", hasReads, ShareChart},
}

// ChartFiles names the charts WriteCharts writes for r, in its order.
func ChartFiles(r *metrics.Result) []string {
	var names []string
	for _, c := range runCharts {
		if r != nil && c.has(r) {
			names = append(names, c.file)
		}
	}
	return names
}

// WriteCharts writes r's charts into dir, creating it if missing, and
// returns the names written, relative to dir. A chart with nothing to
// draw (no standbys, no reads) is not written. Like WriteRun it writes
// each file whole or not at all and keeps going past a failed chart.
func WriteCharts(dir string, r *metrics.Result) ([]string, error) {
	if r == nil {
		return nil, errors.New("report: no result to chart")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	for _, c := range runCharts {
		if !c.has(r) {
			continue
		}
		svg, err := c.render(r)
		if err == nil {
			err = writeAtomic(filepath.Join(dir, c.file), func(w io.Writer) error {
				_, err := w.Write(svg)
				return err
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("chart %s: %w", c.file, err))
			continue
		}
		names = append(names, c.file)
	}
	return names, errors.Join(errs...)
}

// writeChartLinks is report.md's "Charts" section; names are relative to
// report.md, so the folder can be moved or served as a whole.
func writeChartLinks(m *md, charts []string) {
	if len(charts) == 0 {
		return
	}
	m.p("## Charts\n\n")
	for _, name := range charts {
		alt := name
		for _, c := range runCharts {
			if c.file == name {
				alt = c.alt
			}
		}
		m.p("![%s](%s)\n\n", alt, name)
	}
}

// lagValue reads one unit of a lag sample; false when it is unknown.
func lagValue(unit string) (func(metrics.LagSample) (float64, bool), error) {
	switch unit {
	case LagBytes:
		return func(l metrics.LagSample) (float64, bool) {
			if l.Bytes == nil {
				return 0, false
			}
			return float64(*l.Bytes), true
		}, nil
	case LagMS:
		return func(l metrics.LagSample) (float64, bool) {
			// NaN cannot come from run.json, but a NaN in memory is no
			// more known than a nil.
			if l.MS == nil || !finite(*l.MS) {
				return 0, false
			}
			return *l.MS, true
		}, nil
	case LagSlot:
		return func(l metrics.LagSample) (float64, bool) {
			if l.SlotBytes == nil {
				return 0, false
			}
			return float64(*l.SlotBytes), true
		}, nil
	}
	return nil, fmt.Errorf("report: lag unit %q: want %s, %s or %s", unit, LagBytes, LagMS, LagSlot)
}

func hasLag(r *metrics.Result, unit string) bool {
	get, err := lagValue(unit)
	if err != nil {
		return false
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, l := range s.Lag {
			if _, ok := get(l); ok {
				return true
			}
		}
	}
	return false
}

// phaseMark is where a strategy's read phase starts on the lag chart.
type phaseMark struct {
	at    float64
	name  string
	event bool // an event (a fault, a failover), not the start of a strategy
}

// lagSeries lays the strategies' samples end to end, each strategy's T
// offset by the time measured before it. A standby's line breaks at an
// unknown sample and at a strategy boundary (the warmup in between was not
// sampled), so a gap reads as a gap and never as zero lag.
func lagSeries(r *metrics.Result, get func(metrics.LagSample) (float64, bool)) (segs map[string][]plotter.XYs, marks []phaseMark, end float64) {
	segs = map[string][]plotter.XYs{}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		marks = append(marks, strategyMarks(s, end)...)
		open := map[string]bool{}
		length := max(s.Seconds, 0)
		for _, l := range s.Lag {
			length = max(length, l.T)
			v, ok := get(l)
			if !ok {
				open[l.Node] = false
				continue
			}
			if !open[l.Node] {
				segs[l.Node] = append(segs[l.Node], nil)
				open[l.Node] = true
			}
			last := &segs[l.Node][len(segs[l.Node])-1]
			*last = append(*last, plotter.XY{X: end + l.T, Y: v})
		}
		end += length
	}
	return segs, marks, end
}

// byteScale picks the unit the largest lag reads best in.
func byteScale(maxBytes float64) (div float64, unit string) {
	switch {
	case maxBytes >= 1<<30:
		return 1 << 30, "GiB"
	case maxBytes >= 1<<20:
		return 1 << 20, "MiB"
	}
	return 1 << 10, "KiB"
}

// LagChart draws each standby's replica lag over the run's read phases as
// SVG, in unit LagBytes (WAL bytes behind the primary) or LagMS (heartbeat
// time). It returns nil and no error when no sample knew the lag.
func LagChart(r *metrics.Result, unit string) ([]byte, error) {
	get, err := lagValue(unit)
	if err != nil {
		return nil, err
	}
	if r == nil || !hasLag(r, unit) {
		return nil, nil
	}
	segs, marks, end := lagSeries(r, get)
	div, yUnit := 1.0, "ms"
	title := "Replica lag per standby: heartbeat time behind the primary (lower bound)"
	if unit == LagBytes || unit == LagSlot {
		var top float64
		for _, ss := range segs {
			for _, seg := range ss {
				for _, pt := range seg {
					top = max(top, pt.Y)
				}
			}
		}
		div, yUnit = byteScale(top)
		title = "Replica lag per standby: WAL bytes behind the primary"
		if unit == LagSlot {
			title = "WAL each standby's slot makes the primary keep"
		}
	}
	yLabel := "lag (" + yUnit + ")"
	if unit == LagSlot {
		yLabel = "WAL kept (" + yUnit + ")"
	}
	p := newPlot(title, "measured time since the first read phase began (s, warmups left out)", yLabel, true)
	leg := newLegend()
	var maxY float64
	for _, node := range standbys(r) {
		if len(segs[node]) == 0 {
			leg.Add(node + ": no known sample")
			continue
		}
		col := NodeColor(node)
		style := draw.LineStyle{Color: col, Width: vg.Points(1.5)}
		for _, seg := range segs[node] {
			xys := make(plotter.XYs, len(seg))
			for i, pt := range seg {
				xys[i] = plotter.XY{X: pt.X, Y: pt.Y / div}
				maxY = max(maxY, xys[i].Y)
			}
			// A known sample between two unknown ones is a line of one
			// point, which draws nothing: it gets a dot. Only it does:
			// a dot per sample would make an hour's chart megabytes.
			if len(xys) == 1 {
				dot, err := plotter.NewScatter(xys)
				if err != nil {
					return nil, err
				}
				dot.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
				p.Add(dot)
				continue
			}
			line, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			line.LineStyle = style
			p.Add(line)
		}
		leg.Add(node, &plotter.Line{LineStyle: style})
	}
	return finishTimeline(p, leg, marks, end, maxY)
}

// phaseMarks names each strategy at the top of its stretch of the time
// axis and draws a dashed line where the next one begins.
type phaseMarks []phaseMark

func (m phaseMarks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	line := draw.LineStyle{Color: rgb(0x888888), Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	sty := text.Style{Color: rgb(0x333333), Font: chartFont(10), Handler: p.TextHandler,
		XAlign: draw.XLeft, YAlign: draw.YTop}
	eventLine := draw.LineStyle{Color: rgb(0xC00000), Width: vg.Points(1), Dashes: []vg.Length{vg.Points(1), vg.Points(2)}}
	eventSty := sty
	eventSty.Color, eventSty.YAlign = rgb(0xC00000), draw.YBottom
	events := 0
	for i, mk := range m {
		x := trX(mk.at)
		if mk.event {
			// Events read from the bottom up, so they never cover the
			// strategies' names at the top; close ones (a fault, then
			// what followed it) are stacked rather than written over
			// each other.
			c.StrokeLine2(eventLine, x, c.Min.Y, x, c.Max.Y)
			y := c.Min.Y + vg.Points(3+12*float64(events%6))
			c.FillText(eventSty, vg.Point{X: x + vg.Points(3), Y: y}, mk.name)
			events++
			continue
		}
		if i > 0 {
			c.StrokeLine2(line, x, c.Min.Y, x, c.Max.Y)
		}
		c.FillText(sty, vg.Point{X: x + vg.Points(4), Y: c.Max.Y - vg.Points(3)}, mk.name)
	}
}

// hasReads: latency and share need at least one successful read.
func hasReads(r *metrics.Result) bool {
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, n := range s.Nodes {
			if n == nil {
				continue
			}
			for _, h := range n.Kinds {
				if h != nil && h.Histogram != nil && h.TotalCount() > 0 {
					return true
				}
			}
		}
	}
	return false
}
