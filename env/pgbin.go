package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/input"
)

// serverTools are the binaries the local provider runs.
var serverTools = []string{"initdb", "postgres", "pg_basebackup", "pg_rewind"}

// FindPgBin picks the PostgreSQL server binaries: the explicit folder, else
// `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin. The error
// says how to install them, since a missing server is the most common first
// failure on a fresh machine.
func FindPgBin(ctx context.Context, explicit string) (string, error) {
	if explicit != "" {
		if err := hasServerTools(explicit); err != nil {
			return "", input.Bad("pg-bin", explicit, "%v; want the folder holding initdb, postgres, pg_basebackup and pg_rewind", err)
		}
		return explicit, nil
	}
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if hasServerTools(dir) == nil {
			return dir, nil
		}
	}
	if dir := newestDebianBin("/usr/lib/postgresql"); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found (looked at --pg-bin, `pg_config --bindir`, /usr/lib/postgresql/*/bin); " +
		"install them (Debian/Ubuntu: apt-get install postgresql) or pass --pg-bin DIR")
}

func hasServerTools(dir string) error {
	for _, t := range serverTools {
		st, err := os.Stat(filepath.Join(dir, t))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("no executable %s in %s", t, dir)
		}
	}
	return nil
}

func newestDebianBin(root string) string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	type cand struct {
		ver float64
		dir string
	}
	var cands []cand
	for _, e := range ents {
		v, err := strconv.ParseFloat(e.Name(), 64)
		dir := filepath.Join(root, e.Name(), "bin")
		if err == nil && hasServerTools(dir) == nil {
			cands = append(cands, cand{v, dir})
		}
	}
	if len(cands) == 0 {
		return ""
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ver > cands[j].ver })
	return cands[0].dir
}

var versionRE = regexp.MustCompile(`(\d+(?:\.\d+)?)`)

// ServerVersion is what `postgres --version` says, e.g. "15.18".
func ServerVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s/postgres --version: %w", bin, err)
	}
	m := versionRE.FindString(string(out))
	if m == "" {
		return "", fmt.Errorf("%s/postgres --version: unexpected output %q", bin, out)
	}
	return m, nil
}

// cachedServerVersion is ServerVersion remembered in cacheDir for this
// binary (its path, size and modification time): running postgres
// --version costs ~25 ms here, a tenth of a --fast `up`.
func cachedServerVersion(ctx context.Context, cacheDir, bin string) (string, error) {
	exe := filepath.Join(bin, "postgres")
	st, err := os.Stat(exe)
	if err != nil {
		return ServerVersion(ctx, bin)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", exe, st.Size(), st.ModTime().UnixNano()))
	memo := filepath.Join(cacheDir, "versions", hex.EncodeToString(sum[:8]))
	if b, err := os.ReadFile(memo); err == nil && len(b) > 0 && versionRE.FindString(string(b)) == string(b) {
		return string(b), nil
	}
	v, err := ServerVersion(ctx, bin)
	if err != nil {
		return "", err
	}
	// A memo not written is only a memo.
	if os.MkdirAll(filepath.Dir(memo), 0o700) == nil {
		tmp := fmt.Sprintf("%s.%d.tmp", memo, os.Getpid())
		if os.WriteFile(tmp, []byte(v), 0o600) == nil {
			_ = os.Rename(tmp, memo)
		}
		os.Remove(tmp)
	}
	return v, nil
}
