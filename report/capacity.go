package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// WriteCapacity writes the chosen formats of c into dir, creating it if
// missing: capacity.json for json; capacity.csv (one row per step) and
// capacity_summary.csv (one row per series) for csv; capacity.md and its
// charts, capacity_knee.svg and capacity.svg, for md. Like WriteRun it
// keeps going past a file it cannot write, writes each file whole or not
// at all, and returns the paths written with the joined errors.
func WriteCapacity(dir string, c *metrics.Capacity, formats []string) ([]string, error) {
	if c == nil {
		return nil, errors.New("report: no capacity result to write")
	}
	f, err := newFolder(dir, formats)
	if err != nil {
		return nil, err
	}
	// capacity.json first: everything else can be rendered again from it.
	if f.chosen[FormatJSON] {
		f.write("capacity.json", func(w io.Writer) error { return writeCapacityJSON(w, c) })
	}
	if f.chosen[FormatCSV] {
		f.write("capacity.csv", func(w io.Writer) error { return writeCapacityCSV(w, c) })
		f.write("capacity_summary.csv", func(w io.Writer) error { return writeCapacitySummaryCSV(w, c) })
	}
	if f.chosen[FormatMD] {
		// The charts go first, so capacity.md links only the ones written.
		charts := f.charts(capacityChartsOf(c))
		f.write("capacity.md", func(w io.Writer) error { return writeCapacityMD(w, c, charts) })
	}
	return f.done()
}

// writeCapacityJSON stamps the schema on a copy, so a caller that forgot
// it still writes a file LoadCapacity accepts, and the caller's value is
// left as it was.
func writeCapacityJSON(w io.Writer, c *metrics.Capacity) error {
	cp := *c
	cp.Schema = metrics.CapacitySchemaVersion
	return writeIndented(w, &cp)
}

// LoadCapacity reads a capacity.json back. It refuses a schema this
// version does not know, whose fields may mean something else, and a
// run.json given by mistake (it has a schema too, but no series).
func LoadCapacity(path string) (*metrics.Capacity, error) {
	var c metrics.Capacity
	if err := loadFile(path, "capacity", []string{"series"}, &c, func() int { return c.Schema }, metrics.CapacitySchemaVersion); err != nil {
		return nil, err
	}
	return &c, nil
}

// capKind is how much a series' capacity is known.
type capKind int

const (
	capUnknown    capKind = iota // no step measured
	capNotFound                  // even the lowest rate tried failed
	capExact                     // between a passing and a failing step
	capLowerBound                // no step failed: the real capacity is higher
)

// capStatus is what a series found, worded once for the headline, the
// Markdown, the CSV and the charts, so they cannot disagree.
type capStatus struct {
	kind   capKind
	lowest float64 // lowest rate tried, for capNotFound
	why    string  // why a lower bound is one: "ceiling" or "stopped early"
}

func statusOf(c *metrics.Capacity, s *metrics.CapacitySeries) capStatus {
	if len(s.Steps) == 0 {
		return capStatus{kind: capUnknown}
	}
	if !s.Found {
		lowest := math.Inf(1)
		for _, st := range s.Steps {
			lowest = min(lowest, st.Rate)
		}
		return capStatus{kind: capNotFound, lowest: lowest}
	}
	if s.Limit > 0 {
		return capStatus{kind: capExact}
	}
	// No step failed. Only a search that ran to its end stopped at its
	// ceiling; one cut short says nothing about where it would have gone.
	if s.Error != "" || c.Interrupted {
		return capStatus{kind: capLowerBound, why: "stopped early"}
	}
	return capStatus{kind: capLowerBound, why: "ceiling"}
}

// capFactor is a series' capacity over its strategy's fewest standbys'.
type capFactor struct {
	ok    bool
	value float64
	bound bool // a lower bound: the series stopped at its ceiling
}

