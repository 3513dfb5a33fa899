package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
)

// nodeAction is one node-control command: what it does and how --help
// says it.
type nodeAction struct {
	name, usage, description string
	do                       func(ctx context.Context, c *env.Cluster, ctl env.Controller, node string) error
}

// nodeActions are the faults of `run --fault`, by hand on an env.
func nodeActions() []nodeAction {
	return []nodeAction{
		{"kill", "crash a node: SIGKILL to its postmaster and every process under it",
			"As a host crash would: nothing is flushed or said to clients. 'env start' (or restart) runs crash recovery.",
			func(ctx context.Context, _ *env.Cluster, c env.Controller, n string) error { return c.Kill(ctx, n) }},
		{"stop", "stop a node cleanly (fast shutdown)",
			"pg_ctl stop -m fast: clients are disconnected, a primary sends its standbys all WAL up to the shutdown checkpoint.",
			func(ctx context.Context, _ *env.Cluster, c env.Controller, n string) error { return c.Stop(ctx, n) }},
		{"start", "start a stopped or killed node again",
			"Same data folder and port; waits until it accepts connections and, for a standby, streams again.",
			func(ctx context.Context, _ *env.Cluster, c env.Controller, n string) error { return c.Start(ctx, n) }},
		{"restart", "stop a node (if it runs) and start it again",
			"A frozen node is thawed and stopped first; waits as start does.",
			func(ctx context.Context, _ *env.Cluster, c env.Controller, n string) error {
				return env.Restart(ctx, c, n)
			}},
		{"freeze", "hang a node: SIGSTOP to its processes (connections stay open, nothing answers)",
			"A hung host, the hardest failure for a client: nothing refuses, nothing answers. 'env thaw' resumes it.",
			func(ctx context.Context, _ *env.Cluster, c env.Controller, n string) error { return c.Freeze(ctx, n) }},
		{"thaw", "resume a frozen node (SIGCONT)", "",
			func(ctx context.Context, _ *env.Cluster, c env.Controller, n string) error { return c.Thaw(ctx, n) }},
		{"partition", "cut a standby's slow link both ways: a network partition (the env needs --net-delay or --net-bandwidth on it)",
			"Nothing goes through, in its clients' connections or its replication (what is sent is dropped), and nothing is closed: reads hang until --query-timeout, replication stalls. 'env heal' ends it. Nothing is recorded: heal before the env is used again.",
			func(_ context.Context, c *env.Cluster, _ env.Controller, n string) error { return env.Partition(c, n) }},
		{"heal", "end a partition: the connections that were cut are closed, clients and replication connect again", "",
			func(_ context.Context, c *env.Cluster, _ env.Controller, n string) error { return env.Heal(c, n) }},
	}
}

func nodeCommands() []*cli.Command {
	var out []*cli.Command
	for _, a := range nodeActions() {
		desc := a.description
		if desc != "" {
			desc += "\n\n"
		}
		same := fmt.Sprintf("The same as run --fault AT:%s:NODE, by hand.", a.name)
		if a.name == "start" { // not a fault: a run restarts what it killed
			same = "By hand only: a run's --fault uses restart to bring a node back."
		}
		out = append(out, &cli.Command{
			Name:  a.name,
			Usage: a.usage,
			Description: desc + same + ` The env's state file follows
what the node does (pgbenchx env status shows it).

Example:
  pgbenchx env ` + a.name + ` --node standby2`,
			Flags: []cli.Flag{
				nameFlag,
				&cli.StringFlag{Name: "node", Usage: "the node: primary, standby1, standby2, ..."},
			},
			Action: func(ctx context.Context, cmd *cli.Command) error {
				node := cmd.String("node")
				if node == "" {
					return input.Bad("node", "", "name the node to %s: primary, standby1, standby2, ...", a.name)
				}
				c, ctl, err := envController(cmd)
				if err != nil {
					return err
				}
				if _, err := c.Node(node); err != nil {
					return err
				}
				if c.Patroni != nil {
					return input.Bad("node", node, "env %q is run by Patroni, which restarts what it sees stop: use env failover (kills the leader, Patroni elects), or patronictl", c.Name)
				}
				t0 := time.Now()
				if err := a.do(ctx, c, ctl, node); err != nil {
					return fmt.Errorf("env %q: %s %s: %w", c.Name, a.name, node, err)
				}
				fmt.Fprintf(cmd.Root().Writer, "%s: %s done in %s\n", node, a.name, time.Since(t0).Round(time.Millisecond))
				return nil
			},
		})
	}
	return out
}

func envFailoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "failover",
		Usage: "lose the primary: kill it, promote a standby, make every other standby follow it",
		Description: `What the lab guide's failover does by hand: the primary goes down hard
(SIGKILL), --to is promoted (pg_promote), and every other standby gets a slot
on it, follows its new timeline and streams again. The old primary is left
detached (env down removes it). Prints how long each step took; the state
file then says which node is the primary (env status, env dsn follow it),
and env verify checks the new topology.

The same during a benchmark, measured: pgbenchx run --fault 10s:failover:standby1
A standby behind a slow link (--net-delay) follows through its link. A
frozen or stopped --to is refused before the primary is touched.

Example:
  pgbenchx env failover --to standby1

On a Patroni env (env up --stack patroni) the leader is killed and Patroni
elects the next one itself (--to is then only what you expected).`,
		Flags: []cli.Flag{
			nameFlag,
			&cli.StringFlag{Name: "to", Usage: "the standby to promote, e.g. standby1"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			to := cmd.String("to")
			if to == "" {
				return input.Bad("to", "", "name the standby to promote, e.g. --to standby1")
			}
			c, ctl, err := envController(cmd)
			if err != nil {
				return err
			}
			r, err := env.Failover(ctx, ctl, c, to, nil)
			if r != nil && r.OldPrimary != "" {
				fmt.Fprintln(cmd.Root().Writer, r.String())
			}
			if err != nil {
				return fmt.Errorf("env %q: %w", c.Name, err)
			}
			fmt.Fprintf(cmd.Root().Writer, "%s is the primary; every standby streams from it after %s. Next: pgbenchx env verify --name %s\n",
				r.NewPrimary, r.Total.Round(time.Millisecond), c.Name)
			return nil
		},
	}
}

// envController loads the env named by --name and its provider's
// controller.
func envController(cmd *cli.Command) (*env.Cluster, env.Controller, error) {
	c, p, err := loadEnvProvider(cmd, env.Options{Store: env.Store{Dir: env.DefaultStateDir()}})
	if err != nil {
		return nil, nil, err
	}
	ctl, err := p.Control(c)
	if err != nil {
		return nil, nil, err
	}
	return c, ctl, nil
}
