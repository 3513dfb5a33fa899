package env

import (
	"context"
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
var serverTools = []string{"initdb", "postgres", "pg_basebackup"}

// FindPgBin picks the PostgreSQL server binaries: the explicit folder, else
// `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin. The error
// says how to install them, since a missing server is the most common first
// failure on a fresh machine.
func FindPgBin(ctx context.Context, explicit string) (string, error) {
	if explicit != "" {
		if err := hasServerTools(explicit); err != nil {
			return "", input.Bad("pg-bin", explicit, "%v; want the folder holding initdb, postgres and pg_basebackup", err)
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
