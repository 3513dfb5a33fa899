package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// Sample is one stored run put into a comparison. Dir, when known, is the
// run's folder relative to comparison.md, for links.
type Sample struct {
	Label  string
	Dir    string
	Result *metrics.Result
}

// Repeat is one run's figures for one strategy: what the spread and the
// significance tests of a cell are computed from. Latencies are ms from
// the strategy's histogram merged over nodes.
type Repeat struct {
	Sample                int // index into Comparison.Samples
	QPS, P50, P99         float64
	StalePct              float64 // NaN when staleness was not checked
	Errors, Retries       int64
	LagMSMax, LagBytesMax float64 // largest lag sample of any standby; NaN if none known
	strategy              *metrics.StrategyResult
}

// Cell is one (strategy, standbys) pair of a comparison, over its K
// repeats. QPS and StalePct are means over the repeats; latencies come
// from the repeats' histograms merged, never from averaged percentiles;
// counts are summed; lag is the largest seen.
type Cell struct {
	Strategy string
	Standbys int
	Repeats  []Repeat

	QPS, QPSStddev           float64 // stddev is the sample one (n-1); 0 with one repeat
	P50, P90, P99, P999, Max float64
	StalePct                 float64
	Errors, Retries          int64
	LagMSMax, LagBytesMax    float64
	Share                    []NodeShare // of the queries of every repeat, pooled
}

// NodeShare is a node's share of a cell's successful queries.
type NodeShare struct {
	Node string
	Pct  float64
}

// Delta is a change from a baseline cell: relative (Change = Value/Base-1)
// for throughput and latencies, in percentage points for stale reads. Sig
// tests the repeats' values of both cells.
type Delta struct {
	Base, Value, Change float64
	Points              bool
	Sig                 Significance
}

// ScalingFactor is what more standbys bought one strategy: its mean QPS
// with Standbys over its mean QPS with BaseStandbys (the fewest it was
// measured with), with the latency and staleness changes alongside.
type ScalingFactor struct {
	Strategy               string
	Standbys, BaseStandbys int
	Factor                 float64
	// Spread is the factor's ± from the two cells' stddevs (first-order
	// error propagation); 0 when either cell ran once.
	Spread          float64
	Sig             Significance // Welch's t-test on the repeats' QPS
	P50, P99, Stale Delta
}

// StrategyDelta compares a strategy with the baseline strategy at one
// standby count.
type StrategyDelta struct {
	Strategy, Baseline   string
	Standbys             int
	QPS, P50, P99, Stale Delta
}

// Comparison puts runs side by side, cell by (strategy, standbys).
type Comparison struct {
	Samples    []Sample
	Strategies []string // in the order first met
	Standbys   []int    // ascending
	// Baseline is the strategy the others are compared with at each
	// standby count: round-robin when measured, else the first met.
	Baseline string
	Cells    []*Cell // by standbys, then in Strategies order
}

// Compare builds a comparison of any mix of strategies and standby counts.
// Runs of different clusters are allowed: comparison.md says so.
func Compare(samples []Sample) (*Comparison, error) {
	if len(samples) == 0 {
		return nil, errors.New("compare: no runs to compare")
	}
	c := &Comparison{Samples: slices.Clone(samples)}
	type key struct {
		strategy string
		standbys int
	}
	cells := map[key]*Cell{}
	for i := range c.Samples {
		s := &c.Samples[i]
		if s.Result == nil {
			return nil, fmt.Errorf("compare: run %d (%s) has no result", i+1, s.Label)
		}
		if s.Label == "" {
			s.Label = s.Result.Label
		}
		if s.Label == "" {
			s.Label = fmt.Sprintf("run %d", i+1)
		}
		read := false
		for _, st := range s.Result.Strategies {
			if st == nil {
				continue
			}
			read = true
			k := key{st.Strategy, s.Result.Environment.Standbys}
			cell := cells[k]
			if cell == nil {
				cell = &Cell{Strategy: k.strategy, Standbys: k.standbys}
				cells[k] = cell
			}
			if !slices.Contains(c.Strategies, k.strategy) {
				c.Strategies = append(c.Strategies, k.strategy)
			}
			if !slices.Contains(c.Standbys, k.standbys) {
				c.Standbys = append(c.Standbys, k.standbys)
			}
			cell.Repeats = append(cell.Repeats, repeatOf(i, st))
		}
		if !read {
			return nil, fmt.Errorf("compare: run %s has no read phase to compare", s.Label)
		}
	}
	sort.Ints(c.Standbys)
	c.Baseline = c.Strategies[0]
	if slices.Contains(c.Strategies, "round-robin") {
		c.Baseline = "round-robin"
	}
	for _, n := range c.Standbys {
		for _, s := range c.Strategies {
			if cell := cells[key{s, n}]; cell != nil {
				summarize(cell)
				c.Cells = append(c.Cells, cell)
			}
		}
	}
	return c, nil
}

func repeatOf(sample int, s *metrics.StrategyResult) Repeat {
	t := strategyTotal(s)
	r := Repeat{Sample: sample, QPS: t.QPS, P50: t.P50, P99: t.P99,
		StalePct: pct(t.StaleReads, t.StaleChecked), Errors: t.Errors, Retries: t.Retries,
		LagMSMax: math.NaN(), LagBytesMax: math.NaN(), strategy: s}
	for _, l := range s.Lag {
		if l.MS != nil {
			r.LagMSMax = maxKnown(r.LagMSMax, *l.MS)
		}
		if l.Bytes != nil {
			r.LagBytesMax = maxKnown(r.LagBytesMax, float64(*l.Bytes))
		}
	}
	return r
}

