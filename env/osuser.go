package env

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// osUser is who runs initdb and the servers. PostgreSQL refuses to run as
// root, so as root we switch to an unprivileged user who owns the data
// folders; otherwise it is the current user.
type osUser struct {
	Name     string
	UID, GID int
	switchTo bool // we are root and run children as this user
}

func resolveOSUser(name string) (osUser, error) {
	if os.Geteuid() != 0 {
		cur, err := user.Current()
		if err != nil {
			return osUser{}, err
		}
		if name != "" && name != cur.Username {
			return osUser{}, input.Bad("os-user", name, "only root can run servers as another user; drop the flag to run them as %s", cur.Username)
		}
		return osUser{Name: cur.Username, UID: os.Getuid(), GID: os.Getgid()}, nil
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return osUser{}, input.Bad("os-user", name, "no such OS user; PostgreSQL will not run as root, so create one (useradd --system %s) or name another with --os-user", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return osUser{}, input.Bad("os-user", name, "PostgreSQL refuses to run as root; name an unprivileged user")
	}
	return osUser{Name: name, UID: uid, GID: gid, switchTo: true}, nil
}

func (u osUser) sysProcAttr(newSession bool) *syscall.SysProcAttr {
	// A process group (or session) of their own keeps a terminal's Ctrl-C
	// from reaching our children: we decide when they stop.
	a := &syscall.SysProcAttr{Setpgid: !newSession, Setsid: newSession}
	if u.switchTo {
		a.Credential = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}
	}
	return a
}

// chown hands a path to the user (a no-op when we are that user).
func (u osUser) chown(path string) error {
	if !u.switchTo {
		return nil
	}
	return os.Lchown(path, u.UID, u.GID)
}

// mkdir makes a folder owned by the user with mode 0700.
func (u osUser) mkdir(path string) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	return u.chown(path)
}

// run runs a tool as the user, killing it when ctx ends. extraEnv carries
// secrets (PGPASSWORD) so they never appear in argv, which ps shows.
func (u osUser) run(ctx context.Context, dir string, extraEnv []string, name string, args ...string) error {
	_, err := u.runInput(ctx, dir, extraEnv, "", name, args...)
	return err
}

// runInput is run with text on the tool's standard input; it returns
// what the tool printed.
func (u osUser) runInput(ctx context.Context, dir string, extraEnv []string, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + dir}, extraEnv...)
	cmd.SysProcAttr = u.sysProcAttr(false)
	// A tool may fork (pg_basebackup -X stream does): kill the whole group,
	// and do not wait forever on a pipe a grandchild still holds.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return "", fmt.Errorf("%s: %w: %s", filepath.Base(name), err, msg)
	}
	return out.String(), nil
}

func lookupCurrent() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	return u.Username, nil
}
