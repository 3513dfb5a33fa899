package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
)

// rssBudgetMB is issue 7's bar: 256 clients must cost well under 200 MB.
const rssBudgetMB = 200

// BenchmarkRunRSS measures the load generator's peak RSS at 16 and 256
// clients against a real env (primary + 2 standbys), so that memory stays
// bounded as clients grow: histograms are per node and query kind, not per
// client. It fails when 256 clients reach rssBudgetMB.
//
// Each `pgbenchx run` is a child process of a binary built once, and its
// peak RSS is the child's ru_maxrss from wait4 (kilobytes on Linux); an
// in-process run would mix in the test binary's own heap.
//
// The figures are measured once per invocation of the benchmark function,
// whatever b.N is: a 5 s run repeated b.N times measures nothing more.
// All the work is done before an empty b.Loop, which (unlike a loop over
// b.N) makes the testing package call this function once even under
// -benchtime 5x, as `make bench` runs it. ns/op is suppressed; the
// metrics are MB-rss-16c, MB-rss-256c and the ratio between them.
func BenchmarkRunRSS(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a cluster and runs two 5 s loads; skipped with -short")
	}
	tmp := b.TempDir()
	bin := filepath.Join(tmp, "pgbenchx")
	stateDir := filepath.Join(tmp, "state")
	childEnv := append(os.Environ(), env.StateDirEnv+"="+stateDir)

	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	// pgbenchx runs the CLI with the isolated state dir; it returns the
	// child's stdout+stderr, its peak RSS in MB and how long it took.
	pgbenchx := func(args ...string) (out []byte, rssMB float64, took time.Duration, err error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = childEnv
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		t0 := time.Now()
		err = cmd.Run()
		took = time.Since(t0)
		if cmd.ProcessState != nil {
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				rssMB = float64(ru.Maxrss) / 1024 // KiB on Linux
			}
		}
		return buf.Bytes(), rssMB, took, err
	}

	name := "rss" + strconv.Itoa(os.Getpid())
	// Each node gets a read pool of up to --clients connections, plus
	// probes (and on the primary the writer): 256 clients exceed
	// PostgreSQL's default max_connections of 100.
	out, _, took, err := pgbenchx("env", "up", "--standbys", "2", "--fast", "--name", name, "--pg-setting", "max_connections=700")
	b.Cleanup(func() {
		if out, _, _, err := pgbenchx("env", "down", "--name", name); err != nil {
			b.Errorf("env down: %v\n%s", err, out)
		}
	})
	if err != nil {
		b.Fatalf("env up: %v\n%s", err, out)
	}
	b.Logf("env up in %.1fs", took.Seconds())

	rss := map[int]float64{}
	for _, clients := range []int{16, 256} {
		out, mb, took, err := pgbenchx("run", "--name", name, "--standbys", "2", "--strategy", "round-robin",
			"--clients", strconv.Itoa(clients), "--duration", "5s", "--warmup", "1s",
			"--write-rows", "0", "--scale", "10000", "--out", filepath.Join(tmp, fmt.Sprintf("results-%d", clients)))
		if err != nil {
			b.Fatalf("run --clients %d: %v\n%s", clients, err, out)
		}
		if mb == 0 {
			b.Fatalf("run --clients %d: no ru_maxrss from the child (not Linux?)", clients)
		}
		rss[clients] = mb
		b.Logf("run --clients %d: %.1f MB peak RSS, %.1fs", clients, mb, took.Seconds())
		// The figure means little if the clients mostly failed (e.g. every
		// standby ejected after connect timeouts on a small host): show
		// how the run went.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "every read end to end") || strings.HasPrefix(strings.TrimSpace(line), "errors:") {
				b.Logf("  %s", strings.TrimSpace(line))
			}
		}
	}

	for b.Loop() {
		// Nothing per iteration: see the doc comment.
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rss[16], "MB-rss-16c")
	b.ReportMetric(rss[256], "MB-rss-256c")
	b.ReportMetric(rss[256]/rss[16], "x-rss-256c/16c")
	fmt.Printf("RSS: 16 clients %.1f MB, 256 clients %.1f MB (%.2fx)\n", rss[16], rss[256], rss[256]/rss[16])
	if rss[256] >= rssBudgetMB {
		b.Errorf("256 clients peak at %.1f MB RSS, want < %d MB (issue 7)", rss[256], rssBudgetMB)
	}
}
