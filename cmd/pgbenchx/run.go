package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
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

Faults (--fault, on an env) happen on schedule while reads are measured,
and are marked in every report. A failover kills the primary, promotes
NODE and re-points every other standby to it: the writers find the new
primary by asking the nodes, the report gives the write unavailability
(last commit the old primary acknowledged to the first the new one did),
the acknowledged rows and how many the new primary lacks (rows lost), and
the env is left with NODE as its primary (pgbenchx env status).

Examples:
  pgbenchx run --standbys 2 --strategy lag-aware
  pgbenchx run --strategies all --duration 10s --clients 8
  pgbenchx run --name lab2 --strategy lag-aware --rate 2000 --max-lag 256kB,200ms
  pgbenchx run --strategies round-robin,lag-aware --threshold "p99<5ms,stale<1%,errors=0"
  pgbenchx run --fault 5s:kill:standby2 --fault 12s:restart:standby2 --fault 20s:failover:standby1 --duration 30s
  pgbenchx run --primary "$P" --standby "$S1" --standby "$S2" --strategies round-robin,least-conn
  pgbenchx run --strategies lag-aware,via:pgpool,via:haproxy --apply-delay standby2=1s   # env up --proxy pgpool --proxy haproxy first
  pgbenchx run --primary "$P" --standby "$S1" --via pgcat="$PGCAT_DSN" --strategies round-robin,via:pgcat

Through a via:NAME endpoint every read goes to that one DSN and the endpoint
picks the node; built-in reads also return the serving node's port and
cluster_name, so share, stale reads and latency are still per node (reads
that cannot be told apart, such as --query-file or -f reads, land on a row
"unattributed").

