package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

// Capacity is a capacity search: for each standby count (a fresh env
// each, built from Target.Spec with that many standbys) and strategy, the
// highest open-loop rate whose measured step meets the SLO. Each step is
// a read phase of StepDuration after StepWarmup at one rate, with the
// workload of Config (its write phase skipped: --write-rate still writes
// in the background, so lag exists).
type Capacity struct {
	Config
	Standbys []int
	// SLO is what a step must meet (report.ParseGates, run's syntax);
	// SLOText as the user wrote it.
	SLO     []report.Gate
	SLOText string
	// Precision stops the bisection when the bracket is this narrow,
	// relative to the rate found (default 0.05).
	Precision    float64
	StepDuration time.Duration // default 10s
	StepWarmup   time.Duration // 0: none (the CLI's default is 1s)
	// StartRate is the ramp's first rate (default 1000 reads/s); MaxRate
	// its ceiling (default 1,000,000); MaxSteps bounds each search (20).
	StartRate, MaxRate float64
	MaxSteps           int
	// KeepSteps writes each step's run folder beside capacity.md.
	KeepSteps bool
}

// minShare is the share of the offered rate a step must achieve: a
// cluster that serves less than that has not served the rate, whatever
// its latency says (with an open loop the backlog shows in latency too,
// but a short step may end before it does).
const minShare = 0.9

// CapacityOutcome is what a capacity search left.
type CapacityOutcome struct {
	Result      *metrics.Capacity
	Dir         string
	Files       []string
	Headline    []string
	Interrupted bool
}

func (c *Capacity) setDefaults() {
	if c.Precision == 0 {
		c.Precision = 0.05
	}
	if c.StepDuration == 0 {
		c.StepDuration = 10 * time.Second
	}
	if c.StartRate == 0 {
		c.StartRate = 1000
	}
	if c.MaxRate == 0 {
		c.MaxRate = 1e6
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = 20
	}
}

// Validate checks the search's settings and the workload's.
func (c *Capacity) Validate() error {
	c.setDefaults()
	switch {
	case len(c.Standbys) == 0:
		return input.Bad("standbys", "", "want one or more standby counts, e.g. 1,2")
	case len(c.SLO) == 0:
		return input.Bad("slo", c.SLOText, `want conditions a step must meet, e.g. "p99<5ms,errors<0.1%,stale<1%"`)
	case c.Precision <= 0 || c.Precision >= 1:
		return input.Bad("precision", fmt.Sprint(c.Precision), "want a fraction between 0 and 1, e.g. 0.05 (5%)")
	case c.StepDuration < time.Second:
		return input.Bad("step-duration", c.StepDuration.String(), "want 1s or more")
	case c.StepWarmup < 0:
		return input.Bad("step-warmup", c.StepWarmup.String(), "want 0s or more")
	case c.MaxSteps < 1:
		return input.Bad("max-steps", fmt.Sprint(c.MaxSteps), "want 1 or more")
	case c.StartRate <= 0 || c.MaxRate < c.StartRate:
		return input.Bad("start-rate", fmt.Sprint(c.StartRate), "want a rate above 0 and at most --max-rate")
	case slices.Contains(c.Standbys, 0) && !c.Workload.ReadPrimary:
		return input.Bad("standbys", "0", "an env without standbys has no read target: add standbys, or --read-primary")
	case c.Target.External():
		return input.Bad("primary", "", "capacity builds a fresh env per standby count: it takes no --primary/--standby")
	}
	if err := noViaWithoutEndpoint(c.Workload.Strategies, "capacity"); err != nil {
		return err
	}
	c.Workload.Rate = c.StartRate // open loop: Validate checks what a rate needs
	c.Workload.Duration, c.Workload.Warmup = c.StepDuration, c.StepWarmup
	c.Workload.WriteRows = 0
	return c.Config.Validate()
}

