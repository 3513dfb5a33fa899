// Package env provisions and inspects the PostgreSQL clusters pgbenchx
// measures: a primary plus N streaming standbys.
//
// A Provider builds a Cluster from a Spec and tears it down by name.
// Providers register by name (Register; "local" registers itself): Lookup
// gives one configured by Options, and ProviderOf the one that built a
// cluster, as its state file records it. The local provider (the default)
// runs the PostgreSQL server binaries already on the machine; its clusters
// outlive the process that built them, so every cluster is described by a
// state file (mode 0600, it holds the passwords) from which any later
// process can inspect, verify, control or remove it.
//
// A provider's Controller stops, kills, freezes, thaws, starts, promotes
// and repoints the nodes of a running cluster - what fault and failover
// scenarios drive - and keeps the Cluster and its state file in step with
// the new roles. FindPrimary asks the nodes themselves which is primary.
//
// The package knows nothing of workloads: it hands out DSNs and node control,
// and checks replication health (Status, Verify).
package env
