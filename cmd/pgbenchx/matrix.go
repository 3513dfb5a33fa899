package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/workload"
)

func matrixCommand() *cli.Command {
	return &cli.Command{
		Name:  "matrix",
		Usage: "every standby count x strategy with the same workload: what a second standby buys",
		Description: `For each standby count, builds a fresh local env (same settings, same data
size, same workload, fresh for every repeat so no run inherits another's
data or cache), runs every strategy in turn, and writes one folder holding a
run folder per cell (standby count x strategy x repeat) plus comparison.md,
comparison.csv and charts. Repeat r runs the strategies in their order
rotated by r-1, so the first strategy does not always meet the cold cache.
The comparison gives the read-scaling factor (QPS with N standbys / QPS with
the fewest) per strategy; with --repeat 3 or more every delta carries its
spread and a significance test. Open-loop runs (--rate) get no factor:
--rate, not the cluster, sets their QPS.

On one host every node shares the same cores, so adding a standby cannot
add read capacity: cap each node with --cpus to model separate machines, or
run against a real cluster.

Examples:
  pgbenchx matrix --standbys 1,2 --strategies all
  pgbenchx matrix --standbys 1,2 --strategies round-robin,lag-aware --cpus 0.5 --repeat 3
  pgbenchx matrix --standbys 1,2,3 --strategies least-conn --duration 20s --threshold "scaling>1.5"
  pgbenchx matrix --standbys 1,2 --strategies all --threshold "lag-aware:p99<5ms,standby2:stale<1%"
  pgbenchx matrix --standbys 2 --strategies causal --write-rate 500 --sync 'off,ANY 1 (standby1, standby2)' --commit on,remote_apply

Replication modes: --sync takes synchronous_standby_names rules and --commit
synchronous_commit levels, comma-separated (commas inside parentheses belong
to a rule); every rule x every level is a mode, and every mode gets the same
cells. A cell with fewer standbys runs the rule without the standbys it lacks
(ANY 1 (standby1, standby2) is ANY 1 (standby1) with 1 standby). comparison.md
then shows per mode what sync costs (commit latency, write throughput) and
what it buys (stale reads, read-your-writes violations of causal reads).

` + thresholdHelp(true),
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "standbys", Value: "1,2", Usage: "standby counts to compare, e.g. 1,2 or 1,2,3"},
			&cli.IntFlag{Name: "repeat", Value: 1, Usage: "runs per cell; 3 or more give spreads and a significance test"},
			&cli.StringFlag{Name: "provider", Value: "local", Usage: "what builds each cell's env"},
			cpusFlag(),
			memoryFlag(),
			imageFlag(),
			fastFlag(),
			applyDelayFlag(),
			&cli.StringFlag{Name: "sync", Usage: "replication modes: synchronous_standby_names rules to compare, e.g. 'off,ANY 1 (standby1, standby2)' (default off: asynchronous)"},
			&cli.StringFlag{Name: "commit", Value: "on", Usage: "the writers' synchronous_commit levels to compare: on, remote_write, remote_apply, local, off, e.g. on,remote_apply"},
			thresholdFlag("conditions every cell must meet, exit 3 when one fails, e.g. \"scaling>1.5,p99<5ms\" (see below)"),
		}, append(netFlags(), workloadFlags()...)...),
		Action: matrixAction,
	}
}

func matrixAction(ctx context.Context, cmd *cli.Command) error {
	cfg, err := parseConfig(cmd)
	if err != nil {
		return err
	}
	counts, err := bench.ParseCounts(cmd.String("standbys"))
	if err != nil {
		return err
	}
	m := bench.Matrix{Config: cfg, Standbys: counts, Repeat: int(cmd.Int("repeat"))}
	if m.Syncs, err = env.ParseSyncs(cmd.String("sync")); err != nil {
		return err
	}
	for _, level := range input.SplitList(cmd.String("commit")) {
		if _, err := workload.ParseCommit(level); err != nil {
			return err
		}
		m.Commits = append(m.Commits, level)
	}
	m.Target.Provider = cmd.String("provider")
	if !cmd.IsSet("label") {
		m.Output.Label = ""
		m.Config.Output.Label = ""
	}
	out := cmd.Root().Writer
	m.Config.Command = commandLine(ctx)
	prog, err := progressFor(cmd)
	if err != nil {
		return err
	}
	o, runErr := bench.RunMatrix(ctx, m, bench.Hooks{
		Hooks: workload.Hooks{Phase: prog.phase, Write: prog.write, Live: prog.live},
		Say:   func(msg string) { fmt.Fprintln(out, msg) },
	})
	if o == nil || o.Comparison == nil {
		return runErr
	}
	fmt.Fprintln(out)
	_ = o.Comparison.WriteTable(out)
	fmt.Fprintf(out, "\ncomparison: %s\n", filepath.Join(o.Dir, "comparison.md"))
	return conclude(out, runErr, o.Verdicts, o.Interrupted, "the comparison covers the cells")
}
