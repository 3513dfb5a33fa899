package report

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// WriteMarkdown writes comparison.md, for a capacity review asking what
// another standby buys and which routing strategy to use. charts are SVG
// paths relative to comparison.md.
func (c *Comparison) WriteMarkdown(w io.Writer, charts []string) error {
	m := &md{w: w}
	m.p("# pgbenchx comparison\n\n")
	c.writeCompared(m)
	c.writeWorkload(m)
	c.writeScaling(m)
	for _, n := range c.Standbys {
		c.writeStandbyTable(m, n)
	}
	c.writeModes(m)
	c.writeCPU(m)
	c.writePrimaryCost(m)
	if len(charts) > 0 {
		m.p("## Charts\n\n")
		for _, ch := range charts {
			m.p("![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(ch), filepath.Ext(ch)), filepath.ToSlash(ch))
		}
	}
	writeMethod(m)
	return m.err
}

// clusterOf names the cluster a run measured: provider, env name and host
// for a local env; the primary's address for an external one (DSNs are
// stored redacted, so the address is all that is left of them).
func clusterOf(r *metrics.Result) string {
	e := r.Environment
	parts := []string{orDash(e.Provider)}
	if e.Name != "" {
		parts = append(parts, fmt.Sprintf("env %q", e.Name))
	}
	if e.Provider == "external" {
		for _, n := range e.Nodes {
			if u, err := url.Parse(n.DSN); err == nil && n.Role == metrics.RolePrimary && u.Host != "" {
				parts = append(parts, "primary "+u.Host)
			}
		}
	} else if e.Host != "" {
		parts = append(parts, "on "+e.Host)
	}
	return strings.Join(parts, " ")
}

// oneLocalHost reports whether every run used a local env on the same
// host with the same server version and durability.
func (c *Comparison) oneLocalHost() (string, bool) {
	var first *metrics.Environment
	for _, s := range c.Samples {
		e := &s.Result.Environment
		if e.Provider != "local" || e.Host == "" {
			return "", false
		}
		if first == nil {
			first = e
			continue
		}
		if e.Host != first.Host || e.ServerVersion != first.ServerVersion || e.Fast != first.Fast {
			return "", false
		}
	}
	if first == nil {
		return "", false
	}
	return first.Host, true
}

func (c *Comparison) writeCompared(m *md) {
	clusters := map[string]bool{}
	var rows [][]string
	for _, s := range c.Samples {
		r := s.Result
		cl := clusterOf(r)
		clusters[cl] = true
		label := s.Label
		if s.Dir != "" {
			label = fmt.Sprintf("[%s](%s/)", s.Label, filepath.ToSlash(s.Dir))
		}
		var strategies []string
		for _, st := range r.Strategies {
			if st != nil {
				strategies = append(strategies, st.Strategy)
			}
		}
		rows = append(rows, []string{label, stamp(r.StartedAt), strings.Join(strategies, ", "),
			strconv.Itoa(r.Environment.Standbys), cl, orDash(r.Environment.ServerVersion), strconv.Itoa(r.Environment.Cores)})
	}
	m.p("## What was compared\n\n")
	counts := make([]string, len(c.Standbys))
	for i, n := range c.Standbys {
		counts[i] = strconv.Itoa(n)
	}
	m.p("%d %s: %s with %s %s.", len(c.Samples), plural(len(c.Samples), "run", "runs"),
		strings.Join(c.Strategies, ", "), strings.Join(counts, ", "), plural(c.Standbys[len(c.Standbys)-1], "standby", "standbys"))
	if len(c.Modes) > 1 {
		m.p(" Replication modes: %s.", strings.Join(c.Modes, "; "))
	}
	if len(clusters) == 1 {
		m.p(" All runs come from one cluster.\n\n")
	} else if host, ok := c.oneLocalHost(); ok {
		// matrix builds a fresh env per cell on purpose: not a caveat.
		m.p(" The runs come from %d local envs built the same way on one host (%s), fresh for each cell.\n\n", len(clusters), host)
	} else {
		m.p(" **The runs come from %d different clusters**: differences may be the clusters', not the standby counts' or the strategies'.\n\n", len(clusters))
	}
	m.table([]string{"run", "started", "strategies", "standbys", "cluster", "server", "host cores"}, "llllllr", rows)
}

// writeWorkload says whether the runs shared their workload and server
// settings, and if not, what differed between which runs.
func (c *Comparison) writeWorkload(m *md) {
	m.p("## Workload\n\n")
	diffs := c.WorkloadDiffs()
	if len(diffs) == 0 {
		m.p("Every run had the same workload (clients, rate, mix, query file, scale, write rate, duration) and the same server settings, CPU caps, server version, provider and fsync.\n\n")
		return
	}
	m.p("**The runs' workloads or settings differ**: the cells are still compared, but a difference between them may come from these, not from the standby count or the strategy.\n\n")
	for _, d := range diffs {
		m.p("- %s\n", mdCell(d.String()))
	}
	m.p("\n")
}

// pValue is p as people read it: three decimals, "p<0.001" below that.
func pValue(p float64) string {
	if p < 0.001 {
		return "p<0.001"
	}
	return "p=" + fixed(p, 3)
}

// fmtDelta shows a change benchstat's way: "~" when the test finds it
// inside run-to-run noise, the change and p when it finds it real, the
// bare change when there were too few runs to test.
func fmtDelta(name string, d Delta) string {
	if math.IsNaN(d.Change) || math.IsInf(d.Change, 0) {
		if d.Points {
			return name + " not checked"
		}
		return name + " -"
	}
	if d.Sig.Tested && !d.Sig.Significant() {
		return name + " ~"
	}
	ch := fmt.Sprintf("%+.1f%%", d.Change*100)
	if d.Points {
		ch = fmt.Sprintf("%+.2f pts", d.Change)
	}
	if d.Sig.Tested {
		return fmt.Sprintf("%s %s (%s)", name, ch, pValue(d.Sig.P))
	}
	return name + " " + ch
}

func (c *Comparison) writeScaling(m *md) {
	m.p("## Read scaling\n\n")
	factors := c.Scaling()
	if len(c.Standbys) == 1 {
		m.p("All runs had %d %s: there is no read scaling to report; the table below compares strategies.\n\n",
			c.Standbys[0], plural(c.Standbys[0], "standby", "standbys"))
	}
	refused := c.NoScaling()
	for _, mode := range c.Modes {
		for _, s := range c.Strategies {
			c.writeScalingOf(m, s, mode, factors, refused)
		}
	}
	if len(c.Standbys) > 1 {
		m.p("\n")
	}
	fewest, most := c.Repeats()
	runs := fmt.Sprintf("%d to %d runs per cell", fewest, most)
	if fewest == most {
		runs = fmt.Sprintf("%d runs per cell", most)
	}
	switch {
	case most == 1:
		m.p("Single run per cell: deltas carry no significance test.\n\n")
	case most < minRepeats:
		m.p("%s: deltas carry no significance test (it needs %d runs a side).\n\n", runs, minRepeats)
	case fewest < minRepeats:
		m.p("%s: deltas involving a cell of fewer than %d runs carry no significance test.\n\n", runs, minRepeats)
	default:
		m.p("%s: a delta marked ~ is inside run-to-run noise (Welch's t-test, p >= %.2f).\n\n", runs, alpha)
	}
}

// writeScalingOf gives one strategy's read scaling in one mode.
func (c *Comparison) writeScalingOf(m *md, s, mode string, factors []ScalingFactor, refused []NoScaling) {
	name := c.named(s, mode)
	var mine []ScalingFactor
	for _, f := range factors {
		if f.Strategy == s && f.Mode == mode {
			mine = append(mine, f)
		}
	}
	var none []NoScaling
	for _, n := range refused {
		if n.Strategy == s && n.Mode == mode {
			none = append(none, n)
		}
	}
	if len(mine) == 0 && len(none) == 0 && len(c.Standbys) > 1 {
		for _, cell := range c.Cells {
			if cell.Strategy == s && cell.Mode == mode {
				m.p("- **%s**: measured with %d %s only: no read scaling.\n", name, cell.Standbys, plural(cell.Standbys, "standby", "standbys"))
			}
		}
	}
	for _, f := range mine {
		m.p("- **%s**: %s, %s, %s, %s\n", name, scalingPhrase(f),
			fmtDelta("p50", f.P50), fmtDelta("p99", f.P99), fmtDelta("stale", f.Stale))
	}
	for _, n := range none {
		m.p("- **%s**: no read-scaling factor (%d vs %d standbys): %s; %s, %s, %s\n", name, n.Standbys, n.BaseStandbys,
			n.Why, fmtDelta("p50", n.P50), fmtDelta("p99", n.P99), fmtDelta("stale", n.Stale))
	}
}

// scalingPhrase always names the factor as "read scaling 1.42", so the
// headline can be found and read the same way in every report.
func scalingPhrase(f ScalingFactor) string {
	s := "read scaling " + orDash(fixed(f.Factor, 2))
	if f.Spread > 0 {
		s += " ± " + fixed(f.Spread, 2)
	}
	vs := fmt.Sprintf("%d vs %d standbys", f.Standbys, f.BaseStandbys)
	switch {
	case !f.Sig.Tested && f.Sig.N1 >= minRepeats && f.Sig.N2 >= minRepeats:
		return fmt.Sprintf("%s (%s; %d vs %d runs, %s: not tested)", s, vs, f.Sig.N2, f.Sig.N1, f.Sig.Why)
	case !f.Sig.Tested:
		return fmt.Sprintf("%s (%s; %d vs %d runs: not tested)", s, vs, f.Sig.N2, f.Sig.N1)
	case f.Sig.Significant():
		return fmt.Sprintf("%s (%s, %s)", s, vs, pValue(f.Sig.P))
	default:
		return fmt.Sprintf("%s ~ (%s, %s: inside run-to-run noise)", s, vs, pValue(f.Sig.P))
	}
}

func (c *Comparison) writeStandbyTable(m *md, n int) {
	m.p("## With %d %s\n\n", n, plural(n, "standby", "standbys"))
	vs := map[string]StrategyDelta{}
	for _, d := range c.StrategyDeltas() {
		if d.Standbys == n {
			vs[d.Name] = d
		}
	}
	var rows [][]string
	for _, cell := range c.Cells {
		if cell.Standbys != n {
			continue
		}
		qps := num(cell.QPS, 1)
		if len(cell.Repeats) > 1 {
			qps += " ± " + num(cell.QPSStddev, 1)
		}
		shares := make([]string, len(cell.Share))
		for i, sh := range cell.Share {
			shares[i] = sh.Node + " " + num(sh.Pct, 1) + "%"
		}
		against := "baseline"
		if d, ok := vs[cell.Name]; ok {
			against = strings.Join([]string{fmtDelta("qps", d.QPS), fmtDelta("p50", d.P50), fmtDelta("p99", d.P99), fmtDelta("stale", d.Stale)}, ", ")
		} else if cell.Strategy != c.Baseline {
			against = "-"
		}
		rows = append(rows, []string{cell.Name, strconv.Itoa(len(cell.Repeats)), qps,
			num(cell.P50, 3), num(cell.P99, 3), num(cell.StalePct, 2), count(cell.Errors),
			orDash(strings.Join(shares, ", ")), against})
	}
	m.table([]string{"strategy", "runs", "qps", "p50 ms", "p99 ms", "stale %", "errors", "share per node", "vs " + c.Baseline},
		"lrrrrrrll", rows)
}

func (c *Comparison) writeCPU(m *md) {
	m.p("## CPU and co-location\n\n")
	cores := map[int]bool{}
	var coreList []string
	saturated, bound, local := false, false, false
	for _, s := range c.Samples {
		if n := s.Result.Environment.Cores; !cores[n] {
			cores[n] = true
			coreList = append(coreList, strconv.Itoa(n))
		}
		local = local || s.Result.Environment.Provider == "local"
	}
	m.p("Host cores: %s.\n\n", strings.Join(coreList, ", "))
	var rows [][]string
	for _, cell := range c.Cells {
		lg := meanOf(repeatValues(cell.Repeats, func(r Repeat) float64 { return r.strategy.CPU.LoadGenCores }))
		srv := meanOf(repeatValues(cell.Repeats, func(r Repeat) float64 { return r.strategy.CPU.ServerCores }))
		sat := 0
		for _, r := range cell.Repeats {
			if r.strategy.CPU.HostSaturated {
				sat++
				saturated = true
			}
			bound = bound || r.strategy.CPU.LoadGenBound
		}
		rows = append(rows, []string{strconv.Itoa(cell.Standbys), cell.Name, num(lg, 2), num(srv, 2),
			fmt.Sprintf("%d of %d", sat, len(cell.Repeats))})
	}
	m.table([]string{"standbys", "strategy", "load generator cores", "server cores", "runs host-saturated"}, "rlrrr", rows)
	if saturated {
		m.p("**The host was saturated in some runs: the comparison reflects co-location, not replica scaling.** Every node and the load generator competed for the same cores, so another standby adds no CPU. Cap each node's CPU (`--cpus 0.5` on matrix, run or env up) so the host has headroom, or measure an external cluster (`--primary/--standby`).\n\n")
	} else if local {
		m.p("Local runs share one host's cores among every node and the load generator: read scaling measured here is bounded by that host.\n\n")
	}
	if bound {
		m.p("**The load generator was the bottleneck in some runs: their throughput understates the cluster.**\n\n")
	}
	c.writeCaps(m)
}

func (c *Comparison) writeCaps(m *md) {
	var caps []string
	for _, s := range c.Samples {
		if len(s.Result.Environment.CPUCaps) > 0 {
			caps = append(caps, s.Label+": "+weights(s.Result.Environment.CPUCaps))
		}
	}
	if len(caps) == 0 {
		return
	}
	m.p("CPU caps (cores per node): %s.\n\n", strings.Join(caps, "; "))
	var rows [][]string
	for _, cell := range c.Cells {
		sum := map[string]float64{}
		for _, r := range cell.Repeats {
			for n, sec := range r.strategy.ThrottledSec {
				sum[n] += sec
			}
		}
		names := make([]string, 0, len(sum))
		for n := range sum {
			names = append(names, n)
		}
		sortNatural(names)
		for _, n := range names {
			rows = append(rows, []string{strconv.Itoa(cell.Standbys), cell.Name, n, num(sum[n]/float64(len(cell.Repeats)), 1)})
		}
	}
	if len(rows) > 0 {
		m.p("Time each capped node's quota held it back, mean over runs:\n\n")
		m.table([]string{"standbys", "strategy", "node", "throttled s"}, "rllr", rows)
	}
}

func (c *Comparison) writePrimaryCost(m *md) {
	m.p("## Primary cost per standby\n\n")
	var rows [][]string
	for _, n := range c.Standbys {
		var perStandby, total, walsender []float64
		for _, cell := range c.Cells {
			if cell.Standbys != n {
				continue
			}
			for _, r := range cell.Repeats {
				if len(r.strategy.PrimaryCost) == 0 {
					continue
				}
				var sum float64
				for _, pc := range r.strategy.PrimaryCost {
					perStandby = append(perStandby, pc.WALBytesPerSec)
					sum += pc.WALBytesPerSec
					if pc.WalsenderCores >= 0 {
						walsender = append(walsender, pc.WalsenderCores)
					}
				}
				total = append(total, sum)
			}
		}
		if len(total) == 0 {
			continue
		}
		ws := "not visible"
		if len(walsender) > 0 {
			ws = fixed(meanOf(walsender), 3)
		}
		rows = append(rows, []string{strconv.Itoa(n), humanBytes(meanOf(perStandby)) + "/s", humanBytes(meanOf(total)) + "/s", ws})
	}
	if len(rows) == 0 {
		m.p("Not measured.\n\n")
		return
	}
	m.p("WAL the primary sent each standby and its walsender's CPU (\"not visible\" when the walsender's process cannot be seen from the load generator), mean over strategies and runs:\n\n")
	m.table([]string{"standbys", "WAL sent per standby", "WAL sent to all standbys", "walsender cores per standby"}, "rrrr", rows)
}

func writeMethod(m *md) {
	m.p("## Method\n\n")
	m.p("- A cell is one strategy with one standby count; its runs are the repeats.\n")
	m.p("- Latency percentiles are recomputed from the end-to-end HDR histograms of every run of a cell (every read once: retried ones with their whole time, failed ones at the time they failed), merged exactly; percentiles are never averaged. A node's figures come from every attempt it ran.\n")
	m.p("- qps is successful queries per measured second (warmup excluded), averaged over a cell's runs; ± is the sample standard deviation over the runs. Stale %% is the mean of the runs' stale rates; errors are summed over the runs.\n")
	m.p("- Read scaling is a strategy's mean qps with N standbys over its mean qps with the fewest standbys it was measured with; its ± propagates both cells' standard deviations. It is not given for open-loop runs (--rate), whose qps the schedule sets, not the cluster.\n")
	m.p("- Significance: Welch's two-sample t-test (unequal variances, Welch–Satterthwaite degrees of freedom, two-sided) on the runs' values, with at least %d runs a side; a delta with p >= %.2f is marked ~, inside run-to-run noise. Runs without any spread on either side are not tested. benchstat's Mann-Whitney U test is not used: with 3 runs against 3 its smallest possible p is 0.10, so it could never call a difference real.\n", minRepeats, alpha)
}