// capacityFactors gives each series (by index) its factor. The base is
// the series of the same strategy with the fewest standbys; it gets none.
// A factor needs the base's capacity known exactly: over a lower bound or
// a rate that was never found, the ratio means nothing.
func capacityFactors(c *metrics.Capacity) []capFactor {
	out := make([]capFactor, len(c.Series))
	base := map[string]int{}
	for i, s := range c.Series {
		if b, ok := base[s.Strategy]; !ok || s.Standbys < c.Series[b].Standbys {
			base[s.Strategy] = i
		}
	}
	for i := range c.Series {
		s := &c.Series[i]
		b := base[s.Strategy]
		if b == i || c.Series[b].Standbys == s.Standbys {
			continue
		}
		if statusOf(c, &c.Series[b]).kind != capExact {
			continue
		}
		f := ratio(s.Capacity, c.Series[b].Capacity)
		if !finite(f) {
			continue
		}
		switch statusOf(c, s).kind {
		case capExact:
			out[i] = capFactor{ok: true, value: f}
		case capLowerBound:
			out[i] = capFactor{ok: true, value: f, bound: true}
		}
	}
	return out
}

func (f capFactor) String() string {
	if !f.ok {
		return ""
	}
	if f.bound {
		return "≥ " + fixed(f.value, 2) + "x"
	}
	return fixed(f.value, 2) + "x"
}

// capacityValue is a series' capacity for the headline and what qualifies
// it; unit follows the number on the first entry only, to keep it short.
func capacityValue(c *metrics.Capacity, s *metrics.CapacitySeries, unit string) (value string, notes []string) {
	st := statusOf(c, s)
	switch st.kind {
	case capNotFound:
		return "not found", []string{"below " + compactRate(st.lowest) + unit}
	case capExact:
		return compactRate(s.Capacity) + unit, nil
	case capLowerBound:
		return "≥ " + compactRate(s.Capacity) + unit, []string{st.why}
	}
	return "unknown", []string{"nothing measured"}
}

// CapacityHeadline is what the command prints and capacity.md opens with:
// one line per strategy, each standby count's capacity and its factor over
// the fewest standbys', e.g.
//
//	capacity at p99<5ms: 1 standby 12.1k reads/s, 2 standbys 23.4k (1.93x)
//
// With several strategies each line starts with its strategy.
func CapacityHeadline(c *metrics.Capacity) []string {
	if c == nil {
		return nil
	}
	lead := "capacity"
	if c.SLO != "" {
		lead += " at " + c.SLO
	}
	strategies := capacityStrategies(c)
	if len(strategies) == 0 {
		return []string{lead + ": nothing measured"}
	}
	factors := capacityFactors(c)
	lines := make([]string, 0, len(strategies))
	for _, strat := range strategies {
		var parts []string
		for _, i := range seriesByStandbys(c, strat) {
			s := &c.Series[i]
			unit := ""
			if len(parts) == 0 {
				unit = " reads/s"
			}
			value, notes := capacityValue(c, s, unit)
			if f := factors[i]; f.ok {
				notes = append(notes, f.String())
			}
			part := fmt.Sprintf("%d %s %s", s.Standbys, plural(s.Standbys, "standby", "standbys"), value)
			if len(notes) > 0 {
				part += " (" + strings.Join(notes, ", ") + ")"
			}
			parts = append(parts, part)
		}
		line := lead + ": " + strings.Join(parts, ", ")
		if len(strategies) > 1 {
			line = strat + ": " + line
		}
		lines = append(lines, line)
	}
	return lines
}

// capacityStrategies lists the strategies in the order first measured.
func capacityStrategies(c *metrics.Capacity) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range c.Series {
		if !seen[s.Strategy] {
			seen[s.Strategy] = true
			out = append(out, s.Strategy)
		}
	}
	return out
}

