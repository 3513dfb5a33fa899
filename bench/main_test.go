package bench_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/pgbenchx/pgbenchx/env"
)

// TestMain keeps the package's envs out of the user's: their state goes in
// a folder of its own, removed at the end.
func TestMain(m *testing.M) {
	env.ServeNetIfAsked() // the link proxy of an env a test builds
	dir, err := os.MkdirTemp("", "pgbenchx-bench-state")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(env.StateDirEnv, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
