package env

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/input"
)

// env up --stack patroni: the cluster as many teams run it in production.
// One etcd (the DCS), one Patroni per node (Patroni bootstraps, starts,
// watches and fails over the node's postgres), and HAProxy routing by
// Patroni's REST health checks: a write port to whoever leads, a read
// port over the replicas that lag less than patroniReadLag. All on
// loopback, all owned by the env: in its state (c.Patroni, c.Proxies),
// logs under c.BaseDir/log, stopped by stopPatroni.
//
// What differs from an ordinary env: Patroni, not pgbenchx, decides who
// is primary (a killed leader is replaced by election, see killLeader);
// cluster_name is the scope on every node (Patroni sets it); standbys are
// pg_basebackup clones, not template copies; slots are named after the
// members (standby1, not standby1_slot).

// Bounds of upPatroni's waits. Measured here (2 standbys, --fast, 2
// cores), env up in 3.0-4.1 s: etcd healthy 0.1-0.3 s; the primary's
// Patroni holds the initialize key ~0.65 s after its start (Python's
// start-up, mostly) and leads ~1 s later (initdb, start, its roles, the
// next HA loop); both standbys stream 0.5-1.2 s after that (pg_basebackup
// with a fast checkpoint, start); HAProxy agrees with Patroni 0.2-1.2 s
// later (its first checks).
const (
	patroniBootstrapWait = 2 * time.Minute
	patroniStreamingWait = 2 * time.Minute
	// patroniStopWait is how long a Patroni gets to stop its postgres
	// (a fast shutdown and a checkpoint) before SIGKILL.
	patroniStopWait = 30 * time.Second
)

// upPatroni builds c as Patroni runs it. c comes from newCluster (names,
// users, passwords, OS user, folders chosen; nothing started). It starts
// etcd, then the member "primary" (it bootstraps with initdb and leads),
// then the standbys (they clone from it), waits until the leader's
// pg_stat_replication shows every standby streaming, creates the env's
// admin role, fills c.Patroni and the nodes, and starts the stack's
// HAProxy (appended to c.Proxies). On error or ctx's end it stops what
// it started (the caller removes c.BaseDir).
func (l *Local) upPatroni(ctx context.Context, c *Cluster) (err error) {
	if err := patroniSupports(c); err != nil {
		return err
	}
	u := clusterUser(c)
	patroni, err := stackBinary("patroni")
	if err != nil {
		return err
	}
	if _, err := stackBinary("haproxy"); err != nil {
		return err
	}
	c.Stack = StackPatroni
	c.Patroni = &PatroniStack{Scope: patroniScope(c)}
	// The state names every process as soon as it runs: a crash of this
	// command leaves what down needs to stop them.
	save := func() error { return l.Store.Save(c) }
	defer func() {
		if err != nil {
			if serr := stopPatroni(c); serr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", serr))
			}
		}
	}()
	nodes := c.Nodes()
	for _, n := range nodes {
		if n.Port, err = freePort(); err != nil {
			return fmt.Errorf("%s: free port: %w", n.Name, err)
		}
		rest, err := freePort()
		if err != nil {
			return fmt.Errorf("%s: free port for Patroni's REST API: %w", n.Name, err)
		}
		c.Patroni.RESTPorts = append(c.Patroni.RESTPorts, rest)
		// Patroni makes data folders itself (initdb, pg_basebackup).
		n.Slot, n.PID = "", 0
		if n.Role == RoleStandby {
			n.Slot = patroniSlot(n.Name)
		}
	}
	err = l.timed("etcd", func() error { return startEtcd(ctx, c, u, save) })
	if err != nil {
		return err
	}
	exited := make([]<-chan struct{}, len(nodes))
	start := func(i int) error {
		n := nodes[i]
		cfg, err := writePatroniConfig(c, u, n, c.Patroni.RESTPorts[i])
		if err != nil {
			return err
		}
		if err := touchOwned(u, n.LogFile); err != nil {
			return fmt.Errorf("%s: log file: %w", n.Name, err)
		}
		p, done, err := startStack(u, stackCmd{
			name: n.Name + " patroni", bin: patroni, args: []string{cfg},
			dir: patroniMemberDir(c, n.Name), logFile: patroniLogFile(c, n.Name),
		})
		if err != nil {
			return err
		}
		p.Name = n.Name
		c.Patroni.Members = append(c.Patroni.Members, p)
		exited[i] = done
		return save()
	}
	// The primary first, alone, until it holds the DCS's initialize key:
	// a standby started with it could win the race to bootstrap. Once the
	// key is taken, the standbys' Patroni start (Python takes ~1 s) while
	// the primary still runs initdb; they clone as soon as it leads.
	err = l.timed("primary patroni bootstrapping", func() error {
		if err := start(0); err != nil {
			return err
		}
		key := patroniNamespace + c.Patroni.Scope + "/initialize"
		return waitStack(ctx, c.Patroni.Members[0], exited[0], patroniBootstrapWait, "holding the initialize key", func() bool {
			ok, _ := etcdHasKey(ctx, c.Patroni.EtcdPort, key)
			return ok
		})
	})
	if err != nil {
		return err
	}
	for i := 1; i < len(nodes); i++ {
		if err := start(i); err != nil {
			return err
		}
	}
	err = l.timed("primary leads", func() error {
		return waitStack(ctx, c.Patroni.Members[0], exited[0], patroniBootstrapWait, "leading", func() bool {
			code, _ := getStatusJSON(ctx, patroniURL(c, 0, "/primary"), nil)
			return code == 200
		})
	})
	if err != nil {
		return err
	}
	err = l.timed("standbys streaming", func() error { return patroniStreaming(ctx, c, exited) })
	if err != nil {
		return err
	}
	for _, n := range nodes {
		n.PID = postmasterPID(n.DataDir)
	}
	if err := save(); err != nil {
		return err
	}
	return l.timed("haproxy", func() error { return startPatroniHAProxy(ctx, c, u, save) })
}

