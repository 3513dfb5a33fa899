package main

import (
	"bufio"
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

// The cluster benchmarks of this package share one way of working: the CLI
// is built once per benchmark into a temp folder and run as a child
// process with a state dir of its own (so no env of a user or of another
// test is touched), and what a child cost is read from its rusage after
// wait4 — user+sys CPU and peak RSS of that process alone, which an
// in-process run would mix with the test binary's own.
//
// The figures are measured once per invocation of a benchmark function,
// whatever b.N is: a 5 s run repeated b.N times measures nothing more. All
// the work is done before an empty b.Loop, which (unlike a loop over b.N)
// makes the testing package call the function once even under
// -benchtime 5x; ns/op is suppressed and the figures are custom metrics.

// benchCLI is the pgbenchx binary built for one benchmark, with its own
// state dir.
type benchCLI struct {
	bin string   // the built binary
	tmp string   // the benchmark's temp folder: outputs go under it
	env []string // the children's environment (state dir set)
}

// childRun is what one finished child process printed and cost.
type childRun struct {
	out   []byte        // stdout and stderr, interleaved
	cpu   time.Duration // user + system time of the process (all its threads)
	rssMB float64       // peak RSS (ru_maxrss, KiB on Linux), in MB
	took  time.Duration // wall time
}

// buildCLI builds ./cmd/pgbenchx once into b's temp folder.
func buildCLI(b *testing.B) *benchCLI {
	b.Helper()
	tmp := b.TempDir()
	c := &benchCLI{
		bin: filepath.Join(tmp, "pgbenchx"),
		tmp: tmp,
		env: append(os.Environ(), env.StateDirEnv+"="+filepath.Join(tmp, "state")),
	}
	build := exec.Command("go", "build", "-o", c.bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return c
}

// runChild runs cmd to its end, capturing its output, and reads its cost
// from the rusage wait4 returned. A child still running after timeout is
// killed (a hung run must not hang the benchmark).
func runChild(cmd *exec.Cmd, timeout time.Duration) (childRun, error) {
	var buf bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &buf
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &buf
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return childRun{}, err
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	r := childRun{out: buf.Bytes(), took: time.Since(t0)}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.rssMB = float64(ru.Maxrss) / 1024 // KiB on Linux
		}
	}
	if err != nil && r.took >= timeout {
		err = fmt.Errorf("%w (killed after %s)", err, timeout)
	}
	return r, err
}

// command is an exec.Cmd of the CLI with the isolated state dir.
func (c *benchCLI) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	return cmd
}

// run runs the CLI once; a run that takes over timeout is killed.
func (c *benchCLI) run(timeout time.Duration, args ...string) (childRun, error) {
	return runChild(c.command(args...), timeout)
}

// envUp brings up an env called name (extra: more `env up` flags) and
// takes it down when the benchmark ends.
func (c *benchCLI) envUp(b *testing.B, name string, standbys int, extra ...string) {
	b.Helper()
	args := append([]string{"env", "up", "--name", name, "--standbys", strconv.Itoa(standbys)}, extra...)
	r, err := c.run(5*time.Minute, args...)
	b.Cleanup(func() {
		if r, err := c.run(5*time.Minute, "env", "down", "--name", name); err != nil {
			b.Errorf("env down: %v\n%s", err, r.out)
		}
	})
	if err != nil {
		b.Fatalf("env up: %v\n%s", err, r.out)
	}
	b.Logf("env up %s (%d standbys) in %.1fs", name, standbys, r.took.Seconds())
}

// dsn is the full connection string of a node of env name.
func (c *benchCLI) dsn(b *testing.B, name, node string) string {
	b.Helper()
	cmd := c.command("env", "dsn", "--name", name, "--node", node)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("env dsn --node %s: %v\n%s", node, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// logRunHealth shows how a run went (reads, errors): a figure means little
// if the clients mostly failed.
func logRunHealth(b *testing.B, out []byte) {
	b.Helper()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "every read end to end") || strings.HasPrefix(strings.TrimSpace(line), "errors:") {
			b.Logf("  %s", strings.TrimSpace(line))
		}
	}
}

