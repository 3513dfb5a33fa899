package report

import (
	"hash/fnv"
	"image/color"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours are keyed by name, never by order of appearance: standby2 must
// look the same in a run where standby1 was down, in every chart of a run
// and in every run of a comparison, or readers match the wrong lines.

func rgb(hex uint32) color.RGBA {
	return color.RGBA{R: uint8(hex >> 16), G: uint8(hex >> 8), B: uint8(hex), A: 0xff}
}

// primaryColor is grey, not black, so it stays apart from the axes.
var primaryColor = rgb(0x666666)

// standbyColors is the Okabe-Ito palette (safe for the common colour
// vision deficiencies) without its yellow, which vanishes on white.
var standbyColors = []color.RGBA{
	rgb(0x0072B2), // standby1: blue
	rgb(0xE69F00), // standby2: orange
	rgb(0x009E73), // standby3: bluish green
	rgb(0xCC79A7), // standby4: reddish purple
	rgb(0x56B4E9), // standby5: sky blue
	rgb(0xD55E00), // standby6: vermillion
}

// primaryNode is the name envs give their primary: it is drawn grey and
// first. A name, not a role: after a failover another node is primary.
const primaryNode = "primary"

// NodeColor is the colour of a node in every chart: grey for the primary,
// standbyN takes the Nth palette colour (cycling), and any other name a
// colour hashed from it, so it is stable too.
func NodeColor(name string) color.RGBA {
	if name == primaryNode {
		return primaryColor
	}
	if _, n, ok := splitNumber(name); ok && n > 0 {
		return standbyColors[(n-1)%len(standbyColors)]
	}
	return standbyColors[hashIndex(name, len(standbyColors))]
}

func hashIndex(s string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return int(h.Sum32() % uint32(n))
}

// strategyStyle tells strategies apart by colour, dash and glyph at once,
// so a chart still reads in greyscale print. The colours are Paul Tol's
// "muted" scheme, distinct from the node palette: a strategy is not a node.
type strategyStyle struct {
	color  color.RGBA
	dashes []vg.Length
	glyph  draw.GlyphDrawer
}

var strategyStyles = map[string]strategyStyle{
	"round-robin": {rgb(0x332288), nil, draw.CircleGlyph{}},
	"least-conn":  {rgb(0x117733), []vg.Length{vg.Points(6), vg.Points(3)}, draw.SquareGlyph{}},
	"lag-aware":   {rgb(0xCC6677), []vg.Length{vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)}, draw.TriangleGlyph{}},
	"causal":      {rgb(0x44AA99), []vg.Length{vg.Points(12), vg.Points(4)}, draw.PyramidGlyph{}},
	"random":      {rgb(0x882255), []vg.Length{vg.Points(2), vg.Points(3)}, draw.RingGlyph{}},
	"nearest":     {rgb(0xDDCC77), []vg.Length{vg.Points(10), vg.Points(2), vg.Points(2), vg.Points(2)}, draw.PlusGlyph{}},
}

// otherStrategyColors serve strategies this version does not know (a
// newer run.json), still chosen by name.
var otherStrategyColors = []color.RGBA{rgb(0x999933), rgb(0xAA4499), rgb(0x88CCEE)}

func styleOf(strategy string) strategyStyle {
	if s, ok := strategyStyles[strings.ToLower(strategy)]; ok {
		return s
	}
	return strategyStyle{
		color:  otherStrategyColors[hashIndex(strategy, len(otherStrategyColors))],
		dashes: []vg.Length{vg.Points(4), vg.Points(2)},
		glyph:  draw.CrossGlyph{},
	}
}

// StrategyColor is the colour of a strategy in every chart.
func StrategyColor(strategy string) color.RGBA { return styleOf(strategy).color }
