package report

import (
	"encoding/csv"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// summaryHeader is a contract with scripts that read summary.csv by column
// name: add columns at the end, never rename or reorder.
var summaryHeader = []string{
	"strategy", "node", "role", "queries", "qps", "share_pct",
	"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
	"errors", "retries", "stale_reads", "stale_pct",
	"lag_bytes_avg", "lag_bytes_max", "lag_ms_avg", "lag_ms_max",
	"lag_ms_upper_avg", "lag_ms_upper_max", "replay_lag_ms_avg", "replay_lag_ms_max",
}

// totalsHeader is totals.csv's: one row per strategy, every read counted
// once end to end. Same contract as summaryHeader.
var totalsHeader = []string{
	"strategy", "seconds", "reads", "queries", "qps", "failed", "errors", "retries",
	"unfinished", "unsent", "no_target", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
	"stale_reads", "stale_pct",
}

// CSV precision: latencies to the microsecond the histograms record, qps
// and percentages as far as they mean anything, bytes whole.
func msCSV(x float64) string    { return fixed(x, 3) }
func qpsCSV(x float64) string   { return fixed(x, 1) }
func pctCSV(x float64) string   { return fixed(x, 2) }
func bytesCSV(x float64) string { return fixed(x, 0) }
func intCSV(n int64) string     { return strconv.FormatInt(n, 10) }

// WriteSummaryCSV writes summary.csv: one row per strategy x node, the
// figures of Rows (latencies of every attempt on the node, queries its
// successful ones). Unknown values are empty cells.
func WriteSummaryCSV(w io.Writer, r *metrics.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(summaryHeader); err != nil {
		return err
	}
	for _, row := range Rows(r) {
		rec := []string{
			row.Strategy, row.Node, string(row.Role), intCSV(row.Queries), qpsCSV(row.QPS), pctCSV(row.SharePct),
			msCSV(row.P50), msCSV(row.P90), msCSV(row.P99), msCSV(row.P999), msCSV(row.Max),
			intCSV(row.Errors), intCSV(row.Retries), intCSV(row.StaleReads), pctCSV(row.StalePct()),
			bytesCSV(row.LagBytesAvg), bytesCSV(row.LagBytesMax), msCSV(row.LagMSAvg), msCSV(row.LagMSMax),
			msCSV(row.LagMSUpperAvg), msCSV(row.LagMSUpperMax), msCSV(row.ReplayLagAvg), msCSV(row.ReplayLagMax),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func failedCSV(t total) string {
	if !t.FailedKnown {
		return ""
	}
	return intCSV(t.Failed)
}

// WriteTotalsCSV writes totals.csv: one row per strategy, its end-to-end
// figures (every read once: retried ones with their whole time, failed,
// cut-off and unsent ones at the latency they reached) and its counters.
func WriteTotalsCSV(w io.Writer, r *metrics.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(totalsHeader); err != nil {
		return err
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		t := strategyTotal(s)
		rec := []string{
			s.Strategy, fixed(s.Seconds, 3), intCSV(t.Reads), intCSV(t.Queries), qpsCSV(t.QPS), failedCSV(t),
			intCSV(t.Errors), intCSV(t.Retries), intCSV(s.Unfinished), intCSV(s.Unsent), intCSV(s.NoTarget),
			msCSV(t.P50), msCSV(t.P90), msCSV(t.P99), msCSV(t.P999), msCSV(t.Max),
			intCSV(t.StaleReads), pctCSV(pct(t.StaleReads, t.StaleChecked)),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTimeseriesCSV writes timeseries.csv: one row per strategy x second,
// with a pair of lag columns per standby the run knows of, so every row
// of every strategy has the same columns whichever standbys answered.
// qps counts successful reads, p50/p99 every read that ended that second;
// lag_ms is the lower bound of the time lag at the second's last sample;
// slot_bytes the WAL the standby's slot made the primary keep.
func WriteTimeseriesCSV(w io.Writer, r *metrics.Result) error {
	names := standbys(r)
	// The columns of schema 1 first, in their order, then those added
	// since: readers by position keep working.
	header := []string{"strategy", "second", "qps", "p50_ms", "p99_ms"}
	for _, n := range names {
		header = append(header, "lag_bytes_"+n, "lag_ms_"+n)
	}
	header = append(header, "errors", "failed", "events")
	nodes := mentioned(r, true)
	for _, n := range nodes {
		header = append(header, "qps_"+n, "errors_"+n)
	}
	for _, n := range names {
		header = append(header, "slot_bytes_"+n)
	}
	// Wall-clock time of the second's end (UTC, RFC 3339): a run's
	// seconds line up with dashboards. Empty in runs from before it.
	header = append(header, "time")
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, t := range s.Ticks {
			// Ticks are one second long, so a tick's queries are its qps.
			rec := []string{s.Strategy, strconv.Itoa(t.Second), intCSV(t.Queries), tickMS(t, t.P50MS), tickMS(t, t.P99MS)}
			for _, n := range names {
				b, ms := "", ""
				if v, ok := t.LagBytes[n]; ok {
					b = intCSV(v)
				}
				if v, ok := t.LagMS[n]; ok {
					ms = msCSV(v)
				}
				rec = append(rec, b, ms)
			}
			rec = append(rec, intCSV(t.Errors), intCSV(t.Failed), strings.Join(eventsIn(s, t.Second), "; "))
			for _, n := range nodes {
				// Runs of schema 1 kept no per-node counts: empty, not 0.
				q, e := "", ""
				if t.NodeQueries != nil {
					q, e = intCSV(t.NodeQueries[n]), intCSV(t.NodeErrors[n])
				}
				rec = append(rec, q, e)
			}
			for _, n := range names {
				// The WAL its slot kept on the primary; empty when unknown.
				kept := ""
				if v, ok := t.SlotBytes[n]; ok {
					kept = intCSV(v)
				}
				rec = append(rec, kept)
			}
			at := ""
			if !t.At.IsZero() {
				at = t.At.UTC().Format("2006-01-02T15:04:05.000Z07:00")
			}
			rec = append(rec, at)
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// eventsIn names the events of second sec of a strategy's measured time
// (an event at 2.3 s is in second 3); one during the warmup is in the
// first second, one after the last second in the last, marked so.
func eventsIn(s *metrics.StrategyResult, sec int) []string {
	last := len(s.Ticks)
	var out []string
	for _, e := range s.Events {
		at := int(math.Ceil(e.T))
		switch {
		case at < 1 && sec == 1:
			out = append(out, e.String()+" (in the warmup)")
		case at > last && sec == last:
			out = append(out, e.String()+" (after the last second)")
		case at == sec:
			out = append(out, e.String())
		}
	}
	return out
}

// tickMS leaves a second in which no read ended empty: its percentiles
// are 0 only because its histogram was empty.
func tickMS(t metrics.Tick, v float64) string {
	if t.Queries == 0 && t.Failed == 0 && v == 0 {
		return ""
	}
	return msCSV(v)
}
