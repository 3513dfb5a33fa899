package env

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// HAProxy (Debian's haproxy, 2.6) in TCP mode: it balances connections,
// not statements, and knows nothing of roles or lag. Its read port
// balances over the standbys (roundrobin unless balance=...), with the
// primary too when read_primary=on; its write port leads to the primary.
// The roles are those of the env when it starts: after a failover its
// ports still lead where the old roles were (the Patroni stack's HAProxy
// follows Patroni's checks instead: patroni_haproxy.go).
//
// Health checks: option pgsql-check sends a startup packet and wants an
// authentication request back; an error (the server starting up or
// shutting down) or no answer (a frozen node) takes the server out after
// two failed checks a second apart, and cuts its connections. Before
// "BUG/MINOR: checks: update pgsql regex on auth packet" (2022, marked
// for backport to 2.2+) the check did not take scram's SASL request for
// an answer and marked every scram node down; Debian's 2.6.12 has the
// fix (its checks pass on the env's scram nodes). A hand-written
// tcp-check closes with a reset unless told "linger", and each reset
// logs "could not receive data from client: Connection reset by peer"
// in the node's log every second (seen here); pgsql-check lingers.
//
// Measured here: a stopped standby was out of the read port ~1.7 s after
// it stopped and back ~0.9 s after it ran again; 200 connections in a row
// went 100/100 to the two standbys (roundrobin).
//
// Options: balance, read_primary and stats (on: a stats page on a free
// loopback port, recorded as the stats_port option) are pgbenchx's; any
// other key=value becomes the line "key value" of its defaults section
// (haproxy:retries=3, haproxy:timeout=server 2h).

var haproxyImpl = proxyImpl{
	bin: "/usr/sbin/haproxy",
	// SIGTERM: a hard stop, at once. (SIGINT would do too, but a process
	// started from a non-interactive shell's background job inherits
	// SIGINT ignored, and HAProxy without master-worker keeps it so: seen
	// here, where pkill -INT left it running.)
	stop:    syscall.SIGTERM,
	prepare: prepareHAProxy,
	ready:   haproxyReady,
}

// haproxyKeys are the options pgbenchx reads itself.
var haproxyKeys = []string{"balance", "read_primary", "stats", "stats_port"}

const (
	haproxyConf    = "haproxy.cfg"
	haproxyRead    = "pgbx_read"
	haproxyWrite   = "pgbx_write"
	haproxyStatsPx = "pgbx_stats"
)

// prepareHAProxy writes haproxy.cfg on free ports.
func prepareHAProxy(c *Cluster, u osUser, p *Proxy) ([]string, error) {
	var err error
	if p.Port, err = proxyPort(p.Port); err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	if p.WritePort, err = proxyPort(p.WritePort); err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	if p.Options == nil {
		p.Options = map[string]string{}
	}
	delete(p.Options, "stats_port")
	if on := strings.ToLower(p.Options["stats"]); on == "on" || on == "true" || on == "1" || on == "yes" {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		p.Options["stats_port"] = fmt.Sprint(port)
	}
	conf := filepath.Join(p.Dir, haproxyConf)
	if err := writeProxyFile(u, conf, haproxyConfig(c, p)); err != nil {
		return nil, err
	}
	// -db: in the foreground, one process (no master-worker), our child:
	// its pid is the one to signal.
	return []string{"-db", "-f", conf}, nil
}

// haproxyStatsSocket is where pgbenchx reads the servers' states (show
// stat): in the env's socket folder (0700), a short path.
func haproxyStatsSocket(c *Cluster, p *Proxy) string {
	return filepath.Join(proxySocketDir(c, p), ".pgbx-haproxy.sock")
}

// haproxyConfig is haproxy.cfg for p's ports and options.
func haproxyConfig(c *Cluster, p *Proxy) string {
	balance := p.Options["balance"]
	if balance == "" {
		balance = "roundrobin"
	}
	user := c.Primary.User
	var b strings.Builder
	fmt.Fprintf(&b, `# written by pgbenchx env up --proxy haproxy
global
    # Two file descriptors a connection: 1000 fits the usual nofile limit
    # of a user who cannot raise it (HAProxy warns or trims maxconn when
    # it cannot), and far more clients than a run has.
    maxconn 1000
    # Alerts and health changes only (to its log, our stderr): a line per
    # connection would cost more than the routing under a benchmark.
    log stderr format raw local0 notice
    stats socket %s mode 600 level user

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 2s
    # Clients' pools may sit idle between the phases of a run.
    timeout client 24h
    timeout server 24h
    timeout check 2s
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
`, haproxyStatsSocket(c, p))
	for _, kv := range proxyOptionSet(p, haproxyKeys) {
		fmt.Fprintf(&b, "    %s %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "\nlisten %s\n    bind 127.0.0.1:%d\n    balance %s\n    option pgsql-check user %s\n", haproxyRead, p.Port, balance, user)
	for _, n := range c.Nodes() {
		if n.Role != RolePrimary || readPrimary(p) {
			host, port := nodeAddr(n)
			fmt.Fprintf(&b, "    server %s %s:%d check\n", n.Name, host, port)
		}
	}
	host, port := nodeAddr(&c.Primary)
	fmt.Fprintf(&b, "\nlisten %s\n    bind 127.0.0.1:%d\n    option pgsql-check user %s\n    server %s %s:%d check\n",
		haproxyWrite, p.WritePort, user, c.Primary.Name, host, port)
	if sp := p.Options["stats_port"]; sp != "" {
		fmt.Fprintf(&b, "\nlisten %s\n    mode http\n    bind 127.0.0.1:%s\n    stats enable\n    stats uri /\n    stats refresh 1s\n", haproxyStatsPx, sp)
	}
	return b.String()
}

// haproxyReady: a query through the read port and one through the write
// port succeed, and every server of a running node is UP (checked):
// until its checks pass a server may be skipped, and the first reads of
// a run would not spread as configured.
func haproxyReady(ctx context.Context, c *Cluster, p *Proxy) error {
	st, err := haproxyStates(haproxyStatsSocket(c, p))
	if err != nil {
		return fmt.Errorf("stats socket: %w", err)
	}
	alive := Alive(c)
	var down []string
	for _, n := range c.Nodes() {
		for _, px := range []string{haproxyRead, haproxyWrite} {
			s, listed := st[px+"/"+n.Name]
			if listed && s != "UP" && alive[n.Name] {
				down = append(down, fmt.Sprintf("%s/%s %s", px, n.Name, s))
			}
		}
	}
	if len(down) > 0 {
		sort.Strings(down)
		return fmt.Errorf("servers not up yet: %s", strings.Join(down, ", "))
	}
	for _, port := range []int{p.Port, p.WritePort} {
		q := *p
		q.Port = port
		if err := proxyQuery(ctx, q.DSN(&c.Primary, c.Primary.Password), port); err != nil {
			return err
		}
	}
	return nil
}
