package main

import (
	"fmt"
	"io"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/report"
)

// renderTable prints a table whose first columns (names) read left to
// right and the rest (figures) right-aligned.
func renderTable(w io.Writer, header []string, rows [][]string) {
	_ = report.Table(w, header, rows, 0, 1)
}

func printStatus(w io.Writer, c *env.Cluster, st []env.NodeStatus) {
	rows := [][]string{}
	var errs []string
	for _, s := range st {
		row := []string{s.Node, string(s.Role), fmt.Sprint(s.Port), boolPtr(s.InRecovery), report.OrDash(s.State),
			report.OrDash(s.SentLSN), report.OrDash(firstNonEmpty(s.WALLSN, s.ReplayLSN)), bytesPtr(s.LagBytes), msPtr(s.ReplayLagMS), boolPtr(s.SlotActive), bytesPtr(s.SlotRetainedBytes)}
		if s.Role == env.RolePrimary {
			row[4], row[5], row[6] = "-", "-", report.OrDash(s.WALLSN)+" (current)"
		}
		if s.Error != "" {
			errs = append(errs, s.Error)
		}
		rows = append(rows, row)
	}
	fmt.Fprintf(w, "%s, PostgreSQL %s\n", c, c.ServerVersion)
	renderTable(w, []string{"node", "role", "port", "in recovery", "state", "sent lsn", "replay lsn", "lag bytes", "lag time", "slot active", "slot retained"}, rows)
	for _, e := range errs {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func boolPtr(b *bool) string {
	if b == nil {
		return "-"
	}
	if *b {
		return "yes"
	}
	return "no"
}

func bytesPtr(n *int64) string {
	if n == nil {
		return "-"
	}
	return env.FormatBytes(*n)
}

func msPtr(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", *f)
}

// printFiles names the folder a command wrote and its files.
func printFiles(out io.Writer, dir string, files []string) {
	if len(files) == 0 {
		return
	}
	fmt.Fprintf(out, "\nreport: %s\n", dir)
	for _, f := range files {
		fmt.Fprintf(out, "  %s\n", f)
	}
}
