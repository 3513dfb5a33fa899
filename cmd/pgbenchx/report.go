package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
)

// writeRunFolder writes a run's files into dir, then shows its table and
// what was written.
func writeRunFolder(out io.Writer, dir string, res *metrics.Result, formats []string) error {
	files, err := report.WriteRun(dir, res, formats)
	if err != nil {
		return err
	}
	_ = report.WriteTable(out, res)
	for _, f := range files {
		fmt.Fprintf(out, "wrote %s\n", f)
	}
	return nil
}

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "re-render a stored run from its run.json",
		ArgsUsage: "RUN_FOLDER",
		Description: `Reads RUN_FOLDER/run.json (its histograms are stored whole, so every
percentile is recomputed exactly) and writes the chosen files again, then
prints the terminal table.

With --threshold it re-judges the stored run instead, exactly as run judged
it: it prints the table and a verdict per condition, and exits 3 when one
fails. It then writes no file unless --format is given too.

Examples:
  pgbenchx report results/20261125-210000-lag-aware
  pgbenchx report results/20261125-210000-lag-aware --format md
  pgbenchx report results/20261125-210000-lag-aware --threshold "p99<5ms,stale<1%,errors=0"

` + thresholdHelp(false),
		Flags: []cli.Flag{
			formatFlag("md,csv"),
			thresholdFlag("re-judge the run: conditions that must hold, exit 3 when one fails, e.g. \"p99<5ms,stale<1%,errors=0\" (see below)"),
		},
		Action: func(_ context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() != 1 {
				return &input.Error{Flag: "RUN_FOLDER", Value: "", Accepted: "give exactly one run folder, e.g. pgbenchx report results/<run>"}
			}
			dir := cmd.Args().First()
			formats, err := report.ParseFormats(cmd.String("format"))
			if err != nil {
				return err
			}
			gates, err := parseThresholds(cmd)
			if err != nil {
				return err
			}
			runs, err := loadRuns([]string{dir})
			if err != nil {
				return err
			}
			res, out := runs[0].Result, cmd.Root().Writer
			if cmd.IsSet(thresholdFlagName) && !cmd.IsSet("format") {
				_ = report.WriteTable(out, res)
			} else if err := writeRunFolder(out, dir, res, formats); err != nil {
				return err
			}
			return checkGates(out, report.CheckRun(res, gates))
		},
	}
}