// RunCapacity runs the search and writes capacity.md, .csv, .json and
// the charts under Output.Dir. What was measured is written even when a
// step failed or ctx ended.
func RunCapacity(ctx context.Context, c Capacity, hooks Hooks) (*CapacityOutcome, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p, err := env.Lookup(c.Target.Provider, env.Options{Image: c.Target.Image})
	if err != nil {
		return nil, err
	}
	label := "capacity"
	if c.Output.Label != "" && c.Output.Label != defaultLabel(c.Workload.Strategies) {
		label += "-" + c.Output.Label
	}
	o := &CapacityOutcome{Dir: report.FolderFor(c.Output.Dir, label)}
	res := &metrics.Capacity{
		Schema: metrics.CapacitySchemaVersion, Tool: "pgbenchx", Version: Version(), Command: RedactArgs(c.Command),
		StartedAt: time.Now().UTC(), SLO: c.SLOText, Precision: c.Precision,
		StepDuration: metrics.Duration(c.StepDuration), StepWarmup: metrics.Duration(c.StepWarmup),
		Clients: c.Workload.Clients, Mix: c.Workload.MixMap(), QueryFile: c.Workload.QueryFile,
		Cores: runtime.NumCPU(), Colocated: true,
	}
	o.Result = res
	var runErr error
counts:
	for _, n := range c.Standbys {
		spec := cellSpec(c.Target.Spec, n)
		spec.Name = fmt.Sprintf("capacity%d-s%d", os.Getpid()%100000, n)
		hooks.say(fmt.Sprintf("\n=== %d standby(s): a fresh env ===", n))
		t0 := time.Now()
		cl, err := p.Up(ctx, spec)
		if err != nil {
			runErr = fmt.Errorf("env up with %d standbys: %w", n, err)
			break
		}
		hooks.say(fmt.Sprintf("env up in %.2fs", time.Since(t0).Seconds()))
		target := Describe(cl)
		if caps := env.CPUCaps(cl); len(caps) > 0 {
			res.CPUCaps = caps
		}
		for _, strategy := range c.Workload.Strategies {
			s, err := c.searchOne(ctx, target, n, strategy, o.Dir, hooks)
			res.Series = append(res.Series, s)
			if err != nil {
				runErr = err
				break
			}
			hooks.say(fmt.Sprintf("%d standby(s), %s: %s", n, strategy, seriesLine(s)))
		}
		target.Close()
		if derr := p.Down(context.WithoutCancel(ctx), cl.Name); derr != nil {
			hooks.say(fmt.Sprintf("env down: %v", derr))
		}
		if runErr != nil {
			break counts
		}
	}
	res.EndedAt = time.Now().UTC()
	if len(res.Series) == 0 {
		return nil, runErr // interrupted before a step: context.Canceled, nothing to write
	}
	if errors.Is(runErr, context.Canceled) {
		o.Interrupted, res.Interrupted, runErr = true, true, nil
	}
	o.Headline = report.CapacityHeadline(res)
	files, werr := report.WriteCapacity(o.Dir, res, c.Output.Formats)
	o.Files = files
	if werr != nil {
		return o, errors.Join(runErr, fmt.Errorf("writing %s: %w", o.Dir, werr))
	}
	return o, runErr
}

// seriesLine says what one search found, for the progress output.
func seriesLine(s metrics.CapacitySeries) string {
	switch {
	case !s.Found:
		return fmt.Sprintf("no rate met the SLO (lowest tried %.0f/s)", lowest(s))
	case s.Limit == 0:
		return fmt.Sprintf("at least %.0f reads/s (the ceiling: no step failed)", s.Capacity)
	}
	return fmt.Sprintf("%.0f reads/s (%.0f failed), %d steps", s.Capacity, s.Limit, len(s.Steps))
}

func lowest(s metrics.CapacitySeries) float64 {
	lo := 0.0
	for _, st := range s.Steps {
		if lo == 0 || st.Rate < lo {
			lo = st.Rate
		}
	}
	return lo
}

