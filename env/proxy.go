package env

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A proxy (env up --proxy pgpool|haproxy) runs in front of an env's nodes
// as a process the env owns, started the way startNetProxy starts the
// link proxy: a session of its own (a terminal's Ctrl-C does not reach
// it, and stopProxy can end everything it forked by the session's id), as
// the servers' OS user, its output in a log beside the nodes' logs, its
// configuration and run files in a folder of the env. It listens on
// 127.0.0.1 only, on free ports picked when it starts.

const (
	// proxyWait bounds a proxy's start, until queries through it succeed
	// (measured here: pgpool 0.15-0.3 s, HAProxy 0.7-0.9 s, until the
	// first health checks have passed).
	proxyWait = 30 * time.Second
	// proxyGrace is how long a proxy has to exit after its stop signal
	// before every process of its session is killed.
	proxyGrace = 5 * time.Second
)

// proxyImpl is what differs from one kind of proxy to another.
type proxyImpl struct {
	bin string // Debian's path to its program
	// stop asks it to exit: pgpool takes SIGINT (fast shutdown: SIGTERM
	// is its smart shutdown, which waits for every client to leave),
	// HAProxy SIGTERM (hard stop).
	stop syscall.Signal
	// prepare picks its ports and writes its files under p.Dir; it
	// returns the program's arguments.
	prepare func(c *Cluster, u osUser, p *Proxy) ([]string, error)
	// ready is nil once the proxy serves as it should.
	ready func(ctx context.Context, c *Cluster, p *Proxy) error
}

func proxyImplOf(kind string) (*proxyImpl, error) {
	switch kind {
	case ProxyPgpool:
		return &pgpoolImpl, nil
	case ProxyHAProxy:
		return &haproxyImpl, nil
	}
	return nil, fmt.Errorf("proxy %q: want %s or %s", kind, ProxyPgpool, ProxyHAProxy)
}

// proxyBinary finds a proxy's program where Debian installs it, else on
// PATH (root's PATH may lack /usr/sbin).
func proxyBinary(kind string, impl *proxyImpl) (string, error) {
	if st, err := os.Stat(impl.bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return impl.bin, nil
	}
	if p, err := exec.LookPath(filepath.Base(impl.bin)); err == nil {
		return p, nil
	}
	pkg := map[string]string{ProxyPgpool: "pgpool2", ProxyHAProxy: "haproxy"}[kind]
	return "", fmt.Errorf("%s: %s is not installed: make deps installs it (scripts/ensure-stacks.sh; apt-get install %s)", kind, impl.bin, pkg)
}

// startProxy starts p (p.Kind pgpool or haproxy, p.Options as given by
// --proxy KIND:k=v,...) in front of c's nodes: its files under p.Dir (a
// folder of c.BaseDir), its log p.LogFile beside the nodes' logs, free
// loopback ports, its process in a session of its own as the servers' OS
// user, p.PID recorded as soon as it runs (the caller saves the state).
// Started again, it keeps its ports when they are free.
// It returns once queries through p.Port (and HAProxy's WritePort)
// succeed, within proxyWait; errors name the proxy and quote the last
// lines of its log. When ctx ends first, what was started is stopped.
func startProxy(ctx context.Context, c *Cluster, p *Proxy) error {
	return startProxySaving(ctx, c, p, nil)
}

