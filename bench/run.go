// Package bench is pgbenchx as a Go library: one Config (what to run, on
// which cluster, what to keep), Run for a benchmark and RunMatrix for the
// standby-count comparison, each writing its folder through package
// report. The CLI maps flags to a Config and prints; a Go program does
// the same in a few lines (see the package example).
package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

// Hooks are told of progress; all optional.
type Hooks struct {
	workload.Hooks
	// Say is told what happens around the phases: the env used or built.
	Say func(msg string)
	// Started is given the scenario once it is ready, before it runs: a
	// caller may tell it of events (faults) while it measures.
	Started func(*workload.Scenario)
}

func (h Hooks) say(msg string) {
	if h.Say != nil {
		h.Say(msg)
	}
}

// Outcome is what a benchmark left: the result, the folder written and the
// thresholds' verdicts.
type Outcome struct {
	Result      *metrics.Result
	Dir         string   // the run folder
	Files       []string // what was written in it
	Verdicts    []report.Verdict
	Interrupted bool // ctx ended before every phase ran: Result holds what was measured
}

// ThresholdFailed says whether a threshold did not hold.
func (o *Outcome) ThresholdFailed() bool {
	for _, v := range o.Verdicts {
		if !v.Pass {
			return true
		}
	}
	return false
}

// Run validates cfg, opens its target, measures it, writes the run
// folder under cfg.Output.Dir and checks cfg.Thresholds. What was
// measured is written even when the run failed or was interrupted (then
// Outcome.Interrupted is set and the error is nil); the Outcome is nil
// only when nothing ran.
func Run(ctx context.Context, cfg Config, hooks Hooks) (*Outcome, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkViaNames(cfg); err != nil {
		return nil, err
	}
	cl, err := Open(ctx, cfg.Target, hooks.Say)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	res, runErr := Measure(ctx, cl, cfg, hooks)
	return finish(cfg, res, runErr)
}

// finish writes a measured result's folder and judges it.
func finish(cfg Config, res *metrics.Result, runErr error) (*Outcome, error) {
	interrupted := errors.Is(runErr, context.Canceled)
	if interrupted {
		runErr = nil
	}
	if res == nil || (len(res.Strategies) == 0 && res.Write == nil && runErr != nil) {
		return nil, runErr
	}
	o := &Outcome{Result: res, Interrupted: interrupted}
	o.Dir = filepath.Join(cfg.Output.Dir, report.Stamp(res.StartedAt)+"-"+cfg.Output.Label)
	files, werr := report.WriteRun(o.Dir, res, cfg.Output.Formats)
	o.Files = files
	if werr != nil {
		return o, errors.Join(runErr, fmt.Errorf("writing %s: %w", o.Dir, werr))
	}
	if runErr != nil {
		return o, runErr
	}
	o.Verdicts = report.CheckRun(res, cfg.Thresholds)
	return o, nil
}

