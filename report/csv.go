package report

import (
	"encoding/csv"
	"io"
	"strconv"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// summaryHeader is a contract with scripts that read summary.csv by column
// name: add columns at the end, never rename or reorder.
var summaryHeader = []string{
	"strategy", "node", "role", "queries", "qps", "share_pct",
	"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
	"errors", "retries", "stale_reads", "stale_pct",
	"lag_bytes_avg", "lag_bytes_max", "lag_ms_avg", "lag_ms_max",
}

// CSV precision: latencies to the microsecond the histograms record, qps
// and percentages as far as they mean anything, bytes whole.
func msCSV(x float64) string    { return fixed(x, 3) }
func qpsCSV(x float64) string   { return fixed(x, 1) }
func pctCSV(x float64) string   { return fixed(x, 2) }
func bytesCSV(x float64) string { return fixed(x, 0) }
func intCSV(n int64) string     { return strconv.FormatInt(n, 10) }

// WriteSummaryCSV writes summary.csv: one row per strategy x node, the
// figures of Rows. Unknown values are empty cells.
func WriteSummaryCSV(w io.Writer, r *metrics.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(summaryHeader); err != nil {
		return err
	}
	for _, row := range Rows(r) {
		rec := []string{
			row.Strategy, row.Node, row.Role, intCSV(row.Queries), qpsCSV(row.QPS), pctCSV(row.SharePct),
			msCSV(row.P50), msCSV(row.P90), msCSV(row.P99), msCSV(row.P999), msCSV(row.Max),
			intCSV(row.Errors), intCSV(row.Retries), intCSV(row.StaleReads), pctCSV(row.StalePct()),
			bytesCSV(row.LagBytesAvg), bytesCSV(row.LagBytesMax), msCSV(row.LagMSAvg), msCSV(row.LagMSMax),
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
func WriteTimeseriesCSV(w io.Writer, r *metrics.Result) error {
	names := standbys(r)
	header := []string{"strategy", "second", "qps", "p50_ms", "p99_ms"}
	for _, n := range names {
		header = append(header, "lag_bytes_"+n, "lag_ms_"+n)
	}
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
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// tickMS leaves a second without queries empty: its percentiles are 0 only
// because its histogram was empty.
func tickMS(t metrics.Tick, v float64) string {
	if t.Queries == 0 {
		return ""
	}
	return msCSV(v)
}
