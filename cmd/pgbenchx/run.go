package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "benchmark reads routed across standbys while writes run on the primary",
		Description: `Uses the env named by --name if it is up (else builds one with --standbys N
and removes it afterwards unless --keep-env), or an existing cluster given by
--primary/--standby DSNs. Everything pgbenchx creates lives in its own schema
pgbenchx (marked as its own; 'pgbenchx clean' drops it): nothing else on the
cluster is read for the workload or changed.

Phases: schema (pgbenchx.orders seeded to --scale rows, heartbeat table),
write phase (--write-rows inserted on the primary, catch-up per standby, row
counts compared on every node), then a read phase per strategy: --clients
clients run the --mix (or --query-file) for --duration after --warmup, while
--write-rate rows/s are written on the primary and lag is sampled every
--lag-interval. Before anything is written, each node is checked to take the
connections the run will open (max_connections).

Latency runs from when a read was due to its last row: closed loop by
default, --rate N for an open loop that counts queueing (no coordinated
omission). Every attempt is counted on the node that ran it; every read once
end to end (retries with their whole time, failed reads at the time they
failed, reads cut off by the end at the time reached). A try that gets no
answer within --query-timeout is abandoned, its node ejected for --eject-for
and the read retried elsewhere (--max-tries). A stale read saw an older
heartbeat than the newest committed before it began; time lag is bounded
to within --heartbeat. Results go to --out/<time>-<label>/: run.json,
summary.csv, totals.csv, timeseries.csv, report.md. Ctrl-C stops early and
still writes them.

Examples:
  pgbenchx run --standbys 2 --strategy lag-aware
  pgbenchx run --strategies all --duration 10s --clients 8
  pgbenchx run --name lab2 --strategy causal --rate 2000 --max-lag 256kB,200ms
  pgbenchx run --strategies round-robin,lag-aware --threshold "p99<5ms,stale<1%,errors=0"
  pgbenchx run --primary "$P" --standby "$S1" --standby "$S2" --strategies round-robin,least-conn

` + thresholdHelp(false),
		Flags: append([]cli.Flag{
			nameFlag,
			&cli.IntFlag{Name: "standbys", Value: 2, Usage: "standbys to provision when no env is up (must match an env that is)"},
			&cli.BoolFlag{Name: "keep-env", Usage: "keep an env this run provisioned (default: removed at the end)"},
			&cli.BoolFlag{Name: "fast", Usage: "when provisioning: fsync off (tests and CI only; numbers are not durable ones)"},
			&cli.StringSliceFlag{Name: "apply-delay", Usage: "when provisioning: recovery_min_apply_delay, e.g. standby2=500ms"},
			&cli.StringFlag{Name: "primary", Usage: "DSN of an existing primary (with --standby): run there instead of an env"},
			&cli.StringSliceFlag{Name: "standby", Usage: "DSN of an existing standby (repeatable, in order: standby1, standby2, ...)"},
			&cli.StringFlag{Name: "cpus", Usage: "when provisioning: CPU cap per node in cores, 0.5 or standby1=0.5,standby2=0.5 (root, cgroups)"},
			thresholdFlag("conditions that must hold, exit 3 when one fails, e.g. \"p99<5ms,stale<1%,errors=0\" (see below)"),
		}, workloadFlags()...),
		Action: runAction,
	}
}

