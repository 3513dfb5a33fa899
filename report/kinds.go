package report

import (
	"encoding/csv"
	"io"
	"sort"
	"strconv"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// KindRow is one kind of read (a built-in kind, a --query-file query, a
// -f script by its file's stem) in one strategy, over every node: its
// successful reads and their latency per attempt.
type KindRow struct {
	Strategy, Kind           string
	Queries                  int64
	QPS, SharePct            float64
	P50, P90, P99, P999, Max float64
}

// KindRows are every strategy's kinds, in the strategies' order, kinds
// sorted by name.
func KindRows(r *metrics.Result) []KindRow {
	var out []KindRow
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		byKind := map[string]*metrics.Hist{}
		for _, n := range s.Nodes {
			if n == nil {
				continue
			}
			for k, h := range n.Kinds {
				if byKind[k] == nil {
					byKind[k] = metrics.NewHist()
				}
				byKind[k].Add(h)
			}
		}
		kinds := make([]string, 0, len(byKind))
		var all int64
		for k, h := range byKind {
			kinds = append(kinds, k)
			all += h.TotalCount()
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			h := byKind[k]
			row := KindRow{Strategy: s.Strategy, Kind: k, Queries: h.TotalCount(), QPS: ratio(float64(h.TotalCount()), s.Seconds),
				SharePct: pct(h.TotalCount(), all)}
			row.P50, row.P90, row.P99, row.P999, row.Max = percentiles(h)
			out = append(out, row)
		}
	}
	return out
}

var kindColumns = []string{"kind", "queries", "qps", "share %", "p50 ms", "p99 ms", "p99.9 ms", "max ms"}

// writeKinds is a strategy's reads by kind in report.md, when it ran more
// than one kind or one of the user's (a script, a query file's query).
func writeKinds(m *md, r *metrics.Result, strategy string) {
	var cells [][]string
	custom := false
	for _, k := range KindRows(r) {
		if k.Strategy != strategy {
			continue
		}
		custom = custom || (k.Kind != "point" && k.Kind != "range" && k.Kind != "report")
		cells = append(cells, []string{k.Kind, count(k.Queries), num(k.QPS, 1), num(k.SharePct, 2),
			num(k.P50, 3), num(k.P99, 3), num(k.P999, 3), num(k.Max, 3)})
	}
	if len(cells) < 2 && !custom {
		return
	}
	m.p("Reads by kind (successful attempts, every node):\n\n")
	m.table(kindColumns, "lrrrrrrr", cells)
}

// WriteKindsCSV writes kinds.csv: one row per strategy x kind of read.
func WriteKindsCSV(w io.Writer, r *metrics.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"strategy", "kind", "queries", "qps", "share_pct", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}); err != nil {
		return err
	}
	for _, k := range KindRows(r) {
		if err := cw.Write([]string{k.Strategy, k.Kind, strconv.FormatInt(k.Queries, 10), qpsCSV(k.QPS), pctCSV(k.SharePct),
			msCSV(k.P50), msCSV(k.P90), msCSV(k.P99), msCSV(k.P999), msCSV(k.Max)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
