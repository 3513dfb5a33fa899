package report

import (
	"math"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// rolePrimary is the role the primary carries in a Result; lag is a
// standby's property, so primary rows never show any.
const rolePrimary = "primary"

// Row is one node's share of one strategy's reads: the figures summary.csv,
// report.md and later compare/matrix print. Latencies are milliseconds
// taken from the node's histogram merged over query kinds. Unknown figures
// are NaN: the latencies and share of a node (or strategy) that served
// nothing, qps when no time was measured, and lag with no known sample
// (always for the primary).
type Row struct {
	Strategy, Node, Role string

	Queries       int64
	QPS, SharePct float64

	P50, P90, P99, P999, Max float64 // ms

	Errors, Retries, StaleReads, StaleChecked int64

	// From StrategyResult.Lag samples of this node: average over the
	// samples that knew the value, and the largest.
	LagBytesAvg, LagBytesMax float64
	LagMSAvg, LagMSMax       float64
}

// StalePct is the share of checked reads that were stale; NaN when none
// was checked.
func (r Row) StalePct() float64 { return pct(r.StaleReads, r.StaleChecked) }

// Rows computes one Row per strategy x node, in the Result's order.
// Queries are the node's successful queries: the count of its merged
// histogram (failed queries are counted in Errors, as pgbench excludes
// failures from tps).
func Rows(r *metrics.Result) []Row {
	var rows []Row
	for _, s := range r.Strategies {
		if s != nil {
			rows = append(rows, strategyRows(s)...)
		}
	}
	return rows
}

func strategyRows(s *metrics.StrategyResult) []Row {
	hists := make([]*metrics.Hist, len(s.Nodes))
	var all int64
	for i, n := range s.Nodes {
		if n != nil {
			hists[i] = n.Total()
			all += hists[i].TotalCount()
		}
	}
	var rows []Row
	for i, n := range s.Nodes {
		if n == nil {
			continue
		}
		q := hists[i].TotalCount()
		row := Row{
			Strategy: s.Strategy, Node: n.Node, Role: n.Role,
			Queries: q, QPS: ratio(float64(q), s.Seconds), SharePct: pct(q, all),
			Errors: n.ErrorCount(), Retries: n.Retries,
			StaleReads: n.StaleReads, StaleChecked: n.StaleChecked,
		}
		row.P50, row.P90, row.P99, row.P999, row.Max = percentiles(hists[i])
		lag := nanLag()
		if n.Role != rolePrimary {
			lag = lagOf(s, n.Node)
		}
		row.LagBytesAvg, row.LagBytesMax = lag.BytesAvg, lag.BytesMax
		row.LagMSAvg, row.LagMSMax = lag.MSAvg, lag.MSMax
		rows = append(rows, row)
	}
	return rows
}

// percentiles of h in ms; NaN when h is empty, because Summary's zeros
// would read as a 0 ms latency.
func percentiles(h *metrics.Hist) (p50, p90, p99, p999, maxMS float64) {
	if h == nil || h.Histogram == nil || h.TotalCount() == 0 {
		n := math.NaN()
		return n, n, n, n, n
	}
	s := h.Summary()
	return s.P50, s.P90, s.P99, s.P999, s.Max
}

// total is a strategy's figures over every node, from the merged histogram.
type total struct {
	Queries, Errors, Retries, StaleReads, StaleChecked int64
	QPS                                                float64
	P50, P90, P99, P999, Max                           float64
}

func strategyTotal(s *metrics.StrategyResult) total {
	h := s.Total()
	t := total{Queries: h.TotalCount()}
	t.QPS = ratio(float64(t.Queries), s.Seconds)
	t.P50, t.P90, t.P99, t.P999, t.Max = percentiles(h)
	// A read no node could take failed as surely as one a node refused.
	t.Errors = s.NoTarget
	for _, n := range s.Nodes {
		if n != nil {
			t.Errors += n.ErrorCount()
			t.Retries += n.Retries
			t.StaleReads += n.StaleReads
			t.StaleChecked += n.StaleChecked
		}
	}
	return t
}

// lagStat summarises one standby's lag samples during one strategy.
// Unknown samples (nil: the standby or the primary did not answer) are
// counted apart and never averaged in as 0.
type lagStat struct {
	Samples, UnknownBytes, UnknownMS int
	BytesAvg, BytesMax, MSAvg, MSMax float64
}

func nanLag() lagStat {
	n := math.NaN()
	return lagStat{BytesAvg: n, BytesMax: n, MSAvg: n, MSMax: n}
}

func lagOf(s *metrics.StrategyResult, node string) lagStat {
	st := nanLag()
	var sumB, sumMS float64
	var nB, nMS int
	for _, l := range s.Lag {
		if l.Node != node {
			continue
		}
		st.Samples++
		if l.Bytes == nil {
			st.UnknownBytes++
		} else {
			b := float64(*l.Bytes)
			sumB += b
			if nB == 0 || b > st.BytesMax {
				st.BytesMax = b
			}
			nB++
		}
		if l.MS == nil {
			st.UnknownMS++
		} else {
			sumMS += *l.MS
			if nMS == 0 || *l.MS > st.MSMax {
				st.MSMax = *l.MS
			}
			nMS++
		}
	}
	if nB > 0 {
		st.BytesAvg = sumB / float64(nB)
	}
	if nMS > 0 {
		st.MSAvg = sumMS / float64(nMS)
	}
	return st
}

// standbys names every standby the run mentions anywhere, in natural
// order: the environment, the strategies' nodes, lag samples and ticks, so
// a standby that stopped answering keeps its columns.
func standbys(r *metrics.Result) []string {
	seen := map[string]bool{}
	add := func(name string) {
		if name != "" {
			seen[name] = true
		}
	}
	for _, n := range r.Environment.Nodes {
		if n.Role != rolePrimary {
			add(n.Name)
		}
	}
	if r.Write != nil {
		for _, c := range r.Write.Standbys {
			add(c.Node)
		}
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, n := range s.Nodes {
			if n != nil && n.Role != rolePrimary {
				add(n.Node)
			}
		}
		for _, l := range s.Lag {
			add(l.Node)
		}
		for _, t := range s.Ticks {
			for name := range t.LagBytes {
				add(name)
			}
			for name := range t.LagMS {
				add(name)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sortNatural(names)
	return names
}
