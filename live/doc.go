// Package live serves a run's figures to Prometheus while the run goes on
// (pgbenchx run --metrics-addr 127.0.0.1:9187), so a benchmark can be
// watched on the same dashboards as the cluster it loads.
//
// The run drives an Exporter: Listen before any work starts (a bad or busy
// address fails the run at once rather than after the schema is built),
// Nodes when the cluster is known (and again after a failover), Phase at
// each step, Strategy when a strategy's reads begin, Tick once per measured
// second, Close at the end. Every method is safe for concurrent use with
// scrapes.
//
// The exporter does not measure anything itself: it republishes the
// seconds the metrics.Recorder already folded, so its figures are the ones
// run.json will hold. In particular the latency quantiles are the per-second
// quantiles of pgbenchx's HDR histograms, not a Prometheus summary or
// histogram over the scrape interval, and counters only move during the
// measured part of read phases (warmup reads are not counted, as in
// run.json).
//
// A figure that is not known is left out rather than reported as 0: a
// standby whose lag was unknown in the last round has no lag series, a
// second in which no read ended has no latency series, and the per-second
// gauges disappear when the phase or strategy that produced them ends.
// Counters are the exception: 0 reads is a true count, so every node's
// counters exist from the moment its name and the strategy are known.
//
// The metrics live on the exporter's own registry (with the Go and process
// collectors), never on prometheus.DefaultRegisterer, so two exporters (as
// in tests) and any library that registers globally cannot collide.
package live
