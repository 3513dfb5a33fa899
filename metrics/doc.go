// Package metrics records what a run measures: per-client HDR latency
// histograms merged each second, replica lag samples, and the versioned
// Result that reports render and comparisons read back.
package metrics
