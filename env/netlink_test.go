package env_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/input"
)

func TestParseNetLinks(t *testing.T) {
	links := map[string]env.Link{}
	if err := env.ParseNetDelays([]string{"standby2=30ms±5ms", "standby1=1ms"}, links); err != nil {
		t.Fatal(err)
	}
	if err := env.ParseNetBandwidths([]string{"standby2=10mbit"}, links); err != nil {
		t.Fatal(err)
	}
	if l := links["standby2"]; l.Delay != 30*time.Millisecond || l.Jitter != 5*time.Millisecond || l.RateKBps != 1250 {
		t.Errorf("standby2 link %+v, want 30ms ±5ms at 1250 KB/s", l)
	}
	if got := links["standby2"].String(); got != "+30ms ±5ms round trip, 10 Mbit/s each way" {
		t.Errorf("String() = %q", got)
	}
	for _, bad := range [][2]string{
		{"delay", "standby2"}, {"delay", "standby2=fast"}, {"delay", "primary=30ms"}, {"delay", "standby2=0ms"},
		{"delay", "standby2=30ms±40ms"}, {"delay", "standby2=1500us"}, {"delay", "standby2=30ms,standby2=40ms"},
		{"bandwidth", "standby2=10mb"}, {"bandwidth", "standby2=1kbit"},
	} {
		m := map[string]env.Link{}
		var err error
		if bad[0] == "delay" {
			err = env.ParseNetDelays([]string{bad[1]}, m)
		} else {
			err = env.ParseNetBandwidths([]string{bad[1]}, m)
		}
		if !input.Is(err) {
			t.Errorf("--net-%s %s: %v, want bad input", bad[0], bad[1], err)
		}
	}
	spec := env.Spec{Name: "x", Standbys: 1, NetLinks: map[string]env.Link{"standby2": {Delay: time.Millisecond}}}
	if err := spec.Validate(); !input.Is(err) {
		t.Errorf("a link on standby2 of a 1-standby env: %v, want bad input", err)
	}
}

// TestNetLink puts standby2 behind a 30 ms link: a query through its DSN
// takes at least the delay, standby1's does not, replication goes through
// the link and the env verifies; down stops the proxy.
func TestNetLink(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "slow", Standbys: 2, Fast: true,
		NetLinks: map[string]env.Link{"standby2": {Delay: 30 * time.Millisecond}}})
	if c.NetProxy == nil || c.NetProxy.PID <= 0 || c.Standbys[1].Link == nil || c.Standbys[0].Link != nil {
		t.Fatalf("proxy %+v, links %+v / %+v", c.NetProxy, c.Standbys[0].Link, c.Standbys[1].Link)
	}
	rtt := func(n *env.Node) time.Duration {
		conn := connect(t, n)
		best := time.Hour
		for range 5 {
			t0 := time.Now()
			if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			best = min(best, time.Since(t0))
		}
		return best
	}
	fast, slow := rtt(&c.Standbys[0]), rtt(&c.Standbys[1])
	t.Logf("fastest SELECT 1: standby1 %s, standby2 %s", fast, slow)
	if slow < 30*time.Millisecond || fast >= slow/2 {
		t.Errorf("standby1 %s, standby2 %s: want standby2 at least 30ms, standby1 well under it", fast, slow)
	}
	var state string
	if err := connect(t, &c.Primary).QueryRow(context.Background(),
		`SELECT state FROM pg_stat_replication WHERE application_name = 'standby2'`).Scan(&state); err != nil || state != "streaming" {
		t.Fatalf("standby2 does not stream (%q): %v", state, err)
	}
	requireVerify(t, mustLoad(t, p, c.Name))

	// Partition: nothing gets through; twice is no error. Heal: a new
	// connection gets through again; twice is no error.
	if err := env.Partition(c, "standby1"); !input.Is(err) {
		t.Errorf("partition of standby1, which has no link: %v, want bad input", err)
	}
	for range 2 {
		if err := env.Partition(c, "standby2"); err != nil {
			t.Fatalf("partition: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	if conn, err := pgx.Connect(ctx, c.Standbys[1].DSN()); err == nil {
		conn.Close(context.Background())
		t.Error("connected to standby2 through a partitioned link")
	}
	cancel()
	for range 2 {
		if err := env.Heal(c, "standby2"); err != nil {
			t.Fatalf("heal: %v", err)
		}
	}
	rtt(&c.Standbys[1])

	pid := c.NetProxy.PID
	if err := p.Down(context.Background(), c.Name); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			t.Fatalf("the link proxy (pid %d) still runs after env down", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFailoverWithLink fails over to standby1 while standby2 sits behind
// a link: standby2 follows the new primary through its link's proxy
// (its primary_conninfo keeps naming the proxy), and the env verifies.
func TestFailoverWithLink(t *testing.T) {
	p := envtest.Provider(t)
	c := envtest.UpWith(t, p, env.Spec{Name: "slowfo", Standbys: 2, Fast: true,
		NetLinks: map[string]env.Link{"standby2": {Delay: 4 * time.Millisecond}}})
	ctl := envtest.Control(t, c)
	r, err := env.Failover(context.Background(), ctl, c, "standby1", nil)
	if err != nil {
		t.Fatalf("failover: %v (%+v)", err, r)
	}
	s2, err := c.Node("standby2")
	if err != nil {
		t.Fatal(err)
	}
	var conninfo, state string
	if err := connect(t, s2).QueryRow(context.Background(), `SHOW primary_conninfo`).Scan(&conninfo); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("port=%d ", s2.Link.ReplPort); !strings.Contains(conninfo, want) {
		t.Errorf("standby2's primary_conninfo does not name its link's proxy (%s)", want)
	}
	if err := connect(t, &c.Primary).QueryRow(context.Background(),
		`SELECT state FROM pg_stat_replication WHERE application_name = 'standby2'`).Scan(&state); err != nil || state != "streaming" {
		t.Fatalf("standby2 does not stream from %s (%q): %v", c.Primary.Name, state, err)
	}
	requireVerify(t, mustLoad(t, p, c.Name))
}
