package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"pgbenchx"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadInputExitsTwoWithOneLine(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	tests := []struct {
		args []string
		want string // what the one line must name
	}{
		{[]string{"env", "up", "--standbys", "-1"}, "--standbys -1"},
		{[]string{"env", "up", "--standbys", "1000"}, "--standbys 1000"},
		{[]string{"env", "up", "--standbys", "two"}, "standbys"},
		{[]string{"env", "up", "--standbys", "2", "--apply-delay", "standby9=1s"}, "--apply-delay standby9=1s"},
		{[]string{"env", "up", "--apply-delay", "standby1=later"}, "--apply-delay"},
		{[]string{"env", "up", "--topology", "ring"}, "--topology ring"},
		{[]string{"env", "up", "--pg-setting", "port=1"}, "--pg-setting"},
		{[]string{"env", "up", "--provider", "k8s"}, "--provider k8s"},
		{[]string{"env", "up", "--memory", "1GB"}, "--memory"},
		{[]string{"env", "up", "--provider", "docker", "--memory", "standby1=12"}, "--memory standby1=12"},
		{[]string{"run", "--memory", "1GB"}, "--memory"},
		{[]string{"env", "up", "--name", "Has Space"}, "--name"},
		{[]string{"env", "up", "--no-such-flag"}, "no-such-flag"},
		{[]string{"env", "status", "--format", "xml"}, "--format xml"},
		{[]string{"env", "down", "--name", "../x"}, "--name"},
		{[]string{"run", "--strategy", "fastest"}, "--strategy fastest"},
		{[]string{"run", "--strategy", "random", "--strategies", "all"}, "--strategy"},
		{[]string{"run", "--mix", "point=80,scan=20"}, "--mix"},
		{[]string{"run", "--max-lag", "soon"}, "--max-lag"},
		{[]string{"run", "--lag-fallback", "standby9"}, "--lag-fallback"},
		{[]string{"run", "--clients", "0"}, "--clients 0"},
		{[]string{"run", "--duration", "10ms"}, "--duration"},
		{[]string{"run", "--format", "pdf"}, "--format"},
		{[]string{"run", "--weights", "standby1=-1"}, "--weights"},
		{[]string{"run", "--query-file", "/nonexistent/q.sql"}, "--query-file"},
		{[]string{"run", "--standby", "postgres://x@127.0.0.1/db"}, "--standby"},
		{[]string{"run", "--duration", "30s", "--fault", "40s:kill:standby2"}, "--fault 40s:kill:standby2"},
		{[]string{"run", "--fault", "5s:explode:standby2"}, "--fault"},
		{[]string{"run", "--fault", "5s:kill:standby7"}, "--fault 5s:kill:standby7"},
		{[]string{"run", "--fault", "5s:failover:primary"}, "--fault"},
		{[]string{"run", "--primary", "postgres://x@127.0.0.1/db", "--fault", "1s:kill:standby1"}, "--fault"},
		{[]string{"run", "--commit", "maybe"}, "--commit maybe"},
		{[]string{"run", "--start-at", "2001-01-01T00:00:00Z"}, "--start-at 2001-01-01T00:00:00Z"},
		{[]string{"run", "--start-at", "soon"}, "--start-at soon"},
		{[]string{"run", "--start-at", "+48h"}, "--start-at +48h"},
		{[]string{"run", "--duration", "5s", "--fault", "1s:partition:standby2"}, "--fault 1s:partition:standby2"},
		{[]string{"run", "--slot-warn", "lots"}, "--slot-warn lots"},
		{[]string{"run", "--socket", "--primary", "postgres://u@h/db"}, "--socket"},
		{[]string{"matrix", "--commit", "on,sometimes"}, "--commit sometimes"},
		{[]string{"matrix", "--sync", "off,ANY 1 (standby7)"}, "--sync"},
		{[]string{"env", "up", "--sync", "ANY 1 (standby3)"}, "--sync"},
		{[]string{"env", "up", "--sync", "SOME (standby1)"}, "--sync"},
		{[]string{"env", "up", "--net-delay", "standby9=30ms"}, "--net-delay standby9"},
		{[]string{"env", "up", "--net-delay", "standby2=soon"}, "--net-delay standby2=soon"},
		{[]string{"env", "up", "--net-bandwidth", "standby2=fast"}, "--net-bandwidth standby2=fast"},
		{[]string{"run", "--net-delay", "standby2=1h"}, "--net-delay standby2=1h"},
		{[]string{"env", "kill"}, "--node"},
		{[]string{"env", "failover"}, "--to"},
		{[]string{"report", "/nonexistent/run"}, "/nonexistent/run"},
		{[]string{"report"}, "RUN_FOLDER"},
		{[]string{"run", "-T", "soon"}, "--duration soon"},
		{[]string{"run", "-M", "binary"}, "--protocol binary"},
		{[]string{"run", "-P", "0.2"}, "--progress 0.2"},
		{[]string{"run", "-c", "0"}, "--clients 0"},
		{[]string{"run", "--metrics-addr", "nonsense"}, "--metrics-addr nonsense"},
		{[]string{"rnu"}, `did you mean "run"`},
		{[]string{"run", "--clinets", "4"}, "did you mean --clients"},
		{[]string{"capacity", "--slo", "p99<<5"}, "--slo"},
		{[]string{"capacity", "--precision", "2"}, "--precision 2"},
		{[]string{"capacity", "--step-duration", "100ms"}, "--step-duration"},
		{[]string{"capacity", "--standbys", "0,1"}, "--standbys 0"},
		{[]string{"capacity", "--primary", "postgres://x@127.0.0.1/db"}, "--primary"},
		{[]string{"capacity", "--strategy", "via:pgpool"}, "--strategies via:pgpool"},
		{[]string{"matrix", "--strategies", "round-robin,via:pgpool"}, "--strategies via:pgpool"},
		{[]string{"run", "--via", "pgcat"}, "--via pgcat"},
		{[]string{"run", "--metrics-addr", ":9187"}, "--metrics-addr :9187"},
		{[]string{"run", "--strategies", "via:nowhere"}, "--strategies via:nowhere"},
		{[]string{"env", "up", "--read-primary"}, "--read-primary"},
		{[]string{"env", "up", "--standbys", "0", "--proxy", "haproxy"}, "--proxy haproxy"},
		{[]string{"capacity", "--max-steps", "0"}, "--max-steps 0"},
		{[]string{"run", "-c", "2,4", "--fault", "1s:failover:standby1"}, "--fault"},
		{[]string{"run", "--via", "Bad Name=postgres://u:secret@h/db"}, "--via"},
		{[]string{"env", "up", "--proxy", "pgbouncer"}, "--proxy pgbouncer"},
		{[]string{"env", "up", "--stack", "k8s"}, "--stack k8s"},
		{[]string{"env", "up", "--stack", "patroni", "--proxy", "pgpool"}, "--stack patroni"},
		{[]string{"env", "up", "--provider", "docker", "--proxy", "haproxy"}, "--proxy haproxy"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != exitBadInput {
				t.Errorf("exit %d, want %d (stderr %q)", code, exitBadInput, stderr)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q: want one line naming %q", stderr, tt.want)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace in %q", stderr)
			}
		})
	}
}

