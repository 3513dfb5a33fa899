package report

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/pgbenchx/pgbenchx/input"
)

func TestParseGates(t *testing.T) {
	for _, c := range []struct {
		in     string
		scope  string
		metric string
		op     string
		value  float64
	}{
		{"p99<5ms", "", "p99", "<", 5},
		{"p99<5", "", "p99", "<", 5},
		{" P50 <= 0.5s ", "", "p50", "<=", 500},
		{"p999<800us", "", "p999", "<", 0.8},
		{"p99<1us", "", "p99", "<", 0.001},
		{"p99<1µs", "", "p99", "<", 0.001}, // micro sign
		{"p99<1μs", "", "p99", "<", 0.001}, // Greek mu
		{"p99<60s", "", "p99", "<", 60000},
		{"max<2m", "", "max", "<", 120000},
		{"max<1h", "", "max", "<", 3600000},
		{"max<1.5H", "", "max", "<", 5400000},
		{"p99<5MS", "", "p99", "<", 5},
		{"max!=60s", "", "max", "!=", 60000},
		{"p90>=1.5ms", "", "p90", ">=", 1.5},
		{"stale<1%", "", "stale", "<", 1},
		{"stale<0.01", "", "stale", "<", 1},
		{"errors=0", "", "errors", "=", 0},
		{"errors<0.1%", "", "errors_pct", "<", 0.1},
		{"failed<=1%", "", "failed_pct", "<=", 1},
		{"errors==0", "", "errors", "=", 0},
		{"failed=0", "", "failed", "=", 0},
		{"failed<10", "", "failed", "<", 10},
		{"retries<10", "", "retries", "<", 10},
		{"qps>=1000", "", "qps", ">=", 1000},
		{"qps>=1000qps", "", "qps", ">=", 1000},
		{"lag_ms<100", "", "lag_ms", "<", 100},
		{"lag_ms<2s", "", "lag_ms", "<", 2000},
		{"lag_ms<1m", "", "lag_ms", "<", 60000},
		{"lag_bytes<16MB", "", "lag_bytes", "<", 16 << 20},
		{"lag_bytes<64kB", "", "lag_bytes", "<", 64 << 10},
		{"lag_bytes<1MiB", "", "lag_bytes", "<", 1 << 20},
		// Scopes: a strategy, a node, via:NAME.
		{"lag-aware:p99<5ms", "lag-aware", "p99", "<", 5},
		{"standby2:stale<1%", "standby2", "stale", "<", 1},
		{" standby2 : stale < 1% ", "standby2", "stale", "<", 1},
		{"lag-aware:failed=0", "lag-aware", "failed", "=", 0},
		{"round-robin:errors=0", "round-robin", "errors", "=", 0},
		{"node_3:lag_ms<1s", "node_3", "lag_ms", "<", 1000},
		{"via:pgpool:p99<5ms", "via:pgpool", "p99", "<", 5},
		{"via:pgpool:failed=0", "via:pgpool", "failed", "=", 0},
		{"via:p99<5ms", "via", "p99", "<", 5}, // a node named via
	} {
		g, err := ParseGates(c.in, GateOnRun)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if len(g) != 1 || g[0].Scope != c.scope || g[0].Metric != c.metric || g[0].Op != c.op ||
			math.Abs(g[0].Value-c.value) > 1e-9*math.Max(1, c.value) || g[0].Text != strings.TrimSpace(c.in) {
			t.Errorf("%q = %+v, want %q %s %s %v", c.in, g, c.scope, c.metric, c.op, c.value)
		}
	}
	g, err := ParseGates("p99<5ms,stale<1%,errors=0,lag-aware:scaling>1.5,", GateOnComparison)
	if err != nil || len(g) != 4 {
		t.Errorf("the documented example: %d gates, %v", len(g), err)
	}
}

