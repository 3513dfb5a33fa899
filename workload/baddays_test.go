package workload_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

// serverProcs is a postmaster and every process it started.
func serverProcs(t *testing.T, postmaster int) []int {
	t.Helper()
	pids := []int{postmaster}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// The fields after the command name, which may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalAll sends sig to every process of a server.
func signalAll(t *testing.T, pids []int, sig syscall.Signal) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill -%d %d: %v", sig, pid, err)
		}
	}
}

func nodesOf(c *env.Cluster) []workload.Node {
	var nodes []workload.Node
	for _, n := range c.Nodes() {
		nodes = append(nodes, workload.Node{Name: n.Name, Role: n.Role, DSN: n.DSN()})
	}
	return nodes
}

// runWith runs the scenario with hooks, so a test can act while it
// measures.
func runWith(t *testing.T, c *env.Cluster, cfg workload.Config, hooks workload.Hooks) (*metrics.Result, error) {
	t.Helper()
	return runScenario(t, c, cfg, func(*workload.Scenario) workload.Hooks { return hooks })
}

// runScenario is runWith for hooks that tell the scenario of events.
func runScenario(t *testing.T, c *env.Cluster, cfg workload.Config, hooks func(*workload.Scenario) workload.Hooks) (*metrics.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc, err := workload.New(ctx, nodesOf(c), cfg)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	res := &metrics.Result{}
	err = sc.Run(ctx, res, hooks(sc))
	return res, err
}

func node(sr *metrics.StrategyResult, name string) *metrics.NodeResult {
	for _, n := range sr.Nodes {
		if n.Node == name {
			return n
		}
	}
	return nil
}

func avgLowerMS(sr *metrics.StrategyResult, name string) (avg float64, n int) {
	for _, l := range sr.Lag {
		if l.Node == name && l.MS != nil {
			avg += *l.MS
			n++
		}
	}
	if n > 0 {
		avg /= float64(n)
	}
	return avg, n
}

