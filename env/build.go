package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// builder carries one `up` through its steps.
type builder struct {
	l  *Local
	c  *Cluster
	u  osUser
	mu sync.Mutex // guards c's nodes and the state file while nodes start in parallel
	// feeding[name] is closed once that node can feed its standbys,
	// streaming[name] once that standby streams from its upstream.
	feeding, streaming map[string]chan struct{}
}

func (b *builder) save() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.l.Store.Save(b.c)
}

// build makes every node a copy of the cached template. The template was
// shut down cleanly, so a primary starts from its copy as from any data
// folder, and a standby started from its copy (with standby.signal)
// replays its upstream's WAL from the template's last checkpoint on: the
// upstream still has that WAL, in the first segment it writes to, held by
// the standby's slot made as soon as the upstream runs. So there is no
// basebackup and no checkpoint: a node costs a copy and a start, and all
// nodes are copied and started at once. A standby starts with nowhere to
// stream from and is given its upstream (a reload) once the upstream can
// feed it: it runs, has the env's roles and has the standby's slot.
func (b *builder) build(ctx context.Context) error {
	c := b.c
	var img *image
	err := b.l.timed("template", func() (err error) {
		img, err = loadTemplate(ctx, b.l.CacheDir, c.PgBin, c.ServerVersion, b.u)
		return err
	})
	if err != nil {
		return err
	}
	defer img.close()
	if len(c.Standbys) > 0 {
		if err := writePassfile(c, b.u); err != nil {
			return err
		}
	}
	nodes := c.Nodes()
	b.feeding, b.streaming = map[string]chan struct{}{}, map[string]chan struct{}{}
	for _, n := range nodes {
		b.feeding[n.Name], b.streaming[n.Name] = make(chan struct{}), make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var laidOut sync.WaitGroup
	laidOut.Add(len(nodes))
	synced := b.syncData(ctx, &laidOut)
	err = each(ctx, nodes, func(ctx context.Context, n *Node) error {
		return b.node(ctx, img, n, sync.OnceFunc(laidOut.Done))
	})
	if err != nil {
		cancel() // no sync for a failed env
	}
	return errors.Join(err, synced())
}

// syncData flushes the env's file system once every folder is written,
// in the background while the servers start: all folders at once (one
// syncfs) rather than an fsync per file. Servers sync what they write
// themselves; what matters is that the copies are on disk before `up`
// returns. A --fast env skips it.
func (b *builder) syncData(ctx context.Context, laidOut *sync.WaitGroup) (wait func() error) {
	if b.c.Fast {
		return func() error { return nil }
	}
	done := goWait(func() error {
		laidOut.Wait()
		if ctx.Err() != nil {
			return nil
		}
		t0 := time.Now()
		if err := syncFS(b.c.BaseDir); err != nil {
			return fmt.Errorf("sync data folders: %w", err)
		}
		b.l.step("synced data folders", time.Since(t0))
		return nil
	})
	return done
}

// goWait runs fn in a goroutine; the function returned waits for its error.
func goWait(fn func() error) func() error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return func() error { return <-done }
}

