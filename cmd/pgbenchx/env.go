package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/workload"
)

var nameFlag = &cli.StringFlag{
	Name:    "name",
	Value:   env.DefaultName,
	Usage:   "which env: several can run side by side, e.g. --name lab2",
	Sources: cli.EnvVars("PGBENCHX_ENV"),
}

func envCommand() *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "build, inspect and remove an env: a PostgreSQL primary and its streaming standbys",
		Description: `An env is a primary plus N streaming standbys, built by a provider
(providers: ` + strings.Join(env.Providers(), ", ") + `). The default, local, runs the PostgreSQL server
binaries already installed on this machine. An env keeps running between
commands until 'env down'; its provider and passwords live in a state file
of mode 0600, so status, verify and down find it by --name alone.

Bad days by hand: env kill|stop|start|restart|freeze|thaw --node N acts on
one node, env failover --to N loses the primary and promotes N (run --fault
does the same while measuring).`,
		Commands: append([]*cli.Command{envUpCommand(), envStatusCommand(), envVerifyCommand(), envDSNCommand(), envDownCommand(), envListCommand(), envFailoverCommand()}, nodeCommands()...),
	}
}

func envUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "build a primary plus N streaming standbys",
		Description: `Builds every node at once from a cached, cleanly shut down initdb template
(what a basebackup of a fresh primary holds, without its checkpoint and
copy): each standby gets its own physical slot (standbyN_slot) on its
upstream and application_name=standbyN, and up waits until the upstream's
pg_stat_replication shows every standby streaming.
Servers listen on 127.0.0.1 only with scram-sha-256 passwords made for this
env. As root, the servers run as --os-user. Ctrl-C removes what was half built.

Examples:
  pgbenchx env up --standbys 2
  pgbenchx env up --standbys 2 --apply-delay standby2=500ms   # one slow standby
  pgbenchx env up --standbys 3 --topology cascade             # standby2,3 stream from standby1
  pgbenchx env up --standbys 2 --cpus 0.5                     # every node capped to half a core
  pgbenchx env up --standbys 2 --sync "ANY 1 (standby1, standby2)"   # commits wait for one standby
  pgbenchx env up --name lab2 --pg-setting shared_buffers=256MB --fast
  pgbenchx env up --standbys 2 --proxy pgpool --proxy haproxy # then: run --strategies round-robin,via:pgpool,via:haproxy
  pgbenchx env up --standbys 2 --proxy pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on
  pgbenchx env up --standbys 2 --stack patroni                # Patroni + etcd run it, HAProxy routes by Patroni's checks

Proxies and stacks come from Debian's packages (make deps installs them):
pgpool-II in streaming-replication mode with statement-level load balancing
(the primary's weight 0 unless --read-primary, delay_threshold 1MB unless
given; any pgpool.conf key as an option), HAProxy in TCP mode with a read
port balancing over the standbys (haproxy:balance=leastconn) and a write
port to the primary. Each is a via:NAME target of run. Their logs sit
beside the nodes'; env down stops them.`,
		Flags: append([]cli.Flag{
			nameFlag,
			&cli.IntFlag{Name: "standbys", Value: 2, Usage: fmt.Sprintf("how many standbys, 0 to %d", env.MaxStandbys)},
			&cli.StringFlag{Name: "provider", Value: env.LocalName, Usage: "which provider builds the env, one of: " + strings.Join(env.Providers(), ", ") + " (local runs this machine's PostgreSQL binaries)"},
			&cli.StringFlag{Name: "topology", Value: "star", Usage: "star (all standbys stream from the primary) or cascade (standby2.. stream from standby1)"},
			applyDelayFlag(),
			&cli.StringSliceFlag{Name: "pg-setting", Usage: "a postgresql.conf setting for every node, e.g. shared_buffers=256MB (repeatable)"},
			fastFlag(),
			&cli.StringFlag{Name: "pg-bin", Usage: "folder of initdb, postgres, pg_basebackup and pg_rewind (default: pg_config --bindir, else newest /usr/lib/postgresql/*/bin)"},
			cpusFlag(),
			&cli.StringFlag{Name: "sync", Usage: "synchronous replication: the primary's synchronous_standby_names, e.g. \"ANY 1 (standby1, standby2)\" or \"FIRST 1 (standby1)\", set once every standby streams (default off: asynchronous)"},
			imageFlag(),
			memoryFlag(),
			&cli.StringFlag{Name: "os-user", Usage: "when run as root, the unprivileged OS user who runs the servers and owns their folders (default postgres)"},
			&cli.StringSliceFlag{Name: "proxy", Usage: "a proxy in front of the env (repeatable): pgpool or haproxy, options after a colon, e.g. pgpool:delay_threshold=8kB or haproxy:balance=leastconn; run reads through it as via:pgpool, via:haproxy"},
			&cli.StringFlag{Name: "stack", Usage: "patroni: Patroni (with a local etcd) runs the cluster, HAProxy routes by Patroni's REST health checks (via:haproxy); a failover fault kills the leader and Patroni elects"},
			&cli.BoolFlag{Name: "read-primary", Usage: "the proxies send reads to the primary too (default: standbys only)"},
		}, netFlags()...),
		Action: envUp,
	}
}

