package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// TestPgbenchHabitsAndMetrics runs what a pgbench user types (-c -T -R -f
// with a pgbench script) with --metrics-addr, scrapes the endpoint while
// the run lasts, and checks what run.json and timeseries.csv record.
func TestPgbenchHabitsAndMetrics(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	dir := t.TempDir()
	sql := filepath.Join(dir, "lookup.sql")
	if err := os.WriteFile(sql, []byte("\\set cid random(1, 50)\nSELECT count(*) FROM pgbenchx.orders WHERE customer_id = :cid;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	type outcome struct {
		code        int
		out, stderr string
	}
	done := make(chan outcome, 1)
	go func() {
		code, out, stderr := runCLI(t, "run", "--standbys", "1", "--fast", "--scale", "2000", "--write-rows", "0",
			"-c", "2", "-T", "3", "-R", "300", "--warmup", "0s", "-f", sql+"@2", "--metrics-addr", addr, "--out", filepath.Join(dir, "r"))
		done <- outcome{code, out, stderr}
	}()
	// Scrape until a read shows on standby1 or the run ends.
	var seen string
	var res outcome
	deadline := time.Now().Add(2 * time.Minute)
scrape:
	for time.Now().Before(deadline) {
		select {
		case res = <-done:
			break scrape
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, `pgbenchx_reads_total{node="standby1"`) {
				if f := strings.Fields(line); len(f) == 2 {
					if n, _ := strconv.ParseFloat(f[1], 64); n > 0 {
						seen = line
					}
				}
			}
		}
		resp.Body.Close()
		if seen != "" {
			res = <-done
			break
		}
	}
	if res.code != 0 {
		t.Fatalf("run: exit %d: %s%s", res.code, res.out, res.stderr)
	}
	if seen == "" {
		t.Fatal("the metrics endpoint never showed a read on standby1 while the run lasted")
	}
	if !strings.Contains(res.stderr, "== read phase") || strings.Contains(res.out, "== read phase") {
		t.Errorf("progress belongs on stderr, results on stdout:\nstdout %s\nstderr %s", res.out, res.stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "r", "*", "run.json"))
	if len(runs) != 1 {
		t.Fatalf("run folders: %v", runs)
	}
	r, err := metrics.Load(runs[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Version == "" || len(r.Command) == 0 || r.Command[1] != "run" || len(r.Phases) < 2 {
		t.Errorf("run.json: version %q, command %v, phases %v", r.Version, r.Command, r.Phases)
	}
	if c := r.Config; c.Clients != 2 || c.Rate != 300 || time.Duration(c.Duration) != 3*time.Second ||
		len(c.Scripts) != 1 || c.Scripts[0].Name != "lookup" || c.Scripts[0].Weight != 2 || c.Scripts[0].SHA256 == "" {
		b, _ := json.Marshal(c)
		t.Errorf("-c 2 -T 3 -R 300 -f lookup.sql@2 recorded as %s", b)
	}
	var settings map[string]string
	for _, n := range r.Environment.Nodes {
		if n.Name == "standby1" {
			settings = n.Settings
		}
	}
	if settings["max_connections"] == "" || settings["hot_standby_feedback"] == "" {
		t.Errorf("standby1's settings not recorded: %v", settings)
	}
	sr := r.Strategies[0]
	if sr.Nodes[1].Kinds["lookup"].TotalCount() == 0 {
		t.Errorf("no lookup reads on standby1: %+v", sr.Nodes[1].Kinds)
	}
	ts, err := os.ReadFile(filepath.Join(filepath.Dir(runs[0]), "timeseries.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ts)), "\n")
	if !strings.HasSuffix(lines[0], ",time") || len(lines) < 2 || !strings.Contains(lines[1], "T") {
		t.Errorf("timeseries.csv has no wall-clock time:\n%s", ts)
	}
}
