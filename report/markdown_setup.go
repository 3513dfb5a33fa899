package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// The opening sections of report.md: how the run was set up, on what, and
// what the write phase left on each node.

func writeMeasured(m *md, r *metrics.Result) {
	c := r.Config
	var ran []string
	measured := map[string]bool{}
	for _, s := range r.Strategies {
		if s != nil {
			ran = append(ran, s.Strategy)
			measured[s.Strategy] = true
		}
	}
	m.p("## What was measured\n\n")
	warmup := "with no warmup"
	if c.Warmup > 0 {
		warmup = "after a " + dur(c.Warmup) + " warmup"
	}
	m.p("Reads through %d routing %s (%s), each for %s %s, with %d clients in ",
		len(ran), plural(len(ran), "strategy", "strategies"), orDash(strings.Join(ran, ", ")), dur(c.Duration), warmup, c.Clients)
	if c.Rate > 0 {
		m.p("open loop at %s queries/s (latency counts from each query's scheduled start, so queueing shows). ", num(c.Rate, 0))
	} else {
		m.p("closed loop (each client sends its next query when the previous one returns). ")
	}
	switch {
	case len(c.Scripts) > 0:
		var parts []string
		for _, sc := range c.Scripts {
			parts = append(parts, fmt.Sprintf("`%s` (%s, weight %d)", sc.Name, sc.File, sc.Weight))
		}
		m.p("pgbench scripts %s, each read one run of a script on one node (they have no stale-read check", strings.Join(parts, ", "))
		if c.QueryFile != "" {
			m.p("; queries from %s too", c.QueryFile)
		}
		if len(c.Mix) > len(c.Scripts) {
			m.p("; mix `%s`", mix(c.Mix))
		}
		m.p(")")
	case c.QueryFile != "":
		m.p("Queries from %s", c.QueryFile)
	default:
		m.p("Query mix `%s`", orDash(mix(c.Mix)))
	}
	if c.Protocol != "" && c.Protocol != "prepared" {
		m.p(", sent with the %s protocol", c.Protocol)
	}
	if c.ViaProtocol != "" && c.ViaProtocol != c.Protocol && len(c.Vias) > 0 {
		m.p(" (through via: endpoints with the %s protocol: a pooler keeps a prepared statement on the node its Parse went to)", c.ViaProtocol)
	}
	m.p(", scale %d. Reads went to the %d %s", c.Scale, r.Environment.Standbys, plural(r.Environment.Standbys, "standby", "standbys"))
	if c.ReadPrimary {
		m.p(" and the primary")
	}
	m.p(". ")
	if c.WriteRate > 0 {
		m.p("Background writes on the primary at %s rows/s during the reads.", num(c.WriteRate, 0))
	} else {
		m.p("No background writes during the reads.")
	}
	var skipped []string
	for _, s := range c.Strategies {
		if !measured[s] {
			skipped = append(skipped, s)
		}
	}
	if len(skipped) > 0 {
		m.p(" Configured but not measured: %s.", strings.Join(skipped, ", "))
	}
	m.p("\n\n")

	maxLag := []string{}
	if c.MaxLagBytes > 0 {
		maxLag = append(maxLag, humanBytes(float64(c.MaxLagBytes)))
	}
	if c.MaxLagTime > 0 {
		maxLag = append(maxLag, dur(c.MaxLagTime))
	}
	stale := "every read"
	if c.StaleSample > 1 {
		stale = "every " + strconv.Itoa(c.StaleSample) + " reads"
	} else if c.StaleSample <= 0 {
		stale = "-"
	}
	m.table([]string{"setting", "value"}, "ll", [][]string{
		{"write phase", fmt.Sprintf("%s rows in batches of %d", count(int64(c.WriteRows)), c.WriteBatch)},
		{"max lag (lag-aware)", orDash(strings.Join(maxLag, ", "))},
		{"lag fallback", orDash(c.LagFallback)},
		{"weights", orDash(weights(c.Weights))},
		{"read primary", yesNo(c.ReadPrimary)},
		{"max tries", strconv.Itoa(c.MaxTries)},
		{"eject for", dur(c.EjectFor)},
		{"lag interval", dur(c.LagInterval)},
		{"heartbeat", dur(c.Heartbeat)},
		{"staleness checked", stale},
		{"synchronous_commit (writers)", orDash(c.Commit)},
		{"synchronous_standby_names", orDash(r.Environment.SynchronousStandbyNames)},
		{"faults", orDash(strings.Join(c.Faults, ", "))},
		{"slot warning past", slotWarn(c.SlotWarnBytes)},
	})
}

