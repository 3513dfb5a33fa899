package env_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/input"
)

// answers runs one query on a fresh connection within d: a frozen node
// never answers, a stopped one refuses.
func answers(n *env.Node, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, `SELECT 1`).Scan(&one)
}

// streamingOn reports whether upstream's pg_stat_replication shows the
// standby streaming, with its slot active.
func streamingOn(t *testing.T, upstream *env.Node, standby string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, upstream.DSN())
	if err != nil {
		t.Fatalf("%s: %v", upstream.Name, err)
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming')
		AND EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2 AND active)`, standby, env.SlotName(standby)).Scan(&ok)
	if err != nil {
		t.Fatalf("%s: %v", upstream.Name, err)
	}
	return ok
}

// writeReaches inserts a marker on the primary and waits until the
// standby has it.
func writeReaches(t *testing.T, primary, standby *env.Node, marker int) {
	t.Helper()
	ctx := context.Background()
	p := connect(t, primary)
	if _, err := p.Exec(ctx, `CREATE TABLE IF NOT EXISTS ctl (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `INSERT INTO ctl VALUES ($1)`, marker); err != nil {
		t.Fatal(err)
	}
	s := connect(t, standby)
	eventually(t, 30*time.Second, standby.Name+" has the row written on "+primary.Name, func() bool {
		var n int64
		return s.QueryRow(ctx, `SELECT count(*) FROM ctl WHERE id = $1`, marker).Scan(&n) == nil && n == 1
	})
}

// serverProcs lists every process whose command line names the folder:
// postmasters of its data folders and, through their titles' absence,
// nothing else; backends are found as their children.
func serverProcs(folder string) []int {
	ents, _ := os.ReadDir("/proc")
	var pms []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(folder)) && procState(pid) != 'Z' {
			pms = append(pms, pid)
		}
	}
	return pms
}

func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// children lists a process's children and theirs.
func children(root int) []int {
	ents, _ := os.ReadDir("/proc")
	kids := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := bytes.Fields(b[i+2:])
		if len(f) > 1 {
			ppid, _ := strconv.Atoi(string(f[1]))
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	var out []int
	for q := []int{root}; len(q) > 0; q = q[1:] {
		for _, k := range kids[q[0]] {
			out = append(out, k)
			q = append(q, k)
		}
	}
	return out
}

// sharedMemory lists the POSIX shared memory segments the processes map.
func sharedMemory(pids []int) []string {
	seen := map[string]bool{}
	var out []string
	for _, pid := range pids {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 6 && strings.HasPrefix(f[5], "/dev/shm/PostgreSQL.") && !seen[f[5]] {
				seen[f[5]] = true
				out = append(out, f[5])
			}
		}
	}
	return out
}

