package report

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// GateOn is what a set of thresholds judges. It decides which metrics a
// condition may name: scaling needs runs with different standby counts.
type GateOn int

const (
	// GateOnRun judges one run: pgbenchx run, and report re-judging a
	// stored one.
	GateOnRun GateOn = iota
	// GateOnComparison judges runs side by side: compare and matrix.
	GateOnComparison
)

// Gate is one --threshold condition: [SCOPE:]METRIC OP VALUE. Value is in
// the metric's canonical unit whatever unit the user wrote: ms for
// latencies and lag_ms, percent for stale, bytes for lag_bytes, a plain
// number otherwise.
type Gate struct {
	// Scope limits the condition: "" is every strategy; a strategy's name
	// (lag-aware, via:pgpool) is that strategy only; any other name is a
	// node, whose own figures are judged in every strategy. Whether a
	// name is in the run is only known when the gate is checked.
	Scope      string
	Metric, Op string
	Value      float64
	Text       string // as the user wrote it, for verdict lines
}

// Verdict is one gate checked against one scope of the figures.
type Verdict struct {
	Gate     Gate
	Scope    string // "lag-aware", "lag-aware, standby2", "lag-aware, 2 standbys", ...
	Measured float64
	Pass     bool
	// Why says, instead of a measured value, why there was nothing to
	// judge: such a verdict never passes.
	Why string
}

// ScopeStrategies are the strategy names a threshold's scope recognizes
// (besides via:NAME). The report package does not import routing, so the
// list is kept equal to routing.All by a test in cmd/pgbenchx.
var ScopeStrategies = []string{"random", "round-robin", "least-conn", "lag-aware", "causal", "nearest"}

// isStrategyScope reports whether a scope names a strategy rather than a
// node.
func isStrategyScope(s string) bool {
	return slices.Contains(ScopeStrategies, s) || strings.HasPrefix(s, "via:")
}

// gateKind is how a metric's value is written and scaled.
type gateKind int

const (
	kindLatency gateKind = iota // us, µs, ms, s, m, h; default ms
	kindCount                   // a plain non-negative whole number
	kindPercent                 // "1%" or the fraction "0.01"
	kindFactor                  // "1.5" or "1.5x"
	kindBytes                   // B, kB, KiB, MB, MiB, GB, GiB; default B
	kindQPS                     // "1000" or "1000qps"
)

var gateMetrics = map[string]gateKind{
	"p50": kindLatency, "p90": kindLatency, "p99": kindLatency, "p999": kindLatency, "max": kindLatency,
	"qps": kindQPS, "stale": kindPercent, "errors": kindCount, "failed": kindCount, "retries": kindCount,
	"scaling": kindFactor, "lag_ms": kindLatency, "lag_bytes": kindBytes,
	// errors<0.1% and failed<0.1% are rates (parseGate renames them):
	// of the attempts and of the reads.
	"errors_pct": kindPercent, "failed_pct": kindPercent,
}

const gateMetricList = "p50, p90, p99, p999, max, qps, stale, errors, failed, retries, scaling, lag_ms or lag_bytes"

// strategyOnly are the metrics a node has no figure for: failed reads
// failed on every node they tried, and scaling is a strategy's factor.
var strategyOnly = map[string]string{
	"failed":     "failed counts reads that failed on every try, which no single node has: for a node use errors (its failed attempts)",
	"failed_pct": "failed counts reads that failed on every try, which no single node has: for a node use errors (its failed attempts)",
	"scaling":    "scaling is a strategy's factor, not a node's",
}

// schemaWithFailed is the first run.json schema that counts failed reads:
// in older files failed is unknown, not 0.
const schemaWithFailed = 2

// gateOps longest first, so "<=" is not read as "<" followed by "=5".
var gateOps = []string{"<=", ">=", "!=", "==", "<", ">", "="}

var gateValue = regexp.MustCompile(`^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Zµμ%]*)$`)

var unitScale = map[gateKind]map[string]float64{
	kindLatency: {"": 1, "ms": 1, "us": 0.001, "µs": 0.001, "μs": 0.001, "s": 1000, "m": 60_000, "h": 3_600_000},
	// PostgreSQL's units, as --max-lag reads them: kB is 1024 bytes.
	kindBytes: {"": 1, "b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20,
		"gb": 1 << 30, "gib": 1 << 30},
	kindCount:   {"": 1},
	kindFactor:  {"": 1, "x": 1},
	kindQPS:     {"": 1, "qps": 1},
	kindPercent: {"%": 1, "": 100},
}