// workloadFlags are the flags run and matrix share: what the benchmark does.
func workloadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "strategy", Usage: "one routing strategy: random, round-robin, least-conn, lag-aware, causal"},
		&cli.StringFlag{Name: "strategies", Usage: "several, run in turn on the same data: a,b,c or all (default round-robin)"},
		&cli.DurationFlag{Name: "duration", Value: 30 * time.Second, Usage: "measured time per strategy, e.g. 30s"},
		&cli.DurationFlag{Name: "warmup", Value: 2 * time.Second, Usage: "read load before measuring, left out of every figure"},
		&cli.IntFlag{Name: "clients", Value: 16, Usage: "concurrent read clients"},
		&cli.FloatFlag{Name: "rate", Usage: "open loop: queries/s over all clients, latency from each query's due time (0 = closed loop)"},
		&cli.StringFlag{Name: "mix", Value: "point=80,range=15,report=5", Usage: "built-in reads: point (by id), range (a customer's recent orders), report (aggregate over recent orders)"},
		&cli.StringFlag{Name: "query-file", Usage: "your own reads instead of the mix (give --mix too to run both), one per line: name weight SQL ($1 = a random order id; unqualified tables resolve in schema pgbenchx, e.g. orders); they have no stale-read check"},
		&cli.IntFlag{Name: "scale", Value: 100000, Usage: "orders rows seeded before the run"},
		&cli.IntFlag{Name: "write-rows", Value: 10000, Usage: "rows inserted on the primary in the write phase (0 skips it)"},
		&cli.IntFlag{Name: "write-batch", Value: 100, Usage: "rows per INSERT transaction in the write phase"},
		&cli.FloatFlag{Name: "write-rate", Value: 200, Usage: "background rows/s on the primary during reads, so lag exists (0 = none)"},
		&cli.StringFlag{Name: "max-lag", Value: "1MB,500ms", Usage: "lag-aware: a standby beyond this (bytes and/or time) gets no reads, e.g. 256kB or 200ms or 1MB,500ms"},
		&cli.StringFlag{Name: "lag-fallback", Value: "primary", Usage: "lag-aware when no standby qualifies: primary, least-lagged or error"},
		&cli.StringFlag{Name: "weights", Usage: "random: weights per node, e.g. standby1=2,standby2=1"},
		&cli.BoolFlag{Name: "read-primary", Usage: "the primary is a read target too"},
		&cli.IntFlag{Name: "max-tries", Value: 2, Usage: "tries per read: a failed read is retried on another node"},
		&cli.DurationFlag{Name: "eject-for", Value: 5 * time.Second, Usage: "how long a node with a connection error gets no reads"},
		&cli.DurationFlag{Name: "lag-interval", Value: 100 * time.Millisecond, Usage: "how often lag is sampled"},
		&cli.DurationFlag{Name: "query-timeout", Value: 10 * time.Second, Usage: "each try of a read gets this long: the server cancels it just before (57014), the client abandons it at the limit if the node does not answer (client_timeout: connection dropped, node ejected, read retried elsewhere); 0 = none"},
		&cli.DurationFlag{Name: "heartbeat", Value: 10 * time.Millisecond, Usage: "how often the load generator commits a heartbeat on the primary: the resolution of time lag and of the stale-read check"},
		&cli.StringFlag{Name: "out", Value: "results", Usage: "folder for run folders"},
		&cli.StringFlag{Name: "format", Value: "md,csv,json", Usage: "files to write: md, csv, json or all"},
		&cli.StringFlag{Name: "label", Usage: "a word for the run folder's name (default: the strategies)"},
	}
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// measure runs the scenario on a target. It returns what was measured
// even when the run failed or was interrupted (then res.Interrupted is set
// and the error is context.Canceled); res is nil only if nothing ran.
func measure(ctx context.Context, tgt *target, plan *runPlan, out io.Writer) (*metrics.Result, error) {
	res := &metrics.Result{
		Schema: metrics.SchemaVersion, Tool: "pgbenchx", Label: plan.label, StartedAt: time.Now().UTC(),
		Config: resultConfig(plan.cfg), Environment: tgt.environment,
	}
	res.Config.QueryFileSHA256 = plan.queryFileSHA256
	if err := checkRouting(plan.cfg, tgt.nodes); err != nil {
		return res, err
	}
	cfg := plan.cfg
	cfg.LocalProcesses = tgt.cluster != nil
	if tgt.cluster != nil && len(env.CPUCaps(tgt.cluster)) > 0 {
		c := tgt.cluster
		cfg.Throttled = func() map[string]float64 { return env.Throttled(c) }
	}
	sc, err := workload.New(ctx, tgt.nodes, cfg)
	if err != nil {
		return res, err
	}
	defer sc.Close()
	sc.MaxApplyDelay = tgt.maxApplyDelay
	prog := newProgress(out)
	err = sc.Run(ctx, res, workload.Hooks{Phase: prog.phase, Write: prog.write, Live: prog.live})
	res.EndedAt = time.Now().UTC()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		res.Interrupted = true
		return res, context.Canceled
	}
	return res, err
}