// searchOne searches one strategy's capacity on an env that is up.
func (c *Capacity) searchOne(ctx context.Context, target *Cluster, n int, strategy routing.Strategy, dir string, hooks Hooks) (metrics.CapacitySeries, error) {
	lim := searchLimits{Start: c.StartRate, Max: c.MaxRate, Min: c.StartRate / 64, Precision: c.Precision, MaxSteps: c.MaxSteps}
	measure := func(ctx context.Context, rate float64) (metrics.CapacityStep, error) {
		cfg := c.Config
		cfg.Workload.Strategies = []routing.Strategy{strategy}
		cfg.Workload.Rate = rate
		step := metrics.CapacityStep{Rate: rate}
		hooks.say(fmt.Sprintf("-- %d standby(s), %s at %.0f reads/s", n, strategy, rate))
		res, err := Measure(ctx, target, cfg, Hooks{Say: hooks.Say})
		if res == nil || len(res.Strategies) == 0 || res.Strategies[0] == nil {
			if err == nil {
				err = errors.New("the step measured nothing")
			}
			return step, fmt.Errorf("%d standbys, %s at %.0f/s: %w", n, strategy, rate, err)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return step, fmt.Errorf("%d standbys, %s at %.0f/s: %w", n, strategy, rate, err)
		}
		if errors.Is(err, context.Canceled) {
			return step, err // an interrupted step is not judged
		}
		step = judgeStep(res, rate, c.SLO, readShare(cfg.Workload, strategy))
		if c.KeepSteps {
			name := fmt.Sprintf("s%d-%s-%.0f", n, strategy, rate)
			if _, werr := report.WriteRun(filepath.Join(dir, "steps", name), res, c.Output.Formats); werr == nil {
				step.Run = filepath.Join("steps", name)
			} else {
				hooks.say(fmt.Sprintf("   --keep-steps: writing %s: %v", name, werr))
			}
		}
		verdict := "pass"
		if !step.Pass {
			verdict = "fail: " + strings.Join(step.Failed, "; ")
		}
		hooks.say(fmt.Sprintf("   achieved %.0f/s, p50 %.3f ms, p99 %.3f ms: %s", step.Achieved, step.P50MS, step.P99MS, verdict))
		return step, nil
	}
	s, err := search(ctx, measure, lim)
	s.Standbys, s.Strategy = n, string(strategy)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.Error = err.Error()
	}
	return s, err
}

// readShare is the share of an open loop's slots that are reads: with
// session writes (causal, --session-writes N) one slot in N is a write.
func readShare(w workload.Config, s routing.Strategy) float64 {
	every := w.SessionWrites
	if every == 0 && s == routing.Causal {
		every = workload.CausalSessionEvery
	}
	if every <= 0 {
		return 1
	}
	return 1 - 1/float64(every)
}

// judgeStep reads one step's figures and checks the SLO on them; share is
// the share of the offered rate that are reads.
func judgeStep(res *metrics.Result, rate float64, slo []report.Gate, share float64) metrics.CapacityStep {
	sr := res.Strategies[0]
	f := figuresOf(sr)
	st := metrics.CapacityStep{Rate: rate, Achieved: f.achieved, P50MS: f.sum.P50, P90MS: f.sum.P90, P99MS: f.sum.P99,
		P999MS: f.sum.P999, ErrorPct: f.errorPct, StalePct: f.stalePct, ThrottledSec: sr.ThrottledSec}
	if sr.ScheduleLag != nil {
		st.ScheduleLagP99MS = sr.ScheduleLag.Summary().P99
	}
	st.Pass = true
	for _, v := range report.CheckRun(res, slo) {
		if !v.Pass {
			st.Pass = false
			st.Failed = append(st.Failed, fmt.Sprintf("%s (%s)", v.Gate.Text, v.Detail()))
		}
	}
	if reads := share * rate; st.Achieved < minShare*reads {
		st.Pass = false
		st.Failed = append(st.Failed, fmt.Sprintf("served %.0f of %.0f reads/s (under %.0f%%)", st.Achieved, reads, 100*minShare))
	}
	return st
}