func envUp(ctx context.Context, cmd *cli.Command) error {
	out := cmd.Root().Writer
	// First: an unknown provider is bad input before anything starts.
	p, err := env.Lookup(cmd.String("provider"), env.Options{
		Store:  env.Store{Dir: env.DefaultStateDir()},
		Step:   func(step string, took time.Duration) { fmt.Fprintf(out, "  %-24s %6.2fs\n", step, took.Seconds()) },
		PgBin:  cmd.String("pg-bin"),
		OSUser: cmd.String("os-user"),
		Image:  cmd.String("image"),
	})
	if err != nil {
		return err
	}
	topo, err := env.ParseTopology(cmd.String("topology"))
	if err != nil {
		return err
	}
	delays, err := env.ParseApplyDelays(cmd.StringSlice("apply-delay"))
	if err != nil {
		return err
	}
	settings, err := env.ParseSettings(cmd.StringSlice("pg-setting"))
	if err != nil {
		return err
	}
	cpus, err := env.ParseCPUs(cmd.String("cpus"))
	if err != nil {
		return err
	}
	memory, err := env.ParseMemory(cmd.String("memory"))
	if err != nil {
		return err
	}
	rule, err := env.ParseSync(cmd.String("sync"))
	if err != nil {
		return err
	}
	links, err := parseNetLinks(cmd)
	if err != nil {
		return err
	}
	proxies, err := env.ParseProxies(cmd.StringSlice("proxy"))
	if err != nil {
		return err
	}
	stack, err := env.ParseStack(cmd.String("stack"))
	if err != nil {
		return err
	}
	spec := env.Spec{
		Name: cmd.String("name"), Standbys: int(cmd.Int("standbys")), Topology: topo,
		ApplyDelay: delays, Settings: settings, Fast: cmd.Bool("fast"), CPUs: cpus, Sync: rule, NetLinks: links, Memory: memory,
		Proxies: proxies, Stack: stack, ReadPrimary: cmd.Bool("read-primary"),
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := env.CheckProvider(p.Name(), spec); err != nil {
		return err
	}
	durability := "fsync on"
	if spec.Fast {
		durability = "--fast: fsync off, data in RAM"
	}
	fmt.Fprintf(out, "env %q: primary + %d standbys (%s, %s), %s\n", spec.Name, spec.Standbys, spec.Topology, p.Name(), durability)
	t0 := time.Now()
	c, err := p.Up(ctx, spec)
	if err != nil {
		return err
	}
	where := "data in " + c.BaseDir
	if c.Provider == env.DockerName {
		where = fmt.Sprintf("containers and volumes pgbenchx-%s-*, image %s", c.Name, c.Image)
	}
	fmt.Fprintf(out, "up in %.2fs, PostgreSQL %s, %s\n", time.Since(t0).Seconds(), c.ServerVersion, where)
	if c.Sync != "" {
		fmt.Fprintf(out, "synchronous replication: synchronous_standby_names = '%s' on the primary\n", c.Sync)
	}
	printLinks(out, c)
	printProxies(out, c)
	fmt.Fprintln(out)
	printNodes(out, c)
	fmt.Fprintf(out, "\nNext: pgbenchx env verify --name %s   |   psql \"$(pgbenchx env dsn --name %s --node standby1)\"\n", c.Name, c.Name)
	return nil
}

func printNodes(w io.Writer, c *env.Cluster) {
	rows := [][]string{}
	for _, n := range c.Nodes() {
		up := n.Upstream
		if up == "" {
			up = "-"
		}
		delay := "-"
		if n.ApplyDelay > 0 {
			delay = n.ApplyDelay.String()
		}
		cpus := "-"
		if n.CPUs > 0 {
			cpus = fmt.Sprint(n.CPUs)
		}
		rows = append(rows, []string{n.Name, string(n.Role), fmt.Sprint(n.Port), up, delay, cpus, n.RedactedDSN()})
	}
	renderTable(w, []string{"node", "role", "port", "upstream", "apply delay", "cpus", "dsn"}, rows)
}

// printLinks lists the standbys behind slow links and the proxy.
func printLinks(w io.Writer, c *env.Cluster) {
	for _, n := range c.Standbys {
		if n.Link != nil {
			fmt.Fprintf(w, "slow link: %s %s (clients through port %d, replication through port %d)\n", n.Name, n.Link, n.Link.ClientPort, n.Link.ReplPort)
		}
	}
	if c.NetProxy != nil && !env.NetProxyRuns(c) {
		which := fmt.Sprintf("pid %d", c.NetProxy.PID)
		if c.NetProxy.Container != "" {
			which = "container " + c.NetProxy.Container
		}
		fmt.Fprintf(w, "the link proxy (%s) is NOT running: the linked standbys are cut off; pgbenchx env down --name %s, then up again\n", which, c.Name)
	}
}

func loadEnv(cmd *cli.Command) (*env.Cluster, error) {
	return env.Store{Dir: env.DefaultStateDir()}.Load(cmd.String("name"))
}

// loadEnvProvider loads an env's state and the provider that built it,
// as the state records it.
func loadEnvProvider(cmd *cli.Command, opts env.Options) (*env.Cluster, env.Provider, error) {
	c, err := loadEnv(cmd)
	if err != nil {
		return nil, nil, err
	}
	p, err := env.ProviderOf(c, opts)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

// printNodeStates names the nodes whose server is not running (stopped,
// killed, frozen) as their provider sees them, and detached nodes: what
// explains a status row that could not be read.
func printNodeStates(ctx context.Context, w io.Writer, c *env.Cluster, p env.Provider) {
	ctl, err := p.Control(c)
	if err != nil {
		return
	}
	for _, n := range c.AllNodes() {
		st, err := ctl.State(ctx, n.Name)
		if err != nil {
			continue
		}
		switch {
		case n.Role == env.RoleDetached:
			fmt.Fprintf(w, "%s: detached after a failover (%s), primary is now %s\n", n.Name, st, c.Primary.Name)
		case st != env.NodeRunning:
			fmt.Fprintf(w, "%s: %s\n", n.Name, st)
		}
	}
}

func envStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "replication state of every node: LSNs, lag, slots",
		Description: `One row per node: role, port, whether it is in recovery, its walsender state
on its upstream, sent and replay LSN, lag in bytes (primary's current LSN
minus the standby's pg_last_wal_replay_lsn()) and in time (replay_lag from
pg_stat_replication; '-' when unknown, e.g. on an idle primary, never 0),
whether its slot is active and how much WAL the slot retains.

Examples:
  pgbenchx env status
  pgbenchx env status --name lab2 --format json | jq '.[] | {node, lag_bytes}'`,
		Flags: []cli.Flag{
			nameFlag,
			&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			format := cmd.String("format")
			if format != "table" && format != "json" {
				return &input.Error{Flag: "format", Value: format, Accepted: "accepted: table or json"}
			}
			c, p, err := loadEnvProvider(cmd, env.Options{})
			if err != nil {
				return err
			}
			st := env.Status(ctx, c)
			out := cmd.Root().Writer
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(out, c, st)
			printNodeStates(ctx, out, c, p)
			if c.Sync != "" {
				fmt.Fprintf(out, "synchronous_standby_names on %s: %s\n", c.Primary.Name, c.Sync)
			}
			printLinks(out, c)
			printProxies(out, c)
			return nil
		},
	}
}