// checkRouting builds each strategy's balancer for the target's nodes
// once, so a flag that names a node the cluster lacks (--weights
// standby3=1 on 2 standbys) fails before any data is written.
func checkRouting(c workload.Config, nodes []workload.Node) error {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	for _, s := range c.Strategies {
		_, err := routing.New(routing.Strategy(s), routing.Config{
			Nodes: names, ReadPrimary: c.ReadPrimary, Weights: c.Weights, MaxLagBytes: c.MaxLagBytes,
			MaxLagTime: c.MaxLagTime, Fallback: routing.Fallback(c.LagFallback), EjectFor: c.EjectFor, Lag: noLag{},
		})
		if err != nil {
			if input.Is(err) {
				return err
			}
			return usageError{err}
		}
	}
	return nil
}

// noLag stands in for the lag sampler when balancers are only checked.
type noLag struct{}

func (noLag) Lag(string) (routing.Lag, bool) { return routing.Lag{}, false }
func (noLag) Seq() uint64                    { return 0 }

// runPlan is what the flags ask for, validated.
type runPlan struct {
	cfg workload.Config
	// queryFileSHA256 identifies the query file's contents, so merge can
	// tell the same file at another path from another file.
	queryFileSHA256 string
	formats         []string
	out             string
	label           string
	gates           []report.Gate
}

