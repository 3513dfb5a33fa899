package env

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	ossignal "os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/rs/zerolog"
)

// NetProxy is an env's link proxy: a pgbenchx process of its own (it
// must outlive the command that built the env, since replication goes
// through it), serving toxiproxy's proxies for every standby with a Link
// and toxiproxy's HTTP API on API (127.0.0.1) for changes at run time.
type NetProxy struct {
	PID     int    `json:"pid"`
	API     string `json:"api"` // host:port
	LogFile string `json:"log_file"`
}

// NetProxyEnv, when set to an env's name in a pgbenchx process's
// environment, makes ServeNetIfAsked serve that env's links instead of
// running the command: how env up starts the proxy from its own binary.
const NetProxyEnv = "PGBENCHX_NET_PROXY"

// ServeNetIfAsked serves an env's links and exits when NetProxyEnv asks
// for it; otherwise it returns at once. main calls it first, and so must
// TestMain in packages whose tests build envs with links (a test binary
// is what os.Executable names there).
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

// serveNet runs the proxies of env name until SIGTERM or SIGINT.
func serveNet(name string) error {
	c, err := (Store{Dir: DefaultStateDir()}).Load(name)
	if err != nil {
		return err
	}
	if c.NetProxy == nil {
		return errors.New("the env has no link proxy")
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	for _, n := range c.Standbys {
		if n.Link == nil {
			continue
		}
		up, err := c.Node(n.Upstream)
		if err != nil {
			return err
		}
		for _, p := range []struct {
			kind   string
			listen int
			to     int
		}{{"client", n.Link.ClientPort, n.Port}, {"repl", n.Link.ReplPort, up.Port}} {
			proxy := toxiproxy.NewProxy(server, n.Name+"-"+p.kind, "127.0.0.1:"+strconv.Itoa(p.listen), "127.0.0.1:"+strconv.Itoa(p.to))
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
	sig := make(chan os.Signal, 1)
	ossignal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		_ = server.Shutdown()
	}()
	return server.Listen(c.NetProxy.API)
}

// toxics are a link's, as toxiproxy's API takes them: the round trip's
// delay split between the two directions, and the rate each way.
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
	cl := toxiclient.NewClient(c.NetProxy.API)
	for _, r := range []struct {
		kind string
		port int
	}{{"client", n.Port}, {"repl", upPort}} {
		p, err := cl.Proxy(n.Name + "-" + r.kind)
		if err != nil {
			return fmt.Errorf("%s: link proxy %s: %w", n.Name, r.kind, err)
		}
		p.Upstream = "127.0.0.1:" + strconv.Itoa(r.port)
		if err := p.Save(); err != nil {
			return fmt.Errorf("%s: link proxy %s: %w", n.Name, r.kind, err)
		}
	}
	return nil
}

// Partition cuts standby's link both ways (toxiproxy's timeout toxic
// with no timeout: data is held, connections stay open), in its clients'
// connections and its replication: a network partition. Heal ends it.
func Partition(c *Cluster, standby string) error { return cut(c, standby, true) }

// Heal ends a Partition: what was held goes through.
func Heal(c *Cluster, standby string) error { return cut(c, standby, false) }

func cut(c *Cluster, standby string, on bool) error {
	n, err := c.Node(standby)
	if err != nil {
		return err
	}
	if n.Link == nil || c.NetProxy == nil {
		return fmt.Errorf("%s has no slow link to cut (env up --net-delay %s=...)", standby, standby)
	}
	cl := toxiclient.NewClient(c.NetProxy.API)
	for _, kind := range []string{"client", "repl"} {
		p, err := cl.Proxy(n.Name + "-" + kind)
		if err != nil {
			return fmt.Errorf("%s: link proxy %s: %w", n.Name, kind, err)
		}
		for _, stream := range []string{"downstream", "upstream"} {
			name := "partition_" + stream
			if on {
				_, err = p.AddToxic(name, "timeout", stream, 1, toxiclient.Attributes{"timeout": 0})
			} else {
				err = p.RemoveToxic(name)
			}
			if err != nil {
				return fmt.Errorf("%s: link proxy %s: %w", n.Name, kind, err)
			}
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

// planLinks gives the linked standbys their proxy ports and the env its
// proxy's API address, before anything starts.
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
	api, err := freePort()
	if err != nil {
		return err
	}
	c.NetProxy = &NetProxy{API: "127.0.0.1:" + strconv.Itoa(api), LogFile: filepath.Join(c.BaseDir, "log", "net-proxy.log")}
	return nil
}

// netProxyWait bounds the proxy's start.
const netProxyWait = 10 * time.Second

// startNetProxy starts the env's link proxy (its state must be saved:
// the proxy reads it) and waits until its API answers. The process has a
// session of its own, so Ctrl-C on the command that started it does not
// reach it; Down stops it.
func startNetProxy(ctx context.Context, c *Cluster, stateDir string) error {
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
	cmd.Env = append(os.Environ(), NetProxyEnv+"="+c.Name, StateDirEnv+"="+stateDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the link proxy: %w", err)
	}
	c.NetProxy.PID = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(netProxyWait)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + c.NetProxy.API + "/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
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
			return fmt.Errorf("the link proxy's API at %s did not answer within %s: %s", c.NetProxy.API, netProxyWait, lastLines(logSince(c.NetProxy.LogFile, 0), 3))
		}
	}
}

// stopNetProxy ends the env's link proxy, if it runs: SIGTERM, then
// SIGKILL after a second.
func stopNetProxy(c *Cluster) {
	if c.NetProxy == nil || c.NetProxy.PID <= 0 {
		return
	}
	pid := c.NetProxy.PID
	if !netProxyRuns(c) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 100 {
		if !netProxyRuns(c) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// netProxyRuns says whether the recorded pid is still the env's proxy (a
// reused pid belongs to someone else: its environment says whose).
func netProxyRuns(c *Cluster) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.NetProxy.PID))
	if err != nil {
		return false
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv == NetProxyEnv+"="+c.Name {
			return true
		}
	}
	return false
}
