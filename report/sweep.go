package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// A sweep is one run repeated at several load levels (run --clients
// 4,8,16 or --rate 2000,4000): sweep.md puts every level of every
// strategy in one table and draws latency and throughput against the
// level, so the saturation point is where a reader looks, not something
// pieced together from a folder per level.

// Sweep dimensions, as metrics.Sweep.Dimension names them.
const (
	sweepClients = "clients"
	sweepRate    = "rate"
)

// WriteSweep writes the chosen formats of s into dir, creating it if
// missing: sweep.json for json; sweep.csv for csv; sweep.md and its
// charts (sweep_qps.svg, then sweep_<strategy>.svg per strategy) for md.
// Like WriteCapacity it keeps going past a file it cannot write, writes
// each file whole or not at all, and returns the paths written with the
// joined errors.
func WriteSweep(dir string, s *metrics.Sweep, formats []string) ([]string, error) {
	if s == nil {
		return nil, errors.New("report: no sweep to write")
	}
	f, err := newFolder(dir, formats)
	if err != nil {
		return nil, err
	}
	// sweep.json first: everything else can be rendered again from it.
	if f.chosen[FormatJSON] {
		f.write("sweep.json", func(w io.Writer) error { return writeSweepJSON(w, s) })
	}
	if f.chosen[FormatCSV] {
		f.write("sweep.csv", func(w io.Writer) error { return writeSweepCSV(w, s) })
	}
	if f.chosen[FormatMD] {
		// The charts go first, so sweep.md links only the ones written.
		charts := f.charts(sweepCharts(s))
		f.write("sweep.md", func(w io.Writer) error { return writeSweepMD(w, s, charts) })
	}
	return f.done()
}

// writeSweepJSON stamps the schema on a copy, so a caller that forgot it
// still writes a file LoadSweep accepts, and the caller's value is left
// as it was.
func writeSweepJSON(w io.Writer, s *metrics.Sweep) error {
	cp := *s
	cp.Schema = metrics.SweepSchemaVersion
	return writeIndented(w, &cp)
}

// LoadSweep reads a sweep.json back. It refuses a schema this version
// does not know, whose fields may mean something else, and any other
// pgbenchx file given by mistake: run.json and capacity.json carry a
// schema too, but neither has points and a dimension.
func LoadSweep(path string) (*metrics.Sweep, error) {
	var sw metrics.Sweep
	if err := loadFile(path, "sweep", []string{"points", "dimension"}, &sw, func() int { return sw.Schema }, metrics.SweepSchemaVersion); err != nil {
		return nil, err
	}
	return &sw, nil
}

// sweepStrategies lists the strategies in the order first measured.
func sweepStrategies(s *metrics.Sweep) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range s.Points {
		if !seen[p.Strategy] {
			seen[p.Strategy] = true
			out = append(out, p.Strategy)
		}
	}
	return out
}

