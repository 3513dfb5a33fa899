package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

// TestDockerRun measures a run on a docker env: reads on both standbys,
// the CPU and memory caps recorded as the containers have them.
func TestDockerRun(t *testing.T) {
	p := envtest.DockerProvider(t)
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