// TestFrozenStandby freezes standby2 (SIGSTOP of its postmaster and every
// backend: a hung host) early in round-robin's measured time and thaws it
// only after lag-aware ran too. Neither phase may overrun, the frozen
// node's timeouts are on it, and the healthy standby1 serves the reads
// with its own lag unmoved.
func TestFrozenStandby(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "wfrz", Standbys: 2, Fast: true})
	// The backends serving the run exist only once it runs: the processes
	// are listed when they are frozen.
	var procs []int
	thawed := false
	thaw := func() {
		if !thawed && procs != nil {
			signalAll(t, procs, syscall.SIGCONT)
			thawed = true
		}
	}
	t.Cleanup(thaw)
	cfg := testConfig("round-robin", "lag-aware")
	cfg.Duration, cfg.Warmup, cfg.Clients = 4*time.Second, 200*time.Millisecond, 8
	cfg.QueryTimeout, cfg.Heartbeat, cfg.LagInterval = time.Second, 10*time.Millisecond, 100*time.Millisecond
	// Freeze on round-robin's first measured second; time every phase by
	// the messages that open the next.
	froze := false
	var marks []time.Time
	var names []string
	res, err := runScenario(t, c, cfg, func(sc *workload.Scenario) workload.Hooks {
		return workload.Hooks{
			Phase: func(msg string) { marks, names = append(marks, time.Now()), append(names, msg) },
			Live: func(strategy routing.Strategy, _ time.Duration, _ metrics.Tick) {
				if strategy == "round-robin" && !froze {
					procs = serverProcs(t, c.Standbys[1].PID)
					signalAll(t, procs, syscall.SIGSTOP)
					sc.Event("freeze", "standby2", "SIGSTOP")
					froze = true
				}
			},
		}
	})
	marks = append(marks, time.Now())
	if !froze {
		t.Fatal("standby2 was never frozen")
	}
	thaw()
	if err != nil {
		t.Fatal(err)
	}
	// A read phase must end within a query timeout and a second of its
	// planned end (and the run then exit: the last phase includes that).
	limit := cfg.Warmup + cfg.Duration + cfg.QueryTimeout + time.Second
	for i, msg := range names {
		took := marks[i+1].Sub(marks[i])
		if strings.HasPrefix(msg, "read phase:") && took > limit {
			t.Errorf("%q took %s, want at most %s", msg, took.Round(time.Millisecond), limit)
		}
		t.Logf("%6s %s", took.Round(time.Millisecond), msg)
	}
	if len(res.Strategies) != 2 {
		t.Fatalf("%d strategies measured, want 2", len(res.Strategies))
	}
	// The freeze is in round-robin's timeline, about a second in, and
	// standby2's ejection follows it (the first read to time out).
	if ev := res.Strategies[0].Events; len(ev) < 1 || ev[0].Kind != "freeze" || ev[0].Node != "standby2" || ev[0].T < 0.5 || ev[0].T > 2 {
		t.Errorf("round-robin's events %+v, want the freeze about 1 s into its measured time", ev)
	} else if len(ev) < 2 || ev[1].Kind != "ejected" || ev[1].Node != "standby2" || ev[1].T < ev[0].T {
		t.Errorf("round-robin's events %+v, want standby2 ejected after the freeze", ev)
	}
	for _, sr := range res.Strategies {
		s1, s2 := node(sr, "standby1"), node(sr, "standby2")
		share := float64(s1.Total().TotalCount()) / float64(sr.Total().TotalCount())
		if share < 0.6 {
			t.Errorf("%s: standby1 served %.0f%% of the successful reads, want most of them", sr.Strategy, 100*share)
		}
		if avg, n := avgLowerMS(sr, "standby1"); n == 0 || avg > 50 {
			t.Errorf("%s: standby1's time lag averaged %.1f ms over %d samples: the frozen standby2 moved it", sr.Strategy, avg, n)
		}
		if _, n := avgLowerMS(sr, "standby2"); sr.Strategy == "lag-aware" && n > 0 {
			t.Errorf("lag-aware: %d time-lag samples of the frozen standby2 were known", n)
		}
		if sr.Strategy == "round-robin" {
			if s2.Errors[workload.LabelClientTimeout] == 0 {
				t.Errorf("round-robin: standby2's errors %v, want client timeouts", s2.Errors)
			}
			if s2.FailedLatency == nil || s2.FailedLatency.Max() < 900_000 {
				t.Errorf("round-robin: standby2's failed attempts %v: reads that hit the 1 s timeout must be in its histogram", s2.FailedLatency.Summary())
			}
			if s1.Retries == 0 {
				t.Error("round-robin: no read timed out on standby2 was retried on standby1")
			}
			if sr.Reads().Max() < 900_000 {
				t.Errorf("round-robin: end-to-end max %d us, want the retried reads' whole time", sr.Reads().Max())
			}
		}
	}
}

