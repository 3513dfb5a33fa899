package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// md collects the first write error so rendering reads top to bottom.
type md struct {
	w   io.Writer
	err error
}

func (m *md) p(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}

// table writes a Markdown table; align holds "l" or "r" per column.
func (m *md) table(header []string, align string, rows [][]string) {
	seps := make([]string, len(header))
	for i := range header {
		seps[i] = "---"
		if i < len(align) && align[i] == 'r' {
			seps[i] = "---:"
		}
	}
	m.p("| %s |\n| %s |\n", strings.Join(header, " | "), strings.Join(seps, " | "))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = mdCell(c)
		}
		m.p("| %s |\n", strings.Join(cells, " | "))
	}
	m.p("\n")
}

// WriteMarkdown writes report.md: what a capacity review reads, from
// settings and environment to per-strategy tables, lag and warnings. It
// prints only what the Result holds, whose DSNs are already redacted; it
// does not print the DSNs either, a report has no use for them. It links
// the charts WriteCharts would write for r, as WriteRun writes them beside
// report.md.
func WriteMarkdown(w io.Writer, r *metrics.Result) error {
	return WriteMarkdownWithCharts(w, r, ChartFiles(r))
}

// WriteMarkdownWithCharts is WriteMarkdown linking the given chart files
// (names relative to report.md) instead: WriteRun passes the charts it
// could write, so report.md never links a missing file.
func WriteMarkdownWithCharts(w io.Writer, r *metrics.Result, charts []string) error {
	m := &md{w: w}
	title := "pgbenchx run"
	if r.Label != "" {
		title += ": " + r.Label
	}
	m.p("# %s (%s)\n\n", title, stamp(r.StartedAt))
	if r.Interrupted {
		m.p("> **Interrupted.** This run was interrupted; figures cover what was measured before.\n\n")
	}
	m.p("Started %s, ended %s", stamp(r.StartedAt), stamp(r.EndedAt))
	if r.Tool != "" {
		m.p(", by %s", r.Tool)
	}
	m.p(".\n\n")
	writeMeasured(m, r)
	writeEnvironment(m, r)
	writeWritePhase(m, r)
	for _, s := range r.Strategies {
		if s != nil {
			writeStrategy(m, r, s)
		}
	}
	writeCommitLatency(m, r)
	writeFailovers(m, r)
	writeLag(m, r)
	writeEvents(m, r)
	writeChartLinks(m, charts)
	m.p("## Warnings\n\n")
	warns := warnings(r)
	if len(warns) == 0 {
		m.p("None.\n")
	}
	for _, w := range warns {
		m.p("- %s\n", w)
	}
	return m.err
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown time"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func dur(d metrics.Duration) string { return time.Duration(d).String() }

func writeStrategy(m *md, r *metrics.Result, s *metrics.StrategyResult) {
	m.p("## Strategy: %s\n\n", s.Strategy)
	m.p("Measured for %s s (warmup excluded).\n\n", fixed(s.Seconds, 1))
	rows := strategyRows(s)
	cells := make([][]string, 0, len(rows)+1)
	for _, row := range rows {
		cells = append(cells, nodeCells(row))
	}
	t := strategyTotal(s)
	share := ""
	if t.Queries > 0 {
		share = "100.00"
	}
	cells = append(cells, []string{"**all**", "", count(t.Queries), num(t.QPS, 1), orDash(share),
		num(t.P50, 3), num(t.P99, 3), num(t.P999, 3), num(t.Max, 3),
		count(t.Errors), count(t.Retries), num(pct(t.StaleReads, t.StaleChecked), 2)})
	m.table(nodeColumns, "llrrrrrrrrrr", cells)
	writeKinds(m, r, s.Strategy)

	m.p("- Every read once, end to end (the **all** row): %s reads, %s succeeded (%s qps), %s failed on every try; p50 %s ms, p99 %s ms, max %s ms. A retried read counts its whole time, a failed one the time it failed at.\n",
		count(t.Reads), count(t.Queries), num(t.QPS, 1), t.failedText(), num(t.P50, 3), num(t.P99, 3), num(t.Max, 3))
	m.p("- Per node: every attempt that ran there, at its own latency (failed ones too); queries and share count its successful attempts.\n")
	if t.Errors > 0 || t.Retries > 0 {
		m.p("- Errors (failed attempts): %s (%s); retries (attempts that ran again on another node): %s.\n", count(t.Errors), errorClasses(s), count(t.Retries))
	}
	if n := recoveryConflicts(s); n > 0 {
		m.p("- Hot standby conflicts: %s reads cancelled by a standby's replay (\"canceling statement due to conflict with recovery\"), counted apart as %s. The knob: pgbenchx env up --pg-setting hot_standby_feedback=on (the primary then keeps the rows standbys' reads need: bloat instead of cancellations), or a longer max_standby_streaming_delay (lag instead).\n",
			count(n), RecoveryConflictLabel)
	}
	if t.StaleChecked > 0 {
		m.p("- Stale reads: %s of %s checked (%s%%): they missed a heartbeat committed before they began", count(t.StaleReads), count(t.StaleChecked), num(pct(t.StaleReads, t.StaleChecked), 2))
		if r.Config.Heartbeat > 0 {
			m.p(" (one every %s: a standby d ms behind misses about d / %s of them)", dur(r.Config.Heartbeat), dur(r.Config.Heartbeat))
		}
		m.p(".\n")
	} else {
		m.p("- Stale reads: not checked (reads from --query-file or -f scripts report no heartbeat).\n")
	}
	if s.RYWChecks > 0 {
		m.p("- Read-your-writes: %s checks, %s violations (%s%%).\n",
			count(s.RYWChecks), count(s.RYWViolation), num(pct(s.RYWViolation, s.RYWChecks), 2))
	}
	if h := s.ScheduleLag; h != nil && h.Histogram != nil && h.TotalCount() > 0 {
		p50, _, p99, _, mx := percentiles(h)
		m.p("- Open-loop schedule lag (start minus due time): p50 %s ms, p99 %s ms, max %s ms.\n", num(p50, 3), num(p99, 3), num(mx, 3))
	}
	if s.BackgroundWrites > 0 {
		// Not a rate: the workload counts them over the warmup too, and
		// Seconds leaves the warmup out.
		m.p("- Background rows written on the primary while measuring: %s.\n", count(s.BackgroundWrites))
	}
	if s.Unfinished > 0 {
		m.p("- Reads still running when the phase ended: %s, counted with the latency they had reached by then (neither succeeded nor failed).\n", count(s.Unfinished))
	}
	if s.Unsent > 0 {
		m.p("- Open-loop reads due but never sent (every client was busy): %s, counted end to end with the time they had waited at the end.\n", count(s.Unsent))
	}
	if s.NoTarget > 0 {
		m.p("- Reads that found no node to run on: %s (failed, and counted as errors).\n", count(s.NoTarget))
	}
	if s.Clipped > 0 {
		m.p("- Latencies over an hour, recorded as an hour: %s.\n", count(s.Clipped))
	}
	if line := costLine(s); line != "" {
		m.p("- %s\n", line)
	}
	m.p("- %s\n\n", cpuLine(r, s.CPU))
	writeErrors(m, s)
}

// writeErrors lists every error label of a strategy per node, with the
// first message seen: "client_timeout" on a frozen node reads differently
// from "53300 too_many_connections".
func writeErrors(m *md, s *metrics.StrategyResult) {
	var rows [][]string
	for _, n := range s.Nodes {
		if n == nil {
			continue
		}
		labels := make([]string, 0, len(n.Errors))
		for l := range n.Errors {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		for _, l := range labels {
			rows = append(rows, []string{n.Node, l, count(n.Errors[l]), orDash(n.ErrorSamples[l])})
		}
	}
	if s.NoTarget > 0 {
		rows = append(rows, []string{"-", "no_target", count(s.NoTarget), "no node could take the read"})
	}
	if len(rows) == 0 {
		return
	}
	m.table([]string{"node", "error", "count", "first message"}, "llrl", rows)
}

func errorClasses(s *metrics.StrategyResult) string {
	byClass := map[string]int64{}
	for _, n := range s.Nodes {
		if n != nil {
			for c, v := range n.Errors {
				byClass[c] += v
			}
		}
	}
	if s.NoTarget > 0 {
		byClass["no_target"] += s.NoTarget
	}
	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	parts := make([]string, len(classes))
	for i, c := range classes {
		parts[i] = c + ": " + count(byClass[c])
	}
	return orDash(strings.Join(parts, ", "))
}

func cpuLine(r *metrics.Result, c metrics.CPU) string {
	cores := c.Cores
	if cores == 0 {
		cores = r.Environment.Cores
	}
	if c.LoadGenCores == 0 && c.HostBusyCores == 0 {
		return "CPU: not measured."
	}
	line := fmt.Sprintf("CPU: the load generator used %s cores, the servers about %s; the host was busy on %s of %d cores.",
		fixed(c.LoadGenCores, 2), fixed(c.ServerCores, 2), fixed(c.HostBusyCores, 2), cores)
	if c.LoadGenBound {
		line += " **The load generator was the bottleneck: these numbers understate the cluster.**"
	}
	if c.HostSaturated {
		line += " **" + upperFirst(saturated(r)) + "**"
	}
	return line
}

// costLine is what each standby cost the primary during a phase, and how
// long capped nodes were throttled: the measured answer to "about 2% CPU
// per standby".
func costLine(s *metrics.StrategyResult) string {
	var parts []string
	for _, c := range s.PrimaryCost {
		cpu := "walsender CPU not visible"
		if c.WalsenderCores >= 0 {
			cpu = fmt.Sprintf("walsender %s cores", fixed(c.WalsenderCores, 3))
		}
		parts = append(parts, fmt.Sprintf("%s %s/s of WAL, %s", c.Node, humanBytes(c.WALBytesPerSec), cpu))
	}
	line := ""
	if len(parts) > 0 {
		line = "Primary cost per standby: " + strings.Join(parts, "; ") + "."
	}
	if len(s.ThrottledSec) > 0 {
		var th []string
		for _, n := range sortedNodeNames(s.ThrottledSec) {
			th = append(th, fmt.Sprintf("%s %ss", n, fixed(s.ThrottledSec[n], 1)))
		}
		if line != "" {
			line += " "
		}
		line += "Throttled by CPU caps: " + strings.Join(th, ", ") + "."
	}
	return line
}

func sortedNodeNames(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return naturalLess(out[i], out[j]) })
	return out
}

