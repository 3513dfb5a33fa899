package env

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The processes of a Patroni stack (etcd, each member's Patroni, HAProxy)
// are started the way startNetProxy starts the link proxy: a session of
// their own (a terminal's Ctrl-C does not reach them), output to a log
// file beside the nodes' logs, pid in the state file at once, stopped with
// SIGTERM then SIGKILL. They run as the servers' OS user.

// stackBinary finds a stack's program: on PATH, else where Debian puts
// it (root's PATH may lack /usr/sbin, where haproxy is).
func stackBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (apt-get install patroni etcd-server haproxy, or scripts/ensure-stacks.sh)", name)
}

// stackCmd is a stack process to start.
type stackCmd struct {
	name    string // in errors and StackProcess.Name
	bin     string
	args    []string
	dir     string // working folder; a path under it is in args (stackAlive)
	logFile string
	env     []string
}

// startStack starts a stack process as the servers' OS user. exited is
// closed once it ends (we reap it while we live; a CLI exits and leaves
// it to init).
func startStack(u osUser, sc stackCmd) (p StackProcess, exited <-chan struct{}, err error) {
	logf, err := os.OpenFile(sc.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return p, nil, fmt.Errorf("%s: log file: %w", sc.name, err)
	}
	defer logf.Close()
	cmd := exec.Command(sc.bin, sc.args...)
	cmd.Dir = sc.dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=" + sc.dir, "TMPDIR=" + sc.dir}, sc.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = u.sysProcAttr(true)
	if err := cmd.Start(); err != nil {
		return p, nil, fmt.Errorf("%s: start %s: %w", sc.name, filepath.Base(sc.bin), err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return StackProcess{Name: sc.name, PID: cmd.Process.Pid, LogFile: sc.logFile, Dir: sc.dir}, done, nil
}

// stackAlive says whether p still runs: its pid is a live process with
// a path under p.Dir among its arguments (a recycled pid is someone
// else's; a zombie has exited).
func stackAlive(p StackProcess) bool {
	if p.PID <= 0 || p.Dir == "" {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
	if err != nil {
		return false
	}
	ours := slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool {
		_, path, _ := strings.Cut(string(arg), "=") // --data-dir=/x
		if !strings.HasPrefix(string(arg), "-") {
			path = string(arg)
		}
		return path == p.Dir || strings.HasPrefix(path, p.Dir+"/")
	})
	if !ours {
		return false
	}
	st, _, _, ok := procStat(p.PID)
	return ok && st != 'Z' && st != 'X'
}

// stopStack ends a stack process: SIGTERM, SIGKILL after grace; it
// returns once the process is gone. Not running is not an error.
func stopStack(p StackProcess, grace time.Duration) error {
	for _, s := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, grace}, {syscall.SIGKILL, 5 * time.Second}} {
		if !stackAlive(p) {
			return nil
		}
		if err := syscall.Kill(p.PID, s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s: signal %v to pid %d: %w", p.Name, s.sig, p.PID, err)
		}
		if waitFor(s.wait, func() bool { return !stackAlive(p) }) {
			return nil
		}
	}
	return fmt.Errorf("%s: pid %d survived SIGKILL", p.Name, p.PID)
}

// waitStack polls ready until it holds, the process exits (its log's
// last lines say why), ctx ends or limit passes.
func waitStack(ctx context.Context, p StackProcess, exited <-chan struct{}, limit time.Duration, what string, ready func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: while waiting until %s: %w", p.Name, what, ctx.Err())
		case <-exited:
			return fmt.Errorf("%s exited before %s: %s", p.Name, what, lastLines(logSince(p.LogFile, 0), 5))
		case <-deadline.C:
			return fmt.Errorf("%s: not %s after %s: %s", p.Name, what, limit, lastLines(logSince(p.LogFile, 0), 5))
		case <-tick.C:
		}
	}
}

// etcdWait bounds etcd's start (measured here: ~0.1-0.2 s).
const etcdWait = 30 * time.Second

// startEtcd starts a one-member etcd on two free loopback ports, its
// data under c.BaseDir/etcd, and waits until it reports healthy.
func startEtcd(ctx context.Context, c *Cluster, u osUser, save func() error) error {
	bin, err := stackBinary("etcd")
	if err != nil {
		return err
	}
	client, err := freePort()
	if err != nil {
		return fmt.Errorf("etcd: free port: %w", err)
	}
	peer, err := freePort()
	if err != nil {
		return fmt.Errorf("etcd: free port: %w", err)
	}
	dir := filepath.Join(c.BaseDir, "etcd")
	if err := u.mkdir(dir); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	url := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }
	p, exited, err := startStack(u, stackCmd{
		name: "etcd", bin: bin, dir: dir, logFile: filepath.Join(c.BaseDir, "log", "etcd.log"),
		args: []string{
			"--name", "pgbx", "--data-dir", dir,
			"--listen-client-urls", url(client), "--advertise-client-urls", url(client),
			"--listen-peer-urls", url(peer), "--initial-advertise-peer-urls", url(peer),
			"--initial-cluster", "pgbx=" + url(peer), "--initial-cluster-state", "new",
			"--initial-cluster-token", patroniScope(c),
			// One member: its election is a formality, but it still
			// waits a randomized election timeout (1-2 s by default, less
			// a 0.9 s fast-forward): measured 0.1-1.0 s of env up here.
			"--heartbeat-interval", "25", "--election-timeout", "250",
			// Patroni's etcd3 section speaks the v3 API (JSON gateway);
			// the v2 one stays off.
			"--enable-v2=false",
			"--logger", "zap", "--log-outputs", "stderr",
		},
	})
	if err != nil {
		return err
	}
	c.Patroni.Etcd, c.Patroni.EtcdPort = p, client
	if err := save(); err != nil {
		return err
	}
	return waitStack(ctx, p, exited, etcdWait, "healthy", func() bool { return etcdHealthy(ctx, client) })
}

var stackHTTP = &http.Client{Timeout: 2 * time.Second}

func etcdHealthy(ctx context.Context, port int) bool {
	var h struct {
		Health string `json:"health"`
	}
	return getJSON(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", port), &h) == nil && h.Health == "true"
}

// etcdHasKey says whether key exists, through etcd's v3 JSON gateway.
func etcdHasKey(ctx context.Context, port int, key string) (bool, error) {
	body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/v3/kv/range", port), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	resp, err := stackHTTP.Do(req)
	if err != nil {
		return false, fmt.Errorf("etcd: %w", err)
	}
	defer resp.Body.Close()
	var r struct {
		Kvs []json.RawMessage `json:"kvs"`
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("etcd: range %s: %s", key, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return false, fmt.Errorf("etcd: range %s: %w", key, err)
	}
	return len(r.Kvs) > 0, nil
}

// getJSON GETs url into v; a status other than 200 is an error (with the
// status code in it: Patroni's health checks answer 503 with a body).
func getJSON(ctx context.Context, url string, v any) error {
	code, err := getStatusJSON(ctx, url, v)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d", url, code)
	}
	return err
}

func getStatusJSON(ctx context.Context, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := stackHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v == nil {
		// Read to the end: a connection closed mid-answer makes Patroni's
		// REST server log a traceback.
		_, _ = io.Copy(io.Discard, resp.Body)
	} else {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}

// touchOwned makes an empty file of mode 0600 for the servers' OS user if
// there is none: a log the server itself opens (its folder is ours).
func touchOwned(u osUser, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return u.chown(path)
}