// TestKillOnlyStandby kills the one standby mid-run: each read that tried
// it failed once there, with no retry (there is nowhere else to go), and
// while it is gone the clients back off instead of spinning.
func TestKillOnlyStandby(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "wkill", Standbys: 1, Fast: true})
	cfg := testConfig("round-robin")
	cfg.Duration, cfg.Warmup, cfg.WriteRows = 3*time.Second, 200*time.Millisecond, 0
	cfg.EjectFor = 200 * time.Millisecond
	killed := false
	res, err := runWith(t, c, cfg, workload.Hooks{Live: func(routing.Strategy, time.Duration, metrics.Tick) {
		if !killed { // on the first measured second
			signalAll(t, serverProcs(t, c.Standbys[0].PID), syscall.SIGKILL)
			killed = true
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sr := res.Strategies[0]
	s1 := node(sr, "standby1")
	errs := s1.ErrorCount()
	if errs == 0 || sr.Failed == 0 {
		t.Fatalf("errors %d, failed reads %d: the kill went unnoticed", errs, sr.Failed)
	}
	// Each failed read that reached standby1 failed there once; the others
	// found no node at all (it was ejected).
	if got := sr.Failed - sr.NoTarget; got != errs {
		t.Errorf("failed reads that tried standby1: %d, errors on it: %d: a read must count once", got, errs)
	}
	if s1.Retries != 0 || node(sr, "primary").Retries != 0 {
		t.Errorf("retries %d: nothing could run again", s1.Retries)
	}
	// 2 s without a standby, 4 clients backing off up to 100 ms: a few
	// dozen reads each, not the hundreds of thousands of a spinning loop.
	if sr.NoTarget > 4*200 {
		t.Errorf("%d reads found no node in 2 s: the clients spin", sr.NoTarget)
	}
	if sr.Reads().TotalCount() != s1.Total().TotalCount()+sr.Failed+sr.Unfinished {
		t.Errorf("end-to-end %d reads, want successful %d + failed %d + unfinished %d",
			sr.Reads().TotalCount(), s1.Total().TotalCount(), sr.Failed, sr.Unfinished)
	}
}

// TestOpenLoopOverload asks for far more reads than two clients can send:
// every slot due in the measured window is in the end-to-end histogram,
// the unsent ones with the time they had waited. It also plants a user's
// own public.orders, which the run must leave exactly as it was.
func TestOpenLoopOverload(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "wopen", Standbys: 1, Fast: true})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer_id int NOT NULL,
		amount numeric(10,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO public.orders (customer_id, amount, status) SELECT g % 7, g, 'mine' FROM generate_series(1, 500) g;
		CREATE INDEX orders_customer_created ON public.orders (amount)`); err != nil {
		t.Fatal(err)
	}
	userState := func() string {
		var s string
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) || '/' || sum(amount) || '/' || max(id) FROM public.orders) || ' ' ||
			(SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public')`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := userState()

	cfg := testConfig("round-robin")
	cfg.Clients, cfg.Rate, cfg.Duration, cfg.Warmup, cfg.WriteRows = 2, 20000, 2*time.Second, 200*time.Millisecond, 100
	cfg.Mix = nil
	cfg.Custom = []workload.CustomQuery{{Name: "slow", Weight: 1, SQL: `SELECT pg_sleep(0.005) FROM orders LIMIT 1`}}
	res, err := runWith(t, c, cfg, workload.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	sr := res.Strategies[0]
	due := cfg.Rate * sr.Seconds
	if got := float64(sr.Reads().TotalCount()); got < 0.95*due || got > 1.05*due {
		t.Errorf("end-to-end reads %.0f, want every slot due in %.2fs at %.0f/s (%.0f)", got, sr.Seconds, cfg.Rate, due)
	}
	if sr.Unsent < int64(0.5*due) {
		t.Errorf("unsent %d of %.0f due: two clients sleeping 5 ms per read cannot have sent more than a few hundred", sr.Unsent, due)
	}
	if sr.Reads().Max() < 1_000_000 {
		t.Errorf("end-to-end max %d us: the slots due early and never sent waited over a second", sr.Reads().Max())
	}
	if after := userState(); after != before {
		t.Errorf("the user's public.orders changed: %q -> %q", before, after)
	}
}

// TestTooManyClientsRefused: a run that would open more connections than
// a node allows is bad input, refused before anything is written.
func TestTooManyClientsRefused(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "wmax", Standbys: 1, Fast: true})
	cfg := testConfig("round-robin")
	cfg.Clients = 150 // max_connections is 100
	_, err := runWith(t, c, cfg, workload.Hooks{})
	var ie *input.Error
	if !errors.As(err, &ie) || ie.Flag != "clients" || !strings.Contains(err.Error(), "max_connections") {
		t.Fatalf("err %v, want an input error on --clients naming max_connections", err)
	}
	if !strings.Contains(err.Error(), "standby1") || !strings.Contains(err.Error(), "--pg-setting max_connections=") {
		t.Errorf("err %q does not name the node and the fix", err)
	}
	conn, err := pgx.Connect(context.Background(), c.Primary.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbenchx'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema pgbenchx exists (%d, %v): something was written before the refusal", n, err)
	}
}
