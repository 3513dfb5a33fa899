package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
)

// loadRuns reads run.json from each folder; a missing or unreadable one is
// bad input, named in one line.
func loadRuns(dirs []string) ([]report.Sample, error) {
	var out []report.Sample
	for _, d := range dirs {
		r, err := metrics.Load(filepath.Join(d, "run.json"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &input.Error{Flag: "RUN_FOLDER", Value: d, Accepted: "holds no run.json (give folders written by pgbenchx run or matrix)"}
		}
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", d, err)}
		}
		out = append(out, report.Sample{Label: filepath.Base(d), Dir: d, Result: r})
	}
	return out, nil
}

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "put stored runs side by side: strategies, standby counts, clusters",
		ArgsUsage: "RUN_FOLDER RUN_FOLDER [RUN_FOLDER ...]",
		Description: `Reads each folder's run.json and compares them: any mix of strategies and
standby counts, also runs made on different clusters. Percentiles are
recomputed from the stored histograms (merged, never averaged). Prints a
table and writes comparison.md and comparison.csv under --out. When the
runs' workloads or settings differ (clients, rate, mix, query file, scale,
write rate, duration, CPU caps, server settings and version, provider,
fsync), the table warns and comparison.md lists what differs in which runs.
Open-loop runs (--rate) get no read-scaling factor: --rate sets their QPS.

Examples:
  pgbenchx compare results/A results/B
  pgbenchx compare results/<time>-matrix/s1-* results/<time>-matrix/s2-* --threshold "scaling>1.5"
  pgbenchx compare results/A results/B --threshold "lag-aware:p99<5ms,standby2:stale<1%"

` + thresholdHelp(true),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "folder for comparison.md and comparison.csv (default: results/<time>-compare)"},
			thresholdFlag("conditions every cell must meet, exit 3 when one fails, e.g. \"scaling>1.5,p99<5ms\" (see below)"),
		},
		Action: func(_ context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() < 2 {
				return &input.Error{Flag: "RUN_FOLDER", Value: "", Accepted: "give at least two run folders to compare"}
			}
			gates, err := parseThresholds(cmd)
			if err != nil {
				return err
			}
			samples, err := loadRuns(cmd.Args().Slice())
			if err != nil {
				return err
			}
			dir := cmd.String("out")
			if dir == "" {
				dir = report.FolderFor("results", "compare")
			}
			// Links in comparison.md are relative to it.
			for i := range samples {
				if rel, err := filepath.Rel(dir, samples[i].Dir); err == nil {
					samples[i].Dir = rel
				}
			}
			cmp, err := report.Compare(samples)
			if err != nil {
				return err
			}
			if _, err := report.WriteComparison(dir, cmp); err != nil {
				return err
			}
			out := cmd.Root().Writer
			fmt.Fprintln(out)
			_ = cmp.WriteTable(out)
			fmt.Fprintf(out, "\ncomparison: %s\n", filepath.Join(dir, "comparison.md"))
			return checkGates(out, cmp.Check(gates))
		},
	}
}
