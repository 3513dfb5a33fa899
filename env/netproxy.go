package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	ossignal "os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/pgbenchx/pgbenchx/input"
)

// NetProxy is an env's link proxy: a pgbenchx process of its own (it
// must outlive the command that built the env, since replication goes
// through it), serving toxiproxy's proxies, used as a library, for every
// standby with a Link. It is steered through a small API of its own on a
// Unix socket in the env's socket folder (0700: the env's owner only),
// not toxiproxy's HTTP API, which would let any local user open
// listeners anywhere.
type NetProxy struct {
	PID     int    `json:"pid"`
	Socket  string `json:"socket"`
	LogFile string `json:"log_file"`
	// Docker provider: the proxy is a container of the pgbenchx image on
	// the env's network (the standbys' replication must reach it), its
	// proxies listening on every address of the container.
	Container string `json:"container,omitempty"`
	Listen    string `json:"listen,omitempty"` // host the proxies listen on; empty: 127.0.0.1
}

// NetProxySocketEnv names the control socket inside a proxy container,
// where the state file's path (the host's) does not lead.
const NetProxySocketEnv = "PGBENCHX_NET_PROXY_SOCKET"

// NetProxyEnv, when set to an env's name in a pgbenchx process's
// environment, makes ServeNetIfAsked serve that env's links instead of
// running the command: how env up starts the proxy from its own binary.
const NetProxyEnv = "PGBENCHX_NET_PROXY"

