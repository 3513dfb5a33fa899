package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/routing"
)

// storedRun writes a small run folder (run.json only) measured with the
// given standby count and rate, round-robin reads of 0.5 to 2 ms.
func storedRun(t *testing.T, standbys int, qps, rate float64) string {
	t.Helper()
	start := time.Date(2025, 3, 14, 10, standbys, 0, 0, time.UTC)
	r := &metrics.Result{
		Schema: metrics.SchemaVersion, Tool: "pgbenchx test", Label: "stored", StartedAt: start, EndedAt: start.Add(time.Minute),
		Config: metrics.Config{Strategies: []string{"round-robin"}, Duration: metrics.Duration(3 * time.Second),
			Clients: 4, Rate: rate, Mix: map[string]int{"point": 1}, Scale: 1000},
		Environment: metrics.Environment{Provider: "local", Name: "t", ServerVersion: "17.2", Standbys: standbys,
			Nodes: []metrics.NodeInfo{{Name: "primary", Role: "primary"}}},
	}
	s := &metrics.StrategyResult{Strategy: "round-robin"}
	var n int64
	for i := 1; i <= standbys; i++ {
		name := "standby" + string(rune('0'+i))
		r.Environment.Nodes = append(r.Environment.Nodes, metrics.NodeInfo{Name: name, Role: "standby"})
		h := metrics.NewHist()
		for j := range 100 {
			h.RecordUS(int64(500 + 15*j))
		}
		n += 100
		s.Nodes = append(s.Nodes, &metrics.NodeResult{Node: name, Role: "standby", Kinds: map[string]*metrics.Hist{"point": h},
			StaleChecked: 100})
	}
	s.Seconds = float64(n) / qps
	r.Strategies = []*metrics.StrategyResult{s}
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := report.WriteRun(dir, r, []string{report.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestScopeStrategiesMatchRouting keeps report's list of strategy names
// (which a threshold scope recognizes) equal to routing's.
func TestScopeStrategiesMatchRouting(t *testing.T) {
	var want []string
	for _, s := range routing.All {
		want = append(want, string(s))
	}
	if !slices.Equal(report.ScopeStrategies, want) {
		t.Errorf("report.ScopeStrategies %v, routing.All %v", report.ScopeStrategies, want)
	}
}

func thresholdOneLine(t *testing.T, what, stderr, want string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, want) {
		t.Errorf("%s: stderr %q, want one line naming %q", what, stderr, want)
	}
}

func TestThresholdReport(t *testing.T) {
	dir := storedRun(t, 2, 100, 0)
	for _, c := range []struct {
		threshold string
		code      int
		stdout    []string // in the verdicts
		stderr    string   // the one line of a refusal
	}{
		{"p99<1h,errors=0,failed=0", 0, []string{"--threshold:", "PASS  p99<1h", "round-robin: ", "PASS  failed=0"}, ""},
		{"p99<2000us,p50<0.001h,max<1m", 0, []string{"PASS  p99<2000us"}, ""},
		{"p99<1us", exitGateFailed, []string{"FAIL  p99<1us  round-robin: "}, "--threshold: 1 of 1 conditions failed"},
		{"round-robin:p99<1s,standby2:stale<1%", 0, []string{"round-robin, standby2: 0.00%"}, ""},
		{"standby9:p99<1s", exitGateFailed, []string{"FAIL  standby9:p99<1s  standby9: no strategy or node named standby9 in this run"}, ""},
		{"lag-aware:p99<1s", exitGateFailed, []string{"no strategy or node named lag-aware"}, ""},
		{"lag_ms<1s", exitGateFailed, []string{"FAIL  lag_ms<1s  round-robin: not measured"}, ""},
		// Refused: exit 2, nothing judged.
		{"scaling>1.5", exitBadInput, nil, `--threshold "scaling>1.5": scaling compares standby counts`},
		{"standby2:failed=0", exitBadInput, nil, `--threshold standby2:failed=0`},
		{"p99<5parsecs", exitBadInput, nil, `--threshold "p99<5parsecs"`},
		{"", exitBadInput, nil, "--threshold"},
	} {
		t.Run(c.threshold, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "report", dir, "--threshold", c.threshold)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, c.code, stdout, stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if c.stderr != "" {
				thresholdOneLine(t, "report --threshold "+c.threshold, stderr, c.stderr)
			}
			if code == exitBadInput && strings.Contains(stdout, "strategy round-robin") {
				t.Errorf("bad input still rendered the run:\n%s", stdout)
			}
		})
	}
	// Re-judging writes no file; --format still does.
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err == nil {
		t.Error("report --threshold wrote report.md")
	}
	if code, _, stderr := runCLI(t, "report", dir, "--threshold", "p99<1h", "--format", "md"); code != 0 {
		t.Fatalf("report --threshold --format md: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err != nil {
		t.Errorf("report --threshold --format md: %v", err)
	}
	// Without --threshold, report re-renders as before and judges nothing.
	if code, stdout, _ := runCLI(t, "report", dir); code != 0 || strings.Contains(stdout, "--threshold") {
		t.Errorf("report without --threshold: exit %d\n%s", code, stdout)
	}
}

func TestThresholdCompare(t *testing.T) {
	one, two := storedRun(t, 1, 100, 0), storedRun(t, 2, 180, 0)
	openOne, openTwo := storedRun(t, 1, 100, 100), storedRun(t, 2, 100, 100)
	for _, c := range []struct {
		runs      []string
		threshold string
		code      int
		stdout    []string
		stderr    string
	}{
		{[]string{one, two}, "scaling>1.5", 0, []string{"PASS  scaling>1.5  round-robin, 2 vs 1 standbys: 1.80"}, ""},
		{[]string{one, two}, "round-robin:scaling>1.9", exitGateFailed, []string{"FAIL  round-robin:scaling>1.9"}, ""},
		{[]string{one, two}, "standby2:p99<1s", 0, []string{"round-robin, 2 standbys, standby2: "}, ""},
		{[]string{one, two}, "failed=0,p99<1h", 0, []string{"PASS  failed=0", "round-robin, 1 standby: 0"}, ""},
		// Open loop: no factor, and a scaling threshold fails saying why.
		{[]string{openOne, openTwo}, "scaling>0.5", exitGateFailed,
			[]string{"FAIL  scaling>0.5  round-robin, 2 vs 1 standbys: no factor: open-loop runs (--rate 100)", "scaling n/a: open-loop runs"}, ""},
		{[]string{one, two}, "standby2:scaling>1", exitBadInput, nil, `--threshold "standby2:scaling>1"`},
		{[]string{one, two}, "p99<5parsecs", exitBadInput, nil, `--threshold "p99<5parsecs"`},
	} {
		t.Run(c.threshold, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append(append([]string{"compare"}, c.runs...), "--out", t.TempDir(), "--threshold", c.threshold)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, c.code, stdout, stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if c.stderr != "" {
				thresholdOneLine(t, "compare --threshold "+c.threshold, stderr, c.stderr)
			}
		})
	}
	// The workload differs (closed vs open loop): the table warns.
	code, stdout, _ := runCLI(t, "compare", one, openTwo, "--out", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "warning: the runs' workloads or settings differ (rate)") {
		t.Errorf("compare of closed and open loop: exit %d\n%s", code, stdout)
	}
}

