package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// templateFormat changes whenever the initdb arguments below change, so an
// old cached template is never reused for a different layout. Since 3, the
// template has the admin role, its last checkpoint starts a WAL segment,
// and it is an image file.
const templateFormat = "3"

// adminUser is the env's own superuser. It has no password: pg_hba lets it
// in over the Unix socket only, by peer identity, for the servers' OS user
// and the one who built the env. pgbenchx manages nodes through it (roles,
// slots, promotion), so that works on a node before any password of the
// env has reached it, and whatever the env's users' passwords are. It
// comes with the template: every node has it from its first start.
const adminUser = "pgbenchx"

// CacheDirEnv overrides where initdb templates are cached.
const CacheDirEnv = "PGBENCHX_CACHE_DIR"

// DataDirEnv overrides where data folders are made.
const DataDirEnv = "PGBENCHX_DATA_DIR"

// DataRoot is where each env gets its folder: $PGBENCHX_DATA_DIR, else for
// a --fast env the RAM-backed /dev/shm (it is not durable anyway, and on
// virtual disks such as this project's CI creating a data folder's thousand
// files costs up to a second), else /var/tmp, else the temp dir. The folder
// must be reachable by the servers' OS user: a home folder of mode 0700 is not.
func DataRoot(fast bool) string {
	if d := os.Getenv(DataDirEnv); d != "" {
		return d
	}
	candidates := []string{"/var/tmp"}
	if fast {
		candidates = []string{"/dev/shm", "/var/tmp"}
	}
	for _, d := range candidates {
		if st, err := os.Stat(d); err == nil && st.IsDir() && unix.Access(d, unix.W_OK) == nil {
			return d
		}
	}
	return os.TempDir()
}

// spreadSubdirs asks the file system to place the folders made in dir as
// it places top-level folders (chattr +T): ext4's Orlov allocator then
// spreads them over block groups instead of keeping them near dir. It is
// set on an env's folder and on every folder of its data folders. It
// matters where ext4 runs without a journal, as on the machine this was
// measured on: ext4 then skips, one by one, the inodes freed in the last
// minutes (a removed env's), and searches a group's inodes from its start
// for each new file, so making the ~1000 files of a data folder in the
// groups an env just freed cost 0.25-0.6 s of CPU; spread, 30-70 ms. It
// changes nothing else (PostgreSQL's own new folders are spread too). Best
// effort: other file systems have no such flag.
func spreadSubdirs(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil {
		const topdir = 0x00020000 // FS_TOPDIR_FL, chattr +T; not in x/sys/unix
		_ = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|topdir))
	}
}

// DefaultCacheDir is $PGBENCHX_CACHE_DIR, else the user's cache dir.
func DefaultCacheDir() string {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "pgbenchx")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pgbenchx-cache-%d", os.Getuid()))
}

// loadTemplate maps the cached template image, made first if need be. A
// cached image that cannot be read (written by a build of pgbenchx that
// went wrong, say) is made again, once.
func loadTemplate(ctx context.Context, cacheDir, bin, version string, u osUser) (*image, error) {
	path, err := ensureTemplate(ctx, cacheDir, bin, version, u)
	if err != nil {
		return nil, err
	}
	im, err := openImage(path)
	if err == nil {
		return im, nil
	}
	if rmErr := os.Remove(path); rmErr != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if path, err = ensureTemplate(ctx, cacheDir, bin, version, u); err != nil {
		return nil, err
	}
	return openImage(path)
}

// ensureTemplate returns the image file of a freshly initdb'd data folder
// for this server version, made once and then written out as every node's
// folder: initdb is the slowest step of `up` (1-2 s here) while writing a
// copy takes tens of milliseconds. It was shut down cleanly, so a copy is
// a valid starting point for a primary and for its standbys alike.
// Passwords are not in the template; they are set per env once its
// primary runs.
func ensureTemplate(ctx context.Context, cacheDir, bin, version string, u osUser) (string, error) {
	sum := sha256.Sum256([]byte(templateFormat + "\x00" + bin + "\x00" + version))
	path := filepath.Join(cacheDir, "templates", version+"-"+hex.EncodeToString(sum[:6])+".img")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("template cache: %w", err)
	}
	// initdb runs as the server's OS user, who may not reach our cache
	// (root's home is 0700): build in a temp folder, then pack it in.
	work, err := os.MkdirTemp(DataRoot(false), "pgbx-initdb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := u.chown(work); err != nil {
		return "", err
	}
	data := filepath.Join(work, "data")
	err = u.run(ctx, work, nil, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-E", "UTF8", "--no-locale",
		"--auth-local=peer", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions")
	if err != nil {
		return "", fmt.Errorf("initdb: %w", err)
	}
	// Single-user mode: no server to start, no socket, no password. The
	// switch puts the shutdown checkpoint at the start of a new segment:
	// a standby's walreceiver asks for WAL from the start of the segment
	// holding its checkpoint, and initdb's 5 MB of WAL before it need not
	// be streamed to every standby of every env.
	out, err := u.runInput(ctx, work, nil, "CREATE ROLE "+adminUser+" WITH SUPERUSER LOGIN\nSELECT pg_switch_wal()\n",
		filepath.Join(bin, "postgres"), "--single", "-D", data, "-c", "fsync=off", "postgres")
	if err == nil && strings.Contains(out, "ERROR") {
		err = errors.New(lastLines(out, 5))
	}
	if err != nil {
		return "", fmt.Errorf("template: create role %s: %w", adminUser, err)
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".tmpl-%d-%d", os.Getpid(), time.Now().UnixNano()))
	defer os.Remove(tmp)
	if err := packImage(data, tmp); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	// Another process may have cached one first: theirs is as good as ours.
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}

// syncFS flushes the file system holding dir: one syscall instead of an
// fsync per copied file, so a durable (non --fast) lab stays quick to build.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
