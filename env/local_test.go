package env_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

func connect(t *testing.T, n *env.Node) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		t.Fatalf("%s: connect: %v", n.Name, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireVerify(t *testing.T, c *env.Cluster) {
	t.Helper()
	for _, ch := range env.Verify(context.Background(), c) {
		if !ch.Pass {
			t.Errorf("verify %s failed: %s", ch.Name, ch.Detail)
		}
	}
}

func TestUpOneStandby(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "one", Standbys: 1, Fast: true})
	if len(c.Standbys) != 1 || c.Standbys[0].Name != "standby1" {
		t.Fatalf("standbys: %+v", c.Standbys)
	}
	requireVerify(t, c)
}

func TestUpTwoStandbys(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "two", Standbys: 2, Fast: true})
	requireVerify(t, c)
	ctx := context.Background()
	primary := connect(t, &c.Primary)

	t.Run("distinct application names and active slots", func(t *testing.T) {
		if n := queryInt(t, primary, `SELECT count(DISTINCT application_name) FROM pg_stat_replication WHERE state = 'streaming'`); n != 2 {
			t.Errorf("%d distinct streaming standbys, want 2", n)
		}
		if n := queryInt(t, primary, `SELECT count(*) FROM pg_replication_slots WHERE active AND slot_name IN ('standby1_slot', 'standby2_slot')`); n != 2 {
			t.Errorf("%d active slots, want 2", n)
		}
	})

	t.Run("rows written on the primary appear on every standby", func(t *testing.T) {
		if _, err := primary.Exec(ctx, `CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10000)`); err != nil {
			t.Fatal(err)
		}
		for i := range c.Standbys {
			s := connect(t, &c.Standbys[i])
			eventually(t, 30*time.Second, c.Standbys[i].Name+" has 10000 rows", func() bool {
				var n int64
				err := s.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n)
				return err == nil && n == 10000
			})
		}
	})

	t.Run("standbys reject writes", func(t *testing.T) {
		for i := range c.Standbys {
			s := connect(t, &c.Standbys[i])
			_, err := s.Exec(ctx, `CREATE TABLE nope (i int)`)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
				t.Errorf("%s: want SQLSTATE 25006, got %v", c.Standbys[i].Name, err)
			}
		}
	})

	t.Run("TCP needs the password, and listens on loopback only", func(t *testing.T) {
		n := c.Primary
		n.Password = "wrong"
		if conn, err := pgx.Connect(ctx, n.DSN()); err == nil {
			conn.Close(ctx)
			t.Error("connected with a wrong password")
		}
		n.Password = ""
		cfg, _ := pgx.ParseConfig(n.DSN())
		cfg.Password = ""
		os.Setenv("PGPASSFILE", os.DevNull)
		if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			conn.Close(ctx)
			t.Error("connected without a password")
		}
		var la string
		if err := primary.QueryRow(ctx, `SHOW listen_addresses`).Scan(&la); err != nil || la != "127.0.0.1" {
			t.Errorf("listen_addresses %q, %v", la, err)
		}
	})
}

