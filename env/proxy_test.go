package env

// Proxies in front of real envs (no mocks). This file is in package env,
// not env_test, to reach startProxy and its kin: so it cannot import
// envtest (which imports env), and proxyEnv does what envtest.Up does.
// Run with the other cluster tests serialized:
//
//	flock -o /tmp/pgbenchx-cluster.lock go test ./env -run Proxy -count=1

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// proxyEnv builds a primary and two standbys (fast) with their state in
// the test's folder, removed when the test ends (their logs and the
// proxies' printed if it failed).
func proxyEnv(t *testing.T, name string) (*Cluster, Controller) {
	t.Helper()
	l := NewLocal()
	l.Store = Store{Dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := l.Up(ctx, Spec{Name: name, Standbys: 2, Fast: true})
	if err != nil {
		t.Fatalf("env up %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(c.BaseDir, "log", "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("--- %s, last lines ---\n%s", f, lastLines(string(b), 30))
			}
		}
		if err := l.Down(context.Background(), c.Name); err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("env down %s: %v", c.Name, err)
		}
	})
	ctl, err := l.Control(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, ctl
}

func skipWithoutProxy(t *testing.T, kind string) {
	t.Helper()
	if impl, err := proxyImplOf(kind); err != nil {
		t.Fatal(err)
	} else if _, err := proxyBinary(kind, impl); err != nil {
		t.Skipf("%v", err)
	}
}

// startTestProxy starts p in front of c and stops it when the test ends
// (before the env goes: cleanups run last first).
func startTestProxy(t *testing.T, c *Cluster, p *Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := startProxy(ctx, c, p); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s serving on port %d (write port %d) after %s, pid %d", p.Kind, p.Port, p.WritePort, time.Since(t0).Round(time.Millisecond), p.PID)
	t.Cleanup(func() {
		if err := stopProxy(p); err != nil {
			t.Errorf("stop %s: %v", p.Kind, err)
		}
	})
	if !proxyRuns(p) {
		t.Fatalf("%s: proxyRuns false right after its start (pid %d)", p.Kind, p.PID)
	}
	// What stopProxy will end: pgpool's children too, by their session.
	impl, _ := proxyImplOf(p.Kind)
	if n := len(sessionProcs(p.PID, filepath.Base(impl.bin))); n == 0 || p.Kind == ProxyPgpool && n < 2 {
		t.Errorf("%s: %d processes in session %d, want the proxy's (pgpool: its children too)", p.Kind, n, p.PID)
	}
}

// requireStopped stops p and checks that nothing of it is left: no
// process of its session, its port closed; a second stop is a no-op.
func requireStopped(t *testing.T, p *Proxy) {
	t.Helper()
	pid, port := p.PID, p.Port
	impl, _ := proxyImplOf(p.Kind)
	if err := stopProxy(p); err != nil {
		t.Fatalf("stop %s: %v", p.Kind, err)
	}
	if ps := sessionProcs(pid, filepath.Base(impl.bin)); len(ps) > 0 {
		t.Errorf("%s: %d processes of session %d left after stopProxy", p.Kind, len(ps), pid)
	}
	q := *p
	if q.PID = pid; proxyRuns(&q) {
		t.Errorf("%s: pid %d still runs after stopProxy", p.Kind, pid)
	}
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Errorf("%s: port %d still accepts connections after stopProxy (%v)", p.Kind, port, conn.Close())
	}
	if err := stopProxy(&q); err != nil {
		t.Errorf("second stop of %s: %v", p.Kind, err)
	}
}

// outAndBack stops standby2 and waits until the proxy's state for it
// (state()) is down, checks that reads (reads()) all go to standby1,
// starts standby2 again and waits until the state is up.
func outAndBack(t *testing.T, ctl Controller, proxy, down, up string, state func() string, reads func() map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, step := range []struct {
		do   func(context.Context, string) error
		want string
	}{{ctl.Stop, down}, {ctl.Start, up}} {
		if err := step.do(ctx, "standby2"); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if !waitFor(30*time.Second, func() bool { return strings.HasPrefix(state(), step.want) }) {
			t.Fatalf("%s: standby2 %q 30s after it was stopped or started, want %s", proxy, state(), step.want)
		}
		t.Logf("%s: standby2 %s %s after it was stopped or started", proxy, step.want, time.Since(t0).Round(100*time.Millisecond))
		if got := reads(); step.want == down && got["standby1"] != 20 {
			t.Errorf("%s: with standby2 %s, 20 reads went to %v", proxy, down, got)
		}
	}
}

