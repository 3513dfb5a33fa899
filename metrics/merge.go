package metrics

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Merge combines runs of the same workload made by several load generators
// at once against one cluster into one run, as if one bigger load
// generator had made it. Histograms are added exactly, so every percentile
// of the merged run is exact; counters are summed.
//
// What cannot be exact: a merged tick's p50/p99 is the largest of the
// inputs' (the per-second histograms are not kept, and percentiles do not
// add), so the timeseries overstates per-second latency a little. What is
// a property of the cluster rather than of a load generator (lag samples,
// primary cost, CPU throttling, the host's CPU, the environment) is taken
// from the first run: the generators all watched the same cluster.
//
// The inputs are not modified.
func Merge(results ...*Result) (*Result, error) {
	if len(results) < 2 {
		return nil, fmt.Errorf("merge: need at least 2 runs, got %d", len(results))
	}
	for i, r := range results {
		if r == nil {
			return nil, fmt.Errorf("merge: run %d is missing", i+1)
		}
	}
	if err := mergeable(results); err != nil {
		return nil, err
	}
	if err := overlapping(results); err != nil {
		return nil, err
	}
	first := results[0]
	out := *first
	out.Label = "merged"
	out.Config = first.Config
	out.Config.Strategies = slices.Clone(first.Config.Strategies)
	out.Warnings = nil
	var names []string
	for i, r := range results {
		if i > 0 {
			out.Config.Clients += r.Config.Clients
			out.Config.Rate += r.Config.Rate
		}
		if r.StartedAt.Before(out.StartedAt) {
			out.StartedAt = r.StartedAt
		}
		if r.EndedAt.After(out.EndedAt) {
			out.EndedAt = r.EndedAt
		}
		out.Interrupted = out.Interrupted || r.Interrupted
		names = append(names, fmt.Sprintf("%s (started %s)", orUnlabelled(r.Label), r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC")))
		for _, w := range r.Warnings {
			out.Warnings = append(out.Warnings, orUnlabelled(r.Label)+": "+w)
		}
	}
	out.Warnings = append([]string{fmt.Sprintf("Merged from %d load generators' runs: %s. Lag samples, primary cost and host CPU are the first run's; per-second p50/p99 are the largest of the runs', not recomputed.",
		len(results), strings.Join(names, ", "))}, out.Warnings...)
	for _, st := range first.Strategies {
		if st == nil {
			continue
		}
		if f := overlap(results, st.Strategy); f < fullOverlap {
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s: the runs measured together for %.0f%% of the time any of them measured: its rates are the sum of each run's own, which holds only while all ran", st.Strategy, 100*f))
		}
	}
	out.Write = mergeWrite(results)
	out.Events = nil
	for _, r := range results {
		out.Events = addEvents(out.Events, r.Events)
	}
	out.Strategies = nil
	for _, s := range first.Strategies {
		parts := make([]*StrategyResult, len(results))
		for i, r := range results {
			parts[i] = strategyNamed(r, s.Strategy)
		}
		out.Strategies = append(out.Strategies, mergeStrategy(results, parts))
	}
	return &out, nil
}

func orUnlabelled(label string) string {
	if label == "" {
		return "unlabelled"
	}
	return label
}

// mergeable refuses runs that did not measure the same thing: adding their
// histograms would produce figures of no workload that ran.
func mergeable(results []*Result) error {
	first := results[0]
	want := strategyNames(first)
	wantNodes := nodeNames(first)
	var errs []error
	for i, r := range results[1:] {
		n := i + 2
		if r.Schema != first.Schema {
			errs = append(errs, fmt.Errorf("merge: run %d has schema %d, run 1 schema %d", n, r.Schema, first.Schema))
			continue
		}
		if got := strategyNames(r); !slices.Equal(got, want) {
			errs = append(errs, fmt.Errorf("merge: run %d measured strategies [%s], run 1 [%s]", n, strings.Join(got, ", "), strings.Join(want, ", ")))
			continue
		}
		if got := nodeNames(r); !slices.Equal(got, wantNodes) {
			errs = append(errs, fmt.Errorf("merge: run %d read from nodes [%s], run 1 from [%s]", n, strings.Join(got, ", "), strings.Join(wantNodes, ", ")))
		}
		if d := workloadDiff(first.Config, r.Config); d != "" {
			errs = append(errs, fmt.Errorf("merge: run %d ran another workload than run 1 (%s)", n, d))
		}
	}
	return errors.Join(errs...)
}

// workloadDiff names what makes two runs' workloads differ; clients and
// rate may (each generator drives its share), but the loop kind, mix,
// queries and durations may not: their histograms would describe a
// workload that never ran.
func workloadDiff(a, b Config) string {
	switch {
	case (a.Rate > 0) != (b.Rate > 0):
		return "one closed loop, one open loop"
	case !maps.Equal(a.Mix, b.Mix):
		return "query mix"
	case a.QueryFile != b.QueryFile && (a.QueryFileSHA256 == "" || b.QueryFileSHA256 == ""):
		// By contents when both runs recorded them: the same file may sit
		// at another path on each load generator.
		return "query file"
	case a.Duration != b.Duration || a.Warmup != b.Warmup:
		return "duration or warmup"
	case a.WriteRate != b.WriteRate:
		return "background write rate"
	case a.QueryFileSHA256 != b.QueryFileSHA256:
		return "query file contents"
	case !slices.EqualFunc(a.Scripts, b.Scripts, func(x, y ScriptInfo) bool {
		return x.Name == y.Name && x.Weight == y.Weight && x.SHA256 == y.SHA256
	}):
		return "scripts (-f)"
	case a.Scale != b.Scale:
		return "scale"
	case a.Heartbeat != b.Heartbeat:
		// Stale reads are judged against the heartbeat: counts at two
		// intervals do not add up to one rate.
		return "heartbeat interval"
	case a.QueryTimeout != b.QueryTimeout || a.MaxTries != b.MaxTries:
		return "query timeout or tries"
	case a.MaxLagBytes != b.MaxLagBytes || a.MaxLagTime != b.MaxLagTime || a.LagFallback != b.LagFallback:
		return "lag-aware limits"
	case a.ReadPrimary != b.ReadPrimary:
		return "reads on the primary"
	case a.Commit != b.Commit:
		// Commit latencies at two levels are two distributions.
		return "synchronous_commit"
	}
	return ""
}

func strategyNames(r *Result) []string {
	var names []string
	for _, s := range r.Strategies {
		if s != nil {
			names = append(names, s.Strategy)
		}
	}
	sort.Strings(names)
	return names
}

// nodeNames is every node of the environment and of every strategy, so a
// run against a different cluster layout is caught either way.
func nodeNames(r *Result) []string {
	seen := map[string]bool{}
	for _, n := range r.Environment.Nodes {
		seen[n.Name] = true
	}
	for _, s := range r.Strategies {
		if s == nil {
			continue
		}
		for _, n := range s.Nodes {
			if n != nil {
				seen[n.Node] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func strategyNamed(r *Result, name string) *StrategyResult {
	for _, s := range r.Strategies {
		if s != nil && s.Strategy == name {
			return s
		}
	}
	return nil
}

// window is a strategy's measured window, or for a schema 1 file (which
// has none) the run's whole span.
func window(r *Result, s *StrategyResult) (from, to time.Time) {
	if !s.MeasuredFrom.IsZero() && !s.MeasuredTo.IsZero() {
		return s.MeasuredFrom, s.MeasuredTo
	}
	return r.StartedAt, r.EndedAt
}

// overlapping refuses runs whose measured windows have no time in common:
// their reads never loaded the cluster together, so adding them describes
// a load that never ran (and, over the longest window, doubles QPS).
func overlapping(results []*Result) error {
	var errs []error
	for _, s := range results[0].Strategies {
		if s == nil {
			continue
		}
		var latestFrom, earliestTo time.Time
		for i, r := range results {
			from, to := window(r, strategyNamed(r, s.Strategy))
			if from.IsZero() || to.IsZero() {
				errs = append(errs, fmt.Errorf("merge: run %d does not say when %s was measured", i+1, s.Strategy))
				continue
			}
			if latestFrom.IsZero() || from.After(latestFrom) {
				latestFrom = from
			}
			if earliestTo.IsZero() || to.Before(earliestTo) {
				earliestTo = to
			}
		}
		if latestFrom.IsZero() {
			continue
		}
		if !latestFrom.Before(earliestTo) {
			errs = append(errs, fmt.Errorf("merge: the runs measured %s at different times (one started %s after another had ended): merge runs made at the same time against one cluster",
				s.Strategy, latestFrom.Sub(earliestTo).Round(time.Millisecond)))
			continue
		}
		// Their reads loaded the cluster together only while every window
		// was open; the merged rates are over the span of all of them.
		if from, to := span(results, s.Strategy); float64(earliestTo.Sub(latestFrom)) < minOverlap*float64(to.Sub(from)) {
			errs = append(errs, fmt.Errorf("merge: the runs measured %s together for only %s of the %s they spanned (want %.0f%%): start the load generators together",
				s.Strategy, earliestTo.Sub(latestFrom).Round(time.Millisecond), to.Sub(from).Round(time.Millisecond), 100*minOverlap))
		}
	}
	return errors.Join(errs...)
}

// minOverlap is how much of the span of all windows every run must have
// been measuring at once: the merged QPS divides every read by that span,
// so runs mostly apart would show a fraction of the load each one drove.
// Generators started together still start measuring apart by their setup
// (schema, seed, write phase), which a short run feels most: below
// fullOverlap the merged run says how much they overlapped.
const minOverlap = 0.5

// span is the earliest start and latest end of a strategy's windows.
const fullOverlap = 0.9

// overlap is the share of the span of a strategy's windows during which
// every run was measuring.
func overlap(results []*Result, strategy string) float64 {
	var latestFrom, earliestTo time.Time
	for _, r := range results {
		f, t := window(r, strategyNamed(r, strategy))
		if latestFrom.IsZero() || f.After(latestFrom) {
			latestFrom = f
		}
		if earliestTo.IsZero() || t.Before(earliestTo) {
			earliestTo = t
		}
	}
	from, to := span(results, strategy)
	if !to.After(from) || !earliestTo.After(latestFrom) {
		return 0
	}
	return float64(earliestTo.Sub(latestFrom)) / float64(to.Sub(from))
}

func span(results []*Result, strategy string) (from, to time.Time) {
	for _, r := range results {
		f, t := window(r, strategyNamed(r, strategy))
		if from.IsZero() || f.Before(from) {
			from = f
		}
		if t.After(to) {
			to = t
		}
	}
	return from, to
}

func mergeStrategy(results []*Result, parts []*StrategyResult) *StrategyResult {
	first := parts[0]
	out := &StrategyResult{
		Strategy:          first.Strategy,
		Lag:               slices.Clone(first.Lag),
		CPU:               first.CPU,
		PrimaryCost:       slices.Clone(first.PrimaryCost),
		ThrottledSec:      maps.Clone(first.ThrottledSec),
		TimeLagResolution: first.TimeLagResolution,
	}
	out.CPU.LoadGenCores = 0
	var schedule, e2e *Hist
	// The merged window spans every run's: QPS is what all of them did
	// over the time any of them measured.
	from, to := span(results, first.Strategy)
	if !parts[0].MeasuredFrom.IsZero() {
		out.MeasuredFrom, out.MeasuredTo = from, to
	}
	for _, p := range parts {
		out.Seconds = max(out.Seconds, p.Seconds)
		out.RYWChecks += p.RYWChecks
		out.RYWViolation += p.RYWViolation
		out.BackgroundWrites += p.BackgroundWrites
		out.Failed += p.Failed
		out.Unfinished += p.Unfinished
		out.Unsent += p.Unsent
		out.NoTarget += p.NoTarget
		out.Clipped += p.Clipped
		if e2e == nil {
			e2e = NewHist()
		}
		e2e.Add(p.Reads())
		out.CPU.LoadGenCores += p.CPU.LoadGenCores
		// One saturated generator caps the total the same way.
		out.CPU.LoadGenBound = out.CPU.LoadGenBound || p.CPU.LoadGenBound
		if p.ScheduleLag != nil && p.ScheduleLag.Histogram != nil {
			if schedule == nil {
				schedule = NewHist()
			}
			schedule.Add(p.ScheduleLag)
		}
		out.CommitLatency = addHist(out.CommitLatency, p.CommitLatency)
	}
	out.ScheduleLag = schedule
	out.EndToEnd = e2e
	out.Seconds = mergedSeconds(parts)
	for _, n := range first.Nodes {
		if n == nil {
			continue
		}
		merged := &NodeResult{Node: n.Node, Role: n.Role, Kinds: map[string]*Hist{}}
		for _, p := range parts {
			for _, pn := range p.Nodes {
				if pn != nil && pn.Node == n.Node {
					addNode(merged, pn)
				}
			}
		}
		out.Nodes = append(out.Nodes, merged)
	}
	out.Ticks = mergeTicks(results, parts, from)
	for i, p := range parts {
		// Times in the merged phase count from the earliest start.
		shift := 0.0
		if f, _ := window(results[i], p); !p.MeasuredFrom.IsZero() && !from.IsZero() {
			shift = f.Sub(from).Seconds()
		}
		evs := slices.Clone(p.Events)
		for k := range evs {
			evs[k].T += shift
		}
		out.Events = addEvents(out.Events, evs)
	}
	return out
}

// mergedSeconds is the measured time that makes the merged rates the sum
// of each generator's own rate (its reads over its own window): the
// generators loaded the cluster at once (overlapping checked that), so
// their rates add up, whereas dividing every read by the span of all
// windows would understate the load by their start skew.
func mergedSeconds(parts []*StrategyResult) float64 {
	var reads, rate, longest float64
	for _, p := range parts {
		longest = max(longest, p.Seconds)
		n := float64(p.Reads().TotalCount())
		if p.Seconds > 0 {
			reads += n
			rate += n / p.Seconds
		}
	}
	if rate <= 0 {
		return longest
	}
	return reads / rate
}

// addCounts adds per-node counts into dst (made when needed).
func addCounts(dst, src map[string]int64) map[string]int64 {
	for k, v := range src {
		if dst == nil {
			dst = map[string]int64{}
		}
		dst[k] += v
	}
	return dst
}

// addEvents adds the events of one run that another has not reported
// already: whoever injected a fault, every generator may have been told,
// each stamping it on its own clock, so the same kind on the same node
// within a second is one event.
func addEvents(list, more []Event) []Event {
	same := func(a, b Event) bool {
		d := a.At.Sub(b.At)
		return a.Kind == b.Kind && a.Node == b.Node && d < time.Second && d > -time.Second
	}
	for _, e := range more {
		if !slices.ContainsFunc(list, func(x Event) bool { return same(x, e) }) {
			list = append(list, e)
		}
	}
	slices.SortStableFunc(list, func(a, b Event) int { return a.At.Compare(b.At) })
	return list
}

func addNode(dst, src *NodeResult) {
	for kind, h := range src.Kinds {
		if dst.Kinds[kind] == nil {
			dst.Kinds[kind] = NewHist()
		}
		dst.Kinds[kind].Add(h)
	}
	if src.FailedLatency != nil && src.FailedLatency.Histogram != nil {
		if dst.FailedLatency == nil {
			dst.FailedLatency = NewHist()
		}
		dst.FailedLatency.Add(src.FailedLatency)
	}
	for class, v := range src.Errors {
		if dst.Errors == nil {
			dst.Errors = map[string]int64{}
		}
		dst.Errors[class] += v
	}
	for class, msg := range src.ErrorSamples {
		if dst.ErrorSamples == nil {
			dst.ErrorSamples = map[string]string{}
		}
		if _, ok := dst.ErrorSamples[class]; !ok {
			dst.ErrorSamples[class] = msg
		}
	}
	dst.Retries += src.Retries
	dst.StaleReads += src.StaleReads
	dst.StaleChecked += src.StaleChecked
}

// mergeTicks lines ticks up by wall-clock second: second k of a run that
// began measuring d seconds after the earliest is second k+d of the
// merged run (schema 1 files, without a window, line up by k).
func mergeTicks(results []*Result, parts []*StrategyResult, from time.Time) []Tick {
	bySecond := map[int]*Tick{}
	for i, p := range parts {
		offset := 0
		if f, _ := window(results[i], p); !p.MeasuredFrom.IsZero() && !from.IsZero() {
			offset = int(f.Sub(from).Round(time.Second) / time.Second)
		}
		for _, t := range p.Ticks {
			sec := t.Second + offset
			m, ok := bySecond[sec]
			if !ok {
				m = &Tick{Second: sec}
				bySecond[sec] = m
			}
			m.Queries += t.Queries
			m.Errors += t.Errors
			m.Failed += t.Failed
			m.NodeQueries = addCounts(m.NodeQueries, t.NodeQueries)
			m.NodeErrors = addCounts(m.NodeErrors, t.NodeErrors)
			m.P50MS = max(m.P50MS, t.P50MS)
			m.P99MS = max(m.P99MS, t.P99MS)
			// Lag is the cluster's: the first run's view, else whoever saw it.
			if i == 0 || m.LagBytes == nil {
				m.LagBytes = maps.Clone(t.LagBytes)
			}
			if i == 0 || m.LagMS == nil {
				m.LagMS = maps.Clone(t.LagMS)
			}
			if i == 0 || m.SlotBytes == nil {
				m.SlotBytes = maps.Clone(t.SlotBytes)
			}
		}
	}
	out := make([]Tick, 0, len(bySecond))
	for _, t := range bySecond {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Second < out[j].Second })
	return out
}

// mergeWrite adds up the rows each generator inserted; how the standbys
// kept up is judged by the worst view, since all inserts hit one primary.
func mergeWrite(results []*Result) *WritePhase {
	var out *WritePhase
	for _, r := range results {
		w := r.Write
		if w == nil {
			continue
		}
		if out == nil {
			out = &WritePhase{Batch: w.Batch, RowCounts: map[string]int64{}, CountsEqual: true}
		}
		out.Rows += w.Rows
		out.Errors += w.Errors
		out.CommitLatency = addHist(out.CommitLatency, w.CommitLatency)
		out.Seconds = max(out.Seconds, w.Seconds)
		// Row counts are read after each generator's phase: the largest is
		// the one taken after every insert had landed.
		for n, c := range w.RowCounts {
			out.RowCounts[n] = max(out.RowCounts[n], c)
		}
		for _, c := range w.Standbys {
			out.Standbys = mergeCatchUp(out.Standbys, c)
		}
	}
	if out == nil {
		return nil
	}
	if out.Seconds > 0 {
		out.RowsPerSec = float64(out.Rows) / out.Seconds
	}
	var ref int64 = -1
	for _, c := range out.RowCounts {
		if ref >= 0 && c != ref {
			out.CountsEqual = false
		}
		ref = c
	}
	return out
}

// addHist merges h into sum, made on first need: a run that recorded
// none leaves the merged figure unknown rather than empty.
func addHist(sum, h *Hist) *Hist {
	if h == nil || h.Histogram == nil {
		return sum
	}
	if sum == nil {
		sum = NewHist()
	}
	sum.Add(h)
	return sum
}

func mergeCatchUp(list []CatchUp, c CatchUp) []CatchUp {
	for i := range list {
		if list[i].Node != c.Node {
			continue
		}
		m := &list[i]
		if m.CatchUpMS < 0 || c.CatchUpMS < 0 {
			m.CatchUpMS = -1 // never caught up in one view is never
		} else {
			m.CatchUpMS = max(m.CatchUpMS, c.CatchUpMS)
		}
		m.PeakLagBytes = max(m.PeakLagBytes, c.PeakLagBytes)
		m.PeakLagMS = max(m.PeakLagMS, c.PeakLagMS)
		return list
	}
	return append(list, c)
}