// TestHabits covers what pgbench and shell users expect of a CLI.
func TestHabits(t *testing.T) {
	code, out, _ := runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "pgbenchx ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if code, out, _ := runCLI(t, "completion", shell); code != 0 || !strings.Contains(out, "pgbenchx") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(out))
		}
	}
	if _, _, stderr := runCLI(t, "xyzzy"); strings.Contains(stderr, "did you mean") {
		t.Errorf("a word like no command got a suggestion: %q", stderr)
	}
	for typed, want := range map[string]string{"clinets": "clients", "stratgy": "strategy", "c": "", "zzzzzz": ""} {
		if got := closest(typed, []string{"clients", "strategy", "strategies", "duration"}); got != want {
			t.Errorf("closest(%q) = %q, want %q", typed, got, want)
		}
	}
	for s, want := range map[string]time.Duration{"30": 30 * time.Second, "0.5": 500 * time.Millisecond, "2m": 2 * time.Minute} {
		if got, err := parseSeconds("duration", s); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v", s, got, err)
		}
	}
}

func TestBadQueryFileAndRate(t *testing.T) {
	f := filepath.Join(t.TempDir(), "q.txt")
	if err := os.WriteFile(f, []byte("a 1 SELECT 1\na 2 SELECT 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "--query-file", f}, {"run", "--rate", "0.5"}} {
		if code, _, stderr := runCLI(t, args...); code != exitBadInput || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}

func TestMissingEnvIsAFailureNotBadInput(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	for _, cmd := range [][]string{{"env", "status"}, {"env", "verify"}, {"env", "dsn"}, {"env", "down"}} {
		code, _, stderr := runCLI(t, append(cmd, "--name", "nothere")...)
		if code != exitFailure || !strings.Contains(stderr, `env "nothere"`) {
			t.Errorf("%v: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

func TestHelpTeachesEveryFlag(t *testing.T) {
	for _, cmd := range [][]string{{"env", "up"}, {"env", "status"}, {"env", "verify"}, {"env", "dsn"}, {"env", "down"},
		{"run"}, {"matrix"}, {"capacity"}, {"compare"}, {"merge"}, {"report"}} {
		code, out, _ := runCLI(t, append(cmd, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d", cmd, code)
		}
		if !strings.Contains(out, "Example") {
			t.Errorf("%v --help has no example:\n%s", cmd, out)
		}
	}
	_, out, _ := runCLI(t, "env", "up", "--help")
	for _, flag := range []string{"--standbys", "--topology", "--apply-delay", "--pg-setting", "--fast", "--pg-bin", "--os-user", "--name"} {
		if !strings.Contains(out, flag) {
			t.Errorf("env up --help does not explain %s", flag)
		}
	}
}

// TestEnvLifecycle drives the real commands against a real cluster.
func TestEnvLifecycle(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	const name = "clitest"
	code, out, stderr := runCLI(t, "env", "up", "--standbys", "1", "--fast", "--name", name)
	t.Cleanup(func() { runCLI(t, "env", "down", "--name", name) })
	if code != 0 {
		t.Fatalf("env up: exit %d: %s%s", code, out, stderr)
	}
	c, err := env.Store{Dir: env.DefaultStateDir()}.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, c.Primary.Password) || !strings.Contains(out, "xxxxx") {
		t.Errorf("env up printed a password or no redacted DSN:\n%s", out)
	}
	for _, step := range []string{"primary start", "standby1 data folder", "standby1 streaming"} {
		if !strings.Contains(out, step) {
			t.Errorf("env up does not time step %q:\n%s", step, out)
		}
	}
	if code, out, _ := runCLI(t, "env", "dsn", "--name", name, "--node", "standby1"); code != 0 || strings.TrimSpace(out) != c.Standbys[0].DSN() {
		t.Errorf("env dsn: exit %d, %q", code, out)
	}
	if code, _, stderr := runCLI(t, "env", "dsn", "--name", name, "--node", "standby9"); code != exitBadInput || !strings.Contains(stderr, "--node standby9") {
		t.Errorf("env dsn --node standby9: exit %d, %q", code, stderr)
	}
	code, out, _ = runCLI(t, "env", "verify", "--name", name)
	if code != 0 || strings.Count(out, "PASS") != 6 {
		t.Errorf("env verify: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI(t, "env", "status", "--name", name, "--format", "json")
	if code != 0 || !strings.Contains(out, `"state": "streaming"`) || strings.Contains(out, c.Primary.Password) {
		t.Errorf("env status --format json: exit %d:\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "env", "down", "--name", name); code != 0 || !strings.Contains(out, "is down") {
		t.Errorf("env down: exit %d: %s", code, out)
	}
}
