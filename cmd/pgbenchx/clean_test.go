package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/workload"
)

// runClean runs the CLI like runCLI; until main.go lists cleanCommand it
// adds it to a root of its own and maps errors to exit codes as run does.
func runClean(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := rootCommand(&out, &errb)
	if root.Command("clean") != nil {
		return runCLI(t, args...)
	}
	root.Commands = append(root.Commands, cleanCommand())
	setUsageErrors(root)
	err := root.Run(context.Background(), append([]string{"pgbenchx"}, args...))
	code = 0
	if err != nil {
		code = exitFailure
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != exitFailure {
			code = ec.ExitCode()
		} else if isBadInput(err) {
			code = exitBadInput
		}
		fmt.Fprintf(&errb, "pgbenchx: %s\n", err)
	}
	return code, out.String(), errb.String()
}

func oneLineOf(t *testing.T, stderr string) {
	t.Helper()
	if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
		t.Errorf("stderr is %d lines, want 1: %q", lines, stderr)
	}
}

// TestSchemaMarkerAgrees: env cannot import workload, so the schema's
// name, mark and lock are written in both; they must be the same.
func TestSchemaMarkerAgrees(t *testing.T) {
	if env.Schema != workload.Schema || env.SchemaMarker != workload.SchemaMarker || env.SchemaLockKey != workload.SchemaLockKey {
		t.Errorf("env and workload disagree on schema %q/%q, marker %q/%q, lock %d/%d",
			env.Schema, workload.Schema, env.SchemaMarker, workload.SchemaMarker, env.SchemaLockKey, workload.SchemaLockKey)
	}
	for _, table := range []string{env.ProbeTable, workload.OrdersTable, workload.HeartbeatTable} {
		if !strings.HasPrefix(table, workload.Schema+".") {
			t.Errorf("%s is not in schema %s", table, workload.Schema)
		}
	}
}

// TestRecoveryConflictLabelAgrees: report names the label the workload
// counts hot standby conflicts under without importing workload.
func TestRecoveryConflictLabelAgrees(t *testing.T) {
	if report.RecoveryConflictLabel != workload.LabelRecoveryConflict {
		t.Errorf("report %q, workload %q", report.RecoveryConflictLabel, workload.LabelRecoveryConflict)
	}
}

func TestCleanHelp(t *testing.T) {
	code, out, _ := runClean(t, "clean", "--help")
	if code != 0 {
		t.Fatalf("clean --help: exit %d", code)
	}
	for _, want := range []string{"Example", "--primary", "--name", "Exit codes", "0 dropped", "1 failed", "2 bad input", "schema pgbenchx"} {
		if !strings.Contains(out, want) {
			t.Errorf("clean --help does not say %q:\n%s", want, out)
		}
	}
}

func TestCleanBadInput(t *testing.T) {
	t.Setenv(env.StateDirEnv, t.TempDir())
	for _, args := range [][]string{
		{"clean", "--primary", "postgres://u:s3cret@host:notaport/db"},
		{"clean", "extra-arg"},
		{"clean", "--name", "Bad Name"},
	} {
		code, _, stderr := runClean(t, args...)
		if code != exitBadInput || strings.Contains(stderr, "s3cret") {
			t.Errorf("%q: exit %d, %q; want 2 without the password", args, code, stderr)
		}
		oneLineOf(t, stderr)
	}
	if code, _, stderr := runClean(t, "clean", "--name", "nothere"); code != exitFailure || !strings.Contains(stderr, `env "nothere"`) {
		t.Errorf("clean --name nothere: exit %d, %q", code, stderr)
	}
}