func connectTo(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// nodeByPort names the node listening on each port.
func nodeByPort(c *Cluster) map[int]string {
	out := map[int]string{}
	for _, n := range c.Nodes() {
		out[n.Port] = n.Name
	}
	return out
}

// makeProbeTable creates a one-row table on the primary and waits until
// every standby has replayed it (polling, with a deadline).
func makeProbeTable(t *testing.T, c *Cluster, table string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	primary := connectTo(t, c.Primary.DSN())
	if _, err := primary.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (id int); INSERT INTO %[1]s VALUES (1)", table)); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := primary.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for i := range c.Standbys {
		s := connectTo(t, c.Standbys[i].DSN())
		ok := waitFor(20*time.Second, func() bool {
			var done bool
			err := s.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&done)
			return err == nil && done
		})
		if !ok {
			t.Fatalf("%s did not replay %s within 20s", c.Standbys[i].Name, lsn)
		}
	}
}

// seqScans reads each node's own count of sequential scans of table.
func seqScans(t *testing.T, c *Cluster, table string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]int64{}
	for _, n := range c.Nodes() {
		conn := connectTo(t, n.DSN())
		var v int64
		if err := conn.QueryRow(ctx, "SELECT coalesce((SELECT seq_scan FROM pg_stat_user_tables WHERE relname = $1), 0)", table).Scan(&v); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		out[n.Name] = v
		conn.Close(ctx)
	}
	return out
}

// poolNodes is pgpool's SHOW POOL_NODES: select_cnt and status by node.
func poolNodes(t *testing.T, conn *pgx.Conn, c *Cluster) (selects map[string]int64, status map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// pgpool answers its own commands in the simple protocol only.
	rows, err := conn.Query(ctx, "SHOW POOL_NODES", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToMap)
	if err != nil {
		t.Fatal(err)
	}
	byPort := nodeByPort(c)
	selects, status = map[string]int64{}, map[string]string{}
	for _, r := range recs {
		port, _ := strconv.Atoi(fmt.Sprint(r["port"]))
		n, _ := strconv.ParseInt(fmt.Sprint(r["select_cnt"]), 10, 64)
		selects[byPort[port]] = n
		status[byPort[port]] = fmt.Sprint(r["status"])
	}
	return selects, status
}

