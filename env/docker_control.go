package env

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"

	"github.com/pgbenchx/pgbenchx/input"
)

// Control is the env's node control through the engine.
func (d *Docker) Control(c *Cluster) (Controller, error) {
	return &dockerControl{d: d, c: c}, nil
}

type dockerControl struct {
	d *Docker
	c *Cluster
}

// errDockerUnsupported marks what the docker provider cannot do yet.
var errDockerUnsupported = errors.New("not on the docker provider yet")

func (dc *dockerControl) with(ctx context.Context, node string, f func(cli *client.Client, n *Node) error) error {
	n, err := dc.c.Node(node)
	if err != nil {
		return err
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := f(cli, n); err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	return nil
}

func (dc *dockerControl) Kill(ctx context.Context, node string) error {
	return dc.with(ctx, node, func(cli *client.Client, n *Node) error {
		// An engine that does not answer is not a dead node: a failover
		// going on would make a second primary.
		st, err := containerState(ctx, cli, n.Container)
		if err != nil {
			return err
		}
		if st == NodeStopped {
			return nil
		}
		_, err = cli.ContainerKill(ctx, n.Container, client.ContainerKillOptions{Signal: "SIGKILL"})
		return err
	})
}

func (dc *dockerControl) Stop(ctx context.Context, node string) error {
	return dc.with(ctx, node, func(cli *client.Client, n *Node) error {
		if st, _ := containerState(ctx, cli, n.Container); st == NodeFrozen {
			if _, err := cli.ContainerUnpause(ctx, n.Container, client.ContainerUnpauseOptions{}); err != nil {
				return err
			}
		}
		timeout := 30
		_, err := cli.ContainerStop(ctx, n.Container, client.ContainerStopOptions{Timeout: &timeout})
		return err
	})
}

func (dc *dockerControl) Start(ctx context.Context, node string) error {
	return dc.with(ctx, node, func(cli *client.Client, n *Node) error {
		switch st, err := containerState(ctx, cli, n.Container); {
		case err != nil:
			return err
		case st == NodeFrozen:
			return fmt.Errorf("frozen (thaw it first)")
		case st == NodeStopped:
			if _, err := cli.ContainerStart(ctx, n.Container, client.ContainerStartOptions{}); err != nil {
				return err
			}
		}
		if err := waitReady(ctx, n); err != nil {
			return err
		}
		if n.Role == RoleStandby {
			up, err := dc.c.Node(n.Upstream)
			if err != nil {
				return err
			}
			// An upstream that is down or frozen has nothing to stream:
			// the standby being ready is all there is to wait for.
			if st, err := containerState(ctx, cli, up.Container); err != nil || st != NodeRunning {
				return nil
			}
			return waitStreamingFrom(ctx, up, n.Name)
		}
		return nil
	})
}

func (dc *dockerControl) Freeze(ctx context.Context, node string) error {
	return dc.with(ctx, node, func(cli *client.Client, n *Node) error {
		_, err := cli.ContainerPause(ctx, n.Container, client.ContainerPauseOptions{})
		return err
	})
}

func (dc *dockerControl) Thaw(ctx context.Context, node string) error {
	return dc.with(ctx, node, func(cli *client.Client, n *Node) error {
		if st, _ := containerState(ctx, cli, n.Container); st != NodeFrozen {
			return nil
		}
		_, err := cli.ContainerUnpause(ctx, n.Container, client.ContainerUnpauseOptions{})
		return err
	})
}

func (dc *dockerControl) State(ctx context.Context, node string) (NodeState, error) {
	n, err := dc.c.Node(node)
	if err != nil {
		return "", err
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	return containerState(ctx, cli, n.Container)
}

// Promote makes a standby the primary (pg_promote) and records it: the
// old primary is detached.
func (dc *dockerControl) Promote(ctx context.Context, name string) error {
	n, err := dc.c.Node(name)
	if err != nil {
		return err
	}
	if n.Role != RoleStandby {
		return input.Bad("node", name, "%s is not a standby (it is %s)", name, n.Role)
	}
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return fmt.Errorf("%s: connect: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var promoted, inRec bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(true, $1)`, int(dockerWait.Seconds())).Scan(&promoted); err != nil || !promoted {
		return fmt.Errorf("%s: pg_promote: not promoted (%v)", name, err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRec); err != nil || inRec {
		return fmt.Errorf("%s: still in recovery after pg_promote (%v)", name, err)
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	if err := recordPromotion(dc.c, name); err != nil {
		return err
	}
	return dc.d.Store.Save(dc.c)
}

// Repoint makes a standby stream from another upstream: a slot there,
// primary_conninfo and primary_slot_name by ALTER SYSTEM on the standby
// and a reload (the walreceiver reconnects), then a wait until it
// streams on the upstream's timeline. A standby that replayed past the
// upstream's fork says so in its log: ErrForked.
func (dc *dockerControl) Repoint(ctx context.Context, standby, upstream string) error {
	sb, up, err := dc.pair(standby, upstream)
	if err != nil {
		return err
	}
	slot := SlotName(sb.Name)
	if err := ensureSlotOn(ctx, up, slot); err != nil {
		return fmt.Errorf("%s: slot %s on %s: %w", standby, slot, upstream, err)
	}
	conn, err := pgx.Connect(ctx, sb.DSN())
	if err != nil {
		return fmt.Errorf("%s: connect: %w", standby, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	host, port := upstream, dockerPort
	if sb.Link != nil { // through its link: the proxy follows the new upstream
		if err := routeLinkTo(dc.c, sb, sb.Name+":"+strconv.Itoa(dockerPort), upstream+":"+strconv.Itoa(dockerPort)); err != nil {
			return err
		}
		host, port = "netproxy", sb.Link.ReplPort
	}
	ci := fmt.Sprintf("host=%s port=%d user=%s passfile=%s/.pgpass application_name=%s", host, port, dc.c.ReplUser, dockerHome, sb.Name)
	for _, q := range []string{
		fmt.Sprintf(`ALTER SYSTEM SET primary_conninfo = '%s'`, ci), // names only: nothing to quote
		fmt.Sprintf(`ALTER SYSTEM SET primary_slot_name = '%s'`, slot),
		`SELECT pg_reload_conf()`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", standby, err)
		}
	}
	if err := dc.waitFollowing(ctx, sb, up); err != nil {
		return err
	}
	return dc.record(standby, upstream, slot)
}

// waitFollowing waits until up shows sb streaming on up's own timeline,
// or sb's log says it cannot follow (ErrForked).
func (dc *dockerControl) waitFollowing(ctx context.Context, sb, up *Node) error {
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	uc, err := pgx.Connect(ctx, up.DSN())
	if err != nil {
		return fmt.Errorf("%s: %w", up.Name, err)
	}
	defer uc.Close(context.WithoutCancel(ctx))
	return poll(ctx, dockerWait, sb.Name+" streaming from "+up.Name, nil, func() (bool, error) {
		if line := forkLine(containerTail(ctx, cli, sb.Container)); line != "" {
			return false, fmt.Errorf("%s cannot stream from %s: %s: %w", sb.Name, up.Name, line, ErrForked)
		}
		var n int
		if err := uc.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, sb.Name).Scan(&n); err != nil || n == 0 {
			return false, err
		}
		var want, got *int32
		if err := uc.QueryRow(ctx, upstreamTimeline).Scan(&want); err != nil {
			return false, err
		}
		sc, err := pgx.Connect(ctx, sb.DSN())
		if err != nil {
			return false, nil
		}
		defer sc.Close(context.WithoutCancel(ctx))
		if err := sc.QueryRow(ctx, `SELECT received_tli FROM pg_stat_wal_receiver`).Scan(&got); err != nil {
			return false, nil
		}
		return want == nil || got != nil && *want == *got, nil
	})
}

// Rewind is not offered on docker: a standby ahead of the fork is rebuilt.
func (dc *dockerControl) Rewind(_ context.Context, standby, _ string) error {
	return fmt.Errorf("%s: pg_rewind: %w", standby, errDockerUnsupported)
}

// Rebuild makes the standby anew from its new upstream: its container and
// volume removed, a pg_basebackup from the upstream, the server started.
func (dc *dockerControl) Rebuild(ctx context.Context, standby, upstream string) error {
	sb, up, err := dc.pair(standby, upstream)
	if err != nil {
		return err
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.ContainerRemove(ctx, sb.Container, client.ContainerRemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("%s: %w", standby, err)
	}
	if _, err := cli.VolumeRemove(ctx, containerName(dc.c.Name, sb.Name), client.VolumeRemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("%s: %w", standby, err)
	}
	slot := SlotName(sb.Name)
	if err := ensureSlotOn(ctx, up, slot); err != nil {
		return fmt.Errorf("%s: slot %s on %s: %w", standby, slot, upstream, err)
	}
	n := *sb
	n.Upstream, n.Slot = upstream, slot
	if err := dc.d.baseBackup(ctx, cli, dc.c, &n); err != nil {
		return err
	}
	if err := dc.d.run(ctx, cli, dc.c, &n, Spec{}); err != nil {
		return err
	}
	if err := dc.waitFollowing(ctx, &n, up); err != nil {
		return err
	}
	return dc.record(standby, upstream, slot)
}

// pair finds a standby and the node it is to stream from.
func (dc *dockerControl) pair(standby, upstream string) (*Node, *Node, error) {
	sb, err := dc.c.Node(standby)
	if err != nil {
		return nil, nil, err
	}
	up, err := dc.c.Node(upstream)
	if err != nil {
		return nil, nil, err
	}
	if sb.Role != RoleStandby {
		return nil, nil, input.Bad("node", standby, "%s is not a standby", standby)
	}
	return sb, up, nil
}

// record saves a standby's new upstream and slot.
func (dc *dockerControl) record(standby, upstream, slot string) error {
	stateMu.Lock()
	defer stateMu.Unlock()
	for i := range dc.c.Standbys {
		if dc.c.Standbys[i].Name == standby {
			dc.c.Standbys[i].Upstream, dc.c.Standbys[i].Slot = upstream, slot
		}
	}
	return dc.d.Store.Save(dc.c)
}

// ensureSlotOn makes a physical slot on n unless it has one.
func ensureSlotOn(ctx context.Context, n *Node, slot string) error {
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, slot)
	return err
}

func (dc *dockerControl) SetSync(ctx context.Context, rule SyncRule) error {
	if err := setSync(ctx, dc.c.Primary.DSN(), rule); err != nil {
		return fmt.Errorf("%s: synchronous_standby_names %s: %w", dc.c.Primary.Name, orOff(rule.String()), err)
	}
	dc.c.Sync = rule.String()
	return dc.d.Store.Save(dc.c)
}
