package report

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// What every chart shares: size, fonts, legend placement, ticks and the
// SVG rendering itself.

// Charts are 8 x 4.5 in, the shape of a slide, wide enough to keep the
// legend beside the data instead of over it.
const (
	chartWidth  = 8 * vg.Inch
	chartHeight = 4.5 * vg.Inch
)

// chartFont is Liberation Sans rather than gonum's default serif: it has
// the metrics of Arial and Helvetica, which svgOf names as fallbacks for
// viewers without Liberation, so text keeps the room laid out for it.
func chartFont(size float64) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
}

// fontFamily is how vgsvg names chartFont, and what svgOf puts in its place.
var fontFamily = []byte("font-family:Liberation Sans;")
var fontFallback = []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")

func newPlot(title, xLabel, yLabel string, verticalGrid bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = chartFont(13)
	p.Title.Padding = vg.Points(8)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = chartFont(11)
		a.Tick.Label.Font = chartFont(10)
	}
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Tick.Marker, p.Y.Tick.Marker = niceTicks{}, niceTicks{}
	grid := plotter.NewGrid()
	if !verticalGrid {
		grid.Vertical.Color = nil
	}
	p.Add(grid)
	return p
}

func newLegend() *plot.Legend {
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.TextStyle.Font = chartFont(11)
	l.Padding = vg.Points(4)
	return &l
}

// Space around the legend, which svgOf draws right of the plot.
const (
	legendGap = 10 // pt between the plot and the legend
	legendTop = 34 // pt, so the first entry lines up under the title
)

func legendWidth(leg *plot.Legend) vg.Length {
	w := leg.Rectangle(draw.Canvas{}).Size().X
	if w <= 0 {
		return 0
	}
	// Slack for a fallback font a little wider than Liberation Sans.
	return w*1.1 + 2*legendGap
}

// svgOf renders p with leg beside it. The plot's own legend would sit on
// top of the data, where lag spikes and tall bars are.
func svgOf(p *plot.Plot, leg *plot.Legend) (b []byte, err error) {
	// gonum/plot panics on data it cannot scale; one bad chart must not
	// cost a run its other files.
	defer func() {
		if v := recover(); v != nil {
			b, err = nil, fmt.Errorf("report: chart %q: %v", p.Title.Text, v)
		}
	}()
	c := vgsvg.New(chartWidth, chartHeight)
	dc := draw.New(c)
	lw := legendWidth(leg)
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	if lw > 0 {
		leg.Draw(draw.Crop(dc, chartWidth-lw+legendGap, -legendGap, 0, -legendTop))
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(buf.Bytes(), fontFamily, fontFallback), nil
}

// strategyLine draws one strategy's series in its fixed style.
func strategyLine(name string, xys plotter.XYs) (*plotter.Line, *plotter.Scatter, error) {
	line, dots, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, nil, err
	}
	st := styleOf(name)
	line.LineStyle = draw.LineStyle{Color: st.color, Width: vg.Points(1.8), Dashes: st.dashes}
	dots.GlyphStyle = draw.GlyphStyle{Color: st.color, Radius: vg.Points(3), Shape: st.glyph}
	return line, dots, nil
}

// sortedCopy keeps the caller's slice as it was.
func sortedCopy(xs []int) []int {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// niceTicks marks a linear axis at multiples of 1, 2 or 5 times a power
// of ten, five or so of them, labelled without gonum's fixed decimals
// ("2,500" rather than "2500.00").
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !finite(lo) || !finite(hi) || hi <= lo {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	prec := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	// Integer multiples, so float steps do not pile up errors.
	for k := math.Ceil(lo / step); k*step <= hi+step*1e-9; k++ {
		v := k * step
		ticks = append(ticks, plot.Tick{Value: v, Label: grouped(fixed(v, prec))})
		if half := v + step/2; half <= hi {
			ticks = append(ticks, plot.Tick{Value: half})
		}
	}
	return ticks
}
