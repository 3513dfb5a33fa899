package report

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// Gate is one --fail-if condition. Value is in the metric's canonical
// unit whatever unit the user wrote: ms for latencies and lag_ms, percent
// for stale, bytes for lag_bytes, a plain number otherwise.
type Gate struct {
	Metric, Op string
	Value      float64
	Text       string // as the user wrote it, for verdict lines
}

// Verdict is one gate checked against one scope of the figures.
type Verdict struct {
	Gate     Gate
	Scope    string // "lag-aware", "lag-aware, 2 standbys", ...
	Measured float64
	Pass     bool
}

// gateKind is how a metric's value is written and scaled.
type gateKind int

const (
	kindLatency gateKind = iota // ms, s, us; default ms
	kindCount                   // a plain non-negative number
	kindPercent                 // "1%" or the fraction "0.01"
	kindFactor                  // "1.5" or "1.5x"
	kindBytes                   // B, kB, KiB, MB, MiB, GB, GiB; default B
	kindQPS                     // "1000" or "1000qps"
)

var gateMetrics = map[string]gateKind{
	"p50": kindLatency, "p90": kindLatency, "p99": kindLatency, "p999": kindLatency, "max": kindLatency,
	"qps": kindQPS, "stale": kindPercent, "errors": kindCount, "retries": kindCount,
	"scaling": kindFactor, "lag_ms": kindLatency, "lag_bytes": kindBytes,
}

const gateMetricList = "p50, p90, p99, p999, max, qps, stale, errors, retries, scaling, lag_ms or lag_bytes"

// gateOps longest first, so "<=" is not read as "<" followed by "=5".
var gateOps = []string{"<=", ">=", "!=", "==", "<", ">", "="}

var gateValue = regexp.MustCompile(`^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Zµ%]*)$`)

var unitScale = map[gateKind]map[string]float64{
	kindLatency: {"": 1, "ms": 1, "s": 1000, "us": 0.001, "µs": 0.001},
	kindBytes: {"": 1, "b": 1, "kb": 1e3, "kib": 1 << 10, "mb": 1e6, "mib": 1 << 20,
		"gb": 1e9, "gib": 1 << 30},
	kindCount:   {"": 1},
	kindFactor:  {"": 1, "x": 1},
	kindQPS:     {"": 1, "qps": 1},
	kindPercent: {"%": 1, "": 100},
}

var unitHelp = map[gateKind]string{
	kindLatency: "a latency: a number with ms (default), s or us, e.g. p99<5ms",
	kindBytes:   "bytes: a number with B (default), kB, KiB, MB, MiB, GB or GiB, e.g. lag_bytes<16MB",
	kindCount:   "a count: a whole number, e.g. errors=0",
	kindFactor:  "a factor: a number, e.g. scaling>1.5",
	kindQPS:     "queries per second: a number, e.g. qps>=1000",
	kindPercent: "a share: a percentage or a fraction from 0 to 1, e.g. stale<1% or stale<0.01",
}

// ParseGates reads --fail-if: comma-separated conditions METRIC OP VALUE.
func ParseGates(s string) ([]Gate, error) {
	var out []Gate
	for _, cond := range strings.Split(s, ",") {
		cond = strings.TrimSpace(cond)
		if cond == "" {
			continue
		}
		g, err := parseGate(cond)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, &InputError{Flag: "fail-if", Value: s, Accepted: "give at least one condition METRIC OP VALUE, e.g. p99<5ms,errors=0"}
	}
	return out, nil
}