var unitHelp = map[gateKind]string{
	kindLatency: "a latency: a number with us (or µs), ms (default), s, m or h, e.g. p99<5ms or max<2m",
	kindBytes:   "bytes: a number with B (default), kB, KiB, MB, MiB, GB or GiB, e.g. lag_bytes<16MB",
	kindCount:   "a count: a whole number, e.g. errors=0",
	kindFactor:  "a factor: a number, e.g. scaling>1.5",
	kindQPS:     "queries per second: a number, e.g. qps>=1000",
	kindPercent: "a share: a percentage or a fraction from 0 to 1, e.g. stale<1% or stale<0.01",
}

// ParseGates reads --threshold: comma-separated conditions
// [SCOPE:]METRIC OP VALUE, for one run or for a comparison. A metric that
// means nothing there (scaling on one run) is refused, as is a
// strategy-only metric (failed, scaling) scoped to a node.
func ParseGates(s string, on GateOn) ([]Gate, error) {
	var out []Gate
	for _, cond := range strings.Split(s, ",") {
		cond = strings.TrimSpace(cond)
		if cond == "" {
			continue
		}
		g, err := parseGate(cond, on)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, &input.Error{Flag: "threshold", Value: s, Accepted: "give at least one condition [SCOPE:]METRIC OP VALUE, e.g. p99<5ms,errors=0"}
	}
	return out, nil
}

// isName is what a scope may be: letters, digits, '-' and '_'.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r != '-' && r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && !(r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// splitScope takes the scope off a condition: the text before the first
// ':' when it is a name; "via:NAME:" scopes to the strategy via:NAME.
func splitScope(cond string) (scope, rest string, ok bool) {
	before, after, found := strings.Cut(cond, ":")
	if !found {
		return "", cond, true
	}
	before = strings.TrimSpace(before)
	if !isName(before) {
		return "", cond, false
	}
	if before == "via" {
		if name, r, more := strings.Cut(after, ":"); more && isName(strings.TrimSpace(name)) {
			return "via:" + strings.TrimSpace(name), strings.TrimSpace(r), true
		}
	}
	return before, strings.TrimSpace(after), true
}

func parseGate(cond string, on GateOn) (Gate, error) {
	bad := func(accepted string) (Gate, error) {
		return Gate{}, &input.Error{Flag: "threshold", Value: cond, Accepted: accepted}
	}
	scope, body, ok := splitScope(cond)
	if !ok {
		return bad("the text before ':' scopes the condition to a strategy or a node: want a name of letters, digits, '-' or '_', e.g. lag-aware:p99<5ms or standby2:stale<1%")
	}
	i := 0
	for i < len(body) && (body[i] == '_' || body[i] >= 'a' && body[i] <= 'z' || body[i] >= 'A' && body[i] <= 'Z' || body[i] >= '0' && body[i] <= '9') {
		i++
	}
	metric := strings.ToLower(body[:i])
	if m := gateValue.FindStringSubmatch(strings.TrimLeft(strings.TrimSpace(body[i:]), "<>=!")); m != nil && m[2] == "%" &&
		(metric == "errors" || metric == "failed") {
		metric += "_pct" // a rate, not a count: errors<0.1%
	}
	kind, known := gateMetrics[metric]
	if !known {
		return bad(fmt.Sprintf("unknown metric %q: want %s, e.g. p99<5ms", metric, gateMetricList))
	}
	if metric == "scaling" && on == GateOnRun {
		return bad("scaling compares standby counts and one run has one: use it with pgbenchx compare or matrix")
	}
	if why, only := strategyOnly[metric]; only && scope != "" && !isStrategyScope(scope) {
		return bad(fmt.Sprintf("%q is not a strategy (%s or via:NAME), so it scopes to a node; %s",
			scope, strings.Join(ScopeStrategies, ", "), why))
	}
	rest := strings.TrimSpace(body[i:])
	op := ""
	for _, o := range gateOps {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return bad("want [SCOPE:]METRIC OP VALUE with OP one of < <= > >= = !=, e.g. p99<5ms")
	}
	mv := gateValue.FindStringSubmatch(strings.TrimSpace(rest[len(op):]))
	if op == "==" {
		op = "="
	}
	if mv == nil {
		return bad(metric + " takes " + unitHelp[kind])
	}
	v, err := strconv.ParseFloat(mv[1], 64)
	scale, knownUnit := unitScale[kind][strings.ToLower(mv[2])]
	if err != nil || !knownUnit || v < 0 || math.IsInf(v, 0) {
		return bad(metric + " takes " + unitHelp[kind])
	}
	if kind == kindPercent && mv[2] == "" && v > 1 {
		return bad("a stale share without % is a fraction from 0 to 1; write " + mv[1] + "% for a percentage")
	}
	if kind == kindCount && v != math.Trunc(v) {
		return bad(metric + " takes " + unitHelp[kind])
	}
	return Gate{Scope: scope, Metric: metric, Op: op, Value: v * scale, Text: cond}, nil
}

