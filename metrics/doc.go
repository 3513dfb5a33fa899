// Package metrics is the result model of a run: per-client recorders
// whose records are folded each second into whole HDR histograms, the
// versioned Result that reports render and comparisons read back, and the
// exact merge of several load generators' results. It is plain data and
// imports no database driver; the live measurements that fill it (lag,
// heartbeat, cost, CPU) are package probe's.
package metrics
