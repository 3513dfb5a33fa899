package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// comparisonHeader is a contract with scripts, like summaryHeader: add
// columns at the end, never rename or reorder.
var comparisonHeader = []string{
	"strategy", "standbys", "runs", "qps", "qps_spread", "p50_ms", "p99_ms",
	"stale_pct", "errors", "scaling", "scaling_significant",
	"mode", "commits", "commit_p50_ms", "commit_p99_ms", "commits_per_sec", "ryw_checks", "ryw_violations",
	"write_phase_rows_per_sec",
}

// scalingOf is the factor of cell over its strategy's fewest standbys; ok
// is false for the cell that is that baseline.
func (c *Comparison) scalingOf(cell *Cell) (ScalingFactor, bool) {
	for _, f := range c.Scaling() {
		if f.Strategy == cell.Strategy && f.Standbys == cell.Standbys && f.Mode == cell.Mode {
			return f, true
		}
	}
	return ScalingFactor{}, false
}

// ryw is a read-your-writes count, empty where none was checked (not a
// causal cell): unknown, not 0.
func ryw(checks, n int64) string {
	if checks == 0 {
		return ""
	}
	return intCSV(n)
}

// WriteCSV writes comparison.csv: one row per (strategy, standbys) cell.
// qps is the mean over the cell's runs and qps_spread their sample
// standard deviation (empty with one run); latencies come from the runs'
// merged histograms; errors are summed over the runs. scaling and
// scaling_significant (yes, ~ or n/a) are empty on the rows of a
// strategy's fewest standbys, which the others are divided by, and where
// the factor is refused (open-loop runs: see comparison.md).
func (c *Comparison) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(comparisonHeader); err != nil {
		return err
	}
	for _, cell := range c.Cells {
		spread := ""
		if len(cell.Repeats) > 1 {
			spread = qpsCSV(cell.QPSStddev)
		}
		scaling, sig := "", ""
		if f, ok := c.scalingOf(cell); ok {
			scaling, sig = fixed(f.Factor, 3), f.Sig.Mark()
		}
		commits := ""
		if cell.Writes.Known {
			commits = intCSV(cell.Writes.Commits)
		}
		rec := []string{
			cell.Strategy, strconv.Itoa(cell.Standbys), strconv.Itoa(len(cell.Repeats)),
			qpsCSV(cell.QPS), spread, msCSV(cell.P50), msCSV(cell.P99),
			pctCSV(cell.StalePct), intCSV(cell.Errors), scaling, sig,
			cell.Mode, commits, msCSV(cell.Writes.CommitP50), msCSV(cell.Writes.CommitP99),
			qpsCSV(cell.Writes.CommitsPerSec), ryw(cell.Writes.RYWChecks, cell.Writes.RYWChecks), ryw(cell.Writes.RYWChecks, cell.Writes.RYWViolations),
			qpsCSV(cell.Writes.WritePhaseRowsPerSec),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTable prints the comparison on the terminal: one row per cell.
func (c *Comparison) WriteTable(w io.Writer) error {
	header := []string{"standbys", "strategy", "runs", "qps", "± sd", "p50 ms", "p99 ms", "stale %", "errors", "scaling"}
	type key struct {
		name     string
		standbys int
	}
	refused := map[key]bool{}
	for _, n := range c.NoScaling() {
		refused[key{n.Name, n.Standbys}] = true
	}
	t := newTable(w, header, 1)
	rows := make([][]string, 0, len(c.Cells))
	for _, cell := range c.Cells {
		sd := "-"
		if len(cell.Repeats) > 1 {
			sd = num(cell.QPSStddev, 1)
		}
		scaling := "-"
		if f, ok := c.scalingOf(cell); ok {
			scaling = orDash(fixed(f.Factor, 2))
			if f.Sig.Tested && !f.Sig.Significant() {
				scaling += " ~"
			}
		} else if refused[key{cell.Name, cell.Standbys}] {
			scaling = "n/a"
		}
		rows = append(rows, []string{
			strconv.Itoa(cell.Standbys), cell.Name, strconv.Itoa(len(cell.Repeats)),
			num(cell.QPS, 1), sd, num(cell.P50, 3), num(cell.P99, 3),
			num(cell.StalePct, 2), count(cell.Errors), scaling,
		})
	}
	if err := t.Bulk(rows); err != nil {
		return err
	}
	if err := t.Render(); err != nil {
		return err
	}
	return c.writeTableNotes(w)
}

// writeTableNotes warns, under the terminal table, of what comparison.md
// explains at length: workloads that differ, factors refused.
func (c *Comparison) writeTableNotes(w io.Writer) error {
	var notes []string
	if diffs := c.WorkloadDiffs(); len(diffs) > 0 {
		names := make([]string, len(diffs))
		for i, d := range diffs {
			names[i] = d.Setting
		}
		notes = append(notes, "warning: the runs' workloads or settings differ ("+strings.Join(names, ", ")+"): see comparison.md")
	}
	var whys []string
	for _, n := range c.NoScaling() {
		if !slices.Contains(whys, n.Why) {
			whys = append(whys, n.Why)
		}
	}
	for _, why := range whys {
		notes = append(notes, "scaling n/a: "+why)
	}
	for _, n := range notes {
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}