// holds applies the gate to a measured figure; an unknown figure (NaN)
// never passes: a gate on something that was not measured is not met.
func (g Gate) holds(x float64) bool {
	if math.IsNaN(x) {
		return false
	}
	switch g.Op {
	case "<":
		return x < g.Value
	case "<=":
		return x <= g.Value
	case ">":
		return x > g.Value
	case ">=":
		return x >= g.Value
	case "!=":
		return x != g.Value
	default:
		return x == g.Value
	}
}

func (g Gate) verdict(scope string, x float64) Verdict {
	return Verdict{Gate: g, Scope: scope, Measured: x, Pass: g.holds(x)}
}

// unmet is a verdict with nothing to judge: it fails, and says why.
func unmet(g Gate, scope, why string) Verdict {
	if scope == "" {
		scope = g.Scope
	}
	if scope == "" {
		scope = "every strategy"
	}
	return Verdict{Gate: g, Scope: scope, Measured: math.NaN(), Why: why}
}

// gateFigures are what gates read of one strategy, one cell or one node.
// Unknown figures are NaN.
type gateFigures struct {
	p50, p90, p99, p999, max, qps, stale float64
	errors, failed, retries              float64
	lagMS, lagBytes                      float64
	// errorsPct is failed attempts of all attempts, failedPct failed
	// reads of all reads, in percent.
	errorsPct, failedPct float64
}

func (f gateFigures) get(metric string) float64 {
	switch metric {
	case "p50":
		return f.p50
	case "p90":
		return f.p90
	case "p99":
		return f.p99
	case "p999":
		return f.p999
	case "max":
		return f.max
	case "qps":
		return f.qps
	case "stale":
		return f.stale
	case "errors":
		return f.errors
	case "failed":
		return f.failed
	case "retries":
		return f.retries
	case "lag_ms":
		return f.lagMS
	case "lag_bytes":
		return f.lagBytes
	case "errors_pct":
		return f.errorsPct
	case "failed_pct":
		return f.failedPct
	}
	return math.NaN()
}

// failedOf is a run's count of failed reads, NaN where its schema did not
// count them.
func failedOf(r *metrics.Result, n int64) float64 {
	if r == nil || r.Schema < schemaWithFailed {
		return math.NaN()
	}
	return float64(n)
}

// strategyFigures are a strategy's totals over every node.
func strategyFigures(r *metrics.Result, s *metrics.StrategyResult) gateFigures {
	t, rep := strategyTotal(s), repeatOf(0, s)
	return gateFigures{p50: t.P50, p90: t.P90, p99: t.P99, p999: t.P999, max: t.Max, qps: t.QPS,
		stale: pct(t.StaleReads, t.StaleChecked), errors: float64(t.Errors), failed: failedOf(r, t.Failed),
		retries: float64(t.Retries), lagMS: rep.LagMSMax, lagBytes: rep.LagBytesMax,
		errorsPct: pct(t.Errors, t.Queries+t.Errors), failedPct: failedOf(r, t.Failed) * 100 / float64(t.Reads)}
}

// rowFigures are one node's figures in one strategy: its summary row.
// A node has no failed reads of its own (a read fails on every node).
func rowFigures(row Row) gateFigures {
	return gateFigures{p50: row.P50, p90: row.P90, p99: row.P99, p999: row.P999, max: row.Max, qps: row.QPS,
		stale: row.StalePct(), errors: float64(row.Errors), failed: math.NaN(), retries: float64(row.Retries),
		lagMS: row.judgedLagMSMax(), lagBytes: row.LagBytesMax, errorsPct: pct(row.Errors, row.Queries+row.Errors), failedPct: math.NaN()}
}

func unknownFigures() gateFigures {
	n := math.NaN()
	return gateFigures{n, n, n, n, n, n, n, n, n, n, n, n, n, n}
}

// runNames lists a run's strategies and nodes, for a verdict on a scope
// the run lacks.
func runNames(strategies []string, nodes []string) string {
	if len(strategies) == 0 {
		strategies = []string{"none"}
	}
	if len(nodes) == 0 {
		nodes = []string{"none"}
	}
	return fmt.Sprintf("strategies: %s; nodes: %s", strings.Join(strategies, ", "), strings.Join(nodes, ", "))
}

