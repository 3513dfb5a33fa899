package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// templateFormat changes whenever the initdb arguments below change, so an
// old cached template is never reused for a different layout.
const templateFormat = "1"

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

// ensureTemplate returns a freshly initdb'd data folder for this server
// version, made once and then copied: initdb is the slowest step of `up`
// (1-2 s here) while a copy takes tens of milliseconds. Passwords are not in
// the template; they are set per env once its primary runs.
func ensureTemplate(ctx context.Context, cacheDir, bin, version string, u osUser) (string, error) {
	sum := sha256.Sum256([]byte(templateFormat + "\x00" + bin + "\x00" + version))
	dir := filepath.Join(cacheDir, "templates", version+"-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", fmt.Errorf("template cache: %w", err)
	}
	// initdb runs as the server's OS user, who may not reach our cache
	// (root's home is 0700): build in a temp folder, then copy in.
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
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmpl-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(data, tmp, osUser{}); err != nil {
		return "", fmt.Errorf("template copy: %w", err)
	}
	syncFS(tmp)
	if err := os.Rename(tmp, dir); err != nil {
		// Another process cached it first: theirs is as good as ours.
		if _, statErr := os.Stat(filepath.Join(dir, "PG_VERSION")); statErr == nil {
			return dir, nil
		}
		return "", err
	}
	return dir, nil
}

// copyTree copies a data folder, handing every entry to u.
func copyTree(src, dst string, u osUser) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
					return err
				}
			} else if err := os.Chmod(target, 0o700); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, info.Mode().Type())
		}
		return u.chown(target)
	})
}

func copyFile(src, dst string, mode fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	_, err = io.Copy(out, in)
	return err
}

// syncFS flushes the file system holding dir: one syscall instead of an
// fsync per copied file, so a durable (non --fast) lab stays quick to build.
func syncFS(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Syncfs(int(f.Fd()))
}