// TestParseGatesPerCommand checks which metrics each command takes:
// scaling only on a comparison, everything else on both.
func TestParseGatesPerCommand(t *testing.T) {
	for metric := range gateMetrics {
		cond := metric + ">=0"
		_, runErr := ParseGates(cond, GateOnRun)
		_, cmpErr := ParseGates(cond, GateOnComparison)
		if cmpErr != nil {
			t.Errorf("%s on a comparison: %v, want accepted", cond, cmpErr)
		}
		if wantRefused := metric == "scaling"; (runErr != nil) != wantRefused {
			t.Errorf("%s on one run: err %v, want refused=%v", cond, runErr, wantRefused)
		}
	}
}

func TestParseGatesRejects(t *testing.T) {
	for _, c := range []struct {
		in   string
		on   GateOn
		want string
	}{
		{"p95<5ms", GateOnRun, "unknown metric"},
		{"latency<5ms", GateOnRun, "p50, p90, p99"},
		{"p99 5ms", GateOnRun, "OP one of"},
		{"p99=>5ms", GateOnRun, "p99 takes"},
		{"p99<5parsecs", GateOnRun, "us (or µs), ms (default), s, m or h"},
		{"p99<5min", GateOnRun, "ms (default)"},
		{"p99<", GateOnRun, "p99 takes"},
		{"p99<-1ms", GateOnRun, "p99 takes"},
		{"stale<5", GateOnRun, "fraction from 0 to 1"},
		{"errors=0.5", GateOnRun, "whole number"},
		{"failed=1.5", GateOnRun, "whole number"},
		{"lag_bytes<3furlongs", GateOnRun, "KiB"},
		{"lag_bytes<3m", GateOnRun, "KiB"}, // minutes are not bytes
		{"", GateOnRun, "at least one condition"},
		{" , ", GateOnRun, "at least one condition"},
		// A metric one run cannot have.
		{"scaling>1.5", GateOnRun, "use it with pgbenchx compare or matrix"},
		{"lag-aware:scaling>1.5", GateOnRun, "compare or matrix"},
		// Strategy-only metrics scoped to a node.
		{"standby2:failed=0", GateOnRun, "for a node use errors"},
		{"standby2:failed=0", GateOnComparison, "is not a strategy"},
		{"lag_aware:failed=0", GateOnRun, "random, round-robin, least-conn, lag-aware, causal, nearest"},
		{"standby2:scaling>1.5", GateOnComparison, "scaling is a strategy's factor"},
		// Scopes that are not names.
		{":p99<5ms", GateOnRun, "the text before ':' scopes"},
		{"stand by2:p99<5ms", GateOnRun, "letters, digits"},
		{"lag.aware:p99<5ms", GateOnRun, "letters, digits"},
		{"standby2:", GateOnRun, "unknown metric"},
		{"standby2:p99:5ms", GateOnRun, "OP one of"},
	} {
		_, err := ParseGates(c.in, c.on)
		var ie *input.Error
		if !errors.As(err, &ie) || ie.Flag != "threshold" {
			t.Errorf("%q: err %v, want an *input.Error for threshold", c.in, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "--threshold ") && !strings.HasPrefix(msg, "--threshold:") {
			t.Errorf("%q: %q, want one line naming --threshold and mentioning %q", c.in, msg, c.want)
		}
		if c.in != "" && !strings.Contains(msg, strings.TrimSpace(strings.Split(c.in, ",")[0])) {
			t.Errorf("%q: %q does not name the condition", c.in, msg)
		}
	}
}

func mustGates(t *testing.T, s string, on GateOn) []Gate {
	t.Helper()
	g, err := ParseGates(s, on)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// verdictMap keys verdicts "condition @ scope".
func verdictMap(v []Verdict) map[string]Verdict {
	got := map[string]Verdict{}
	for _, x := range v {
		got[x.Gate.Text+" @ "+x.Scope] = x
	}
	return got
}

func wantVerdicts(t *testing.T, v []Verdict, want map[string]bool) {
	t.Helper()
	got := verdictMap(v)
	for k, pass := range want {
		if x, ok := got[k]; !ok || x.Pass != pass {
			t.Errorf("%s: pass=%v (reported: %v), want %v", k, x.Pass, ok, pass)
		}
	}
}

func TestCheckRun(t *testing.T) {
	r := fixture()
	gates := mustGates(t, "p99<100ms,p99<1ms,stale<10%,stale<1%,errors=0,qps>1,lag_ms<1s,lag_bytes<1kB,failed=0", GateOnRun)
	v := CheckRun(r, gates)
	wantVerdicts(t, v, map[string]bool{
		"p99<100ms @ round-robin": true,
		"p99<1ms @ round-robin":   false,
		"stale<10% @ round-robin": true,  // 20 of 700 checked
		"stale<1% @ round-robin":  false, // ... is 2.86%
		"errors=0 @ round-robin":  false, // 3 errors on standby2
		"qps>1 @ round-robin":     true,
		"lag_ms<1s @ round-robin": true,
		// standby2's 4096 bytes behind is the worst sample.
		"lag_bytes<1kB @ round-robin": false,
		"failed=0 @ round-robin":      false, // 1 read failed on every try
		"failed=0 @ lag-aware":        true,
	})
	// Rates: round-robin's 3 failed attempts of how many, its 1 failed
	// read of how many; lag-aware has neither.
	rates := CheckRun(r, mustGates(t, "errors<100%,errors<0.001%,failed<0.001%", GateOnRun))
	wantVerdicts(t, rates, map[string]bool{
		"errors<100% @ round-robin": true, "errors<0.001% @ round-robin": false,
		"failed<0.001% @ round-robin": false, "failed<0.001% @ lag-aware": true,
		"errors<100% @ lag-aware": true, "errors<0.001% @ lag-aware": true,
	})
	// Every strategy gets its own verdict per gate.
	if n := len(r.Strategies) * len(gates); len(v) != n {
		t.Errorf("%d verdicts, want %d", len(v), n)
	}

	var b bytes.Buffer
	if err := WriteVerdicts(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, line := range []string{
		"FAIL  p99<1ms        round-robin: ",
		"PASS  p99<100ms      round-robin: ",
		"FAIL  stale<1%       round-robin: 2.86%",
		"FAIL  lag_bytes<1kB  round-robin: 4.0 KiB",
		"PASS  failed=0       lag-aware: 0",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("verdicts lack %q:\n%s", line, out)
		}
	}
}

func TestCheckRunScopes(t *testing.T) {
	r := fixture()
	r.Strategies[0].Failed = 4
	gates := mustGates(t, "lag-aware:p99<100ms,round-robin:failed=0,lag-aware:failed=0,"+
		"standby2:stale<1%,standby2:errors=0,standby2:p99<1us,primary:lag_ms<1s,"+
		"standby9:p99<5ms,causal:p99<5ms,via:pgpool:p99<5ms", GateOnRun)
	v := CheckRun(r, gates)
	wantVerdicts(t, v, map[string]bool{
		"lag-aware:p99<100ms @ lag-aware":           true,
		"round-robin:failed=0 @ round-robin":        false, // 4 failed reads
		"lag-aware:failed=0 @ lag-aware":            true,
		"standby2:stale<1% @ round-robin, standby2": false, // 17 of 340
		"standby2:stale<1% @ lag-aware, standby2":   true,  // 0 of 40
		"standby2:errors=0 @ round-robin, standby2": false, // 3
		"standby2:errors=0 @ lag-aware, standby2":   true,
		"standby2:p99<1us @ round-robin, standby2":  false,
		// The primary has no lag: not measured, so not met.
		"primary:lag_ms<1s @ round-robin, primary": false,
		"standby9:p99<5ms @ standby9":              false,
		"causal:p99<5ms @ causal":                  false,
		"via:pgpool:p99<5ms @ via:pgpool":          false,
	})
	got := verdictMap(v)
	if n := len(verdictMap(v)); n != len(v) {
		t.Errorf("%d verdicts, %d distinct", len(v), n)
	}
	for _, k := range []string{"lag-aware:p99<100ms @ round-robin", "round-robin:failed=0 @ lag-aware"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s: a scoped gate was checked outside its scope", k)
		}
	}
	if x := got["standby2:stale<1% @ round-robin, standby2"]; math.Abs(x.Measured-5) > 1e-9 {
		t.Errorf("standby2's stale rate in round-robin: %v, want 5 (its own row, not the strategy's)", x.Measured)
	}
	for _, k := range []string{"standby9:p99<5ms @ standby9", "causal:p99<5ms @ causal"} {
		x := got[k]
		if !strings.Contains(x.Why, "no strategy or node named") || !strings.Contains(x.Why, "round-robin, lag-aware") || !strings.Contains(x.Why, "standby2") {
			t.Errorf("%s: why %q, want the scope explained with the run's names", k, x.Why)
		}
	}
	var b bytes.Buffer
	if err := WriteVerdicts(&b, v); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"FAIL  standby9:p99<5ms      standby9: no strategy or node named standby9 in this run (strategies: round-robin, lag-aware; nodes: primary, standby1, standby2)",
		"FAIL  primary:lag_ms<1s     round-robin, primary: not measured",
		"FAIL  round-robin:failed=0  round-robin: 4",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("verdicts lack %q:\n%s", line, b.String())
		}
	}
}