// each runs fn for every node at once. The first failure cancels the
// others; the error is the root cause, not the cancellations it caused.
func each(ctx context.Context, nodes []*Node, fn func(context.Context, *Node) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = fn(ctx, n); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// node builds one node: its folder, its start, and then the primary's
// roles, or a standby's replication once its upstream can feed it.
// laidOut is called once the folder is written (or failed).
func (b *builder) node(ctx context.Context, img *image, n *Node, laidOut func()) error {
	defer laidOut()
	err := b.l.timed(n.Name+" data folder", func() error { return b.layout(ctx, img, n) })
	laidOut()
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	node := b.snapshot(n)
	// A standby's apply delay waits until it has the env's roles: delayed,
	// their commit would keep every client out of it for that long.
	node.ApplyDelay = 0
	err = b.l.timed(n.Name+" start", func() error {
		if err := startServer(ctx, b.c, b.u, &node); err != nil {
			return err
		}
		b.mu.Lock()
		n.Port, n.PID = node.Port, node.PID
		b.mu.Unlock()
		return b.save()
	})
	if err != nil {
		return err
	}
	if n.Role == RolePrimary {
		return withAdmin(ctx, b.c, &node, func(conn *pgx.Conn) error {
			err := b.l.timed(n.Name+" roles", func() error {
				if err := b.createRoles(ctx, conn); err != nil {
					return err
				}
				return createSlots(ctx, conn, n.Name, b.fedBy(n.Name))
			})
			if err != nil {
				return err
			}
			close(b.feeding[n.Name])
			return b.watch(ctx, conn, n.Name)
		})
	}
	// Connected now, the standby's first backend builds its caches while
	// the upstream gets ready.
	return withAdmin(ctx, b.c, &node, func(conn *pgx.Conn) error { return b.standby(ctx, n, node, conn) })
}

// standby gives a started standby its upstream once that can feed it,
// waits until it streams and has the env's roles, then feeds its own
// standbys (cascade) and takes its apply delay. conn is the standby's.
func (b *builder) standby(ctx context.Context, n *Node, node Node, conn *pgx.Conn) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.feeding[n.Upstream]:
	}
	upstream, err := b.find(n.Upstream)
	if err != nil {
		return err
	}
	err = b.l.timed(n.Name+" streaming", func() error {
		port, err := upstreamPort(b.c, &node, &upstream)
		if err != nil {
			return err
		}
		if err := writeUpstream(b.c, &node, port); err != nil {
			return fmt.Errorf("%s: write primary_conninfo: %w", n.Name, err)
		}
		if err := syscall.Kill(node.PID, syscall.SIGHUP); err != nil {
			return fmt.Errorf("%s: reload: %w", n.Name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.streaming[n.Name]: // see watch
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = b.l.timed(n.Name+" roles", func() error {
		if err := waitRoles(ctx, conn, b.c, n.Name, time.Minute); err != nil {
			return err
		}
		return createSlots(ctx, conn, n.Name, b.fedBy(n.Name))
	})
	if err != nil {
		return err
	}
	close(b.feeding[n.Name])
	if n.ApplyDelay > 0 {
		err := b.l.timed(n.Name+" apply delay", func() error { return setApplyDelay(ctx, conn, n.Name, n.ApplyDelay) })
		if err != nil {
			return err
		}
	}
	return b.watch(ctx, conn, n.Name)
}

// watch polls a node's pg_stat_replication until every standby it feeds
// is there in state streaming (pg_ctl's readiness, and even a connected
// walreceiver, come earlier), closing each one's b.streaming channel as it
// gets there. One poller per upstream, however many standbys it feeds.
func (b *builder) watch(ctx context.Context, conn *pgx.Conn, upstream string) error {
	waiting := map[string]string{} // standby -> its last state
	for _, s := range b.fedBy(upstream) {
		waiting[s.Name] = "absent"
	}
	last := func() string {
		var parts []string
		for name, state := range waiting {
			parts = append(parts, name+" "+state)
		}
		sort.Strings(parts)
		return "pg_stat_replication on " + upstream + ": " + strings.Join(parts, ", ")
	}
	return poll(ctx, time.Minute, "standbys streaming", last, func() (bool, error) {
		if len(waiting) == 0 {
			return true, nil
		}
		rows, err := conn.Query(ctx, `SELECT application_name, state FROM pg_stat_replication`)
		if err != nil {
			return false, fmt.Errorf("%s: poll pg_stat_replication: %w", upstream, err)
		}
		var name, state string
		_, err = pgx.ForEachRow(rows, []any{&name, &state}, func() error {
			if _, ok := waiting[name]; !ok {
				return nil
			}
			waiting[name] = state
			if state == "streaming" {
				delete(waiting, name)
				close(b.streaming[name])
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("%s: poll pg_stat_replication: %w", upstream, err)
		}
		return len(waiting) == 0, nil
	})
}

// snapshot copies a node under the lock.
func (b *builder) snapshot(n *Node) Node {
	b.mu.Lock()
	defer b.mu.Unlock()
	return *n
}

// find copies a node found by name under the lock.
func (b *builder) find(name string) (Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.c.Node(name)
	if err != nil {
		return Node{}, err
	}
	return *n, nil
}

// layout writes a node's data folder: the template with the env's
// configuration, the same on every node as a basebackup would have it; a
// standby's also has standby.signal (but nowhere to stream from yet).
func (b *builder) layout(ctx context.Context, img *image, n *Node) error {
	if err := b.u.mkdir(n.DataDir); err != nil {
		return err
	}
	if err := img.write(ctx, n.DataDir, b.u, b.c.Fast); err != nil {
		return err
	}
	if err := b.writeConfig(n.DataDir); err != nil {
		return err
	}
	if n.Role != RoleStandby {
		return nil
	}
	sig := filepath.Join(n.DataDir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	if err := b.u.chown(sig); err != nil {
		return err
	}
	// The server's first lines warn that it has nowhere to stream from.
	return logNote(n.LogFile, "pgbenchx env up: "+n.Name+" starts with no primary_conninfo; it is given one (a reload) once "+n.Upstream+" can feed it")
}

// logNote adds a line of ours to a node's server log.
func logNote(path, note string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(time.Now().UTC().Format("2006-01-02 15:04:05.000 MST") + " " + note + "\n")
	return errors.Join(err, f.Close())
}

func (b *builder) writeConfig(dir string) error {
	c := b.c
	senders := len(c.Standbys) + 10
	conf := []string{
		"", "# --- written by pgbenchx env up; node-specific settings are on the postgres command line ---",
		"wal_level = replica",
		fmt.Sprintf("max_wal_senders = %d", senders),
		fmt.Sprintf("max_replication_slots = %d", senders),
		"hot_standby = on",
		// pg_rewind needs it: a standby that was ahead of the one promoted
		// can then be rewound instead of rebuilt.
		"wal_log_hints = on",
		"max_slot_wal_keep_size = '8GB'", // a dead standby must not fill the disk
	}
	if c.Fast {
		conf = append(conf, "# --fast: not durable, for tests and CI only", "fsync = off")
	}
	for _, s := range c.Settings {
		conf = append(conf, fmt.Sprintf("%s = '%s'", s.Key, strings.ReplaceAll(s.Value, "'", "''")))
	}
	if err := appendFile(filepath.Join(dir, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	// TCP only from loopback; TCP and the socket take scram passwords. The
	// admin role (no password) comes in over the socket only, for the
	// servers' OS user and the one who built the env, by peer identity.
	hba := `# written by pgbenchx
local   all          ` + adminUser + `                   peer map=pgbx
local   all          all                        scram-sha-256
host    all          all          127.0.0.1/32  scram-sha-256
host    replication  ` + c.ReplUser + `   127.0.0.1/32  scram-sha-256
`
	ident := "# written by pgbenchx\npgbx  " + c.OSUser + "  " + adminUser + "\n"
	if me := currentUserName(); me != c.OSUser {
		ident += "pgbx  " + me + "  " + adminUser + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "pg_ident.conf"), []byte(ident), 0o600)
}

// createRoles gives postgres the env's password and makes the
// replication role. Standbys get both by replaying this transaction.
func (b *builder) createRoles(ctx context.Context, conn *pgx.Conn) error {
	c := b.c
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

// fedBy lists the standbys that stream from a node. Only their names and
// slots may be read without b.mu: no goroutine changes those.
func (b *builder) fedBy(upstream string) []*Node {
	var out []*Node
	for i := range b.c.Standbys {
		if s := &b.c.Standbys[i]; s.Upstream == upstream {
			out = append(out, s)
		}
	}
	return out
}

// createSlots makes the slots of these standbys on the node they stream
// from. Physical slots that reserve WAL at once: from the node's last
// checkpoint (the template's, on a node that just started), where its
// standbys begin to replay.
func createSlots(ctx context.Context, conn *pgx.Conn, on string, standbys []*Node) error {
	if len(standbys) == 0 {
		return nil
	}
	var slots []string
	for _, s := range standbys {
		slots = append(slots, s.Slot)
	}
	_, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot(s, true) FROM unnest($1::text[]) s`, slots)
	if err != nil {
		return fmt.Errorf("create slots %s on %s: %w", strings.Join(slots, ", "), on, err)
	}
	return nil
}

// withAdmin runs fn on a connection to a node as the admin user.
func withAdmin(ctx context.Context, c *Cluster, n *Node, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, socketDSN(c, n))
	if err != nil {
		return fmt.Errorf("%s: connect over socket: %w", n.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// standbyConninfo is a standby's primary_conninfo for an upstream on this
// port; application_name tells standbys apart in pg_stat_replication. The
// password is in the env's password file: a standby logs its new
// primary_conninfo when it reloads. (Envs built before the file have the
// password in the conninfo.)
func standbyConninfo(c *Cluster, n *Node, upPort int) string {
	auth := "password=" + c.ReplPassword
	if pf := passfile(c); fileExists(pf) {
		auth = "passfile=" + pf
	}
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s %s application_name=%s sslmode=disable", upPort, c.ReplUser, auth, n.Name)
}

// passfile is the env's libpq password file, for its standbys' replication
// connections. Its path has no spaces or quotes (our own folder names).
func passfile(c *Cluster) string { return filepath.Join(c.BaseDir, "pgpass") }

func writePassfile(c *Cluster, u osUser) error {
	pf := passfile(c)
	if err := os.WriteFile(pf, []byte("*:*:*:"+c.ReplUser+":"+c.ReplPassword+"\n"), 0o600); err != nil {
		return err
	}
	return u.chown(pf)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// poll runs check every upPollEvery until it reports done, fails, or limit
// passes; what is the condition's name in the timeout error, and last()
// (if set) says where things stood.
func poll(ctx context.Context, limit time.Duration, what string, last func() string, check func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not after %s", what, limit)
			if last != nil {
				msg += " (" + last() + ")"
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(upPollEvery):
		}
	}
}

// waitRoles polls a standby until it has replayed the env's roles, so
// that clients can log in as soon as `up` returns.
func waitRoles(ctx context.Context, conn *pgx.Conn, c *Cluster, name string, limit time.Duration) error {
	return poll(ctx, limit, name+" has the env's roles", nil, func() (bool, error) {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT count(*) = 2 FROM pg_authid WHERE rolpassword IS NOT NULL AND rolname IN ('postgres', $1)`, c.ReplUser).Scan(&ok)
		if err != nil {
			return false, fmt.Errorf("%s: poll roles: %w", name, err)
		}
		return ok, nil
	})
}

// setApplyDelay sets a running standby's recovery_min_apply_delay with
// ALTER SYSTEM (a reload applies it: it is also on the command line of the
// standby's later starts) and waits until the server uses it.
func setApplyDelay(ctx context.Context, conn *pgx.Conn, name string, d time.Duration) error {
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET recovery_min_apply_delay = '`+ms+`ms'`); err != nil {
		return fmt.Errorf("%s: set recovery_min_apply_delay: %w", name, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return fmt.Errorf("%s: reload: %w", name, err)
	}
	// The postmaster reloads first and then signals its children: once
	// this backend has the new value, every new one does.
	return poll(ctx, 10*time.Second, name+" uses recovery_min_apply_delay = "+ms+"ms", nil, func() (bool, error) {
		var v string
		err := conn.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'`).Scan(&v)
		return v == ms, err
	})
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
