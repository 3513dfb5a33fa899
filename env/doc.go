// Package env provisions and inspects the PostgreSQL clusters pgbenchx
// measures: a primary plus N streaming standbys.
//
// A Provider builds a Cluster from a Spec and tears it down by name. The
// local provider (the default) runs the PostgreSQL server binaries already on
// the machine; its clusters outlive the process that built them, so every
// cluster is described by a state file (mode 0600, it holds the passwords)
// from which any later process can inspect, verify or remove it.
//
// The package knows nothing of workloads: it hands out DSNs and node control,
// and checks replication health (Status, Verify).
package env