// seriesByStandbys gives the indexes of strategy's series, fewest standbys
// first (stable: a repeated count keeps its measured order).
func seriesByStandbys(c *metrics.Capacity, strategy string) []int {
	var idx []int
	for i, s := range c.Series {
		if s.Strategy == strategy {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return c.Series[a].Standbys - c.Series[b].Standbys })
	return idx
}

// The CSV headers are a contract with scripts, like summaryHeader: add
// columns at the end, never rename or reorder.
var (
	capacityStepHeader = []string{"standbys", "strategy", "phase", "rate", "achieved", "p50_ms", "p90_ms", "p99_ms", "p999_ms",
		"error_pct", "stale_pct", "schedule_lag_p99_ms", "pass", "failed", "throttled_sec"}
	capacitySummaryHeader = []string{"standbys", "strategy", "found", "capacity", "limit", "achieved", "factor", "error"}
)

// staleCSV is empty when no read was checked: unknown, not 0.
func staleCSV(x float64) string {
	if x < 0 {
		return ""
	}
	return pctCSV(x)
}

// throttledText lists each capped node's throttled seconds in node order,
// sep between them ("standby1=1.25;standby2=0.00" in the CSV).
func throttledText(m map[string]float64, eq, sep string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sortNatural(names)
	for i, n := range names {
		names[i] = n + eq + fixed(m[n], 2)
	}
	return strings.Join(names, sep)
}

