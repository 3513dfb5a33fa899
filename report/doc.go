// Package report renders Results: terminal tables, Markdown, CSV, JSON and
// charts, and compares runs side by side.
//
// Every latency figure is taken from a histogram, merged first when it
// covers several nodes or query kinds: percentiles cannot be averaged, and
// a capacity review that compares runs needs figures that mean the same
// thing in every file. Rows is the one place the per strategy x node
// figures are computed; the CSV, Markdown and terminal renderers only
// format them, so the files of one run never disagree with each other.
//
// A run folder holds run.json (the Result itself, from which every other
// file can be rendered again), summary.csv, totals.csv, timeseries.csv,
// report.md and the SVG charts report.md links (WriteCharts).
// WriteRun writes each through a temporary file and a rename, so an
// interrupted run leaves whole files or none.
//
// Unknown values (a lag sample a standby did not answer, a percentile of a
// node that served no query) stay unknown: empty CSV cells and "-" in
// Markdown and on the terminal, never a 0 that reads as "no lag".
package report