// Measure runs cfg's workload on an open cluster and returns what was
// measured, even when the run failed or was interrupted (then the result
// is marked interrupted and the error is context.Canceled).
func Measure(ctx context.Context, cl *Cluster, cfg Config, hooks Hooks) (*metrics.Result, error) {
	if cfg.Workload.Heartbeat == 0 { // a Config that skipped Validate
		cfg.Workload.Heartbeat = AutoHeartbeat(cfg.Workload)
	}
	res := &metrics.Result{
		Schema: metrics.SchemaVersion, Tool: "pgbenchx", Version: Version(), Command: RedactArgs(cfg.Command),
		Label: cfg.Output.Label, StartedAt: time.Now().UTC(), Config: cfg.Workload.Record(), Environment: cl.Environment,
	}
	for _, f := range cfg.Faults {
		res.Config.Faults = append(res.Config.Faults, f.String())
	}
	w := cfg.Workload
	if err := addVias(&w, cl.Vias); err != nil {
		return res, err
	}
	// Recorded with the endpoints the run read through, none without.
	rec := w.Record()
	res.Config.Vias, res.Config.ViaProtocol = rec.Vias, ""
	if len(rec.Vias) > 0 {
		res.Config.ViaProtocol = rec.ViaProtocol
	}
	if err := checkRouting(w, cl.Nodes); err != nil {
		return res, err
	}
	if err := pgpoolSlots(w, cl.Env); err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, pinnedByPgpool(w, cl.Env)...)
	if c := cl.Env; c != nil {
		w.LocalProcesses = c.Provider == "local"
		if len(env.CPUCaps(c)) > 0 {
			// A fault changes c while the run reads the cgroups: read
			// them through a copy.
			snap := *c
			snap.Standbys = slices.Clone(c.Standbys)
			w.Throttled = func() map[string]float64 { return env.Throttled(&snap) }
		}
	}
	sc, err := workload.New(ctx, cl.Nodes, w)
	if err != nil {
		return res, err
	}
	defer sc.Close()
	sc.MaxApplyDelay = cl.MaxApplyDelay
	var faults *faultRunner
	if len(cfg.Faults) > 0 {
		if faults, err = startFaults(ctx, cl, cfg, sc, &hooks); err != nil {
			return res, err
		}
	}
	if hooks.Started != nil {
		hooks.Started(sc)
	}
	fctx, stopFaults := context.WithCancel(ctx)
	if faults != nil {
		m := hooks.Measuring
		start := faults.measuring(fctx)
		hooks.Measuring = func(s routing.Strategy, t time.Time) {
			start(s, t)
			if m != nil {
				m(s, t)
			}
		}
	}
	err = sc.Run(ctx, res, hooks.Hooks)
	stopFaults()
	if faults != nil {
		// A fault that could not be done leaves a run that did not
		// measure what was asked: it is written, and the run fails.
		fos, errs := faults.wait()
		res.Failovers = fos
		if len(errs) > 0 {
			res.Warnings = append(res.Warnings, errs...)
			if err == nil {
				err = errors.New(strings.Join(errs, "; "))
			}
		}
	}
	res.EndedAt = time.Now().UTC()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		res.Interrupted = true
		return res, context.Canceled
	}
	return res, err
}

// checkRouting builds each strategy's balancer for the cluster's nodes
// once, so a flag that names a node the cluster lacks (--weights
// standby3=1 on 2 standbys) fails before any data is written.
func checkRouting(w workload.Config, nodes []workload.Node) error {
	names := make([]string, len(nodes))
	primary := 0
	for i, n := range nodes {
		names[i] = n.Name
		if n.Role == metrics.RolePrimary {
			primary = i
		}
	}
	for _, s := range w.Strategies {
		if _, err := routing.New(s, w.Routing(names, primary, noLag{})); err != nil {
			if input.Is(err) {
				return err
			}
			if len(nodes) == 1 && !w.ReadPrimary {
				return input.Bad("standbys", "0", "a cluster without standbys has no read target: add standbys, or --read-primary")
			}
			return input.Bad("strategies", string(s), "%v", err)
		}
	}
	return nil
}

// addVias adds the env's proxies to the via: endpoints run --via gave
// (one given by --via wins over a proxy of that name), and checks that
// every via:NAME strategy has its endpoint.
func addVias(w *workload.Config, env []workload.Via) error {
	defer func() {
		// Only the endpoints a strategy reads through get connections: a
		// proxy that is not measured should not take clients' slots
		// (pgpool has num_init_children of them).
		used := w.Vias[:0:0]
		for _, v := range w.Vias {
			if slices.Contains(w.Strategies, routing.Via(v.Name)) {
				used = append(used, v)
			}
		}
		w.Vias = used
	}()
	given := map[string]bool{}
	for _, v := range w.Vias {
		given[v.Name] = true
	}
	for _, v := range env {
		if !given[v.Name] {
			w.Vias = append(w.Vias, v)
			given[v.Name] = true
		}
	}
	for _, s := range w.Strategies {
		if name, ok := routing.ViaName(s); ok && !given[name] {
			var names []string
			for n := range given {
				names = append(names, n)
			}
			sort.Strings(names)
			have := "none: give run --via " + name + "=DSN, or env up --proxy " + name
			if len(names) > 0 {
				have = strings.Join(names, ", ")
			}
			return input.Bad("strategies", string(s), "no endpoint named %s (endpoints: %s)", name, have)
		}
	}
	return nil
}