func slotWarn(b int64) string {
	if b <= 0 {
		return "off"
	}
	return humanBytes(float64(b))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// mix prints weights as the --mix flag takes them, heaviest first.
func mix(mx map[string]int) string {
	kinds := make([]string, 0, len(mx))
	for k := range mx {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if mx[kinds[i]] != mx[kinds[j]] {
			return mx[kinds[i]] > mx[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + "=" + strconv.Itoa(mx[k])
	}
	return strings.Join(parts, ",")
}

func weights(wm map[string]float64) string {
	nodes := make([]string, 0, len(wm))
	for n := range wm {
		nodes = append(nodes, n)
	}
	sortNatural(nodes)
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = n + "=" + strconv.FormatFloat(wm[n], 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

func writeEnvironment(m *md, r *metrics.Result) {
	e := r.Environment
	provider := orDash(e.Provider)
	if e.Name != "" {
		provider += fmt.Sprintf(" (env %q)", e.Name)
	}
	delays := make([]string, 0, len(e.ApplyDelays))
	for n, d := range e.ApplyDelays {
		delays = append(delays, n+"="+d)
	}
	sortNatural(delays)
	applyDelays := "none"
	if len(delays) > 0 {
		applyDelays = strings.Join(delays, ", ")
	}
	fast := "no"
	if e.Fast {
		fast = "yes: fsync off: not durable numbers"
	}
	nodes := make([]string, len(e.Nodes))
	for i, n := range e.Nodes {
		nodes[i] = fmt.Sprintf("%s (%s)", n.Name, n.Role)
	}
	rows := [][]string{
		{"provider", provider},
		{"server version", orDash(e.ServerVersion)},
		{"standbys", strconv.Itoa(e.Standbys)},
		{"topology", orDash(e.Topology)},
		{"apply delays", applyDelays},
		{"fast", fast},
		{"connections", connections(e)},
		{"slow links", orDash(weightsOf(e.NetLinks))},
		{"cores", strconv.Itoa(e.Cores)},
	}
	if e.Host != "" {
		rows = append(rows, []string{"host", e.Host})
	}
	if len(e.CPUCaps) > 0 {
		rows = append(rows, []string{"CPU caps (cores per node)", weights(e.CPUCaps)})
	}
	if len(e.MemoryCaps) > 0 {
		mem := map[string]string{}
		for n, b := range e.MemoryCaps {
			mem[n] = humanBytes(float64(b))
		}
		rows = append(rows, []string{"memory caps", weightsOf(mem)})
	}
	rows = append(rows, []string{"nodes", orDash(strings.Join(nodes, ", "))})
	m.p("## Environment\n\n")
	m.table([]string{"environment", "value"}, "ll", rows)
	if e.Provider == "local" {
		m.p("Every node and the load generator ran on this one host and shared its %d cores: more standbys add no CPU, so here they cannot add read capacity.\n\n", e.Cores)
	}
}

// weightsOf lists node: value pairs in node order.
func weightsOf(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sortNatural(names)
	for i, n := range names {
		names[i] = n + " " + m[n]
	}
	return strings.Join(names, ", ")
}

// connections is how the load generator reached the nodes.
func connections(e metrics.Environment) string {
	switch {
	case e.UnixSocket:
		return "Unix sockets (--socket)"
	case e.Provider == "external":
		return "as the DSNs say"
	}
	return "TCP"
}

func writeWritePhase(m *md, r *metrics.Result) {
	m.p("## Write phase\n\n")
	wp := r.Write
	if wp == nil {
		m.p("No write phase in this run.\n\n")
		return
	}
	m.p("The write phase inserted **%s rows (%d)** on the primary in batches of %d in %s s: %s rows/s, %s errors.\n\n",
		count(wp.Rows), wp.Rows, wp.Batch, fixed(wp.Seconds, 3), num(wp.RowsPerSec, 1), count(wp.Errors))
	if len(wp.Standbys) > 0 {
		rows := make([][]string, len(wp.Standbys))
		for i, c := range wp.Standbys {
			catchUp := num(c.CatchUpMS, 1)
			if c.CatchUpMS < 0 {
				catchUp = "never"
			}
			peakB, peakMS := "-", "-" // -1: the standby never answered a sample
			if c.PeakLagBytes >= 0 {
				peakB = humanBytes(float64(c.PeakLagBytes))
			}
			if c.PeakLagMS >= 0 {
				peakMS = num(c.PeakLagMS, 1)
			}
			rows[i] = []string{c.Node, catchUp, peakB, peakMS}
		}
		m.table([]string{"standby", "catch-up ms", "peak lag", "peak lag ms (at least)"}, "lrrr", rows)
	}
	names, equal := rowCounts(r)
	if len(names) == 0 {
		m.p("Row counts were not checked.\n\n")
		return
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + count(wp.RowCounts[n])
	}
	if equal {
		m.p("Row counts are equal on every node (%s rows).\n\n", count(wp.RowCounts[names[0]]))
	} else {
		m.p("**Warning:** Row counts DIFFER: %s", strings.Join(parts, ", "))
		if missing := uncounted(r); len(missing) > 0 {
			m.p(" (not counted: %s)", strings.Join(missing, ", "))
		}
		m.p(".\n\n")
	}
}

// rowCounts lists the counted nodes in the environment's order and says
// whether every node was counted with the same result.
func rowCounts(r *metrics.Result) (names []string, equal bool) {
	wp := r.Write
	seen := map[string]bool{}
	for _, n := range r.Environment.Nodes {
		if _, ok := wp.RowCounts[n.Name]; ok && !seen[n.Name] {
			names, seen[n.Name] = append(names, n.Name), true
		}
	}
	var rest []string
	for n := range wp.RowCounts {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sortNatural(rest)
	names = append(names, rest...)
	// A node of the environment with no count is a node nobody checked.
	equal = wp.CountsEqual && len(names) >= len(r.Environment.Nodes)
	for _, n := range names {
		equal = equal && wp.RowCounts[n] == wp.RowCounts[names[0]]
	}
	return names, equal
}

func uncounted(r *metrics.Result) []string {
	var out []string
	for _, n := range r.Environment.Nodes {
		if _, ok := r.Write.RowCounts[n.Name]; !ok {
			out = append(out, n.Name)
		}
	}
	return out
}