// ServeNetIfAsked serves an env's links and exits when NetProxyEnv asks
// for it; otherwise it returns at once. main calls it first, and so must
// TestMain in packages whose tests build envs with links (a test binary
// is what os.Executable names there: envtest.Main does it).
func ServeNetIfAsked() {
	name := os.Getenv(NetProxyEnv)
	if name == "" {
		return
	}
	if err := serveNet(name); err != nil {
		fmt.Fprintf(os.Stderr, "pgbenchx net proxy for env %q: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveNet runs the proxies of env name until SIGTERM or SIGINT, or until
// its state file is gone or names another proxy (an env torn down by a
// process that could not stop it).
func serveNet(name string) error {
	store := Store{Dir: DefaultStateDir()}
	c, err := store.Load(name)
	if err != nil {
		return err
	}
	if c.NetProxy == nil {
		return errors.New("the env has no link proxy")
	}
	socket := c.NetProxy.Socket
	if s := os.Getenv(NetProxySocketEnv); s != "" {
		socket = s
	}
	host := c.NetProxy.Listen
	if host == "" {
		host = "127.0.0.1"
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	for _, n := range c.Standbys {
		if n.Link == nil {
			continue
		}
		for _, p := range []struct {
			kind   string
			listen int
		}{{"client", n.Link.ClientPort}, {"repl", n.Link.ReplPort}} {
			// Upstreams are set by route once the servers have ports.
			proxy := toxiproxy.NewProxy(server, n.Name+"-"+p.kind, net.JoinHostPort(host, strconv.Itoa(p.listen)), "127.0.0.1:0")
			if err := server.Collection.Add(proxy, true); err != nil {
				return fmt.Errorf("%s: %s proxy: %w", n.Name, p.kind, err)
			}
			for _, t := range toxics(*n.Link) {
				if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(t)); err != nil {
					return fmt.Errorf("%s: %s proxy: toxic %s: %w", n.Name, p.kind, t, err)
				}
			}
		}
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("POST /route", func(w http.ResponseWriter, r *http.Request) {
		reply(w, routeProxy(server, r.FormValue("proxy"), r.FormValue("upstream")))
	})
	mux.HandleFunc("POST /cut", func(w http.ResponseWriter, r *http.Request) {
		reply(w, cutProxy(server, r.FormValue("proxy"), r.FormValue("on") == "1"))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	ossignal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
			case <-tick.C:
				if cur, err := store.Load(name); err == nil && cur.NetProxy != nil && (cur.NetProxy.PID == 0 || cur.NetProxy.PID == os.Getpid()) {
					continue
				}
			}
			_ = hs.Close()
			return
		}
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	server.Collection.Clear()
	return os.Remove(socket)
}

func reply(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

// routeProxy points a proxy at upstream (127.0.0.1:port).
func routeProxy(server *toxiproxy.ApiServer, name, upstream string) error {
	p, err := server.Collection.Get(name)
	if err != nil {
		return err
	}
	if _, err := strconv.Atoi(upstream); err == nil {
		upstream = "127.0.0.1:" + upstream
	} else if _, _, err := net.SplitHostPort(upstream); err != nil {
		return fmt.Errorf("upstream %q: want a port or host:port", upstream)
	}
	return p.Update(&toxiproxy.Proxy{Name: name, Listen: p.Listen, Upstream: upstream, Enabled: true})
}

// cutProxy adds (on) or removes a proxy's partition toxics, both ways;
// doing what is already done is not an error.
func cutProxy(server *toxiproxy.ApiServer, name string, on bool) error {
	p, err := server.Collection.Get(name)
	if err != nil {
		return err
	}
	for _, stream := range []string{"downstream", "upstream"} {
		toxic := "partition_" + stream
		if on {
			_, err = p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(`{"name":%q,"type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, toxic, stream)))
			if errors.Is(err, toxiproxy.ErrToxicAlreadyExists) {
				err = nil
			}
		} else if err = p.Toxics.RemoveToxic(context.Background(), toxic); errors.Is(err, toxiproxy.ErrToxicNotFound) {
			err = nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// netReady says whether the env's link proxy answers.
func netReady(c *Cluster) bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.NetProxy.Socket)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://link-proxy/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// netCall asks the env's link proxy to do op with the values.
func netCall(c *Cluster, op string, values url.Values) error {
	if c.NetProxy == nil {
		return errors.New("the env has no link proxy")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.NetProxy.Socket)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.PostForm("http://link-proxy/"+op, values)
	if err != nil {
		return fmt.Errorf("link proxy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("link proxy: %s: %s", op, strings.TrimSpace(string(b)))
	}
	return nil
}

// toxics are a link's, as toxiproxy takes them: the round trip's delay
// split between the two directions, and the rate each way.
func toxics(l Link) []string {
	var out []string
	down, up := halves(l.Delay)
	jd, ju := halves(l.Jitter)
	for _, t := range []struct {
		stream  string
		ms, jit int64
	}{{"downstream", down, jd}, {"upstream", up, ju}} {
		if t.ms > 0 {
			out = append(out, fmt.Sprintf(`{"name":"delay_%s","type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`, t.stream, t.stream, t.ms, t.jit))
		}
		if l.RateKBps > 0 {
			out = append(out, fmt.Sprintf(`{"name":"rate_%s","type":"bandwidth","stream":%q,"toxicity":1,"attributes":{"rate":%d}}`, t.stream, t.stream, l.RateKBps))
		}
	}
	return out
}

// routeLink points a standby's link proxies at the standby's own port
// (its clients' proxy) and at its upstream's (its replication proxy):
// ports are known only once the servers started, after the proxy did.
func routeLink(c *Cluster, n *Node, upPort int) error {
	return routeLinkTo(c, n, strconv.Itoa(n.Port), strconv.Itoa(upPort))
}

// routeLinkTo points a standby's client proxy at self and its replication
// proxy at up, each a port (on 127.0.0.1) or host:port.
func routeLinkTo(c *Cluster, n *Node, self, up string) error {
	for _, r := range []struct{ kind, to string }{{"client", self}, {"repl", up}} {
		if err := netCall(c, "route", url.Values{"proxy": {n.Name + "-" + r.kind}, "upstream": {r.to}}); err != nil {
			return fmt.Errorf("%s: %s: %w", n.Name, r.kind, err)
		}
	}
	return nil
}

// upstreamPort is the port standby n's primary_conninfo names for
// upstream up: up's own, or for a standby behind a link its replication
// proxy's, the proxy pointed at up first (a failover moves it).
func upstreamPort(c *Cluster, n, up *Node) (int, error) {
	if n.Link == nil || c.NetProxy == nil {
		return up.Port, nil
	}
	if err := routeLink(c, n, up.Port); err != nil {
		return 0, err
	}
	return n.Link.ReplPort, nil
}

// Partition cuts standby's link both ways, in its clients' connections
// and its replication: toxiproxy's timeout toxic with no timeout, so
// nothing goes through (what is sent is dropped) and nothing is closed
// while it lasts, as in a network partition. Heal ends it, and with it
// the connections that were cut (toxiproxy closes them): clients and the
// standby's replication connect again. Either is a no-op when done.
func Partition(c *Cluster, standby string) error { return cut(c, standby, true) }

// Heal ends a Partition.
func Heal(c *Cluster, standby string) error { return cut(c, standby, false) }

func cut(c *Cluster, standby string, on bool) error {
	n, err := c.Node(standby)
	if err != nil {
		return err
	}
	if n.Link == nil || c.NetProxy == nil {
		return input.Bad("node", standby, "want a standby with a slow link (env up --net-delay %s=...): only its link can be cut", standby)
	}
	var done []string
	for _, kind := range []string{"client", "repl"} {
		proxy := n.Name + "-" + kind
		if err := netCall(c, "cut", url.Values{"proxy": {proxy}, "on": {map[bool]string{true: "1", false: "0"}[on]}}); err != nil {
			// Not half cut: undo what was done.
			for _, p := range done {
				_ = netCall(c, "cut", url.Values{"proxy": {p}, "on": {map[bool]string{true: "0", false: "1"}[on]}})
			}
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		done = append(done, proxy)
	}
	return nil
}

// planLinks gives the linked standbys their proxy ports and the env its
// proxy's socket, before anything starts.
func planLinks(c *Cluster, links map[string]Link) error {
	if len(links) == 0 {
		return nil
	}
	for i := range c.Standbys {
		n := &c.Standbys[i]
		l, ok := links[n.Name]
		if !ok {
			continue
		}
		var err error
		if l.ClientPort, err = freePort(); err != nil {
			return err
		}
		if l.ReplPort, err = freePort(); err != nil {
			return err
		}
		n.Link = &l
	}
	c.NetProxy = &NetProxy{Socket: filepath.Join(c.SocketDir, ".pgbx-link-proxy"), LogFile: filepath.Join(c.BaseDir, "log", "net-proxy.log")}
	return nil
}

// netProxyWait bounds the proxy's start.
const netProxyWait = 10 * time.Second

// startNetProxy starts the env's link proxy and waits until it answers.
// Its pid is saved as soon as it runs, so that a crash of this command
// leaves a record for the next up or down to stop it. The process has a
// session of its own, so Ctrl-C on the command that started it does not
// reach it; Down stops it.
func startNetProxy(ctx context.Context, c *Cluster, store Store) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.NetProxy.LogFile), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(c.NetProxy.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), NetProxyEnv+"="+c.Name, StateDirEnv+"="+store.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the link proxy: %w", err)
	}
	c.NetProxy.PID = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := store.Save(c); err != nil {
		stopNetProxy(c)
		return err
	}
	deadline := time.Now().Add(netProxyWait)
	for {
		if netReady(c) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the link proxy exited (%v): %s", err, lastLines(logSince(c.NetProxy.LogFile, 0), 3))
		case <-ctx.Done():
			stopNetProxy(c)
			return ctx.Err()
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			stopNetProxy(c)
			return fmt.Errorf("the link proxy did not answer within %s: %s", netProxyWait, lastLines(logSince(c.NetProxy.LogFile, 0), 3))
		}
	}
}

// stopNetProxy ends the env's link proxy, if it runs: SIGTERM, then
// SIGKILL after a second.
func stopNetProxy(c *Cluster) {
	if c.NetProxy == nil || c.NetProxy.Container != "" || !NetProxyRuns(c) {
		return // a container goes with the env's other containers
	}
	pid := c.NetProxy.PID
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 100 {
		if !NetProxyRuns(c) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// NetProxyRuns says whether the env's link proxy runs: the recorded pid
// is a process serving this env of this state folder (a reused pid
// belongs to someone else: its environment says whose). False for an env
// without one.
func NetProxyRuns(c *Cluster) bool {
	if c.NetProxy != nil && c.NetProxy.Container != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli, err := dockerClient(ctx)
		if err != nil {
			return false
		}
		defer cli.Close()
		st, err := containerState(ctx, cli, c.NetProxy.Container)
		return err == nil && st == NodeRunning
	}
	if c.NetProxy == nil || c.NetProxy.PID <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.NetProxy.PID))
	if err != nil {
		return false
	}
	name, dir := false, c.stateDir == ""
	for _, kv := range strings.Split(string(b), "\x00") {
		switch kv {
		case NetProxyEnv + "=" + c.Name:
			name = true
		case StateDirEnv + "=" + c.stateDir:
			dir = true
		}
	}
	return name && dir
}
