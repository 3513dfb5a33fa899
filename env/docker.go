package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/pgbenchx/pgbenchx/input"
)

// DockerName is the docker provider's name (env up --provider docker).
const DockerName = "docker"

// DefaultImage is the image docker envs run: the one `make docker-image`
// builds from Debian's packages (nothing can be pulled here).
const DefaultImage = "pgbenchx-postgres:15"

// Labels on every container, volume and network of a docker env: what
// Down, and the next Up of a name a dead run left behind, remove by.
const (
	LabelEnv  = "io.pgbenchx.env"
	LabelNode = "io.pgbenchx.node"
)

const (
	// dockerHome is where a node's volume is mounted: the path official
	// postgres images declare as a VOLUME, so no anonymous volume hides
	// ours; the data folder is a folder of it, and so is the .pgpass.
	dockerHome = "/var/lib/postgresql/data"
	dockerData = dockerHome + "/pg"
	dockerPort = 5432
	dockerWait = time.Minute
)

func init() {
	Register(DockerName, func(o Options) Provider {
		img := o.Image
		if img == "" {
			img = DefaultImage
		}
		return &Docker{Store: o.Store, Step: o.Step, Image: img}
	})
}

// Docker builds an env as containers of one image on a network of its
// own: pgbenchx runs initdb, pg_basebackup and postgres in them itself as
// the postgres user (no image entrypoint is relied on), each node's data
// on a volume, its port published on 127.0.0.1 only. Node control maps
// onto containers: kill and stop are the container's, freeze and thaw
// its pause and unpause.
type Docker struct {
	Store Store
	Step  StepFunc
	Image string
}

// Name is "docker".
func (d *Docker) Name() string { return DockerName }

func (d *Docker) step(step string, t0 time.Time) {
	if d.Step != nil {
		d.Step(step, time.Since(t0))
	}
}

// dockerClient reaches the engine the environment names (DOCKER_HOST),
// else the local socket, and says so plainly when none answers.
func dockerClient(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker: no engine answers (%w)", err)
	}
	return cli, nil
}

func containerName(env, node string) string { return "pgbenchx-" + env + "-" + node }
func networkName(env string) string         { return "pgbenchx-" + env }

// Up builds the env; on failure it removes what it built.
func (d *Docker) Up(ctx context.Context, spec Spec) (_ *Cluster, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := CheckProvider(DockerName, spec); err != nil {
		return nil, err
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, d.Image); err != nil {
		return nil, input.Bad("image", d.Image, "no such image here; build it with: make docker-image (nothing can be pulled)")
	}
	if len(spec.NetLinks) > 0 {
		if _, err := cli.ImageInspect(ctx, ToolImage()); err != nil {
			return nil, input.Bad("net-delay", "", "slow links on docker run pgbenchx's own image %s as their proxy: build it with make image", ToolImage())
		}
	}
	owner := ownerOf(d.Store)
	if err := d.clearStale(ctx, cli, spec.Name, owner); err != nil {
		return nil, err
	}
	c, err := d.newCluster(spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			// The state stays while anything labelled is left: env down
			// can then still find it.
			if rerr := removeByLabel(cctx, cli, c.Name, owner); rerr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w (state kept: pgbenchx env down --name %s)", rerr, c.Name))
				return
			}
			_ = os.RemoveAll(filepath.Join(d.Store.Dir, c.Name+".link"))
			err = errors.Join(err, d.Store.Remove(c.Name))
		}
	}()
	t0 := time.Now()
	if _, err := cli.NetworkCreate(ctx, networkName(c.Name), client.NetworkCreateOptions{Labels: labelsOf(c, "")}); err != nil {
		return nil, fmt.Errorf("docker: network: %w", err)
	}
	if c.NetProxy != nil {
		if err := d.startLinkProxy(ctx, cli, c); err != nil {
			return nil, err
		}
	}
	if err := d.initPrimary(ctx, cli, c, spec); err != nil {
		return nil, err
	}
	if err := d.run(ctx, cli, c, &c.Primary, spec); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, &c.Primary); err != nil {
		return nil, err
	}
	d.step("primary up", t0)
	t0 = time.Now()
	if err := d.primaryRoles(ctx, c); err != nil {
		return nil, err
	}
	// Standbys of the primary first; in a cascade, standby1's own then
	// copy from it once it streams, with slots on it.
	for _, round := range []func(n *Node) bool{
		func(n *Node) bool { return n.Upstream == c.Primary.Name },
		func(n *Node) bool { return n.Upstream != c.Primary.Name },
	} {
		var built []*Node
		for i := range c.Standbys {
			n := &c.Standbys[i]
			if !round(n) {
				continue
			}
			up, err := c.Node(n.Upstream)
			if err != nil {
				return nil, err
			}
			if up.Role == RoleStandby {
				if err := ensureSlotOn(ctx, up, n.Slot); err != nil {
					return nil, fmt.Errorf("%s: slot %s on %s: %w", n.Name, n.Slot, up.Name, err)
				}
			}
			if err := d.baseBackup(ctx, cli, c, n); err != nil {
				return nil, err
			}
			if err := d.run(ctx, cli, c, n, spec); err != nil {
				return nil, err
			}
			built = append(built, n)
		}
		for _, n := range built {
			up, _ := c.Node(n.Upstream)
			if err := waitStreamingFrom(ctx, up, n.Name); err != nil {
				return nil, err
			}
		}
	}
	d.step("standbys streaming", t0)
	if rule := spec.Sync.String(); rule != "" {
		if err := setSync(ctx, c.Primary.DSN(), spec.Sync); err != nil {
			return nil, fmt.Errorf("primary: synchronous_standby_names %s: %w", rule, err)
		}
		c.Sync = rule
	}
	c.Status = statusReady
	if err := d.Store.Save(c); err != nil {
		return nil, err
	}
	return c, nil
}

