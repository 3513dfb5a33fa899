package env_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

func dockerProvider(t *testing.T) env.Provider { return envtest.DockerProvider(t) }

// dockerUp builds spec on p, removed when the test ends, and its
// controller.
func dockerUp(ctx context.Context, t *testing.T, p env.Provider, spec env.Spec) (*env.Cluster, env.Controller) {
	t.Helper()
	c, err := p.Up(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Down(context.Background(), c.Name) })
	ctl, err := p.Control(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, ctl
}

// dockerPS lists the containers labelled with the env's name.
func dockerPS(t *testing.T, name string, extra ...string) []string {
	t.Helper()
	args := append([]string{"ps", "-q", "--filter", "label=" + env.LabelEnv + "=" + name}, extra...)
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// TestDockerEnv builds an env of containers: labelled, the standby's CPU
// cap in its container's config, streaming and verified; a standby
// killed and started again streams again; down leaves nothing labelled.
func TestDockerEnv(t *testing.T) {
	p := dockerProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, ctl := dockerUp(ctx, t, p, env.Spec{Name: "dkt", Standbys: 2, Fast: true, CPUs: map[string]float64{"standby1": 0.5},
		Memory: map[string]int64{"standby2": 256 << 20}})
	if got := dockerPS(t, c.Name); len(got) != 3 {
		t.Errorf("%d labelled containers running, want 3", len(got))
	}
	out, err := exec.Command("docker", "inspect", "-f", "{{.HostConfig.NanoCpus}}", "pgbenchx-dkt-standby1").Output()
	if err != nil || strings.TrimSpace(string(out)) != "500000000" {
		t.Errorf("standby1's container NanoCpus %q (%v), want 500000000 (0.5 CPU)", out, err)
	}
	out, err = exec.Command("docker", "inspect", "-f", "{{.HostConfig.Memory}}", "pgbenchx-dkt-standby2").Output()
	if err != nil || strings.TrimSpace(string(out)) != "268435456" {
		t.Errorf("standby2's container Memory %q (%v), want 268435456 (256MB)", out, err)
	}
	requireVerify(t, c)
	if err := ctl.Kill(ctx, "standby2"); err != nil {
		t.Fatal(err)
	}
	if st, err := ctl.State(ctx, "standby2"); err != nil || st != env.NodeStopped {
		t.Errorf("standby2 after kill: %s (%v), want stopped", st, err)
	}
	if err := ctl.Start(ctx, "standby2"); err != nil { // waits until it streams
		t.Fatal(err)
	}
	if err := ctl.Freeze(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := ctl.State(ctx, "standby1"); st != env.NodeFrozen {
		t.Errorf("standby1 after freeze: %s, want frozen", st)
	}
	if err := ctl.Thaw(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Down(ctx, c.Name); err != nil {
		t.Fatal(err)
	}
	if left := dockerPS(t, c.Name, "-a"); len(left) != 0 {
		t.Errorf("%d labelled containers left after down", len(left))
	}
	vols, _ := exec.Command("docker", "volume", "ls", "-q", "--filter", "label="+env.LabelEnv+"="+c.Name).Output()
	nets, _ := exec.Command("docker", "network", "ls", "-q", "--filter", "label="+env.LabelEnv+"="+c.Name).Output()
	if strings.TrimSpace(string(vols)+string(nets)) != "" {
		t.Errorf("left after down: volumes %q, networks %q", vols, nets)
	}
}

// TestDockerFailover fails over a docker env: standby1 promoted, standby2
// follows it, and the env verifies on its new topology.
func TestDockerFailover(t *testing.T) {
	p := dockerProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, ctl := dockerUp(ctx, t, p, env.Spec{Name: "dkfo", Standbys: 2, Fast: true})
	r, err := env.Failover(ctx, ctl, c, "standby1", nil)
	if err != nil {
		t.Fatalf("failover: %v (%+v)", err, r)
	}
	t.Logf("%s", r)
	if c.Primary.Name != "standby1" || len(c.Standbys) != 1 || c.Standbys[0].Upstream != "standby1" {
		t.Fatalf("after the failover: primary %s, standbys %+v", c.Primary.Name, c.Standbys)
	}
	requireVerify(t, c)
}

// TestDockerSlowLink puts standby2 of a docker env behind a 30 ms link:
// its proxy is a container on the env's network, a query through its DSN
// takes the delay, and down removes the proxy too.
func TestDockerSlowLink(t *testing.T) {
	p := dockerProvider(t)
	if err := exec.Command("docker", "image", "inspect", env.ToolImage()).Run(); err != nil {
		t.Skipf("no image %s: make image (or make docker-image) builds it", env.ToolImage())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, _ := dockerUp(ctx, t, p, env.Spec{Name: "dkslow", Standbys: 2, Fast: true,
		NetLinks: map[string]env.Link{"standby2": {Delay: 30 * time.Millisecond}}})
	if !env.NetProxyRuns(c) {
		t.Fatal("the link proxy container does not run")
	}
	best := time.Hour
	conn := connect(t, &c.Standbys[1])
	for range 3 {
		t0 := time.Now()
		if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(t0))
	}
	if best < 30*time.Millisecond {
		t.Errorf("SELECT 1 through standby2's link took %s, want at least 30ms", best)
	}
	requireVerify(t, c)
	if err := p.Down(ctx, c.Name); err != nil {
		t.Fatal(err)
	}
	if left := dockerPS(t, c.Name, "-a"); len(left) != 0 {
		t.Errorf("%d labelled containers left after down (the proxy's?)", len(left))
	}
}

// TestDockerCascade builds standby2 and standby3 from standby1, with
// their slots on it, and verifies the chain.
func TestDockerCascade(t *testing.T) {
	p := dockerProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, _ := dockerUp(ctx, t, p, env.Spec{Name: "dkcas", Standbys: 3, Fast: true, Topology: env.Cascade})
	if c.Standbys[1].Upstream != "standby1" || c.Standbys[2].Upstream != "standby1" {
		t.Errorf("upstreams %s, %s: want standby1", c.Standbys[1].Upstream, c.Standbys[2].Upstream)
	}
	requireVerify(t, c)
}

// TestDockerUpClearsADeadRun: an env whose container is gone (a dead run,
// a hand's docker rm) is cleared by the next up of its name, which builds
// it anew; one that is up is refused.
func TestDockerUpClearsADeadRun(t *testing.T) {
	p := dockerProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	spec := env.Spec{Name: "dkdead", Standbys: 1, Fast: true}
	c, err := p.Up(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Down(context.Background(), c.Name) })
	var exists *env.ExistsError
	if _, err := p.Up(ctx, spec); !errors.As(err, &exists) {
		t.Fatalf("up of an env that is up: %v, want ExistsError", err)
	}
	if err := exec.Command("docker", "rm", "-f", "pgbenchx-dkdead-standby1").Run(); err != nil {
		t.Fatal(err)
	}
	c, err = p.Up(ctx, spec)
	if err != nil {
		t.Fatalf("up after a dead run: %v", err)
	}
	requireVerify(t, c)
}

// TestDockerForkedStandbyRebuilt makes the failover asynchronous
// replication can make: standby1 stopped while the primary writes, so
// standby2 replays WAL standby1 never gets; the primary dies and standby1
// is promoted. standby2 cannot follow its timeline (Repoint says
// ErrForked, read from its container's log); a rebuild makes it follow.
func TestDockerForkedStandbyRebuilt(t *testing.T) {
	p := dockerProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, ctl := dockerUp(ctx, t, p, env.Spec{Name: "dkfork", Standbys: 2, Fast: true})
	writeReaches(t, &c.Primary, &c.Standbys[1], 1)
	if err := ctl.Stop(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	writeReaches(t, &c.Primary, &c.Standbys[1], 2) // standby1 never sees it
	if err := ctl.Kill(ctx, "primary"); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(ctx, "standby1"); err != nil { // its upstream is dead: it only runs
		t.Fatal(err)
	}
	if err := ctl.Promote(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Repoint(ctx, "standby2", "standby1"); !errors.Is(err, env.ErrForked) {
		t.Fatalf("repoint of a standby ahead of the fork: %v, want ErrForked", err)
	}
	if err := ctl.Rebuild(ctx, "standby2", "standby1"); err != nil {
		t.Fatal(err)
	}
	requireVerify(t, c)
}