// saturated explains a busy host: with the nodes on it, they compete with
// each other and the client; with an external cluster only the client does.
func saturated(r *metrics.Result) string {
	if r.Environment.Provider == "external" {
		return "the load generator's host was saturated: these numbers may understate the cluster."
	}
	return "the host was saturated: on one host all nodes share the cores, so comparisons across standby counts measure co-location, not what another replica adds."
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func writeLag(m *md, r *metrics.Result) {
	m.p("## Replica lag\n\n")
	names := standbys(r)
	var rows [][]string
	var disagree []string
	var resolution metrics.Duration
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		resolution = max(resolution, s.TimeLagResolution)
		for _, n := range names {
			l := lagOf(s, n)
			samples := strconv.Itoa(l.Samples)
			if u := max(l.UnknownBytes, l.UnknownMS); u > 0 {
				samples += fmt.Sprintf(" (%d unknown)", u)
			}
			rows = append(rows, []string{s.Strategy, n, samples,
				humanBytes(l.BytesAvg), humanBytes(l.BytesMax), msRange(l.MSAvg, l.MSUpperAvg), msRange(l.MSMax, l.MSUpperMax),
				humanBytes(l.PSRBytesAvg), num(l.ReplayLagAvg, 1), humanBytes(l.SlotMax)})
			if lagDisagrees(l) {
				disagree = append(disagree, fmt.Sprintf("%s during %s: over the %d samples with both, pg_stat_replication's replay_lag averaged %s ms, the heartbeat's time lag %s ms",
					n, s.Strategy, l.Paired, num(l.PairedReplay, 1), msRange(l.PairedLo, l.PairedHi)))
			}
		}
	}
	if len(rows) == 0 {
		m.p("No lag samples.\n\n")
		return
	}
	m.p("Sampled every %s on each standby, each with a deadline of its own; an unknown sample (no answer in time) is left out of the averages, never counted as 0. ", dur(r.Config.LagInterval))
	m.p("Lag in bytes is the primary's WAL insert position minus the standby's replay position. ")
	if resolution > 0 {
		m.p("Time lag comes from a heartbeat committed every %s: a standby was at least the first and at most the second figure behind (the resolution is about one heartbeat). ", dur(resolution))
	} else {
		m.p("Time lag comes from the heartbeat (a lower bound in runs of this version). ")
	}
	m.p("Then pg_stat_replication's own view on the primary, for a cross-check: the lag by its replay_lsn (reported by the standby every few seconds at most) and its replay_lag (unknown when the standby is idle). The last column is the most WAL the standby's slot made the primary keep (pg_replication_slots.restart_lsn): it grows while a standby is down, frozen or far behind, and the lab guide's rule is to investigate past 1 GB.")
	if w := r.Config.SlotWarnBytes; w > 0 {
		m.p(" This run warned past %s (--slot-warn).", humanBytes(float64(w)))
	}
	m.p("\n\n")
	m.table([]string{"strategy", "standby", "samples", "avg lag", "max lag", "avg time lag ms", "max time lag ms", "avg lag (replay_lsn)", "avg replay_lag ms", "max WAL kept by slot"}, "llrrrrrrrr", rows)
	for _, d := range disagree {
		m.p("**Lag sources disagree:** %s.\n\n", d)
	}
}

