package report

import (
	"math"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// Row is one node's share of one strategy's reads: the figures summary.csv,
// report.md and later compare/matrix print. Latencies are milliseconds of
// every attempt the node ran, merged over query kinds: successful ones and
// those that failed there (a client timeout at the timeout) or were cut
// off by the phase's end. Queries, QPS and share count successful
// attempts. Unknown figures are NaN: the latencies and share of a node
// (or strategy) that served nothing, qps when no time was measured, and
// lag with no known sample (always for the primary).
type Row struct {
	Strategy, Node string
	Role           metrics.Role

	Queries       int64
	QPS, SharePct float64

	P50, P90, P99, P999, Max float64 // ms

	Errors, Retries, StaleReads, StaleChecked int64

	// From StrategyResult.Lag samples of this node: average over the
	// samples that knew the value, and the largest. Time lag is bounded:
	// LagMS* are the lower bounds, LagMSUpper* the upper ones.
	LagBytesAvg, LagBytesMax     float64
	LagMSAvg, LagMSMax           float64
	LagMSUpperAvg, LagMSUpperMax float64
	ReplayLagAvg, ReplayLagMax   float64 // pg_stat_replication.replay_lag, the server's own view
}

// judgedLagMSMax is the largest time lag a limit is judged by: the upper
// bound where known (the lag the standby may have had), else the lower.
func (r Row) judgedLagMSMax() float64 {
	if !math.IsNaN(r.LagMSUpperMax) {
		return r.LagMSUpperMax
	}
	return r.LagMSMax
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
	oks := make([]int64, len(s.Nodes))
	var all int64
	for i, n := range s.Nodes {
		if n != nil {
			hists[i] = n.Attempts()
			oks[i] = n.Total().TotalCount()
			all += oks[i]
		}
	}
	var rows []Row
	for i, n := range s.Nodes {
		if n == nil {
			continue
		}
		q := oks[i]
		row := Row{
			Strategy: s.Strategy, Node: n.Node, Role: n.Role,
			Queries: q, QPS: ratio(float64(q), s.Seconds), SharePct: pct(q, all),
			Errors: n.ErrorCount(), Retries: n.Retries,
			StaleReads: n.StaleReads, StaleChecked: n.StaleChecked,
		}
		row.P50, row.P90, row.P99, row.P999, row.Max = percentiles(hists[i])
		lag := nanLag()
		if n.Role != metrics.RolePrimary {
			lag = lagOf(s, n.Node)
		}
		row.LagBytesAvg, row.LagBytesMax = lag.BytesAvg, lag.BytesMax
		row.LagMSAvg, row.LagMSMax = lag.MSAvg, lag.MSMax
		row.LagMSUpperAvg, row.LagMSUpperMax = lag.MSUpperAvg, lag.MSUpperMax
		row.ReplayLagAvg, row.ReplayLagMax = lag.ReplayLagAvg, lag.ReplayLagMax
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

// total is a strategy's figures over every node. Queries and QPS count
// successful reads (as pgbench's tps leaves failures out); the latencies
// come from the end-to-end histogram, which holds every read once, failed,
// retried, unfinished and unsent ones included.
type total struct {
	Queries, Errors, Retries, StaleReads, StaleChecked int64
	// Failed reads failed on every try (known only where the run counted
	// them: FailedKnown); Reads is every read of the end-to-end histogram.
	Failed, Reads            int64
	FailedKnown              bool
	QPS                      float64
	P50, P90, P99, P999, Max float64
}

// failedText is Failed for people: "-" when the run did not count them.
func (t total) failedText() string {
	if !t.FailedKnown {
		return "-"
	}
	return count(t.Failed)
}

func strategyTotal(s *metrics.StrategyResult) total {
	h := s.Reads()
	// Runs that kept an end-to-end histogram (schema 2 on) counted failed
	// reads; before, a failed read was counted nowhere: unknown, not 0.
	t := total{Failed: s.Failed, FailedKnown: s.EndToEnd != nil, Reads: h.TotalCount()}
	t.P50, t.P90, t.P99, t.P999, t.Max = percentiles(h)
	// A read no node could take failed as surely as one a node refused.
	t.Errors = s.NoTarget
	for _, n := range s.Nodes {
		if n != nil {
			t.Queries += n.Total().TotalCount()
			t.Errors += n.ErrorCount()
			t.Retries += n.Retries
			t.StaleReads += n.StaleReads
			t.StaleChecked += n.StaleChecked
		}
	}
	t.QPS = ratio(float64(t.Queries), s.Seconds)
	return t
}

// lagStat summarises one standby's lag samples during one strategy.
// Unknown samples (nil: the standby or the primary did not answer) are
// counted apart and never averaged in as 0.
type lagStat struct {
	Samples, UnknownBytes, UnknownMS int
	BytesAvg, BytesMax, MSAvg, MSMax float64
	MSUpperAvg, MSUpperMax           float64
	ReplayLagAvg, ReplayLagMax       float64
	// ReplayLagSamples counts samples where pg_stat_replication had a
	// replay_lag (it is NULL on an idle standby).
	ReplayLagSamples int
	// PSRBytesAvg is the byte lag by pg_stat_replication's replay_lsn.
	PSRBytesAvg float64
	// Paired* average ours and replay_lag over the samples that had both,
	// so the two are compared on the same moments.
	PairedLo, PairedHi, PairedReplay float64
	Paired                           int
	// SlotMax is the most WAL the standby's slot made the primary keep.
	SlotMax float64
}

func nanLag() lagStat {
	n := math.NaN()
	return lagStat{BytesAvg: n, BytesMax: n, MSAvg: n, MSMax: n, MSUpperAvg: n, MSUpperMax: n, ReplayLagAvg: n, ReplayLagMax: n,
		PSRBytesAvg: n, PairedLo: n, PairedHi: n, PairedReplay: n, SlotMax: n}
}

// avgMax accumulates known values.
type avgMax struct {
	sum, max float64
	n        int
}

func (a *avgMax) add(v *float64) {
	if v == nil {
		return
	}
	if a.n == 0 || *v > a.max {
		a.max = *v
	}
	a.sum += *v
	a.n++
}

func (a avgMax) get() (avg, mx float64) {
	if a.n == 0 {
		return math.NaN(), math.NaN()
	}
	return a.sum / float64(a.n), a.max
}

func lagOf(s *metrics.StrategyResult, node string) lagStat {
	st := nanLag()
	var b, ms, hi, psr, psrBytes, pLo, pHi, pReplay, slot avgMax
	for _, l := range s.Lag {
		if l.Node != node {
			continue
		}
		st.Samples++
		if l.Bytes == nil {
			st.UnknownBytes++
		} else {
			v := float64(*l.Bytes)
			b.add(&v)
		}
		if l.PSRBytes != nil {
			v := float64(*l.PSRBytes)
			psrBytes.add(&v)
		}
		if l.SlotBytes != nil {
			v := float64(*l.SlotBytes)
			slot.add(&v)
		}
		if l.MS == nil {
			st.UnknownMS++
		}
		ms.add(l.MS)
		hi.add(l.MSUpper)
		psr.add(l.ReplayLag)
		if l.MS != nil && l.ReplayLag != nil {
			pLo.add(l.MS)
			if l.MSUpper != nil {
				pHi.add(l.MSUpper)
			} else {
				pHi.add(l.MS)
			}
			pReplay.add(l.ReplayLag)
		}
	}
	st.BytesAvg, st.BytesMax = b.get()
	st.MSAvg, st.MSMax = ms.get()
	st.MSUpperAvg, st.MSUpperMax = hi.get()
	st.ReplayLagAvg, st.ReplayLagMax = psr.get()
	st.ReplayLagSamples = psr.n
	st.PSRBytesAvg, _ = psrBytes.get()
	st.PairedLo, _ = pLo.get()
	st.PairedHi, _ = pHi.get()
	st.PairedReplay, _ = pReplay.get()
	st.Paired = pReplay.n
	_, st.SlotMax = slot.get()
	return st
}

// lagDisagrees says whether our time lag and pg_stat_replication's
// replay_lag, averaged over the samples that had both (replay_lag is NULL
// on an idle standby), differ by more than 10 ms beyond our bounds:
// replay_lag comes with the standby's feedback, which adds a little, so
// only a clear difference is worth a flag.
func lagDisagrees(l lagStat) bool {
	if l.Paired == 0 {
		return false
	}
	return l.PairedReplay < l.PairedLo-10 || l.PairedReplay > l.PairedHi+10
}

// standbys names every standby the run mentions anywhere, in natural
// order: the environment, the strategies' nodes, lag samples and ticks, so
// a standby that stopped answering keeps its columns.
func standbys(r *metrics.Result) []string { return mentioned(r, false) }

// mentioned names every node the run mentions anywhere, in natural order,
// the primary with them when withPrimary.
func mentioned(r *metrics.Result, withPrimary bool) []string {
	seen := map[string]bool{}
	add := func(name string, role metrics.Role) {
		// A via: strategy's unattributed row is no standby: no lag of its own.
		if role == metrics.RoleUnknown && !withPrimary {
			return
		}
		if name != "" && (withPrimary || role != metrics.RolePrimary) {
			seen[name] = true
		}
	}
	const standby = metrics.RoleStandby // lag, catch-up and ticks are standbys'
	for _, n := range r.Environment.Nodes {
		add(n.Name, n.Role)
	}
	if r.Write != nil {
		for _, c := range r.Write.Standbys {
			add(c.Node, standby)
		}
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, n := range s.Nodes {
			if n != nil {
				add(n.Node, n.Role)
			}
		}
		for _, l := range s.Lag {
			add(l.Node, standby)
		}
		for _, t := range s.Ticks {
			for name := range t.LagBytes {
				add(name, standby)
			}
			for name := range t.LagMS {
				add(name, standby)
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
