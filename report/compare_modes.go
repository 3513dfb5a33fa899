package report

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// modeOf is the replication mode a run measured: the mode a matrix asked
// for when it says, otherwise the primary's synchronous_standby_names
// and the writers' synchronous_commit as recorded. Runs of different
// modes are different cells: pooling them would average what sync
// costs away.
func modeOf(r *metrics.Result) string {
	if r.Config.Mode != "" {
		return r.Config.Mode
	}
	sync := "async"
	if s := r.Environment.SynchronousStandbyNames; s != "" {
		sync = "sync " + s
	}
	commit := r.Config.Commit
	if commit == "" { // runs from before --commit: the server's setting, not recorded
		commit = "server default"
	}
	return sync + ", commit " + commit
}

// named is how a cell is named in tables and charts: its strategy, and
// its mode when the runs had more than one.
func (c *Comparison) named(strategy, mode string) string {
	if len(c.Modes) <= 1 {
		return strategy
	}
	return strategy + " [" + mode + "]"
}

// WriteFigures are what a cell's writes cost on the primary while its
// reads were measured: commit latency from the repeats' histograms
// merged (NaN with no commit), commits per measured second, and causal
// reads of the client's own last write that did not find it.
type WriteFigures struct {
	// Known is false when no repeat recorded commit latency (runs from
	// before it was measured): the commit figures are then unknown.
	Known                    bool
	Commits                  int64
	CommitP50, CommitP99     float64
	CommitsPerSec            float64 // NaN with no measured time
	RYWChecks, RYWViolations int64
	// WritePhaseRowsPerSec is the mean over the repeats of the write
	// phase's rows/s: the bulk insert before the reads, unpaced, at the
	// mode's commit level; NaN without a write phase. Commits during
	// the reads are paced (background batches on a schedule), so their
	// rate shows what sync costs only once a commit outlasts the pace.
	WritePhaseRowsPerSec float64
}

func writeFigures(reps []Repeat) WriteFigures {
	var w WriteFigures
	h := metrics.NewHist()
	var secs float64
	var phase []float64
	for _, r := range reps {
		if r.run != nil && r.run.Write != nil && r.run.Write.Rows > 0 {
			phase = append(phase, r.run.Write.RowsPerSec)
		}
		w.Known = w.Known || r.strategy.CommitLatency != nil
		h.Add(r.strategy.CommitLatency)
		secs += r.strategy.Seconds
		w.RYWChecks += r.strategy.RYWChecks
		w.RYWViolations += r.strategy.RYWViolation
	}
	w.Commits = h.TotalCount()
	w.CommitP50, _, w.CommitP99, _, _ = percentiles(h)
	w.CommitsPerSec = ratio(float64(w.Commits), secs)
	if !w.Known {
		w.CommitsPerSec = math.NaN()
	}
	w.WritePhaseRowsPerSec = math.NaN()
	if len(phase) > 0 {
		w.WritePhaseRowsPerSec = meanOf(phase)
	}
	return w
}

// hasSync says whether any run replicated synchronously.
func (c *Comparison) hasSync() bool {
	for _, s := range c.Samples {
		if s.Result.Environment.SynchronousStandbyNames != "" {
			return true
		}
	}
	return false
}

// writeModes compares the replication modes: what synchronous
// replication costs the writes and what it buys the reads, cell by cell.
func (c *Comparison) writeModes(m *md) {
	if len(c.Modes) <= 1 && !c.hasSync() {
		return
	}
	m.p("## Replication modes\n\n")
	m.p("What each mode costs the writes (commit latency on the primary while reads were measured; the write phase's rows/s, its unpaced bulk insert before the reads; commits/s while reads were measured are paced by the background writer, so they drop only once a commit outlasts the pace) and what it buys the reads (stale reads, and read-your-writes violations: causal reads of the client's own last write that did not find it; causal routing waits for replay or goes elsewhere, and `remote_apply` under a rule covering every standby leaves it nothing to wait for).\n\n")
	var rows [][]string
	for _, cell := range c.Cells {
		w := cell.Writes
		ryw := "-"
		if w.RYWChecks > 0 {
			ryw = count(w.RYWViolations) + " of " + count(w.RYWChecks) + " (" + num(pct(w.RYWViolations, w.RYWChecks), 2) + "%)"
		}
		commits := "-"
		if w.Known {
			commits = count(w.Commits)
		}
		rows = append(rows, []string{strconv.Itoa(cell.Standbys), cell.Mode, cell.Strategy, commits,
			num(w.CommitP50, 3), num(w.CommitP99, 3), num(w.WritePhaseRowsPerSec, 0), num(w.CommitsPerSec, 1), num(cell.QPS, 1),
			num(cell.StalePct, 2), ryw})
	}
	m.table([]string{"standbys", "mode", "strategy", "commits", "commit p50 ms", "commit p99 ms", "write phase rows/s", "commits/s (paced)", "read qps", "stale %", "read-your-writes violations"},
		"rllrrrrrrrl", rows)
	c.writeModeDeltas(m)
	m.p("A cell with fewer standbys than the rule names ran the rule without them. Commit latency includes the network hop to the standbys the rule waits for; on one host that hop is short, so a real cluster's sync cost is larger.\n\n")
}

// writeModeDeltas sets every mode beside the first, standby count by
// standby count, over all the strategies both measured: the headline of
// what a mode costs and buys.
func (c *Comparison) writeModeDeltas(m *md) {
	if len(c.Modes) < 2 {
		return
	}
	for _, mode := range c.Modes[1:] {
		for _, n := range c.Standbys {
			var base, cur []Repeat
			for _, s := range c.Strategies {
				b, k := c.cellIn(c.Modes[0], s, n), c.cellIn(mode, s, n)
				if b != nil && k != nil {
					base, cur = append(base, b.Repeats...), append(cur, k.Repeats...)
				}
			}
			if len(base) == 0 {
				continue
			}
			bw, cw := writeFigures(base), writeFigures(cur)
			bs := meanOf(repeatValues(base, func(r Repeat) float64 { return r.StalePct }))
			cs := meanOf(repeatValues(cur, func(r Repeat) float64 { return r.StalePct }))
			m.p("- **%s** vs %s, %d %s: commit p50 %s ms vs %s (%s), p99 %s vs %s; write phase %s rows/s vs %s; stale %s%% vs %s%%; read-your-writes violations %s vs %s.\n",
				mode, c.Modes[0], n, plural(n, "standby", "standbys"),
				num(cw.CommitP50, 3), num(bw.CommitP50, 3), signedPct(cw.CommitP50/bw.CommitP50-1),
				num(cw.CommitP99, 3), num(bw.CommitP99, 3), num(cw.WritePhaseRowsPerSec, 0), num(bw.WritePhaseRowsPerSec, 0),
				num(cs, 2), num(bs, 2), rywPct(cw), rywPct(bw))
		}
	}
	m.p("\n")
}

func signedPct(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", x*100)
}

func rywPct(w WriteFigures) string {
	if w.RYWChecks == 0 {
		return "not checked"
	}
	return num(pct(w.RYWViolations, w.RYWChecks), 2) + "%"
}