// writeEvents lists what happened to the cluster while it was measured,
// each at its time in the read phase it fell in.
func writeEvents(m *md, r *metrics.Result) {
	var rows [][]string
	for _, e := range r.Events {
		rows = append(rows, []string{"-", "-", stamp(e.At), e.String()})
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, e := range s.Events {
			rows = append(rows, []string{s.Strategy, fixed(e.T, 1), stamp(e.At), e.String()})
		}
	}
	if len(rows) == 0 {
		return
	}
	m.p("## Events\n\nWhat happened to the cluster while it was measured (t: seconds into the strategy's measured time; negative: during its warmup). The lag charts mark them.\n\n")
	m.table([]string{"strategy", "t (s)", "at", "event"}, "lrll", rows)
}

// msRange prints a time-lag bound pair "lo-hi", or lo alone when the upper
// bound is unknown (schema 1 files) or the same.
func msRange(lo, hi float64) string {
	if math.IsNaN(hi) || fixed(lo, 1) == fixed(hi, 1) {
		return num(lo, 1)
	}
	return num(lo, 1) + "–" + num(hi, 1)
}

// warnings gathers what must not be missed: the run's own warnings (the
// workload already words row-count differences and CPU limits there, so
// they are not repeated) and the caveats only the figures show.
func warnings(r *metrics.Result) []string {
	var out []string
	if r.Interrupted {
		out = append(out, "This run was interrupted; figures cover what was measured before.")
	}
	out = append(out, r.Warnings...)
	if r.Environment.Fast {
		out = append(out, "fsync off: not durable numbers.")
	}
	if wp := r.Write; wp != nil {
		for _, c := range wp.Standbys {
			if c.CatchUpMS < 0 {
				out = append(out, c.Node+" never caught up with the write phase's last commit.")
			}
		}
	}
	for _, s := range r.Strategies {
		if s != nil && math.IsNaN(ratio(1, s.Seconds)) {
			out = append(out, s.Strategy+" has no measured time, so no rates.")
		}
	}
	return out
}

// RecoveryConflictLabel is the workload's label for reads a standby's
// replay cancelled (workload.LabelRecoveryConflict; report does not
// import workload).
const RecoveryConflictLabel = "recovery_conflict"

func recoveryConflicts(s *metrics.StrategyResult) int64 {
	var n int64
	for _, nr := range s.Nodes {
		if nr != nil {
			// "40001 recovery_conflict": the label of runs stored before
			// 40P01 conflicts were counted under it too.
			n += nr.Errors[RecoveryConflictLabel] + nr.Errors["40001 "+RecoveryConflictLabel]
		}
	}
	return n
}
