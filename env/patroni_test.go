package env

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPatroniStack builds a primary and 2 standbys run by Patroni with
// etcd and HAProxy (real processes), routes reads and writes through
// HAProxy, kills the leader, waits for Patroni's election, follows the
// write port to the new leader, and stops it all. Serialize with the
// other cluster tests: flock -o /tmp/pgbenchx-cluster.lock go test ./env
// -run Patroni -count=1 -v
func TestPatroniStack(t *testing.T) {
	for _, b := range []string{"patroni", "etcd", "haproxy"} {
		if _, err := stackBinary(b); err != nil {
			t.Skipf("no Patroni stack here: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := &Local{Store: Store{Dir: t.TempDir()}}
	l.defaults()
	l.Step = func(step string, took time.Duration) { t.Logf("step %s: %s", step, took.Round(time.Millisecond)) }
	c := newPatroniTestCluster(ctx, t, l, 2)

	t0 := time.Now()
	if err := l.upPatroni(ctx, c); err != nil {
		t.Fatalf("upPatroni: %v", err)
	}
	t.Logf("env up --stack patroni, 2 standbys: %s until both stream (HAProxy routing included)", time.Since(t0).Round(time.Millisecond))
	l.Step = nil

	leader, err := patroniLeader(ctx, c)
	if err != nil || leader != "primary" {
		t.Fatalf("leader %q (%v), want primary", leader, err)
	}
	if n := queryInt64(ctx, t, &c.Primary, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ('standby1', 'standby2')`); n != 2 {
		t.Fatalf("%d standbys streaming on the leader, want 2", n)
	}
	for _, s := range c.Standbys {
		if s.Role != RoleStandby || s.Upstream != "primary" || s.PID == 0 || !postmasterAlive(s.PID, s.DataDir) {
			t.Errorf("%s: role %s, upstream %q, pid %d", s.Name, s.Role, s.Upstream, s.PID)
		}
	}
	px := patroniProxy(c)
	if px == nil || px.Port == 0 || px.WritePort == 0 || px.PID == 0 {
		t.Fatalf("no HAProxy for the stack in %+v", c.Proxies)
	}
	writer := *px
	writer.Port = px.WritePort

	// Reads land on the replicas, each new connection on the next one.
	seen := map[int]int{}
	for range 10 {
		port, inRec := serverOf(ctx, t, px.DSN(&c.Primary, c.Primary.Password))
		if !inRec {
			t.Errorf("a read through HAProxy's read port landed on port %d, not in recovery", port)
		}
		seen[port]++
	}
	for _, s := range c.Standbys {
		if seen[s.Port] == 0 {
			t.Errorf("no read through the read port reached %s (port %d): %v", s.Name, s.Port, seen)
		}
	}
	// A write lands on the leader.
	port := writeThrough(ctx, t, writer.DSN(&c.Primary, c.Primary.Password))
	if port != c.Primary.Port {
		t.Errorf("a write through the write port landed on port %d, want the leader's %d", port, c.Primary.Port)
	}

	// Failover: kill the leader, Patroni elects another.
	old, err := killLeader(ctx, c)
	if err != nil || old != "primary" {
		t.Fatalf("killLeader: %q, %v", old, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	t1 := time.Now()
	next, took, err := waitLeader(wctx, c, old)
	if err != nil {
		t.Fatalf("waitLeader: %v", err)
	}
	patroniKills.Lock()
	killedAt := patroniKills.at[c.Patroni.Scope+"/"+old]
	patroniKills.Unlock()
	t.Logf("failover: %s leads, election took %s (waitLeader returned %s after the kill, %s after it was called)",
		next, took.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	if next != "standby1" && next != "standby2" {
		t.Fatalf("new leader %q", next)
	}
	if took <= 0 || took > 60*time.Second {
		t.Errorf("election took %s", took)
	}
	stateMu.Lock()
	err = patroniRecordFailover(c, next)
	stateMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary.Name != next || len(c.Standbys) != 1 || len(c.Detached) != 1 || c.Standbys[0].Upstream != next {
		t.Fatalf("after the failover: primary %s, standbys %+v, detached %d", c.Primary.Name, c.Standbys, len(c.Detached))
	}
	t2 := time.Now()
	waitUntil(t, 30*time.Second, "the write port reaches "+next, func() bool {
		p, ok := tryWrite(ctx, writer.DSN(&c.Primary, c.Primary.Password))
		return ok && p == c.Primary.Port
	})
	t.Logf("the write port reached %s %s after waitLeader returned", next, time.Since(t2).Round(time.Millisecond))
	// By now Patroni's history has the promotion (the leader writes it an
	// HA loop after): it must say what waitLeader read from the file.
	waitUntil(t, 10*time.Second, "Patroni's history has "+next+"'s promotion", func() bool {
		var lines [][]any
		return getJSON(ctx, patroniURL(c, patroniMemberIndex(c, next, -1), "/history"), &lines) == nil && len(lines) > 0
	})
	if at, ok := patroniPromotedAt(ctx, c, next, killedAt); !ok || at.Sub(killedAt) < took-time.Millisecond || at.Sub(killedAt) > took+time.Millisecond {
		t.Errorf("Patroni's history: %s promoted at %s (%v), %s after the kill; waitLeader said %s", next, at, ok, at.Sub(killedAt), took)
	}
	other := c.Standbys[0]
	waitUntil(t, 60*time.Second, other.Name+" streams from "+next, func() bool {
		return tryInt64(ctx, &c.Primary, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = $1`, other.Name) == 1
	})
	t.Logf("%s streams from %s %s after waitLeader returned", other.Name, next, time.Since(t2).Round(time.Millisecond))
	waitUntil(t, 30*time.Second, "reads reach "+other.Name, func() bool {
		conn, err := pgx.Connect(ctx, px.DSN(&c.Primary, c.Primary.Password))
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		var p int
		return conn.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&p) == nil && p == other.Port
	})

	// Down: nothing of the stack is left running, and a second stop is a no-op.
	if err := stopPatroni(c); err != nil {
		t.Fatalf("stopPatroni: %v", err)
	}
	var left []string
	if !waitFor(30*time.Second, func() bool { left = patroniLeftovers(c); return len(left) == 0 }) {
		t.Fatalf("still running 30s after stopPatroni: %v", left)
	}
	if err := stopPatroni(c); err != nil {
		t.Errorf("second stopPatroni: %v", err)
	}
}

