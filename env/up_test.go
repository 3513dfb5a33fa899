package env_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

// TestUpEightStandbys: every standby of a copied template streams from its
// own slot, under its own name, with nothing of another node's in its
// configuration.
func TestUpEightStandbys(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "eight", Standbys: 8, Fast: true})
	requireVerify(t, c)
	ctx := context.Background()
	primary := connect(t, &c.Primary)
	if n := queryInt(t, primary, `SELECT count(DISTINCT application_name) FROM pg_stat_replication WHERE state = 'streaming'`); n != 8 {
		t.Errorf("%d distinct streaming standbys, want 8", n)
	}
	var names []string
	for i := range c.Standbys {
		names = append(names, c.Standbys[i].Slot)
	}
	if n := queryInt(t, primary, `SELECT count(*) FROM pg_replication_slots WHERE active AND slot_name = ANY($1)`, names); n != 8 {
		t.Errorf("%d active slots of %v, want 8", n, names)
	}
	for i := range c.Standbys {
		s := &c.Standbys[i]
		conn := connect(t, s)
		var slot, conninfo string
		if err := conn.QueryRow(ctx, `SELECT current_setting('primary_slot_name'), current_setting('primary_conninfo')`).Scan(&slot, &conninfo); err != nil {
			t.Fatal(err)
		}
		if slot != s.Name+"_slot" || !strings.Contains(conninfo, "application_name="+s.Name+" ") ||
			!strings.Contains(conninfo, "port="+strconv.Itoa(c.Primary.Port)+" ") || strings.Contains(conninfo, "password=") {
			t.Errorf("%s: primary_slot_name %q, primary_conninfo %q", s.Name, slot, conninfo)
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "standby.signal")); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Primary.DataDir, "standby.signal")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("primary has a standby.signal (%v)", err)
	}
}

// TestSocketDSNConnects connects through every node's Unix socket with the env's
// password, which the socket requires as TCP does.
func TestSocketDSNConnects(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "sock", Standbys: 1, Fast: true})
	ctx := context.Background()
	// Whoever connects must reach the socket: as root the folder belongs
	// to the servers' OS user (mode 0700), which root may enter.
	st, err := os.Stat(c.SocketDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Access(c.SocketDir, unix.X_OK); err != nil {
		t.Fatalf("socket folder %s (%v) not reachable by uid %d: %v", c.SocketDir, st.Mode(), os.Geteuid(), err)
	}
	for _, n := range c.Nodes() {
		dsn := n.SocketDSN()
		if !strings.Contains(dsn, url.QueryEscape(c.SocketDir)) || strings.Contains(n.RedactedSocketDSN(), n.Password) {
			t.Fatalf("%s: SocketDSN %q, redacted %q", n.Name, dsn, n.RedactedSocketDSN())
		}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("%s: connect through the socket: %v", n.Name, err)
		}
		var unixSocket bool
		var user string
		if err := conn.QueryRow(ctx, `SELECT inet_server_addr() IS NULL, current_user`).Scan(&unixSocket, &user); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		if !unixSocket || user != n.User {
			t.Errorf("%s: over a Unix socket %v, as %q", n.Name, unixSocket, user)
		}
		wrong := *n
		wrong.Password = "wrong"
		_, err = pgx.Connect(ctx, wrong.SocketDSN())
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Errorf("%s: socket with a wrong password: want SQLSTATE 28P01, got %v", n.Name, err)
		}
	}
	// The admin role has no password: over TCP it cannot log in at all.
	admin := c.Primary
	admin.User, admin.Password = "pgbenchx", ""
	cfg, err := pgx.ParseConfig(admin.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "anything"
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		conn.Close(ctx)
		t.Errorf("admin role logged in over TCP as %s", admin.User)
	}
}
