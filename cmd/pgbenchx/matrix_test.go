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

// TestMatrixSyncModes compares asynchronous replication with ANY 1 under
// remote_apply in one matrix: each mode a cell of its own on an env built
// with its rule, commits slower when they wait for a standby to apply,
// and comparison.md setting the modes side by side.
func TestMatrixSyncModes(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "matrix", "--standbys", "2", "--strategies", "causal",
		"--sync", "off,ANY 1 (standby1, standby2)", "--commit", "remote_apply",
		"--duration", "3s", "--warmup", "300ms", "--clients", "4", "--write-rows", "0", "--write-rate", "300",
		"--scale", "1000", "--fast", "--out", out)
	if code != 0 {
		t.Fatalf("matrix: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "2 standby(s), sync ANY 1 (standby1, standby2), commit remote_apply, run 1 of 1") {
		t.Errorf("matrix does not say which mode it runs:\n%s", stdout)
	}
	p50 := map[string]float64{}
	for _, dir := range []string{"s2-async-remote_apply-causal-r1", "s2-any1-s1.2-remote_apply-causal-r1"} {
		runs, _ := filepath.Glob(filepath.Join(out, "*", dir, "run.json"))
		if len(runs) != 1 {
			t.Fatalf("no run folder %s: %v", dir, runs)
		}
		r, err := metrics.Load(runs[0])
		if err != nil {
			t.Fatal(err)
		}
		h := r.Strategies[0].CommitLatency
		if h == nil || h.TotalCount() == 0 {
			t.Fatalf("%s: no commit latency", dir)
		}
		p50[r.Environment.SynchronousStandbyNames] = float64(h.ValueAtQuantile(50)) / 1000
		if r.Config.Mode == "" || r.Config.Commit != "remote_apply" {
			t.Errorf("%s: mode %q, commit %q", dir, r.Config.Mode, r.Config.Commit)
		}
	}
	async, sync := p50[""], p50["ANY 1 (standby1, standby2)"]
	t.Logf("commit p50 under remote_apply: async %.3f ms, ANY 1 %.3f ms", async, sync)
	if async == 0 || sync == 0 {
		t.Fatalf("the envs' rules are not the modes asked for: %v", p50)
	}
	if sync <= async {
		t.Errorf("commit p50 waiting for a standby to apply (%.3f ms) is not above async's (%.3f ms)", sync, async)
	}
	mds, _ := filepath.Glob(filepath.Join(out, "*", "comparison.md"))
	if len(mds) != 1 {
		t.Fatalf("comparison.md: %v", mds)
	}
	md, _ := os.ReadFile(mds[0])
	for _, want := range []string{"## Replication modes", "- **sync ANY 1 (standby1, standby2), commit remote_apply** vs async, commit remote_apply, 2 standbys: commit p50"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("comparison.md lacks %q:\n%s", want, md)
		}
	}
}