` + thresholdHelp(false),
		Flags: append([]cli.Flag{
			nameFlag,
			&cli.IntFlag{Name: "standbys", Value: 2, Usage: "standbys to provision when no env is up (must match an env that is)"},
			&cli.BoolFlag{Name: "keep-env", Usage: "keep an env this run provisioned (default: removed at the end)"},
			fastFlag(),
			applyDelayFlag(),
			&cli.StringFlag{Name: "primary", Usage: "DSN of an existing primary (with --standby): run there instead of an env"},
			&cli.StringSliceFlag{Name: "standby", Usage: "DSN of an existing standby (repeatable, in order: standby1, standby2, ...)"},
			cpusFlag(),
			memoryFlag(),
			&cli.StringFlag{Name: "provider", Value: env.LocalName, Usage: "what builds the env when none is up: local or docker"},
			imageFlag(),
			&cli.StringSliceFlag{Name: "fault", Usage: "AT:ACTION:NODE (repeatable): at AT after the first measured second, ACTION (kill, stop, restart, freeze, thaw, or failover: the primary dies and NODE is promoted) on NODE of the env, e.g. 5s:kill:standby2"},
			&cli.StringFlag{Name: "start-at", Usage: "hold the first read phase until this time, RFC 3339 (2026-11-26T10:00:00Z) or +DURATION from now (+30s): load generators on several machines given one time measure the same seconds, for pgbenchx merge"},
			&cli.StringFlag{Name: "commit", Value: "on", Usage: "the writers' synchronous_commit: on, remote_write, remote_apply, local or off (what a commit waits for on an env built with --sync)"},
			thresholdFlag("conditions that must hold, exit 3 when one fails, e.g. \"p99<5ms,stale<1%,errors=0\" (see below)"),
			metricsAddrFlag(),
			&cli.StringSliceFlag{Name: "via", Usage: "NAME=DSN (repeatable): an endpoint that routes reads by itself (pgpool, HAProxy, PgCat, PgBouncer...), measured as strategy via:NAME beside ours; an env's proxies are via:pgpool, via:haproxy already"},
		}, append(netFlags(), workloadFlags()...)...),
		Action: runAction,
	}
}

// workloadFlags are the flags run and matrix share: what the benchmark does.
func workloadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "strategy", Usage: "one routing strategy: random, round-robin, least-conn, lag-aware, causal, nearest (lowest recent read latency)"},
		&cli.StringFlag{Name: "strategies", Usage: "several, run in turn on the same data: a,b,c or all (default round-robin)"},
		&cli.StringFlag{Name: "duration", Aliases: []string{"T"}, Value: "30s", Usage: "measured time per strategy, e.g. 30s, 2m, or plain seconds as pgbench's -T (30)"},
		&cli.StringFlag{Name: "warmup", Value: "2s", Usage: "read load before measuring, left out of every figure: 2s, or plain seconds (2)"},
		&cli.StringFlag{Name: "clients", Aliases: []string{"c"}, Value: "16", Usage: "concurrent read clients; run takes a sweep too, e.g. 4,8,16,32: the run repeated at each, one table and a chart per strategy"},
		&cli.StringFlag{Name: "rate", Aliases: []string{"R"}, Value: "0", Usage: "open loop: queries/s over all clients, latency from each query's due time (0 = closed loop); run takes a sweep too, e.g. 2000,4000,8000"},
		&cli.StringFlag{Name: "mix", Value: "point=80,range=15,report=5", Usage: "built-in reads: point (by id), range (a customer's recent orders), report (aggregate over recent orders)"},
		&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "a pgbench script FILE[@WEIGHT] (repeatable) instead of the mix: \\set with random, random_exponential, random_gaussian, random_zipfian and arithmetic, :var in SQL, several statements per read; named by the file's stem (lookup.sql: lookup); :scale is --scale, :client_id the client; no stale-read check"},
		&cli.StringFlag{Name: "protocol", Aliases: []string{"M"}, Value: "prepared", Usage: "how reads are sent, as pgbench's -M: prepared (parsed once per connection), extended (parsed every time: what transaction poolers need) or simple (one query string, values inlined)"},
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
		&cli.BoolFlag{Name: "socket", Usage: "reach the env's nodes through their Unix sockets instead of TCP on 127.0.0.1: for co-located runs (run.json says unix_socket)"},
		&cli.DurationFlag{Name: "heartbeat", Usage: "how often the load generator commits a heartbeat on the primary: the resolution of time lag and of the stale-read check (default 10ms; with --query-file reads only, which have no stale-read check, the lag interval)"},
		&cli.StringFlag{Name: "slot-warn", Value: "1GB", Usage: "warn when a standby's slot makes the primary keep more WAL than this (down, frozen or far behind), e.g. 512MB; off: never"},
		&cli.StringFlag{Name: "out", Value: "results", Usage: "folder for run folders"},
		formatFlag("md,csv,json"),
		&cli.StringFlag{Name: "label", Usage: "a word for the run folder's name (default: the strategies)"},
		progressFlags()[0], progressFlags()[1],
	}
}

// parseConfig maps the flags run and matrix share to a bench.Config:
// strings are parsed by the package that owns their meaning, every rule
// is checked by bench.Config.Validate (the caller's).
func parseConfig(cmd *cli.Command) (bench.Config, error) {
	var err error
	c := bench.Default()
	w := &c.Workload
	strat := cmd.String("strategies")
	if s := cmd.String("strategy"); s != "" {
		if strat != "" {
			return c, input.Bad("strategy", s, "give --strategy or --strategies, not both")
		}
		strat = s
	}
	if strat != "" {
		ss, err := routing.ParseStrategies(strat)
		var bad *input.Error
		if errors.As(err, &bad) && cmd.String("strategy") != "" {
			bad.Flag = "strategy" // name the flag the user typed
		}
		if err != nil {
			return c, err
		}
		w.Strategies = ss
	}
	if cmd.Name != "capacity" { // its steps have their own duration and rate
		if w.Duration, err = parseSeconds("duration", cmd.String("duration")); err != nil {
			return c, err
		}
		if w.Warmup, err = parseSeconds("warmup", cmd.String("warmup")); err != nil {
			return c, err
		}
		rates, err := bench.ParseLevels("rate", cmd.String("rate"))
		if err != nil {
			return c, err
		}
		w.Rate = rates[0]
		if len(rates) > 1 {
			c.Sweep = &bench.Sweep{Dimension: "rate", Levels: rates}
		}
	}
	clients, err := bench.ParseLevels("clients", cmd.String("clients"))
	if err != nil {
		return c, err
	}
	if clients[0] != float64(int(clients[0])) {
		return c, input.Bad("clients", cmd.String("clients"), "want a whole number of clients")
	}
	w.Clients = int(clients[0])
	if len(clients) > 1 {
		if c.Sweep != nil {
			return c, input.Bad("clients", cmd.String("clients"), "sweep one of --clients and --rate at a time")
		}
		c.Sweep = &bench.Sweep{Dimension: "clients", Levels: clients}
	}
	if c.Sweep != nil && cmd.Name != "run" {
		return c, input.Bad(c.Sweep.Dimension, cmd.String(c.Sweep.Dimension), "a sweep is run's: give one value here")
	}
	if w.Protocol, err = workload.ParseProtocol(cmd.String("protocol")); err != nil {
		return c, err
	}
	if !cmd.IsSet("protocol") {
		// Through a pooler a prepared statement stays on the node its
		// Parse went to: via: reads are parsed every time, as drivers
		// talking to a pooler do, unless -M says otherwise.
		w.ViaProtocol = "extended"
	}
	if w.Mix, err = workload.ParseMix(cmd.String("mix")); err != nil {
		return c, err
	}
	if f := cmd.String("query-file"); f != "" {
		// The file replaces the built-in reads, unless --mix asks for both.
		if err := c.UseQueryFile(f, cmd.IsSet("mix")); err != nil {
			return c, err
		}
	}
	if err := c.UseScripts(cmd.StringSlice("file"), cmd.IsSet("mix") || cmd.String("query-file") != ""); err != nil {
		return c, err
	}
	w.Scale, w.WriteRows, w.WriteBatch = int(cmd.Int("scale")), int(cmd.Int("write-rows")), int(cmd.Int("write-batch"))
	w.WriteRate = cmd.Float("write-rate")
	if w.MaxLagBytes, w.MaxLagTime, err = routing.ParseMaxLag(cmd.String("max-lag")); err != nil {
		return c, err
	}
	if w.LagFallback, err = routing.ParseFallback(cmd.String("lag-fallback")); err != nil {
		return c, err
	}
	if s := cmd.String("weights"); s != "" {
		if w.Weights, err = routing.ParseWeights(s); err != nil {
			return c, err
		}
	}
	w.ReadPrimary, w.MaxTries = cmd.Bool("read-primary"), int(cmd.Int("max-tries"))
	w.EjectFor, w.LagInterval = cmd.Duration("eject-for"), cmd.Duration("lag-interval")
	w.QueryTimeout, w.Heartbeat = cmd.Duration("query-timeout"), cmd.Duration("heartbeat")
	if w.SlotWarn, err = parseSlotWarn(cmd.String("slot-warn")); err != nil {
		return c, err
	}
	c.Output.Dir, c.Output.Label = cmd.String("out"), cmd.String("label")
	if c.Output.Formats, err = report.ParseFormats(cmd.String("format")); err != nil {
		return c, err
	}
	if c.Thresholds, err = parseThresholds(cmd); err != nil {
		return c, err
	}
	// Where: an existing cluster, or an env (built from these when not up).
	t := &c.Target
	t.PrimaryDSN, t.StandbyDSNs = cmd.String("primary"), cmd.StringSlice("standby")
	t.Env, t.Keep, t.Socket = cmd.String("name"), cmd.Bool("keep-env"), cmd.Bool("socket")
	if cmd.IsSet("standbys") && cmd.Name == "run" {
		t.WantStandbys = int(cmd.Int("standbys"))
	}
	if cmd.Name == "run" {
		if w.Vias, err = bench.ParseVias(cmd.StringSlice("via")); err != nil {
			return c, err
		}
		t.Spec.Standbys = int(cmd.Int("standbys"))
		for _, f := range cmd.StringSlice("fault") {
			fault, err := bench.ParseFault(f)
			if err != nil {
				return c, err
			}
			c.Faults = append(c.Faults, fault)
		}
		if w.Commit, err = workload.ParseCommit(cmd.String("commit")); err != nil {
			return c, err
		}
		if s := cmd.String("start-at"); s != "" {
			if w.StartAt, err = parseStartAt(s, time.Now()); err != nil {
				return c, err
			}
		}
	}
	if t.Spec.ApplyDelay, err = env.ParseApplyDelays(cmd.StringSlice("apply-delay")); err != nil {
		return c, err
	}
	if t.Spec.NetLinks, err = parseNetLinks(cmd); err != nil {
		return c, err
	}
	if t.Spec.Memory, err = env.ParseMemory(cmd.String("memory")); err != nil {
		return c, err
	}
	t.Image = cmd.String("image")
	if cmd.Name == "run" {
		t.Provider = cmd.String("provider")
	}
	if t.Spec.CPUs, err = env.ParseCPUs(cmd.String("cpus")); err != nil {
		return c, err
	}
	t.Spec.Fast = cmd.Bool("fast")
	if cmd.Name == "capacity" {
		return c, nil // bench.Capacity.Validate checks it with the steps' settings
	}
	return c, c.Validate()
}

func runAction(ctx context.Context, cmd *cli.Command) error {
	cfg, err := parseConfig(cmd)
	if err != nil {
		return err
	}
	out := cmd.Root().Writer
	cfg.Command = commandLine(ctx)
	prog, err := progressFor(cmd)
	if err != nil {
		return err
	}
	hooks := bench.Hooks{
		Hooks: workload.Hooks{Phase: prog.phase, Write: prog.write, Live: prog.live},
		Say:   func(msg string) { fmt.Fprintln(out, msg) },
	}
	stopMetrics, err := serveMetrics(cmd, &hooks)
	if err != nil {
		return err
	}
	defer stopMetrics()
	if cfg.Sweep != nil {
		return sweepAction(ctx, cmd, cfg, hooks)
	}
	o, runErr := bench.Run(ctx, cfg, hooks)
	if o == nil {
		return runErr
	}
	fmt.Fprintln(out)
	_ = report.WriteTable(out, o.Result)
	printFiles(out, o.Dir, o.Files)
	return conclude(out, runErr, o.Verdicts, o.Interrupted, "the figures above cover what was")
}

// parseStartAt reads --start-at: an RFC 3339 time or +DURATION from now,
// ahead of now and within a day.
func parseStartAt(s string, now time.Time) (time.Time, error) {
	const want = "want a time ahead within a day: RFC 3339 (2026-11-26T10:00:00Z) or +DURATION from now (+30s)"
	var at time.Time
	if d, ok := strings.CutPrefix(s, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil {
			return at, input.Bad("start-at", s, want)
		}
		at = now.Add(dur)
	} else {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return at, input.Bad("start-at", s, want)
		}
		at = t
	}
	if !at.After(now) || at.Sub(now) > 24*time.Hour {
		return at, input.Bad("start-at", s, want)
	}
	return at, nil
}

// parseSlotWarn reads --slot-warn: a size, or off (0).
func parseSlotWarn(s string) (int64, error) {
	if strings.EqualFold(strings.TrimSpace(s), "off") {
		return 0, nil
	}
	n, isSize, reason := input.ParseSize(strings.TrimSpace(s))
	if !isSize || reason != "" {
		return 0, input.Bad("slot-warn", s, "want a size like 512MB or 1GB (units B, kB, MB, GB, TB; 1024-based), or off")
	}
	return n, nil
}

// sweepAction runs --clients or --rate at every level they list.
func sweepAction(ctx context.Context, cmd *cli.Command, cfg bench.Config, hooks bench.Hooks) error {
	out := cmd.Root().Writer
	o, runErr := bench.RunSweep(ctx, cfg, hooks)
	if o == nil {
		return runErr
	}
	fmt.Fprintln(out)
	_ = report.WriteSweepTable(out, o.Result)
	printFiles(out, o.Dir, o.Files)
	return conclude(out, runErr, o.Verdicts, o.Interrupted, "the figures above cover the levels")
}
