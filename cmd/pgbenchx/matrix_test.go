package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// TestMatrixCompareMerge runs a real 2x2 matrix (1 and 2 standbys x two
// strategies), then compare and merge on its cells.
func TestMatrixCompareMerge(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "matrix", "--standbys", "1,2", "--strategies", "round-robin,lag-aware",
		"--duration", "2s", "--warmup", "200ms", "--clients", "4", "--write-rows", "500", "--scale", "1000", "--fast", "--out", out)
	if code != 0 {
		t.Fatalf("matrix: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "run 1 of 1: round-robin, lag-aware ===") {
		t.Errorf("matrix does not say the order it ran the strategies in:\n%s", stdout)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*", "*", "run.json"))
	if len(runs) != 4 {
		t.Fatalf("%d run.json files, want 4 (one per cell): %v", len(runs), runs)
	}
	mds, _ := filepath.Glob(filepath.Join(out, "*", "comparison.md"))
	if len(mds) != 1 {
		t.Fatalf("comparison.md: %v", mds)
	}
	md, _ := os.ReadFile(mds[0])
	if !strings.Contains(strings.ToLower(string(md)), "read scaling") || !strings.Contains(string(md), ".svg") {
		t.Errorf("comparison.md lacks the read-scaling factor or chart links:\n%s", md)
	}
	if svgs, _ := filepath.Glob(filepath.Join(out, "*", "*.svg")); len(svgs) == 0 {
		t.Error("no chart next to comparison.md")
	}

	cmpOut := t.TempDir()
	if code, stdout, stderr := runCLI(t, "compare", filepath.Dir(runs[0]), filepath.Dir(runs[3]), "--out", cmpOut); code != 0 {
		t.Fatalf("compare: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(cmpOut, "comparison.csv")); err != nil {
		t.Error(err)
	}
	if code, _, stderr := runCLI(t, "compare", filepath.Dir(runs[0]), "/nonexistent/run"); code != exitBadInput || !strings.Contains(stderr, "/nonexistent/run") {
		t.Errorf("compare with a missing folder: exit %d, %q", code, stderr)
	}
	// A threshold nobody can meet fails with exit 3, distinct from bad
	// input; so does one scoped to a strategy, and to a node.
	for _, th := range []string{"p99<1us", "round-robin:p99<1us", "standby1:p99<1us"} {
		if code, stdout, _ := runCLI(t, "compare", filepath.Dir(runs[0]), filepath.Dir(runs[1]), "--out", t.TempDir(), "--threshold", th); code != exitGateFailed || !strings.Contains(stdout, "FAIL  "+th) {
			t.Errorf("compare --threshold %s: exit %d\n%s", th, code, stdout)
		}
	}
	// report re-judges a stored cell the way run judged it.
	if code, stdout, _ := runCLI(t, "report", filepath.Dir(runs[0]), "--threshold", "p99<1us"); code != exitGateFailed || !strings.Contains(stdout, "--threshold:") {
		t.Errorf("report --threshold p99<1us: exit %d\n%s", code, stdout)
	}

	// Merging a run with itself doubles every count exactly.
	mergedDir := filepath.Join(t.TempDir(), "merged")
	if code, stdout, stderr := runCLI(t, "merge", filepath.Dir(runs[0]), filepath.Dir(runs[0]), "--out", mergedDir); code != 0 {
		t.Fatalf("merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
	one, err := metrics.Load(runs[0])
	if err != nil {
		t.Fatal(err)
	}
	two, err := metrics.Load(filepath.Join(mergedDir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := two.Strategies[0].Total().TotalCount(), 2*one.Strategies[0].Total().TotalCount(); got != want {
		t.Errorf("merged count %d, want %d", got, want)
	}
}
