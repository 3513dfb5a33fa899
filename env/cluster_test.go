package env

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestDSNRedaction(t *testing.T) {
	n := Node{Host: "127.0.0.1", Port: 5432, User: "postgres", Password: "s3cretPW", Database: "postgres"}
	if got, want := n.DSN(), "postgres://postgres:s3cretPW@127.0.0.1:5432/postgres?sslmode=disable"; got != want {
		t.Errorf("DSN %q, want %q", got, want)
	}
	if r := n.RedactedDSN(); strings.Contains(r, "s3cretPW") || !strings.Contains(r, "postgres:xxxxx@") {
		t.Errorf("redacted DSN %q", r)
	}
	n.Password = ""
	if r := n.RedactedDSN(); strings.Contains(r, "xxxxx") {
		t.Errorf("no password yet a redaction mark: %q", r)
	}
}

func TestSocketDSNFormat(t *testing.T) {
	n := Node{Host: "127.0.0.1", Port: 5433, User: "postgres", Password: "s3cretPW", Database: "postgres", SocketDir: "/tmp/pgbx123"}
	got := n.SocketDSN()
	if want := "postgres://postgres:s3cretPW@/postgres?host=%2Ftmp%2Fpgbx123&port=5433&sslmode=disable"; got != want {
		t.Errorf("SocketDSN %q, want %q", got, want)
	}
	cfg, err := pgx.ParseConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != n.SocketDir || cfg.Port != 5433 || cfg.User != "postgres" || cfg.Password != "s3cretPW" || cfg.Database != "postgres" {
		t.Errorf("pgx reads %q as host %q port %d user %q password %q database %q", got, cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database)
	}
	if r := n.RedactedSocketDSN(); strings.Contains(r, "s3cretPW") || !strings.Contains(r, "postgres:xxxxx@/") {
		t.Errorf("redacted socket DSN %q", r)
	}
	n.SocketDir = ""
	if got := n.SocketDSN(); got != "" {
		t.Errorf("a node without a socket folder: SocketDSN %q, want empty", got)
	}
}

func TestLoadFillsNodeSocketDir(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	// A state file written before Node.SocketDir existed.
	old := `{"name": "old", "provider": "local", "status": "ready", "socket_dir": "/tmp/pgbxold",
		"primary": {"name": "primary", "port": 5432}, "standbys": [{"name": "standby1", "port": 5433}],
		"detached": [{"name": "oldprimary", "port": 5434}]}`
	if err := os.WriteFile(filepath.Join(s.Dir, "old.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := s.Load("old")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.AllNodes() {
		if n.SocketDir != "/tmp/pgbxold" {
			t.Errorf("%s: SocketDir %q, want the env's", n.Name, n.SocketDir)
		}
	}
}

func TestStoreModesAndExclusiveCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := Store{Dir: dir}
	c := &Cluster{Name: "lab", Primary: Node{Name: "primary", Password: "pw"}}
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	var exists *ExistsError
	if err := s.Create(c); !errors.As(err, &exists) {
		t.Fatalf("second Create: want ExistsError, got %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, "lab.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600: it holds passwords", st.Mode().Perm())
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", dst.Mode().Perm())
	}
	got, err := s.Load("lab")
	if err != nil || got.Primary.Password != "pw" {
		t.Fatalf("Load: %+v, %v", got, err)
	}
	if names, _ := s.Names(); len(names) != 1 || names[0] != "lab" {
		t.Errorf("Names: %v", names)
	}
	if err := s.Remove("lab"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("lab"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Remove: want ErrNotFound, got %v", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 16 << 20: "16.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