// writeCapacityCSV writes capacity.csv: one row per step, in the order
// measured. stale_pct is empty when no read was checked; failed joins the
// broken conditions with "; "; throttled_sec lists node=seconds pairs.
func writeCapacityCSV(w io.Writer, c *metrics.Capacity) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(capacityStepHeader); err != nil {
		return err
	}
	for _, s := range c.Series {
		for _, st := range s.Steps {
			rec := []string{
				strconv.Itoa(s.Standbys), s.Strategy, st.Phase, qpsCSV(st.Rate), qpsCSV(st.Achieved),
				msCSV(st.P50MS), msCSV(st.P90MS), msCSV(st.P99MS), msCSV(st.P999MS),
				pctCSV(st.ErrorPct), staleCSV(st.StalePct), msCSV(st.ScheduleLagP99MS),
				strconv.FormatBool(st.Pass), strings.Join(st.Failed, "; "), throttledText(st.ThrottledSec, "=", ";"),
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeCapacitySummaryCSV writes capacity_summary.csv: one row per series.
// capacity and achieved are empty when nothing passed; limit is empty when
// no step failed (capacity is then a lower bound). factor is the capacity
// over the same strategy's fewest standbys', empty on that base row and
// wherever either side is not known exactly: a lower bound in a plain
// number column would read as a measurement.
func writeCapacitySummaryCSV(w io.Writer, c *metrics.Capacity) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(capacitySummaryHeader); err != nil {
		return err
	}
	factors := capacityFactors(c)
	for i, s := range c.Series {
		capacity, achieved, limit, factor := "", "", "", ""
		if s.Found {
			capacity, achieved = qpsCSV(s.Capacity), qpsCSV(s.Achieved)
		}
		if s.Limit > 0 {
			limit = qpsCSV(s.Limit)
		}
		if f := factors[i]; f.ok && !f.bound {
			factor = fixed(f.value, 3)
		}
		rec := []string{strconv.Itoa(s.Standbys), s.Strategy, strconv.FormatBool(s.Found),
			capacity, limit, achieved, factor, s.Error}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// shellQuote writes argv so it can be pasted back into a shell.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		safe := a != ""
		for _, r := range a {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r)) {
				safe = false
				break
			}
		}
		if safe {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// writeCapacityMD writes capacity.md: the headline, the caveats that
// bound it, each series' steps, the settings and the charts (names
// relative to capacity.md).
func writeCapacityMD(w io.Writer, c *metrics.Capacity, charts []string) error {
	m := &md{w: w}
	m.p("# pgbenchx capacity\n\n")
	for _, l := range CapacityHeadline(c) {
		m.p("%s\n\n", mdCell(l))
	}
	if c.Interrupted {
		m.p("**Warning:** the search was interrupted: a series it did not finish may be wider than the precision asked, or only a lower bound.\n\n")
	}
	for _, wn := range c.Warnings {
		m.p("**Warning:** %s\n\n", mdCell(wn))
	}
	writeCapacityCaveat(m, c)
	factors := capacityFactors(c)
	for i := range c.Series {
		writeCapacitySeries(m, c, &c.Series[i], factors[i])
	}
	writeCapacitySettings(m, c)
	if len(charts) > 0 {
		m.p("## Charts\n\n")
		for _, name := range charts {
			alt := name
			for _, ch := range capacityCharts {
				if ch.file == name {
					alt = ch.alt
				}
			}
			m.p("![%s](%s)\n\n", alt, filepath.ToSlash(name))
		}
	}
	m.p("## Method\n\n")
	m.p("- Each step is an open-loop run at the offered rate, measured after its warmup; latency counts from each read's scheduled start, so queueing shows.\n")
	m.p("- Ramp steps raise the rate until one breaks the SLO; bisect steps then narrow the gap between the highest passing rate and the lowest failing one until it is within the precision.\n")
	m.p("- The capacity is the highest offered rate that met the SLO; the factor is a standby count's capacity over the same strategy's fewest standbys'. A search that never failed gives a lower bound (≥), and no exact factor.\n")
	m.p("- A step whose schedule lag is high measured the load generator falling behind, not the cluster.\n")
	return m.err
}

// writeCapacityCaveat says what bounds the figure on this host: shared
// cores when nothing is capped, the CFS quota's knee when nodes are.
func writeCapacityCaveat(m *md, c *metrics.Capacity) {
	cores := "this host's cores"
	if c.Cores > 0 {
		cores = fmt.Sprintf("this host's %d %s", c.Cores, plural(c.Cores, "core", "cores"))
	}
	if len(c.CPUCaps) == 0 {
		if c.Colocated {
			m.p("**The load generator and every node shared %s, so the figure is the host's limit as much as the cluster's.** Cap the nodes with --cpus to model separate machines.\n\n", cores)
		}
		return
	}
	m.p("Each node ran under a CPU quota (cores): %s. A CFS quota throttles a node for the rest of its 100 ms period once spent, so on capped nodes the p99 knee sits where throttling starts: the throttled seconds per step show it.", weights(c.CPUCaps))
	if c.Colocated {
		m.p(" The load generator, uncapped, still shared %s with them.", cores)
	}
	m.p("\n\n")
}

func writeCapacitySeries(m *md, c *metrics.Capacity, s *metrics.CapacitySeries, f capFactor) {
	m.p("## %d %s, %s\n\n", s.Standbys, plural(s.Standbys, "standby", "standbys"), orDash(s.Strategy))
	slo := orDash(c.SLO)
	st := statusOf(c, s)
	switch st.kind {
	case capUnknown:
		m.p("Nothing was measured.\n\n")
	case capNotFound:
		m.p("**Capacity not found**: even the lowest rate tried, %s reads/s, broke %s.\n\n", num(st.lowest, 0), slo)
	default:
		atLeast := ""
		if st.kind == capLowerBound {
			atLeast = "≥ "
		}
		m.p("**Capacity %s%s reads/s** (%s achieved): the highest offered rate that met %s", atLeast, num(s.Capacity, 0), num(s.Achieved, 1), slo)
		if st.kind == capExact {
			// The gap left, not the precision asked: a cut search may miss it.
			m.p("; %s reads/s did not (a %s%% gap", num(s.Limit, 0), fixed((s.Limit-s.Capacity)/s.Capacity*100, 1))
			if c.Precision > 0 {
				m.p("; precision asked: %s%%", fixed(c.Precision*100, 1))
			}
			m.p(")")
		} else if st.why == "ceiling" {
			m.p("; no step failed, so the search stopped at its ceiling and the capacity is higher")
		} else {
			m.p("; no step failed before the search stopped early, so the capacity is higher")
		}
		if f.ok {
			m.p(". Factor over the fewest standbys: %s", f)
		}
		m.p(".\n\n")
	}
	if s.Error != "" {
		m.p("**The search stopped early:** %s\n\n", mdCell(s.Error))
	}
	if len(s.Steps) == 0 {
		return
	}
	throttled := false
	for _, step := range s.Steps {
		throttled = throttled || len(step.ThrottledSec) > 0
	}
	header := []string{"#", "phase", "offered/s", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors %", "stale %", "schedule lag p99 ms", "result"}
	align := "rlrrrrrrrrrl"
	if throttled {
		header, align = append(header, "throttled s"), align+"l"
	}
	rows := make([][]string, len(s.Steps))
	for i, step := range s.Steps {
		stale := num(step.StalePct, 2)
		if step.StalePct < 0 {
			stale = "unknown"
		}
		rows[i] = []string{strconv.Itoa(i + 1), step.Phase, num(step.Rate, 0), num(step.Achieved, 1),
			num(step.P50MS, 3), num(step.P90MS, 3), num(step.P99MS, 3), num(step.P999MS, 3),
			num(step.ErrorPct, 2), stale, num(step.ScheduleLagP99MS, 3), stepResult(s, step)}
		if throttled {
			rows[i] = append(rows[i], orDash(throttledText(step.ThrottledSec, " ", ", ")))
		}
	}
	m.table(header, align, rows)
}

// stepResult is pass or fail with the conditions broken, and marks the
// steps the capacity and the limit come from.
func stepResult(s *metrics.CapacitySeries, step metrics.CapacityStep) string {
	if step.Pass {
		if s.Found && step.Rate == s.Capacity {
			return "pass (capacity)"
		}
		return "pass"
	}
	r := "fail"
	if s.Limit > 0 && step.Rate == s.Limit {
		r += " (limit)"
	}
	if len(step.Failed) > 0 {
		r += ": " + strings.Join(step.Failed, "; ")
	}
	return r
}

func writeCapacitySettings(m *md, c *metrics.Capacity) {
	m.p("## Settings\n\n")
	precision := "-"
	if c.Precision > 0 {
		precision = fixed(c.Precision*100, 1) + "% of the rate found"
	}
	step := dur(c.StepDuration) + " measured, no warmup"
	if c.StepWarmup > 0 {
		step = dur(c.StepDuration) + " measured after a " + dur(c.StepWarmup) + " warmup"
	}
	workload := "query mix " + orDash(mix(c.Mix))
	if c.QueryFile != "" {
		workload = "queries from " + c.QueryFile
	}
	caps := "none"
	if len(c.CPUCaps) > 0 {
		caps = weights(c.CPUCaps)
	}
	cores := "unknown"
	if c.Cores > 0 {
		cores = strconv.Itoa(c.Cores)
	}
	m.table([]string{"setting", "value"}, "ll", [][]string{
		{"SLO", orDash(c.SLO)},
		{"precision", precision},
		{"step", step},
		{"clients", strconv.Itoa(c.Clients)},
		{"workload", workload},
		{"host cores", cores},
		{"load generator on the nodes' host", yesNo(c.Colocated)},
		{"CPU caps (cores per node)", caps},
		{"started", stamp(c.StartedAt)},
		{"ended", stamp(c.EndedAt)},
		{"version", strings.TrimSpace(orDash(c.Tool) + " " + c.Version)},
	})
	if len(c.Command) > 0 {
		// A fence longer than any backtick run in the command, which
		// would otherwise close the block early.
		cmd, fence := shellQuote(c.Command), "```"
		for strings.Contains(cmd, fence) {
			fence += "`"
		}
		m.p("Command line:\n\n%s\n%s\n%s\n\n", fence, cmd, fence)
	}
}
