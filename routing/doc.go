// Package routing picks the node for each read: random, round-robin,
// least-conn, lag-aware and causal balancers. It imports none of pgbenchx's
// other packages; it declares the small lag view it needs.
//
// Pick and Done run once per query on every client goroutine, so they take
// no lock and allocate nothing: in-flight counts, ejections and the
// lag-derived eligibility of standbys are atomics. Lag samples change about
// every 100 ms, not per query, so lag-aware and causal re-read the LagView
// only when its Seq moves, and only one goroutine does it (TryLock); the
// others keep using the previous round meanwhile.
//
// Nodes are indexes into Config.Nodes, index 0 being the primary, which is
// why a cluster is limited to 64 nodes: sets of nodes are uint64 bitmasks.
package routing