// runNodes names every node of a run, the primary first (natural order).
func runNodes(r *metrics.Result) []string { return mentioned(r, true) }

// CheckRun checks every gate against one run. An unscoped gate is checked
// against every strategy's totals; a strategy-scoped one against that
// strategy's; a node-scoped one against the node's own row in every
// strategy. The run fails if any verdict does. A scope that names neither
// a strategy nor a node of the run is a failed verdict that says so (it
// is not refused as bad input: the run has been measured and written by
// then, and exit 2 promises nothing was).
func CheckRun(r *metrics.Result, gates []Gate) []Verdict {
	var strategies []*metrics.StrategyResult
	var names []string
	for _, s := range r.Strategies {
		if s != nil {
			strategies = append(strategies, s)
			names = append(names, s.Strategy)
		}
	}
	nodes := runNodes(r)
	var out []Verdict
	for _, g := range gates {
		switch {
		case g.Metric == "scaling":
			out = append(out, unmet(g, "", "one run has one standby count: compare runs to measure scaling"))
		case len(strategies) == 0:
			out = append(out, unmet(g, "", "the run measured no read phase"))
		case g.Scope == "" || slices.Contains(names, g.Scope):
			for _, s := range strategies {
				if g.Scope == "" || s.Strategy == g.Scope {
					out = append(out, g.verdict(s.Strategy, strategyFigures(r, s).get(g.Metric)))
				}
			}
		case !isStrategyScope(g.Scope) && slices.Contains(nodes, g.Scope):
			for _, s := range strategies {
				f := unknownFigures()
				for _, row := range strategyRows(s) {
					if row.Node == g.Scope {
						f = rowFigures(row)
					}
				}
				out = append(out, g.verdict(s.Strategy+", "+g.Scope, f.get(g.Metric)))
			}
		default:
			out = append(out, unmet(g, "", fmt.Sprintf("no strategy or node named %s in this run (%s)", g.Scope, runNames(names, nodes))))
		}
	}
	return out
}

// Check checks every gate against the comparison: an unscoped gate
// against every cell, a strategy-scoped one against that strategy's
// cells, a node-scoped one against the node's figures in every cell that
// has the node, and scaling against every read-scaling factor (of the
// scope's strategy). A factor that cannot be given (open-loop runs, a
// strategy measured with one standby count) is a failed verdict saying
// why, as is a scope naming neither a strategy nor a node of the runs.
func (c *Comparison) Check(gates []Gate) []Verdict {
	var out []Verdict
	for _, g := range gates {
		out = append(out, c.checkGate(g)...)
	}
	return out
}

func cellScope(cell *Cell) string {
	return fmt.Sprintf("%s, %d %s", cell.Name, cell.Standbys, plural(cell.Standbys, "standby", "standbys"))
}

func (c *Comparison) checkGate(g Gate) []Verdict {
	if g.Metric == "scaling" {
		return c.checkScaling(g)
	}
	var out []Verdict
	switch {
	case g.Scope == "" || slices.Contains(c.Strategies, g.Scope):
		for _, cell := range c.Cells {
			if g.Scope == "" || cell.Strategy == g.Scope {
				out = append(out, g.verdict(cellScope(cell), cell.figures().get(g.Metric)))
			}
		}
	case !isStrategyScope(g.Scope) && slices.Contains(c.nodes(), g.Scope):
		for _, cell := range c.Cells {
			if f, ok := cell.nodeFigures(g.Scope); ok {
				out = append(out, g.verdict(cellScope(cell)+", "+g.Scope, f.get(g.Metric)))
			}
		}
	default:
		out = append(out, unmet(g, "", fmt.Sprintf("no strategy or node named %s in these runs (%s)", g.Scope, runNames(c.Strategies, c.nodes()))))
	}
	return out
}