// TestCheckRunUnknown: what a run did not measure never passes.
func TestCheckRunUnknown(t *testing.T) {
	r := fixture()
	r.Schema = 1 // schema 1 did not count failed reads
	v := CheckRun(r, mustGates(t, "failed=0", GateOnRun))
	for _, x := range v {
		if x.Pass || !math.IsNaN(x.Measured) {
			t.Errorf("failed=0 on a schema 1 run: %+v, want an unknown that fails", x)
		}
	}
	r.Strategies = nil
	v = CheckRun(r, mustGates(t, "p99<5ms", GateOnRun))
	if len(v) != 1 || v[0].Pass || !strings.Contains(v[0].Why, "no read phase") {
		t.Errorf("a run without reads: %+v, want one failed verdict saying why", v)
	}
	// A gate parsed for a comparison handed to one run fails, never passes.
	v = CheckRun(fixture(), mustGates(t, "scaling>1.5", GateOnComparison))
	if len(v) != 1 || v[0].Pass || v[0].Why == "" {
		t.Errorf("scaling on one run: %+v, want a failed verdict", v)
	}
}

func TestComparisonCheck(t *testing.T) {
	c, err := Compare([]Sample{scaled(1, 100), scaled(2, 160)})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Check(mustGates(t, "scaling>1.5,scaling>1.7,qps>120,round-robin:scaling>1.5,lag-aware:scaling>1", GateOnComparison))
	want := map[string]bool{
		"scaling>1.5 @ round-robin, 2 vs 1 standbys":             true,
		"scaling>1.7 @ round-robin, 2 vs 1 standbys":             false,
		"qps>120 @ round-robin, 1 standby":                       false,
		"qps>120 @ round-robin, 2 standbys":                      true,
		"round-robin:scaling>1.5 @ round-robin, 2 vs 1 standbys": true,
		"lag-aware:scaling>1 @ lag-aware":                        false, // not in these runs
	}
	if len(got) != len(want) {
		t.Errorf("verdicts %v, want %v", verdictMap(got), want)
	}
	wantVerdicts(t, got, want)
}