// startProxySaving is startProxy with save called as soon as the process
// runs (its PID in p): a crash while the proxy gets ready, which can take
// proxyWait, leaves a state that names it, so down or the next up stops it.
func startProxySaving(ctx context.Context, c *Cluster, p *Proxy, save func() error) error {
	impl, err := proxyImplOf(p.Kind)
	if err != nil {
		return err
	}
	if c.BaseDir == "" {
		return fmt.Errorf("%s: runs in front of a local env (this env has no folder on this machine)", p.Kind)
	}
	if len(c.Nodes()) == 0 || c.Primary.Port == 0 {
		return fmt.Errorf("%s: the env has no running primary", p.Kind)
	}
	if err := checkProxyOptions(p); err != nil {
		return err
	}
	bin, err := proxyBinary(p.Kind, impl)
	if err != nil {
		return err
	}
	if proxyRuns(p) {
		return fmt.Errorf("%s: already runs (pid %d)", p.Kind, p.PID)
	}
	u := clusterUser(c)
	p.Dir = filepath.Join(c.BaseDir, "proxy-"+p.Kind)
	p.LogFile = filepath.Join(c.BaseDir, "log", p.Kind+".log")
	// A folder left by an earlier start is reused: its files are all
	// written anew.
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", p.Kind, err)
	}
	if err := u.chown(p.Dir); err != nil {
		return fmt.Errorf("%s: %w", p.Kind, err)
	}
	if err := os.MkdirAll(filepath.Dir(p.LogFile), 0o755); err != nil {
		return fmt.Errorf("%s: %w", p.Kind, err)
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", p.Kind, err)
		}
		args, err := impl.prepare(c, u, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Kind, err)
		}
		off := fileSize(p.LogFile)
		exited, err := launchProxy(u, p, bin, args)
		if err != nil {
			return err
		}
		if save != nil {
			if err := save(); err != nil {
				return errors.Join(fmt.Errorf("%s: saving the state: %w", p.Kind, err), stopProxy(p))
			}
		}
		err = waitProxy(ctx, c, p, impl, exited, off)
		if err == nil {
			return nil
		}
		if serr := stopProxy(p); serr != nil {
			err = errors.Join(err, serr)
		}
		// Ports are picked free and may be taken before the proxy binds
		// them: it then exits at once, and is tried once more on others.
		tail := logSince(p.LogFile, off)
		if attempt == 0 && ctx.Err() == nil && (strings.Contains(tail, "Address already in use") || strings.Contains(tail, "cannot bind socket")) {
			p.Port, p.WritePort = 0, 0
			continue
		}
		return err
	}
}

// checkProxyOptions refuses options that would break out of a line of
// the configuration (ParseProxies refuses them too; a state file may not
// have come through it).
func checkProxyOptions(p *Proxy) error {
	for k, v := range p.Options {
		if !settingRE.MatchString(k) || v == "" || strings.ContainsAny(v, "'\n\r\\") {
			return fmt.Errorf("%s: option %s=%q: want key=value, the value without quotes, backslashes or line breaks", p.Kind, k, v)
		}
	}
	return nil
}

// launchProxy starts the proxy's program in a session of its own as u,
// its output appended to p.LogFile, and records its pid in p. exited is
// closed once it ends: we reap it while we live (tests are long-lived),
// a CLI exits and leaves it to init.
func launchProxy(u osUser, p *Proxy, bin string, args []string) (<-chan struct{}, error) {
	logf, err := os.OpenFile(p.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", p.Kind, err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin", "LC_ALL=C", "HOME=" + p.Dir, "TMPDIR=" + p.Dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = u.sysProcAttr(true)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", p.Kind, bin, err)
	}
	p.PID = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return exited, nil
}

