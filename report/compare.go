package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

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
	Failed                float64 // reads that failed on every try; NaN for a run that did not count them
	LagMSMax, LagBytesMax float64 // largest lag sample of any standby; NaN if none known
	strategy              *metrics.StrategyResult
	run                   *metrics.Result
}

// Cell is one (strategy, standbys) pair of a comparison, over its K
// repeats. QPS and StalePct are means over the repeats; latencies come
// from the repeats' histograms merged, never from averaged percentiles;
// counts are summed; lag is the largest seen.
type Cell struct {
	Strategy string
	Standbys int
	// Mode is the replication mode the cell ran under (modeOf); Name is
	// the strategy, followed by the mode when the runs had several.
	Mode, Name string
	Repeats    []Repeat

	QPS, QPSStddev           float64 // stddev is the sample one (n-1); 0 with one repeat
	P50, P90, P99, P999, Max float64
	StalePct                 float64
	Errors, Retries          int64
	Failed                   float64 // summed; NaN when a repeat did not count failed reads
	Attempts, Reads          int64   // every try (errors included) and every read, of every repeat
	LagMSMax, LagBytesMax    float64
	Share                    []NodeShare // of the queries of every repeat, pooled
	Writes                   WriteFigures
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
	Strategy, Mode, Name string // Name as the cells'

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
	Strategy, Baseline string
	Mode, Name         string // Name as the cells'

	Standbys             int
	QPS, P50, P99, Stale Delta
}

// Comparison puts runs side by side, cell by (strategy, standbys, mode).
type Comparison struct {
	Samples    []Sample
	Strategies []string // in the order first met
	Standbys   []int    // ascending
	// Modes are the replication modes (modeOf) in the order first met:
	// cells of different modes are compared side by side, never pooled.
	Modes []string
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
		mode, strategy string
		standbys       int
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
			k := key{modeOf(s.Result), st.Strategy, s.Result.Environment.Standbys}
			cell := cells[k]
			if cell == nil {
				cell = &Cell{Strategy: k.strategy, Standbys: k.standbys, Mode: k.mode}
				cells[k] = cell
			}
			if !slices.Contains(c.Modes, k.mode) {
				c.Modes = append(c.Modes, k.mode)
			}
			if !slices.Contains(c.Strategies, k.strategy) {
				c.Strategies = append(c.Strategies, k.strategy)
			}
			if !slices.Contains(c.Standbys, k.standbys) {
				c.Standbys = append(c.Standbys, k.standbys)
			}
			rep := repeatOf(i, st)
			rep.run = s.Result
			rep.Failed = failedOf(s.Result, st.Failed)
			cell.Repeats = append(cell.Repeats, rep)
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
	for _, mode := range c.Modes {
		for _, n := range c.Standbys {
			for _, s := range c.Strategies {
				if cell := cells[key{mode, s, n}]; cell != nil {
					summarize(cell)
					cell.Name = c.named(s, mode)
					c.Cells = append(c.Cells, cell)
				}
			}
		}
	}
	return c, nil
}

func repeatOf(sample int, s *metrics.StrategyResult) Repeat {
	t := strategyTotal(s)
	r := Repeat{Sample: sample, QPS: t.QPS, P50: t.P50, P99: t.P99,
		StalePct: pct(t.StaleReads, t.StaleChecked), Errors: t.Errors, Retries: t.Retries,
		Failed: float64(t.Failed), LagMSMax: math.NaN(), LagBytesMax: math.NaN(), strategy: s}
	for _, l := range s.Lag {
		if ms := judgedMS(l); ms != nil {
			r.LagMSMax = maxKnown(r.LagMSMax, *ms)
		}
		if l.Bytes != nil {
			r.LagBytesMax = maxKnown(r.LagBytesMax, float64(*l.Bytes))
		}
	}
	return r
}

