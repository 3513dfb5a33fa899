package env

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgpool-II (Debian's pgpool2, 4.3) in streaming-replication mode: it
// sends writes to the primary and balances each read statement over the
// standbys by backend_weight, skipping a standby lagging more than
// delay_threshold (checked every sr_check_period).
//
// What it does with a statement that calls a function (measured here on
// 4.3.5, and read in its source, pool_select_walker.c):
//   - with read_only_function_list and write_function_list both empty
//     (its default), any function marked volatile makes the statement a
//     write: pgbenchx's reads call pg_last_wal_replay_lsn() (volatile),
//     so 100% of them went to the primary;
//   - with read_only_function_list set, every function NOT in it makes
//     the statement a write, aggregates included: SELECT count(*) FROM t
//     went 100% to the primary with the list holding the functions of
//     pgbenchx's reads, and so would a report read (count, sum, max) or
//     any custom query calling another function;
//   - with only write_function_list set, only the functions in it do: so
//     pgbenchx writes the functions that write (sequences) there and
//     leaves read_only_function_list empty. Reads calling
//     pg_last_wal_replay_lsn(), pg_wal_lsn_diff(), inet_server_port(),
//     current_setting() or count() then land on the standbys. A
//     read_only_function_list given as an option takes over (pgpool
//     reads it first and then ignores write_function_list).
//
// Besides, a statement reading a system catalog (pg_class, ...) goes to
// the primary whatever the lists say, and with allow_sql_comments off a
// SELECT that starts with a comment is not taken for a read.
//
// statement_level_load_balance picks a node per statement, but a named
// prepared statement goes where its Parse went: every Bind/Execute of it
// follows (measured here, 4 clients x 2 reads prepared once, as pgx's
// statement cache and pgbenchx's readConn do: each statement stuck to
// one node, the standbys' shares 100/0, 75/25 or 50/50 from run to run).
// Unnamed statements (pgx QueryExecModeExec: Parse/Bind/Execute each
// time) and the simple protocol were balanced per statement: 47-53%.
//
// Measured here: pgpool serves ~0.15-0.3 s after its start; SHOW
// POOL_NODES' select_cnt per node matched the nodes' own scan counts
// exactly over 2400 reads; a stopped standby was detached after ~4 s and
// attached again ~2 s after it streamed again.
//
// Authentication: the nodes take scram-sha-256 only. With enable_pool_hba
// off, pgpool asks the client for the method the backend asked it for
// (scram) and needs the user's password to do scram with both sides:
// pool_passwd holds it in clear, TEXT-prefixed ("user:TEXTsecret"; pgpool
// also takes AES with a key file, which would sit beside it, no safer),
// mode 0600, owned by the servers' OS user. The health and replication
// checks log in as the nodes' user with their password left empty, which
// makes pgpool take it from pool_passwd: it appears in no configuration
// file, argument or log.

var pgpoolImpl = proxyImpl{
	bin:     "/usr/sbin/pgpool",
	stop:    syscall.SIGINT,
	prepare: preparePgpool,
	ready:   pgpoolReady,
}

// pgpoolKeys are the options pgbenchx reads itself: not written into
// pgpool.conf.
var pgpoolKeys = []string{"read_primary"}

const (
	pgpoolConf   = "pgpool.conf"
	pgpoolPCP    = "pcp.conf"
	pgpoolPasswd = "pool_passwd"
)

// preparePgpool writes pgpool.conf, pool_passwd and an empty pcp.conf
// (no pcp user: pgbenchx drives pgpool by signals and SQL only) on free
// ports.
func preparePgpool(c *Cluster, u osUser, p *Proxy) ([]string, error) {
	var err error
	if p.Port, err = proxyPort(p.Port); err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	p.WritePort = 0
	// pcp listens on its Unix socket only (pcp_listen_addresses ''); the
	// port number names the socket.
	pcpPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	conf := filepath.Join(p.Dir, pgpoolConf)
	if err := writeProxyFile(u, conf, pgpoolConfig(c, p, pcpPort)); err != nil {
		return nil, err
	}
	if err := writeProxyFile(u, filepath.Join(p.Dir, pgpoolPasswd), pgpoolPasswords(c)); err != nil {
		return nil, err
	}
	pcp := filepath.Join(p.Dir, pgpoolPCP)
	if err := writeProxyFile(u, pcp, "# no pcp users: written by pgbenchx\n"); err != nil {
		return nil, err
	}
	// -n: in the foreground, our child. -D: forget the node states of a
	// previous run (pgpool_status): a node detached then would stay
	// detached.
	return []string{"-n", "-D", "-f", conf, "-F", pcp}, nil
}

// pgpoolConfig is pgpool.conf: pgbenchx's settings, then p.Options
// verbatim (key = 'value'), so that an option overrides a setting (pgpool
// takes the last line for a key).
func pgpoolConfig(c *Cluster, p *Proxy, pcpPort int) string {
	var b strings.Builder
	set := func(k string, v any) {
		if s, ok := v.(string); ok {
			v = "'" + s + "'"
		}
		fmt.Fprintf(&b, "%s = %v\n", k, v)
	}
	comment := func(s string) { fmt.Fprintf(&b, "\n# %s\n", s) }
	sockets := proxySocketDir(c, p)
	user, db := c.Primary.User, c.Primary.Database
	b.WriteString("# written by pgbenchx env up --proxy pgpool; options last\n")
	set("backend_clustering_mode", "streaming_replication")
	set("listen_addresses", "127.0.0.1")
	set("port", p.Port)
	set("socket_dir", sockets)
	set("pcp_listen_addresses", "")
	set("pcp_port", pcpPort)
	set("pcp_socket_dir", sockets)
	set("wd_ipc_socket_dir", sockets)
	set("pid_file_name", filepath.Join(p.Dir, "pgpool.pid"))
	set("logdir", p.Dir) // its pgpool_status file
	set("memqcache_oiddir", filepath.Join(p.Dir, "oiddir"))
	set("log_destination", "stderr")
	set("pool_passwd", filepath.Join(p.Dir, pgpoolPasswd))
	set("enable_pool_hba", false)
	set("allow_clear_text_frontend_auth", false)

	comment("Backends: the nodes, primary first. No reads on the primary unless read_primary=on.")
	for i, n := range c.Nodes() {
		host, port := nodeAddr(n)
		weight := 1
		if n.Role == RolePrimary && !readPrimary(p) {
			weight = 0
		}
		set(fmt.Sprintf("backend_hostname%d", i), host)
		set(fmt.Sprintf("backend_port%d", i), port)
		set(fmt.Sprintf("backend_weight%d", i), weight)
		set(fmt.Sprintf("backend_flag%d", i), "ALLOW_TO_FAILOVER")
		// What the standby calls itself in pg_stat_replication: how
		// pgpool finds it there (replication_state, auto_failback).
		set(fmt.Sprintf("backend_application_name%d", i), n.Name)
	}

	comment("Each read statement balanced on its own, not the session's first node.")
	set("load_balance_mode", true)
	set("statement_level_load_balance", true)
	// See the top of this file: only these functions make a write.
	set("write_function_list", "nextval,setval,currval,lastval")
	set("read_only_function_list", "")
	set("allow_sql_comments", true)

	comment("Lag: checked every second as the nodes' (superuser) user; reads skip a standby behind by more than delay_threshold.")
	set("sr_check_period", 1)
	set("sr_check_user", user)
	set("sr_check_password", "") // from pool_passwd
	set("sr_check_database", db)
	set("delay_threshold", "1MB")

	// Health: a check a second; a node is detached only after 3 failed
	// retries a second apart (~4-5 s), so a restart (env restart, ~0.3 s)
	// never detaches it. An error on a client's connection does not
	// detach it either (failover_on_backend_error off), nor does a
	// session seeing the node shut down (failover_on_backend_shutdown
	// off: 4.3.5 defaults to on, whatever its sample pgpool.conf says,
	// and then detached a standby the instant `env stop` shut it down,
	// and would detach a restarting primary for good): the session gets
	// the error and ends, and the health check decides. A standby that
	// was detached (stopped, frozen) is attached again once it streams
	// (auto_failback, seen through sr_check): without it, it would stay
	// out until pgpool restarts. A detach cuts the sessions that had a
	// connection to the node (pgpool restarts their children); a
	// failback cuts none. There is no failover_command: after a detached
	// primary pgpool looks for a node out of recovery (one that pgbenchx
	// promoted) for search_primary_node_timeout; a detached primary
	// itself never comes back (auto_failback is for standbys).
	comment("Health and failover: no failover_command; detached standbys come back once streaming.")
	set("health_check_period", 1)
	set("health_check_timeout", 5)
	set("health_check_user", user)
	set("health_check_password", "") // from pool_passwd
	set("health_check_database", db)
	set("health_check_max_retries", 3)
	set("health_check_retry_delay", 1)
	set("connect_timeout", 2000)
	set("failover_on_backend_error", false)
	set("failover_on_backend_shutdown", false)
	set("search_primary_node_timeout", 10)
	set("auto_failback", true)
	set("auto_failback_interval", 1)
	set("use_watchdog", false)

	// num_init_children is how many clients it serves at once (one child
	// each); a client beyond waits in the listen queue. 32 fits 16+
	// clients and the probes. max_pool 1: each child keeps one connection
	// per backend, 32 per node at most (max_connections is 100).
	comment("Pooling: modest.")
	set("num_init_children", pgpoolDefaultChildren)
	set("max_pool", 1)
	set("reserved_connections", 0)

	if opts := proxyOptionSet(p, pgpoolKeys); len(opts) > 0 {
		comment("Options (env up --proxy pgpool:k=v,...)")
		for _, kv := range opts {
			set(kv[0], kv[1])
		}
	}
	return b.String()
}

// pgpoolPasswords is pool_passwd: each node user's password, in clear.
func pgpoolPasswords(c *Cluster) string {
	pw := map[string]string{}
	for _, n := range c.Nodes() {
		if n.Password != "" {
			pw[n.User] = n.Password
		}
	}
	users := make([]string, 0, len(pw))
	for u := range pw {
		users = append(users, u)
	}
	sort.Strings(users)
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s:TEXT%s\n", u, pw[u])
	}
	return b.String()
}

