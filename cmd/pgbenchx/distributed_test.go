package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// TestTwoGeneratorsStartAtMerge is a distributed run on one machine: two
// load generators started together against one env with one --start-at
// seed the table once between them (not twice), measure the same
// seconds, and merge into one run whose counts are their sums.
func TestTwoGeneratorsStartAtMerge(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	if code, out, errs := runCLI(t, "env", "up", "--name", "dist", "--standbys", "1", "--fast"); code != 0 {
		t.Fatalf("env up: exit %d\n%s\n%s", code, out, errs)
	}
	defer runCLI(t, "env", "down", "--name", "dist")
	dirs := []string{t.TempDir(), t.TempDir()}
	codes := make([]int, 2)
	outs := make([]string, 2)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o, e string
			codes[i], o, e = runCLI(t, "run", "--name", "dist", "--standbys", "1", "--strategy", "round-robin",
				"--scale", "3000", "--write-rows", "0", "--write-rate", "0", "--warmup", "200ms", "--duration", "2s",
				"--clients", "2", "--start-at", "+8s", "--format", "json", "--out", dirs[i])
			outs[i] = o + e
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != 0 {
			t.Fatalf("generator %d: exit %d\n%s", i+1, code, outs[i])
		}
		if !strings.Contains(outs[i], "waiting") || strings.Contains(outs[i], "after --start-at") {
			t.Errorf("generator %d did not wait for --start-at (or was late):\n%s", i+1, outs[i])
		}
	}
	// One seed between them.
	c, err := env.Store{Dir: env.DefaultStateDir()}.Load("dist")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), c.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pgbenchx.orders`).Scan(&n); err != nil || n != 3000 {
		t.Errorf("orders has %d rows (%v), want the scale, 3000: seeded once", n, err)
	}
	var runs []*metrics.Result
	var folders []string
	for _, d := range dirs {
		m, _ := filepath.Glob(filepath.Join(d, "*", "run.json"))
		if len(m) != 1 {
			t.Fatalf("run.json under %s: %v", d, m)
		}
		r, err := metrics.Load(m[0])
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
		folders = append(folders, filepath.Dir(m[0]))
	}
	merged := filepath.Join(t.TempDir(), "merged")
	if code, out, errs := runCLI(t, "merge", folders[0], folders[1], "--out", merged); code != 0 {
		t.Fatalf("merge: exit %d\n%s\n%s", code, out, errs)
	}
	m, err := metrics.Load(filepath.Join(merged, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := runs[0].Strategies[0].Total().TotalCount() + runs[1].Strategies[0].Total().TotalCount()
	if got := m.Strategies[0].Total().TotalCount(); got != want || want == 0 {
		t.Errorf("merged reads %d, want the sum %d", got, want)
	}
	for _, w := range m.Warnings {
		if strings.Contains(w, "overlap") {
			t.Errorf("the generators' windows did not line up: %s", w)
		}
	}
}