// TestThresholdRefusedBeforeAnything: a bad --threshold, or the old
// --fail-if, is bad input before any cluster is built.
func TestThresholdRefusedBeforeAnything(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--threshold", "scaling>1.5"}, `--threshold "scaling>1.5"`},
		{[]string{"run", "--threshold", "standby2:failed=0"}, "--threshold"},
		{[]string{"run", "--threshold", "p99<5parsecs"}, "--threshold"},
		{[]string{"run", "--fail-if", "p99<5ms"}, "fail-if"},
		{[]string{"matrix", "--threshold", "p99<5parsecs"}, "--threshold"},
		{[]string{"matrix", "--threshold", "standby2:scaling>1"}, "--threshold"},
		{[]string{"matrix", "--fail-if", "p99<5ms"}, "fail-if"},
		{[]string{"compare", "a", "b", "--fail-if", "p99<5ms"}, "fail-if"},
		{[]string{"report", "a", "--fail-if", "p99<5ms"}, "fail-if"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != exitBadInput {
				t.Errorf("exit %d, want %d (stderr %q)", code, exitBadInput, stderr)
			}
			thresholdOneLine(t, strings.Join(c.args, " "), stderr, c.want)
		})
	}
}

func TestThresholdHelp(t *testing.T) {
	for _, cmd := range []string{"run", "matrix", "compare", "report"} {
		code, out, _ := runCLI(t, cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, want := range []string{"--threshold", `"p99<5ms`, "Exit codes: 0 ok", "3 a --threshold failed", "130 interrupted"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
		if strings.Contains(out, "fail-if") {
			t.Errorf("%s --help still mentions --fail-if", cmd)
		}
	}
}