// pgpoolReady: a query through pgpool, as the nodes' user, succeeds, and
// pgpool knows every option given: it ignores a line of pgpool.conf it
// does not know (seen on 4.3.5), so a misspelt option would go unnoticed,
// but PGPOOL SHOW says "config variable ... not found".
func pgpoolReady(ctx context.Context, c *Cluster, p *Proxy) error {
	conn, err := pgx.Connect(ctx, p.DSN(&c.Primary, c.Primary.Password))
	if err != nil {
		return fmt.Errorf("port %d: %w", p.Port, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("port %d: %w", p.Port, err)
	}
	for _, kv := range proxyOptionSet(p, pgpoolKeys) {
		// pgpool answers its own commands in the simple protocol only.
		_, err := conn.Exec(ctx, "PGPOOL SHOW "+kv[0], pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && strings.Contains(pe.Message, "not found") {
			return permanentError{fmt.Errorf("option %s=%s: pgpool has no such setting", kv[0], kv[1])}
		}
		if err != nil {
			return fmt.Errorf("PGPOOL SHOW %s: %w", kv[0], err)
		}
	}
	return nil
}

// proxyQuery connects through a proxy's port and runs a query. The error
// names the port, never the DSN (it holds the password).
func proxyQuery(ctx context.Context, dsn string, port int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("port %d: %w", port, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("port %d: %w", port, err)
	}
	return nil
}

// pgpoolDefaultChildren is pgpool's num_init_children unless an option
// sets it: how many clients it serves at once.
const pgpoolDefaultChildren = 32
