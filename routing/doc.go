// Package routing picks the node for each read: random, round-robin,
// least-conn, lag-aware and causal balancers. It imports none of pgbenchx's
// other packages; it declares the small lag view it needs.
package routing
