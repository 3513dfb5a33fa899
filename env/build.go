package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// builder carries one `up` through its steps.
type builder struct {
	l    *Local
	c    *Cluster
	u    osUser
	spec Spec
	mu   sync.Mutex // guards c's nodes and the state file while standbys build in parallel
}

func (b *builder) save() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.l.Store.Save(b.c)
}

func (b *builder) build(ctx context.Context) error {
	if err := b.primary(ctx); err != nil {
		return err
	}
	// Star: every standby from the primary, all at once (basebackups
	// overlap well even on 2 cores). Cascade: standby1 first, then the
	// rest from it.
	var first, rest []*Node
	for i := range b.c.Standbys {
		n := &b.c.Standbys[i]
		if n.Upstream == "primary" {
			first = append(first, n)
		} else {
			rest = append(rest, n)
		}
	}
	for _, group := range [][]*Node{first, rest} {
		if err := b.standbys(ctx, group); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) standbys(ctx context.Context, group []*Node) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(group))
	var wg sync.WaitGroup
	for i, n := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = b.standby(ctx, n); errs[i] != nil {
				cancel() // one failure stops the others early
			}
		}()
	}
	wg.Wait()
	// Report the root cause, not the siblings we cancelled because of it.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// primary copies the template, writes the configuration, starts the server
// and creates the roles with passwords of this env.
func (b *builder) primary(ctx context.Context) error {
	c, n := b.c, &b.c.Primary
	var tmpl string
	err := b.l.timed("template", func() (err error) {
		tmpl, err = ensureTemplate(ctx, b.l.CacheDir, c.PgBin, c.ServerVersion, b.u)
		return err
	})
	if err != nil {
		return err
	}
	err = b.l.timed("primary data folder", func() error {
		if err := b.u.mkdir(n.DataDir); err != nil {
			return err
		}
		if err := copyTree(tmpl, n.DataDir, b.u); err != nil {
			return err
		}
		if !c.Fast {
			syncFS(n.DataDir)
		}
		return b.writePrimaryConfig()
	})
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	if err := b.l.timed("primary start", func() error { return startServer(ctx, c, b.u, n) }); err != nil {
		return err
	}
	if err := b.save(); err != nil {
		return err
	}
	return b.l.timed("primary roles", func() error { return b.createRoles(ctx) })
}