func TestCascade(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "casc", Standbys: 3, Topology: env.Cascade, Fast: true})
	requireVerify(t, c)
	primary, s1 := connect(t, &c.Primary), connect(t, &c.Standbys[0])
	if n := queryInt(t, primary, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'`); n != 1 {
		t.Errorf("primary feeds %d standbys, want 1 (standby1)", n)
	}
	if n := queryInt(t, s1, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ('standby2', 'standby3')`); n != 2 {
		t.Errorf("standby1 feeds %d standbys, want 2", n)
	}
	ctx := context.Background()
	if _, err := primary.Exec(ctx, `CREATE TABLE c AS SELECT generate_series(1, 500) AS id`); err != nil {
		t.Fatal(err)
	}
	s3 := connect(t, &c.Standbys[2])
	eventually(t, 30*time.Second, "standby3 sees the rows through standby1", func() bool {
		var n int64
		return s3.QueryRow(ctx, `SELECT count(*) FROM c`).Scan(&n) == nil && n == 500
	})
}

func TestApplyDelay(t *testing.T) {
	const delay = 3 * time.Second
	c, _ := envtest.Up(t, env.Spec{Name: "delay", Standbys: 2, Fast: true,
		ApplyDelay: map[string]time.Duration{"standby2": delay}})
	ctx := context.Background()
	primary, s1, s2 := connect(t, &c.Primary), connect(t, &c.Standbys[0]), connect(t, &c.Standbys[1])
	var delaySetting string
	if err := s2.QueryRow(ctx, `SHOW recovery_min_apply_delay`).Scan(&delaySetting); err != nil || delaySetting != "3s" {
		t.Fatalf("standby2 recovery_min_apply_delay %q, %v", delaySetting, err)
	}
	if _, err := primary.Exec(ctx, `CREATE TABLE w (id int)`); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if _, err := primary.Exec(ctx, `INSERT INTO w SELECT generate_series(1, 1000)`); err != nil {
		t.Fatal(err)
	}
	// After the commit, in its own statement: an LSN read inside the
	// INSERT would come before the commit record.
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	replayed := func(conn *pgx.Conn) bool {
		var ok bool
		return conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&ok) == nil && ok
	}
	eventually(t, 30*time.Second, "standby1 replays the writes", func() bool { return replayed(s1) })
	// The moment standby1 has the commit, the delayed standby must not.
	if replayed(s2) {
		t.Fatalf("standby2 replayed %s as soon as standby1 did, despite a %s apply delay", lsn, delay)
	}
	st := env.Status(ctx, c)
	if st[2].LagBytes == nil || *st[2].LagBytes <= 0 {
		t.Errorf("status shows standby2 lag %v, want > 0 bytes", st[2].LagBytes)
	}
	eventually(t, delay+30*time.Second, "standby2 catches up after its delay", func() bool { return replayed(s2) })
}

func TestDownLeavesNothing(t *testing.T) {
	p := envtest.Provider(t)
	c, err := p.Up(context.Background(), env.Spec{Name: "gone", Standbys: 2, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Down(context.Background(), "gone"); err != nil {
		envtest.DumpLogs(t, c)
		t.Fatal(err)
	}
	requireGone(t, p, c)
}

// requireGone asserts no process, port, folder or state file of c remains.
func requireGone(t *testing.T, p *env.Local, c *env.Cluster) {
	t.Helper()
	for name, alive := range env.Alive(c) {
		if alive {
			t.Errorf("%s still running", name)
		}
	}
	for _, n := range c.Nodes() {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s: port %d still listens", n.Name, n.Port)
		}
	}
	for _, dir := range []string{c.BaseDir, c.SocketDir} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (%v)", dir, err)
		}
	}
	if _, err := p.Store.Load(c.Name); !errors.Is(err, env.ErrNotFound) {
		t.Errorf("state file remains: %v", err)
	}
}

func TestTwoEnvsSideBySide(t *testing.T) {
	p := envtest.Provider(t)
	a := envtest.UpWith(t, p, env.Spec{Name: "left", Standbys: 1, Fast: true})
	b := envtest.UpWith(t, p, env.Spec{Name: "right", Standbys: 1, Fast: true})
	ports := map[int]bool{}
	for _, n := range append(a.Nodes(), b.Nodes()...) {
		if ports[n.Port] {
			t.Errorf("port %d used twice", n.Port)
		}
		ports[n.Port] = true
	}
	if a.BaseDir == b.BaseDir || a.Primary.Password == b.Primary.Password {
		t.Error("two envs share a folder or a password")
	}
	requireVerify(t, a)
	requireVerify(t, b)
	if _, err := p.Up(context.Background(), env.Spec{Name: "left", Standbys: 1, Fast: true}); !errors.As(err, new(*env.ExistsError)) {
		t.Errorf("second up of a live env: want ExistsError, got %v", err)
	}
	if err := p.Down(context.Background(), "left"); err != nil {
		t.Fatal(err)
	}
	requireVerify(t, b)
}

func TestStaleEnvIsCleanedUp(t *testing.T) {
	p := envtest.Provider(t)
	old, err := p.Up(context.Background(), env.Spec{Name: "stale", Standbys: 1, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	// Pretend its builder died half way: state says building, owner gone.
	dead := exitedPID(t)
	old.Status, old.OwnerPID = "building", dead
	if err := p.Store.Save(old); err != nil {
		t.Fatal(err)
	}
	fresh := envtest.UpWith(t, p, env.Spec{Name: "stale", Standbys: 1, Fast: true})
	for name, alive := range env.Alive(old) {
		if alive {
			t.Errorf("old %s still running after a new up", name)
		}
	}
	if fresh.BaseDir == old.BaseDir {
		t.Error("new env reuses the stale folder")
	}
	requireVerify(t, fresh)
}

func TestInterruptedUpCleansUp(t *testing.T) {
	p := envtest.Provider(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []string
	p.Step = func(step string, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, step)
		if step == "standby1 data folder" {
			cancel() // Ctrl-C while a standby is being built
		}
	}
	_, err := p.Up(ctx, env.Spec{Name: "intr", Standbys: 2, Fast: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v (steps %v)", err, seen)
	}
	if _, err := p.Store.Load("intr"); !errors.Is(err, env.ErrNotFound) {
		t.Errorf("state file left after an interrupted up: %v", err)
	}
	out, _ := os.ReadDir(env.DataRoot(true))
	for _, e := range out {
		if strings.HasPrefix(e.Name(), "pgbx-intr-") {
			t.Errorf("folder %s left after an interrupted up", e.Name())
		}
	}
}

// exitedPID returns the pid of a process that has exited.
func exitedPID(t *testing.T) int {
	t.Helper()
	pr, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Wait(); err != nil {
		t.Fatal(err)
	}
	return pr.Pid
}

func TestCPUCapThrottles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("CPU caps need root (cgroups)")
	}
	c, p := envtest.Up(t, env.Spec{Name: "capped", Standbys: 1, Fast: true, CPUs: map[string]float64{"standby1": 0.2}})
	if caps := env.CPUCaps(c); caps["standby1"] != 0.2 || caps["primary"] != 0 {
		t.Fatalf("caps %v", caps)
	}
	s1 := connect(t, &c.Standbys[0])
	// Busy for longer than the quota allows in a period: the kernel must
	// throttle it, whatever else the machine is doing.
	if _, err := s1.Exec(context.Background(), `SELECT count(*) FROM generate_series(1, 3000000)`); err != nil {
		t.Fatal(err)
	}
	if th := env.Throttled(c); th["standby1"] <= 0 {
		t.Errorf("standby1 capped at 0.2 cores ran a busy query unthrottled: %v", th)
	}
	if _, capped := env.Throttled(c)["primary"]; capped {
		t.Error("the uncapped primary has a cgroup")
	}
	cg := c.Standbys[0].Cgroup
	if err := p.Down(context.Background(), c.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup %s left after down (%v)", cg, err)
	}
}