// printProxies lists the env's proxies (via: targets of run), whether
// each runs, and where it logs; and a Patroni stack's leader.
func printProxies(w io.Writer, c *env.Cluster) {
	for _, px := range c.Proxies {
		state := "running"
		if !env.ProxyRuns(px) {
			state = "NOT RUNNING"
		}
		fmt.Fprintf(w, "proxy via:%s (%s): %s; log %s\n", px.Name(), state, px.Describe(), px.LogFile)
	}
	if c.Patroni != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		leader, err := env.PatroniLeader(ctx, c)
		if err != nil {
			leader = "unknown (" + err.Error() + ")"
		}
		fmt.Fprintf(w, "stack: patroni (scope %s, etcd on 127.0.0.1:%d); leader now, as Patroni says: %s\n", c.Patroni.Scope, c.Patroni.EtcdPort, leader)
	}
}

func envVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check the lab's success criteria; exit 0 only if all pass",
		Description: `Runs the checks of the manual multi-standby lab and names each one:
  streaming   pg_stat_replication has one 'streaming' row per standby
  slots       one active replication slot per standby
  recovery    every standby reports pg_is_in_recovery()
  rows        rows written on the primary appear, same count, on every standby
  read-only   an INSERT on each standby fails with SQLSTATE 25006
  lag         lag per standby (bytes and time), printed

Example:
  pgbenchx env verify --name lab2 && echo ready`,
		Flags: []cli.Flag{nameFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, p, err := loadEnvProvider(cmd, env.Options{})
			if err != nil {
				return err
			}
			out := cmd.Root().Writer
			printNodeStates(ctx, out, c, p)
			checks := env.Verify(ctx, c, env.VerifyOptions{Tables: workload.Tables})
			failed := 0
			for _, ch := range checks {
				verdict := "PASS"
				if !ch.Pass {
					verdict, failed = "FAIL", failed+1
				}
				fmt.Fprintf(out, "%s  %-10s %s\n", verdict, ch.Name, ch.Detail)
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("env %q: %d of %d checks failed", c.Name, failed, len(checks)), exitFailure)
			}
			fmt.Fprintf(out, "env %q: all %d checks passed\n", c.Name, len(checks))
			return nil
		},
	}
}