// maxKnown is the larger of two figures where NaN is unknown, not a value.
func maxKnown(cur, v float64) float64 {
	if math.IsNaN(cur) || v > cur {
		return v
	}
	return cur
}

func summarize(c *Cell) {
	qps := repeatValues(c.Repeats, func(r Repeat) float64 { return r.QPS })
	c.QPS, c.QPSStddev = meanOf(qps), sampleStddev(qps)
	c.StalePct = meanOf(repeatValues(c.Repeats, func(r Repeat) float64 { return r.StalePct }))
	c.LagMSMax, c.LagBytesMax = math.NaN(), math.NaN()
	h := metrics.NewHist()
	byNode := map[string]int64{}
	var all int64
	for _, r := range c.Repeats {
		c.Errors += r.Errors
		c.Retries += r.Retries
		c.LagMSMax = maxKnown(c.LagMSMax, r.LagMSMax)
		c.LagBytesMax = maxKnown(c.LagBytesMax, r.LagBytesMax)
		for _, n := range r.strategy.Nodes {
			if n == nil {
				continue
			}
			nh := n.Total()
			h.Add(nh)
			byNode[n.Node] += nh.TotalCount()
			all += nh.TotalCount()
		}
	}
	c.P50, c.P90, c.P99, c.P999, c.Max = percentiles(h)
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sortNatural(nodes)
	for _, n := range nodes {
		c.Share = append(c.Share, NodeShare{Node: n, Pct: pct(byNode[n], all)})
	}
}

func repeatValues(rs []Repeat, f func(Repeat) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// Cell returns the cell of strategy at standbys, nil if not measured.
func (c *Comparison) Cell(strategy string, standbys int) *Cell {
	for _, cell := range c.Cells {
		if cell.Strategy == strategy && cell.Standbys == standbys {
			return cell
		}
	}
	return nil
}

// Repeats is the fewest and the most repeats of any cell.
func (c *Comparison) Repeats() (fewest, most int) {
	for i, cell := range c.Cells {
		k := len(cell.Repeats)
		if i == 0 || k < fewest {
			fewest = k
		}
		most = max(most, k)
	}
	return fewest, most
}

func relDelta(base, cur *Cell, baseV, curV float64, f func(Repeat) float64) Delta {
	return Delta{Base: baseV, Value: curV, Change: curV/baseV - 1,
		Sig: welch(repeatValues(base.Repeats, f), repeatValues(cur.Repeats, f))}
}

func staleDelta(base, cur *Cell) Delta {
	f := func(r Repeat) float64 { return r.StalePct }
	return Delta{Base: base.StalePct, Value: cur.StalePct, Change: cur.StalePct - base.StalePct, Points: true,
		Sig: welch(repeatValues(base.Repeats, f), repeatValues(cur.Repeats, f))}
}

func deltas(base, cur *Cell) (qps, p50, p99, stale Delta) {
	qps = relDelta(base, cur, base.QPS, cur.QPS, func(r Repeat) float64 { return r.QPS })
	p50 = relDelta(base, cur, base.P50, cur.P50, func(r Repeat) float64 { return r.P50 })
	p99 = relDelta(base, cur, base.P99, cur.P99, func(r Repeat) float64 { return r.P99 })
	return qps, p50, p99, staleDelta(base, cur)
}

// Scaling is, per strategy, the read-scaling factor of every standby
// count over the fewest standbys that strategy was measured with.
func (c *Comparison) Scaling() []ScalingFactor {
	var out []ScalingFactor
	for _, s := range c.Strategies {
		var base *Cell
		for _, n := range c.Standbys {
			cell := c.Cell(s, n)
			if cell == nil {
				continue
			}
			if base == nil {
				base = cell
				continue
			}
			qps, p50, p99, stale := deltas(base, cell)
			f := ScalingFactor{Strategy: s, Standbys: n, BaseStandbys: base.Standbys,
				Factor: qps.Change + 1, Sig: qps.Sig, P50: p50, P99: p99, Stale: stale}
			if len(base.Repeats) > 1 && len(cell.Repeats) > 1 {
				f.Spread = f.Factor * math.Hypot(base.QPSStddev/base.QPS, cell.QPSStddev/cell.QPS)
			}
			out = append(out, f)
		}
	}
	return out
}

// StrategyDeltas compares each strategy with the baseline strategy at
// every standby count where both were measured.
func (c *Comparison) StrategyDeltas() []StrategyDelta {
	var out []StrategyDelta
	for _, n := range c.Standbys {
		base := c.Cell(c.Baseline, n)
		if base == nil {
			continue
		}
		for _, s := range c.Strategies {
			cell := c.Cell(s, n)
			if cell == nil || s == c.Baseline {
				continue
			}
			d := StrategyDelta{Strategy: s, Baseline: c.Baseline, Standbys: n}
			d.QPS, d.P50, d.P99, d.Stale = deltas(base, cell)
			out = append(out, d)
		}
	}
	return out
}

// Points are the cells' mean QPS and its stddev, for ScalingChart.
func (c *Comparison) Points() []ScalingPoint {
	out := make([]ScalingPoint, 0, len(c.Cells))
	for _, cell := range c.Cells {
		out = append(out, ScalingPoint{Strategy: cell.Strategy, Standbys: cell.Standbys, QPS: cell.QPS, Err: cell.QPSStddev})
	}
	return out
}