// pgpoolSlots refuses more clients through an env's pgpool than it has
// children (num_init_children): the rest would wait in its listen queue
// and the run would fail connecting instead of measuring.
func pgpoolSlots(w workload.Config, c *env.Cluster) error {
	if c == nil {
		return nil
	}
	for _, p := range c.Proxies {
		if p.Kind != env.ProxyPgpool || !slices.Contains(w.Strategies, routing.Via(p.Name())) {
			continue
		}
		children := env.PgpoolChildren(p)
		if w.Clients > children {
			return input.Bad("clients", fmt.Sprint(w.Clients), "via:%s: pgpool takes %d clients at once (num_init_children): want at most %d, or an env made with env up --proxy pgpool:num_init_children=%d (env down first)",
				p.Name(), children, children, w.Clients)
		}
	}
	return nil
}

// checkViaNames refuses a via:NAME strategy with no endpoint before
// anything starts: one given by --via, or a proxy of the env named, if
// it is up (an env run builds has none).
func checkViaNames(cfg Config) error {
	names := map[string]bool{}
	for _, v := range cfg.Workload.Vias {
		names[v.Name] = true
	}
	if !cfg.Target.External() {
		if c, err := (env.Store{Dir: env.DefaultStateDir()}).Load(cfg.Target.Env); err == nil {
			for _, p := range c.Proxies {
				names[p.Name()] = true
			}
		}
	}
	var have []string
	for n := range names {
		have = append(have, n)
	}
	sort.Strings(have)
	for _, s := range cfg.Workload.Strategies {
		if name, ok := routing.ViaName(s); ok && !names[name] {
			known := "none: give run --via " + name + "=DSN, or env up --proxy " + name + " first"
			if len(have) > 0 {
				known = strings.Join(have, ", ")
			}
			return input.Bad("strategies", string(s), "no endpoint named %s (endpoints: %s)", name, known)
		}
	}
	return nil
}

// pinnedByPgpool warns of via: reads through an env's pgpool sent as
// prepared statements: pgpool runs a named statement on the node its
// Parse went to, so each client's reads stay on one node and what is
// measured is per-connection balancing, not per-statement.
func pinnedByPgpool(w workload.Config, c *env.Cluster) []string {
	protocol := w.Protocol
	if w.ViaProtocol != "" {
		protocol = w.ViaProtocol
	}
	if c == nil || (protocol != "" && protocol != "prepared") {
		return nil
	}
	var out []string
	for _, p := range c.Proxies {
		if p.Kind != env.ProxyPgpool || !slices.Contains(w.Strategies, routing.Via(p.Name())) {
			continue
		}
		if i := slices.IndexFunc(w.Vias, func(v workload.Via) bool { return v.Name == p.Name() }); i >= 0 && w.Vias[i].DSN != p.DSN(&c.Primary, c.Primary.Password) {
			continue // run --via gave another endpoint this name
		}
		out = append(out, fmt.Sprintf("via:%s: reads went as prepared statements, which pgpool runs on the node each connection's Parse went to: its balancing was per connection here; -M extended (parsed every time, as many drivers do) shows its statement-level balancing", p.Name()))
	}
	return out
}

var viaItem = regexp.MustCompile(`^\s*[A-Za-z0-9_-]+=`)

// ParseVias reads run --via NAME=DSN (repeatable): an endpoint that
// routes reads by itself, measured as strategy via:NAME.
func ParseVias(items []string) ([]workload.Via, error) {
	// The flag parser splits a value at its commas (a password or a
	// multi-host DSN may hold some): an item that does not start with
	// NAME= continues the one before.
	joined := input.Rejoin(items, viaItem.MatchString)
	var out []workload.Via
	seen := map[string]bool{}
	for _, item := range joined {
		name, dsn, ok := strings.Cut(item, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		// The DSN is never echoed: a password split at a comma would not
		// be recognised as one.
		shown := name
		if !ok || !routing.ValidViaName(name) {
			return nil, input.Bad("via", shown, "want NAME=DSN, NAME of a-z, 0-9, '-' or '_' (e.g. pgcat=postgres://app@10.0.0.5:6432/app)")
		}
		if _, err := pgx.ParseConfig(dsn); err != nil {
			return nil, input.Bad("via", shown, "the DSN is not a valid connection string")
		}
		if seen[name] {
			return nil, input.Bad("via", shown, "%s is given twice", name)
		}
		seen[name] = true
		out = append(out, workload.Via{Name: name, DSN: dsn})
	}
	return out, nil
}

// noLag stands in for the lag sampler when balancers are only checked.
type noLag struct{}

func (noLag) Lag(string) (routing.Lag, bool) { return routing.Lag{}, false }
func (noLag) Seq() uint64                    { return 0 }
