// Package probe measures live servers while a benchmark runs: the
// heartbeat that times lag and judges stale reads, the lag sampler, what
// each standby costs the primary, and the CPU of the load generator and
// the host. It is the only package that talks to the database besides the
// workload itself; the results it produces are metrics' plain types, so
// rendering a stored run needs no driver.
package probe