// TestCleanUnreachablePrimary: a closed port and a server that never
// answers both fail in one line naming the primary, without its password,
// within the connect timeout (the deadline here only guards against a hang).
func TestCleanUnreachablePrimary(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() { // accept and never answer, like a frozen server
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	silentPort := silent.Addr().(*net.TCPAddr).Port

	for name, port := range map[string]int{"closed port": closedPort, "silent server": silentPort} {
		t.Run(name, func(t *testing.T) {
			dsn := fmt.Sprintf("postgres://bench:s3cretPW@127.0.0.1:%d/app?sslmode=disable", port)
			type result struct {
				code           int
				stdout, stderr string
			}
			done := make(chan result, 1)
			go func() {
				code, out, errOut := runClean(t, "clean", "--primary", dsn)
				done <- result{code, out, errOut}
			}()
			select {
			case r := <-done:
				t.Logf("stderr: %s", r.stderr)
				if r.code != exitFailure {
					t.Errorf("exit %d, want 1: %q", r.code, r.stderr)
				}
				oneLineOf(t, r.stderr)
				if !strings.Contains(r.stderr, "primary") || !strings.Contains(r.stderr, fmt.Sprint(port)) || strings.Contains(r.stderr+r.stdout, "s3cretPW") {
					t.Errorf("stderr %q: want the primary and its port named, no password", r.stderr)
				}
			case <-time.After(4 * cleanConnectTimeout):
				t.Fatalf("clean --primary (%s) still running after %s", name, 4*cleanConnectTimeout)
			}
		})
	}
}

// TestCleanEnv drives clean against a real env by name and by DSN.
func TestCleanEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(env.StateDirEnv, dir)
	p := envtest.Provider(t)
	p.Store = env.Store{Dir: dir}
	const name = "cleantest"
	c := envtest.UpWith(t, p, env.Spec{Name: name, Standbys: 1, Fast: true})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	schemaThere := func() bool {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT to_regnamespace('pgbenchx') IS NOT NULL`).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	code, out, stderr := runClean(t, "clean", "--name", name)
	if code != 0 || !strings.Contains(out, "nothing to drop") || !strings.Contains(out, name) {
		t.Errorf("clean with nothing there: exit %d, %q %q", code, out, stderr)
	}

	// A user's orders in public, and ours next to it.
	exec(`CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, amount numeric(10,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	exec(`CREATE INDEX orders_created ON public.orders (created_at)`)
	exec(`INSERT INTO public.orders (customer_id, amount, status) SELECT g, g, 'mine' FROM generate_series(1, 300) g`)
	if _, err := workload.PrepareSchema(ctx, conn); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO pgbenchx.orders (customer_id, amount, status) VALUES (1, 1, 'new')`)

	code, out, stderr = runClean(t, "clean", "--name", name)
	t.Logf("clean --name: %s", out)
	if code != 0 || !strings.Contains(out, "dropped schema pgbenchx") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("clean --name: exit %d, %q %q", code, out, stderr)
	}
	if strings.Contains(out+stderr, c.Primary.Password) {
		t.Error("clean printed the password")
	}
	if schemaThere() {
		t.Error("schema pgbenchx still there after clean")
	}
	var rows, idx int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM public.orders), (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders')`).Scan(&rows, &idx); err != nil || rows != 300 || idx != 2 {
		t.Errorf("public.orders after clean: %d rows, %d indexes (%v); want 300, 2", rows, idx, err)
	}

	// A pgbenchx schema someone else made: refused, kept.
	exec(`CREATE SCHEMA pgbenchx`)
	code, _, stderr = runClean(t, "clean", "--primary", c.Primary.DSN())
	t.Logf("clean --primary, foreign schema: %s", stderr)
	if code != exitBadInput || !strings.Contains(stderr, "did not create") || strings.Contains(stderr, c.Primary.Password) {
		t.Errorf("clean of a foreign schema: exit %d, %q", code, stderr)
	}
	oneLineOf(t, stderr)
	if !schemaThere() {
		t.Error("clean dropped a schema pgbenchx did not create")
	}

	// A standby's DSN: refused, it says why.
	code, _, stderr = runClean(t, "clean", "--primary", c.Standbys[0].DSN())
	t.Logf("clean --primary standby: %s", stderr)
	if code != exitBadInput || !strings.Contains(stderr, "standby") {
		t.Errorf("clean --primary standby: exit %d, %q", code, stderr)
	}
}