// patroniSupports refuses what an ordinary env can be asked for but a
// Patroni stack here does not do, rather than build something else than
// asked: Patroni decides where standbys stream from and starts the
// postmasters itself (no cgroup to put them in, no link proxy to point
// them through), and it would reset a recovery_min_apply_delay of ours.
func patroniSupports(c *Cluster) error {
	if c.Topology == Cascade {
		return input.Bad("topology", string(c.Topology), "--stack patroni streams every standby from the leader; drop --topology")
	}
	if c.NetProxy != nil {
		return input.Bad("net-delay", "", "slow links are not built for --stack patroni")
	}
	for _, n := range c.Nodes() {
		if n.ApplyDelay > 0 {
			return input.Bad("apply-delay", n.Name, "not with --stack patroni")
		}
		if n.CPUs > 0 || n.Cgroup != "" {
			return input.Bad("cpus", n.Name, "CPU caps are not applied under --stack patroni (Patroni starts the servers)")
		}
	}
	return nil
}

// patroniSlot is the slot Patroni makes for a member on its leader
// (use_slots): the member's name, lower case, other characters than
// [a-z0-9_] made '_'. Our names need none of that.
func patroniSlot(member string) string { return member }

func patroniLogFile(c *Cluster, name string) string {
	return filepath.Join(c.BaseDir, "log", name+"-patroni.log")
}

// patroniStreaming makes the env's admin role on the leader, then waits
// until its pg_stat_replication shows every standby streaming and having
// replayed that role (clients and pgbenchx's own management connect as
// soon as up returns). A member's Patroni that exits fails it at once.
func patroniStreaming(ctx context.Context, c *Cluster, exited []<-chan struct{}) error {
	leader := &c.Primary
	conn, err := pgx.Connect(ctx, leader.SocketDSN())
	if err != nil {
		return fmt.Errorf("%s: connect as %s: %w", leader.Name, leader.User, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// As our template has it (template.go): superuser, no password, in
	// over the socket by peer identity only (patroniHBA).
	var lsn string
	_, err = conn.Exec(ctx, `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '`+adminUser+`') THEN CREATE ROLE `+adminUser+` WITH SUPERUSER LOGIN; END IF; END $$`)
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn)
	}
	if err != nil {
		return fmt.Errorf("%s: create role %s: %w", leader.Name, adminUser, err)
	}
	want := map[string]string{}
	for _, s := range c.Standbys {
		want[s.Name] = "absent"
	}
	last := func() string {
		var parts []string
		for name, state := range want {
			parts = append(parts, name+" "+state)
		}
		sort.Strings(parts)
		return "pg_stat_replication on " + leader.Name + ": " + strings.Join(parts, ", ")
	}
	deadline := time.Now().Add(patroniStreamingWait)
	for {
		rows, err := conn.Query(ctx, `SELECT application_name, state, coalesce(replay_lsn >= $1::pg_lsn, false) FROM pg_stat_replication`, lsn)
		if err != nil {
			return fmt.Errorf("%s: poll pg_stat_replication: %w", leader.Name, err)
		}
		var name, state string
		var replayed bool
		done := 0
		_, err = pgx.ForEachRow(rows, []any{&name, &state, &replayed}, func() error {
			if _, ok := want[name]; ok {
				want[name] = state
				if state == "streaming" && replayed {
					done++
				} else if state == "streaming" {
					want[name] = "streaming, not yet at " + lsn
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: poll pg_stat_replication: %w", leader.Name, err)
		}
		if done == len(want) {
			return nil
		}
		for i, ch := range exited {
			select {
			case <-ch:
				m := c.Patroni.Members[i]
				return fmt.Errorf("%s's Patroni exited: %s", m.Name, lastLines(logSince(m.LogFile, 0), 5))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("standbys streaming: not after %s (%s; see %s)", patroniStreamingWait, last(), filepath.Join(c.BaseDir, "log"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standbys streaming: %w (%s)", ctx.Err(), last())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopPatroni stops a Patroni stack: its HAProxy, every member's Patroni
// (replicas first, so that no replica races for a leader key the leader
// gives up as it stops; each stops its postgres), any postgres left
// running (a Patroni killed by killLeader leaves none, but a crash of
// Patroni could), then etcd. It is idempotent, leaves no process of the
// stack running, and removes nothing on disk.
func stopPatroni(c *Cluster) error {
	var errs []error
	for _, p := range c.Proxies {
		if p.For == StackPatroni {
			// proxy.go's: SIGTERM, then every process of its session.
			errs = append(errs, stopProxy(p))
		}
	}
	if c.Patroni == nil {
		return errors.Join(errs...)
	}
	leader := ""
	if len(c.Patroni.Members) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		leader, _ = patroniLeader(ctx, c)
		cancel()
	}
	var replicas, leaders []int
	for i, m := range c.Patroni.Members {
		if m.Name == leader {
			leaders = append(leaders, i)
		} else {
			replicas = append(replicas, i)
		}
	}
	var mu sync.Mutex
	for _, group := range [][]int{replicas, leaders} {
		var wg sync.WaitGroup
		for _, i := range group {
			m := c.Patroni.Members[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := stopStack(m, patroniStopWait)
				if n, nerr := c.Node(m.Name); nerr == nil {
					// Patroni stopped its postgres; what it could not
					// (it was killed) we do.
					err = errors.Join(err, stopNode(n))
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	errs = append(errs, stopStack(c.Patroni.Etcd, 10*time.Second))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("env %q: stop Patroni stack: %w", c.Name, err)
	}
	return nil
}