func timed(t *testing.T, what string, fn func() error) {
	t.Helper()
	t0 := time.Now()
	if err := fn(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%-34s %6.0f ms", what, float64(time.Since(t0).Microseconds())/1000)
}

func state(t *testing.T, ctl env.Controller, node string) env.NodeState {
	t.Helper()
	st, err := ctl.State(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestNodeControl stops, kills and freezes standbys of one cluster, each
// time bringing them back and checking they stream and replay again.
func TestNodeControl(t *testing.T) {
	c, p := envtest.Up(t, env.Spec{Name: "ctl", Standbys: 2, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	s1, s2 := &c.Standbys[0], &c.Standbys[1]

	t.Run("unknown node is bad input", func(t *testing.T) {
		err := ctl.Stop(ctx, "standby9")
		var ie *input.Error
		if !errors.As(err, &ie) || ie.Flag != "node" {
			t.Errorf("Stop(standby9): want *input.Error for --node, got %v", err)
		}
		if err := ctl.Promote(ctx, "primary"); !input.Is(err) {
			t.Errorf("Promote(primary): want bad input, got %v", err)
		}
	})

	t.Run("stop and start a standby", func(t *testing.T) {
		oldPID := s1.PID
		timed(t, "stop standby1", func() error { return ctl.Stop(ctx, "standby1") })
		if st := state(t, ctl, "standby1"); st != env.NodeStopped {
			t.Errorf("state %s after Stop", st)
		}
		if err := answers(s1, 2*time.Second); err == nil {
			t.Error("a stopped standby1 answered")
		}
		saved, err := p.Store.Load(c.Name)
		if err != nil || saved.Standbys[0].PID != 0 {
			t.Errorf("state file after Stop: pid %d, %v", saved.Standbys[0].PID, err)
		}
		timed(t, "start standby1 (until streaming)", func() error { return ctl.Start(ctx, "standby1") })
		if s1.PID == 0 || s1.PID == oldPID {
			t.Errorf("pid %d after Start (was %d)", s1.PID, oldPID)
		}
		if !streamingOn(t, &c.Primary, "standby1") {
			t.Error("standby1 not streaming with an active slot once Start returned")
		}
		if saved, _ := p.Store.Load(c.Name); saved.Standbys[0].PID != s1.PID {
			t.Errorf("state file pid %d, cluster %d", saved.Standbys[0].PID, s1.PID)
		}
		writeReaches(t, &c.Primary, s1, 1)
	})

	t.Run("kill and start a standby", func(t *testing.T) {
		shm := sharedMemory(append([]int{s2.PID}, children(s2.PID)...))
		if len(shm) == 0 {
			t.Error("standby2 maps no /dev/shm/PostgreSQL.* segment: the leak check checks nothing")
		}
		timed(t, "kill standby2", func() error { return ctl.Kill(ctx, "standby2") })
		if procs := serverProcs(s2.DataDir); len(procs) > 0 {
			t.Errorf("processes of standby2 left after Kill: %v", procs)
		}
		for _, f := range shm {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind by the killed standby2 (%v)", f, err)
			}
		}
		if st := state(t, ctl, "standby2"); st != env.NodeStopped {
			t.Errorf("state %s after Kill", st)
		}
		timed(t, "start standby2 after a crash", func() error { return ctl.Start(ctx, "standby2") })
		if !streamingOn(t, &c.Primary, "standby2") {
			t.Error("standby2 not streaming once Start returned")
		}
		writeReaches(t, &c.Primary, s2, 2)
	})

	t.Run("freeze and thaw a standby", func(t *testing.T) {
		timed(t, "freeze standby1", func() error { return ctl.Freeze(ctx, "standby1") })
		if st := state(t, ctl, "standby1"); st != env.NodeFrozen {
			t.Errorf("state %s after Freeze", st)
		}
		for _, pid := range append([]int{s1.PID}, children(s1.PID)...) {
			if st := procState(pid); st != 'T' && st != 0 {
				t.Errorf("pid %d of standby1 in state %c after Freeze", pid, st)
			}
		}
		t0 := time.Now()
		if err := answers(s1, 300*time.Millisecond); err == nil {
			t.Error("a frozen standby1 answered")
		} else if took := time.Since(t0); took > 2*time.Second {
			t.Errorf("the 300 ms deadline took %s to fire", took)
		}
		if err := answers(s2, 5*time.Second); err != nil {
			t.Errorf("standby2 does not answer while standby1 is frozen: %v", err)
		}
		timed(t, "thaw standby1", func() error { return ctl.Thaw(ctx, "standby1") })
		if err := answers(s1, 5*time.Second); err != nil {
			t.Errorf("standby1 after Thaw: %v", err)
		}
		writeReaches(t, &c.Primary, s1, 3)
	})

	t.Run("thaw resumes what another process froze", func(t *testing.T) {
		// As a fault injector in another process would: the whole tree.
		procs := append([]int{s2.PID}, children(s2.PID)...)
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		eventually(t, 5*time.Second, "standby2 stopped", func() bool { return state(t, ctl, "standby2") == env.NodeFrozen })
		other := envtest.Control(t, mustLoad(t, p, c.Name))
		timed(t, "thaw standby2 (another controller)", func() error { return other.Thaw(ctx, "standby2") })
		for _, pid := range procs {
			if procState(pid) == 'T' {
				t.Errorf("pid %d still stopped after Thaw", pid)
			}
		}
		if err := answers(s2, 5*time.Second); err != nil {
			t.Errorf("standby2 after Thaw: %v", err)
		}
	})

	t.Run("start after a frozen postmaster was killed from outside", func(t *testing.T) {
		// Its backends, orphaned and stopped, hold its shared memory.
		procs := append([]int{s1.PID}, children(s1.PID)...)
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		_ = syscall.Kill(s1.PID, syscall.SIGKILL)
		eventually(t, 5*time.Second, "standby1's postmaster gone", func() bool { return state(t, ctl, "standby1") == env.NodeStopped })
		timed(t, "start standby1 (orphans left)", func() error { return ctl.Start(ctx, "standby1") })
		for _, pid := range procs[1:] {
			if st := procState(pid); st != 0 && st != 'Z' {
				t.Errorf("orphan %d of the killed standby1 still there (%c)", pid, st)
			}
		}
		writeReaches(t, &c.Primary, s1, 6)
	})

	t.Run("repoint a standby to another standby and back", func(t *testing.T) {
		timed(t, "repoint standby2 to standby1", func() error { return ctl.Repoint(ctx, "standby2", "standby1") })
		if !streamingOn(t, s1, "standby2") || s2.Upstream != "standby1" {
			t.Errorf("standby2 not streaming from standby1 (upstream %q)", s2.Upstream)
		}
		if n := queryInt(t, connect(t, &c.Primary), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'standby2_slot'`); n != 0 {
			t.Error("standby2's slot on its old upstream, the primary, is left behind")
		}
		writeReaches(t, &c.Primary, s2, 5)
		timed(t, "repoint standby2 back to primary", func() error { return ctl.Repoint(ctx, "standby2", "primary") })
		if !streamingOn(t, &c.Primary, "standby2") {
			t.Error("standby2 not streaming from the primary again")
		}
		if n := queryInt(t, connect(t, s1), `SELECT count(*) FROM pg_replication_slots`); n != 0 {
			t.Errorf("%d slots left on standby1", n)
		}
		if err := ctl.Repoint(ctx, "standby1", "standby1"); !input.Is(err) {
			t.Errorf("Repoint to itself: want bad input, got %v", err)
		}
	})

	t.Run("stop and start the primary", func(t *testing.T) {
		timed(t, "stop primary", func() error { return ctl.Stop(ctx, "primary") })
		timed(t, "start primary", func() error { return ctl.Start(ctx, "primary") })
		eventually(t, 30*time.Second, "both standbys stream again", func() bool {
			return streamingOn(t, &c.Primary, "standby1") && streamingOn(t, &c.Primary, "standby2")
		})
		writeReaches(t, &c.Primary, s2, 4)
	})
	requireVerify(t, c)
}

func mustLoad(t *testing.T, p *env.Local, name string) *env.Cluster {
	t.Helper()
	c, err := p.Store.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFailover stops the primary cleanly, promotes standby1 and repoints
// standby2 to it, then removes it all.
func TestFailover(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "fail", Standbys: 2, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	writeReaches(t, &c.Primary, &c.Standbys[1], 1)

	timed(t, "stop primary", func() error { return ctl.Stop(ctx, "primary") })
	timed(t, "promote standby1", func() error { return ctl.Promote(ctx, "standby1") })
	if c.Primary.Name != "standby1" || c.Primary.Role != env.RolePrimary || len(c.Standbys) != 1 ||
		c.Standbys[0].Name != "standby2" || len(c.Detached) != 1 || c.Detached[0].Name != "primary" || c.Detached[0].Role != env.RoleDetached {
		t.Fatalf("roles after Promote: primary %s (%s), standbys %+v, detached %+v", c.Primary.Name, c.Primary.Role, c.Standbys, c.Detached)
	}
	if err := ctl.Start(ctx, "primary"); !input.Is(err) {
		t.Errorf("Start of the detached old primary: want bad input, got %v", err)
	}
	timed(t, "repoint standby2 to standby1", func() error { return ctl.Repoint(ctx, "standby2", "standby1") })
	if !streamingOn(t, &c.Primary, "standby2") {
		t.Error("standby1's pg_stat_replication does not show standby2 streaming with an active slot")
	}
	s2 := connect(t, &c.Standbys[0])
	var tli int
	if err := s2.QueryRow(ctx, `SELECT received_tli FROM pg_stat_wal_receiver`).Scan(&tli); err != nil || tli < 2 {
		t.Errorf("standby2 receives timeline %d (%v), want the promoted one (2)", tli, err)
	}
	t.Logf("standby2 now receives timeline %d from standby1", tli)
	writeReaches(t, &c.Primary, &c.Standbys[0], 2)

	who, err := env.FindPrimary(ctx, c)
	if err != nil || who != "standby1" {
		t.Errorf("FindPrimary: %q, %v", who, err)
	}
	saved := mustLoad(t, p, c.Name)
	if saved.Primary.Name != "standby1" || len(saved.Standbys) != 1 || saved.Standbys[0].Upstream != "standby1" ||
		len(saved.Detached) != 1 || saved.Detached[0].Name != "primary" || saved.Detached[0].PID != 0 {
		t.Errorf("state file after failover: primary %s, standbys %+v, detached %+v", saved.Primary.Name, saved.Standbys, saved.Detached)
	}
	requireVerify(t, saved)

	// Down through the provider the state names, with standby2 frozen.
	if err := ctl.Freeze(ctx, "standby2"); err != nil {
		t.Fatal(err)
	}
	var steps []string
	prov, err := env.ProviderOf(saved, env.Options{Step: func(step string, _ time.Duration) { steps = append(steps, step) }})
	if err != nil {
		t.Fatal(err)
	}
	timed(t, "down (standby2 frozen)", func() error { return prov.Down(ctx, c.Name) })
	for _, s := range steps {
		if strings.Contains(s, "slots not dropped") {
			t.Errorf("down after a failover: %s", s)
		}
	}
	requireGone(t, p, c)
	if procs := serverProcs(c.BaseDir); len(procs) > 0 {
		t.Errorf("processes left after down: %v", procs)
	}
}

// TestDownAfterFaults removes an env whose primary is frozen, standby1
// killed and standby2 frozen.
func TestDownAfterFaults(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "faults", Standbys: 2, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	for _, f := range []struct {
		op   func(context.Context, string) error
		node string
	}{{ctl.Kill, "standby1"}, {ctl.Freeze, "standby2"}, {ctl.Freeze, "primary"}} {
		if err := f.op(ctx, f.node); err != nil {
			t.Fatalf("%s: %v", f.node, err)
		}
	}
	p.Step = func(step string, took time.Duration) { t.Logf("  down step %-20s %v", step, took) }
	timed(t, "down (1 killed, 2 frozen)", func() error { return p.Down(ctx, c.Name) })
	requireGone(t, p, c)
	if procs := serverProcs(c.BaseDir); len(procs) > 0 {
		t.Errorf("processes left after down: %v", procs)
	}
}

// TestCascadeFailover promotes standby1 of a cascade: the standbys it
// feeds follow it onto its new timeline with no repoint.
func TestCascadeFailover(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "cfail", Standbys: 2, Topology: env.Cascade, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	timed(t, "stop primary", func() error { return ctl.Stop(ctx, "primary") })
	timed(t, "promote standby1", func() error { return ctl.Promote(ctx, "standby1") })
	if c.Standbys[0].Name != "standby2" || c.Standbys[0].Upstream != "standby1" {
		t.Fatalf("standbys after Promote: %+v", c.Standbys)
	}
	writeReaches(t, &c.Primary, &c.Standbys[0], 1)
	requireVerify(t, c)
}

// TestPromoteWhilePrimaryRuns makes a split brain on purpose: FindPrimary
// must say so, and Down must still stop the old primary, still running.
func TestPromoteWhilePrimaryRuns(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "split", Standbys: 1, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	timed(t, "promote standby1 (primary runs)", func() error { return ctl.Promote(ctx, "standby1") })
	_, err := env.FindPrimary(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "split brain") {
		t.Errorf("FindPrimary with two primaries: %v", err)
	}
	if st := state(t, ctl, "primary"); st != env.NodeRunning {
		t.Errorf("detached old primary %s", st)
	}
	timed(t, "kill the old primary", func() error { return ctl.Kill(ctx, "primary") })
	if who, err := env.FindPrimary(ctx, c); err != nil || who != "standby1" {
		t.Errorf("FindPrimary: %q, %v", who, err)
	}
	if err := p.Down(ctx, c.Name); err != nil {
		t.Fatal(err)
	}
	requireGone(t, p, c)
	if procs := serverProcs(c.BaseDir); len(procs) > 0 {
		t.Errorf("processes left after down: %v", procs)
	}
}
