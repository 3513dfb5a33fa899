package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
)

// Sweep repeats a run at several load levels on one cluster: run
// --clients 4,8,16,32 (Dimension "clients") or --rate 2000,4000,8000
// ("rate"). Every level runs every strategy with the same workload; each
// level's run folder sits in the sweep's folder beside sweep.md, which
// puts every strategy x level in one table.
type Sweep struct {
	Dimension string    // "clients" or "rate"
	Levels    []float64 // in the order given
}

// ParseLevels reads a flag that takes one value or a comma-separated
// sweep of them: "16" or "4,8,16,32".
func ParseLevels(flag, s string) ([]float64, error) {
	var out []float64
	for _, item := range input.SplitList(s) {
		f, err := strconv.ParseFloat(item, 64)
		if err != nil {
			return nil, input.Bad(flag, s, "want a number, or a comma-separated sweep such as 4,8,16,32")
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, input.Bad(flag, s, "want a number, or a comma-separated sweep such as 4,8,16,32")
	}
	return out, nil
}

// at is cfg at one level of the sweep.
func (s *Sweep) at(cfg Config, level float64) Config {
	if s.Dimension == "clients" {
		cfg.Workload.Clients = int(level)
	} else {
		cfg.Workload.Rate = level
	}
	cfg.Sweep = nil
	return cfg
}

// validate checks every level as a run of its own would be checked.
func (s *Sweep) validate(cfg Config) error {
	if s.Dimension != "clients" && s.Dimension != "rate" {
		return input.Bad("sweep", s.Dimension, "want clients or rate")
	}
	for _, f := range cfg.Faults {
		if f.Action == Failover {
			// The next level would find another primary than the fault
			// names, or promote one that already is.
			return input.Bad("fault", f.String(), "a sweep repeats the run at each level: a failover would happen once per level on a changed topology; sweep without it, or run each level on its own")
		}
	}
	for _, l := range s.Levels {
		if s.Dimension == "clients" && l != float64(int(l)) {
			return input.Bad("clients", fmt.Sprint(l), "want whole numbers of clients")
		}
		one := s.at(cfg, l)
		if err := one.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// SweepOutcome is what a sweep left.
type SweepOutcome struct {
	Result      *metrics.Sweep
	Dir         string
	Files       []string
	Verdicts    []report.Verdict // every level's, scoped by level
	Interrupted bool
}

// RunSweep opens cfg's target once and measures it at every level of
// cfg.Sweep, writing a run folder per level and the sweep's files. What
// was measured is written even when a level failed or ctx ended.
func RunSweep(ctx context.Context, cfg Config, hooks Hooks) (*SweepOutcome, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkViaNames(cfg); err != nil {
		return nil, err
	}
	sw := cfg.Sweep
	cl, err := Open(ctx, cfg.Target, hooks.Say)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if sw.Dimension == "clients" {
		// The most clients first: not a level measured, then a refusal.
		most := cfg.Workload
		most.Clients = int(slices.Max(sw.Levels))
		if err := pgpoolSlots(most, cl.Env); err != nil {
			return nil, err
		}
	}
	o := &SweepOutcome{Dir: report.FolderFor(cfg.Output.Dir, "sweep-"+sw.Dimension+"-"+cfg.Output.Label)}
	res := &metrics.Sweep{Schema: metrics.SweepSchemaVersion, Tool: "pgbenchx", Version: Version(), Command: RedactArgs(cfg.Command),
		StartedAt: time.Now().UTC(), Dimension: sw.Dimension, Levels: sw.Levels}
	o.Result = res
	var runErr error
	for _, level := range sw.Levels {
		one := sw.at(cfg, level)
		name := fmt.Sprintf("%s%s", map[string]string{"clients": "c", "rate": "r"}[sw.Dimension], strconv.FormatFloat(level, 'f', -1, 64))
		hooks.say(fmt.Sprintf("\n=== %s %s ===", sw.Dimension, strconv.FormatFloat(level, 'f', -1, 64)))
		r, err := Measure(ctx, cl, one, hooks)
		if r != nil && len(r.Strategies) > 0 {
			if _, werr := report.WriteRun(filepath.Join(o.Dir, name), r, one.Output.Formats); werr != nil {
				return o, fmt.Errorf("writing %s: %w", name, werr)
			}
			for _, sr := range r.Strategies {
				if sr == nil {
					continue
				}
				f := figuresOf(sr)
				res.Points = append(res.Points, metrics.SweepPoint{Strategy: sr.Strategy, Level: level,
					Clients: one.Workload.Clients, Rate: one.Workload.Rate, QPS: f.achieved,
					P50MS: f.sum.P50, P90MS: f.sum.P90, P99MS: f.sum.P99, P999MS: f.sum.P999,
					ErrorPct: f.errorPct, StalePct: f.stalePct, Run: name})
			}
			res.Warnings = append(res.Warnings, r.Warnings...)
			if err == nil {
				for _, v := range report.CheckRun(r, cfg.Thresholds) {
					v.Scope = fmt.Sprintf("%s %s, %s", sw.Dimension, strconv.FormatFloat(level, 'f', -1, 64), v.Scope)
					o.Verdicts = append(o.Verdicts, v)
				}
			}
		}
		if err != nil {
			runErr = err
			break
		}
	}
	res.EndedAt = time.Now().UTC()
	if len(res.Points) == 0 {
		return nil, runErr // interrupted before a level was measured: context.Canceled
	}
	if errors.Is(runErr, context.Canceled) {
		o.Interrupted, res.Interrupted, runErr = true, true, nil
	}
	files, werr := report.WriteSweep(o.Dir, res, cfg.Output.Formats)
	o.Files = files
	if werr != nil {
		return o, errors.Join(runErr, fmt.Errorf("writing %s: %w", o.Dir, werr))
	}
	return o, runErr
}

// stepFigures are one read phase's figures as a capacity step or a
// sweep point gives them.
type stepFigures struct {
	sum                metrics.Summary
	achieved           float64 // successful reads per measured second
	errorPct, stalePct float64 // stalePct -1: none checked
}

func figuresOf(sr *metrics.StrategyResult) stepFigures {
	f := stepFigures{sum: sr.Total().Summary(), stalePct: -1}
	var ok, checked, stale int64
	errs := sr.NoTarget
	for _, n := range sr.Nodes {
		ok += n.Total().TotalCount()
		checked += n.StaleChecked
		stale += n.StaleReads
		errs += n.ErrorCount()
	}
	if sr.Seconds > 0 {
		f.achieved = float64(ok) / sr.Seconds
	}
	// As the errors<X% gate judges it: failed attempts of all attempts.
	if ok+errs > 0 {
		f.errorPct = 100 * float64(errs) / float64(ok+errs)
	}
	if checked > 0 {
		f.stalePct = 100 * float64(stale) / float64(checked)
	}
	return f
}
