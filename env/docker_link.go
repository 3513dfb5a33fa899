package env

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// upstreamAddr is where standby n's replication connects: its upstream's
// container, or for a standby behind a link the link proxy's container.
func upstreamAddr(n *Node) (string, int) {
	if n.Link != nil {
		return "netproxy", n.Link.ReplPort
	}
	return n.Upstream, dockerPort
}

// ToolImage is pgbenchx's own image (make image): docker envs run their
// link proxy in it. PGBENCHX_TOOL_IMAGE names another.
func ToolImage() string {
	if s := os.Getenv("PGBENCHX_TOOL_IMAGE"); s != "" {
		return s
	}
	return "pgbenchx:dev"
}

// startLinkProxy starts the env's link proxy container and waits until
// it answers on its socket.
func (d *Docker) startLinkProxy(ctx context.Context, cli *client.Client, c *Cluster) error {
	t0 := time.Now()
	ports := network.PortMap{}
	exposed := network.PortSet{}
	for _, n := range c.Standbys {
		if n.Link == nil {
			continue
		}
		p := network.MustParsePort(strconv.Itoa(n.Link.ClientPort) + "/tcp")
		exposed[p] = struct{}{}
		ports[p] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(n.Link.ClientPort)}}
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: c.NetProxy.Container,
		// As the user who built the env: it reads their state file and
		// makes the socket they talk to it through.
		Config: &container.Config{Image: ToolImage(), User: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
			Labels: labelsOf(c, "netproxy"), ExposedPorts: exposed,
			Env: []string{NetProxyEnv + "=" + c.Name, StateDirEnv + "=/state", NetProxySocketEnv + "=/ctl/sock"}},
		HostConfig: &container.HostConfig{
			NetworkMode:  container.NetworkMode(networkName(c.Name)),
			PortBindings: ports,
			Mounts: []mount.Mount{
				{Type: mount.TypeBind, Source: d.Store.Dir, Target: "/state", ReadOnly: true},
				{Type: mount.TypeBind, Source: filepath.Dir(c.NetProxy.Socket), Target: "/ctl"},
			},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			networkName(c.Name): {Aliases: []string{"netproxy"}},
		}},
	})
	if err != nil {
		return fmt.Errorf("link proxy: docker: %w", err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("link proxy: docker: start: %w", err)
	}
	err = poll(ctx, netProxyWait, "the link proxy answering", nil, func() (bool, error) {
		if st, err := containerState(ctx, cli, created.ID); err != nil || st == NodeStopped {
			return false, fmt.Errorf("the link proxy container stopped: %s", containerTail(ctx, cli, created.ID))
		}
		return netReady(c), nil
	})
	if err != nil {
		return err
	}
	d.step("link proxy", t0)
	return nil
}