func TestComparisonCheckScopes(t *testing.T) {
	c, err := Compare(loadCompareFixtures(t))
	if err != nil {
		t.Fatal(err)
	}
	v := c.Check(mustGates(t, "lag-aware:p99<100ms,standby2:errors=0,standby1:qps>0,lag-aware:failed=0,standby7:p99<1s", GateOnComparison))
	want := map[string]bool{
		"lag-aware:p99<100ms @ lag-aware, 1 standby":  true,
		"lag-aware:p99<100ms @ lag-aware, 2 standbys": true,
		// standby2 exists with 2 standbys only; s2-r2 has 2 errors there.
		"standby2:errors=0 @ round-robin, 2 standbys, standby2": true,
		"standby2:errors=0 @ lag-aware, 2 standbys, standby2":   false,
		"standby1:qps>0 @ round-robin, 1 standby, standby1":     true,
		"standby1:qps>0 @ lag-aware, 1 standby, standby1":       true,
		"standby1:qps>0 @ round-robin, 2 standbys, standby1":    true,
		"standby1:qps>0 @ lag-aware, 2 standbys, standby1":      true,
		// The stored fixtures are schema 1 files, which did not count
		// failed reads: unknown, so not met.
		"lag-aware:failed=0 @ lag-aware, 1 standby":  false,
		"lag-aware:failed=0 @ lag-aware, 2 standbys": false,
		"standby7:p99<1s @ standby7":                 false,
	}
	if len(v) != len(want) {
		t.Errorf("verdicts %v, want %v", verdictMap(v), want)
	}
	wantVerdicts(t, v, want)
	// A node's figures over a cell: its queries' latencies merged over the
	// repeats, its qps averaged.
	x := verdictMap(v)["standby1:qps>0 @ round-robin, 1 standby, standby1"]
	var qps []float64
	for _, r := range c.Cell("round-robin", 1).Repeats {
		for _, row := range strategyRows(r.strategy) {
			if row.Node == "standby1" {
				qps = append(qps, row.QPS)
			}
		}
	}
	if len(qps) != 2 || math.Abs(x.Measured-meanOf(qps)) > 1e-9 {
		t.Errorf("standby1's qps %v, want the mean of %v", x.Measured, qps)
	}
}

