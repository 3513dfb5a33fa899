package report

import (
	"fmt"
	"io"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// nodeColumns are the per-node columns of the terminal and Markdown tables.
var nodeColumns = []string{"node", "role", "queries", "qps", "share %", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "retries", "stale %"}

// nodeCells formats a Row for people: grouped digits, "-" when unknown.
func nodeCells(r Row) []string {
	return []string{
		r.Node, string(r.Role), count(r.Queries), num(r.QPS, 1), num(r.SharePct, 2),
		num(r.P50, 3), num(r.P99, 3), num(r.P999, 3), num(r.Max, 3),
		count(r.Errors), count(r.Retries), num(r.StalePct(), 2),
	}
}

// WriteTable prints what a user watching the terminal needs after a run:
// per strategy a table of nodes, the strategy's totals, and each standby's
// lag while it ran.
func WriteTable(w io.Writer, r *metrics.Result) error {
	names := standbys(r)
	for i, s := range r.Strategies {
		if s == nil {
			continue
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "strategy %s: %s s measured\n", s.Strategy, fixed(s.Seconds, 1))
		if err := renderTerminal(w, strategyRows(s)); err != nil {
			return err
		}
		t := strategyTotal(s)
		fmt.Fprintf(w, "%s, every read end to end: %s reads, p50 %s ms, p99 %s ms, max %s ms; %s succeeded (%s qps), %s failed; %s errors, %s retries\n",
			s.Strategy, count(t.Reads), num(t.P50, 3), num(t.P99, 3), num(t.Max, 3), count(t.Queries), num(t.QPS, 1),
			t.failedText(), count(t.Errors), count(t.Retries))
		if t.Errors > 0 {
			fmt.Fprintf(w, "  errors: %s\n", errorClasses(s))
		}
		for _, n := range names {
			l := lagOf(s, n)
			if l.Samples == 0 {
				continue
			}
			fmt.Fprintf(w, "  lag %s: avg %s, max %s; avg %s ms, max %s ms (%d samples)\n",
				n, humanBytes(l.BytesAvg), humanBytes(l.BytesMax), msRange(l.MSAvg, l.MSUpperAvg), msRange(l.MSMax, l.MSUpperMax), l.Samples)
		}
		if s.CPU.LoadGenBound {
			fmt.Fprintln(w, "  warning: the load generator was the bottleneck: these numbers understate the cluster")
		}
		if s.CPU.HostSaturated {
			fmt.Fprintln(w, "  warning: "+saturated(r))
		}
	}
	if line := failoverLine(r); line != "" {
		fmt.Fprintf(w, "\nfailover: %s\n", line)
	}
	return nil
}

// newTable is a terminal table with numbers right-aligned and the given
// columns (names, labels) left-aligned.
func newTable(w io.Writer, header []string, left ...int) *tablewriter.Table {
	align := make([]tw.Align, len(header))
	for i := range align {
		align[i] = tw.AlignRight
	}
	for _, i := range left {
		align[i] = tw.AlignLeft
	}
	t := tablewriter.NewWriter(w)
	// Auto-format would turn "p99.9 ms" into "P 99 . 9 MS".
	t.Options(tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}))
	hdr := make([]any, len(header))
	for i, h := range header {
		hdr[i] = h
	}
	t.Header(hdr...)
	return t
}

// Table prints a terminal table: numbers right-aligned, the columns
// named in left (names, labels) left-aligned. Every table pgbenchx prints
// goes through it.
func Table(w io.Writer, header []string, rows [][]string, left ...int) error {
	t := newTable(w, header, left...)
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}

// OrDash is s, or "-" when s is empty: how tables show what is unknown.
func OrDash(s string) string { return orDash(s) }

func renderTerminal(w io.Writer, rows []Row) error {
	t := newTable(w, nodeColumns, 0, 1)
	cells := make([][]string, len(rows))
	for i, row := range rows {
		cells[i] = nodeCells(row)
	}
	if err := t.Bulk(cells); err != nil {
		return err
	}
	return t.Render()
}
