package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/workload"
)

func capacityCommand() *cli.Command {
	return &cli.Command{
		Name:  "capacity",
		Usage: "reads/s at an SLO, per standby count: the capacity review's headline",
		Description: `For each standby count (a fresh env each, same settings and data) and
strategy, finds the highest open-loop rate whose measured step meets the
SLO: a ramp doubling from --start-rate brackets it, then a bisection narrows
the bracket to --precision. Each step runs --step-warmup then
--step-duration at one rate, latency counted from each read's due time (no
coordinated omission); a step also fails when the cluster served under 90%
of the offered rate. Writes capacity.md, capacity.csv, capacity.json and
two charts (latency percentiles vs offered rate: the knee, SLO drawn; and
capacity per standby count) under --out, and prints the headline:

  capacity at p99<5ms: 1 standby 12.1k reads/s, 2 standbys 23.4k (1.93x)

On one host every node and the load generator share the cores: uncapped,
the search finds the host's limit as much as the cluster's. Cap each node
with --cpus to model separate machines (a CFS quota throttles a node for
the rest of its 100 ms period once spent: on capped nodes the p99 knee sits
where throttling starts; capacity.md shows the throttled time per step).

Examples:
  pgbenchx capacity --standbys 1,2 --cpus 0.5 --slo "p99<5ms"
  pgbenchx capacity --standbys 1,2,3 --strategies round-robin,lag-aware --slo "p99<5ms,errors<0.1%,stale<1%"
  pgbenchx capacity --standbys 1,2 --cpus 0.25 --slo "p99<10ms" --step-duration 5s --precision 0.1 -f lookup.sql

The SLO takes --threshold's syntax (see pgbenchx run --help): conditions
on p50/p90/p99/p999/max, errors, stale, lag, judged on each step.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "standbys", Value: "1,2", Usage: "standby counts to compare, e.g. 1,2 or 1,2,3"},
			&cli.StringFlag{Name: "slo", Value: "p99<5ms", Usage: "what a step must meet, --threshold's syntax, e.g. \"p99<5ms,errors<0.1%,stale<1%\""},
			&cli.StringFlag{Name: "precision", Value: "5%", Usage: "stop when the bracket is this narrow, relative to the rate found: 5% or 0.05"},
			&cli.StringFlag{Name: "step-duration", Value: "10s", Usage: "measured time of each step, e.g. 10s or 10"},
			&cli.StringFlag{Name: "step-warmup", Value: "1s", Usage: "load at the step's rate before it is measured"},
			&cli.FloatFlag{Name: "start-rate", Value: 1000, Usage: "the ramp's first rate, reads/s (halved while steps fail, doubled while they pass)"},
			&cli.FloatFlag{Name: "max-rate", Value: 1e6, Usage: "the ramp's ceiling, reads/s"},
			&cli.IntFlag{Name: "max-steps", Value: 20, Usage: "steps per search at most"},
			&cli.BoolFlag{Name: "keep-steps", Usage: "write each step's run folder under steps/"},
			&cli.StringFlag{Name: "provider", Value: "local", Usage: "what builds each env"},
			cpusFlag(),
			memoryFlag(),
			imageFlag(),
			fastFlag(),
			applyDelayFlag(),
		}, append(netFlags(), capacityWorkloadFlags()...)...),
		Action: capacityAction,
	}
}

// capacityWorkloadFlags are run's workload flags but those a search sets
// per step (duration, warmup, rate) and progress (it prints per step).
func capacityWorkloadFlags() []cli.Flag {
	skip := []string{"duration", "warmup", "rate", "progress", "quiet"}
	var out []cli.Flag
	for _, f := range workloadFlags() {
		if !slices.Contains(skip, f.Names()[0]) {
			out = append(out, f)
		}
	}
	return out
}

func capacityAction(ctx context.Context, cmd *cli.Command) error {
	cfg, err := parseConfig(cmd)
	if err != nil {
		return err
	}
	c := bench.Capacity{Config: cfg, SLOText: cmd.String("slo"), KeepSteps: cmd.Bool("keep-steps"),
		StartRate: cmd.Float("start-rate"), MaxRate: cmd.Float("max-rate"), MaxSteps: int(cmd.Int("max-steps"))}
	if c.Standbys, err = bench.ParseCounts(cmd.String("standbys")); err != nil {
		return err
	}
	if c.SLO, err = report.ParseGates(c.SLOText, report.GateOnRun); err != nil {
		var bad *input.Error
		if errors.As(err, &bad) {
			bad.Flag = "slo" // ParseGates names --threshold
		}
		return err
	}
	if c.Precision, err = parseFraction("precision", cmd.String("precision")); err != nil {
		return err
	}
	if c.StepDuration, err = parseSeconds("step-duration", cmd.String("step-duration")); err != nil {
		return err
	}
	if c.StepWarmup, err = parseSeconds("step-warmup", cmd.String("step-warmup")); err != nil {
		return err
	}
	if c.MaxSteps < 1 {
		return input.Bad("max-steps", fmt.Sprint(c.MaxSteps), "want 1 or more")
	}
	if c.StartRate <= 0 || c.MaxRate <= 0 {
		return input.Bad("start-rate", fmt.Sprint(c.StartRate), "want rates above 0 (--start-rate at most --max-rate)")
	}
	c.Target.Provider = cmd.String("provider")
	if !cmd.IsSet("label") {
		c.Output.Label = ""
	}
	c.Command = commandLine(ctx)
	if err := c.Validate(); err != nil {
		return err
	}
	out := cmd.Root().Writer
	o, runErr := bench.RunCapacity(ctx, c, bench.Hooks{
		Hooks: workload.Hooks{},
		Say:   func(msg string) { fmt.Fprintln(cmd.Root().ErrWriter, msg) },
	})
	if o == nil {
		return runErr
	}
	fmt.Fprintln(out)
	for _, line := range o.Headline {
		fmt.Fprintln(out, line)
	}
	if r := o.Result; r.Colocated && len(r.CPUCaps) == 0 {
		fmt.Fprintf(out, "(uncapped on one host: the load generator and every node shared %d cores, so this is the host's limit as much as the cluster's; --cpus models separate machines)\n", r.Cores)
	}
	printFiles(out, o.Dir, o.Files)
	return conclude(out, runErr, nil, o.Interrupted, "the capacity above covers the steps")
}

// parseFraction reads 5% or 0.05.
func parseFraction(flag, s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if pct {
		f /= 100
	}
	if err != nil || f <= 0 || f >= 1 {
		return 0, input.Bad(flag, s, "want a fraction between 0 and 1: 5% or 0.05")
	}
	return f, nil
}