// TestComparisonCheckNoFactor: a scaling threshold with no factor to
// judge fails and says why, never passes silently.
func TestComparisonCheckNoFactor(t *testing.T) {
	one, err := Compare([]Sample{scaled(1, 100), scaled(1, 110)})
	if err != nil {
		t.Fatal(err)
	}
	v := one.Check(mustGates(t, "scaling>1.5", GateOnComparison))
	if len(v) != 1 || v[0].Pass || !strings.Contains(v[0].Why, "needs two standby counts") {
		t.Errorf("scaling over one standby count: %+v", v)
	}

	a, b := scaled(1, 100), scaled(2, 100)
	b.Result.Config.Rate = 100
	open, err := Compare([]Sample{a, b})
	if err != nil {
		t.Fatal(err)
	}
	v = open.Check(mustGates(t, "scaling>0.5", GateOnComparison))
	if len(v) != 1 || v[0].Pass || v[0].Scope != "round-robin, 2 vs 1 standbys" || !strings.Contains(v[0].Why, "open-loop runs (--rate 100)") {
		t.Errorf("scaling on open-loop runs: %+v, want a failed verdict naming --rate", v)
	}
	var buf bytes.Buffer
	_ = WriteVerdicts(&buf, v)
	if want := "FAIL  scaling>0.5  round-robin, 2 vs 1 standbys: no factor: open-loop runs (--rate 100): their qps is set by --rate, not by the cluster\n"; buf.String() != want {
		t.Errorf("verdict line %q, want %q", buf.String(), want)
	}
}

// TestCellFailed: failed reads are summed over a cell's repeats, and
// unknown as soon as one repeat did not count them.
func TestCellFailed(t *testing.T) {
	a, b := compareRun(1, 1), compareRun(1, 2)
	a.Strategies[0].Failed, b.Strategies[0].Failed = 2, 3
	c, err := Compare([]Sample{{Result: a}, {Result: b}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cell("round-robin", 1).Failed; got != 5 {
		t.Errorf("failed %v, want 5", got)
	}
	old := compareRun(1, 3)
	old.Schema = 1
	c, err = Compare([]Sample{{Result: a}, {Result: old}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cell("round-robin", 1).Failed; !math.IsNaN(got) {
		t.Errorf("failed with a schema 1 repeat: %v, want unknown", got)
	}
	v := c.Check(mustGates(t, "failed=0", GateOnComparison))
	for _, x := range v {
		if x.Pass {
			t.Errorf("%+v passed on an unknown figure", x)
		}
	}
}