// newCluster lays the env out and claims its name with a state file.
func (d *Docker) newCluster(spec Spec) (*Cluster, error) {
	c := &Cluster{
		SchemaVersion: stateSchema, Name: spec.Name, Provider: DockerName, Status: statusBuilding,
		OwnerPID: os.Getpid(), CreatedAt: time.Now().UTC(), Topology: spec.Topology, Fast: spec.Fast,
		Settings: spec.Settings, ReplUser: "replicator", Image: d.Image, Owner: ownerOf(d.Store),
	}
	var err error
	if c.Primary.Password, err = newPassword(); err != nil {
		return nil, err
	}
	if c.ReplPassword, err = newPassword(); err != nil {
		return nil, err
	}
	node := func(name string, role Role) (Node, error) {
		port, err := freePort()
		n := Node{Name: name, Role: role, Host: "127.0.0.1", Port: port, User: "postgres", Password: c.Primary.Password,
			Database: "postgres", Container: containerName(spec.Name, name), CPUs: capOf(spec.CPUs, name),
			MemoryBytes: capOf(spec.Memory, name)}
		return n, err
	}
	if c.Primary, err = node("primary", RolePrimary); err != nil {
		return nil, err
	}
	for i := 1; i <= spec.Standbys; i++ {
		s, err := node(StandbyName(i), RoleStandby)
		if err != nil {
			return nil, err
		}
		s.Upstream, s.Slot, s.ApplyDelay = "primary", SlotName(s.Name), spec.ApplyDelay[s.Name]
		if spec.Topology == Cascade && i > 1 {
			s.Upstream = StandbyName(1)
		}
		c.Standbys = append(c.Standbys, s)
	}
	if err := planLinks(c, spec.NetLinks); err != nil {
		return nil, err
	}
	if c.NetProxy != nil {
		// A container of pgbenchx's image on the env's network: the
		// standbys' replication reaches it there. It reads the state
		// folder (read-only) and answers on a socket in a folder of the
		// state's, 0700.
		dir := filepath.Join(d.Store.Dir, spec.Name+".link")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		c.NetProxy = &NetProxy{Container: containerName(spec.Name, "netproxy"), Socket: filepath.Join(dir, "sock"), Listen: "0.0.0.0"}
	}
	if err := d.Store.Create(c); err != nil {
		return nil, fmt.Errorf("env %q: %w", spec.Name, err)
	}
	return c, nil
}

// initPrimary runs initdb on the primary's volume, as the postgres user,
// with the env's settings and access rules.
func (d *Docker) initPrimary(ctx context.Context, cli *client.Client, c *Cluster, spec Spec) error {
	senders := len(c.Standbys) + 10
	conf := []string{
		"listen_addresses = '*'", "wal_level = replica", "hot_standby = on", "wal_log_hints = on",
		fmt.Sprintf("max_wal_senders = %d", senders), fmt.Sprintf("max_replication_slots = %d", senders),
		"max_slot_wal_keep_size = '8GB'",
	}
	if c.Fast {
		conf = append(conf, "fsync = off")
	}
	for _, s := range spec.Settings {
		conf = append(conf, fmt.Sprintf("%s = '%s'", s.Key, strings.ReplaceAll(s.Value, "'", "''")))
	}
	// The superuser's password comes in through the environment of a
	// container removed when initdb is done, never on a command line.
	script := `set -e
umask 077
printf '%s\n' "$PGBX_PASSWORD" > /tmp/pw
initdb -D ` + dockerData + ` -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile=/tmp/pw --no-sync --no-instructions >/dev/null
rm -f /tmp/pw
cat >> ` + dockerData + `/postgresql.conf <<'PGBX'
` + strings.Join(conf, "\n") + `
PGBX
cat > ` + dockerData + `/pg_hba.conf <<'PGBX'
local   all          all                      trust
host    all          all          0.0.0.0/0   scram-sha-256
host    replication  ` + c.ReplUser + `   0.0.0.0/0   scram-sha-256
PGBX
`
	t0 := time.Now()
	if err := d.oneShot(ctx, cli, c, &c.Primary, "init", script, []string{"PGBX_PASSWORD=" + c.Primary.Password}); err != nil {
		return fmt.Errorf("primary: initdb: %w", err)
	}
	d.step("primary initdb", t0)
	return nil
}

