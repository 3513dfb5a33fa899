package env_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
)

func TestRegistry(t *testing.T) {
	if names := env.Providers(); !slices.Contains(names, "local") || !slices.IsSorted(names) {
		t.Errorf("Providers() = %v, want sorted names with local", names)
	}
	_, err := env.Lookup("nosuch")
	var ie *input.Error
	if !errors.As(err, &ie) || ie.Flag != "provider" || !strings.Contains(ie.Accepted, "local") {
		t.Fatalf("Lookup(nosuch): want *input.Error for --provider naming local, got %#v", err)
	}
	if got := err.Error(); !strings.HasPrefix(got, "--provider nosuch: ") {
		t.Errorf("message %q", got)
	}
	dir := t.TempDir()
	p, err := env.Lookup("local", env.Options{Store: env.Store{Dir: dir}, PgBin: "/x/bin", OSUser: "pg"})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := p.(*env.Local)
	if !ok || p.Name() != "local" || l.Store.Dir != dir || l.PgBin != "/x/bin" || l.OSUser != "pg" || l.CacheDir == "" {
		t.Errorf("Lookup(local) = %#v", p)
	}
	if d, _ := env.Lookup("local"); d.(*env.Local).Store.Dir != env.DefaultStateDir() {
		t.Errorf("default store %q", d.(*env.Local).Store.Dir)
	}
}

func TestProviderOfLoadedState(t *testing.T) {
	dir := t.TempDir()
	store := env.Store{Dir: dir}
	c := &env.Cluster{Name: "rec", Provider: "local", Status: "ready", CreatedAt: time.Now(),
		Primary: env.Node{Name: "primary", Role: env.RolePrimary}}
	if err := store.Create(c); err != nil {
		t.Fatal(err)
	}
	loaded, err := store.Load("rec")
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.ProviderOf(loaded)
	if err != nil {
		t.Fatal(err)
	}
	// It works on the store the state came from, not the user's default.
	if l, ok := p.(*env.Local); !ok || l.Store.Dir != dir {
		t.Errorf("ProviderOf = %#v, want the local provider on %s", p, dir)
	}
	if _, err := p.Control(loaded); err != nil {
		t.Errorf("Control: %v", err)
	}
	loaded.Provider = "docker-from-the-future"
	if _, err := env.ProviderOf(loaded); err == nil || !strings.Contains(err.Error(), "docker-from-the-future") {
		t.Errorf("ProviderOf an unknown provider: %v", err)
	}
	if err := p.Down(t.Context(), "rec"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load("rec"); !errors.Is(err, env.ErrNotFound) {
		t.Errorf("after Down: %v", err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering local twice did not panic")
		}
	}()
	env.Register("local", func(env.Options) env.Provider { return env.NewLocal() })
}
