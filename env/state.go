package env

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// StateDirEnv overrides where state files live (tests, several users).
const StateDirEnv = "PGBENCHX_STATE_DIR"

// DefaultStateDir is $PGBENCHX_STATE_DIR, else $XDG_STATE_HOME/pgbenchx,
// else ~/.local/state/pgbenchx.
func DefaultStateDir() string {
	if d := os.Getenv(StateDirEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "pgbenchx")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "pgbenchx")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pgbenchx-state-%d", os.Getuid()))
}

// ErrNotFound means no env of that name has a state file.
var ErrNotFound = errors.New("no such env")

// Store reads and writes state files, one per env name. The files hold
// passwords: they are written 0600 in a 0700 folder, atomically.
type Store struct{ Dir string }

func (s Store) path(name string) string { return filepath.Join(s.Dir, name+".json") }

// Load reads an env's state.
func (s Store) Load(name string) (*Cluster, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("env %q: %w (start one with: pgbenchx env up --name %s)", name, ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("env %q: read state: %w", name, err)
	}
	var c Cluster
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("env %q: state file %s is corrupt: %w", name, s.path(name), err)
	}
	c.stateDir = s.Dir
	// Nodes of envs built before Node.SocketDir existed.
	for _, n := range c.AllNodes() {
		if n.SocketDir == "" {
			n.SocketDir = c.SocketDir
		}
	}
	return &c, nil
}

// Save writes an env's state atomically with mode 0600.
func (s Store) Save(c *Cluster) error { return s.write(c, false) }

func (s Store) write(c *Cluster, exclusive bool) error {
	c.stateDir = s.Dir
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, "."+c.Name+"-*.tmp")
	if err != nil {
		return fmt.Errorf("env %q: write state: %w", c.Name, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("env %q: write state: %w", c.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		// link(2) fails if the name exists: an atomic claim.
		if err := os.Link(tmp.Name(), s.path(c.Name)); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return &ExistsError{Name: c.Name}
			}
			return err
		}
		return nil
	}
	return os.Rename(tmp.Name(), s.path(c.Name))
}

// Remove deletes an env's state file.
func (s Store) Remove(name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Names lists the envs that have state files.
func (s Store) Names() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			out = append(out, strings.TrimSuffix(n, ".json"))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Create writes a new env's state, failing if the name is taken: the file
// is how concurrent `up`s of one name exclude each other.
func (s Store) Create(c *Cluster) error { return s.write(c, true) }
