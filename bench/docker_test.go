package bench_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
)

// TestDockerRun measures a run on a docker env: reads on both standbys,
// the CPU and memory caps recorded as the containers have them.
func TestDockerRun(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("no Docker engine answers here (docker info failed)")
	}
	if err := exec.Command("docker", "image", "inspect", env.DefaultImage).Run(); err != nil {
		t.Skipf("no image %s: make docker-image builds it (make test does where an engine answers)", env.DefaultImage)
	}
	p, err := env.Lookup(env.DockerName, env.Options{Store: env.Store{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := p.Up(ctx, env.Spec{Name: "dkrun", Standbys: 2, Fast: true,
		CPUs: map[string]float64{"standby1": 0.5}, Memory: map[string]int64{"standby2": 512 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Down(context.Background(), c.Name) })
	cfg := faultConfig()
	cfg.Workload.Duration = 2 * time.Second
	res := measure(t, c, cfg)
	for _, node := range []string{"standby1", "standby2"} {
		if n := nodeQueries(res.Strategies[0], node, 1, 2); n == 0 {
			t.Errorf("no read on %s", node)
		}
	}
	if res.Environment.Provider != env.DockerName || res.Environment.CPUCaps["standby1"] != 0.5 || res.Environment.MemoryCaps["standby2"] != 512<<20 {
		t.Errorf("environment %+v: want provider docker, standby1 capped at 0.5 CPU, standby2 at 512MB", res.Environment)
	}
}
