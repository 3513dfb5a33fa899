package env_test

import (
	"testing"

	"github.com/pgbenchx/pgbenchx/env/envtest"
)

func TestMain(m *testing.M) { envtest.Main(m) }
