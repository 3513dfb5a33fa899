package main

import (
	"testing"

	"github.com/pgbenchx/pgbenchx/env/envtest"
)

func TestMain(m *testing.M) { envtest.Main(m) }
