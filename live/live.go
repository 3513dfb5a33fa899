package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// Node is a cluster node as the run knows it: its name ("primary",
// "standby1") and its current role ("primary", "standby").
type Node struct {
	Name string
	Role string
}

// Exporter serves the run's live figures on /metrics. Its methods are
// safe for concurrent use; the zero value is not usable, use Listen.
type Exporter struct {
	c   *collector
	ln  net.Listener
	srv *http.Server

	served    chan struct{} // closed when Serve returns
	closeOnce sync.Once
	closeErr  error
}

// Listen binds addr ("127.0.0.1:9187", ":0") at once, so that a bad or
// busy address is an error before the run does any work, and serves
// /metrics from a registry of the exporter's own in the background.
func Listen(addr string) (*Exporter, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	c := newCollector()
	reg := prometheus.NewRegistry()
	// Registration can only fail on descriptor conflicts, which are fixed
	// at compile time; MustRegister turns such a bug into a panic in tests.
	reg.MustRegister(
		c,
		collectors.NewGoCollector(),
		// The load generator's own CPU and memory, next to the figures
		// it produces: a saturated pgbenchx shows here.
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A failed collector must not hide the others mid-run: serve what
		// was gathered and count the failure.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
		// Scrapes are cheap; a stuck client must not pile up handlers.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintln(w, `<html><body>pgbenchx live metrics: <a href="/metrics">/metrics</a></body></html>`)
	})

	e := &Exporter{
		c:  c,
		ln: ln,
		srv: &http.Server{
			Handler: mux,
			// Bounded so an idle or slow client cannot hold a connection
			// (and Close) open for the rest of the run.
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
		},
		served: make(chan struct{}),
	}
	go func() {
		defer close(e.served)
		// Serve only returns http.ErrServerClosed after Shutdown, or an
		// accept error on a listener we own; there is nobody to hand the
		// latter to mid-run, and the scrapes failing make it visible.
		_ = e.srv.Serve(ln)
	}()
	return e, nil
}

// Addr is the bound address, e.g. "127.0.0.1:41234" after Listen(":0").
func (e *Exporter) Addr() string { return e.ln.Addr().String() }

// SetVersion sets pgbenchx_build_info's version label; until it is
// called the label is "unknown". A setter rather than a Listen parameter
// keeps Listen's signature about the address alone, and the version is
// known to the command (from its ldflags), not to this package.
func (e *Exporter) SetVersion(v string) {
	if v == "" {
		v = "unknown"
	}
	e.c.mu.Lock()
	e.c.version = v
	e.c.mu.Unlock()
}

// Nodes sets the cluster's nodes: pgbenchx_node_info for each, and every
// node's read counters at 0 for the current strategy (and for each later
// one when it starts), so node labels show before the first tick. Call it
// again when roles change (after a failover); the list replaces the last.
func (e *Exporter) Nodes(nodes []Node) { e.c.setNodes(nodes) }

// Phase records that the run entered the named phase ("schema", "write",
// "read round-robin", "done"). The per-second gauges (reads per second,
// latency, lag, slot) are dropped on a change: they belong to the seconds
// of the phase that ended.
func (e *Exporter) Phase(name string) { e.c.setPhase(name, time.Now()) }

// Strategy records the strategy whose reads are running now; its counters
// appear for every known node at 0. Tick implies it, so calling it is
// only needed to show the strategy during its warmup. "" means none.
func (e *Exporter) Strategy(name string) { e.c.setStrategy(name) }

// Tick folds one measured second of the strategy's reads in ("" means the
// current strategy). It only updates a few maps under a lock that scrapes
// hold briefly, so it is cheap enough for the run's once-a-second loop.
func (e *Exporter) Tick(strategy string, t metrics.Tick) { e.c.tick(strategy, t, time.Now()) }

// Close stops serving: no new connections, in-flight scrapes finish
// unless ctx ends first, in which case they are cut off and ctx's error is
// returned. Later calls return the first call's result.
func (e *Exporter) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		err := e.srv.Shutdown(ctx)
		if err != nil {
			// Shutdown gave up waiting; drop what is left rather than
			// leave connections behind a run that has ended.
			err = errors.Join(err, e.srv.Close())
		}
		<-e.served
		e.closeErr = err
	})
	return e.closeErr
}
