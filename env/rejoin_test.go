package env_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

// TestForkedStandbyIsRewound makes the failover asynchronous replication
// can make: standby1 is frozen while the primary writes, so standby2
// replays WAL standby1 never gets; the primary dies and standby1 is
// promoted. standby2 cannot follow the new timeline (Repoint says
// ErrForked); Rewind makes it follow, and the rows standby1 has are
// there. A rebuild of it then works too.
func TestForkedStandbyIsRewound(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "fork", Standbys: 2, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	writeReaches(t, &c.Primary, &c.Standbys[1], 1)

	// Stopped, not frozen: a frozen walreceiver's socket still buffers
	// what the primary sends, and it reads that once thawed.
	if err := ctl.Stop(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	writeReaches(t, &c.Primary, &c.Standbys[1], 2) // standby1 never sees it
	timed(t, "kill primary", func() error { return ctl.Kill(ctx, "primary") })
	timed(t, "start standby1", func() error { return ctl.Start(ctx, "standby1") })
	timed(t, "promote standby1", func() error { return ctl.Promote(ctx, "standby1") })
	err := ctl.Repoint(ctx, "standby2", "standby1")
	if !errors.Is(err, env.ErrForked) {
		t.Fatalf("Repoint of a standby ahead of the fork: %v, want ErrForked", err)
	}
	t.Logf("repoint: %v", err)
	timed(t, "rewind standby2 from standby1", func() error { return ctl.Rewind(ctx, "standby2", "standby1") })
	if !streamingOn(t, &c.Primary, "standby2") {
		t.Fatal("standby2 does not stream from standby1 after pg_rewind")
	}
	// Row 2 was only on the old timeline: standby2 lost it with the
	// rewind, and has what standby1 writes now.
	s2 := connect(t, &c.Standbys[0])
	var n int
	if err := s2.QueryRow(ctx, `SELECT count(*) FROM ctl WHERE id = 2`).Scan(&n); err != nil || n != 0 {
		t.Errorf("standby2 still has the row the new primary never had (%d, %v)", n, err)
	}
	s2.Close(ctx)
	writeReaches(t, &c.Primary, &c.Standbys[0], 3)
	requireVerify(t, mustLoad(t, p, c.Name))

	timed(t, "rebuild standby2 from standby1", func() error { return ctl.Rebuild(ctx, "standby2", "standby1") })
	if !streamingOn(t, &c.Primary, "standby2") {
		t.Fatal("standby2 does not stream from standby1 after a rebuild")
	}
	writeReaches(t, &c.Primary, &c.Standbys[0], 4)
	requireVerify(t, mustLoad(t, p, c.Name))
}

// fakeControl is a Controller whose Repoint fails with ErrForked for the
// standbys in forked and whose Rewind fails for those in noRewind: the
// failover's choices, without the timing a real fork needs.
type fakeControl struct {
	env.Controller
	forked, noRewind map[string]bool
	rewound, rebuilt []string
	killed, promoted string
}

func (f *fakeControl) Kill(_ context.Context, n string) error { f.killed = n; return nil }
func (f *fakeControl) State(context.Context, string) (env.NodeState, error) {
	return env.NodeRunning, nil
}
func (f *fakeControl) Promote(_ context.Context, n string) error {
	f.promoted = n
	return nil
}
func (f *fakeControl) Repoint(_ context.Context, s, _ string) error {
	if f.forked[s] {
		return fmt.Errorf("%s cannot stream: %w", s, env.ErrForked)
	}
	return nil
}
func (f *fakeControl) Rewind(_ context.Context, s, _ string) error {
	if f.noRewind[s] {
		return errors.New("pg_rewind: target server needs wal_log_hints")
	}
	f.rewound = append(f.rewound, s)
	return nil
}
func (f *fakeControl) Rebuild(_ context.Context, s, _ string) error {
	f.rebuilt = append(f.rebuilt, s)
	return nil
}

func TestFailoverFollowers(t *testing.T) {
	c := &env.Cluster{Name: "x", Primary: env.Node{Name: "primary", Role: env.RolePrimary}}
	for i := 1; i <= 4; i++ {
		c.Standbys = append(c.Standbys, env.Node{Name: env.StandbyName(i), Role: env.RoleStandby, Upstream: "primary"})
	}
	f := &fakeControl{forked: map[string]bool{"standby3": true, "standby4": true}, noRewind: map[string]bool{"standby4": true}}
	called := false
	r, err := env.Failover(context.Background(), f, c, "standby1", func() { called = f.promoted == "standby1" })
	if err != nil {
		t.Fatal(err)
	}
	if f.killed != "primary" || !called {
		t.Errorf("killed %q, promoted callback after promote: %v", f.killed, called)
	}
	want := map[string]string{"standby2": "repointed", "standby3": "rewound", "standby4": "rebuilt"}
	for n, how := range want {
		if got := r.Followers[n].How; len(got) < len(how) || got[:len(how)] != how {
			t.Errorf("%s: %q, want %s", n, got, how)
		}
	}
	rec := r.Record()
	if rec.AllStreamingMS < 0 || len(rec.Followers) != 3 {
		t.Errorf("record %+v", rec)
	}
}

// TestFailoverRefusesFrozenTarget: a standby that cannot be promoted is
// refused before the primary is killed, so the env keeps its primary.
func TestFailoverRefusesFrozenTarget(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "fofrozen", Standbys: 1, Fast: true})
	ctl := envtest.Control(t, c)
	ctx := context.Background()
	if err := ctl.Freeze(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	_, err := env.Failover(ctx, ctl, c, "standby1", nil)
	if err == nil {
		t.Fatal("failover onto a frozen standby worked")
	}
	t.Logf("refused: %v", err)
	if st, err := ctl.State(ctx, "primary"); err != nil || st != env.NodeRunning {
		t.Errorf("the primary is %s (%v) after a refused failover, want running", st, err)
	}
	if err := ctl.Thaw(ctx, "standby1"); err != nil {
		t.Fatal(err)
	}
	requireVerify(t, mustLoad(t, p, c.Name))
}
