// Package workload holds what a benchmark run does to a cluster: the
// schema, the write phase on the primary and the read phase through routing
// strategies, as the phases of a Scenario.
package workload
