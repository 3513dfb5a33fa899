package env

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// The Patroni stack's HAProxy routes as Patroni's own docs show it: a
// write port whose servers are every member, each checked with /primary
// on its Patroni's REST port (200 on the leader only), and a read port
// balancing over the members that answer 200 to
// /replica?lag=patroniReadLag (running replicas, lagging less). It is
// self-contained here; env/proxy_haproxy.go builds HAProxy in front of
// ordinary envs.
//
// The checks send OPTIONS, not GET: the status is the same, but to a GET
// Patroni also writes a JSON body, and HAProxy closes the connection as
// soon as it has the status line; measured here, every such check made
// Patroni log a 20-line ConnectionResetError traceback (several a second
// per member). Patroni answers OPTIONS (and HEAD) with the status only.

const (
	patroniWriteProxy = "patroni_write"
	patroniReadProxy  = "patroni_read"
	// haproxyWait bounds HAProxy's start until its checks agree with
	// Patroni (measured here: ~0.3-1 s, two fast checks).
	haproxyWait = 30 * time.Second
)

// Check timing: a check a second; once a check fails, the next ones come
// every 200 ms and two failures in a row take a server out; one success
// brings it back (checked every 500 ms while down), so the write port
// follows a new leader within ~0.5 s of its promotion. Connections to a
// server taken out are cut (on-marked-down shutdown-sessions): a client
// must not stay on a demoted or lagging node.
func patroniHAProxyConfig(c *Cluster, readPort, writePort int, socket string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by pgbenchx env up --stack patroni
# No log target: in the foreground (-db) HAProxy prints its warnings to
# stderr (our log file), servers going UP and DOWN among them; a log
# target would print each of them twice, and a line per connection.
global
    maxconn 4096
    stats socket %s mode 600 level admin

defaults
    mode tcp
    retries 2
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check 1s
    default-server inter 1s fastinter 200ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
`, socket)
	for _, l := range []struct {
		name, uri, balance string
		port               int
	}{
		{patroniWriteProxy, "/primary", "first", writePort},
		{patroniReadProxy, "/replica?lag=" + patroniReadLag, "roundrobin", readPort},
	} {
		fmt.Fprintf(&b, "\nlisten %s\n    bind 127.0.0.1:%d\n    balance %s\n    option httpchk\n    http-check send meth OPTIONS uri %s\n    http-check expect status 200\n",
			l.name, l.port, l.balance, l.uri)
		for i, n := range c.Nodes() {
			fmt.Fprintf(&b, "    server %s 127.0.0.1:%d check port %d\n", n.Name, n.Port, c.Patroni.RESTPorts[patroniMemberIndex(c, n.Name, i)])
		}
	}
	return b.String()
}

// patroniMemberIndex is the index of member name in c.Patroni (members
// are in node order as up starts them; def if not found).
func patroniMemberIndex(c *Cluster, name string, def int) int {
	for i, m := range c.Patroni.Members {
		if m.Name == name {
			return i
		}
	}
	return def
}

func patroniHAProxySocket(c *Cluster) string {
	// In the env's socket folder: short enough for a Unix socket's path
	// whatever c.BaseDir is (newCluster sees to it), and 0700.
	return filepath.Join(c.SocketDir, ".pgbx-patroni-haproxy.sock")
}

// startPatroniHAProxy starts the stack's HAProxy on two free loopback
// ports, appends it to c.Proxies (saved at once) and waits until its
// checks agree with Patroni: on the write port the leader UP and the
// others DOWN, on the read port every standby UP and the leader DOWN.
// Ports are picked free and may be taken before HAProxy binds them: it
// then exits at once, and is tried once more on new ports.
func startPatroniHAProxy(ctx context.Context, c *Cluster, u osUser, save func() error) error {
	bin, err := stackBinary("haproxy")
	if err != nil {
		return err
	}
	dir := filepath.Join(c.BaseDir, "haproxy")
	if err := u.mkdir(dir); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	socket := patroniHAProxySocket(c)
	for attempt := 0; ; attempt++ {
		read, err := freePort()
		if err != nil {
			return fmt.Errorf("haproxy: free port: %w", err)
		}
		write, err := freePort()
		if err != nil {
			return fmt.Errorf("haproxy: free port: %w", err)
		}
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := writeOwned(u, cfg, []byte(patroniHAProxyConfig(c, read, write, socket))); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
		logFile := filepath.Join(c.BaseDir, "log", "haproxy-patroni.log")
		off := fileSize(logFile)
		// -db: in the foreground, our child (in its own session), no
		// master process: one pid to record and stop.
		p, exited, err := startStack(u, stackCmd{name: "haproxy", bin: bin, args: []string{"-db", "-f", cfg}, dir: dir, logFile: logFile})
		if err != nil {
			return err
		}
		px := &Proxy{Kind: ProxyHAProxy, For: StackPatroni, Port: read, WritePort: write, PID: p.PID, Dir: dir, LogFile: logFile}
		c.Proxies = append(c.Proxies, px)
		if err := save(); err != nil {
			return err
		}
		err = waitStack(ctx, p, exited, haproxyWait, "routing as Patroni says", func() bool {
			return patroniHAProxyAgrees(c, socket) == nil
		})
		if err == nil {
			return nil
		}
		tail := logSince(logFile, off)
		if attempt == 0 && strings.Contains(tail, "cannot bind socket") {
			c.Proxies = c.Proxies[:len(c.Proxies)-1]
			continue
		}
		if serr := patroniHAProxyAgrees(c, socket); serr != nil && !strings.Contains(err.Error(), "exited") {
			err = fmt.Errorf("%w (%v)", err, serr)
		}
		return err
	}
}

// patroniHAProxyAgrees reads HAProxy's servers' states (show stat on its
// stats socket) and says how they differ from what c's roles call for.
func patroniHAProxyAgrees(c *Cluster, socket string) error {
	st, err := haproxyStates(socket)
	if err != nil {
		return err
	}
	var diffs []string
	for _, n := range c.Nodes() {
		leader := n.Role == RolePrimary
		for _, want := range []struct {
			proxy string
			up    bool
		}{{patroniWriteProxy, leader}, {patroniReadProxy, !leader}} {
			w := map[bool]string{true: "UP", false: "DOWN"}[want.up]
			if got := st[want.proxy+"/"+n.Name]; got != w {
				diffs = append(diffs, fmt.Sprintf("%s/%s %q, want %s", want.proxy, n.Name, got, w))
			}
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("haproxy: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// haproxyStates maps "proxy/server" to the server's status (UP, DOWN,
// "UP 1/2" while going down, ...) from HAProxy's CSV statistics.
func haproxyStates(socket string) (map[string]string, error) {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("haproxy: show stat: %v", err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	px, sv, status := col["pxname"], col["svname"], col["status"]
	if status == 0 {
		return nil, errors.New("haproxy: show stat: no status column")
	}
	out := map[string]string{}
	for _, rec := range recs[1:] {
		if len(rec) > status {
			out[rec[px]+"/"+rec[sv]] = rec[status]
		}
	}
	return out, nil
}

// patroniProxy is the env's Patroni HAProxy, nil if it has none.
func patroniProxy(c *Cluster) *Proxy {
	for _, p := range c.Proxies {
		if p.For == StackPatroni && p.Kind == ProxyHAProxy {
			return p
		}
	}
	return nil
}