func parseRunFlags(cmd *cli.Command) (*runPlan, error) {
	p := &runPlan{out: cmd.String("out"), label: cmd.String("label")}
	c := &p.cfg
	var err error
	strat := cmd.String("strategies")
	if s := cmd.String("strategy"); s != "" {
		if strat != "" {
			return nil, &input.Error{Flag: "strategy", Value: s, Accepted: "give --strategy or --strategies, not both"}
		}
		strat = s
	}
	if strat == "" {
		strat = string(routing.RoundRobin)
	}
	ss, err := routing.ParseStrategies(strat)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		c.Strategies = append(c.Strategies, string(s))
	}
	c.Duration, c.Warmup = cmd.Duration("duration"), cmd.Duration("warmup")
	if c.Duration < time.Second || c.Duration > 24*time.Hour {
		return nil, &input.Error{Flag: "duration", Value: c.Duration.String(), Accepted: "want 1s to 24h"}
	}
	if c.Warmup < 0 || c.Warmup > time.Hour {
		return nil, &input.Error{Flag: "warmup", Value: c.Warmup.String(), Accepted: "want 0 to 1h"}
	}
	c.Clients = int(cmd.Int("clients"))
	if c.Clients < 1 || c.Clients > 1024 {
		return nil, &input.Error{Flag: "clients", Value: fmt.Sprint(c.Clients), Accepted: "want 1 to 1024"}
	}
	c.Rate = cmd.Float("rate")
	if c.Rate < 0 || c.Rate > 1e6 || (c.Rate > 0 && c.Rate < 1) {
		return nil, &input.Error{Flag: "rate", Value: fmt.Sprint(c.Rate), Accepted: "want 0 (closed loop) or 1 to 1000000 queries/s"}
	}
	if c.Mix, err = workload.ParseMix(cmd.String("mix")); err != nil {
		return nil, err
	}
	if f := cmd.String("query-file"); f != "" {
		if c.Custom, err = workload.ParseQueryFile(f); err != nil {
			return nil, err
		}
		c.QueryFile = f
		if b, err := os.ReadFile(f); err == nil {
			p.queryFileSHA256 = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		if !cmd.IsSet("mix") {
			c.Mix = nil // the file replaces the built-in reads
		}
	}
	c.Scale, c.WriteRows, c.WriteBatch = int(cmd.Int("scale")), int(cmd.Int("write-rows")), int(cmd.Int("write-batch"))
	if c.Scale < 100 || c.Scale > 1e9 {
		return nil, &input.Error{Flag: "scale", Value: fmt.Sprint(c.Scale), Accepted: "want 100 to 1000000000 rows"}
	}
	if c.WriteRows < 0 || c.WriteRows > 1e9 {
		return nil, &input.Error{Flag: "write-rows", Value: fmt.Sprint(c.WriteRows), Accepted: "want 0 to 1000000000"}
	}
	if c.WriteBatch < 1 || c.WriteBatch > 100000 {
		return nil, &input.Error{Flag: "write-batch", Value: fmt.Sprint(c.WriteBatch), Accepted: "want 1 to 100000"}
	}
	c.WriteRate = cmd.Float("write-rate")
	if c.WriteRate < 0 || c.WriteRate > 1e6 {
		return nil, &input.Error{Flag: "write-rate", Value: fmt.Sprint(c.WriteRate), Accepted: "want 0 to 1000000 rows/s"}
	}
	if c.MaxLagBytes, c.MaxLagTime, err = routing.ParseMaxLag(cmd.String("max-lag")); err != nil {
		return nil, err
	}
	fb, err := routing.ParseFallback(cmd.String("lag-fallback"))
	if err != nil {
		return nil, err
	}
	c.LagFallback = string(fb)
	if w := cmd.String("weights"); w != "" {
		if c.Weights, err = routing.ParseWeights(w); err != nil {
			return nil, err
		}
	}
	c.ReadPrimary = cmd.Bool("read-primary")
	c.MaxTries = int(cmd.Int("max-tries"))
	if c.MaxTries < 1 || c.MaxTries > 10 {
		return nil, &input.Error{Flag: "max-tries", Value: fmt.Sprint(c.MaxTries), Accepted: "want 1 to 10"}
	}
	c.EjectFor, c.LagInterval, c.QueryTimeout = cmd.Duration("eject-for"), cmd.Duration("lag-interval"), cmd.Duration("query-timeout")
	if c.QueryTimeout < 0 || (c.QueryTimeout > 0 && c.QueryTimeout < time.Millisecond) || c.QueryTimeout > time.Hour {
		return nil, &input.Error{Flag: "query-timeout", Value: c.QueryTimeout.String(), Accepted: "want 0 (none) or 1ms to 1h"}
	}
	if c.LagInterval < 10*time.Millisecond || c.LagInterval > 10*time.Second {
		return nil, &input.Error{Flag: "lag-interval", Value: c.LagInterval.String(), Accepted: "want 10ms to 10s"}
	}
	if c.EjectFor < 0 || c.EjectFor > time.Hour {
		return nil, &input.Error{Flag: "eject-for", Value: c.EjectFor.String(), Accepted: "want 0 to 1h"}
	}
	c.Heartbeat, c.Settle = cmd.Duration("heartbeat"), 30*time.Second
	if c.Heartbeat < time.Millisecond || c.Heartbeat > 10*time.Second {
		return nil, &input.Error{Flag: "heartbeat", Value: c.Heartbeat.String(), Accepted: "want 1ms to 10s"}
	}
	if p.formats, err = report.ParseFormats(cmd.String("format")); err != nil {
		return nil, err
	}
	if p.gates, err = parseThresholds(cmd); err != nil {
		return nil, err
	}
	if p.label == "" {
		p.label = strings.Join(c.Strategies, "+")
		if len(c.Strategies) == len(routing.All) {
			p.label = "all"
		}
	} else if !labelRE.MatchString(p.label) {
		return nil, &input.Error{Flag: "label", Value: p.label, Accepted: "want 1-64 characters of letters, digits, '.', '-' or '_'"}
	}
	return p, nil
}

func runAction(ctx context.Context, cmd *cli.Command) error {
	plan, err := parseRunFlags(cmd)
	if err != nil {
		return err
	}
	out := cmd.Root().Writer
	tgt, err := resolveTarget(ctx, cmd, out)
	if err != nil {
		return err
	}
	defer tgt.cleanup()

	res, runErr := measure(ctx, tgt, plan, out)
	interrupted := errors.Is(runErr, context.Canceled)
	if interrupted {
		runErr = nil
	}
	if len(res.Strategies) == 0 && res.Write == nil && runErr != nil {
		return runErr
	}
	dir := filepath.Join(plan.out, res.StartedAt.Format("20060102-150405")+"-"+plan.label)
	files, werr := report.WriteRun(dir, res, plan.formats)
	fmt.Fprintln(out)
	_ = report.WriteTable(out, res)
	if werr != nil {
		return errors.Join(runErr, fmt.Errorf("writing %s: %w", dir, werr))
	}
	fmt.Fprintf(out, "\nreport: %s\n", dir)
	for _, f := range files {
		fmt.Fprintf(out, "  %s\n", f)
	}
	if runErr != nil {
		return runErr
	}
	gateErr := checkGates(out, report.CheckRun(res, plan.gates))
	if interrupted {
		// An interrupted run's verdicts are shown, but it did not run as
		// asked: that, not a threshold, is what its exit code says.
		return cli.Exit("interrupted: the figures above cover what was measured before Ctrl-C", exitInterrupted)
	}
	return gateErr
}

