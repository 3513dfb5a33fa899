package bench_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/routing"
)

// A benchmark from Go: a primary and one standby built for the run (and
// removed after it), lag-aware routing for two seconds, the run folder
// written under a folder of your choice.
func Example() {
	out, _ := os.MkdirTemp("", "pgbenchx-example")
	defer os.RemoveAll(out)

	cfg := bench.Default()
	cfg.Workload.Strategies = []routing.Strategy{routing.LagAware}
	cfg.Workload.Duration, cfg.Workload.Warmup, cfg.Workload.Clients = 2*time.Second, 0, 4
	cfg.Workload.Scale, cfg.Workload.WriteRows = 1000, 100
	cfg.Target.Env = "example"
	cfg.Target.Spec = env.Spec{Standbys: 1, Fast: true}
	cfg.Output.Dir = out

	o, err := bench.Run(context.Background(), cfg, bench.Hooks{})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := o.Result.Strategies[0]
	fmt.Println(s.Strategy, "served reads:", s.Reads().TotalCount() > 0)
	_, err = os.Stat(filepath.Join(o.Dir, "report.md"))
	fmt.Println("report.md written:", err == nil)
	// Output:
	// lag-aware served reads: true
	// report.md written: true
}