// TestPatroniUpInterrupted ends upPatroni's context while the primary
// bootstraps: it must return and leave no process of the stack running.
func TestPatroniUpInterrupted(t *testing.T) {
	for _, b := range []string{"patroni", "etcd", "haproxy"} {
		if _, err := stackBinary(b); err != nil {
			t.Skipf("no Patroni stack here: %v", err)
		}
	}
	l := &Local{Store: Store{Dir: t.TempDir()}}
	l.defaults()
	c := newPatroniTestCluster(context.Background(), t, l, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled once the primary's Patroni bootstraps (initdb under way),
	// as its log says: c itself is upPatroni's until it returns.
	logFile := patroniLogFile(c, "primary")
	go func() {
		for ctx.Err() == nil && !strings.Contains(logSince(logFile, 0), "bootstrap in progress") {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	t0 := time.Now()
	err := l.upPatroni(ctx, c)
	if err == nil {
		t.Fatal("upPatroni succeeded despite its context's end")
	}
	t.Logf("upPatroni returned after %s: %v", time.Since(t0).Round(time.Millisecond), err)
	var left []string
	if !waitFor(30*time.Second, func() bool { left = patroniLeftovers(c); return len(left) == 0 }) {
		t.Fatalf("still running 30s after an interrupted upPatroni: %v", left)
	}
}

// newPatroniTestCluster lays out a cluster as Up does before it builds
// nodes, and removes it when the test ends (logs printed if it failed).
func newPatroniTestCluster(ctx context.Context, t *testing.T, l *Local, standbys int) *Cluster {
	t.Helper()
	u, err := resolveOSUser("")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := FindPgBin(ctx, "")
	if err != nil {
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}
	version, err := cachedServerVersion(ctx, l.CacheDir, bin)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "patroni", Standbys: standbys, Fast: true, Stack: StackPatroni}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := l.newCluster(spec, u, bin, version)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpDir(t, filepath.Join(c.BaseDir, "log"))
		}
		if err := stopPatroni(c); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := l.teardown(context.Background(), c); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c
}

// patroniLeftovers lists the processes of c still running: any whose
// command line names a path under c.BaseDir (etcd, Patroni, HAProxy,
// postmasters) or that works in a node's data folder (backends).
func patroniLeftovers(c *Cluster) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, _, _, ok := procStat(pid); !ok || st == 'Z' {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		if strings.Contains(string(b), c.BaseDir+"/") || strings.HasPrefix(cwd, c.BaseDir+"/") {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func dumpDir(t *testing.T, dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s, last %d lines ---\n%s", e.Name(), len(lines), strings.Join(lines, "\n"))
	}
}

func queryInt64(ctx context.Context, t *testing.T, n *Node, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	defer conn.Close(ctx)
	var v int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	return v
}

func tryInt64(ctx context.Context, n *Node, sql string, args ...any) int64 {
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var v int64
	if conn.QueryRow(ctx, sql, args...).Scan(&v) != nil {
		return -1
	}
	return v
}

// serverOf connects (a new connection) and says which server answered.
func serverOf(ctx context.Context, t *testing.T, dsn string) (port int, inRecovery bool) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect through HAProxy: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT inet_server_port(), pg_is_in_recovery()`).Scan(&port, &inRecovery); err != nil {
		t.Fatal(err)
	}
	return port, inRecovery
}

func writeThrough(ctx context.Context, t *testing.T, dsn string) int {
	t.Helper()
	port, ok := tryWrite(ctx, dsn)
	if !ok {
		t.Fatalf("no write through the write port")
	}
	return port
}

// tryWrite writes a row through dsn and says which server took it.
func tryWrite(ctx context.Context, dsn string) (int, bool) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return 0, false
	}
	defer conn.Close(ctx)
	var port int
	_, err = conn.Exec(cctx, `CREATE TABLE IF NOT EXISTS pgbx_patroni_probe (at timestamptz)`)
	if err == nil {
		err = conn.QueryRow(cctx, `INSERT INTO pgbx_patroni_probe VALUES (now()) RETURNING inet_server_port()`).Scan(&port)
	}
	return port, err == nil
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
