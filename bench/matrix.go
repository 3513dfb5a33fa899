package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

// Matrix is the standby-count comparison: every count in Standbys times
// every strategy of Config's workload, Repeat times, each on a fresh env
// built by Config.Target.Provider from Config.Target.Spec (its CPUs, Fast,
// ApplyDelay and Settings; Name and Standbys are set per cell).
type Matrix struct {
	Config
	Standbys []int
	Repeat   int
	// Syncs and Commits are the replication modes compared: every rule
	// (synchronous_standby_names, each cell's env gets it with the
	// standbys it lacks left out) times every synchronous_commit level.
	// Empty: the one of Config (Target.Spec.Sync, Workload.Commit).
	Syncs   []env.SyncRule
	Commits []string
}

// Mode is one replication mode of a matrix: the primary's rule and the
// writers' synchronous_commit.
type Mode struct {
	Sync   env.SyncRule
	Commit string
}

// String names the mode as the progress lines and folders read it.
func (m Mode) String() string {
	sync := "async"
	if s := m.Sync.String(); s != "" {
		sync = "sync " + s
	}
	return sync + ", commit " + m.Commit
}

// slug names the mode in a folder name: async-on, any1-s1.2-remote_apply
// (ANY 1 (standby1, standby2)): the rule as the matrix was given it.
func (m Mode) slug() string {
	sync := "async"
	if len(m.Sync.Names) > 0 {
		nums := make([]string, len(m.Sync.Names))
		for i, n := range m.Sync.Names {
			nums[i] = strings.TrimPrefix(n, "standby")
		}
		sync = strings.ToLower(m.Sync.Method) + strconv.Itoa(m.Sync.Num) + "-s" + strings.Join(nums, ".")
	}
	return sync + "-" + m.Commit
}

// Modes is every rule times every level, rules first.
func (m *Matrix) Modes() []Mode {
	syncs, commits := m.Syncs, m.Commits
	if len(syncs) == 0 {
		syncs = []env.SyncRule{m.Target.Spec.Sync}
	}
	if len(commits) == 0 {
		commits = []string{m.Workload.Commit}
	}
	var out []Mode
	for _, s := range syncs {
		for _, c := range commits {
			out = append(out, Mode{Sync: s, Commit: c})
		}
	}
	return out
}

// MatrixOutcome is what a matrix left: one run folder per cell (standby
// count x strategy x repeat) and the comparison over them.
type MatrixOutcome struct {
	Dir         string
	Comparison  *report.Comparison
	Verdicts    []report.Verdict
	Interrupted bool
}

// ThresholdFailed says whether a threshold did not hold.
func (o *MatrixOutcome) ThresholdFailed() bool {
	for _, v := range o.Verdicts {
		if !v.Pass {
			return true
		}
	}
	return false
}

// Validate checks the matrix's own settings and its Config.
func (m *Matrix) Validate() error {
	if len(m.Standbys) == 0 {
		return input.Bad("standbys", "", "want distinct standby counts from 1 to %d, comma-separated, e.g. 1,2", env.MaxStandbys)
	}
	seen := map[int]bool{}
	for _, n := range m.Standbys {
		if n < 1 || n > env.MaxStandbys || seen[n] {
			return input.Bad("standbys", fmt.Sprint(n), "want distinct standby counts from 1 to %d, comma-separated, e.g. 1,2", env.MaxStandbys)
		}
		seen[n] = true
	}
	slices.Sort(m.Standbys)
	if m.Repeat < 1 || m.Repeat > 20 {
		return input.Bad("repeat", fmt.Sprint(m.Repeat), "want 1 to 20")
	}
	if m.Target.External() {
		return input.Bad("primary", "", "a matrix builds its own envs: it takes no --primary/--standby")
	}
	if err := noViaWithoutEndpoint(m.Workload.Strategies, "matrix"); err != nil {
		return err
	}
	if m.Target.Provider == "" {
		m.Target.Provider = "local"
	}
	seen2 := map[string]bool{}
	for _, c := range m.Commits {
		if !slices.Contains(workload.CommitLevels, c) || seen2[c] {
			return input.Bad("commit", strings.Join(m.Commits, ","), "want distinct levels of %s, comma-separated (synchronous_commit)", strings.Join(workload.CommitLevels, ", "))
		}
		seen2[c] = true
	}
	// The largest cell's env, so every flag naming a standby is checked
	// against the most standbys any cell has.
	m.Target.Spec.Standbys = m.Standbys[len(m.Standbys)-1]
	for _, r := range m.Syncs {
		spec := m.Target.Spec
		spec.Sync = r
		if err := spec.Validate(); err != nil {
			return err
		}
	}
	return m.Config.Validate()
}

// ParseCounts reads --standbys for a matrix: "1,2" or "1,2,3".
func ParseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > env.MaxStandbys || slices.Contains(out, n) {
			return nil, input.Bad("standbys", s, "want distinct standby counts up to %d, comma-separated, e.g. 1,2", env.MaxStandbys)
		}
		out = append(out, n)
	}
	return out, nil
}