// judgedMS is the time lag a limit is judged by: the upper bound, the lag
// the standby may have had (schema 1 samples have only the lower one).
func judgedMS(l metrics.LagSample) *float64 {
	if l.MSUpper != nil {
		return l.MSUpper
	}
	return l.MS
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
		c.Failed += r.Failed // NaN, unknown, stays unknown
		c.LagMSMax = maxKnown(c.LagMSMax, r.LagMSMax)
		c.LagBytesMax = maxKnown(c.LagBytesMax, r.LagBytesMax)
		// Latency: every read once, end to end (failed and retried ones
		// included); share: each node's successful attempts.
		h.Add(r.strategy.Reads())
		c.Reads += r.strategy.Reads().TotalCount()
		for _, n := range r.strategy.Nodes {
			if n == nil {
				continue
			}
			ok := n.Total().TotalCount()
			byNode[n.Node] += ok
			all += ok
		}
	}
	c.P50, c.P90, c.P99, c.P999, c.Max = percentiles(h)
	c.Attempts = all + c.Errors
	c.Writes = writeFigures(c.Repeats)
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

// Cell returns the cell of strategy at standbys in the first mode, nil
// if not measured.
func (c *Comparison) Cell(strategy string, standbys int) *Cell {
	return c.cellIn(c.Modes[0], strategy, standbys)
}

