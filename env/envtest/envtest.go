// Package envtest starts real clusters for tests through the env package:
// one call gives a running primary and standbys that are removed when the
// test ends, with every node's log printed if the test failed.
package envtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
)

// Provider returns a local provider whose state lives in the test's temp
// folder, so tests never see or touch a user's envs. Templates are cached
// in the user's cache as usual: that is what keeps each Up fast.
func Provider(t testing.TB) *env.Local {
	t.Helper()
	p := env.NewLocal()
	p.Store = env.Store{Dir: t.TempDir()}
	return p
}

// Up builds a cluster and registers its removal. Tests usually set
// spec.Fast: they check behaviour, not durability.
func Up(t testing.TB, spec env.Spec) (*env.Cluster, *env.Local) {
	t.Helper()
	p := Provider(t)
	return UpWith(t, p, spec), p
}

// UpWith builds a cluster with a given provider and registers its removal.
func UpWith(t testing.TB, p *env.Local, spec env.Spec) *env.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := p.Up(ctx, spec)
	if err != nil {
		t.Fatalf("env up %s: %v", spec.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			DumpLogs(t, c)
		}
		// A test may have taken it down itself.
		if err := p.Down(context.Background(), c.Name); err != nil && !errors.Is(err, env.ErrNotFound) {
			t.Errorf("env down %s: %v", c.Name, err)
		}
	})
	return c
}

// Control returns the Controller of a cluster, through its provider as
// its state records it (what a later process would do).
func Control(t testing.TB, c *env.Cluster) env.Controller {
	t.Helper()
	p, err := env.ProviderOf(c)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := p.Control(c)
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

// DumpLogs prints the tail of every node's server log, detached nodes
// (an old primary after a failover) included.
func DumpLogs(t testing.TB, c *env.Cluster) {
	t.Helper()
	for _, n := range c.AllNodes() {
		b, err := os.ReadFile(n.LogFile)
		if err != nil {
			t.Logf("%s: no log: %v", n.Name, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s log (%s), last %d lines ---\n%s", n.Name, n.LogFile, len(lines), strings.Join(lines, "\n"))
	}
}

// Main is a TestMain for packages whose tests build envs: it lets the
// test binary serve an env's link proxy (env up --net-delay starts
// os.Executable() as one), then runs the tests.
func Main(m *testing.M) {
	env.ServeNetIfAsked()
	os.Exit(m.Run())
}

// DockerProvider is the docker provider with its state in the test's
// folder, or a skip saying why there is none here: no engine answers, or
// its image was not built (make docker-image; make test builds it).
func DockerProvider(t testing.TB) env.Provider {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("no Docker engine answers here (docker info failed)")
	}
	if err := exec.Command("docker", "image", "inspect", env.DefaultImage).Run(); err != nil {
		t.Skipf("no image %s: make docker-image builds it (make test does where an engine answers)", env.DefaultImage)
	}
	p, err := env.Lookup(env.DockerName, env.Options{Store: env.Store{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