func (c *Comparison) checkScaling(g Gate) []Verdict {
	if g.Scope != "" && !slices.Contains(c.Strategies, g.Scope) {
		return []Verdict{unmet(g, "", fmt.Sprintf("no strategy named %s in these runs (strategies: %s)", g.Scope, strings.Join(c.Strategies, ", ")))}
	}
	var out []Verdict
	for _, f := range c.Scaling() {
		if g.Scope == "" || f.Strategy == g.Scope {
			out = append(out, g.verdict(fmt.Sprintf("%s, %d vs %d standbys", f.Name, f.Standbys, f.BaseStandbys), f.Factor))
		}
	}
	for _, n := range c.NoScaling() {
		if g.Scope == "" || n.Strategy == g.Scope {
			out = append(out, unmet(g, fmt.Sprintf("%s, %d vs %d standbys", n.Name, n.Standbys, n.BaseStandbys), "no factor: "+n.Why))
		}
	}
	if len(out) > 0 {
		return out
	}
	if len(c.Standbys) == 1 {
		return []Verdict{unmet(g, "", fmt.Sprintf("every run had %d %s: scaling needs two standby counts", c.Standbys[0], plural(c.Standbys[0], "standby", "standbys")))}
	}
	return []Verdict{unmet(g, "", "no strategy was measured with two standby counts")}
}

// figures are a cell's: its merged latencies, mean qps and stale rate,
// summed counts, largest lag.
func (cell *Cell) figures() gateFigures {
	return gateFigures{p50: cell.P50, p90: cell.P90, p99: cell.P99, p999: cell.P999, max: cell.Max,
		qps: cell.QPS, stale: cell.StalePct, errors: float64(cell.Errors), failed: cell.Failed,
		retries: float64(cell.Retries), lagMS: cell.LagMSMax, lagBytes: cell.LagBytesMax,
		errorsPct: pct(cell.Errors, cell.Attempts), failedPct: cell.Failed * 100 / float64(cell.Reads)}
}

// nodeFigures are one node's figures over a cell's repeats, by the cell's
// rules: latencies from the node's histograms merged, qps and stale rate
// averaged over the repeats, counts summed, the largest lag. ok is false
// when no repeat of the cell had the node.
func (cell *Cell) nodeFigures(node string) (gateFigures, bool) {
	f := unknownFigures()
	f.errors, f.retries = 0, 0
	h := metrics.NewHist()
	var qps, stale []float64
	var queries int64
	found := false
	for _, r := range cell.Repeats {
		for _, row := range strategyRows(r.strategy) {
			if row.Node != node {
				continue
			}
			found = true
			qps = append(qps, row.QPS)
			stale = append(stale, row.StalePct())
			f.errors += float64(row.Errors)
			f.retries += float64(row.Retries)
			queries += row.Queries
			f.lagMS = maxKnown(f.lagMS, row.judgedLagMSMax())
			f.lagBytes = maxKnown(f.lagBytes, row.LagBytesMax)
		}
		for _, n := range r.strategy.Nodes {
			if n != nil && n.Node == node {
				h.Add(n.Attempts())
			}
		}
	}
	if !found {
		return f, false
	}
	f.p50, f.p90, f.p99, f.p999, f.max = percentiles(h)
	f.qps, f.stale = meanOf(qps), meanOf(stale)
	f.errorsPct = pct(int64(f.errors), queries+int64(f.errors))
	return f, true
}

// nodes names every node of the compared runs, in the order first met.
func (c *Comparison) nodes() []string {
	var names []string
	for _, s := range c.Samples {
		for _, n := range runNodes(s.Result) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

func verdictValue(metric string, x float64) string {
	if math.IsNaN(x) {
		return "not measured"
	}
	switch gateMetrics[metric] {
	case kindLatency:
		if metric == "lag_ms" {
			return fixed(x, 1) + " ms"
		}
		return fixed(x, 3) + " ms"
	case kindBytes:
		return humanBytes(x)
	case kindPercent:
		return fixed(x, 2) + "%"
	case kindQPS:
		return num(x, 1) + " qps"
	case kindFactor:
		return fixed(x, 2)
	default:
		return count(int64(x))
	}
}

// Detail is what a verdict line says of the scope: the measured value,
// or why there was nothing to judge.
func (v Verdict) Detail() string {
	if v.Why != "" {
		return v.Why
	}
	return verdictValue(v.Gate.Metric, v.Measured)
}

// WriteVerdicts prints one line per verdict, conditions aligned:
// "PASS  p99<5ms  lag-aware: 3.210 ms", or with nothing to judge,
// "FAIL  scaling>1.5  round-robin, 2 vs 1 standbys: no factor: ...".
func WriteVerdicts(w io.Writer, v []Verdict) error {
	width := 0
	for _, x := range v {
		width = max(width, utf8.RuneCountInString(x.Gate.Text))
	}
	for _, x := range v {
		status := "PASS"
		if !x.Pass {
			status = "FAIL"
		}
		line := fmt.Sprintf("%s  %-*s  %s: %s", status, width, x.Gate.Text, x.Scope, x.Detail())
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