// primaryRoles makes the replication role and a slot per standby.
func (d *Docker) primaryRoles(ctx context.Context, c *Cluster) error {
	verifier, err := scramVerifier(c.ReplPassword)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.Primary.DSN())
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, `SHOW server_version`).Scan(&c.ServerVersion); err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s WITH REPLICATION LOGIN PASSWORD '%s'`, c.ReplUser, verifier)); err != nil {
		return fmt.Errorf("primary: create the replication role: %w", err)
	}
	for _, s := range c.Standbys {
		if s.Upstream != c.Primary.Name {
			continue // its slot is on its upstream, made when that streams
		}
		if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1)`, s.Slot); err != nil {
			return fmt.Errorf("primary: slot %s: %w", s.Slot, err)
		}
	}
	return nil
}

// baseBackup copies the standby's upstream into its volume over the
// env's network, as pg_basebackup -R writes it: primary_conninfo names
// the upstream's container and the standby's application_name.
func (d *Docker) baseBackup(ctx context.Context, cli *client.Client, c *Cluster, n *Node) error {
	host, port := upstreamAddr(n)
	script := `set -e
umask 077
printf '*:*:*:%s:%s\n' "` + c.ReplUser + `" "$PGBX_PASSWORD" > ` + dockerHome + `/.pgpass
pg_basebackup -d "host=` + host + ` port=` + strconv.Itoa(port) + ` user=` + c.ReplUser + ` application_name=` + n.Name + ` passfile=` + dockerHome + `/.pgpass" -D ` + dockerData + ` -X stream -S ` + n.Slot + ` --checkpoint=fast -R --no-sync
`
	t0 := time.Now()
	if n.Link != nil {
		if err := routeLinkTo(c, n, n.Name+":"+strconv.Itoa(dockerPort), n.Upstream+":"+strconv.Itoa(dockerPort)); err != nil {
			return err
		}
	}
	if err := d.oneShot(ctx, cli, c, n, "basebackup", script, []string{"PGBX_PASSWORD=" + c.ReplPassword}); err != nil {
		return fmt.Errorf("%s: pg_basebackup: %w", n.Name, err)
	}
	d.step(n.Name+" basebackup", t0)
	return nil
}

// volumeMount is node n's data volume, made on first use.
func volumeMount(env, node string) mount.Mount {
	return mount.Mount{Type: mount.TypeVolume, Source: containerName(env, node), Target: dockerHome}
}

// labelsOf mark what env c built, and for whom.
func labelsOf(c *Cluster, node string) map[string]string {
	l := map[string]string{LabelEnv: c.Name, LabelOwner: c.Owner}
	if node != "" {
		l[LabelNode] = node
	}
	return l
}

// oneShot runs script in a container of its own on node n's volume, as
// the postgres user, and removes it; a failure says the script's last
// lines.
func (d *Docker) oneShot(ctx context.Context, cli *client.Client, c *Cluster, n *Node, what, script string, envv []string) error {
	if _, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: containerName(c.Name, n.Name), Labels: labelsOf(c, n.Name)}); err != nil {
		return fmt.Errorf("docker: volume: %w", err)
	}
	name := containerName(c.Name, n.Name) + "-" + what
	// As root only to give the volume to postgres, then as postgres: a
	// new volume's root is root's where the image has no such folder.
	wrapper := `chown postgres:postgres ` + dockerHome + ` && exec setpriv --reuid=postgres --regid=postgres --init-groups sh -c "$PGBX_SCRIPT"`
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{Image: d.Image, User: "root", Cmd: []string{"sh", "-c", wrapper}, Env: append(envv, "PGBX_SCRIPT="+script),
			Labels: labelsOf(c, n.Name+"-"+what)},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(networkName(c.Name)),
			Mounts: []mount.Mount{volumeMount(c.Name, n.Name)}},
	})
	if err != nil {
		return fmt.Errorf("docker: %s: %w", name, err)
	}
	defer cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("docker: start %s: %w", name, err)
	}
	select {
	case err := <-wait.Error:
		return fmt.Errorf("docker: %s: %w", name, err)
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			return fmt.Errorf("exit %d: %s", res.StatusCode, containerTail(ctx, cli, created.ID))
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// containerTail is the last lines a container wrote, printable only.
func containerTail(ctx context.Context, cli *client.Client, id string) string {
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer rc.Close()
	var out strings.Builder
	// The stream is multiplexed (stdout and stderr frames): stdcopy
	// takes the frame headers off.
	_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 64<<10))
	return strings.TrimSpace(out.String())
}