func resultConfig(c workload.Config) metrics.Config {
	return metrics.Config{
		Strategies: c.Strategies, Duration: metrics.Duration(c.Duration), Warmup: metrics.Duration(c.Warmup),
		Clients: c.Clients, Rate: c.Rate, Mix: c.MixMap(), QueryFile: c.QueryFile, Scale: c.Scale,
		WriteRows: c.WriteRows, WriteBatch: c.WriteBatch, WriteRate: c.WriteRate,
		MaxLagBytes: c.MaxLagBytes, MaxLagTime: metrics.Duration(c.MaxLagTime), LagFallback: c.LagFallback,
		Weights: c.Weights, ReadPrimary: c.ReadPrimary, MaxTries: c.MaxTries, EjectFor: metrics.Duration(c.EjectFor),
		LagInterval: metrics.Duration(c.LagInterval), Heartbeat: metrics.Duration(c.Heartbeat), StaleSample: 1,
		SessionWrites: c.SessionWrites, QueryTimeout: metrics.Duration(c.QueryTimeout),
	}
}

// target is the cluster a run measures and how to let go of it.
type target struct {
	cluster       *env.Cluster // nil for an external cluster
	nodes         []workload.Node
	environment   metrics.Environment
	maxApplyDelay time.Duration
	cleanup       func()
}

func resolveTarget(ctx context.Context, cmd *cli.Command, out io.Writer) (*target, error) {
	t := &target{cleanup: func() {}}
	if p := cmd.String("primary"); p != "" {
		return externalTarget(p, cmd.StringSlice("standby"))
	}
	if len(cmd.StringSlice("standby")) > 0 {
		return nil, &input.Error{Flag: "standby", Value: "", Accepted: "needs --primary too"}
	}
	name := cmd.String("name")
	store := env.Store{Dir: env.DefaultStateDir()}
	c, err := store.Load(name)
	switch {
	case err == nil:
		if cmd.IsSet("standbys") && int(cmd.Int("standbys")) != len(c.Standbys) {
			return nil, &input.Error{Flag: "standbys", Value: fmt.Sprint(cmd.Int("standbys")), Accepted: fmt.Sprintf("env %q is up with %d standbys; use --standbys %d, another --name, or pgbenchx env down --name %s", name, len(c.Standbys), len(c.Standbys), name)}
		}
		alive := env.Alive(c)
		for _, n := range c.Nodes() {
			if !alive[n.Name] {
				return nil, fmt.Errorf("env %q: %s is not running (pgbenchx env status --name %s; or env down and run again)", name, n.Name, name)
			}
		}
		fmt.Fprintf(out, "using env %q (%d standbys)\n", name, len(c.Standbys))
	case errors.Is(err, env.ErrNotFound):
		delays, err := env.ParseApplyDelays(cmd.StringSlice("apply-delay"))
		if err != nil {
			return nil, err
		}
		cpus, err := env.ParseCPUs(cmd.String("cpus"))
		if err != nil {
			return nil, err
		}
		spec := env.Spec{Name: name, Standbys: int(cmd.Int("standbys")), ApplyDelay: delays, Fast: cmd.Bool("fast"), CPUs: cpus}
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		p := env.NewLocal()
		fmt.Fprintf(out, "no env %q is up: provisioning a primary + %d standbys\n", name, spec.Standbys)
		t0 := time.Now()
		if c, err = p.Up(ctx, spec); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "env up in %.2fs\n", time.Since(t0).Seconds())
		if !cmd.Bool("keep-env") {
			t.cleanup = func() {
				if err := p.Down(context.WithoutCancel(ctx), name); err != nil {
					fmt.Fprintf(out, "env down: %v\n", err)
				}
			}
		}
	default:
		return nil, err
	}
	t.cluster = c
	describeCluster(t, c)
	return t, nil
}