func envDSNCommand() *cli.Command {
	return &cli.Command{
		Name:  "dsn",
		Usage: "print a node's full connection string (password included) for scripts",
		Description: `Prints the DSN with its password, for tools that need to connect.
Everything else pgbenchx prints shows passwords as xxxxx.

Examples:
  psql "$(pgbenchx env dsn --node standby1)"
  pgbench -n -S -T 10 "$(pgbenchx env dsn --node primary)"
  psql "$(pgbenchx env dsn --node pgpool)"      # an env's proxy (env up --proxy pgpool)`,
		Flags: []cli.Flag{
			nameFlag,
			&cli.StringFlag{Name: "node", Usage: "primary, standby1, standby2, ..., or a proxy: pgpool, haproxy (default: whichever node is the primary now, also after a failover)"},
		},
		Action: func(_ context.Context, cmd *cli.Command) error {
			c, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			name := cmd.String("node")
			if name == "" {
				name = c.Primary.Name
			}
			for _, px := range c.Proxies {
				// A proxy's read port, as run's via: reads reach it.
				if name == px.Name() || name == "via:"+px.Name() {
					fmt.Fprintln(cmd.Root().Writer, px.DSN(&c.Primary, c.Primary.Password))
					return nil
				}
			}
			n, err := c.Node(name)
			if err != nil {
				return err
			}
			if n.Role == env.RoleDetached {
				// The old primary after a failover may still take writes:
				// a script must not reach it thinking it is the primary.
				return input.Bad("node", name, "%s left replication (the old primary after a failover); the primary is now %s", name, c.Primary.Name)
			}
			fmt.Fprintln(cmd.Root().Writer, n.DSN())
			return nil
		},
	}
}

func envDownCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "stop every node and remove the env's folders and state",
		Description: `Stops standbys (fast shutdown, then immediate), then the primary, drops the
replication slots, and removes the data folders and the state file, through
the provider that built the env (its state file says which). Also cleans up
an env whose builder died half way, and one whose nodes were stopped,
killed, frozen or failed over.

Example:
  pgbenchx env down --name lab2`,
		Flags: []cli.Flag{nameFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			name := cmd.String("name")
			if err := env.ValidateName(name); err != nil {
				return err
			}
			out := cmd.Root().Writer
			_, p, err := loadEnvProvider(cmd, env.Options{
				Store: env.Store{Dir: env.DefaultStateDir()},
				Step:  func(step string, took time.Duration) { fmt.Fprintf(out, "  %-24s %6.2fs\n", step, took.Seconds()) },
			})
			if err != nil {
				return err
			}
			// Down runs to the end even after Ctrl-C: a half-stopped env is
			// worse than a slow exit.
			if err := p.Down(context.WithoutCancel(ctx), name); err != nil {
				return err
			}
			fmt.Fprintf(out, "env %q is down\n", name)
			return nil
		},
	}
}

func envListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the envs this user has",
		Action: func(_ context.Context, cmd *cli.Command) error {
			store := env.Store{Dir: env.DefaultStateDir()}
			names, err := store.Names()
			if err != nil {
				return err
			}
			rows := [][]string{}
			for _, name := range names {
				c, err := store.Load(name)
				if err != nil {
					rows = append(rows, []string{name, "unreadable", "", "", ""})
					continue
				}
				alive := env.Alive(c)
				running := 0
				for _, ok := range alive {
					if ok {
						running++
					}
				}
				rows = append(rows, []string{name, c.Status, fmt.Sprint(len(c.Standbys)), string(c.Topology), fmt.Sprintf("%d/%d", running, len(alive))})
			}
			if len(rows) == 0 {
				fmt.Fprintln(cmd.Root().Writer, "no envs (start one with: pgbenchx env up)")
				return nil
			}
			renderTable(cmd.Root().Writer, []string{"name", "status", "standbys", "topology", "running"}, rows)
			return nil
		},
	}
}