func TestProxyPgpoolConfig(t *testing.T) {
	node := func(name string, role Role, port int) Node {
		return Node{Name: name, Role: role, Host: "127.0.0.1", Port: port, User: "postgres", Password: "sekret", Database: "postgres"}
	}
	c := &Cluster{Name: "x", BaseDir: "/b", SocketDir: "/s", Primary: node("primary", RolePrimary, 5000),
		Standbys: []Node{node("standby1", RoleStandby, 5001), node("standby2", RoleStandby, 5002)}}
	c.Standbys[1].Link = &Link{ClientPort: 7002} // a slow link: the proxy goes through it
	p := &Proxy{Kind: ProxyPgpool, Dir: "/b/proxy-pgpool", Port: 6000,
		Options: map[string]string{"delay_threshold": "8kB", "prefer_lower_delay_standby": "on"}}
	cfg := pgpoolConfig(c, p, 6001)
	for _, want := range []string{"backend_weight0 = 0\n", "backend_weight1 = 1\n", "backend_port2 = 7002\n",
		"backend_application_name2 = 'standby2'\n", "write_function_list = 'nextval,setval,currval,lastval'\n",
		"read_only_function_list = ''\n", "listen_addresses = '127.0.0.1'\n", "socket_dir = '/s'\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("pgpool.conf lacks %q:\n%s", want, cfg)
		}
	}
	// Options come last: pgpool takes the last line for a key.
	if i, j := strings.Index(cfg, "delay_threshold = '1MB'"), strings.LastIndex(cfg, "delay_threshold = '8kB'"); i < 0 || j < i {
		t.Errorf("delay_threshold=8kB not after the default (%d, %d):\n%s", i, j, cfg)
	}
	if strings.Contains(cfg, "sekret") {
		t.Error("pgpool.conf holds the password")
	}
	p.Options["read_primary"] = "on"
	cfg = pgpoolConfig(c, p, 6001)
	if !strings.Contains(cfg, "backend_weight0 = 1\n") || strings.Contains(cfg, "\nread_primary") {
		t.Errorf("read_primary=on: want backend_weight0 = 1 and no read_primary line:\n%s", cfg)
	}
	if got, want := pgpoolPasswords(c), "postgres:TEXTsekret\n"; got != want {
		t.Errorf("pool_passwd %q, want %q", got, want)
	}

	h := &Proxy{Kind: ProxyHAProxy, Dir: "/b/proxy-haproxy", Port: 6000, WritePort: 6001,
		Options: map[string]string{"retries": "3", "timeout": "queue 5s"}}
	cfg = haproxyConfig(c, h)
	read, write, _ := strings.Cut(cfg, "listen "+haproxyWrite)
	for _, want := range []string{"    retries 3\n", "    timeout queue 5s\n", "balance roundrobin", "server standby1 127.0.0.1:5001 check", "server standby2 127.0.0.1:7002 check"} {
		if !strings.Contains(read, want) {
			t.Errorf("haproxy.cfg's read part lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(read, "server primary") || !strings.Contains(write, "server primary 127.0.0.1:5000 check") {
		t.Errorf("haproxy.cfg: want the primary on the write port only:\n%s", cfg)
	}
	h.Options = map[string]string{"read_primary": "on", "balance": "leastconn"}
	cfg = haproxyConfig(c, h)
	read, _, _ = strings.Cut(cfg, "listen "+haproxyWrite)
	if !strings.Contains(read, "server primary 127.0.0.1:5000 check") || !strings.Contains(read, "balance leastconn") || strings.Contains(cfg, "read_primary") {
		t.Errorf("haproxy.cfg with read_primary=on,balance=leastconn:\n%s", cfg)
	}

	bad := &Proxy{Kind: ProxyPgpool, Options: map[string]string{"log_line_prefix": "x'; evil = 'y"}}
	if err := checkProxyOptions(bad); err == nil || !strings.Contains(err.Error(), "pgpool") {
		t.Errorf("an option with a quote: %v, want an error naming pgpool", err)
	}
}

// TestProxyPgpool: reads through pgpool land on the standbys, statement
// by statement, even those calling volatile functions or aggregates;
// pgpool's count per node agrees with the nodes' own; options reach it;
// the password is in no file but pool_passwd (0600) and in no log;
// stopping it leaves nothing.
func TestProxyPgpool(t *testing.T) {
	skipWithoutProxy(t, ProxyPgpool)
	c, ctl := proxyEnv(t, "pxpgpool")
	const table = "pgbx_proxy_probe"
	makeProbeTable(t, c, table)
	// pgpool would ignore an unknown option: startProxy refuses it.
	if err := startProxy(context.Background(), c, &Proxy{Kind: ProxyPgpool, Options: map[string]string{"delay_treshold": "8kB"}}); err == nil || !strings.Contains(err.Error(), "delay_treshold") {
		t.Errorf("a misspelt option: %v, want an error naming it", err)
	}
	p := &Proxy{Kind: ProxyPgpool, Options: map[string]string{"delay_threshold": "8kB", "num_init_children": "40"}}
	startTestProxy(t, c, p)

	if conf, err := os.ReadFile(filepath.Join(p.Dir, pgpoolConf)); err != nil || !strings.Contains(string(conf), "delay_threshold = '8kB'\n") || strings.Contains(string(conf), c.Primary.Password) {
		t.Errorf("pgpool.conf: %v, or it lacks the option delay_threshold = '8kB', or it holds the password", err)
	}
	if st, err := os.Stat(filepath.Join(p.Dir, pgpoolPasswd)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("pool_passwd: %v, mode %v, want 0600", err, st.Mode().Perm())
	}

	admin := connectTo(t, p.DSN(&c.Primary, c.Primary.Password))
	// pgpool shows what it stored (bytes) in the largest whole unit:
	// 8kB is 8192 bytes stored, where a unit it did not parse would have
	// left 8 (8B).
	for name, want := range map[string]string{"delay_threshold": "8kB", "num_init_children": "40"} {
		var v string
		if err := admin.QueryRow(context.Background(), "PGPOOL SHOW "+name, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != want {
			t.Errorf("PGPOOL SHOW %s: %q, want %q: %v", name, v, want, err)
		}
	}
	selBefore, status := poolNodes(t, admin, c)
	for _, n := range c.Nodes() {
		if status[n.Name] != "up" && status[n.Name] != "waiting" {
			t.Errorf("pgpool sees %s %q", n.Name, status[n.Name])
		}
	}
	scanBefore := seqScans(t, c, table)

	// pgbenchx's reads: the attribution columns and the replay LSN
	// (volatile functions), and an aggregate; sent as pgbenchx sends them
	// (prepared once per connection: pgx's statement cache, then
	// Bind/Execute only), as unnamed statements (Parse/Bind/Execute each
	// time) and in the simple protocol.
	queries := []string{
		`SELECT inet_server_port(), current_setting('cluster_name'), pg_is_in_recovery(),
			coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint FROM ` + table + ` WHERE id = $1`,
		`SELECT inet_server_port(), current_setting('cluster_name'), pg_is_in_recovery(), count(*) FROM ` + table + ` WHERE id = $1`,
	}
	const clients, reads = 4, 200
	byPort := nodeByPort(c)
	total := map[string]int{}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		var mu sync.Mutex
		type key struct {
			q    int
			node string
		}
		served := map[key]int{}
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for w := range clients {
			conn := connectTo(t, p.DSN(&c.Primary, c.Primary.Password))
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				for i := range reads {
					q := (w + i) % len(queries)
					var port int
					var name string
					var recovery bool
					var x int64
					if err := conn.QueryRow(ctx, queries[q], mode, 1).Scan(&port, &name, &recovery, &x); err != nil {
						errs <- err
						return
					}
					node := byPort[port]
					if want := "pgbx-" + c.Name + "-" + node; name != want || recovery != (node != "primary") {
						errs <- fmt.Errorf("port %d (%s) says cluster_name %q, in recovery %v", port, node, name, recovery)
						return
					}
					mu.Lock()
					served[key{q, node}]++
					total[node]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		spread := map[string]int{}
		for k, v := range served {
			spread[k.node] += v
		}
		if spread["primary"] > 0 {
			t.Errorf("%v: %d reads on the primary (weight 0): %v", mode, spread["primary"], served)
		}
		t.Logf("%v: by query and node %v", mode, served)
		if mode == pgx.QueryExecModeCacheStatement {
			// pgpool picks the node of a prepared statement at its Parse:
			// every execution of it goes there.
			continue
		}
		for _, s := range []string{"standby1", "standby2"} {
			if share := float64(spread[s]) / (clients * reads); share < 0.35 || share > 0.65 {
				t.Errorf("%v: %s served %.0f%% of the reads, want 35-65%%: %v", mode, s, share*100, spread)
			}
		}
	}
	all := 3 * clients * reads

	// pgpool's count of selects per node against each node's own count
	// of scans of the table. Stopping pgpool ends its backends, which
	// makes them flush their statistics.
	selAfter, _ := poolNodes(t, admin, c)
	admin.Close(context.Background())
	requireStopped(t, p)
	var scanAfter map[string]int64
	waitFor(5*time.Second, func() bool {
		scanAfter = seqScans(t, c, table)
		n := int64(0)
		for _, node := range c.Nodes() {
			n += scanAfter[node.Name] - scanBefore[node.Name]
		}
		return n >= int64(all)
	})
	for _, n := range c.Nodes() {
		pg, own := selAfter[n.Name]-selBefore[n.Name], scanAfter[n.Name]-scanBefore[n.Name]
		t.Logf("%s: pgpool counted %d selects, the node %d scans, the client %d reads", n.Name, pg, own, total[n.Name])
		if diff := pg - own; diff < -5 || diff > 5 && float64(diff) > 0.03*float64(own) {
			t.Errorf("%s: pgpool counted %d selects, the node %d scans of %s", n.Name, pg, own, table)
		}
		if own != int64(total[n.Name]) {
			t.Errorf("%s: %d scans of %s, the client saw %d reads answered there", n.Name, own, table, total[n.Name])
		}
	}
	if b, err := os.ReadFile(p.LogFile); err != nil || strings.Contains(string(b), c.Primary.Password) {
		t.Errorf("pgpool's log %s: %v, or it holds the password", p.LogFile, err)
	}

	// Killed outright, pgpool leaves its children (and its pid file):
	// stopProxy ends them by their session, and a new start works.
	startTestProxy(t, c, p)
	pid := p.PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil || !waitFor(5*time.Second, func() bool { return !proxyRuns(p) }) {
		t.Fatalf("pgpool pid %d runs 5s after SIGKILL (%v)", pid, err)
	}
	t.Logf("after SIGKILL of pgpool's main process, %d processes left in its session", len(sessionProcs(pid, "pgpool")))
	requireStopped(t, p)
	startTestProxy(t, c, p) // its readiness is a query through it

	// A standby stopped is detached after the health check's retries
	// (reads go to the other), and attached again once it streams
	// (auto_failback).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	outAndBack(t, ctl, "pgpool", "down", "up", func() string {
		// A connection each: a detach restarts the children whose
		// session used the node, and cuts those sessions.
		conn, err := pgx.Connect(ctx, p.DSN(&c.Primary, c.Primary.Password))
		if err != nil {
			return err.Error()
		}
		defer conn.Close(ctx)
		_, st := poolNodes(t, conn, c)
		return st["standby2"]
	}, func() map[string]int {
		out := map[string]int{}
		conn := connectTo(t, p.DSN(&c.Primary, c.Primary.Password))
		for range 20 {
			var port int
			if err := conn.QueryRow(ctx, "SELECT inet_server_port()", pgx.QueryExecModeExec).Scan(&port); err != nil {
				t.Fatal(err)
			}
			out[byPort[port]]++
		}
		return out
	})
	requireStopped(t, p)
}

// TestProxyHAProxy: the read port spreads connections over the standbys
// round-robin, the write port leads to the primary, options reach it, a
// bad one fails the start with HAProxy's words, stopping leaves nothing.
func TestProxyHAProxy(t *testing.T) {
	skipWithoutProxy(t, ProxyHAProxy)
	c, ctl := proxyEnv(t, "pxhaproxy")

	// Ctrl-C while it starts (it takes ~0.7 s): what started is stopped.
	cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p0 := &Proxy{Kind: ProxyHAProxy}
	if err := startProxy(cctx, c, p0); !errors.Is(err, context.DeadlineExceeded) || p0.PID != 0 {
		t.Errorf("start cut short: %v (pid %d), want context.DeadlineExceeded and nothing running", err, p0.PID)
	} else if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p0.Port), time.Second); err == nil {
		t.Errorf("start cut short: port %d still accepts connections (%v)", p0.Port, conn.Close())
	}
	bad := &Proxy{Kind: ProxyHAProxy, Options: map[string]string{"balance": "nonesuch"}}
	ctx, cancelBad := context.WithTimeout(context.Background(), time.Minute)
	defer cancelBad()
	err := startProxy(ctx, c, bad)
	if err == nil || !strings.Contains(err.Error(), "haproxy") || !strings.Contains(err.Error(), "balance") {
		t.Errorf("start with balance=nonesuch: %v, want an error naming haproxy and quoting its log", err)
	} else {
		t.Logf("balance=nonesuch: %v", err)
	}
	if proxyRuns(bad) {
		t.Error("a failed start left HAProxy running")
	}

	p := &Proxy{Kind: ProxyHAProxy, Options: map[string]string{"stats": "on"}}
	startTestProxy(t, c, p)
	if conf, err := os.ReadFile(filepath.Join(p.Dir, haproxyConf)); err != nil || !strings.Contains(string(conf), "balance roundrobin") {
		t.Errorf("haproxy.cfg: %v, or it lacks balance roundrobin", err)
	}
	if resp, err := http.Get("http://127.0.0.1:" + p.Options["stats_port"] + "/;csv"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("stats=on: no stats page on port %q: %v", p.Options["stats_port"], err)
	} else {
		resp.Body.Close()
	}

	byPort := nodeByPort(c)
	readSpread := func(n int) map[string]int {
		t.Helper()
		out := map[string]int{}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for range n {
			// A connection each: HAProxy balances connections.
			conn, err := pgx.Connect(ctx, p.DSN(&c.Primary, c.Primary.Password))
			if err != nil {
				t.Fatalf("read port: %v", err)
			}
			var port int
			err = conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port)
			conn.Close(ctx)
			if err != nil {
				t.Fatalf("read port: %v", err)
			}
			out[byPort[port]]++
		}
		return out
	}
	const reads = 200
	got := readSpread(reads)
	t.Logf("read port, roundrobin: %v", got)
	if got["primary"] > 0 {
		t.Errorf("%d of %d reads on the primary: %v", got["primary"], reads, got)
	}
	for _, s := range []string{"standby1", "standby2"} {
		if share := float64(got[s]) / reads; share < 0.4 || share > 0.6 {
			t.Errorf("%s served %.0f%% of the connections, want 40-60%%: %v", s, share*100, got)
		}
	}

	w := *p
	w.Port = p.WritePort
	wconn := connectTo(t, w.DSN(&c.Primary, c.Primary.Password))
	// pg_current_xact_id() takes a transaction id: a write, refused
	// during recovery.
	var port int
	err = wconn.QueryRow(context.Background(), "SELECT inet_server_port() FROM pg_current_xact_id()").Scan(&port)
	if err != nil || port != c.Primary.Port {
		t.Errorf("write port: a write landed on port %d, want the primary's %d: %v", port, c.Primary.Port, err)
	}
	wconn.Close(context.Background())

	// A stopped standby is taken out of the read port after two failed
	// checks, and back in after one passing check once it runs again.
	outAndBack(t, ctl, "haproxy", "DOWN", "UP", func() string {
		st, err := haproxyStates(haproxyStatsSocket(c, p))
		if err != nil {
			return err.Error()
		}
		return st[haproxyRead+"/standby2"]
	}, func() map[string]int { return readSpread(20) })
	requireStopped(t, p)

	// Started again with other options, in the same folder, on the same
	// ports.
	p.Options = map[string]string{"balance": "leastconn", "read_primary": "on"}
	ports := [2]int{p.Port, p.WritePort}
	startTestProxy(t, c, p)
	if ports != [2]int{p.Port, p.WritePort} {
		t.Errorf("started again on ports %d, %d, want %v", p.Port, p.WritePort, ports)
	}
	conf, err := os.ReadFile(filepath.Join(p.Dir, haproxyConf))
	if err != nil || !strings.Contains(string(conf), "balance leastconn") || p.Options["stats_port"] != "" {
		t.Errorf("haproxy.cfg: %v, or it lacks balance leastconn, or a stats port stayed", err)
	}
	got = readSpread(60)
	t.Logf("read port, leastconn with read_primary=on: %v", got)
	for _, n := range c.Nodes() {
		if got[n.Name] == 0 {
			t.Errorf("read_primary=on, leastconn: %s served none of 60 connections: %v", n.Name, got)
		}
	}
	requireStopped(t, p)
}