// run starts node n's server container: postgres on its volume, its port
// published on 127.0.0.1 only, its CPU cap as the container's.
func (d *Docker) run(ctx context.Context, cli *client.Client, c *Cluster, n *Node, spec Spec) error {
	t0 := time.Now()
	cmd := []string{"postgres", "-D", dockerData, "-c", "port=" + strconv.Itoa(dockerPort),
		"-c", "cluster_name=pgbx-" + c.Name + "-" + n.Name}
	if n.Role == RoleStandby && n.ApplyDelay > 0 {
		cmd = append(cmd, "-c", fmt.Sprintf("recovery_min_apply_delay=%dms", n.ApplyDelay.Milliseconds()))
	}
	port := network.MustParsePort(strconv.Itoa(dockerPort) + "/tcp")
	hc := &container.HostConfig{
		NetworkMode:  container.NetworkMode(networkName(c.Name)),
		PortBindings: network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(n.Port)}}},
		Mounts:       []mount.Mount{volumeMount(c.Name, n.Name)},
		ShmSize:      256 << 20,
	}
	if n.CPUs > 0 {
		hc.NanoCPUs = int64(n.CPUs * 1e9)
	}
	if n.MemoryBytes > 0 {
		hc.Memory = n.MemoryBytes
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: n.Container,
		Config: &container.Config{Image: d.Image, User: "postgres", Cmd: cmd, Labels: labelsOf(c, n.Name),
			ExposedPorts: network.PortSet{port: {}}, StopSignal: "SIGINT"}, // SIGINT: a fast shutdown
		HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			networkName(c.Name): {Aliases: []string{n.Name}},
		}},
	})
	if err != nil {
		return fmt.Errorf("%s: docker: %w", n.Name, err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("%s: docker: start: %w", n.Name, err)
	}
	d.step(n.Name+" start", t0)
	return nil
}

// waitReady waits until the node accepts connections.
func waitReady(ctx context.Context, n *Node) error {
	return poll(ctx, dockerWait, n.Name+" accepting connections", nil, func() (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, n.DSN())
		if err != nil {
			return false, nil
		}
		conn.Close(cctx)
		return true, nil
	})
}

// waitStreamingFrom waits until up shows standby streaming.
func waitStreamingFrom(ctx context.Context, up *Node, standby string) error {
	conn, err := pgx.Connect(ctx, up.DSN())
	if err != nil {
		return fmt.Errorf("%s: %w", up.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return poll(ctx, dockerWait, standby+" streaming from "+up.Name, nil, func() (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, standby).Scan(&n)
		return n > 0, err
	})
}

// dockerAllThere says whether every node in service has its container,
// running, frozen or stopped by a fault: an env that is up.
func dockerAllThere(ctx context.Context, cli *client.Client, c *Cluster) bool {
	for _, n := range c.Nodes() {
		if _, err := cli.ContainerInspect(ctx, n.Container, client.ContainerInspectOptions{}); err != nil {
			return false
		}
	}
	return true
}

func containerState(ctx context.Context, cli *client.Client, name string) (NodeState, error) {
	res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return NodeStopped, err
	}
	st := res.Container.State
	switch {
	case st == nil || !st.Running:
		return NodeStopped, nil
	case st.Paused:
		return NodeFrozen, nil
	}
	return NodeRunning, nil
}

// Down removes the env's containers, volumes and network, and its state.
func (d *Docker) Down(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	t0 := time.Now()
	if err := removeByLabel(ctx, cli, name, ownerOf(d.Store)); err != nil {
		return fmt.Errorf("env %q: %w", name, err)
	}
	d.step("removed containers, volumes, network", t0)
	_ = os.RemoveAll(filepath.Join(d.Store.Dir, name+".link"))
	if err := d.Store.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