// waitProxy polls impl.ready until it holds, the proxy exits, ctx ends
// or proxyWait passes.
func waitProxy(ctx context.Context, c *Cluster, p *Proxy, impl *proxyImpl, exited <-chan struct{}, logOff int64) error {
	deadline := time.NewTimer(proxyWait)
	defer deadline.Stop()
	log := func() string {
		if tail := lastLines(logSince(p.LogFile, logOff), 5); tail != "" {
			return "; its log (" + p.LogFile + "): " + tail
		}
		return "; its log (" + p.LogFile + ") is empty"
	}
	for {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last := impl.ready(qctx, c, p)
		cancel()
		if last == nil {
			return nil
		}
		if perm := (permanentError{}); errors.As(last, &perm) {
			return fmt.Errorf("%s: %w%s", p.Kind, perm.error, log())
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited during its start%s", p.Kind, log())
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", p.Kind, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s: not serving after %s: %v%s", p.Kind, proxyWait, last, log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// permanentError is a readiness check's failure that waiting will not
// mend (a bad option): the start fails at once.
type permanentError struct{ error }

// stopProxy stops p's process: its stop signal, then after proxyGrace
// SIGKILL for every process of its session (pgpool forks ~40 children,
// which would otherwise outlive a killed parent and keep its port). It
// returns once none is left. Stopping what does not run is not an error.
func stopProxy(p *Proxy) error {
	if p == nil || p.PID <= 0 {
		return nil
	}
	impl, err := proxyImplOf(p.Kind)
	if err != nil {
		return err
	}
	prog := filepath.Base(impl.bin)
	left := func() bool { return len(sessionProcs(p.PID, prog)) > 0 }
	if !left() {
		p.PID = 0
		return nil
	}
	if proxyRuns(p) {
		if err := syscall.Kill(p.PID, impl.stop); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s: signal %v to pid %d: %w", p.Kind, impl.stop, p.PID, err)
		}
		if waitFor(proxyGrace, func() bool { return !left() }) {
			p.PID = 0
			return nil
		}
	}
	// Its leader gone or deaf: every process of the session, listed
	// again on each pass (a parent may fork while we kill).
	ok := waitFor(5*time.Second, func() bool {
		ps := sessionProcs(p.PID, prog)
		for _, q := range ps {
			_ = signal(q, syscall.SIGKILL)
		}
		return len(ps) == 0
	})
	if !ok {
		return fmt.Errorf("%s: processes of session %d alive 5s after SIGKILL", p.Kind, p.PID)
	}
	p.PID = 0
	return nil
}

// proxyRuns says whether p's process is alive: its pid is a live process
// of the proxy's program with a file of p.Dir in its arguments (a
// recycled pid belongs to someone else; a zombie has exited).
func proxyRuns(p *Proxy) bool {
	if p == nil || p.PID <= 0 || p.Dir == "" {
		return false
	}
	impl, err := proxyImplOf(p.Kind)
	if err != nil || procComm(p.PID) != filepath.Base(impl.bin) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
	if err != nil {
		return false
	}
	if !slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool {
		return strings.HasPrefix(string(arg), p.Dir+"/")
	}) {
		return false
	}
	st, _, _, ok := procStat(p.PID)
	return ok && st != 'Z' && st != 'X'
}

// procComm is a process's program name as the kernel keeps it (15
// bytes at most): pgpool's children rewrite their command line for ps
// ("pgpool: wait for connection request") but not this.
func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// sessionProcs lists the live processes of session sid running prog. A
// session id is a pid the kernel does not hand out again while any
// process of the session lives, so these are the proxy's processes even
// after its leader died; prog guards against a later session that got
// the same id once they were all gone.
func sessionProcs(sid int, prog string) []proc {
	var out []proc
	for _, pid := range pids() {
		f := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
		if len(f) < 20 || (f[0][0] == 'Z' || f[0][0] == 'X') && !threadsLive(pid) {
			continue
		}
		if s, _ := strconv.Atoi(string(f[3])); s != sid || procComm(pid) != prog {
			continue
		}
		start, _ := strconv.ParseUint(string(f[19]), 10, 64)
		out = append(out, proc{pid, start})
	}
	return out
}

// proxyPort is the port of an earlier start when it is free (a proxy
// started again, say in front of a new primary, keeps the address its
// clients know), else a free one.
func proxyPort(old int) (int, error) {
	if old > 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(old))); err == nil {
			l.Close()
			return old, nil
		}
	}
	return freePort()
}

// threadsLive says whether a thread of process pid still runs. A
// multithreaded process whose main thread has exited shows as a zombie
// while its other threads finish, its sockets still open: seen here with
// HAProxy (a thread per core), whose port still took a connection after
// its main thread was a zombie.
func threadsLive(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if f := statFields(dir + "/" + e.Name() + "/stat"); len(f) > 0 && f[0][0] != 'Z' && f[0][0] != 'X' {
			return true
		}
	}
	return false
}

// nodeAddr is where a proxy reaches a node: its client port, behind the
// slow link of a linked standby (clients feel the link, and so must
// those that go through a proxy).
func nodeAddr(n *Node) (string, int) {
	if n.Link != nil && n.Link.ClientPort != 0 {
		return "127.0.0.1", n.Link.ClientPort
	}
	host := n.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return host, n.Port
}

// proxySocketDir is a short folder for a proxy's Unix sockets (a path is
// limited to 107 bytes): the env's socket folder, which newCluster keeps
// short, else the proxy's own.
func proxySocketDir(c *Cluster, p *Proxy) string {
	if c.SocketDir != "" {
		return c.SocketDir
	}
	return p.Dir
}

// writeProxyFile writes a file of a proxy, owned by the servers' OS user,
// readable by it only.
func writeProxyFile(u osUser, path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	// A file left by an earlier start keeps its mode through O_TRUNC.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return u.chown(path)
}

// proxyOptionSet is p.Options less the keys pgbenchx reads itself,
// sorted by key: what goes verbatim into the proxy's configuration.
func proxyOptionSet(p *Proxy, own []string) [][2]string {
	var out [][2]string
	for k, v := range p.Options {
		if !slices.Contains(own, k) {
			out = append(out, [2]string{k, v})
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// readPrimary says whether the proxy sends reads to the primary too.
func readPrimary(p *Proxy) bool {
	v := strings.ToLower(p.Options["read_primary"])
	return v == "on" || v == "true" || v == "1" || v == "yes"
}
