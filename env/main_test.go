package env_test

import (
	"os"
	"testing"

	"github.com/pgbenchx/pgbenchx/env"
)

// TestMain lets this test binary be an env's link proxy: env up starts
// os.Executable() as one.
func TestMain(m *testing.M) {
	env.ServeNetIfAsked()
	os.Exit(m.Run())
}