// RunMatrix runs every cell, writes a run folder per cell and the
// comparison, and checks the thresholds on the comparison. It stops at
// the first cell that fails (or at ctx's end) and still writes the
// comparison of the cells measured.
func RunMatrix(ctx context.Context, m Matrix, hooks Hooks) (*MatrixOutcome, error) {
	label := "matrix"
	if m.Output.Label != "" { // given, not defaulted by Validate
		label += "-" + m.Output.Label
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p, err := env.Lookup(m.Target.Provider, env.Options{Image: m.Target.Image})
	if err != nil {
		return nil, err
	}
	o := &MatrixOutcome{Dir: report.FolderFor(m.Output.Dir, label)}
	var samples []report.Sample
	var runErr error
	modes := m.Modes()
cells:
	for _, mode := range modes {
		for _, n := range m.Standbys {
			for rep := 1; rep <= m.Repeat; rep++ {
				cell := m.Config
				cell.Workload.Strategies = StrategyOrder(m.Workload.Strategies, rep)
				cell.Workload.Commit = mode.Commit
				spec := cellSpec(m.Target.Spec, n)
				spec.Sync = mode.Sync.For(n)
				names := make([]string, len(cell.Workload.Strategies))
				for i, s := range cell.Workload.Strategies {
					names[i] = string(s)
				}
				what := fmt.Sprintf("%d standby(s)", n)
				if len(modes) > 1 {
					what += ", " + Mode{Sync: spec.Sync, Commit: mode.Commit}.String()
				}
				hooks.say(fmt.Sprintf("\n=== %s, run %d of %d: %s ===", what, rep, m.Repeat, strings.Join(names, ", ")))
				res, err := matrixCell(ctx, p, spec, cell, hooks)
				if res != nil {
					for _, one := range splitByStrategy(res) {
						one.Config.Mode = mode.String()
						name := fmt.Sprintf("s%d-%s-r%d", n, one.Strategies[0].Strategy, rep)
						if len(modes) > 1 {
							name = fmt.Sprintf("s%d-%s-%s-r%d", n, mode.slug(), one.Strategies[0].Strategy, rep)
						}
						if _, werr := report.WriteRun(filepath.Join(o.Dir, name), one, m.Output.Formats); werr != nil {
							return o, fmt.Errorf("writing %s: %w", name, werr)
						}
						samples = append(samples, report.Sample{Label: name, Dir: name, Result: one})
					}
				}
				if err != nil {
					runErr = err
					break cells
				}
			}
		}
	}
	if len(samples) == 0 {
		return nil, runErr
	}
	if o.Comparison, err = report.Compare(samples); err != nil {
		return o, err
	}
	if _, err := report.WriteComparison(o.Dir, o.Comparison); err != nil {
		return o, err
	}
	if errors.Is(runErr, context.Canceled) {
		o.Interrupted = true
		runErr = nil
	}
	if runErr == nil {
		o.Verdicts = o.Comparison.Check(m.Thresholds)
	}
	return o, runErr
}

// cellSpec is the env of one cell: the matrix's settings with n standbys,
// under a name of its own; an apply delay for a standby this count lacks
// is left out.
func cellSpec(base env.Spec, n int) env.Spec {
	spec := base
	spec.Name = fmt.Sprintf("matrix%d-s%d", os.Getpid()%100000, n)
	spec.Standbys = n
	spec.ApplyDelay = map[string]time.Duration{}
	for node, d := range base.ApplyDelay {
		if i, _ := strconv.Atoi(strings.TrimPrefix(node, "standby")); i <= n {
			spec.ApplyDelay[node] = d
		}
	}
	spec.NetLinks = map[string]env.Link{}
	for node, l := range base.NetLinks {
		if i, _ := strconv.Atoi(strings.TrimPrefix(node, "standby")); i <= n {
			spec.NetLinks[node] = l
		}
	}
	return spec
}

// StrategyOrder is the order repeat rep (from 1) runs the strategies in:
// the list rotated left by rep-1, so each strategy in turn goes first on
// a fresh env and meets its cold cache. Cells are keyed by strategy, so
// the comparison does not depend on the order.
func StrategyOrder(strategies []routing.Strategy, rep int) []routing.Strategy {
	n := len(strategies)
	if n == 0 {
		return nil
	}
	k := ((rep-1)%n + n) % n
	return append(slices.Clone(strategies[k:]), strategies[:k]...)
}

// matrixCell builds a fresh env, runs every strategy on it and removes it.
func matrixCell(ctx context.Context, p env.Provider, spec env.Spec, cfg Config, hooks Hooks) (*metrics.Result, error) {
	t0 := time.Now()
	c, err := p.Up(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := p.Down(context.WithoutCancel(ctx), c.Name); err != nil {
			hooks.say(fmt.Sprintf("env down: %v", err))
		}
	}()
	hooks.say(fmt.Sprintf("env up in %.2fs", time.Since(t0).Seconds()))
	target := Describe(c)
	if cfg.Target.Socket {
		if err := target.ViaSockets(); err != nil {
			return nil, err
		}
	}
	return Measure(ctx, target, cfg, hooks)
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
