package env

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
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
		if st, _ := containerState(ctx, cli, n.Container); st == NodeStopped {
			return nil
		}
		_, err := cli.ContainerKill(ctx, n.Container, client.ContainerKillOptions{Signal: "SIGKILL"})
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

func (dc *dockerControl) Promote(_ context.Context, node string) error {
	return fmt.Errorf("%s: promote: %w", node, errDockerUnsupported)
}

func (dc *dockerControl) Repoint(_ context.Context, standby, _ string) error {
	return fmt.Errorf("%s: repoint: %w", standby, errDockerUnsupported)
}

func (dc *dockerControl) Rewind(_ context.Context, standby, _ string) error {
	return fmt.Errorf("%s: rewind: %w", standby, errDockerUnsupported)
}

func (dc *dockerControl) Rebuild(_ context.Context, standby, _ string) error {
	return fmt.Errorf("%s: rebuild: %w", standby, errDockerUnsupported)
}

func (dc *dockerControl) SetSync(ctx context.Context, rule SyncRule) error {
	if err := setSync(ctx, dc.c.Primary.DSN(), rule); err != nil {
		return fmt.Errorf("%s: synchronous_standby_names %s: %w", dc.c.Primary.Name, orOff(rule.String()), err)
	}
	dc.c.Sync = rule.String()
	return dc.d.Store.Save(dc.c)
}