func (b *builder) writePrimaryConfig() error {
	c, n := b.c, &b.c.Primary
	senders := len(c.Standbys) + 10
	conf := []string{
		"", "# --- written by pgbenchx env up; node-specific settings are on the postgres command line ---",
		"wal_level = replica",
		fmt.Sprintf("max_wal_senders = %d", senders),
		fmt.Sprintf("max_replication_slots = %d", senders),
		"hot_standby = on",
		"max_slot_wal_keep_size = '8GB'", // a dead standby must not fill the disk
	}
	if c.Fast {
		conf = append(conf, "# --fast: not durable, for tests and CI only", "fsync = off")
	}
	for _, s := range c.Settings {
		conf = append(conf, fmt.Sprintf("%s = '%s'", s.Key, strings.ReplaceAll(s.Value, "'", "''")))
	}
	if err := appendFile(filepath.Join(n.DataDir, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	// TCP only from loopback and only with scram; the socket (in a 0700
	// folder) lets the owning and the invoking OS user in by peer identity.
	hba := `# written by pgbenchx
local   all          all                        peer map=pgbx
host    all          all          127.0.0.1/32  scram-sha-256
host    replication  replicator   127.0.0.1/32  scram-sha-256
`
	ident := "# written by pgbenchx\npgbx  " + c.OSUser + "  postgres\n"
	if me := currentUserName(); me != c.OSUser {
		ident += "pgbx  " + me + "  postgres\n"
	}
	if err := os.WriteFile(filepath.Join(n.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.DataDir, "pg_ident.conf"), []byte(ident), 0o600)
}

func (b *builder) createRoles(ctx context.Context) error {
	c := b.c
	conn, err := pgx.Connect(ctx, socketDSN(c, &c.Primary))
	if err != nil {
		return fmt.Errorf("primary: connect over socket: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	su, err := scramVerifier(c.Primary.Password)
	if err != nil {
		return err
	}
	repl, err := scramVerifier(c.ReplPassword)
	if err != nil {
		return err
	}
	// Verifiers are base64 and '$': safe inside a quoted literal. DDL takes
	// no bind parameters.
	_, err = conn.Exec(ctx, fmt.Sprintf(`ALTER ROLE postgres PASSWORD '%s'; CREATE ROLE %s WITH REPLICATION LOGIN PASSWORD '%s'`, su, c.ReplUser, repl))
	if err != nil {
		return fmt.Errorf("primary: create roles: %w", err)
	}
	return nil
}

// standby builds one standby from its upstream: a slot there, a
// basebackup through it, recovery settings, start, and a wait until the
// upstream sees it streaming.
func (b *builder) standby(ctx context.Context, n *Node) error {
	c := b.c
	b.mu.Lock()
	up, err := c.Node(n.Upstream)
	upPort := up.Port
	b.mu.Unlock()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, socketDSN(c, up))
	if err != nil {
		return fmt.Errorf("%s: connect to upstream %s: %w", n.Name, up.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, n.Slot); err != nil {
		return fmt.Errorf("%s: create slot %s on %s: %w", n.Name, n.Slot, up.Name, err)
	}
	err = b.l.timed(n.Name+" basebackup", func() error {
		args := []string{
			"-D", n.DataDir, "-X", "stream", "-S", n.Slot, "--checkpoint=fast",
			"-d", fmt.Sprintf("host=127.0.0.1 port=%d user=%s application_name=pgbenchx-basebackup sslmode=disable", upPort, c.ReplUser),
		}
		if c.Fast {
			args = append(args, "--no-sync")
		}
		if err := b.u.run(ctx, c.BaseDir, []string{"PGPASSWORD=" + c.ReplPassword}, filepath.Join(c.PgBin, "pg_basebackup"), args...); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		return b.writeStandbyConfig(n, upPort)
	})
	if err != nil {
		return err
	}
	err = b.l.timed(n.Name+" start", func() error {
		b.mu.Lock()
		node := *n
		b.mu.Unlock()
		if err := startServer(ctx, c, b.u, &node); err != nil {
			return err
		}
		b.mu.Lock()
		*n = node
		b.mu.Unlock()
		return b.save()
	})
	if err != nil {
		return err
	}
	return b.l.timed(n.Name+" streaming", func() error { return waitStreaming(ctx, conn, n.Name, time.Minute) })
}

func (b *builder) writeStandbyConfig(n *Node, upPort int) error {
	c := b.c
	auto := filepath.Join(n.DataDir, "postgresql.auto.conf")
	if err := appendFile(auto, fmt.Sprintf("# written by pgbenchx\nprimary_conninfo = '%s'\nprimary_slot_name = '%s'\n", standbyConninfo(c, n, upPort), n.Slot)); err != nil {
		return err
	}
	sig := filepath.Join(n.DataDir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	if err := b.u.chown(sig); err != nil {
		return err
	}
	return b.u.chown(auto)
}

// standbyConninfo is a standby's primary_conninfo for an upstream on this
// port; application_name tells standbys apart in pg_stat_replication.
func standbyConninfo(c *Cluster, n *Node, upPort int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s application_name=%s sslmode=disable", upPort, c.ReplUser, c.ReplPassword, n.Name)
}

// waitStreaming polls the upstream until the standby's walsender is in
// state streaming: pg_ctl's readiness comes earlier than that.
func waitStreaming(ctx context.Context, upstream *pgx.Conn, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := "absent"
	for {
		var state string
		err := upstream.QueryRow(ctx, `SELECT state FROM pg_stat_replication WHERE application_name = $1`, name).Scan(&state)
		switch {
		case err == nil && state == "streaming":
			return nil
		case err == nil:
			last = state
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%s: poll pg_stat_replication: %w", name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not streaming after %s (pg_stat_replication state: %s)", name, limit, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func currentUserName() string {
	if u, err := lookupCurrent(); err == nil {
		return u
	}
	return "root"
}
