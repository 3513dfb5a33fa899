package live

import (
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// The descriptors are fixed: the collector builds constant metrics from
// its state at each scrape, so a scrape sees one whole tick or none of it
// (a CounterVec per metric would let a scrape land between two updates of
// the same second and show reads without their errors).
var (
	descReads = prometheus.NewDesc("pgbenchx_reads_total",
		"Successful reads, counted as attempts on the node that answered them, in the measured seconds of the strategy's read phase (warmup excluded).",
		[]string{"strategy", "node"}, nil)
	descErrors = prometheus.NewDesc("pgbenchx_read_errors_total",
		"Failed read attempts on the node in measured seconds; a read retried elsewhere counts once per failed try (see pgbenchx_failed_reads_total for reads that failed for good).",
		[]string{"strategy", "node"}, nil)
	descStale = prometheus.NewDesc("pgbenchx_stale_reads_total",
		"Successful reads on the node that missed a heartbeat committed before they began, of the reads whose staleness was checked, in measured seconds.",
		[]string{"strategy", "node"}, nil)
	descFailed = prometheus.NewDesc("pgbenchx_failed_reads_total",
		"Reads that failed on every try, or found no node to try, in measured seconds.",
		[]string{"strategy"}, nil)
	descLatency = prometheus.NewDesc("pgbenchx_read_latency_seconds",
		"End-to-end read latency quantile of the last measured second (reads that ended in it, failed ones included), from pgbenchx's per-second HDR histograms; not a Prometheus summary over the scrape interval, so do not average or rate it. Absent when no read ended that second.",
		[]string{"strategy", "quantile"}, nil)
	descQPS = prometheus.NewDesc("pgbenchx_reads_per_second",
		"Successful reads in the last measured second of the running strategy.",
		[]string{"strategy"}, nil)
	descLastTick = prometheus.NewDesc("pgbenchx_last_tick_timestamp_seconds",
		"Wall-clock end of the strategy's last measured second: how old its per-second figures are.",
		[]string{"strategy"}, nil)
	descLagBytes = prometheus.NewDesc("pgbenchx_replica_lag_bytes",
		"Primary insert LSN minus the standby's replay LSN, from the lag sampler's last round. Absent while unknown (standby down or not answering), never a made-up 0.",
		[]string{"node"}, nil)
	descLagSeconds = prometheus.NewDesc("pgbenchx_replica_lag_seconds",
		"Heartbeat time lag of the standby (a lower bound: it was at least this far behind when it answered), from the lag sampler's last round. Absent while unknown.",
		[]string{"node"}, nil)
	descSlot = prometheus.NewDesc("pgbenchx_slot_retained_bytes",
		"WAL the standby's replication slot makes the primary keep (primary LSN minus the slot's restart_lsn), from the lag sampler's last round. Absent while unknown.",
		[]string{"node"}, nil)
	descNodeInfo = prometheus.NewDesc("pgbenchx_node_info",
		"The cluster's nodes and their current role (1); a failover replaces the series of the nodes whose role changed.",
		[]string{"node", "role"}, nil)
	descPhase = prometheus.NewDesc("pgbenchx_phase",
		"1 for the phase the run is in now, 0 for the phases it went through before.",
		[]string{"phase"}, nil)
	descPhaseStart = prometheus.NewDesc("pgbenchx_phase_start_timestamp_seconds",
		"Wall-clock time the phase last began.",
		[]string{"phase"}, nil)
	descBuild = prometheus.NewDesc("pgbenchx_build_info",
		"The pgbenchx version serving these metrics (1).",
		[]string{"version"}, nil)
)

// series is one (strategy, node) pair of the per-node counters.
type series struct{ strategy, node string }

// counts are kept as integers so that long runs add up exactly; they only
// become floats at scrape time.
type counts struct{ reads, errors, stale int64 }

// second is the running strategy's last measured second.
type second struct {
	strategy string
	reads    int64
	// latencyKnown is false when no read ended in the second: the tick's
	// quantiles are then 0, which is not a latency.
	latencyKnown bool
	p50, p99     float64 // seconds
}

// collector is the exporter's state and its prometheus.Collector. One
// mutex guards it all: Tick holds it for a few map updates and Collect
// for building a few hundred constant metrics at most, so neither waits
// on the other for long, and Collect sends nothing while holding it.
type collector struct {
	mu sync.Mutex

	version string
	nodes   []Node

	phase      string
	phaseStart map[string]time.Time

	strategy string
	counts   map[series]*counts
	failed   map[string]int64
	lastTick map[string]time.Time
	last     *second // nil: no second of the current strategy and phase yet

	// The lag sampler's last round, as the last tick gave it; a standby
	// missing from a map was unknown in that round.
	lagBytes map[string]int64
	lagMS    map[string]float64
	slots    map[string]int64
}

func newCollector() *collector {
	return &collector{
		version:    "unknown",
		phaseStart: map[string]time.Time{},
		counts:     map[series]*counts{},
		failed:     map[string]int64{},
		lastTick:   map[string]time.Time{},
	}
}

// Describe sends every descriptor; the set never changes, so the registry
// can check them once at registration.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descReads, descErrors, descStale, descFailed, descLatency, descQPS, descLastTick,
		descLagBytes, descLagSeconds, descSlot, descNodeInfo, descPhase, descPhaseStart, descBuild,
	} {
		ch <- d
	}
}

// Collect builds the metrics under the lock and sends them after
// releasing it: the registry reads the channel from another goroutine,
// and a slow scrape must not hold up Tick.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.snapshot() {
		ch <- m
	}
}

