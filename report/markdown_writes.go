package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// writeCommitLatency gives the writes' own latency: every commit the
// primary acknowledged, per phase. What synchronous replication costs
// shows here, sync or not.
func writeCommitLatency(m *md, r *metrics.Result) {
	rows := CommitRows(r)
	m.p("## Commit latency\n\n")
	level := r.Config.Commit
	if level == "" {
		level = "the server's"
	}
	rule := r.Environment.SynchronousStandbyNames
	if rule == "" {
		rule = "none: asynchronous replication"
	}
	m.p("Each write from sending it to the primary's acknowledgement (write phase: a batch of %d rows; read phases: the background batches and session writes made while measuring). synchronous_commit %s; synchronous_standby_names %s.\n\n",
		max(1, batchOf(r)), level, rule)
	if len(rows) == 0 {
		m.p("No write was committed while measuring.\n\n")
		return
	}
	cells := make([][]string, len(rows))
	for i, c := range rows {
		cells[i] = []string{c.Phase, count(c.Commits), num(c.P50, 3), num(c.P90, 3), num(c.P99, 3), num(c.Max, 3)}
	}
	m.table([]string{"phase", "commits", "p50 ms", "p90 ms", "p99 ms", "max ms"}, "lrrrrr", cells)
}

func batchOf(r *metrics.Result) int {
	if r.Write != nil {
		return r.Write.Batch
	}
	return r.Config.WriteBatch
}

// CommitRow is one phase's commit latency, ms.
type CommitRow struct {
	Phase              string // "write phase" or a strategy
	Commits            int64
	P50, P90, P99, Max float64
}

// CommitRows are the phases that committed writes, in run order.
func CommitRows(r *metrics.Result) []CommitRow {
	var out []CommitRow
	add := func(phase string, h *metrics.Hist) {
		if h == nil || h.Histogram == nil || h.TotalCount() == 0 {
			return
		}
		p50, p90, p99, _, mx := percentiles(h)
		out = append(out, CommitRow{Phase: phase, Commits: h.TotalCount(), P50: p50, P90: p90, P99: p99, Max: mx})
	}
	if r.Write != nil {
		add("write phase", r.Write.CommitLatency)
	}
	for _, s := range r.Strategies {
		if s != nil {
			add(s.Strategy, s.CommitLatency)
		}
	}
	return out
}

// writeFailovers gives what a failover cost: the write unavailability
// window, how the other standbys came to follow, and the acknowledged
// rows the new primary holds.
func writeFailovers(m *md, r *metrics.Result) {
	d := r.Durability
	if len(r.Failovers) == 0 && (d == nil || (len(d.Outages) == 0 && d.RowsLost == 0)) {
		return
	}
	m.p("## Failover: write unavailability and durability\n\n")
	if d != nil {
		for _, o := range d.Outages {
			switch {
			case o.FirstAck.IsZero():
				m.p("- Writes moved from %s to %s: **write unavailability unknown**: %s acknowledged no commit within a minute.\n", o.OldPrimary, o.NewPrimary, o.NewPrimary)
			case o.LastAck.IsZero():
				m.p("- Writes moved from %s to %s: first commit on %s at %s; write unavailability unknown (no commit was acknowledged by %s before).\n", o.OldPrimary, o.NewPrimary, o.NewPrimary, stamp(o.FirstAck), o.OldPrimary)
			default:
				m.p("- **Write unavailability: %s ms**, from the last commit %s acknowledged (%s) to the first %s acknowledged (%s).\n",
					num(o.Seconds*1000, 1), o.OldPrimary, clock(o.LastAck), o.NewPrimary, clock(o.FirstAck))
			}
		}
	}
	for _, f := range r.Failovers {
		m.p("- Failover at %s: %s killed, %s promoted in %s ms", clock(f.At), f.OldPrimary, f.NewPrimary, num(f.PromoteMS, 1))
		if f.AllStreamingMS >= 0 && len(f.Followers) > 0 {
			m.p("; every remaining standby streamed from %s %s ms after the kill", f.NewPrimary, num(f.AllStreamingMS, 1))
		}
		m.p(".\n")
		for _, fo := range f.Followers {
			if fo.StreamingMS < 0 {
				m.p("  - **%s did not follow %s**: %s\n", fo.Node, f.NewPrimary, fo.Error)
				continue
			}
			m.p("  - %s: %s, streaming %s ms after the kill.\n", fo.Node, fo.How, num(fo.StreamingMS, 1))
		}
		if f.SynchronousStandbyNames != "" {
			m.p("  - %s was given synchronous_standby_names %s once the others followed it (the old rule with %s replaced), so its commits do not wait for a standby that is gone; commits before that were not waited for.\n", f.NewPrimary, f.SynchronousStandbyNames, f.NewPrimary)
		}
	}
	if d != nil {
		switch {
		case d.RowsLost > 0:
			m.p("- **Rows lost: %s** of %s acknowledged rows are missing on %s, the primary at the end: the primary acknowledged them and they were never replayed where writes went next.\n",
				count(d.RowsLost), count(d.AcknowledgedRows), d.CheckedOn)
		default:
			m.p("- Rows lost: 0. All %s acknowledged rows are on %s, the primary at the end.\n", count(d.AcknowledgedRows), d.CheckedOn)
		}
	}
	m.p("\n")
}

// clock is a time of day to the millisecond, for windows within a run.
func clock(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("15:04:05.000")
}

// failoverLine is one line for the terminal and comparisons: the
// unavailability and the rows lost.
func failoverLine(r *metrics.Result) string {
	d := r.Durability
	if d == nil || len(d.Outages) == 0 {
		return ""
	}
	var parts []string
	for _, o := range d.Outages {
		if o.Seconds > 0 {
			parts = append(parts, fmt.Sprintf("writes unavailable %s ms (%s to %s)", num(o.Seconds*1000, 1), o.OldPrimary, o.NewPrimary))
		}
	}
	parts = append(parts, fmt.Sprintf("%s of %s acknowledged rows lost", count(d.RowsLost), count(d.AcknowledgedRows)))
	return strings.Join(parts, "; ")
}