func parseGate(cond string) (Gate, error) {
	bad := func(accepted string) (Gate, error) {
		return Gate{}, &InputError{Flag: "fail-if", Value: cond, Accepted: accepted}
	}
	i := 0
	for i < len(cond) && (cond[i] == '_' || cond[i] >= 'a' && cond[i] <= 'z' || cond[i] >= 'A' && cond[i] <= 'Z' || cond[i] >= '0' && cond[i] <= '9') {
		i++
	}
	metric := strings.ToLower(cond[:i])
	kind, ok := gateMetrics[metric]
	if !ok {
		return bad(fmt.Sprintf("unknown metric %q: want %s, e.g. p99<5ms", metric, gateMetricList))
	}
	rest := strings.TrimSpace(cond[i:])
	op := ""
	for _, o := range gateOps {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return bad("want METRIC OP VALUE with OP one of < <= > >= = !=, e.g. p99<5ms")
	}
	mv := gateValue.FindStringSubmatch(strings.TrimSpace(rest[len(op):]))
	if op == "==" {
		op = "="
	}
	if mv == nil {
		return bad(metric + " takes " + unitHelp[kind])
	}
	v, err := strconv.ParseFloat(mv[1], 64)
	scale, known := unitScale[kind][strings.ToLower(mv[2])]
	if err != nil || !known || v < 0 {
		return bad(metric + " takes " + unitHelp[kind])
	}
	if kind == kindPercent && mv[2] == "" && v > 1 {
		return bad("a stale share without % is a fraction from 0 to 1; write " + mv[1] + "% for a percentage")
	}
	if kind == kindCount && v != math.Trunc(v) {
		return bad(metric + " takes " + unitHelp[kind])
	}
	return Gate{Metric: metric, Op: op, Value: v * scale, Text: cond}, nil
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

// gateFigures are what gates read of one strategy, or of one cell.
type gateFigures struct {
	p50, p90, p99, p999, max, qps, stale float64
	errors, retries                      int64
	lagMS, lagBytes                      float64
}

func (f gateFigures) get(metric string) float64 {
	return map[string]float64{
		"p50": f.p50, "p90": f.p90, "p99": f.p99, "p999": f.p999, "max": f.max,
		"qps": f.qps, "stale": f.stale, "errors": float64(f.errors), "retries": float64(f.retries),
		"lag_ms": f.lagMS, "lag_bytes": f.lagBytes,
	}[metric]
}

func notApplicable(g Gate, why string) Verdict {
	return Verdict{Gate: g, Scope: "n/a: " + why, Measured: math.NaN(), Pass: true}
}

// CheckRun checks every gate against every strategy of one run: the run
// fails if any strategy does, and each strategy's verdict is reported.
// Scaling needs runs with different standby counts, so on one run it is
// reported as not applicable and passes.
func CheckRun(r *metrics.Result, gates []Gate) []Verdict {
	var out []Verdict
	for _, g := range gates {
		if g.Metric == "scaling" {
			out = append(out, notApplicable(g, "one run has one standby count (compare runs to measure scaling)"))
			continue
		}
		for _, s := range r.Strategies {
			if s == nil {
				continue
			}
			t, rep := strategyTotal(s), repeatOf(0, s)
			f := gateFigures{p50: t.P50, p90: t.P90, p99: t.P99, p999: t.P999, max: t.Max, qps: t.QPS,
				stale: pct(t.StaleReads, t.StaleChecked), errors: t.Errors, retries: t.Retries,
				lagMS: rep.LagMSMax, lagBytes: rep.LagBytesMax}
			x := f.get(g.Metric)
			out = append(out, Verdict{Gate: g, Scope: s.Strategy, Measured: x, Pass: g.holds(x)})
		}
	}
	return out
}

// Check checks every gate against every cell, and scaling against every
// strategy's factors.
func (c *Comparison) Check(gates []Gate) []Verdict {
	var out []Verdict
	for _, g := range gates {
		if g.Metric == "scaling" {
			factors := c.Scaling()
			if len(factors) == 0 {
				out = append(out, notApplicable(g, "no strategy was measured with two standby counts"))
			}
			for _, f := range factors {
				scope := fmt.Sprintf("%s, %d vs %d standbys", f.Strategy, f.Standbys, f.BaseStandbys)
				out = append(out, Verdict{Gate: g, Scope: scope, Measured: f.Factor, Pass: g.holds(f.Factor)})
			}
			continue
		}
		for _, cell := range c.Cells {
			f := gateFigures{p50: cell.P50, p90: cell.P90, p99: cell.P99, p999: cell.P999, max: cell.Max,
				qps: cell.QPS, stale: cell.StalePct, errors: cell.Errors, retries: cell.Retries,
				lagMS: cell.LagMSMax, lagBytes: cell.LagBytesMax}
			x := f.get(g.Metric)
			scope := fmt.Sprintf("%s, %d %s", cell.Strategy, cell.Standbys, plural(cell.Standbys, "standby", "standbys"))
			out = append(out, Verdict{Gate: g, Scope: scope, Measured: x, Pass: g.holds(x)})
		}
	}
	return out
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

// WriteVerdicts prints one line per verdict, conditions aligned:
// "PASS  p99<5ms  lag-aware: 3.210 ms".
func WriteVerdicts(w io.Writer, v []Verdict) error {
	width := 0
	for _, x := range v {
		width = max(width, len(x.Gate.Text))
	}
	for _, x := range v {
		status := "PASS"
		if !x.Pass {
			status = "FAIL"
		}
		line := fmt.Sprintf("%s  %-*s  %s", status, width, x.Gate.Text, x.Scope)
		// A passing unknown is a not-applicable verdict: its scope says why.
		if !(x.Pass && math.IsNaN(x.Measured)) {
			line += ": " + verdictValue(x.Gate.Metric, x.Measured)
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
