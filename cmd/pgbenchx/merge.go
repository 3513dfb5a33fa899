package main

import (
	"context"
	"errors"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "combine runs made by several load generators at once into one run",
		ArgsUsage: "RUN_FOLDER RUN_FOLDER [RUN_FOLDER ...]",
		Description: `For a cluster bigger than one load-generator machine can drive: run the same
workload from several machines at once against one cluster, then merge their
run folders. Histograms are added exactly, counters summed.

Example:
  pgbenchx merge hostA/results/R hostB/results/R --out results/merged`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "folder for the merged run (default: results/<time>-merged)"},
			formatFlag("md,csv,json"),
		},
		Action: func(_ context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() < 2 {
				return &input.Error{Flag: "RUN_FOLDER", Value: "", Accepted: "give at least two run folders to merge"}
			}
			formats, err := report.ParseFormats(cmd.String("format"))
			if err != nil {
				return err
			}
			samples, err := loadRuns(cmd.Args().Slice())
			if err != nil {
				return err
			}
			var results []*metrics.Result
			for _, s := range samples {
				results = append(results, s.Result)
			}
			merged, err := metrics.Merge(results...)
			if err != nil {
				return usageError{errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))}
			}
			dir := cmd.String("out")
			if dir == "" {
				dir = report.FolderFor("results", "merged")
			}
			return writeRunFolder(cmd.Root().Writer, dir, merged, formats)
		},
	}
}
