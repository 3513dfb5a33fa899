package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
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

` + thresholdHelp(true),
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "standbys", Value: "1,2", Usage: "standby counts to compare, e.g. 1,2 or 1,2,3"},
			&cli.IntFlag{Name: "repeat", Value: 1, Usage: "runs per cell; 3 or more give spreads and a significance test"},
			&cli.StringFlag{Name: "cpus", Usage: "CPU cap per node in cores, 0.5 or primary=1,standby1=0.5 (root, cgroups)"},
			&cli.BoolFlag{Name: "fast", Usage: "fsync off (tests and CI only; numbers are not durable ones)"},
			&cli.StringSliceFlag{Name: "apply-delay", Usage: "recovery_min_apply_delay for a standby, e.g. standby2=500ms (where it exists)"},
			thresholdFlag("conditions every cell must meet, exit 3 when one fails, e.g. \"scaling>1.5,p99<5ms\" (see below)"),
		}, workloadFlags()...),
		Action: matrixAction,
	}
}

func parseCounts(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > env.MaxStandbys || seen[n] {
			return nil, &input.Error{Flag: "standbys", Value: s, Accepted: fmt.Sprintf("want distinct standby counts from 1 to %d, comma-separated, e.g. 1,2", env.MaxStandbys)}
		}
		seen[n] = true
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

func matrixAction(ctx context.Context, cmd *cli.Command) error {
	plan, err := parseRunFlags(cmd)
	if err != nil {
		return err
	}
	// A comparison's thresholds (scaling among them), whatever
	// parseRunFlags made of the flag.
	gates, err := parseThresholds(cmd)
	if err != nil {
		return err
	}
	counts, err := parseCounts(cmd.String("standbys"))
	if err != nil {
		return err
	}
	repeat := int(cmd.Int("repeat"))
	if repeat < 1 || repeat > 20 {
		return &input.Error{Flag: "repeat", Value: fmt.Sprint(repeat), Accepted: "want 1 to 20"}
	}
	cpus, err := env.ParseCPUs(cmd.String("cpus"))
	if err != nil {
		return err
	}
	delays, err := env.ParseApplyDelays(cmd.StringSlice("apply-delay"))
	if err != nil {
		return err
	}
	out := cmd.Root().Writer
	dir := filepath.Join(plan.out, time.Now().UTC().Format("20060102-150405")+"-matrix")
	if cmd.IsSet("label") {
		dir += "-" + plan.label
	}
	var samples []report.Sample
	var runErr error
cells:
	for _, n := range counts {
		for rep := 1; rep <= repeat; rep++ {
			spec := env.Spec{
				Name: fmt.Sprintf("matrix%d-s%d", os.Getpid()%100000, n), Standbys: n, Fast: cmd.Bool("fast"),
				CPUs: cpus, ApplyDelay: map[string]time.Duration{},
			}
			for node, d := range delays { // a delay for a standby this count lacks is left out
				if i, _ := strconv.Atoi(strings.TrimPrefix(node, "standby")); i <= n {
					spec.ApplyDelay[node] = d
				}
			}
			cellPlan := *plan
			cellPlan.cfg.Strategies = strategyOrder(plan.cfg.Strategies, rep)
			fmt.Fprintf(out, "\n=== %d standby(s), run %d of %d: %s ===\n", n, rep, repeat, strings.Join(cellPlan.cfg.Strategies, ", "))
			res, err := matrixCell(ctx, spec, &cellPlan, out)
			if res != nil {
				for _, cell := range splitByStrategy(res) {
					name := fmt.Sprintf("s%d-%s-r%d", n, cell.Strategies[0].Strategy, rep)
					if _, werr := report.WriteRun(filepath.Join(dir, name), cell, plan.formats); werr != nil {
						return fmt.Errorf("writing %s: %w", name, werr)
					}
					samples = append(samples, report.Sample{Label: name, Dir: name, Result: cell})
				}
			}
			if err != nil {
				runErr = err
				break cells
			}
		}
	}
	if len(samples) == 0 {
		return runErr
	}
	gateErr := writeComparison(out, dir, samples, gates)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return cli.Exit("interrupted: the comparison covers the cells measured before Ctrl-C", 130)
		}
		return runErr
	}
	return gateErr
}

// strategyOrder is the order repeat rep (from 1) runs the strategies in:
// the list rotated left by rep-1, so each strategy in turn goes first on
// a fresh env and meets its cold cache. Cells are keyed by strategy, so
// the comparison does not depend on the order.
func strategyOrder(strategies []string, rep int) []string {
	n := len(strategies)
	if n == 0 {
		return nil
	}
	k := ((rep-1)%n + n) % n
	return append(slices.Clone(strategies[k:]), strategies[:k]...)
}

// matrixCell builds a fresh env, runs every strategy on it and removes it.
func matrixCell(ctx context.Context, spec env.Spec, plan *runPlan, out io.Writer) (*metrics.Result, error) {
	p := env.NewLocal()
	t0 := time.Now()
	c, err := p.Up(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := p.Down(context.WithoutCancel(ctx), c.Name); err != nil {
			fmt.Fprintf(out, "env down: %v\n", err)
		}
	}()
	fmt.Fprintf(out, "env up in %.2fs\n", time.Since(t0).Seconds())
	tgt := &target{cluster: c}
	describeCluster(tgt, c)
	return measure(ctx, tgt, plan, out)
}

// splitByStrategy makes one Result per strategy, each a cell of its own
// that shares the run's environment and write phase.
func splitByStrategy(r *metrics.Result) []*metrics.Result {
	var out []*metrics.Result
	for _, s := range r.Strategies {
		cell := *r
		cell.Strategies = []*metrics.StrategyResult{s}
		cell.Config.Strategies = []string{s.Strategy}
		cell.Label = s.Strategy
		out = append(out, &cell)
	}
	return out
}

// writeComparison writes comparison.md, comparison.csv and charts into
// dir, prints the table, and checks gates.
func writeComparison(out io.Writer, dir string, samples []report.Sample, gates []report.Gate) error {
	cmp, err := report.Compare(samples)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var charts []string
	if svg, err := report.ScalingChart(cmp.Points()); err == nil && len(svg) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "scaling.svg"), svg, 0o644); err == nil {
			charts = append(charts, "scaling.svg")
		}
	}
	files := map[string]func(f *os.File) error{
		"comparison.md":  func(f *os.File) error { return cmp.WriteMarkdown(f, charts) },
		"comparison.csv": func(f *os.File) error { return cmp.WriteCSV(f) },
	}
	for _, name := range []string{"comparison.md", "comparison.csv"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		werr := files[name](f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("%s: %w", name, werr)
		}
	}
	fmt.Fprintln(out)
	_ = cmp.WriteTable(out)
	fmt.Fprintf(out, "\ncomparison: %s\n", filepath.Join(dir, "comparison.md"))
	return checkGates(out, cmp.Check(gates))
}

// describeCluster fills a target from a local env.
func describeCluster(t *target, c *env.Cluster) {
	t.environment = metrics.Environment{
		Provider: c.Provider, Name: c.Name, ServerVersion: c.ServerVersion, Standbys: len(c.Standbys),
		Topology: string(c.Topology), Fast: c.Fast, Cores: runtime.NumCPU(), ApplyDelays: map[string]string{},
	}
	if caps := env.CPUCaps(c); len(caps) > 0 {
		t.environment.CPUCaps = caps
	}
	for _, st := range c.Settings {
		t.environment.Settings = append(t.environment.Settings, st.Key+"="+st.Value)
	}
	for _, n := range c.Nodes() {
		t.nodes = append(t.nodes, workload.Node{Name: n.Name, Role: string(n.Role), DSN: n.DSN()})
		t.environment.Nodes = append(t.environment.Nodes, metrics.NodeInfo{Name: n.Name, Role: string(n.Role), DSN: n.RedactedDSN()})
		if n.ApplyDelay > 0 {
			t.environment.ApplyDelays[n.Name] = n.ApplyDelay.String()
			t.maxApplyDelay = max(t.maxApplyDelay, n.ApplyDelay)
		}
	}
	if h, err := os.Hostname(); err == nil {
		t.environment.Host = h
	}
}