func (c *collector) snapshot() []prometheus.Metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]prometheus.Metric, 0, 8+4*len(c.counts)+len(c.nodes)+len(c.phaseStart)*2)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...))
	}

	gauge(descBuild, 1, c.version)
	for _, n := range c.nodes {
		gauge(descNodeInfo, 1, n.Name, n.Role)
	}
	for name, start := range c.phaseStart {
		v := 0.0
		if name == c.phase {
			v = 1
		}
		gauge(descPhase, v, name)
		gauge(descPhaseStart, unixSeconds(start), name)
	}

	for s, n := range c.counts {
		counter(descReads, n.reads, s.strategy, s.node)
		counter(descErrors, n.errors, s.strategy, s.node)
		counter(descStale, n.stale, s.strategy, s.node)
	}
	for strategy, n := range c.failed {
		counter(descFailed, n, strategy)
	}
	for strategy, at := range c.lastTick {
		gauge(descLastTick, unixSeconds(at), strategy)
	}
	if s := c.last; s != nil {
		gauge(descQPS, float64(s.reads), s.strategy)
		if s.latencyKnown {
			gauge(descLatency, s.p50, s.strategy, "0.5")
			gauge(descLatency, s.p99, s.strategy, "0.99")
		}
	}

	for node, v := range c.lagBytes {
		gauge(descLagBytes, float64(v), node)
	}
	for node, v := range c.lagMS {
		gauge(descLagSeconds, v/1000, node)
	}
	for node, v := range c.slots {
		gauge(descSlot, float64(v), node)
	}
	return out
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// setNodes replaces the node list. Counters of nodes that left stay (a
// counter that vanished would read as a reset); their info series goes,
// since the node is no longer part of the cluster as the run sees it.
func (c *collector) setNodes(nodes []Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A name given twice would make two node_info series with the same
	// node label and fail every scrape; the last role given wins.
	seen := make(map[string]int, len(nodes))
	c.nodes = c.nodes[:0:0]
	for _, n := range nodes {
		if i, ok := seen[n.Name]; ok {
			c.nodes[i] = n
			continue
		}
		seen[n.Name] = len(c.nodes)
		c.nodes = append(c.nodes, n)
	}
	if c.strategy != "" {
		c.precreate(c.strategy)
	}
}

// precreate makes every known node's counters exist for the strategy, so
// a dashboard shows each node (at a true 0) from the start of the
// strategy rather than from its first read. Callers hold c.mu.
func (c *collector) precreate(strategy string) {
	for _, n := range c.nodes {
		c.countsOf(strategy, n.Name)
	}
	if _, ok := c.failed[strategy]; !ok {
		c.failed[strategy] = 0
	}
}

func (c *collector) countsOf(strategy, node string) *counts {
	k := series{strategy, node}
	n := c.counts[k]
	if n == nil {
		n = &counts{}
		c.counts[k] = n
	}
	return n
}

// setPhase makes name the current phase. Entering another phase ends the
// last second's figures: they described reads and lag rounds that are no
// longer being measured, and a gauge left at its final value would keep
// claiming them through the write phase or the next warmup.
func (c *collector) setPhase(name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name == c.phase {
		return
	}
	c.phase = name
	c.phaseStart[name] = now
	c.forgetSecond()
}

// setStrategy makes name the strategy whose reads run now. Callers that
// hold c.mu use switchStrategy.
func (c *collector) setStrategy(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.switchStrategy(name)
}

func (c *collector) switchStrategy(name string) {
	if name == c.strategy {
		return
	}
	c.strategy = name
	// The previous strategy's last second is not this one's.
	c.forgetSecond()
	if name != "" {
		c.precreate(name)
	}
}

func (c *collector) forgetSecond() {
	c.last = nil
	c.lagBytes, c.lagMS, c.slots = nil, nil, nil
}

// tick folds one measured second in.
func (c *collector) tick(strategy string, t metrics.Tick, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if strategy == "" {
		strategy = c.strategy
	}
	if strategy == "" {
		strategy = "unknown"
	}
	c.switchStrategy(strategy)

	for node, v := range t.NodeQueries {
		c.countsOf(strategy, node).reads += v
	}
	for node, v := range t.NodeErrors {
		c.countsOf(strategy, node).errors += v
	}
	for node, v := range t.NodeStale {
		c.countsOf(strategy, node).stale += v
	}
	c.failed[strategy] += t.Failed

	at := t.At
	if at.IsZero() {
		at = now
	}
	c.lastTick[strategy] = at
	// Every read that ended this second, failed ones included, is in the
	// tick's histogram; with none, its quantiles are placeholders.
	c.last = &second{
		strategy:     strategy,
		reads:        t.Queries,
		latencyKnown: t.Queries+t.Failed > 0,
		p50:          t.P50MS / 1000,
		p99:          t.P99MS / 1000,
	}

	// Lag: a standby absent from this round's maps was unknown, and its
	// series goes away until it is known again, rather than keeping its
	// last value next to a pgbenchx_replica_lag_known 0. A kept value is
	// a lie to every query that does not join on the flag: a standby that
	// died 30 s behind would graph as steady at 30 s, and max_over_time or
	// a lag alert would keep seeing it. A missing sample is what
	// Prometheus understands as "no data": the graph shows a gap exactly
	// where pgbenchx could not see the standby. The maps are copied: the
	// tick is the caller's, and it may reuse them.
	c.lagBytes = maps.Clone(t.LagBytes)
	c.lagMS = maps.Clone(t.LagMS)
	c.slots = maps.Clone(t.SlotBytes)
}