// BenchmarkRunRSS measures the load generator's peak RSS at 16 and 256
// clients against a real env (primary + 2 standbys), so that memory stays
// bounded as clients grow: histograms are per node and query kind, not per
// client. It fails when 256 clients reach rssBudgetMB. The metrics are
// MB-rss-16c, MB-rss-256c and the ratio between them.
func BenchmarkRunRSS(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a cluster and runs two 5 s loads; skipped with -short")
	}
	c := buildCLI(b)
	name := "rss" + strconv.Itoa(os.Getpid())
	// Each node gets a read pool of up to --clients connections, plus
	// probes (and on the primary the writer): 256 clients exceed
	// PostgreSQL's default max_connections of 100.
	c.envUp(b, name, 2, "--fast", "--pg-setting", "max_connections=700")

	rss := map[int]float64{}
	for _, clients := range []int{16, 256} {
		r, err := c.run(5*time.Minute, "run", "--name", name, "--standbys", "2", "--strategy", "round-robin",
			"--clients", strconv.Itoa(clients), "--duration", "5s", "--warmup", "1s",
			"--write-rows", "0", "--scale", "10000", "--out", filepath.Join(c.tmp, fmt.Sprintf("results-%d", clients)))
		if err != nil {
			b.Fatalf("run --clients %d: %v\n%s", clients, err, r.out)
		}
		if r.rssMB == 0 {
			b.Fatalf("run --clients %d: no ru_maxrss from the child (not Linux?)", clients)
		}
		rss[clients] = r.rssMB
		b.Logf("run --clients %d: %.1f MB peak RSS, %.1fs", clients, r.rssMB, r.took.Seconds())
		logRunHealth(b, r.out)
	}

	for b.Loop() {
		// Nothing per iteration: see the comment on benchCLI.
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

// soakGrowthLimit is how much RSS may grow between the start and the end
// of the soak before it counts as unbounded (a leak, or a structure that
// grows with time rather than with clients x nodes x query kinds).
const soakGrowthLimit = 1.5

// BenchmarkRunRSSSoak samples the load generator's RSS over a long run at
// 64 clients (env with 2 standbys, the default mix and background writes)
// and prints it at the start and at the end: memory must be flat over
// time, not just bounded in clients. It runs only when PGBENCHX_SOAK=1
// (10 minutes; PGBENCHX_SOAK_DURATION=3m for a shorter one), so that
// `make bench` stays short. VmRSS of the child is read from
// /proc/<pid>/status every 10 s (the env is seeded before, so the run is
// reading within a second or two); "start" is the sample a minute into the
// run, once the generator is warm, and the first 10 s sample is printed too.
func BenchmarkRunRSSSoak(b *testing.B) {
	if os.Getenv("PGBENCHX_SOAK") != "1" {
		b.Skip("the 10-minute RSS soak runs only with PGBENCHX_SOAK=1 (e.g. PGBENCHX_SOAK=1 make bench)")
	}
	dur := 10 * time.Minute
	if s := os.Getenv("PGBENCHX_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 30*time.Second {
			b.Fatalf("PGBENCHX_SOAK_DURATION=%q: want a duration of at least 30s", s)
		}
		dur = d
	}
	const every, soakSettle = 10 * time.Second, time.Minute
	c := buildCLI(b)
	name := "soak" + strconv.Itoa(os.Getpid())
	c.envUp(b, name, 2, "--pg-setting", "max_connections=600")
	// Seed first, so that the soak's own run starts reading at once (no
	// schema or write phase inside the sampled time but the table check).
	if r, err := c.run(5*time.Minute, "run", "--name", name, "--standbys", "2", "--strategy", "round-robin",
		"--write-rows", "10000", "--duration", "1s", "--warmup", "0s", "--clients", "2",
		"--out", filepath.Join(c.tmp, "seed")); err != nil {
		b.Fatalf("seed run: %v\n%s", err, r.out)
	}

	cmd := c.command("run", "--name", name, "--standbys", "2", "--strategy", "round-robin",
		"--clients", "64", "--duration", dur.String(), "--warmup", "0s", "--write-rows", "0",
		"--out", filepath.Join(c.tmp, "soak"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	type sample struct {
		at    time.Duration
		rssMB float64
	}
	var samples []sample
	if err := cmd.Start(); err != nil {
		b.Fatalf("soak run: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t0 := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	kill := time.NewTimer(dur + 5*time.Minute) // a hung run must not hang the benchmark
	defer kill.Stop()
	var err error
sampling:
	for {
		select {
		case err = <-waited:
			break sampling
		case <-tick.C:
			if mb, ok := vmRSSMB(cmd.Process.Pid); ok {
				samples = append(samples, sample{time.Since(t0).Round(time.Second), mb})
			}
		case <-kill.C:
			_ = cmd.Process.Kill()
		}
	}
	if err != nil {
		b.Fatalf("soak run: %v\n%s", err, out.Bytes())
	}
	maxRSS := 0.0
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = float64(ru.Maxrss) / 1024
	}
	logRunHealth(b, out.Bytes())
	if len(samples) < 2 {
		b.Fatalf("soak run: %d RSS samples, want at least 2", len(samples))
	}
	for b.Loop() {
	}
	// Start: the first sample a minute in, once the generator is warm
	// (pools open, histograms and buffers at their working size); the
	// first sample at all in a shorter run.
	start, end := samples[0], samples[len(samples)-1]
	for _, s := range samples[:len(samples)-1] {
		if s.at >= soakSettle {
			start = s
			break
		}
	}
	peak := 0.0
	var line []string
	for i, s := range samples {
		peak = max(peak, s.rssMB)
		if i%6 == 0 || i == len(samples)-1 { // one a minute
			line = append(line, fmt.Sprintf("%s %.0f", s.at, s.rssMB))
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(start.rssMB, "MB-rss-start")
	b.ReportMetric(end.rssMB, "MB-rss-end")
	b.ReportMetric(end.rssMB/start.rssMB, "x-rss-end/start")
	fmt.Printf("RSS soak (64 clients, %s): start %.1f MB (at %s), end %.1f MB (at %s), %.2fx; first sample %.1f MB (at %s), peak sampled %.1f MB, ru_maxrss %.1f MB\n",
		dur, start.rssMB, start.at, end.rssMB, end.at, end.rssMB/start.rssMB, samples[0].rssMB, samples[0].at, peak, maxRSS)
	fmt.Printf("RSS soak samples (MB): %s\n", strings.Join(line, ", "))
	if end.rssMB > soakGrowthLimit*start.rssMB {
		b.Errorf("RSS grew from %.1f MB to %.1f MB over %s at 64 clients, want within %.1fx", start.rssMB, end.rssMB, dur, soakGrowthLimit)
	}
}

// vmRSSMB reads a live process's resident set size from /proc.
func vmRSSMB(pid int) (float64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}