func (c *Comparison) cellIn(mode, strategy string, standbys int) *Cell {
	for _, cell := range c.Cells {
		if cell.Strategy == strategy && cell.Standbys == standbys && cell.Mode == mode {
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

// scalingPairs are, per strategy, each of its cells with more standbys
// than its fewest, paired with that fewest (the base).
func (c *Comparison) scalingPairs() [][2]*Cell {
	var out [][2]*Cell
	for _, mode := range c.Modes {
		for _, s := range c.Strategies {
			var base *Cell
			for _, n := range c.Standbys {
				cell := c.cellIn(mode, s, n)
				if cell == nil {
					continue
				}
				if base == nil {
					base = cell
					continue
				}
				out = append(out, [2]*Cell{base, cell})
			}
		}
	}
	return out
}

// openLoop says why two cells have no read-scaling factor when a run of
// either was open loop ("" when every run was closed loop): the qps of an
// open-loop run is what --rate asked for, not what the cluster could do.
func openLoop(cells ...*Cell) string {
	var rates []string
	for _, cell := range cells {
		for _, r := range cell.Repeats {
			if r.run != nil && r.run.Config.Rate > 0 {
				if rate := strconv.FormatFloat(r.run.Config.Rate, 'g', -1, 64); !slices.Contains(rates, rate) {
					rates = append(rates, rate)
				}
			}
		}
	}
	if len(rates) == 0 {
		return ""
	}
	return fmt.Sprintf("open-loop runs (--rate %s): their qps is set by --rate, not by the cluster", strings.Join(rates, ", "))
}

// Scaling is, per strategy, the read-scaling factor of every standby
// count over the fewest standbys that strategy was measured with. Pairs
// with an open-loop run have none: NoScaling lists them.
func (c *Comparison) Scaling() []ScalingFactor {
	var out []ScalingFactor
	for _, p := range c.scalingPairs() {
		base, cell := p[0], p[1]
		if openLoop(base, cell) != "" {
			continue
		}
		qps, p50, p99, stale := deltas(base, cell)
		f := ScalingFactor{Strategy: cell.Strategy, Mode: cell.Mode, Name: cell.Name, Standbys: cell.Standbys, BaseStandbys: base.Standbys,
			Factor: qps.Change + 1, Sig: qps.Sig, P50: p50, P99: p99, Stale: stale}
		if len(base.Repeats) > 1 && len(cell.Repeats) > 1 {
			f.Spread = f.Factor * math.Hypot(base.QPSStddev/base.QPS, cell.QPSStddev/cell.QPS)
		}
		out = append(out, f)
	}
	return out
}

// NoScaling is a pair of cells that Scaling gives no factor for, and why;
// the latency and staleness changes still compare.
type NoScaling struct {
	Strategy, Mode, Name string // Name as the cells'

	Standbys, BaseStandbys int
	Why                    string
	P50, P99, Stale        Delta
}

// NoScaling lists the pairs of cells whose read-scaling factor is
// refused: those with an open-loop run.
func (c *Comparison) NoScaling() []NoScaling {
	var out []NoScaling
	for _, p := range c.scalingPairs() {
		base, cell := p[0], p[1]
		why := openLoop(base, cell)
		if why == "" {
			continue
		}
		_, p50, p99, stale := deltas(base, cell)
		out = append(out, NoScaling{Strategy: cell.Strategy, Mode: cell.Mode, Name: cell.Name, Standbys: cell.Standbys, BaseStandbys: base.Standbys,
			Why: why, P50: p50, P99: p99, Stale: stale})
	}
	return out
}

// StrategyDeltas compares each strategy with the baseline strategy at
// every standby count and mode where both were measured.
func (c *Comparison) StrategyDeltas() []StrategyDelta {
	var out []StrategyDelta
	for _, mode := range c.Modes {
		for _, n := range c.Standbys {
			base := c.cellIn(mode, c.Baseline, n)
			if base == nil {
				continue
			}
			for _, s := range c.Strategies {
				cell := c.cellIn(mode, s, n)
				if cell == nil || s == c.Baseline {
					continue
				}
				d := StrategyDelta{Strategy: s, Baseline: c.Baseline, Mode: mode, Name: cell.Name, Standbys: n}
				d.QPS, d.P50, d.P99, d.Stale = deltas(base, cell)
				out = append(out, d)
			}
		}
	}
	return out
}

// Points are the cells' mean QPS and its stddev, for ScalingChart.
func (c *Comparison) Points() []ScalingPoint {
	out := make([]ScalingPoint, 0, len(c.Cells))
	for _, cell := range c.Cells {
		out = append(out, ScalingPoint{Strategy: cell.Name, Standbys: cell.Standbys, QPS: cell.QPS, Err: cell.QPSStddev})
	}
	return out
}

// WorkloadDiff is a workload or server setting the compared runs did not
// share: each value it had, with the runs that had it.
type WorkloadDiff struct {
	Setting string // "clients", "rate", "CPU cap of standby1", "server setting shared_buffers", ...
	Values  []DiffValue
}

// DiffValue is one value of a setting and the runs (labels) that had it.
type DiffValue struct {
	Value string
	Runs  []string
}

// String reads "clients: 4 in s1-r1, s1-r2; 8 in s2-r1".
func (d WorkloadDiff) String() string {
	parts := make([]string, len(d.Values))
	for i, v := range d.Values {
		parts[i] = v.Value + " in " + strings.Join(v.Runs, ", ")
	}
	return d.Setting + ": " + strings.Join(parts, "; ")
}

// comparedSettings are what WorkloadDiffs looks at, in the order it
// reports them; each gives a run's value, ok false when the setting does
// not apply to the run (a node it lacks).
type comparedSetting struct {
	name  string
	value func(r *metrics.Result) (string, bool)
}

func always(f func(r *metrics.Result) string) func(r *metrics.Result) (string, bool) {
	return func(r *metrics.Result) (string, bool) { return f(r), true }
}

var workloadSettings = []comparedSetting{
	{"clients", always(func(r *metrics.Result) string { return strconv.Itoa(r.Config.Clients) })},
	{"rate", always(func(r *metrics.Result) string {
		if r.Config.Rate <= 0 {
			return "closed loop"
		}
		return "open loop at " + strconv.FormatFloat(r.Config.Rate, 'g', -1, 64) + " queries/s"
	})},
	{"mix", always(func(r *metrics.Result) string { return orDash(mix(r.Config.Mix)) })},
	{"query file", always(func(r *metrics.Result) string {
		if r.Config.QueryFile == "" {
			return "none"
		}
		return r.Config.QueryFile
	})},
	{"scale", always(func(r *metrics.Result) string {
		return count(int64(r.Config.Scale)) + " " + plural(r.Config.Scale, "row", "rows")
	})},
	{"write rate", always(func(r *metrics.Result) string {
		if r.Config.WriteRate <= 0 {
			return "none"
		}
		return strconv.FormatFloat(r.Config.WriteRate, 'g', -1, 64) + " rows/s"
	})},
	{"duration", always(func(r *metrics.Result) string { return time.Duration(r.Config.Duration).String() })},
	// Stale rates depend on how often the heartbeat beats.
	{"heartbeat", always(func(r *metrics.Result) string { return time.Duration(r.Config.Heartbeat).String() })},
	{"query timeout", always(func(r *metrics.Result) string {
		if r.Config.QueryTimeout <= 0 {
			return "none"
		}
		return time.Duration(r.Config.QueryTimeout).String()
	})},
}

var serverSettings = []comparedSetting{
	{"server version", always(func(r *metrics.Result) string { return orDash(r.Environment.ServerVersion) })},
	{"provider", always(func(r *metrics.Result) string { return orDash(r.Environment.Provider) })},
	{"connections", always(func(r *metrics.Result) string { return connections(r.Environment) })},
	{"slow links", always(func(r *metrics.Result) string { return orDash(weightsOf(r.Environment.NetLinks)) })},
	{"fsync", always(func(r *metrics.Result) string {
		if r.Environment.Fast {
			return "off (--fast)"
		}
		return "on"
	})},
}

// WorkloadDiffs lists what differed between the runs besides the standby
// count and the strategy: the workload (clients, rate, mix, query file,
// scale, write rate, duration), each node's CPU cap (compared between the
// runs that have the node), each server setting, the server version, the
// provider and fsync. Cells are compared all the same; these say what
// else than the standbys or the strategy may explain a difference.
func (c *Comparison) WorkloadDiffs() []WorkloadDiff {
	settings := slices.Clone(workloadSettings)
	var nodes, keys []string
	for _, s := range c.Samples {
		e := s.Result.Environment
		for _, n := range e.Nodes {
			if !slices.Contains(nodes, n.Name) {
				nodes = append(nodes, n.Name)
			}
		}
		for n := range e.CPUCaps {
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
		for _, kv := range e.Settings {
			if k, _, _ := strings.Cut(kv, "="); !slices.Contains(keys, strings.TrimSpace(k)) {
				keys = append(keys, strings.TrimSpace(k))
			}
		}
	}
	sortNatural(nodes)
	for _, node := range nodes {
		settings = append(settings, comparedSetting{"CPU cap of " + node, func(r *metrics.Result) (string, bool) {
			if v, ok := r.Environment.CPUCaps[node]; ok {
				unit := "cores"
				if v == 1 {
					unit = "core"
				}
				return strconv.FormatFloat(v, 'g', -1, 64) + " " + unit, true
			}
			has := slices.ContainsFunc(r.Environment.Nodes, func(n metrics.NodeInfo) bool { return n.Name == node })
			return "none", has
		}})
	}
	sort.Strings(keys)
	for _, key := range keys {
		settings = append(settings, comparedSetting{"server setting " + key, func(r *metrics.Result) (string, bool) {
			for _, kv := range r.Environment.Settings {
				if k, v, _ := strings.Cut(kv, "="); strings.TrimSpace(k) == key {
					return strings.TrimSpace(v), true
				}
			}
			return "not set", true
		}})
	}
	settings = append(settings, serverSettings...)
	var out []WorkloadDiff
	for _, st := range settings {
		d := WorkloadDiff{Setting: st.name}
		for _, s := range c.Samples {
			v, ok := st.value(s.Result)
			if !ok {
				continue
			}
			i := slices.IndexFunc(d.Values, func(x DiffValue) bool { return x.Value == v })
			if i < 0 {
				d.Values = append(d.Values, DiffValue{Value: v})
				i = len(d.Values) - 1
			}
			d.Values[i].Runs = append(d.Values[i].Runs, s.Label)
		}
		if len(d.Values) > 1 {
			out = append(out, d)
		}
	}
	return out
}