// strategyPoints are strategy's points, lowest level first (stable: a
// repeated level keeps its measured order).
func strategyPoints(s *metrics.Sweep, strategy string) []metrics.SweepPoint {
	var out []metrics.SweepPoint
	for _, p := range s.Points {
		if p.Strategy == strategy {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b metrics.SweepPoint) int { return cmpFloat(a.Level, b.Level) })
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sortedPoints is every point grouped by strategy (first measured first),
// each strategy's lowest level first: the order of the table and the CSV.
func sortedPoints(s *metrics.Sweep) []metrics.SweepPoint {
	var out []metrics.SweepPoint
	for _, strat := range sweepStrategies(s) {
		out = append(out, strategyPoints(s, strat)...)
	}
	return out
}

// sweepLevels are the levels asked for, lowest first; a sweep.json
// without them (hand-made, or cut short) falls back on the points'.
func sweepLevels(s *metrics.Sweep) []float64 {
	levels := slices.Clone(s.Levels)
	if len(levels) == 0 {
		for _, p := range s.Points {
			levels = append(levels, p.Level)
		}
	}
	slices.Sort(levels)
	return slices.Compact(levels)
}

// levelText prints a level as people count it: clients whole, rates
// grouped ("8,000"), and a fractional rate as given rather than rounded
// into another level.
func levelText(x float64) string {
	if !finite(x) {
		return "unknown"
	}
	return grouped(strconv.FormatFloat(x, 'f', -1, 64))
}

// levelCSV is levelText for scripts: no separators, empty when unknown.
func levelCSV(x float64) string {
	if !finite(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// sweepAxis names what varied: in the title, a table header and a chart
// axis. A dimension this version does not know is shown by its name.
type sweepAxis struct {
	name   string // "clients", "offered rate"
	column string // table header
	label  string // chart axis
	unit   string // after a list of levels
}

func axisOf(s *metrics.Sweep) sweepAxis {
	switch s.Dimension {
	case sweepClients:
		return sweepAxis{name: "clients", column: "clients", label: "clients"}
	case sweepRate:
		return sweepAxis{name: "offered rate", column: "offered/s", label: "offered rate (reads/s)", unit: " reads/s"}
	}
	d := orDash(s.Dimension)
	return sweepAxis{name: d, column: d, label: d}
}

// SweepTitle says what varied, e.g. "clients: 4, 8, 16, 32" or "offered
// rate: 2,000, 4,000, 8,000 reads/s".
func SweepTitle(s *metrics.Sweep) string {
	a := axisOf(s)
	levels := sweepLevels(s)
	if len(levels) == 0 {
		return a.name + ": none"
	}
	texts := make([]string, len(levels))
	for i, l := range levels {
		texts[i] = levelText(l)
	}
	return a.name + ": " + strings.Join(texts, ", ") + a.unit
}

// staleText is a stale percentage for people: "unknown" when no read was
// checked, since 0 would claim every checked read was fresh.
func staleText(x float64) string {
	if x < 0 {
		return "unknown"
	}
	return num(x, 2)
}

// rateText is a point's offered rate, or "closed" for a closed loop.
func rateText(p metrics.SweepPoint) string {
	if p.Rate <= 0 {
		return "closed"
	}
	return levelText(p.Rate)
}

// sweepHeader is a contract with scripts, like summaryHeader: add columns
// at the end, never rename or reorder.
var sweepHeader = []string{"strategy", "dimension", "level", "clients", "rate", "qps",
	"p50_ms", "p90_ms", "p99_ms", "p999_ms", "error_pct", "stale_pct", "run"}

// writeSweepCSV writes sweep.csv: one row per point, grouped by strategy,
// lowest level first. rate is 0 for a closed loop, as in sweep.json: an
// empty cell would read as unknown, and a word would break a numeric
// column. stale_pct is empty when no read was checked.
func writeSweepCSV(w io.Writer, s *metrics.Sweep) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(sweepHeader); err != nil {
		return err
	}
	for _, p := range sortedPoints(s) {
		rec := []string{p.Strategy, s.Dimension, levelCSV(p.Level), strconv.Itoa(p.Clients), levelCSV(p.Rate),
			qpsCSV(p.QPS), msCSV(p.P50MS), msCSV(p.P90MS), msCSV(p.P99MS), msCSV(p.P999MS),
			pctCSV(p.ErrorPct), staleCSV(p.StalePct), filepath.ToSlash(p.Run)}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteSweepTable prints the sweep as one terminal table, a row per point
// grouped by strategy, lowest level first. Warnings and the interruption
// are the caller's to print: this is the table only, like Table.
func WriteSweepTable(w io.Writer, s *metrics.Sweep) error {
	if s == nil {
		return errors.New("report: no sweep to print")
	}
	header := []string{"strategy", "clients", "rate/s", "qps", "p50 ms", "p99 ms", "p99.9 ms", "errors %", "stale %"}
	var rows [][]string
	for _, p := range sortedPoints(s) {
		rows = append(rows, []string{p.Strategy, strconv.Itoa(p.Clients), rateText(p), num(p.QPS, 1),
			num(p.P50MS, 3), num(p.P99MS, 3), num(p.P999MS, 3), num(p.ErrorPct, 2), staleText(p.StalePct)})
	}
	return Table(w, header, rows, 0)
}

// runLink links a point's run folder's report.md, relative to sweep.md.
// The URL form escapes what a Markdown link cannot hold (spaces,
// parentheses) and puts "./" before a first segment with a colon, which
// a viewer would otherwise take for a scheme ("via:pgpool-c8/...").
func runLink(run string) string {
	if run == "" {
		return "-"
	}
	dir := filepath.ToSlash(run)
	target := (&url.URL{Path: path.Join(dir, "report.md")}).String()
	text := strings.NewReplacer("[", `\[`, "]", `\]`).Replace(strings.TrimSuffix(dir, "/"))
	return "[" + text + "](" + target + ")"
}

// constantOther is the setting that did not vary, when it did not: the
// clients of a rate sweep, or the offered rate of a clients sweep (0 for
// a closed loop). ok is false when the points disagree, and the table
// then shows it per point.
func constantOther(s *metrics.Sweep) (clients int, rate float64, ok bool) {
	if len(s.Points) == 0 {
		return 0, 0, false
	}
	first := s.Points[0]
	for _, p := range s.Points[1:] {
		if s.Dimension == sweepRate && p.Clients != first.Clients ||
			s.Dimension != sweepRate && p.Rate != first.Rate {
			return 0, 0, false
		}
	}
	return first.Clients, first.Rate, true
}

// loops says which loops the points ran: closed (no rate) or open.
func loops(s *metrics.Sweep) (closed, open bool) {
	for _, p := range s.Points {
		if p.Rate > 0 {
			open = true
		} else {
			closed = true
		}
	}
	return closed, open
}

// writeSweepMD writes sweep.md: what varied, every point in one table,
// how to read it, and the charts (names relative to sweep.md).
func writeSweepMD(w io.Writer, s *metrics.Sweep, charts []string) error {
	m := &md{w: w}
	a := axisOf(s)
	m.p("# pgbenchx sweep over %s\n\n", mdCell(SweepTitle(s)))
	m.p("Started %s, ended %s", stamp(s.StartedAt), stamp(s.EndedAt))
	if v := strings.TrimSpace(s.Tool + " " + s.Version); v != "" {
		m.p(", by %s", v)
	}
	m.p(".\n\n")
	if s.Interrupted {
		m.p("**Warning:** the sweep was interrupted: levels it did not reach are missing, and the last one may be cut short.\n\n")
	}
	for _, wn := range s.Warnings {
		m.p("**Warning:** %s\n\n", mdCell(wn))
	}

	m.p("Each level is a run of its own; the run column links its full report.")
	clients, rate, same := constantOther(s)
	switch {
	case same && s.Dimension == sweepRate:
		m.p(" Every level ran %d %s.", clients, plural(clients, "client", "clients"))
	case same && rate > 0:
		m.p(" Every level offered %s reads/s (open loop).", levelText(rate))
	case same:
		m.p(" Every level ran a closed loop.")
	}
	m.p("\n\n")
	header := []string{"strategy", a.column}
	align := "lr"
	if !same {
		// The other setting varied too: show it, or the levels mislead.
		if s.Dimension == sweepRate {
			header, align = append(header, "clients"), align+"r"
		} else {
			header, align = append(header, "rate/s"), align+"r"
		}
	}
	header = append(header, "qps", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors %", "stale %", "run")
	align += "rrrrrrrl"
	var rows [][]string
	for _, p := range sortedPoints(s) {
		row := []string{p.Strategy, levelText(p.Level)}
		if !same {
			if s.Dimension == sweepRate {
				row = append(row, strconv.Itoa(p.Clients))
			} else {
				row = append(row, rateText(p))
			}
		}
		row = append(row, num(p.QPS, 1), num(p.P50MS, 3), num(p.P90MS, 3), num(p.P99MS, 3), num(p.P999MS, 3),
			num(p.ErrorPct, 2), staleText(p.StalePct), runLink(p.Run))
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		m.p("Nothing was measured.\n\n")
	} else {
		m.table(header, align, rows)
	}
	if missing := missingPoints(s); len(missing) > 0 {
		m.p("Not measured: %s.\n\n", mdCell(strings.Join(missing, "; ")))
	}

	m.p("## Reading it\n\n")
	closed, open := loops(s)
	if closed {
		m.p("Closed loop: each client sends its next read as soon as the last returns, so the load is whatever the cluster lets through. ")
		m.p("Throughput (qps) climbs with the clients until the cluster saturates, then levels off while latency keeps climbing: past that level more clients only queue. ")
		m.p("The saturation point is the lowest level where qps stops growing.\n\n")
	}
	if open {
		m.p("Open loop: reads are sent on a schedule at the offered rate whatever the cluster does, and latency counts from each read's scheduled start, so queueing shows. ")
		m.p("A rate the cluster cannot keep shows as qps falling short of the offered rate and latency growing from there on, level after level.\n\n")
	}
	m.p("qps counts successful reads per measured second; errors %% is failed reads of all reads, stale %% stale reads of those checked (unknown when none was).\n\n")

	if len(charts) > 0 {
		m.p("## Charts\n\n")
		alts := map[string]string{}
		for _, ch := range sweepCharts(s) {
			alts[ch.file] = ch.alt
		}
		for _, name := range charts {
			alt := alts[name]
			if alt == "" {
				alt = name
			}
			m.p("![%s](%s)\n\n", alt, filepath.ToSlash(name))
		}
	}
	if len(s.Command) > 0 {
		// A fence longer than any backtick run in the command, which
		// would otherwise close the block early.
		cmd, fence := shellQuote(s.Command), "```"
		for strings.Contains(cmd, fence) {
			fence += "`"
		}
		m.p("Command line:\n\n%s\n%s\n%s\n\n", fence, cmd, fence)
	}
	return m.err
}

// missingPoints names each strategy's levels that have no point, e.g.
// after an interrupt: a blank in the table would pass unnoticed.
func missingPoints(s *metrics.Sweep) []string {
	a := axisOf(s)
	var out []string
	for _, strat := range sweepStrategies(s) {
		have := map[float64]bool{}
		for _, p := range strategyPoints(s, strat) {
			have[p.Level] = true
		}
		var lack []string
		for _, l := range sweepLevels(s) {
			if !have[l] && !math.IsNaN(l) {
				lack = append(lack, levelText(l))
			}
		}
		if len(lack) > 0 {
			out = append(out, fmt.Sprintf("%s at %s %s%s", strat, a.name, strings.Join(lack, ", "), a.unit))
		}
	}
	return out
}
