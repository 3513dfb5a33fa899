package main

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/live"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

func metricsAddrFlag() cli.Flag {
	return &cli.StringFlag{Name: "metrics-addr", Usage: "serve live metrics in the Prometheus text format at http://ADDR/metrics while the run lasts (reads, errors and stale reads by node and strategy, latency, lag per standby, phase), e.g. 127.0.0.1:9187"}
}

// serveMetrics starts --metrics-addr's endpoint, if asked, and wires it
// into hooks; stop closes it. A busy or malformed address is bad input,
// found before anything starts.
func serveMetrics(cmd *cli.Command, hooks *bench.Hooks) (stop func(), err error) {
	addr := cmd.String("metrics-addr")
	if addr == "" {
		return func() {}, nil
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host == "" {
		// ":9187" would listen on every interface: say so explicitly.
		return nil, input.Bad("metrics-addr", addr, "name the host to listen on: 127.0.0.1:9187 for this machine, or 0.0.0.0:9187 to serve every interface")
	}
	exp, err := live.Listen(addr)
	if err != nil {
		return nil, input.Bad("metrics-addr", addr, "want a host:port this machine can listen on, e.g. 127.0.0.1:9187 (%v)", err)
	}
	exp.SetVersion(bench.Version())
	phaseStart, tick, started := hooks.PhaseStart, hooks.Live, hooks.Started
	hooks.PhaseStart = func(name string) {
		exp.Phase(name)
		if phaseStart != nil {
			phaseStart(name)
		}
	}
	var scenario atomic.Pointer[workload.Scenario]
	nodes := func(sc *workload.Scenario) {
		var out []live.Node
		for _, n := range sc.Nodes() {
			out = append(out, live.Node{Name: n.Name, Role: string(n.Role)})
		}
		exp.Nodes(out)
	}
	hooks.Live = func(s routing.Strategy, elapsed time.Duration, t metrics.Tick) {
		exp.Tick(string(s), t)
		if sc := scenario.Load(); sc != nil {
			nodes(sc) // roles change with a failover
		}
		if tick != nil {
			tick(s, elapsed, t)
		}
	}
	hooks.Started = func(sc *workload.Scenario) {
		scenario.Store(sc)
		nodes(sc)
		if started != nil {
			started(sc)
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = exp.Close(ctx)
	}, nil
}
