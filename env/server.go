package env

import (
	"bufio"
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

// pollEvery is how often we look for a condition (standby streaming, a
// process gone). Short, because `up` is measured in fractions of a second.
// upPollEvery is shorter still for the waits of `up`, one query each;
// readyEvery is how often a starting server's postmaster.pid is read: a
// file read costs next to nothing, and every start waits for it.
const (
	pollEvery   = 10 * time.Millisecond
	upPollEvery = 5 * time.Millisecond
	readyEvery  = 2 * time.Millisecond
)

// freePort asks the kernel for a free loopback port. Another process may
// take it before postgres binds it, so startServer retries once on
// "address already in use".
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverArgs are the node-specific settings, given on the command line so
// that nodes can share one postgresql.conf (every node is a copy of the
// same template, configured alike).
func serverArgs(c *Cluster, n *Node) []string {
	args := []string{
		"-D", n.DataDir,
		"-c", "port=" + strconv.Itoa(n.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + c.SocketDir,
		"-c", "cluster_name=pgbx-" + c.Name + "-" + n.Name,
	}
	// A delay on the command line cannot be changed by a reload: `up`
	// starts a standby without it and sets it once the standby has the
	// env's roles (setApplyDelay); later starts give it here.
	if n.Role == RoleStandby && n.ApplyDelay > 0 {
		args = append(args, "-c", fmt.Sprintf("recovery_min_apply_delay=%dms", n.ApplyDelay.Milliseconds()))
	}
	return args
}

var errPortTaken = errors.New("port already in use")

// startServer starts postgres as a direct child in a session of its own (a
// terminal's Ctrl-C must not stop it; the cluster outlives this process) and
// waits until it accepts connections. On a port race it picks a new port and
// tries once more.
func startServer(ctx context.Context, c *Cluster, u osUser, n *Node) error {
	for attempt := 0; ; attempt++ {
		if n.Port == 0 {
			p, err := freePort()
			if err != nil {
				return fmt.Errorf("%s: free port: %w", n.Name, err)
			}
			n.Port = p
		}
		err := startOnce(ctx, c, u, n)
		if errors.Is(err, errPortTaken) && attempt == 0 {
			n.Port = 0
			continue
		}
		return err
	}
}

func startOnce(ctx context.Context, c *Cluster, u osUser, n *Node) error {
	logf, err := os.OpenFile(n.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", n.Name, err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, 2)
	cmd := exec.Command(filepath.Join(c.PgBin, "postgres"), serverArgs(c, n)...)
	cmd.Dir = n.DataDir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = u.sysProcAttr(true)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start postgres: %w", n.Name, err)
	}
	n.PID = cmd.Process.Pid
	if n.Cgroup != "" {
		if err := joinCgroup(n.Cgroup, n.PID); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("%s: CPU cap: %w", n.Name, err)
		}
	}
	exited := make(chan struct{})
	// Reap the child if it dies while we live (tests are long-lived
	// processes); a CLI exits and hands the server to init.
	go func() { _ = cmd.Wait(); close(exited) }()

	// A server we started but could not bring up must not outlive this
	// call: nobody else knows its pid yet.
	abandon := func(err error) error {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return err
	}
	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(readyEvery)
	defer tick.Stop()
	for {
		if pidFileStatus(n.DataDir) == "ready" {
			return nil
		}
		select {
		case <-ctx.Done():
			return abandon(ctx.Err())
		case <-exited:
			tail := logSince(n.LogFile, start)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%s: port %d: %w", n.Name, n.Port, errPortTaken)
			}
			return fmt.Errorf("%s: postgres exited during start: %s", n.Name, lastLines(tail, 5))
		case <-deadline.C:
			return abandon(fmt.Errorf("%s: not ready after 90s: %s", n.Name, lastLines(logSince(n.LogFile, start), 5)))
		case <-tick.C:
		}
	}
}

// pidFileStatus reads the postmaster's own readiness word from the 8th
// line of postmaster.pid ("ready" once it accepts connections, for a hot
// standby too) - what pg_ctl -w waits on, without its 100 ms steps.
func pidFileStatus(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 8 {
		return ""
	}
	return strings.TrimSpace(lines[7])
}

func logSince(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// postmasterAlive says whether pid is still the postmaster of dataDir; the
// data folder in its command line guards against a recycled pid.
func postmasterAlive(pid int, dataDir string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// The data folder as an argument of its own: a substring match would
	// take .../standby10's postmaster for .../standby1's.
	if !slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool { return string(arg) == dataDir }) {
		return false
	}
	// A zombie has exited; only its parent has not collected it yet.
	st, _, _, ok := procStat(pid)
	return ok && st != 'Z'
}

// postmasterPID is the pid in a data folder's postmaster.pid, if any.
func postmasterPID(dataDir string) int {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		pid, _ := strconv.Atoi(strings.TrimSpace(sc.Text()))
		return pid
	}
	return 0
}

// stopServer stops a postmaster: fast shutdown (SIGINT), then immediate
// (SIGQUIT), then SIGKILL, each with a deadline. It returns once the
// process is gone.
func stopServer(n *Node) error {
	pid := n.PID
	if !postmasterAlive(pid, n.DataDir) {
		pid = postmasterPID(n.DataDir)
		if !postmasterAlive(pid, n.DataDir) {
			return nil
		}
	}
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, 15 * time.Second}, {syscall.SIGQUIT, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}}
	for _, s := range steps {
		if err := syscall.Kill(pid, s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s: signal %v to pid %d: %w", n.Name, s.sig, pid, err)
		}
		if waitGone(pid, n.DataDir, s.wait) {
			return nil
		}
	}
	return fmt.Errorf("%s: pid %d survived SIGKILL", n.Name, pid)
}

// waitGone polls until the process is gone or d has passed. It ignores
// the caller's context on purpose: a stop that is begun must finish, or a
// Ctrl-C would leave a half-stopped server behind.
func waitGone(pid int, dataDir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !postmasterAlive(pid, dataDir) {
			return true
		}
		time.Sleep(pollEvery)
	}
	return !postmasterAlive(pid, dataDir)
}
